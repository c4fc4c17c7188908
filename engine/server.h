/* server.h — the engine's Unix-socket server: listening socket, epoll event
 * loop, per-connection line framing, signals.  Request semantics live in
 * rpc.c; this file only moves bytes and enforces the transport's bounds. */
#ifndef CM_SERVER_H
#define CM_SERVER_H

#include <signal.h>

#include "engine.h"

/* Blocks SIGTERM/SIGINT in the calling thread (and every thread it starts
 * afterwards): call before starting any thread; the loop reads them from a
 * signalfd. */
void cm_server_block_signals(sigset_t *mask);
/* Creates the listening socket (mode 0660).  Refuses to replace a socket
 * another engine is serving on; removes a stale one. */
int cm_server_listen(cm_engine *eng, const char *path, cm_error *err);
/* Runs the event loop until SIGTERM/SIGINT; then stops accepting, lets
 * running requests finish and flushes their answers. */
int cm_server_run(cm_engine *eng, cm_error *err);
void cm_server_close(cm_engine *eng);

#endif
