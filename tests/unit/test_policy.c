/* test_policy.c — unit tests of the policy engine (policies/): loading and
 * its line:column errors, tool decisions (first match, default deny, every
 * argument constraint, max_calls, rate), variables, limits resolution and
 * the HTTP egress checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "util.h"

static const char POLICY[] = "version: 1\n"
                             "manuals:\n"
                             "  gh: {variables: [TOKEN]}\n"
                             "profiles:\n"
                             "  default:\n"
                             "    limits: {timeout_s: 10, memory_mb: 128, cpu: {quota: 0.5, "
                             "shares: 256}, pids: 32, max_tool_calls: 7}\n"
                             "    tools:\n"
                             "      - name: read\n"
                             "        match: 'gh.get_*'\n"
                             "        allow: true\n"
                             "        max_calls: 2\n"
                             "        args:\n"
                             "          owner: {type: string, enum: [a, b], required: true}\n"
                             "          n: {type: integer, min: 1, max: 10}\n"
                             "          name: {pattern: '[a-z]+', max_length: 5}\n"
                             "          list: {type: array, max_length: 2}\n"
                             "          danger: {forbidden: true}\n"
                             "      - name: limited\n"
                             "        match: 'rate.*'\n"
                             "        allow: true\n"
                             "        rate: 0.001\n"
                             "        burst: 2\n"
                             "      - {name: no-gh, match: 'gh.*', allow: false}\n"
                             "    http:\n"
                             "      - {host: api.example.com}\n"
                             "      - {host: '*.example.org', ports: [8443], schemes: [https]}\n"
                             "      - {host: 10.1.0.0/16, schemes: [http], ports: [80]}\n";

static cm_policy *load(const char *text)
{
    cm_policy *p = NULL;
    cm_error err;
    if (cm_policy_parse(text, strlen(text), "p.yaml", &p, &err) < 0)
        fail_msg("load: %s", err.message);
    return p;
}

static void expect_load_error(const char *text, const char *want)
{
    cm_policy *p = NULL;
    cm_error err;
    assert_int_equal(cm_policy_parse(text, strlen(text), "p.yaml", &p, &err), -1);
    if (!strstr(err.message, want))
        fail_msg("error '%s' lacks '%s'", err.message, want);
}

static void test_load_errors(void **state)
{
    (void)state;
    expect_load_error("version: 2\nprofiles: {a: {}}\n", "p.yaml:1:1: version: must be 1");
    expect_load_error("version: 1\nprofiles:\n  a:\n    tools:\n      - {match: x}\n",
                      "missing key 'allow'");
    expect_load_error("version: 1\nprofiles:\n  a:\n    limitz: {}\n",
                      "p.yaml:4:5: profiles.a.limitz: unknown key");
    expect_load_error("version: 1\nprofiles:\n  a:\n    tools:\n      - match: x\n        allow: "
                      "true\n        args: {q: {pattern: '('}}\n",
                      "invalid regex");
    expect_load_error("version: 1\nprofiles:\n  a:\n    http: [{host: '10.0.0.0/33'}]\n",
                      "not a valid IP address or CIDR");
    expect_load_error("version: 1\nprofiles:\n  a: {}\n  b:\n    x: [\n", "p.yaml:");
    expect_load_error("version: 1\nprofiles:\n  a:\n    tools:\n      - {match: x, allow: false, "
                      "max_calls: 3}\n",
                      "allow: true rules only");
}

static void decide(cm_policy *p, cm_policy_calls *calls, const char *tool, const char *args,
                   cm_decision *d)
{
    cJSON *a = cJSON_Parse(args);
    assert_non_null(a);
    cm_policy_decide(p, cm_policy_find_profile(p, "default"), calls, tool, a, d, NULL);
    cJSON_Delete(a);
}

static void expect_deny(cm_policy *p, const char *tool, const char *args, const char *rule,
                        const char *reason)
{
    cm_decision d;
    decide(p, NULL, tool, args, &d);
    assert_false(d.allow);
    assert_string_equal(d.rule, rule);
    if (!strstr(d.reason, reason))
        fail_msg("reason '%s' lacks '%s'", d.reason, reason);
}

static void test_tool_rules(void **state)
{
    (void)state;
    cm_policy *p = load(POLICY);
    cm_decision d;
    decide(p, NULL, "gh.get_pr", "{\"owner\":\"a\",\"n\":3,\"name\":\"abc\"}", &d);
    assert_true(d.allow);
    assert_string_equal(d.rule, "read");
    expect_deny(p, "gh.get_pr", "{}", "read", "'owner' is required");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"c\"}", "read", "not in the allowed set");
    expect_deny(p, "gh.get_pr", "{\"owner\":1}", "read", "type string");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"n\":2.5}", "read", "type integer");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"n\":0}", "read", "minimum");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"n\":11}", "read", "maximum");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"name\":\"abc1\"}", "read", "pattern");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"name\":\"x abc\"}", "read", "pattern");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"name\":\"abcdef\"}", "read", "longer than 5");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"list\":[1,2,3]}", "read", "more than 2");
    expect_deny(p, "gh.get_pr", "{\"owner\":\"a\",\"danger\":null}", "read", "forbidden");
    expect_deny(p, "gh.delete_repo", "{}", "no-gh", "denies this tool");
    expect_deny(p, "other.tool", "{}", "default", "default deny");
    cm_policy_unref(p);
}

static void test_max_calls_and_rate(void **state)
{
    (void)state;
    cm_policy *p = load(POLICY);
    int counters[3] = {0};
    cm_policy_calls calls = {.per_rule = counters, .nrules = 3};
    cm_decision d;
    for (int i = 0; i < 2; i++) {
        decide(p, &calls, "gh.get_x", "{\"owner\":\"b\"}", &d);
        assert_true(d.allow);
    }
    decide(p, &calls, "gh.get_x", "{\"owner\":\"b\"}", &d);
    assert_false(d.allow);
    assert_non_null(strstr(d.reason, "max_calls"));
    /* burst 2, refill 0.001/s: the third immediate call is over the rate */
    for (int i = 0; i < 2; i++) {
        decide(p, NULL, "rate.x", "{}", &d);
        assert_true(d.allow);
    }
    decide(p, NULL, "rate.x", "{}", &d);
    assert_false(d.allow);
    assert_non_null(strstr(d.reason, "rate"));
    cm_policy_unref(p);
}

