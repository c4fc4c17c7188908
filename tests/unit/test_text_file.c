/* test_text_file.c — unit tests for the text and file providers
 * (providers/text_file.c) through the public dispatcher: manuals from JSON
 * and YAML content, relative file paths, error messages, tool calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "util.h"
#include "vars.h"

static char tmpdir[] = "/tmp/test_text_file.XXXXXX";

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static cm_call_ctx base_ctx(void)
{
    return (cm_call_ctx){.manual_name = "m", .base_dir = tmpdir, .max_output_bytes = 1 << 20};
}

static int discover(const cJSON *tmpl, cJSON **manual, cm_error *err)
{
    cm_call_ctx ctx = base_ctx();
    *manual = NULL;
    cm_error_clear(err);
    return cm_provider_discover(tmpl, &ctx, manual, err);
}

static const char *first_tool_name(const cJSON *manual)
{
    return cm_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(manual, "tools"), 0), "name");
}

static void test_text_manual_json(void **state)
{
    (void)state;
    cm_autojson cJSON *tmpl = cJSON_CreateObject();
    cJSON_AddStringToObject(tmpl, "name", "m");
    cJSON_AddStringToObject(tmpl, "call_template_type", "text");
    cJSON_AddStringToObject(tmpl, "content",
                            "{\"utcp_version\":\"1.0.0\",\"manual_version\":\"1.0.0\","
                            "\"tools\":[{\"name\":\"echo\",\"tool_call_template\":"
                            "{\"call_template_type\":\"text\",\"content\":\"hi\"}}]}");
    cm_autojson cJSON *manual = NULL;
    cm_error err = {0};
    assert_int_equal(discover(tmpl, &manual, &err), 0);
    assert_string_equal(first_tool_name(manual), "echo");
}

static void test_text_manual_yaml_and_object(void **state)
{
    (void)state;
    cm_autojson cJSON *tmpl = cJSON_CreateObject();
    cJSON_AddStringToObject(tmpl, "call_template_type", "text");
    cJSON_AddStringToObject(tmpl, "content",
                            "utcp_version: 1.0.0\n"
                            "tools:\n"
                            "  - name: from_yaml\n"
                            "    inputs: {type: object}\n"
                            "    tool_call_template:\n"
                            "      call_template_type: text\n"
                            "      content: hello\n");
    cm_autojson cJSON *manual = NULL;
    cm_error err = {0};
    if (discover(tmpl, &manual, &err) != 0)
        fail_msg("%s", err.message);
    assert_string_equal(first_tool_name(manual), "from_yaml");

    /* content already an object */
    cm_autojson cJSON *tmpl2 = cJSON_Parse("{\"call_template_type\":\"text\",\"content\":"
                                           "{\"tools\":[{\"name\":\"obj\"}]}}");
    cm_autojson cJSON *m2 = NULL;
    assert_int_equal(discover(tmpl2, &m2, &err), 0);
    assert_string_equal(first_tool_name(m2), "obj");
}

static void test_text_manual_errors(void **state)
{
    (void)state;
    cm_autojson cJSON *bad = cJSON_Parse("{\"call_template_type\":\"text\",\"content\":"
                                         "\"{ this: is: [not valid\"}");
    cm_autojson cJSON *manual = NULL;
    cm_error err = {0};
    assert_int_equal(discover(bad, &manual, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "text manual: content"));

    cm_autojson cJSON *notmanual =
        cJSON_Parse("{\"call_template_type\":\"text\",\"content\":\"just a sentence\"}");
    assert_int_equal(discover(notmanual, &manual, &err), -1);
    assert_non_null(strstr(err.message, "not a UTCP manual"));

    cm_autojson cJSON *missing = cJSON_Parse("{\"call_template_type\":\"text\"}");
    assert_int_equal(discover(missing, &manual, &err), -1);
    assert_non_null(strstr(err.message, "content"));
}

