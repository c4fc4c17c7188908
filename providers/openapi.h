/* openapi.h — OpenAPI 3.x / Swagger 2.0 → UTCP manual (providers/openapi.c). */
#ifndef CM_PROVIDERS_OPENAPI_H
#define CM_PROVIDERS_OPENAPI_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"
#include "provider.h"

/* True when the document declares `openapi` (3.x) or `swagger` (2.0). */
bool cm_openapi_detect(const cJSON *doc);

/* Converts one document.  spec_url (may be NULL) resolves a relative
 * `servers[0].url` and is the fallback base URL.  One tool per operation
 * (GET POST PUT PATCH DELETE): name = operationId or `<method>_<path>`,
 * made unique (method + path, then a hash) and short enough for the
 * registry (ctx->manual_name); base URL = the manual's `base_url`, else
 * servers[0] (relative: against spec_url); inputs = object schema of the parameters (+ `body`) with
 * `required`; a local `$ref` becomes {"$ref":"#/$defs/<Name>"} with the
 * schema it names copied once into the root's (inputs', outputs') "$defs"
 * (a recursive one stays a reference; external ones are never followed:
 * providers/openapi_refs.c); auth per operation from the security schemes
 * or the manual's auth_tools / auth / headers (ctx->manual_tmpl; rules in
 * openapi_auth.h).
 * ctx (may be NULL: the defaults) gives the registration limits
 * (ctx->reg: max_tools, max_schema_bytes, timeout_s) and the deadline; a
 * document over one is refused with a CM_ERR_CONFIG (CM_ERR_TIMEOUT)
 * message naming the engine.registration key. */
int cm_openapi_to_manual(const cJSON *doc, const char *spec_url, const cm_call_ctx *ctx,
                         cJSON **manual, cm_error *err);

#endif
