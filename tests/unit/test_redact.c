/* test_redact.c — unit tests for engine/redact.c (and cm_vars_used in
 * vars.c): which template values are collected, the encoded forms each is
 * found in, longest-match-first, values cut off at the end of a message,
 * short values left alone, and the result frame's value and error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "util.h"
#include "vars.h"

static cm_vars *vars_of(const char *json)
{
    cm_autojson cJSON *variables = cJSON_Parse(json);
    cm_vars *v = NULL;
    cm_error err;
    if (cm_vars_new(&v, variables, NULL, "/", &err) < 0)
        fail_msg("cm_vars_new: %s", err.message);
    return v;
}

static cm_redactor *redactor(cm_vars *v, const char *manual, const char *tmpl_json)
{
    cm_autojson cJSON *tmpl = cJSON_Parse(tmpl_json);
    assert_non_null(tmpl);
    return cm_redactor_for_call(v, manual, tmpl, NULL);
}

static void assert_redacts(const cm_redactor *r, const char *in, const char *want)
{
    cm_autofree char *out = cm_redact_string(r, in);
    if (!want) {
        assert_null(out);
        return;
    }
    assert_non_null(out);
    assert_string_equal(out, want);
}

static void test_collects_template_values(void **state)
{
    (void)state;
    cm_vars *v = vars_of("{\"TOKEN\":\"tok-secret-1\",\"api_KEY\":\"key-secret-2\","
                         "\"UNUSED\":\"unused-secret\",\"SHORT\":\"abc\"}");
    cm_redactor *r = redactor(v, "api",
                              "{\"url\":\"http://h/${TOKEN}\",\"headers\":{\"X\":\"$KEY\"},"
                              "\"c\":\"$$TOKEN ${SHORT} $CMD_0_OUTPUT\"}");
    assert_non_null(r);
    assert_redacts(r, "a tok-secret-1 b key-secret-2", "a [redacted:TOKEN] b [redacted:KEY]");
    assert_redacts(r, "unused-secret stays", NULL); /* not in this template */
    assert_redacts(r, "abc is too short to be one", NULL);
    cm_redactor_free(r);
    /* a template that substitutes nothing needs no redactor */
    assert_null(redactor(v, "api", "{\"url\":\"http://h/plain\",\"x\":\"$NOT_SET ${SHORT}\"}"));
    cm_vars_free(v);
}

static void test_encoded_forms(void **state)
{
    (void)state;
    cm_vars *v = vars_of("{\"S\":\"p@ss w/\\\"q\\\"+x\"}");
    cm_redactor *r = redactor(v, NULL, "{\"h\":\"${S}\"}");
    assert_non_null(r);
    assert_redacts(r, "raw p@ss w/\"q\"+x.", "raw [redacted:S].");
    assert_redacts(r, "json \"p@ss w/\\\"q\\\"+x\"", "json \"[redacted:S]\"");
    assert_redacts(r, "url p%40ss%20w%2F%22q%22%2Bx", "url [redacted:S]");
    assert_redacts(r, "lower p%40ss%20w%2f%22q%22%2bx", "lower [redacted:S]");
    assert_redacts(r, "form p%40ss+w%2F%22q%22%2Bx", "form [redacted:S]");
    cm_redactor_free(r);
    cm_vars_free(v);
}

static void test_base64_any_alignment(void **state)
{
    (void)state;
    cm_vars *v = vars_of("{\"PW\":\"correct-horse-battery\"}");
    cm_redactor *r = redactor(v, NULL, "{\"x\":\"${PW}\"}");
    /* base64("correct-horse-battery"), of "u:" + it and of "ab:" + it */
    const char *encs[] = {"Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5",
                          "dTpjb3JyZWN0LWhvcnNlLWJhdHRlcnk=", "YWI6Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5"};
    for (size_t i = 0; i < 3; i++) {
        cm_autofree char *out = cm_redact_string(r, encs[i]);
        assert_non_null(out);
        assert_non_null(strstr(out, "[redacted:PW]"));
    }
    cm_redactor_free(r);
    /* the exact Basic credential, even for a short password */
    cm_vars_free(v);
    v = vars_of("{\"PW\":\"hunter\"}");
    r = redactor(
        v, NULL,
        "{\"auth\":{\"auth_type\":\"basic\",\"username\":\"svc\",\"password\":\"${PW}\"}}");
    assert_redacts(r, "Basic c3ZjOmh1bnRlcg==", "Basic [redacted:PW]");
    cm_redactor_free(r);
    cm_vars_free(v);
}

