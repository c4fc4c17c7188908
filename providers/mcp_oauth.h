/* mcp_oauth.h — MCP authorization as a client (providers/mcp_oauth*.c):
 * the bearer token a streamable-HTTP session sends, obtained and renewed
 * on the host when the server answers 401 (or 403 insufficient_scope), per
 * the MCP authorization spec (2025-11-25, with the 2025-03-26 fallbacks).
 * Configured by the server entry's `oauth` object (providers/README.md,
 * "mcp"); without one a 401 stays an error. */
#ifndef CM_PROVIDERS_MCP_OAUTH_H
#define CM_PROVIDERS_MCP_OAUTH_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "pctx.h"
#include "provider.h"

typedef struct cm_mcp_oauth cm_mcp_oauth;

/* The client for the server entry `server_cfg` (its substituted copy),
 * NULL when the entry has no `oauth` object. */
cm_mcp_oauth *cm_mcp_oauth_new(const cJSON *server_cfg);
void cm_mcp_oauth_free(cm_mcp_oauth *o);

/* The "Authorization: Bearer ..." line for the next request (caller
 * frees), NULL before the first token.  A token past its expiry is
 * refreshed first (refresh_token grant, or the client credentials again;
 * p NULL: never, the token as it is); *gen is the token's generation, for
 * cm_mcp_oauth_challenge. */
char *cm_mcp_oauth_header(cm_mcp_oauth *o, cm_providers *p, const cm_call_ctx *ctx,
                          int64_t deadline_ms, uint64_t *gen);

/* The server answered status (401 or 403) with www_authenticate (may be
 * NULL) to a request that carried token generation gen (0: none): a new
 * token is obtained (discovery, registration, the configured grant; a
 * step-up to the scopes a 403 insufficient_scope names).  0: retry the
 * request; -1: err says why (no client secret or token in it). */
int cm_mcp_oauth_challenge(cm_mcp_oauth *o, cm_providers *p, const cm_call_ctx *ctx,
                           int64_t deadline_ms, long status, const char *www_authenticate,
                           uint64_t gen, cm_error *err);

#endif
