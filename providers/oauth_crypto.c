/* oauth_crypto.c — random values, base64url, PKCE S256 and JWT signing for
 * the MCP provider's OAuth client (providers/mcp_oauth*.c).
 *
 * Why its own file: OpenSSL is used here and nowhere else in providers/;
 * the flows stay readable without DER-to-JOSE signature conversions in
 * them. */
#include "oauth_crypto.h"

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

#include "util.h"

char *cm_oauth_b64(const unsigned char *data, size_t len)
{
    char *out = cm_xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

char *cm_oauth_b64url(const unsigned char *data, size_t len)
{
    char *out = cm_oauth_b64(data, len);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *c = out; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return out;
}

char *cm_oauth_random(size_t nbytes)
{
    unsigned char buf[64];
    if (nbytes > sizeof buf || RAND_bytes(buf, (int)nbytes) != 1)
        return NULL;
    return cm_oauth_b64url(buf, nbytes);
}

char *cm_oauth_pkce_challenge(const char *verifier)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)verifier, strlen(verifier), d);
    return cm_oauth_b64url(d, sizeof d);
}

static char *b64url_text(const char *s)
{
    return cm_oauth_b64url((const unsigned char *)s, strlen(s));
}

/* An ECDSA signature from OpenSSL's DER form to JOSE's R || S (RFC 7518 §3.4). */
static int ecdsa_der_to_jose(const unsigned char *der, size_t len, unsigned char out[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig)
        return -1;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, out, 32) == 32 && BN_bn2binpad(s, out + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

static EVP_PKEY *read_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return key;
}

/* sig = the signature of input (alg's digest), in JWS form. */
static int sign(EVP_PKEY *key, bool ec, const char *input, unsigned char **sig, size_t *len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = -1;
    *sig = NULL;
    if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(md, NULL, len, (const unsigned char *)input, strlen(input)) == 1) {
        *sig = cm_xmalloc(*len > 64 ? *len : 64);
        if (EVP_DigestSign(md, *sig, len, (const unsigned char *)input, strlen(input)) == 1)
            rc = 0;
    }
    EVP_MD_CTX_free(md);
    if (rc == 0 && ec) {
        unsigned char jose[64];
        rc = ecdsa_der_to_jose(*sig, *len, jose);
        memcpy(*sig, jose, sizeof jose);
        *len = sizeof jose;
    }
    return rc;
}

int cm_oauth_sign_jwt(const char *pem, const char *alg, const cJSON *claims, char **out,
                      cm_error *err)
{
    EVP_PKEY *key = pem ? read_key(pem) : NULL;
    if (!key)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth.private_key: not a PEM private key (PKCS#8 or traditional)");
    int type = EVP_PKEY_get_base_id(key);
    if (!alg)
        alg = type == EVP_PKEY_EC ? "ES256" : "RS256";
    bool ec = !strcmp(alg, "ES256");
    if ((ec && type != EVP_PKEY_EC) || (!ec && (strcmp(alg, "RS256") || type != EVP_PKEY_RSA))) {
        EVP_PKEY_free(key);
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth.signing_algorithm '%.20s': ES256 (an EC P-256 key) or RS256 "
                            "(an RSA key), matching the key",
                            alg);
    }
    cm_autojson cJSON *hdr = cJSON_CreateObject();
    cJSON_AddStringToObject(hdr, "alg", alg);
    cJSON_AddStringToObject(hdr, "typ", "JWT");
    cm_autofree char *h = cm_json_print(hdr);
    cm_autofree char *c = cm_json_print(claims);
    cm_autofree char *h64 = b64url_text(h);
    cm_autofree char *c64 = b64url_text(c);
    cm_autofree char *input = NULL;
    if (asprintf(&input, "%s.%s", h64, c64) < 0)
        abort();
    unsigned char *sig;
    size_t len;
    int rc = sign(key, ec, input, &sig, &len);
    EVP_PKEY_free(key);
    if (rc < 0) {
        free(sig);
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth: signing the client assertion failed");
    }
    cm_autofree char *s64 = cm_oauth_b64url(sig, len);
    free(sig);
    if (asprintf(out, "%s.%s", input, s64) < 0)
        abort();
    return 0;
}
