/* openapi_auth.h — auth and headers of the tools converted from an OpenAPI
 * document (providers/openapi_auth.c). */
#ifndef CM_PROVIDERS_OPENAPI_AUTH_H
#define CM_PROVIDERS_OPENAPI_AUTH_H

#include <cjson/cJSON.h>

/* What one document's tools get: its security schemes, and the manual
 * template's own auth and headers where they may be used. */
typedef struct cm_oa_auth {
    const cJSON *doc;
    const cJSON *schemes;        /* components.securitySchemes / securityDefinitions */
    const cJSON *tools_auth;     /* manual `auth_tools`: replaces declared schemes too */
    const cJSON *manual_auth;    /* manual `auth`: for operations without a scheme */
    const cJSON *manual_headers; /* manual `headers`: sent by every tool */
} cm_oa_auth;

/* manual_tmpl (may be NULL) is the manual call template as written (values
 * unsubstituted, so each call substitutes and redacts them).  spec_url is
 * the document's URL (NULL for text/file/cli manuals) and base the API's
 * base URL: the template's `auth` and `headers`, meant for the download,
 * go to the tools only when the API has the document's origin (or the
 * document has no URL), never to another host. */
void cm_oa_auth_init(cm_oa_auth *a, const cJSON *doc, const cJSON *manual_tmpl,
                     const char *spec_url, const char *base);

/* Sets `auth` (and `headers`) on t, the call template of operation op:
 *  - `security: []` (operation's, else the document's): no auth;
 *  - a requirement naming an expressible scheme: `auth_tools` if given, else
 *    the scheme with variables (API_KEY_<n>, USERNAME_<n>/PASSWORD_<n>,
 *    CLIENT_ID_<n>/CLIENT_SECRET_<n>; n = 1-based index in the schemes);
 *  - otherwise (no securitySchemes, no requirement, or none expressible):
 *    `auth_tools`, else the manual's `auth`. */
void cm_oa_auth_apply(const cm_oa_auth *a, const cJSON *op, cJSON *t);

#endif
