/* http.h — the `http` provider (providers/http.c) and its pure helpers,
 * exposed for unit tests. */
#ifndef CM_PROVIDERS_HTTP_H
#define CM_PROVIDERS_HTTP_H

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "error.h"
#include "provider.h"
#include "util.h"

int cm_http_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                 cm_error *err);
/* The same call on the providers' curl multi loop: `done` runs once, on
 * the loop thread (or before this returns when the call fails early). */
void cm_http_call_async(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx,
                        cm_provider_done_fn done, void *arg);
/* GETs the manual template's `url`: a UTCP manual, or an OpenAPI/Swagger
 * document converted to one. */
int cm_http_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                     cm_error *err);

/* The request an http tool call makes, before auth. */
typedef struct cm_http_mapped {
    char *url; /* path params substituted, query appended */
    struct curl_slist *headers;
    char *body; /* NULL when there is no body */
    size_t body_len;
} cm_http_mapped;

void cm_http_mapped_free(cm_http_mapped *m);

/* Maps arguments onto a (substituted) http template, in UTCP order:
 * header_fields → headers, body_field → body, `{name}` → URL-encoded path
 * segment (missing → error), the rest → query string (scalars as text,
 * arrays of scalars as repeated keys, objects and nested values as JSON).
 * Template `headers` are added first; CR/LF in names or values is rejected. */
int cm_http_map_args(const cJSON *tmpl, const cJSON *args, cm_http_mapped *out, cm_error *err);

/* A UTCP manual from a discovery document (JSON/YAML text already parsed):
 * UTCP manual keys → the manual; `openapi`/`swagger` → converted; anything
 * else → CM_ERR_CONFIG. */
int cm_manual_from_document(cJSON *doc, const char *spec_url, const char *what,
                            const cm_call_ctx *ctx, cJSON **manual, cm_error *err);

#endif
