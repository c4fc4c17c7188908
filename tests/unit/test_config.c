/* test_config.c — unit tests for the config loader and the YAML → JSON
 * converter (engine/config.c, engine/yamljson.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/cm_test_config_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static const char *write_config(fixture *f, const char *name, const char *text)
{
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    FILE *fp = fopen(f->path, "we");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return f->path;
}

static const char FULL_YAML[] =
    "manual_call_templates:\n"
    "  - name: github\n"
    "    call_template_type: http\n"
    "    url: https://example.com/utcp\n"
    "variables:\n"
    "  TOKEN: abc\n"
    "  PORT: 8080\n"
    "  DEBUG: true\n"
    "load_variables_from:\n"
    "  - variable_loader_type: dotenv\n"
    "    env_file_path: .env\n"
    "tool_repository: {tool_repository_type: in_memory}\n"
    "tool_search_strategy: {tool_search_strategy_type: tag_and_description_word_match}\n"
    "post_processing: []\n"
    "engine:\n"
    "  rootfs: myroot\n"
    "  workers: 4\n"
    "  tmp_size_mb: 32\n"
    "  sandbox_uid: 200000\n"
    "  default_timeout_s: 10\n";

static void test_yaml_full_config(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(f, "cfg.yaml", FULL_YAML);
    assert_int_equal(cm_config_load(path, "/opt/cm", &cfg, &err), 0);
    char expect[256];
    snprintf(expect, sizeof expect, "%s/myroot", f->dir);
    assert_string_equal(cfg.rootfs, expect);
    assert_string_equal(cfg.base_dir, f->dir);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.tmp_size_bytes, 32u << 20);
    assert_int_equal(cfg.sandbox_uid, 200000);
    assert_int_equal(cfg.sandbox_gid, 100000);
    assert_int_equal(cfg.default_timeout_s, 10);
    assert_int_equal(cfg.max_timeout_s, 300);
    assert_int_equal(cJSON_GetArraySize(cfg.manual_call_templates), 1);
    assert_string_equal(cm_json_str(cfg.variables, "PORT"), "8080");
    assert_string_equal(cm_json_str(cfg.variables, "DEBUG"), "true");
    assert_string_equal(cm_json_str(cfg.variables, "TOKEN"), "abc");
    assert_int_equal(cJSON_GetArraySize(cfg.load_variables_from), 1);
    cm_config_free(&cfg);
    cm_config_free(&cfg); /* twice is safe */
}

static void test_json_full_config(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(
        f, "cfg.json",
        "{\"manual_call_templates\": [{\"name\": \"m\", \"call_template_type\": \"text\"}],\n"
        " \"variables\": {\"A\": \"1\"},\n"
        " \"load_variables_from\": [{\"variable_loader_type\": \"dotenv\", \"env_file_path\": "
        "\"/x/.env\"}],\n"
        " \"post_processing\": [], \"engine\": {\"rootfs\": \"/abs/root\", \"workers\": 256}}\n");
    assert_int_equal(cm_config_load(path, "/opt/cm", &cfg, &err), 0);
    assert_string_equal(cfg.rootfs, "/abs/root");
    assert_int_equal(cfg.workers, 256);
    assert_string_equal(cm_json_str(cfg.variables, "A"), "1");
    cm_config_free(&cfg);
}

static void test_defaults_without_file(void **state)
{
    (void)state;
    cm_config cfg;
    cm_error err = {0};
    assert_int_equal(cm_config_load(NULL, "/opt/cm/build", &cfg, &err), 0);
    assert_string_equal(cfg.rootfs, "/opt/cm/build/rootfs");
    assert_non_null(cfg.base_dir);
    assert_int_equal(cfg.workers, 8);
    assert_int_equal(cfg.queue_max, 256);
    assert_int_equal(cfg.max_request_bytes, 4u << 20);
    /* in-flight tool-call memory (issue 14): bounded by default */
    assert_int_equal(cfg.chain_inflight_bytes, 32u << 20);
    assert_int_equal(cfg.inflight_bytes, 96u << 20);
    assert_int_equal(cfg.max_call_bytes, 8u << 20);
    assert_int_equal(cfg.max_call_result_bytes, 4u << 20);
    assert_null(cfg.manual_call_templates);
    cm_config_free(&cfg);
}

static void test_json_syntax_error_position(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(f, "bad.json", "{\n  \"variables\": {\n    \"A\": ,\n  }\n}\n");
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "line 3:"));
}