static void test_file_manual_relative(void **state)
{
    (void)state;
    write_file("manual.yaml", "tools:\n  - name: in_file\n");
    write_file("manual.json", "[{\"name\": \"listed\"}]");
    cm_autojson cJSON *tmpl =
        cJSON_Parse("{\"call_template_type\":\"file\",\"file_path\":\"manual.yaml\"}");
    cm_autojson cJSON *manual = NULL;
    cm_error err = {0};
    if (discover(tmpl, &manual, &err) != 0)
        fail_msg("%s", err.message);
    assert_string_equal(first_tool_name(manual), "in_file");

    /* a bare tool list is wrapped into a manual */
    cm_autojson cJSON *tmpl2 =
        cJSON_Parse("{\"call_template_type\":\"file\",\"file_path\":\"manual.json\"}");
    cm_autojson cJSON *m2 = NULL;
    assert_int_equal(discover(tmpl2, &m2, &err), 0);
    assert_string_equal(first_tool_name(m2), "listed");
    assert_non_null(cm_json_str(m2, "utcp_version"));
}

static void test_file_manual_missing(void **state)
{
    (void)state;
    cm_autojson cJSON *tmpl =
        cJSON_Parse("{\"call_template_type\":\"file\",\"file_path\":\"x.json\"}");
    cm_autojson cJSON *manual = NULL;
    cm_error err = {0};
    assert_int_equal(discover(tmpl, &manual, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    char want[600];
    snprintf(want, sizeof want, "file manual '%s/x.json': cannot open: No such file or directory",
             tmpdir);
    assert_string_equal(err.message, want);
}

static void test_tool_calls(void **state)
{
    (void)state;
    write_file("data.json", "{\"k\": [1, 2]}\n");
    write_file("plain.txt", "plain text\n");
    cm_call_ctx ctx = base_ctx();
    cm_error err = {0};
    struct {
        const char *tmpl, *want;
    } cases[] = {
        {"{\"call_template_type\":\"text\",\"content\":\"hello\"}", "\"hello\""},
        {"{\"call_template_type\":\"text\",\"content\":\"[1,2]\"}", "[1,2]"},
        {"{\"call_template_type\":\"text\",\"content\":{\"a\":true}}", "{\"a\":true}"},
        {"{\"call_template_type\":\"file\",\"file_path\":\"data.json\"}", "{\"k\":[1,2]}"},
        {"{\"call_template_type\":\"file\",\"file_path\":\"plain.txt\"}", "\"plain text\\n\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cm_autojson cJSON *tmpl = cJSON_Parse(cases[i].tmpl);
        cm_autojson cJSON *res = NULL;
        if (cm_provider_call(tmpl, NULL, &ctx, &res, &err) != 0)
            fail_msg("%s: %s", cases[i].tmpl, err.message);
        cm_autofree char *s = cm_json_print(res);
        assert_string_equal(s, cases[i].want);
    }
    cm_autojson cJSON *missing =
        cJSON_Parse("{\"call_template_type\":\"file\",\"file_path\":\"gone.txt\"}");
    cm_autojson cJSON *res = NULL;
    assert_int_equal(cm_provider_call(missing, NULL, &ctx, &res, &err), -1);
    assert_int_equal(err.kind, CM_ERR_TOOL_ERROR);
    assert_non_null(strstr(err.message, "gone.txt': cannot open"));
}

static void test_file_path_variable(void **state)
{
    (void)state;
    write_file("v.json", "{\"tools\": [{\"name\": \"via_var\"}]}");
    cm_autojson cJSON *variables = cJSON_Parse("{\"m_FILE\": \"v.json\"}");
    cm_vars *vars = NULL;
    cm_error err = {0};
    assert_int_equal(cm_vars_new(&vars, variables, NULL, tmpdir, &err), 0);
    cm_call_ctx ctx = base_ctx();
    ctx.vars = vars;
    cm_autojson cJSON *tmpl =
        cJSON_Parse("{\"call_template_type\":\"file\",\"file_path\":\"${FILE}\"}");
    cm_autojson cJSON *manual = NULL;
    int rc = cm_provider_discover(tmpl, &ctx, &manual, &err);
    cm_vars_free(vars);
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_string_equal(first_tool_name(manual), "via_var");
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_manual_json),
        cmocka_unit_test(test_text_manual_yaml_and_object),
        cmocka_unit_test(test_text_manual_errors),
        cmocka_unit_test(test_file_manual_relative),
        cmocka_unit_test(test_file_manual_missing),
        cmocka_unit_test(test_tool_calls),
        cmocka_unit_test(test_file_path_variable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
