/* oauth_crypto.h — the bits of cryptography an OAuth client needs
 * (providers/oauth_crypto.c): random values, base64url, the PKCE S256
 * challenge and signed JWTs for private_key_jwt client authentication. */
#ifndef CM_PROVIDERS_OAUTH_CRYPTO_H
#define CM_PROVIDERS_OAUTH_CRYPTO_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"

/* base64 with padding (RFC 4648 §4); caller frees. */
char *cm_oauth_b64(const unsigned char *data, size_t len);
/* base64url without padding (RFC 7515 §2); caller frees. */
char *cm_oauth_b64url(const unsigned char *data, size_t len);
/* nbytes of CSPRNG output, base64url encoded (state, PKCE verifier, jti);
 * caller frees, NULL when the kernel gives no randomness. */
char *cm_oauth_random(size_t nbytes);
/* The PKCE S256 code_challenge of a code_verifier (RFC 7636 §4.2). */
char *cm_oauth_pkce_challenge(const char *verifier);
/* A compact JWS of claims signed with the PEM private key (PKCS#8 or
 * traditional), alg "ES256" or "RS256" (NULL: ES256 for an EC key, RS256
 * for RSA); *out caller frees.  The key is never named in an error. */
int cm_oauth_sign_jwt(const char *pem, const char *alg, const cJSON *claims, char **out,
                      cm_error *err);

#endif