static void test_scalar_types(void **state)
{
    (void)state;
    static const char doc[] = "a: \"123\"\nb: 123\nc: true\nd: '1.5'\ne: 1.5e3\nf: ~\ng:\n"
                              "h: True\ni: 0x1F\nj: 12abc\nk: |\n  text\nl: -7\nm: yes\n";
    cJSON *j = NULL;
    cm_error err = {0};
    assert_int_equal(cm_yaml_to_json(doc, strlen(doc), &j, &err), 0);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "a")));
    assert_string_equal(cm_json_str(j, "a"), "123");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "b")));
    assert_int_equal(cJSON_GetObjectItem(j, "b")->valueint, 123);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "c")));
    assert_string_equal(cm_json_str(j, "d"), "1.5");
    assert_true(cJSON_GetObjectItem(j, "e")->valuedouble == 1500.0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "f")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "g")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "h")));
    assert_int_equal(cJSON_GetObjectItem(j, "i")->valueint, 31);
    assert_string_equal(cm_json_str(j, "j"), "12abc");
    assert_string_equal(cm_json_str(j, "k"), "text\n");
    assert_int_equal(cJSON_GetObjectItem(j, "l")->valueint, -7);
    assert_string_equal(cm_json_str(j, "m"), "yes"); /* YAML 1.2: not a bool */
    cJSON_Delete(j);
}

static void test_unknown_top_level_key(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(f, "c.yaml", "variables: {}\nmanual_call_templatez: []\n");
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "unknown key 'manual_call_templatez' at top level of"));
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "(did you mean 'manual_call_templates'?)"));
    assert_null(cfg.root); /* freed on failure */
}

static void expect_engine_error(fixture *f, const char *engine_yaml, const char *needle)
{
    char text[512];
    snprintf(text, sizeof text, "engine:\n%s", engine_yaml);
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(f, "e.yaml", text);
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), -1);
    if (!strstr(err.message, needle))
        fail_msg("expected '%s' in '%s'", needle, err.message);
}

static void test_bad_engine_values(void **state)
{
    fixture *f = *state;
    expect_engine_error(f, "  workers: 0\n", "engine.workers");
    expect_engine_error(f, "  workers: 257\n", "engine.workers");
    expect_engine_error(f, "  workers: \"4\"\n", "engine.workers: must be an integer");
    expect_engine_error(f, "  workers: 2.5\n", "engine.workers: must be an integer");
    expect_engine_error(f, "  sandbox_uid: 0\n", "engine.sandbox_uid");
    expect_engine_error(f, "  sandbox_gid: 0\n", "engine.sandbox_gid");
    expect_engine_error(f, "  default_timeout_s: 3601\n", "engine.default_timeout_s");
    expect_engine_error(f, "  wokers: 3\n",
                        "engine: unknown key 'wokers' (did you mean 'workers'?)");
    expect_engine_error(f, "  pool_sise: 3\n",
                        "engine: unknown key 'pool_sise' (did you mean 'pool_size'?)");
    expect_engine_error(f, "  rootfs_ful: x\n",
                        "engine: unknown key 'rootfs_ful' (did you mean 'rootfs_full'?)");
    expect_engine_error(f, "  completely_different: 3\n",
                        "engine: unknown key 'completely_different'");
    expect_engine_error(f, "  rootfs: 5\n", "engine.rootfs");
    expect_engine_error(f, "  registration: 5\n", "engine.registration: must be an object");
    expect_engine_error(f, "  registration: {max_tool: 5}\n",
                        "engine.registration: unknown key 'max_tool' (did you mean 'max_tools'?)");
    expect_engine_error(f, "  registration: {max_bytes: 10}\n",
                        "engine.registration.max_bytes: 10 out of range");
    expect_engine_error(f, "  registration: {timeout_s: 1.5}\n",
                        "engine.registration.timeout_s: must be an integer");
    expect_engine_error(f, "  chain_inflight_mb: 0\n", "engine.chain_inflight_mb");
    expect_engine_error(f, "  inflight_mb: 0\n", "engine.inflight_mb");
    expect_engine_error(f, "  max_call_mb: 4097\n", "engine.max_call_mb");
    expect_engine_error(f, "  max_call_result_mb: 0\n", "engine.max_call_result_mb");
}

static void test_registration_limits(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    assert_int_equal(cm_config_load(NULL, "/x", &cfg, &err), 0);
    assert_int_equal(cfg.registration.timeout_s, 30);
    assert_int_equal(cfg.registration.max_bytes, 32u << 20);
    assert_int_equal(cfg.registration.max_tools, 2000);
    assert_int_equal(cfg.registration.max_schema_bytes, 64u << 20);
    cm_config_free(&cfg);
    const char *path = write_config(f, "r.yaml",
                                    "engine:\n  registration:\n    timeout_s: 5\n"
                                    "    max_tools: 7\n");
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), 0);
    assert_int_equal(cfg.registration.timeout_s, 5);
    assert_int_equal(cfg.registration.max_tools, 7);
    assert_int_equal(cfg.registration.max_bytes, 32u << 20); /* unset keys keep defaults */
    cm_config_free(&cfg);
}

static void test_manual_template_validation(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(f, "m.yaml",
                                    "manual_call_templates:\n"
                                    "  - {name: a, call_template_type: http}\n"
                                    "  - {name: b, call_template_type: cli}\n"
                                    "  - {call_template_type: cli}\n");
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "manual_call_templates[2].name: missing"));
}

