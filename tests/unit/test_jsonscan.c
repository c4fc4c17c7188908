/* test_jsonscan.c — unit tests for the raw JSON scans (engine/jsonscan.c):
 * the exact text of a top-level member and \u0000 detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "jsonscan.h"

static void expect_span(const char *json, const char *key, const char *want)
{
    const char *start = NULL;
    size_t n = 0;
    bool found = cm_json_member_span(json, strlen(json), key, &start, &n);
    if (!want) {
        assert_false(found);
        return;
    }
    assert_true(found);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(start, want, n);
}

static void test_member_span(void **state)
{
    (void)state;
    expect_span("{\"jsonrpc\":\"2.0\",\"id\":12345678901234567890,\"method\":\"ping\"}", "id",
                "12345678901234567890");
    expect_span("{ \"id\" : -0 }", "id", "-0");
    expect_span("{\"params\":{\"id\":1,\"x\":[\"}\",{}]},\"id\":1E3}", "id", "1E3");
    expect_span("{\"a\":\"\\\"id\\\":5\",\"id\":\"s\"}", "id", "\"s\"");
    expect_span("{\"method\":\"ping\"}", "id", NULL);
    expect_span("{\"id\":1,\"id\":2}", "id", "1");
    expect_span("[1]", "id", NULL);
}

static void test_nul_escape(void **state)
{
    (void)state;
    const char *yes = "{\"code\":\"return 1\\u0000 garbage\"}";
    const char *no = "{\"code\":\"a \\\\u0000 is text\"}";
    assert_true(cm_json_has_nul_escape(yes, strlen(yes)));
    assert_false(cm_json_has_nul_escape(no, strlen(no)));
    const char *other = "{\"code\":\"\\u00001\"}";
    assert_true(cm_json_has_nul_escape(other, strlen(other)));
    const char *short_ = "{\"code\":\"\\u000\"}";
    assert_false(cm_json_has_nul_escape(short_, strlen(short_)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_span),
        cmocka_unit_test(test_nul_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
