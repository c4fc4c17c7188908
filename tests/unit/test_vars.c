/* test_vars.c — unit tests for engine/vars.c: namespaced lookup order,
 * dotenv parsing, substitution rules and required-variable listing.  Real
 * files in a temp dir, real environment; no mocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "vars.h"

static char tmpdir[] = "/tmp/test_vars.XXXXXX";

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static cm_vars *make_vars(const char *variables_json, const char *loaders_json)
{
    cm_autojson cJSON *variables = variables_json ? cJSON_Parse(variables_json) : NULL;
    cm_autojson cJSON *loaders = loaders_json ? cJSON_Parse(loaders_json) : NULL;
    cm_vars *v = NULL;
    cm_error err = {0};
    int rc = cm_vars_new(&v, variables, loaders, tmpdir, &err);
    if (rc != 0)
        fail_msg("cm_vars_new: %s", err.message);
    return v;
}

/* Substitutes a JSON string value; returns the resulting string (caller frees). */
static char *subst(const cm_vars *v, const char *manual, const char *text, cm_error *err)
{
    cm_autojson cJSON *in = cJSON_CreateString(text);
    cm_autojson cJSON *out = NULL;
    if (cm_vars_substitute(v, manual, in, &out, err) < 0)
        return NULL;
    return cm_xstrdup(out->valuestring);
}

static void test_namespaced_precedence(void **state)
{
    (void)state;
    write_file("a.env", "TOKEN=from_dotenv\ngithub__api_ONLYDOT=ns_dot\nSHARED=dot\n");
    setenv("TEST_VARS_ENV_ONLY", "from_env", 1);
    setenv("github__api_ENVNS", "env_ns", 1);
    cm_vars *v =
        make_vars("{\"github__api_TOKEN\": \"ns_config\", \"SHARED\": \"config\","
                  " \"EMPTY\": \"\"}",
                  "[{\"variable_loader_type\": \"dotenv\", \"env_file_path\": \"a.env\"}]");
    /* namespaced key in config beats plain key in dotenv */
    assert_string_equal(cm_vars_lookup(v, "github_api", "TOKEN"), "ns_config");
    /* another manual: namespaced key absent → plain TOKEN from dotenv */
    assert_string_equal(cm_vars_lookup(v, "other", "TOKEN"), "from_dotenv");
    assert_string_equal(cm_vars_lookup(v, NULL, "TOKEN"), "from_dotenv");
    /* config source beats dotenv for the plain key */
    assert_string_equal(cm_vars_lookup(v, "github_api", "SHARED"), "config");
    assert_string_equal(cm_vars_lookup(v, "github_api", "ONLYDOT"), "ns_dot");
    assert_string_equal(cm_vars_lookup(v, "github_api", "TEST_VARS_ENV_ONLY"), "from_env");
    assert_string_equal(cm_vars_lookup(v, "github_api", "ENVNS"), "env_ns");
    assert_null(cm_vars_lookup(v, "gith_ubapi", "ENVNS"));
    /* empty = missing */
    assert_null(cm_vars_lookup(v, "github_api", "EMPTY"));
    assert_null(cm_vars_lookup(v, "github_api", "NOPE_NOT_SET"));
    /* environment is snapshotted at cm_vars_new */
    setenv("TEST_VARS_LATE", "late", 1);
    assert_null(cm_vars_lookup(v, NULL, "TEST_VARS_LATE"));
    cm_vars_free(v);
}

static void test_dotenv_parsing(void **state)
{
    (void)state;
    write_file("b.env", "# a comment\n"
                        "\n"
                        "PLAIN=hello world   \n"
                        "export EXPORTED=yes\n"
                        "  SPACED = padded  # trailing comment\n"
                        "SQ='single $quoted # not a comment'\n"
                        "DQ=\"line1\\nline2 \\\"q\\\" back\\\\slash\"\n"
                        "HASH=a#b\n"
                        "MULTI=\"first\n"
                        "second\"\n"
                        "EMPTYV=\n");
    cm_vars *v = make_vars(NULL, "[{\"variable_loader_type\": \"dotenv\","
                                 " \"env_file_path\": \"b.env\"}]");
    assert_string_equal(cm_vars_lookup(v, NULL, "PLAIN"), "hello world");
    assert_string_equal(cm_vars_lookup(v, NULL, "EXPORTED"), "yes");
    assert_string_equal(cm_vars_lookup(v, NULL, "SPACED"), "padded");
    assert_string_equal(cm_vars_lookup(v, NULL, "SQ"), "single $quoted # not a comment");
    assert_string_equal(cm_vars_lookup(v, NULL, "DQ"), "line1\nline2 \"q\" back\\slash");
    assert_string_equal(cm_vars_lookup(v, NULL, "HASH"), "a#b");
    assert_string_equal(cm_vars_lookup(v, NULL, "MULTI"), "first\nsecond");
    assert_null(cm_vars_lookup(v, NULL, "EMPTYV"));
    cm_vars_free(v);
}

