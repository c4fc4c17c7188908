/* test_providers_pure.c — unit tests of the providers' pure functions: http
 * argument mapping (path templating, query encoding, headers, bodies), URL
 * checks, OpenAPI conversion ($ref depth and cycles, security → auth,
 * Swagger 2 base URL) and MCP result mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "http.h"
#include "http_client.h"
#include "mcp.h"
#include "openapi.h"
#include "util.h"

static cJSON *J(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    return j;
}

static const char *header(const struct curl_slist *h, const char *prefix)
{
    for (; h; h = h->next)
        if (!strncmp(h->data, prefix, strlen(prefix)))
            return h->data;
    return NULL;
}

static void test_map_path_query_headers_body(void **state)
{
    (void)state;
    cm_autojson cJSON *t = J("{\"url\":\"http://127.0.0.1:1/u/{id}/x?fixed=1\","
                             "\"headers\":{\"X-S\":\"s\"},\"header_fields\":[\"X-T\"],"
                             "\"body_field\":\"payload\"}");
    cm_autojson cJSON *a = J("{\"id\":\"a b/c\",\"X-T\":\"t\",\"payload\":{\"k\":[1]},"
                             "\"q\":\"v&w\",\"arr\":[1,\"x\"],\"obj\":{\"o\":1},\"n\":null}");
    cm_http_mapped m;
    cm_error err;
    assert_int_equal(cm_http_map_args(t, a, &m, &err), 0);
    assert_string_equal(m.url, "http://127.0.0.1:1/u/a%20b%2Fc/x?fixed=1&q=v%26w&arr=1&arr=x&"
                               "obj=%7B%22o%22%3A1%7D");
    assert_string_equal(m.body, "{\"k\":[1]}");
    assert_non_null(header(m.headers, "X-S: s"));
    assert_non_null(header(m.headers, "X-T: t"));
    assert_non_null(header(m.headers, "Content-Type: application/json"));
    cm_http_mapped_free(&m);
}

static void test_map_missing_path_param(void **state)
{
    (void)state;
    cm_autojson cJSON *t = J("{\"url\":\"http://127.0.0.1/u/{id}\"}");
    cm_http_mapped m;
    cm_error err;
    assert_int_equal(cm_http_map_args(t, NULL, &m, &err), -1);
    assert_non_null(strstr(err.message, "missing path parameter 'id'"));
}

static void test_map_rejects_crlf_headers(void **state)
{
    (void)state;
    cm_autojson cJSON *t = J("{\"url\":\"http://127.0.0.1/\",\"header_fields\":[\"X\\r\\nEvil\"]}");
    cm_autojson cJSON *a = J("{\"X\\r\\nEvil\":\"v\"}");
    cm_http_mapped m;
    cm_error err;
    assert_int_equal(cm_http_map_args(t, a, &m, &err), -1);
    cm_autojson cJSON *t2 =
        J("{\"url\":\"http://127.0.0.1/\",\"headers\":{\"X\":\"a\\r\\nB: c\"}}");
    assert_int_equal(cm_http_map_args(t2, NULL, &m, &err), -1);
    assert_non_null(strstr(err.message, "CR/LF"));
}

static void test_map_form_body(void **state)
{
    (void)state;
    cm_autojson cJSON *t = J("{\"url\":\"http://127.0.0.1/\","
                             "\"content_type\":\"application/x-www-form-urlencoded\"}");
    cm_autojson cJSON *a = J("{\"body\":{\"a\":1,\"b\":\"x y\"}}");
    cm_http_mapped m;
    cm_error err;
    assert_int_equal(cm_http_map_args(t, a, &m, &err), 0);
    assert_string_equal(m.body, "a=1&b=x%20y");
    cm_http_mapped_free(&m);
}

static void test_url_checks(void **state)
{
    (void)state;
    cm_error err;
    assert_int_equal(cm_http_check_url("https://example.com/x", &err), 0);
    assert_int_equal(cm_http_check_url("http://127.0.0.1:8/x", &err), 0);
    assert_int_equal(cm_http_check_url("http://localhost/x", &err), 0);
    assert_int_equal(cm_http_check_url("http://[::1]:80/", &err), 0);
    assert_int_equal(cm_http_check_url("http://example.com/", &err), -1);
    assert_int_equal(err.kind, CM_ERR_POLICY_DENIED);
    assert_int_equal(cm_http_check_url("http://127.0.0.1.evil.com/", &err), -1);
    assert_int_equal(cm_http_check_url("file:///etc/passwd", &err), -1);
    assert_int_equal(cm_http_check_url("gopher://127.0.0.1/", &err), -1);
    assert_true(cm_http_is_json_type("application/problem+json; charset=utf-8"));
    assert_false(cm_http_is_json_type("text/plain; note=json"));
}

static void test_openapi_refs_cycles_security(void **state)
{
    (void)state;
    cm_autojson cJSON *doc =
        J("{\"openapi\":\"3.1.0\",\"info\":{\"version\":\"9\"},"
          "\"components\":{\"securitySchemes\":{\"b\":{\"type\":\"http\",\"scheme\":\"bearer\"},"
          "\"o\":{\"type\":\"oauth2\",\"flows\":{\"clientCredentials\":{\"tokenUrl\":"
          "\"https://a/t\"}}}},"
          "\"schemas\":{\"Node\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":"
          "\"#/components/schemas/Node\"},\"deep\":{\"$ref\":\"#/components/schemas/A\"}}},"
          "\"A\":{\"$ref\":\"#/components/schemas/B\"},\"B\":{\"type\":\"string\"}}},"
          "\"paths\":{\"/n/{id}\":{\"put\":{\"security\":[{\"o\":[]}],"
          "\"parameters\":[{\"name\":\"id\",\"in\":\"path\",\"schema\":{\"type\":\"integer\"}},"
          "{\"name\":\"X-Req\",\"in\":\"header\",\"required\":true}],"
          "\"requestBody\":{\"content\":{\"application/json\":{\"schema\":{\"$ref\":"
          "\"#/components/schemas/Node\"}}}}},"
          "\"get\":{\"operationId\":\"getN\",\"security\":[{\"b\":[]}]}}}}");
    cm_autojson cJSON *m = NULL;
    cm_error err;
    assert_int_equal(
        cm_openapi_to_manual(doc, "http://127.0.0.1:9/spec/openapi.json", NULL, &m, &err), 0);
    assert_string_equal(cm_json_str(m, "manual_version"), "9");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(m, "tools");
    assert_int_equal(cJSON_GetArraySize(tools), 2);
    const cJSON *get = cJSON_GetArrayItem(tools, 0), *put = cJSON_GetArrayItem(tools, 1);
    assert_string_equal(cm_json_str(put, "name"), "put_n_id");
    assert_string_equal(cm_json_str(get, "name"), "getN");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(put, "inputs");
    assert_string_equal(cm_json_str(in, "type"), "object");
    cm_autofree char *req = cm_json_print(cJSON_GetObjectItemCaseSensitive(in, "required"));
    assert_string_equal(req, "[\"id\",\"X-Req\"]");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(in, "properties"), "body");
    /* $refs become #/$defs/<Name>, each definition once in inputs.$defs;
     * the self-reference stays a reference, the two-level one a chain */
    assert_string_equal(cm_json_str(body, "$ref"), "#/$defs/Node");
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(in, "$defs");
    assert_int_equal(cJSON_GetArraySize(defs), 3);
    const cJSON *bp = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(defs, "Node"), "properties");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(bp, "next"), "$ref"),
                        "#/$defs/Node");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(bp, "deep"), "$ref"),
                        "#/$defs/A");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(defs, "A"), "$ref"),
                        "#/$defs/B");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(defs, "B"), "type"), "string");
    /* outputs: none here, and no $defs where nothing is referenced */
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(put, "outputs"),
                                                 "$defs"));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(put, "tool_call_template");
    /* no servers: the document's origin is the base URL */
    assert_string_equal(cm_json_str(t, "url"), "http://127.0.0.1:9/n/{id}");
    assert_string_equal(cm_json_str(t, "http_method"), "PUT");
    const cJSON *hf = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "header_fields"), 0);
    assert_true(cJSON_IsString(hf));
    assert_string_equal(hf->valuestring, "X-Req");
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(t, "auth");
    assert_string_equal(cm_json_str(auth, "auth_type"), "oauth2");
    assert_string_equal(cm_json_str(auth, "client_id"), "${CLIENT_ID_2}");
    const cJSON *gauth = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(get, "tool_call_template"), "auth");
    assert_string_equal(cm_json_str(gauth, "api_key"), "Bearer ${API_KEY_1}");
    assert_string_equal(cm_json_str(gauth, "var_name"), "Authorization");
}

