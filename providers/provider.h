/* provider.h — the one entry point from the engine to the providers.  A
 * provider turns a (variable-substituted) call template plus arguments into
 * a JSON result, on the host side, never inside a sandbox.  Dispatch is by
 * the template's "call_template_type". */
#ifndef CM_PROVIDER_H
#define CM_PROVIDER_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "egress.h"
#include "error.h"
#include "vars.h"

typedef struct cm_call_ctx {
    const cm_vars *vars;       /* variable resolver (may be NULL: no variables) */
    const char *manual_name;   /* manual that owns the template (for namespaced variables) */
    const char *base_dir;      /* directory relative paths are resolved against */
    int64_t deadline_ms;       /* absolute cm_now_ms() deadline; 0 = none */
    const atomic_bool *cancel; /* set when the caller gave up (chain ended); may be NULL */
    size_t max_output_bytes;   /* cap on captured tool output */
    struct cm_providers
        *providers; /* shared connections/sessions (providers/pctx.h); may be NULL */
    /* HTTP egress rules of the caller's policy profile (core/egress.h);
     * NULL = no policy, then the built-in rule applies (https, or http to
     * loopback only) */
    const cm_egress *egress;
    /* discovery only: engine.registration limits (engine/config.h); NULL =
     * the defaults */
    const struct cm_reg_limits *reg;
    /* discovery only: the manual call template being registered, as written
     * (an OpenAPI document takes `base_url`, `auth_tools`, `auth` and
     * `headers` from it: providers/openapi_auth.h); set by
     * cm_provider_discover */
    const cJSON *manual_tmpl;
    /* a provider's notes on a running call (an MCP server's progress and log
     * notifications), one line each, for the calling chain's logs; NULL:
     * dropped.  Called on any thread, only while the call runs. */
    void (*note)(void *note_arg, const char *line);
    void *note_arg;
    const void *note_group; /* one chain's calls share it: a server-wide line reaches it once */
} cm_call_ctx;

/* Runs a tool.  `tmpl` is the tool's tool_call_template as registered (not
 * yet substituted; the provider substitutes variables itself), `args` an
 * object (may be NULL).  On success *result is a new cJSON value owned by the
 * caller.  Failures use CM_ERR_TOOL_ERROR (or CM_ERR_TIMEOUT when the
 * deadline passed) with a message naming the tool's command/URL. */
int cm_provider_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                     cm_error *err);

/* Completion of an asynchronous call: result (owned by the callee now) or
 * err (then result is NULL). */
typedef void (*cm_provider_done_fn)(void *arg, cJSON *result, const cm_error *err);

/* True when calls of this template can run on the providers' I/O loop
 * (cm_provider_call_async) instead of a thread: `http`, and `mcp` (its
 * session's reader thread answers; see mcp.h). */
int cm_provider_async_capable(const cJSON *tmpl);
/* Starts the call; `done` runs exactly once, on the providers' loop thread
 * (mcp: the session's reader thread, or a call thread while the session
 * starts) or before this returns (early failures).  ctx's pointers (vars, cancel,
 * egress, manual_name, base_dir) must stay valid until then; the template
 * and args are copied. */
void cm_provider_call_async(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx,
                            cm_provider_done_fn done, void *arg);

/* Wakes the providers' I/O loop and MCP readers so they see cancel flags at once (p may be
 * NULL). */
void cm_providers_wakeup(struct cm_providers *p);

/* Discovery: produce the UTCP manual ({utcp_version, manual_version, tools[]})
 * a manual call template points at (text: its content; file: file_path; cli:
 * stdout of its commands).  Failures use CM_ERR_CONFIG. */
int cm_provider_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                         cm_error *err);

/* True when the engine can run templates of this type. */
int cm_provider_supported(const char *call_template_type);

#endif
