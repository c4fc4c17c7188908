/* rpc.h — the request layer (rpc.c): JSON-RPC validation and MCP method
 * dispatch over one complete line.  The transport (server.c) calls it
 * through cm_engine.on_line, set by main. */
#ifndef CM_RPC_H
#define CM_RPC_H

#include <stddef.h>

#include "engine.h"

void cm_rpc_handle_line(cm_engine *eng, cm_conn *conn, const char *line, size_t len);

#endif
