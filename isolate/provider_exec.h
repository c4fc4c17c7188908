/* provider_exec.h — the step between the engine and a provider process
 * (provider_exec.c). */
#ifndef CM_PROVIDER_EXEC_H
#define CM_PROVIDER_EXEC_H

#include "cgroup.h"

/* The subcommand the engine's own binary runs as, in front of a provider's
 * command line: `codemode __provider-exec PROCS PROGRAM ARGV0 ARGS...`. */
#define CM_PROVIDER_EXEC_CMD "__provider-exec"

/* The child side: joins every cgroup.procs file listed in PROCS
 * (':'-separated), then execvp(PROGRAM, [ARGV0, ARGS...]).  Does not return
 * on success; prints why and returns 126 (cannot join) or 127 (cannot run). */
int cm_provider_exec_main(int argc, char **argv);

/* The engine side: one cgroup for every provider process of this engine
 * (below the engine's instance, so the engine's stop — or its successor's
 * start-up after a crash — kills what is in it), and the argv prefix that
 * makes a provider spawn go through cm_provider_exec_main.  *prefix is a
 * NULL-terminated array the caller frees with cm_provider_exec_free. */
int cm_provider_exec_prepare(cm_cgroup_root *root, cm_cgroup *cg, char ***prefix, cm_error *err);
void cm_provider_exec_free(char **prefix);

#endif