/* {"openapi":..,"components":{"schemas":{"S0":{type:string},"Si":{a:Si-1,b:Si-1}}},
 * one operation returning S<levels-1>: inlined, that is 2^levels copies. */
static cJSON *exponential_spec(int levels)
{
    cJSON *doc = J("{\"openapi\":\"3.0.0\",\"servers\":[{\"url\":\"https://x\"}],"
                   "\"components\":{\"schemas\":{\"S0\":{\"type\":\"string\"}}}}");
    cJSON *schemas = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "components"), "schemas");
    char ref[64], name[16];
    for (int i = 1; i < levels; i++) {
        snprintf(ref, sizeof ref, "#/components/schemas/S%d", i - 1);
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "type", "object");
        cJSON *props = cJSON_AddObjectToObject(s, "properties");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(props, "a"), "$ref", ref);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(props, "b"), "$ref", ref);
        snprintf(name, sizeof name, "S%d", i);
        cJSON_AddItemToObject(schemas, name, s);
    }
    snprintf(ref, sizeof ref, "{\"$ref\":\"#/components/schemas/S%d\"}", levels - 1);
    cJSON *op = J("{\"operationId\":\"get\",\"responses\":{\"200\":{\"content\":{"
                  "\"application/json\":{}}}}}");
    cJSON *media = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(op, "responses"),
                                             "200"),
            "content"),
        "application/json");
    cJSON_AddItemToObject(media, "schema", J(ref));
    cJSON *paths = cJSON_AddObjectToObject(doc, "paths");
    cJSON_AddItemToObject(cJSON_AddObjectToObject(paths, "/x"), "post", op);
    return doc;
}

