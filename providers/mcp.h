/* mcp.h — the `mcp` provider (providers/mcp.c) over long-lived sessions
 * (providers/mcp_session.c). */
#ifndef CM_PROVIDERS_MCP_H
#define CM_PROVIDERS_MCP_H

#include <cjson/cJSON.h>

#include "error.h"
#include "pctx.h"
#include "provider.h"

int cm_mcp_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                cm_error *err);
/* cm_provider_call_async for `mcp`: on a ready stdio session the request is
 * written at once and the session's reader thread calls done (no thread per
 * call, calls pipelined by id); otherwise the blocking call runs on a
 * detached thread of its own. */
void cm_mcp_call_async(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx,
                       cm_provider_done_fn done, void *arg);
/* tools/list on every server of config.mcpServers → a UTCP manual whose
 * tools are named `<server>.<tool>`. */
int cm_mcp_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                    cm_error *err);

/* Maps a tools/call result: isError → CM_ERR_TOOL_ERROR with the text;
 * structuredContent (a lone `result` key unwrapped) → it; one text block →
 * parsed JSON when it is JSON, else the string; otherwise the content
 * blocks.  Pure (unit-tested). */
int cm_mcp_map_result(const cJSON *result, cJSON **out, cm_error *err);

/* JSON-RPC over one session.  `server_cfg` is the substituted server entry
 * ({command,args,env,cwd} or {url,headers}); the session is found by
 * (manual, server) and started (initialize handshake) on first use,
 * restarted with backoff after a crash.  *result receives the JSON-RPC
 * `result`; a JSON-RPC `error` becomes CM_ERR_TOOL_ERROR. */
int cm_mcp_request(cm_providers *p, const char *manual, const char *server, const cJSON *server_cfg,
                   const char *base_dir, const char *method, cJSON *params, const cm_call_ctx *ctx,
                   cJSON **result, cm_error *err);

/* Answer to an asynchronous request: result (owned by the callee) or err. */
typedef void (*cm_mcp_answer_fn)(void *arg, cJSON *result, const cm_error *err);

/* Like cm_mcp_request, without blocking: when the (manual, server) stdio
 * session is ready, writes the request and returns 1; the session's reader
 * thread calls fn exactly once (answer, JSON-RPC error, server exit or hang,
 * ctx->deadline_ms, *ctx->cancel).  Returns 0 and does nothing when the
 * session is not ready (not started, restarting, HTTP): use cm_mcp_request.
 * params is serialized before this returns; method must be a string literal
 * and ctx->cancel stay valid until fn runs. */
int cm_mcp_request_async(cm_providers *p, const char *manual, const char *server,
                         const cJSON *server_cfg, const char *base_dir, const char *method,
                         cJSON *params, const cm_call_ctx *ctx, cm_mcp_answer_fn fn, void *arg);
/* Wakes every session's reader so it sees cancel flags at once. */
void cm_mcp_sessions_wakeup(cm_providers *p);

/* Protocol versions we speak, newest first. */
extern const char *const cm_mcp_versions[];

#endif
