/* cgroup.h — the cgroup layer on its own: this engine's cgroup hierarchy
 * (v2, or the v1 controllers with the cgroup2 mount beside them), one
 * cgroup set per sandbox with its memory/CPU/pids limits, and the usage read
 * back from it (cgroup.c, cgroup_usage.c).
 *
 * Why a header of its own: the isolation context (isolation.h) uses the
 * cgroup layer, never the other way round.  Nothing here knows about layers
 * or the isolation context: whether a sandbox's cgroups carry limits is the
 * caller's argument, and a sandbox's cgroup set records which hierarchy it
 * lives in, so reading its usage needs nothing else. */
#ifndef CM_CGROUP_H
#define CM_CGROUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cm_limits.h"
#include "error.h"

typedef enum { CM_CGROUP_NONE, CM_CGROUP_V1, CM_CGROUP_V2 } cm_cgroup_mode;

/* This engine's place in the cgroup hierarchies (cm_cgroup_setup). */
typedef struct cm_cgroup_root {
    cm_cgroup_mode mode;
    char v2_root[256];          /* v2: <mount>/codemode ; v1: unified[/own]/codemode */
    char v1_roots[4][400];      /* v1: memory, cpu, pids, cpuacct: <ctrl>[/own]/codemode */
    char instance[32];          /* "e<pid>" */
    char unified_instance[400]; /* cgroup2 dir of this engine (guard attach point) */
    bool have_unified;
    bool have_memsw;
    atomic_ulong seq;
} cm_cgroup_root;

/* The cgroups of one sandbox (one directory per hierarchy used). */
typedef struct cm_cgroup {
    char paths[5][512]; /* v1: memory, cpu, pids, cpuacct, unified; v2: one dir */
    int mem_idx, cpu_idx, acct_idx, unified_idx; /* index into paths, -1 if none */
    int npaths;
    bool created;
    bool v2;    /* made under a v2 root (the root's mode at creation) */
    bool memsw; /* v1 memory.memsw.* present (the root's have_memsw) */
} cm_cgroup;

typedef struct cm_cgroup_usage {
    double cpu_ms;
    double peak_memory_bytes;
    long oom_kills;
    long throttled_periods;
} cm_cgroup_usage;

/* ---- cgroup.c ---- */
/* Finds the hierarchy, makes this engine's instance directories, removes
 * those of dead engines.  -1 (root->mode NONE) when there is no usable one. */
int cm_cgroup_setup(cm_cgroup_root *root, cm_error *err);
/* This engine's instance directories, one per hierarchy (v2[i]: on
 * cgroup2), into dirs; returns how many (at most cap). */
int cm_cgroup_instance_dirs(const cm_cgroup_root *root, char (*dirs)[512], bool *v2, int cap);
/* Gives the instance directories to uid:gid (the engine's service user,
 * before its drop): the directory and the files its owner writes
 * (cgroup.procs, tasks, cgroup.subtree_control, cgroup.threads). */
int cm_cgroup_chown_instance(const cm_cgroup_root *root, uid_t uid, gid_t gid, cm_error *err);
/* Removes this engine's instance directories (engine stop). */
void cm_cgroup_teardown(cm_cgroup_root *root);
/* Makes one sandbox's cgroups (`<instance>/<seq>`); with limits, in every
 * hierarchy with lim written to them; without, only the cgroup2 directory,
 * for the guard and cgroup.kill. */
int cm_cgroup_create(cm_cgroup_root *root, bool limits, const cm_limits *lim, cm_cgroup *cg,
                     cm_error *err);
/* The engine's one cgroup for provider processes: `<instance>/providers`
 * in every v1 hierarchy (no limits written), and on cgroup2 the sibling
 * `p<pid>` of the instance (never below it: the instance's eBPF guard would
 * deny providers their sockets).  Used by provider_exec.c. */
int cm_cgroup_create_providers(cm_cgroup_root *root, cm_cgroup *cg, cm_error *err);
/* The cgroup.procs files of cg's directories, ':'-separated, in out (for a
 * process that joins them itself, provider_exec.c); -1 when cap is short. */
int cm_cgroup_procs_list(const cm_cgroup *cg, char *out, size_t cap);
int cm_cgroup_attach(const cm_cgroup *cg, pid_t pid, cm_error *err);
/* Kills anything left, removes the directories.  Idempotent. */
void cm_cgroup_destroy(cm_cgroup *cg);
/* Rewrites a live cgroup's limits from `from` to `to` (warm pool take). */
int cm_cgroup_update_limits(const cm_cgroup *cg, const cm_limits *from, const cm_limits *to,
                            cm_error *err);
/* Kills what is in dir and in each directory below it (v2: cgroup.kill,
 * v1: the listed pids) and removes them all (the privileged part's
 * clean-up of an instance it was handed, sandboxd.c). */
void cm_cgroup_remove_instance(const char *dir, bool v2);
/* Removes cgroups of engine instances whose process is gone. */
void cm_cgroup_reap_dead_instances(cm_cgroup_root *root);
/* CPU time used so far in ms (one file read: a chain's baseline), or -1. */
double cm_cgroup_read_cpu_ms(const cm_cgroup *cg);

/* ---- cgroup_usage.c: usage with the files opened ahead (and cm_cgroup_read_usage) ---- */
typedef struct cm_cgroup_usage_fds {
    int oom, peak, cpu_stat, cpu;
    bool v2;
} cm_cgroup_usage_fds;
/* Opens the usage files (any that fail read as "unknown"). */
void cm_cgroup_usage_open(const cm_cgroup *cg, cm_cgroup_usage_fds *f);
/* Reads the current values (cm_cgroup_read_usage = open + read + close). */
void cm_cgroup_usage_read(const cm_cgroup_usage_fds *f, cm_cgroup_usage *u);
void cm_cgroup_usage_close(cm_cgroup_usage_fds *f);
/* CPU time so far in ms from the opened files (one pread), or -1. */
double cm_cgroup_usage_cpu_ms(const cm_cgroup_usage_fds *f);
/* Usage now: open, read, close. */
void cm_cgroup_read_usage(const cm_cgroup *cg, cm_cgroup_usage *u);

#endif
