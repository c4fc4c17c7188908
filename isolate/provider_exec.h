/* provider_exec.h — the step between the engine and a provider process
 * (provider_exec.c). */
#ifndef CM_PROVIDER_EXEC_H
#define CM_PROVIDER_EXEC_H

#include "cgroup.h"
#include "provider_jail.h"

/* The subcommand the engine's own binary runs as, in front of a provider's
 * command line:
 *   codemode __provider-exec [--procs F1:F2] [--jail] [--userns] [--tmp-mb N]
 *            [--hide PATH]... [--ids UID:GID] [--rw DIR]... [--own DIR]
 *            -- PROGRAM ARGV0 ARGS...
 * The engine builds everything up to --ids once (cm_provider_exec_prepare);
 * --ids and --rw are per spawn (providers/pctx.c); --own, from the
 * privileged part only (sandboxd.c), gives the call directory DIR and its
 * files to --ids (keeping their group, mode 02750) before the jail. */
#define CM_PROVIDER_EXEC_CMD "__provider-exec"

/* The child side: joins every cgroup.procs file of --procs, enters the
 * jail (provider_jail.h) when --jail is given, then execvp(PROGRAM,
 * [ARGV0, ARGS...]).  Does not return on success; prints why and returns
 * 126 (cannot join or jail) or 127 (cannot run). */
int cm_provider_exec_main(int argc, char **argv);

/* What the engine asks of every provider process. */
typedef struct cm_provider_exec_cfg {
    bool jail;               /* mount view, unprivileged ids, no capabilities */
    bool userns;             /* rootless: a user namespace for the mount view */
    unsigned tmp_mb;         /* private /tmp size */
    const char *const *hide; /* NULL-terminated: engine files and dirs to cover */
} cm_provider_exec_cfg;

/* The engine side: one cgroup for every provider process of this engine
 * (v1: <instance>/providers; cgroup2: the sibling p<pid>, so the engine's
 * stop — or its successor's start-up after a crash — kills what is in it),
 * and the argv prefix that makes a provider spawn go through
 * cm_provider_exec_main.  *prefix is a NULL-terminated array the caller
 * frees with cm_provider_exec_free; NULL when there is nothing to do (no
 * cgroup and no jail: providers are spawned directly). */
int cm_provider_exec_prepare(cm_cgroup_root *root, cm_cgroup *cg, const cm_provider_exec_cfg *cfg,
                             char ***prefix, cm_error *err);
void cm_provider_exec_free(char **prefix);

/* Runs `/bin/true` through prefix (as uid:gid when ids is "uid:gid", else
 * NULL) and waits: 0 when the exec step and its jail work here, else -1
 * with the step's own message (or the wait status) in why.  For the
 * engine's start-up report and doctor. */
int cm_provider_exec_check(char *const *prefix, const char *ids, char *why, size_t cap);

#endif
