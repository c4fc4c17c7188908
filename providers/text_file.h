/* text_file.h — internal interface of the text and file providers
 * (providers/text_file.c), used by provider.c and cli.c. */
#ifndef CM_PROVIDERS_TEXT_FILE_H
#define CM_PROVIDERS_TEXT_FILE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "error.h"
#include "provider.h"

/* Parses `text` (JSON or YAML) as a UTCP manual.  A bare array is taken as
 * the tool list of a manual; an OpenAPI document is converted under ctx's
 * registration limits (ctx may be NULL: the defaults).  `what` names the
 * source in errors.  Failures use CM_ERR_CONFIG. */
int cm_parse_manual_text(const char *text, size_t len, const char *what, const cm_call_ctx *ctx,
                         cJSON **manual, cm_error *err);

int cm_text_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                     cm_error *err);
int cm_file_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                     cm_error *err);
int cm_text_call(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **result, cm_error *err);
int cm_file_call(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **result, cm_error *err);

#endif