static void test_dotenv_errors(void **state)
{
    (void)state;
    cm_vars *v = NULL;
    cm_error err = {0};
    cm_autojson cJSON *missing =
        cJSON_Parse("[{\"variable_loader_type\": \"dotenv\", \"env_file_path\": \"nope.env\"}]");
    assert_int_equal(cm_vars_new(&v, NULL, missing, tmpdir, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "nope.env"));

    write_file("bad.env", "GOOD=1\n\nthis line is wrong\n");
    cm_autojson cJSON *bad =
        cJSON_Parse("[{\"variable_loader_type\": \"dotenv\", \"env_file_path\": \"bad.env\"}]");
    assert_int_equal(cm_vars_new(&v, NULL, bad, tmpdir, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "bad.env:3"));

    write_file("unterminated.env", "A=\"open\n");
    cm_autojson cJSON *unterm = cJSON_Parse(
        "[{\"variable_loader_type\": \"dotenv\", \"env_file_path\": \"unterminated.env\"}]");
    assert_int_equal(cm_vars_new(&v, NULL, unterm, tmpdir, &err), -1);
    assert_non_null(strstr(err.message, "unterminated.env:1"));

    cm_autojson cJSON *badtype = cJSON_Parse("[{\"variable_loader_type\": \"vault\"}]");
    assert_int_equal(cm_vars_new(&v, NULL, badtype, tmpdir, &err), -1);
    assert_non_null(strstr(err.message, "load_variables_from[0]"));
}

static void test_substitution_rules(void **state)
{
    (void)state;
    write_file("c.env", "FROMDOT=dotval\n");
    cm_vars *v =
        make_vars("{\"my__tool_KEY\": \"secret\", \"NAME\": \"world\"}",
                  "[{\"variable_loader_type\": \"dotenv\", \"env_file_path\": \"c.env\"}]");
    cm_error err = {0};
    cm_autofree char *a = subst(v, "my_tool", "Bearer ${KEY}", &err);
    assert_non_null(a);
    assert_string_equal(a, "Bearer secret");
    cm_autofree char *b = subst(v, "my_tool", "hi $NAME and $UNKNOWN_BARE_VAR", &err);
    assert_string_equal(b, "hi world and $UNKNOWN_BARE_VAR");
    cm_autofree char *c = subst(v, "my_tool", "echo $CMD_0_OUTPUT ${CMD_12_OUTPUT} $$ $", &err);
    assert_string_equal(c, "echo $CMD_0_OUTPUT ${CMD_12_OUTPUT} $$ $");
    cm_autofree char *d = subst(v, "my_tool", "{\"$ref\": \"${KEY}\"}", &err);
    assert_string_equal(d, "{\"$ref\": \"${KEY}\"}");
    cm_autofree char *e = subst(v, "my_tool", "${NAME}${FROMDOT}", &err);
    assert_string_equal(e, "worlddotval");

    /* missing ${VAR}: error naming both keys and the sources */
    cm_autofree char *f = subst(v, "my_tool", "x ${MISSING_ONE}", &err);
    assert_null(f);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_string_equal(err.message,
                        "variable 'MISSING_ONE' is not set (looked up as 'my__tool_MISSING_ONE' "
                        "and 'MISSING_ONE' in config variables, c.env, environment)");

    /* deep: object keys untouched, values recursive, non-strings copied */
    cm_autojson cJSON *in = cJSON_Parse("{\"${NAME}\": {\"h\": [\"${KEY}\", 3, true, null]}}");
    cm_autojson cJSON *out = NULL;
    assert_int_equal(cm_vars_substitute(v, "my_tool", in, &out, &err), 0);
    cm_autofree char *s = cm_json_print(out);
    assert_string_equal(s, "{\"${NAME}\":{\"h\":[\"secret\",3,true,null]}}");
    /* input untouched */
    cm_autofree char *s_in = cm_json_print(in);
    assert_string_equal(s_in, "{\"${NAME}\":{\"h\":[\"${KEY}\",3,true,null]}}");
    cm_vars_free(v);
}

static void test_required_keys(void **state)
{
    (void)state;
    cm_autojson cJSON *tmpl =
        cJSON_Parse("{\"url\": \"https://x/${HOST}/${PATH_PART}\", \"headers\": {\"A\": "
                    "\"${TOKEN} $BARE ${HOST}\"}, \"cmd\": \"echo ${CMD_0_OUTPUT} $$\","
                    " \"schema\": \"$ref: #/${NOT_A_VAR}\", \"list\": [\"${TOKEN}\", "
                    "\"${LAST}\"]}");
    cm_autojson cJSON *names = cJSON_CreateArray();
    cJSON_AddItemToArray(names, cJSON_CreateString("PRE"));
    cm_vars_required(tmpl, names);
    cm_autofree char *s = cm_json_print(names);
    assert_string_equal(s, "[\"PRE\",\"HOST\",\"PATH_PART\",\"TOKEN\",\"LAST\"]");
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
        cmocka_unit_test(test_namespaced_precedence), cmocka_unit_test(test_dotenv_parsing),
        cmocka_unit_test(test_dotenv_errors),         cmocka_unit_test(test_substitution_rules),
        cmocka_unit_test(test_required_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
