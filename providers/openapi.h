/* openapi.h — OpenAPI 3.x / Swagger 2.0 → UTCP manual (providers/openapi.c). */
#ifndef CM_PROVIDERS_OPENAPI_H
#define CM_PROVIDERS_OPENAPI_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

/* True when the document declares `openapi` (3.x) or `swagger` (2.0). */
bool cm_openapi_detect(const cJSON *doc);

/* Converts one document.  spec_url (may be NULL) resolves a relative
 * `servers[0].url` and is the fallback base URL.  One tool per operation
 * (GET POST PUT PATCH DELETE): name = operationId or `<method>_<path>`
 * sanitized; inputs = object schema of the parameters (+ `body`) with
 * `required`; `$ref`s resolved at any depth (a cycle becomes
 * {"type":"object","description":"recursive: <ref>"}); security schemes →
 * auth with variables (API_KEY_<n>, USERNAME_<n>/PASSWORD_<n>,
 * CLIENT_ID_<n>/CLIENT_SECRET_<n>, n = 1-based scheme index). */
int cm_openapi_to_manual(const cJSON *doc, const char *spec_url, cJSON **manual, cm_error *err);

/* Deep copy of `schema` with every local `$ref` ("#/...") resolved against
 * `doc` (exposed for unit tests). */
cJSON *cm_openapi_resolve(const cJSON *doc, const cJSON *schema);

#endif
