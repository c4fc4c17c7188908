/* privdrop.h — the root engine's split into the privileged part
 * (isolate/sandboxd.c) and itself as the service user (privdrop.c). */
#ifndef CM_PRIVDROP_H
#define CM_PRIVDROP_H

#include "engine.h"

/* After cm_workdir_start, before the first thread: decides the service
 * user (engine.user), gives it the instance cgroups and the work dir,
 * binds the socket at socket_path (its directory stays root's), starts `codemode __sandboxd`,
 * points isolate and the providers at it and drops to the user.  Nothing for a rootless engine or
 * engine.user: root (one process, eng->separated false). */
int cm_privdrop_start(cm_engine *eng, const char *socket_path, cm_error *err);
/* Last at stop: closes the channel; the broker kills and removes what the
 * engine left in its cgroups and the work dir, then exits. */
void cm_privdrop_stop(cm_engine *eng);

#endif
