/* workdir.h — the engine's own temp directory and its provider cgroup
 * (workdir.c). */
#ifndef CM_WORKDIR_H
#define CM_WORKDIR_H

#include "engine.h"

/* Creates <$TMPDIR or /tmp>/codemode-e<pid> (0700) for provider temp dirs,
 * after removing those of engines that are gone; makes the provider cgroup,
 * decides the provider jail (engine.provider_jail: own uids from the
 * sandbox range for a root engine, a user namespace for a rootless one;
 * the engine's files, socket_path among them, covered) and points the
 * providers at all of it (cm_providers work_dir, exec_prefix, ids). */
int cm_workdir_start(cm_engine *eng, const char *socket_path, cm_error *err);
/* Kills what is left in the provider cgroup and removes both. */
void cm_workdir_stop(cm_engine *eng);

#endif
