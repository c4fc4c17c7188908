/* test_jsonschema.c — unit tests for core/jsonschema.c: the argument check
 * a tool call passes before policy and provider (required, type, enum,
 * additionalProperties, nested objects and arrays, $ref, anyOf), its
 * messages, the signature and the nearest-name helper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"
#include "util.h"

static const char *SCHEMA = "{\"type\":\"object\",\"additionalProperties\":false,"
                            "\"required\":[\"text\"],"
                            "\"properties\":{"
                            " \"text\":{\"type\":\"string\"},"
                            " \"limit\":{\"type\":\"integer\"},"
                            " \"mode\":{\"enum\":[\"fast\",\"slow\"]},"
                            " \"ratio\":{\"type\":[\"number\",\"null\"]},"
                            " \"filter\":{\"type\":\"object\",\"required\":[\"name\"],"
                            "   \"properties\":{\"name\":{\"type\":\"string\"}}},"
                            " \"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
                            " \"owner\":{\"$ref\":\"#/$defs/User\"},"
                            " \"id\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}"
                            "},"
                            "\"$defs\":{\"User\":{\"type\":\"object\",\"required\":[\"login\"],"
                            "  \"properties\":{\"login\":{\"type\":\"string\"}}}}}";

/* 0 or -1, with the message in msg. */
static int check(const char *schema, const char *args, char *msg, size_t cap)
{
    cm_autojson cJSON *s = cJSON_Parse(schema);
    cm_autojson cJSON *a = cJSON_Parse(args);
    assert_non_null(s);
    assert_non_null(a);
    cm_error err = {0};
    int rc = cm_schema_check_args(s, a, &err);
    if (rc < 0)
        assert_int_equal(err.kind, CM_ERR_INVALID_ARGUMENTS);
    snprintf(msg, cap, "%s", rc < 0 ? err.message : "");
    return rc;
}

static void expect_fail(const char *args, const char *needle)
{
    char msg[1024];
    if (check(SCHEMA, args, msg, sizeof msg) == 0)
        fail_msg("%s: accepted", args);
    if (!strstr(msg, needle))
        fail_msg("%s: message '%s' lacks '%s'", args, msg, needle);
}

static void expect_ok(const char *args)
{
    char msg[1024];
    if (check(SCHEMA, args, msg, sizeof msg) < 0)
        fail_msg("%s: refused: %s", args, msg);
}

static void test_valid_calls(void **state)
{
    (void)state;
    expect_ok("{\"text\":\"a b\"}");
    expect_ok("{\"text\":\"a\",\"limit\":3,\"mode\":\"fast\",\"ratio\":null}");
    expect_ok("{\"text\":\"a\",\"limit\":3.0,\"ratio\":0.5}"); /* 3.0 is an integer */
    expect_ok("{\"text\":\"a\",\"filter\":{\"name\":\"x\",\"extra\":1}}");
    expect_ok("{\"text\":\"a\",\"tags\":[],\"owner\":{\"login\":\"me\"},\"id\":7}");
    expect_ok("{\"text\":\"a\",\"id\":\"abc\"}");
}

static void test_required(void **state)
{
    (void)state;
    expect_fail("{}", "missing required argument `text` (string)");
    expect_fail("{\"text\":\"a\",\"filter\":{}}", "missing required argument `filter.name`");
    expect_fail("{\"text\":\"a\",\"owner\":{}}", "missing required argument `owner.login`");
}

static void test_types(void **state)
{
    (void)state;
    expect_fail("{\"text\":5}", "argument `text` must be string, got integer");
    expect_fail("{\"text\":\"a\",\"limit\":2.5}", "argument `limit` must be integer, got number");
    expect_fail("{\"text\":\"a\",\"limit\":\"3\"}", "must be integer, got string");
    expect_fail("{\"text\":\"a\",\"ratio\":\"x\"}", "must be number or null");
    expect_fail("{\"text\":\"a\",\"tags\":[\"x\",2]}", "argument `tags[1]` must be string");
    expect_fail("{\"text\":\"a\",\"filter\":[]}", "argument `filter` must be object, got array");
    expect_fail("{\"text\":\"a\",\"id\":true}", "argument `id` matches none of: string | integer");
}

static void test_enum_and_additional(void **state)
{
    (void)state;
    expect_fail("{\"text\":\"a\",\"mode\":\"medium\"}",
                "argument `mode` must be one of \"fast\", \"slow\"");
    expect_fail("{\"txt\":\"a\",\"text\":\"b\"}",
                "unexpected argument `txt` (did you mean `text`?)");
    expect_fail("{\"text\":\"a\",\"zzzzzzzz\":1}", "unexpected argument `zzzzzzzz`");
}

static void test_lenient(void **state)
{
    (void)state;
    char msg[1024];
    /* no schema, true, unknown keywords and types, unresolvable refs: accepted */
    assert_int_equal(check("{}", "{\"a\":1}", msg, sizeof msg), 0);
    assert_int_equal(check("true", "{\"a\":1}", msg, sizeof msg), 0);
    assert_int_equal(check("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"file\"}}}",
                           "{\"a\":1}", msg, sizeof msg),
                     0);
    assert_int_equal(
        check("{\"properties\":{\"a\":{\"$ref\":\"#/nowhere\"}}}", "{\"a\":1}", msg, sizeof msg),
        0);
    assert_int_equal(check("{\"properties\":{\"a\":{\"type\":\"string\",\"nullable\":true}}}",
                           "{\"a\":null}", msg, sizeof msg),
                     0);
    /* a reference cycle ends */
    assert_int_equal(check("{\"$defs\":{\"A\":{\"$ref\":\"#/$defs/A\"}},\"$ref\":\"#/$defs/A\"}",
                           "{\"a\":1}", msg, sizeof msg),
                     0);
    /* additionalProperties as a schema */
    assert_int_equal(check("{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":\"x\"}",
                           msg, sizeof msg),
                     -1);
    assert_non_null(strstr(msg, "argument `a` must be integer"));
}

static void test_signature(void **state)
{
    (void)state;
    cm_autojson cJSON *s = cJSON_Parse(SCHEMA);
    cm_autofree char *sig = cm_schema_signature("demo.word_count", s);
    assert_string_equal(sig, "demo.word_count(text: str, limit: int = None, mode: Literal[...] = "
                             "None, ratio: Any = None, filter: dict = None, tags: list = None, "
                             "owner: dict = None, id: Any = None)");
    cm_autofree char *none = cm_schema_signature("m.t", NULL);
    assert_string_equal(none, "m.t()");
}

static void test_nearest(void **state)
{
    (void)state;
    assert_int_equal(cm_edit_distance("word_cont", "word_count"), 1);
    assert_int_equal(cm_edit_distance("", "abc"), 3);
    const char *names[] = {"greet", "word_count", "reverse_lines", NULL};
    assert_string_equal(cm_nearest_name("word_cont", names), "word_count");
    assert_string_equal(cm_nearest_name("gret", names), "greet");
    assert_null(cm_nearest_name("xyzzy_frobnicate", names));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_calls), cmocka_unit_test(test_required),
        cmocka_unit_test(test_types),       cmocka_unit_test(test_enum_and_additional),
        cmocka_unit_test(test_lenient),     cmocka_unit_test(test_signature),
        cmocka_unit_test(test_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
