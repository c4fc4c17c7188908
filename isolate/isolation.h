/* isolation.h — the engine-wide isolation context: every layer that sits on
 * top of the namespace floor of sandbox.c (cgroup limits, seccomp filter,
 * capability drop, rlimits, nested-userns lock, eBPF guard, minimal init),
 * prepared once at engine start, reported by `codemode doctor`, and applied
 * to each sandbox.
 *
 * Layers are probed at start: one the kernel refuses is "unavailable" with
 * a reason (logged at start, shown by doctor), never silently skipped.
 *
 * Test-only switch: when engine.test_mode is true (never in production
 * configs), the environment variable CODEMODE_TEST_DISABLE_LAYER (comma
 * list of layer names, see cm_layer_name) turns layers off so the security
 * suite can show what the remaining layers still stop.  The engine logs a
 * warning for every layer so disabled. */
#ifndef CM_ISOLATION_H
#define CM_ISOLATION_H

#include <linux/filter.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "sandbox.h"

typedef enum {
    CM_LAYER_NAMESPACES,
    CM_LAYER_CGROUP,
    CM_LAYER_SECCOMP,
    CM_LAYER_CAPS,
    CM_LAYER_RLIMITS,
    CM_LAYER_USERNS_LIMIT,
    CM_LAYER_BPF,
    CM_LAYER_INIT,
    CM_LAYER_COUNT
} cm_layer;

typedef enum { CM_LAYER_ACTIVE, CM_LAYER_UNAVAILABLE, CM_LAYER_DISABLED } cm_layer_state;

typedef enum { CM_CGROUP_NONE, CM_CGROUP_V1, CM_CGROUP_V2 } cm_cgroup_mode;

typedef struct cm_layer_status {
    cm_layer_state state;
    char detail[256]; /* what is active, or why not */
} cm_layer_status;

/* Per-chain resource limits (config defaults, lowered per request). */
typedef struct cm_limits {
    uint64_t memory_bytes;
    int cpu_quota_pct; /* of one CPU */
    int pids_max;
} cm_limits;

/* The cgroups of one sandbox (one directory per hierarchy used). */
typedef struct cm_cgroup {
    char paths[5][512]; /* v1: memory, cpu, pids, cpuacct, unified; v2: one dir */
    int mem_idx, cpu_idx, acct_idx, unified_idx; /* index into paths, -1 if none */
    int npaths;
    bool created;
} cm_cgroup;

typedef struct cm_cgroup_usage {
    double cpu_ms;
    double peak_memory_bytes;
    long oom_kills;
    long throttled_periods;
} cm_cgroup_usage;

struct cm_guard;

typedef struct cm_isolation {
    cm_layer_status layers[CM_LAYER_COUNT];
    bool disabled[CM_LAYER_COUNT];
    /* seccomp: compiled once, installed raw in each child */
    struct sock_filter *seccomp_insns;
    unsigned short seccomp_len;
    int last_cap; /* highest capability number the kernel knows */
    /* cgroups */
    cm_cgroup_mode cgroup_mode;
    char v2_root[256];          /* v2: <mount>/codemode ; v1: unified/codemode (guard) */
    char v1_roots[4][256];      /* v1: memory, cpu, pids, cpuacct: <ctrl>/codemode */
    char instance[32];          /* "e<pid>-<starttime>" */
    char unified_instance[400]; /* cgroup2 dir of this engine (guard attach point) */
    bool have_unified;
    bool have_memsw;
    atomic_ulong seq;
    /* uid allocation: a bitmap over [uid_base, uid_base + uid_count) */
    pthread_mutex_t uid_lock;
    uid_t uid_base;
    gid_t gid_base;
    unsigned uid_count;
    unsigned char *uid_used;
    unsigned uid_next;
    struct cm_guard *guard;
} cm_isolation;

const char *cm_layer_name(cm_layer l);
int cm_layer_from_name(const char *name);
const char *cm_layer_state_name(cm_layer_state s);

/* Probes and prepares every layer; removes leftovers of dead engines.
 * Fails only on internal errors (a layer the kernel refuses is recorded as
 * unavailable).  test_mode enables CODEMODE_TEST_DISABLE_LAYER. */
