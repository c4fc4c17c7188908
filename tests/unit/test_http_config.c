/* test_http_config.c — unit tests for engine/http_config.c: the listen
 * address (loopback or refused without allow_remote; allow_remote needs
 * tokens), tokens stored as SHA-256 and found in constant time, the
 * anonymous identity, unknown keys, and the Host/Origin checks against DNS
 * rebinding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "http_int.h"
#include "util.h"

/* any well-formed digest (for the errors that are not about the digest) */
#define SECRET_SHA "a6b5b7b3b2b1a7a2d5c7fd6c8ee6f2a8a0b2d0c2c5a9de9fd54c46fb6a38c9c1"

static int load(const char *json, const char *listen, http_config *cfg, cm_error *err)
{
    cm_autojson cJSON *sec = json ? cJSON_Parse(json) : NULL;
    if (json)
        assert_non_null(sec);
    return cm_http_config_load(sec, listen, cfg, err);
}

static void test_loopback_only_by_default(void **state)
{
    (void)state;
    http_config cfg;
    cm_error err;
    assert_int_equal(load(NULL, "127.0.0.1:8765", &cfg, &err), 0);
    assert_true(cfg.loopback);
    cm_http_config_free(&cfg);
    assert_int_equal(load(NULL, "[::1]:0", &cfg, &err), 0);
    assert_true(cfg.loopback);
    cm_http_config_free(&cfg);
    assert_int_equal(load(NULL, "0.0.0.0:8765", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "engine.http.allow_remote"));
    cm_http_config_free(&cfg);
    assert_int_equal(load("{\"allow_remote\":true}", "0.0.0.0:8765", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "needs engine.http.tokens"));
    cm_http_config_free(&cfg);
    assert_int_equal(load(NULL, "example.com:80", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "IP address or localhost"));
    cm_http_config_free(&cfg);
    assert_int_equal(load(NULL, "127.0.0.1", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "HOST:PORT"));
    cm_http_config_free(&cfg);
    assert_int_equal(load("{}", NULL, &cfg, &err), -1);
    assert_non_null(strstr(err.message, "--http"));
    cm_http_config_free(&cfg);
}

static void test_tokens_are_hashes(void **state)
{
    (void)state;
    /* the digest of "secret-token", computed by the library itself */
    unsigned char d[32];
    char hex[65];
    SHA256((const unsigned char *)"secret-token", 12, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    char json[256];
    snprintf(json, sizeof json, "{\"tokens\":[{\"sha256\":\"%s\",\"uid\":1000,\"name\":\"ci\"}]}",
             hex);
    http_config cfg;
    cm_error err;
    assert_int_equal(load(json, "127.0.0.1:1", &cfg, &err), 0);
    const http_token *t = cm_http_token_find(&cfg, "secret-token");
    assert_non_null(t);
    assert_int_equal(t->who.uid, 1000);
    assert_int_equal(t->who.gid, 1000); /* gid defaults to the uid */
    assert_string_equal(t->name, "ci");
    assert_null(cm_http_token_find(&cfg, "secret-tokeN"));
    assert_null(cm_http_token_find(&cfg, hex)); /* the digest itself is no token */
    cm_http_config_free(&cfg);
    assert_int_equal(load("{\"tokens\":[{\"sha256\":\"secret-token\",\"uid\":1}]}", "127.0.0.1:1",
                          &cfg, &err),
                     -1);
    assert_non_null(strstr(err.message, "engine.http.tokens[0].sha256"));
    cm_http_config_free(&cfg);
    assert_int_equal(load("{\"tokens\":[{\"sha256\":\"" SECRET_SHA "\"}]}", "127.0.0.1:1", &cfg,
                          &err),
                     -1);
    assert_non_null(strstr(err.message, "uid: required"));
    cm_http_config_free(&cfg);
}

static void test_anonymous_and_unknown_keys(void **state)
{
    (void)state;
    http_config cfg;
    cm_error err;
    assert_int_equal(load("{\"anonymous\":true}", "127.0.0.1:1", &cfg, &err), 0);
    assert_true(cfg.anonymous);
    assert_int_equal(cfg.anon.uid, 65534);
    cm_http_config_free(&cfg);
    assert_int_equal(load("{\"anonymous\":{\"uid\":7,\"gid\":8}}", "127.0.0.1:1", &cfg, &err), 0);
    assert_int_equal(cfg.anon.uid, 7);
    assert_int_equal(cfg.anon.gid, 8);
    cm_http_config_free(&cfg);
    assert_int_equal(load("{\"tokenz\":[]}", "127.0.0.1:1", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "unknown key 'tokenz'"));
    cm_http_config_free(&cfg);
    assert_int_equal(load("{\"max_sessions\":0}", "127.0.0.1:1", &cfg, &err), -1);
    assert_non_null(strstr(err.message, "engine.http.max_sessions"));
    cm_http_config_free(&cfg);
}

static void test_host_and_origin(void **state)
{
    (void)state;
    http_config cfg;
    cm_error err;
    assert_int_equal(load("{\"allowed_hosts\":[\"mcp.internal:8765\"],"
                          "\"allowed_origins\":[\"https://app.example\"]}",
                          "127.0.0.1:8765", &cfg, &err),
                     0);
    assert_true(cm_http_host_ok(&cfg, "localhost:8765"));
    assert_true(cm_http_host_ok(&cfg, "127.0.0.1"));
    assert_true(cm_http_host_ok(&cfg, "[::1]:8765"));
    assert_true(cm_http_host_ok(&cfg, "mcp.internal:8765"));
    assert_false(cm_http_host_ok(&cfg, "evil.example.com"));
    assert_false(cm_http_host_ok(&cfg, "localhost.evil.com"));
    assert_false(cm_http_host_ok(&cfg, "127.0.0.1:80x"));
    assert_false(cm_http_host_ok(&cfg, NULL));
    assert_true(cm_http_origin_ok(&cfg, NULL));
    assert_true(cm_http_origin_ok(&cfg, "http://localhost:3000"));
    assert_true(cm_http_origin_ok(&cfg, "https://app.example"));
    assert_false(cm_http_origin_ok(&cfg, "http://evil.example.com"));
    assert_false(cm_http_origin_ok(&cfg, "null"));
    cm_http_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_only_by_default),
        cmocka_unit_test(test_tokens_are_hashes),
        cmocka_unit_test(test_anonymous_and_unknown_keys),
        cmocka_unit_test(test_host_and_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