static void test_variables(void **state)
{
    (void)state;
    cm_policy *p = load(POLICY);
    cm_decision d;
    cJSON *names = cJSON_Parse("[\"TOKEN\"]");
    cm_policy_check_variables(p, "gh", NULL, names, &d);
    assert_true(d.allow);
    cJSON_AddItemToArray(names, cJSON_CreateString("OTHER"));
    cm_policy_check_variables(p, "gh", NULL, names, &d);
    assert_false(d.allow);
    assert_string_equal(d.rule, "manuals.gh.variables");
    cm_policy_check_variables(p, "unlisted", NULL, names, &d);
    assert_false(d.allow);
    cJSON_Delete(names);
    cm_policy_unref(p);
}

static void test_limits(void **state)
{
    (void)state;
    cm_policy *p = load(POLICY);
    const cm_policy_profile *prof = cm_policy_find_profile(p, "default");
    cm_limits base = {
        .timeout_s = 300, .max_tool_calls = 1000, .max_output_bytes = 100, .max_result_bytes = 200};
    cm_limits out;
    cm_error err;
    cJSON *clamped = cJSON_CreateArray();
    cJSON *req =
        cJSON_Parse("{\"timeout_s\": 60, \"max_tool_calls\": 3, \"max_output_bytes\": 500}");
    assert_int_equal(cm_policy_resolve_limits(prof, &base, req, &out, clamped, &err), 0);
    assert_true(out.timeout_s == 10);                        /* profile caps the request */
    assert_int_equal(out.max_tool_calls, 3);                 /* a request may ask for less */
    assert_int_equal(out.max_output_bytes, 100);             /* engine cap */
    assert_int_equal(out.memory_bytes, (uint64_t)128 << 20); /* memory_mb: 128 */
    assert_int_equal(out.pids_max, 32);
    assert_int_equal(out.cpu_shares, 256);
    assert_int_equal(out.cpu_quota_pct, 50); /* cpu: {quota: 0.5} */
    assert_int_equal(cJSON_GetArraySize(clamped), 2);
    cJSON_Delete(req);
    req = cJSON_Parse("{\"bogus\": 1}");
    assert_int_equal(cm_policy_resolve_limits(prof, &base, req, &out, clamped, &err), -1);
    assert_int_equal(err.kind, CM_ERR_INVALID_REQUEST);
    cJSON_Delete(req);
    cJSON_Delete(clamped);
    cm_policy_unref(p);
}

static void expect_egress(const cm_policy_profile *prof, const char *url, bool allow)
{
    cm_error err;
    int rc = cm_policy_check_egress(prof, url, &err);
    if ((rc == 0) != allow)
        fail_msg("%s: expected %s, got %s", url, allow ? "allow" : "deny",
                 rc == 0 ? "allow" : err.message);
    if (!allow)
        assert_int_equal(err.kind, CM_ERR_POLICY_DENIED);
}

static void test_egress(void **state)
{
    (void)state;
    cm_policy *p = load(POLICY);
    const cm_policy_profile *prof = cm_policy_find_profile(p, "default");
    expect_egress(prof, "https://api.example.com/v1", true);
    expect_egress(prof, "https://API.example.com:443/v1", true);
    expect_egress(prof, "http://api.example.com/", false);       /* scheme */
    expect_egress(prof, "https://api.example.com:8443/", false); /* default port only */
    expect_egress(prof, "https://x.example.org:8443/", true);
    expect_egress(prof, "https://example.org:8443/", false); /* *.domain: subdomains only */
    expect_egress(prof, "https://evil-example.org:8443/", false);
    expect_egress(prof, "http://10.1.2.3/", true); /* listed private range */
    expect_egress(prof, "http://10.2.0.1/", false);
    expect_egress(prof, "http://169.254.169.254/", false);
    expect_egress(prof, "https://[::1]/", false);
    expect_egress(prof, "gopher://api.example.com/", false);
    expect_egress(prof, "not a url", false);

    struct sockaddr_in a = {.sin_family = AF_INET};
    cm_error err;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(cm_policy_check_egress_addr(prof, (struct sockaddr *)&a, &err), -1);
    inet_pton(AF_INET, "10.1.9.9", &a.sin_addr);
    assert_int_equal(cm_policy_check_egress_addr(prof, (struct sockaddr *)&a, &err), 0);
    inet_pton(AF_INET, "93.184.216.34", &a.sin_addr);
    assert_int_equal(cm_policy_check_egress_addr(prof, (struct sockaddr *)&a, &err), 0);
    struct sockaddr_in6 b = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:192.168.1.1", &b.sin6_addr);
    assert_int_equal(cm_policy_check_egress_addr(prof, (struct sockaddr *)&b, &err), -1);
    inet_pton(AF_INET6, "fe80::1", &b.sin6_addr);
    assert_int_equal(cm_policy_check_egress_addr(prof, (struct sockaddr *)&b, &err), -1);
    cm_policy_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_tool_rules),
        cmocka_unit_test(test_max_calls_and_rate),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_egress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
