/* http_transport.h — the streamable HTTP transport (MCP 2025-06-18 / 2025-11-25):
 * `codemode serve --http ADDR` or `engine.http.listen` serves the same MCP
 * methods as the Unix socket at one endpoint, /mcp.  Its callers are
 * authenticated by bearer token (or configured as anonymous) and each
 * token stands for a caller identity {uid, gid} that the policy maps to a
 * profile exactly as it maps a socket peer (SO_PEERCRED). */
#ifndef CM_HTTP_TRANSPORT_H
#define CM_HTTP_TRANSPORT_H

#include "engine.h"

typedef struct cm_http cm_http;

/* Reads engine.http from the config (listen_override: --http ADDR, wins
 * over engine.http.listen).  *out = NULL when neither asks for HTTP.
 * Refuses a non-loopback address without engine.http.allow_remote, and
 * allow_remote without tokens. */
int cm_http_new(cm_engine *eng, const char *listen_override, cm_http **out, cm_error *err);
/* Binds and starts serving (its own threads). */
int cm_http_start(cm_http *h, cm_error *err);
/* Ends every session (their running chains stop), stops the threads. */
void cm_http_free(cm_http *h);

#endif