static void test_longest_first_and_markers(void **state)
{
    (void)state;
    cm_vars *v = vars_of("{\"A\":\"secret\",\"B\":\"secret-longer\",\"C\":\"redacted\"}");
    cm_redactor *r = redactor(v, NULL, "{\"x\":\"${A}${B}${C}\"}");
    assert_redacts(r, "secret-longer secret", "[redacted:B] [redacted:A]");
    /* a marker is never re-scanned (C's value is inside it) */
    assert_redacts(r, "redacted secret", "[redacted:C] [redacted:A]");
    cm_redactor_free(r);
    cm_vars_free(v);
}

static void test_message_cut_at_end(void **state)
{
    (void)state;
    cm_vars *v = vars_of("{\"T\":\"0123456789abcdef\"}");
    cm_redactor *r = redactor(v, NULL, "{\"x\":\"${T}\"}");
    char msg[64] = "http GET http://h/0123456789abcdef/x: status 500: body 012345";
    cm_redact_message(r, msg, sizeof msg);
    assert_string_equal(msg, "http GET http://h/[redacted:T]/x: status 500: body [redacted:T]");
    char small[16] = "id 0123456789ab";
    cm_redact_message(r, small, sizeof small);
    assert_string_equal(small, "id [redacted:T]");
    char tiny[12] = "x 012345678";
    cm_redact_message(r, tiny, sizeof tiny); /* result truncated to fit, secret gone */
    assert_string_equal(tiny, "x [redacted");
    cm_redactor_free(r);
    cm_vars_free(v);
}

static void test_frame(void **state)
{
    (void)state;
    cm_vars *v = vars_of("{\"K\":\"frame-secret\"}");
    cm_redactor *r = redactor(v, NULL, "{\"x\":\"${K}\"}");
    cm_autojson cJSON *ok = cJSON_Parse(
        "{\"t\":\"result\",\"id\":1,\"ok\":true,\"value\":{\"echo\":[\"frame-secret\",1],"
        "\"frame-secret\":\"key too\"}}");
    cm_redact_frame(r, ok);
    cm_autofree char *a = cJSON_PrintUnformatted(ok);
    assert_string_equal(a, "{\"t\":\"result\",\"id\":1,\"ok\":true,\"value\":{\"echo\":[\"["
                           "redacted:K]\",1],\"[redacted:K]\":\"key too\"}}");
    cm_autojson cJSON *bad =
        cJSON_Parse("{\"t\":\"result\",\"id\":2,\"ok\":false,\"error\":{"
                    "\"kind\":\"tool_error\",\"message\":\"curl: frame-secret\"}}");
    cm_redact_frame(r, bad);
    assert_string_equal(cm_json_str(cJSON_GetObjectItem(bad, "error"), "message"),
                        "curl: [redacted:K]");
    assert_ptr_equal(cm_redact_frame(NULL, ok), ok); /* no redactor: untouched */
    cm_redactor_free(r);
    cm_vars_free(v);
}

static void test_public_variables_kept(void **state)
{
    (void)state;
    cm_vars *v = vars_of("{\"GREETING\":\"hello there\",\"TOKEN\":\"tok-secret-1\"}");
    cm_autojson cJSON *tmpl = cJSON_Parse("{\"c\":\"${GREETING} ${TOKEN}\"}");
    cm_autojson cJSON *pub = cJSON_Parse("[\"GREETING\"]");
    cm_redactor *r = cm_redactor_for_call(v, "m", tmpl, pub);
    assert_redacts(r, "hello there tok-secret-1", "hello there [redacted:TOKEN]");
    cm_redactor_free(r);
    cm_autojson cJSON *only = cJSON_Parse("{\"c\":\"${GREETING}\"}");
    assert_null(cm_redactor_for_call(v, "m", only, pub)); /* nothing left to redact */
    cm_vars_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collects_template_values),
        cmocka_unit_test(test_encoded_forms),
        cmocka_unit_test(test_base64_any_alignment),
        cmocka_unit_test(test_longest_first_and_markers),
        cmocka_unit_test(test_message_cut_at_end),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_public_variables_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