static void test_openapi_bounded_refs(void **state)
{
    (void)state;
    cm_autojson cJSON *doc = exponential_spec(40);
    cm_autojson cJSON *m = NULL;
    cm_error err;
    assert_int_equal(cm_openapi_to_manual(doc, NULL, NULL, &m, &err), 0);
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "tools"), 0), "outputs");
    assert_string_equal(cm_json_str(out, "$ref"), "#/$defs/S39");
    /* 40 definitions, each once: linear, not 2^40 */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(out, "$defs")), 40);
    cm_autofree char *text = cm_json_print(m);
    assert_true(strlen(text) < 20000);

    /* a schema budget too small is a refusal naming the key */
    cm_reg_limits lim = {.max_schema_bytes = 2048};
    cm_call_ctx ctx = {.reg = &lim};
    cJSON *m2 = NULL;
    assert_int_equal(cm_openapi_to_manual(doc, NULL, &ctx, &m2, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "engine.registration.max_schema_bytes"));
    assert_null(m2);
    /* and so is a document with more operations than max_tools */
    lim = (cm_reg_limits){.max_tools = 1};
    cJSON_AddItemToObject(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "paths"), "/x"),
        "get", J("{}"));
    assert_int_equal(cm_openapi_to_manual(doc, NULL, &ctx, &m2, &err), -1);
    assert_non_null(
        strstr(err.message, "has 2 operations, over engine.registration.max_tools (1)"));

    /* same last segment, two pointers: two names; external refs never followed */
    cm_autojson cJSON *d2 =
        J("{\"swagger\":\"2.0\",\"host\":\"h\",\"definitions\":{\"X\":{\"type\":\"integer\"}},"
          "\"x\":{\"X\":{\"type\":\"string\"}},"
          "\"paths\":{\"/y\":{\"get\":{\"parameters\":["
          "{\"name\":\"p\",\"in\":\"body\",\"schema\":{\"properties\":{"
          "\"a\":{\"$ref\":\"#/definitions/X\"},\"b\":{\"$ref\":\"#/x/X\"},"
          "\"c\":{\"$ref\":\"other.json#/X\"},\"d\":{\"$ref\":\"#/nope\"}}}}]}}}}");
    cm_autojson cJSON *m3 = NULL;
    assert_int_equal(cm_openapi_to_manual(d2, NULL, NULL, &m3, &err), 0);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m3, "tools"), 0), "inputs");
    const cJSON *bp = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in, "properties"),
                                         "body"),
        "properties");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(bp, "a"), "$ref"),
                        "#/$defs/X");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(bp, "b"), "$ref"),
                        "#/$defs/X_2");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(bp, "c"), "x-ref"),
                        "other.json#/X");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(bp, "d"), "description"),
                        "unresolved reference");
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(in, "$defs");
    assert_string_equal(cm_json_str(cJSON_GetObjectItemCaseSensitive(defs, "X_2"), "type"),
                        "string");
}

