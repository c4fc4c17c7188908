/* client.h — the client side of the engine socket, used by `codemode run`
 * (and later by other subcommands): connect, send one request, read one
 * answer. */
#ifndef CM_CLIENT_H
#define CM_CLIENT_H

#include <cjson/cJSON.h>

#include "error.h"

/* Default socket: $CODEMODE_SOCKET, else /run/codemode/codemode.sock for
 * root, else $XDG_RUNTIME_DIR/codemode.sock, else /tmp/codemode-<uid>.sock.
 * Caller frees. */
char *cm_default_socket_path(void);

/* Sends a JSON-RPC request and returns the matching response object.
 * Takes ownership of params (also on failure). */
int cm_client_call(const char *socket_path, const char *method, cJSON *params, int timeout_ms,
                   cJSON **response, cm_error *err);

/* Connected, O_CLOEXEC socket to the engine, or -1 with err set. */
int cm_client_connect(const char *socket_path, cm_error *err);

/* `codemode run --follow` (agent_cli.c): streams log lines, then prints the
 * response; returns the exit code like `codemode run`. */
int cm_run_follow(const char *socket_path, const char *code, double timeout);
/* `codemode prompt`, `codemode tools ...`, `codemode mcp ...` (agent_cli.c,
 * mcp.c); each returns the exit code. */
int cm_cmd_prompt(int argc, char **argv);
int cm_cmd_tools(int argc, char **argv);
int cm_cmd_mcp(int argc, char **argv);

/* `codemode run [--socket PATH] [--timeout S] FILE|-`; returns the exit code. */
int cm_cmd_run(int argc, char **argv);
/* cmd_observe.c: `codemode stats`, `codemode health` */
int cm_cmd_stats(int argc, char **argv);
int cm_cmd_health(int argc, char **argv);

#endif
