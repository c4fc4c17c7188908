/* cli.h — internal interface of the cli provider (providers/cli.c), used by
 * the dispatcher in provider.c.  Not part of the engine-facing API. */
#ifndef CM_PROVIDERS_CLI_H
#define CM_PROVIDERS_CLI_H

#include <cjson/cJSON.h>

#include "error.h"
#include "provider.h"

/* Runs a tool whose tool_call_template is `cli` (see providers/README.md). */
int cm_cli_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                cm_error *err);

/* Runs a `cli` manual call template's commands (no arguments) and parses a
 * UTCP manual (or a bare tool list) from their output. */
int cm_cli_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                    cm_error *err);

#endif