static void test_swagger2_base_url(void **state)
{
    (void)state;
    cm_autojson cJSON *doc = J("{\"swagger\":\"2.0\",\"host\":\"api.example.com\","
                               "\"basePath\":\"/v1\",\"schemes\":[\"https\"],"
                               "\"paths\":{\"/x\":{\"post\":{\"parameters\":[{\"in\":\"body\","
                               "\"name\":\"b\",\"required\":true,\"schema\":{\"type\":"
                               "\"object\"}}]}}}}");
    cm_autojson cJSON *m = NULL;
    cm_error err;
    assert_int_equal(cm_openapi_to_manual(doc, NULL, NULL, &m, &err), 0);
    const cJSON *tool = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "tools"), 0);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(tool, "tool_call_template");
    assert_string_equal(cm_json_str(t, "url"), "https://api.example.com/v1/x");
    assert_string_equal(cm_json_str(t, "body_field"), "body");
    /* detection is explicit */
    cm_autojson cJSON *other = J("{\"paths\":{}}");
    assert_false(cm_openapi_detect(other));
    assert_int_equal(cm_openapi_to_manual(other, NULL, NULL, &m, &err), -1);
}

static void map(const char *result, int rc_expected, const char *expected)
{
    cm_autojson cJSON *r = J(result);
    cm_autojson cJSON *out = NULL;
    cm_error err;
    int rc = cm_mcp_map_result(r, &out, &err);
    assert_int_equal(rc, rc_expected);
    if (rc < 0) {
        assert_int_equal(err.kind, CM_ERR_TOOL_ERROR);
        assert_non_null(strstr(err.message, expected));
        return;
    }
    cm_autofree char *s = cm_json_print(out);
    assert_string_equal(s, expected);
}

static void test_mcp_result_mapping(void **state)
{
    (void)state;
    map("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":1}\"}],"
        "\"structuredContent\":{\"b\":2}}",
        0, "{\"b\":2}");
    map("{\"structuredContent\":{\"result\":[1,2]}}", 0, "[1,2]");
    map("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":1}\"}]}", 0, "{\"a\":1}");
    map("{\"content\":[{\"type\":\"text\",\"text\":\"42\"}]}", 0, "42");
    map("{\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]}", 0, "\"hello\"");
    map("{\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image\",\"data\":\"x\"}]}", 0,
        "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image\",\"data\":\"x\"}]");
    map("{\"content\":[]}", 0, "null");
    map("{\"isError\":true,\"content\":[{\"type\":\"text\",\"text\":\"boom\"}]}", -1, "boom");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_path_query_headers_body),
        cmocka_unit_test(test_map_missing_path_param),
        cmocka_unit_test(test_map_rejects_crlf_headers),
        cmocka_unit_test(test_map_form_body),
        cmocka_unit_test(test_url_checks),
        cmocka_unit_test(test_openapi_refs_cycles_security),
        cmocka_unit_test(test_swagger2_base_url),
        cmocka_unit_test(test_openapi_bounded_refs),
        cmocka_unit_test(test_mcp_result_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