int cm_isolation_init(cm_isolation *iso, uid_t uid_base, gid_t gid_base, unsigned uid_count,
                      bool test_mode, cm_error *err);
void cm_isolation_free(cm_isolation *iso);
bool cm_isolation_active(const cm_isolation *iso, cm_layer l);
/* Logs one line per layer (start-up report). */
void cm_isolation_log(const cm_isolation *iso);

/* uid/gid for one sandbox (distinct among live sandboxes when the range
 * allows); release after reap. */
int cm_isolation_take_ids(cm_isolation *iso, uid_t *uid, gid_t *gid, cm_error *err);
void cm_isolation_release_ids(cm_isolation *iso, uid_t uid);

/* The per-sandbox side: ids, cgroups, and the spec's hardening fields. */
typedef struct cm_jail {
    cm_isolation *iso;
    cm_cgroup cg;
    uid_t uid;
    gid_t gid;
    bool have_ids;
} cm_jail;

/* Fills spec->host_uid/gid and every hardening field of spec from the
 * active layers; creates the sandbox's cgroups (attached by the spawn). */
int cm_jail_prepare(cm_isolation *iso, const cm_limits *lim, cm_jail *j, cm_sandbox_spec *spec,
                    cm_error *err);
/* After the sandbox is reaped: reads its cgroup usage (u may be NULL),
 * removes the cgroups, releases the ids.  Idempotent. */
void cm_jail_finish(cm_jail *j, cm_cgroup_usage *u);

/* ---- cgroup.c ---- */
int cm_cgroup_setup(cm_isolation *iso, cm_error *err);
void cm_cgroup_teardown(cm_isolation *iso);
int cm_cgroup_create(cm_isolation *iso, const cm_limits *lim, cm_cgroup *cg, cm_error *err);
int cm_cgroup_attach(const cm_cgroup *cg, pid_t pid, cm_error *err);
/* Kills anything left, removes the directories.  Idempotent. */
void cm_cgroup_destroy(cm_isolation *iso, cm_cgroup *cg);
/* Rewrites a live cgroup's limits from `from` to `to` (warm pool take). */
int cm_cgroup_update_limits(const cm_isolation *iso, const cm_cgroup *cg, const cm_limits *from,
                            const cm_limits *to, cm_error *err);
/* Removes cgroups of engine instances whose process is gone. */
void cm_cgroup_reap_dead_instances(cm_isolation *iso);
/* CPU time used so far in ms (one file read: a chain's baseline), or -1. */
double cm_cgroup_read_cpu_ms(const cm_isolation *iso, const cm_cgroup *cg);

/* ---- cgroup_usage.c: usage with the files opened ahead (and cm_cgroup_read_usage) ---- */
typedef struct cm_cgroup_usage_fds {
    int oom, peak, cpu_stat, cpu;
    bool v2;
} cm_cgroup_usage_fds;
/* Opens the usage files (any that fail read as "unknown"). */
void cm_cgroup_usage_open(const cm_isolation *iso, const cm_cgroup *cg, cm_cgroup_usage_fds *f);
/* Reads the current values (cm_cgroup_read_usage = open + read + close). */
void cm_cgroup_usage_read(const cm_cgroup_usage_fds *f, cm_cgroup_usage *u);
void cm_cgroup_usage_close(cm_cgroup_usage_fds *f);
/* Usage now: open, read, close. */
void cm_cgroup_read_usage(const cm_isolation *iso, const cm_cgroup *cg, cm_cgroup_usage *u);

/* ---- seccomp.c ---- */
int cm_seccomp_compile(cm_isolation *iso, cm_error *err);

/* ---- guard.c ---- */
int cm_guard_attach(cm_isolation *iso, cm_error *err);
void cm_guard_detach(cm_isolation *iso);

/* ---- doctor.c ---- */
struct cm_config;
/* Engine start: init from the config, log every layer, fail only when the
 * config's engine.require_layers names a layer that is not active. */
int cm_isolation_start(cm_isolation *iso, const struct cm_config *cfg, cm_error *err);
/* `codemode doctor [--config FILE]`: exit 0 all required layers active.
 * exe_dir: the codemode binary's directory (default rootfs). */
int cm_cmd_doctor(int argc, char **argv, const char *exe_dir);

#endif