static void test_dotenv_loader_validation(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(f, "l.yaml",
                                    "load_variables_from:\n"
                                    "  - variable_loader_type: vault\n"
                                    "    env_file_path: .env\n");
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "load_variables_from[0].variable_loader_type"));
    path = write_config(f, "l2.yaml", "load_variables_from:\n  - variable_loader_type: dotenv\n");
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "load_variables_from[0].env_file_path: missing"));
}

static void test_yaml_syntax_error_line(void **state)
{
    (void)state;
    static const char doc[] = "a: 1\nb: [1, 2\nc: 3\n";
    cJSON *j = NULL;
    cm_error err = {0};
    assert_int_equal(cm_yaml_to_json(doc, strlen(doc), &j, &err), -1);
    assert_null(j);
    assert_non_null(strstr(err.message, "line "));
    static const char doc2[] = "a: 1\nb:\n  c: 2\n   d: 3\n";
    assert_int_equal(cm_yaml_to_json(doc2, strlen(doc2), &j, &err), -1);
    assert_non_null(strstr(err.message, "line 4:"));
}

static void test_duplicate_key_and_multi_doc(void **state)
{
    (void)state;
    cJSON *j = NULL;
    cm_error err = {0};
    static const char dup[] = "a: 1\nb: 2\na: 3\n";
    assert_int_equal(cm_yaml_to_json(dup, strlen(dup), &j, &err), -1);
    assert_non_null(strstr(err.message, "line 3:"));
    assert_non_null(strstr(err.message, "duplicate key 'a'"));
    static const char multi[] = "a: 1\n---\nb: 2\n";
    assert_int_equal(cm_yaml_to_json(multi, strlen(multi), &j, &err), -1);
    assert_non_null(strstr(err.message, "more than one YAML document"));
}

static void test_alias_copied(void **state)
{
    (void)state;
    static const char doc[] = "base: &b {x: 1, y: [a, b]}\ncopy: *b\n";
    cJSON *j = NULL;
    cm_error err = {0};
    assert_int_equal(cm_yaml_to_json(doc, strlen(doc), &j, &err), 0);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(j, "base"), cJSON_GetObjectItem(j, "copy"), 1));
    cJSON_Delete(j);
}

static void test_alias_bomb_capped(void **state)
{
    (void)state;
    static const char doc[] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                              "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                              "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                              "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                              "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                              "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                              "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                              "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    cJSON *j = NULL;
    cm_error err = {0};
    assert_int_equal(cm_yaml_to_json(doc, strlen(doc), &j, &err), -1);
    assert_null(j);
    assert_non_null(strstr(err.message, "alias bomb"));
}

static void test_depth_capped(void **state)
{
    (void)state;
    char doc[1024];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        doc[n++] = '[';
    for (int i = 0; i < 200; i++)
        doc[n++] = ']';
    doc[n] = '\0';
    cJSON *j = NULL;
    cm_error err = {0};
    assert_int_equal(cm_yaml_to_json(doc, n, &j, &err), -1);
    assert_non_null(strstr(err.message, "nesting"));
}

static void test_json_or_yaml(void **state)
{
    (void)state;
    cJSON *j = NULL;
    cm_error err = {0};
    assert_int_equal(cm_parse_json_or_yaml("{\"a\": [1]}  \n", 13, "x", &j, &err), 0);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "a"), 0)->valueint, 1);
    cJSON_Delete(j);
    assert_int_equal(cm_parse_json_or_yaml("a: b\n", 5, "x", &j, &err), 0);
    assert_string_equal(cm_json_str(j, "a"), "b");
    cJSON_Delete(j);
    assert_int_equal(cm_parse_json_or_yaml("a: [\n", 5, "manual", &j, &err), -1);
    assert_non_null(strstr(err.message, "manual"));
    assert_non_null(strstr(err.message, "line "));
}

static void test_top_level_not_object(void **state)
{
    fixture *f = *state;
    cm_config cfg;
    cm_error err = {0};
    const char *path = write_config(f, "list.yaml", "- 1\n- 2\n");
    assert_int_equal(cm_config_load(path, "/x", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "top level must be an object"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_yaml_full_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_full_config, setup, teardown),
        cmocka_unit_test(test_defaults_without_file),
        cmocka_unit_test_setup_teardown(test_json_syntax_error_position, setup, teardown),
        cmocka_unit_test(test_scalar_types),
        cmocka_unit_test_setup_teardown(test_unknown_top_level_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_engine_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manual_template_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_loader_validation, setup, teardown),
        cmocka_unit_test(test_yaml_syntax_error_line),
        cmocka_unit_test(test_duplicate_key_and_multi_doc),
        cmocka_unit_test(test_alias_copied),
        cmocka_unit_test(test_alias_bomb_capped),
        cmocka_unit_test(test_depth_capped),
        cmocka_unit_test(test_json_or_yaml),
        cmocka_unit_test_setup_teardown(test_top_level_not_object, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
