/* test_mcp_oauth.c — unit tests of the MCP OAuth client's pure parts: the
 * Bearer challenge's auth-params (quoted, escaped, token values, another
 * scheme before it), base64url, the PKCE S256 challenge (RFC 7636 appendix
 * B's vector) and a private_key_jwt assertion that OpenSSL verifies with the
 * key's public half (ES256 in JOSE R||S form, RS256), plus the refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <string.h>

#include "mcp_oauth_int.h"
#include "oauth_crypto.h"
#include "util.h"

static void param(const char *h, const char *name, const char *want)
{
    char *got = cm_oauth_challenge_param(h, name);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_challenge_params(void **state)
{
    (void)state;
    const char *h = "Bearer error=\"insufficient_scope\", scope=\"mcp:basic mcp:write\", "
                    "resource_metadata=\"http://localhost:1/.well-known/oauth-protected-"
                    "resource/mcp\"";
    param(h, "scope", "mcp:basic mcp:write");
    param(h, "error", "insufficient_scope");
    param(h, "resource_metadata", "http://localhost:1/.well-known/oauth-protected-resource/mcp");
    param(h, "realm", NULL);
    param("Bearer realm=codemode,scope=\"a \\\"b\\\"\"", "realm", "codemode");
    param("Bearer realm=codemode,scope=\"a \\\"b\\\"\"", "scope", "a \"b\"");
    param("Basic realm=\"x\", Bearer scope=\"s\"", "scope", "s");
    param("Bearer scope=\"s\", Basic realm=\"x\"", "realm", NULL); /* another scheme's */
    param("Basic realm=\"x\"", "realm", NULL);
    param(NULL, "scope", NULL);
    param("Bearer", "scope", NULL);
}

static void test_b64url_and_pkce(void **state)
{
    (void)state;
    char *s = cm_oauth_b64url((const unsigned char *)"\xfb\xff\xfe", 3);
    assert_string_equal(s, "-__-");
    free(s);
    s = cm_oauth_b64((const unsigned char *)"ab", 2);
    assert_string_equal(s, "YWI=");
    free(s);
    /* RFC 7636 appendix B */
    s = cm_oauth_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_string_equal(s, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    free(s);
    char *a = cm_oauth_random(32), *b = cm_oauth_random(32);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static char *pem_of(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static unsigned char *b64url_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *t = cm_xmalloc(n + 4);
    for (size_t i = 0; i < n; i++)
        t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (n % 4)
        t[n++] = '=';
    t[n] = '\0';
    unsigned char *out = cm_xmalloc(n);
    int r = EVP_DecodeBlock(out, (unsigned char *)t, (int)n);
    assert_true(r >= 0);
    *len = (size_t)r - (t[n - 1] == '=') - (t[n - 2] == '=');
    free(t);
    return out;
}

/* Signs claims with k, checks the header, the claims and the signature. */
static void sign_and_verify(EVP_PKEY *k, const char *alg, bool ec)
{
    cJSON *claims = cJSON_Parse("{\"iss\":\"c\",\"sub\":\"c\",\"aud\":\"http://as\"}");
    char *pem = pem_of(k), *jwt = NULL;
    cm_error err;
    assert_int_equal(cm_oauth_sign_jwt(pem, alg, claims, &jwt, &err), 0);
    char *dot1 = strchr(jwt, '.'), *dot2 = strrchr(jwt, '.');
    assert_true(dot1 && dot2 > dot1);
    *dot1 = '\0';
    size_t hl, cl, sl;
    unsigned char *hdr = b64url_decode(jwt, &hl);
    *dot1 = '.';
    *dot2 = '\0';
    unsigned char *body = b64url_decode(dot1 + 1, &cl);
    unsigned char *sig = b64url_decode(dot2 + 1, &sl);
    char want[64];
    snprintf(want, sizeof want, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", ec ? "ES256" : "RS256");
    assert_memory_equal(hdr, want, strlen(want));
    assert_memory_equal(body, "{\"iss\":\"c\"", 10);
    unsigned char der[80];
    unsigned char *dsig = sig;
    size_t dlen = sl;
    if (ec) { /* JOSE R || S → DER for OpenSSL's verify */
        assert_int_equal(sl, 64);
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *p = der;
        dlen = (size_t)i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        dsig = der;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestVerify(md, dsig, dlen, (const unsigned char *)jwt, strlen(jwt)), 1);
    EVP_MD_CTX_free(md);
    free(hdr);
    free(body);
    free(sig);
    free(jwt);
    free(pem);
    cJSON_Delete(claims);
}

static void test_jwt_signing(void **state)
{
    (void)state;
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    assert_non_null(ec);
    assert_non_null(rsa);
    sign_and_verify(ec, NULL, true);
    sign_and_verify(ec, "ES256", true);
    sign_and_verify(rsa, NULL, false);
    /* refusals: the wrong algorithm for the key, no key */
    cJSON *claims = cJSON_CreateObject();
    char *pem = pem_of(rsa), *jwt = NULL;
    cm_error err;
    assert_int_equal(cm_oauth_sign_jwt(pem, "ES256", claims, &jwt, &err), -1);
    assert_non_null(strstr(err.message, "signing_algorithm"));
    assert_int_equal(cm_oauth_sign_jwt("not a key", NULL, claims, &jwt, &err), -1);
    assert_non_null(strstr(err.message, "private_key"));
    assert_null(strstr(err.message, "not a key")); /* the key is never quoted */
    free(pem);
    cJSON_Delete(claims);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge_params),
        cmocka_unit_test(test_b64url_and_pkce),
        cmocka_unit_test(test_jwt_signing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
