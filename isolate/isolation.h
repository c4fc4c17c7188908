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

#include "cgroup.h"
#include "error.h"
#include "sandbox.h"
#include "uidslot.h"

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

typedef struct cm_layer_status {
    cm_layer_state state;
    char detail[256]; /* what is active, or why not */
} cm_layer_status;

struct cm_guard;
struct cm_privsep;
struct cJSON;

/* What isolate needs of the engine's configuration (`engine:` keys; the
 * engine fills it, engine/config.c cm_config_iso).  Strings are borrowed:
 * they must outlive whatever was started with them. */
typedef struct cm_iso_config {
    const char *rootfs;         /* engine.rootfs, absolute */
    const char *rootfs_full;    /* engine.rootfs_full (may be NULL or the same as rootfs) */
    uid_t sandbox_uid;          /* engine.sandbox_uid */
    gid_t sandbox_gid;          /* engine.sandbox_gid */
    unsigned sandbox_uid_range; /* engine.sandbox_uid_range */
    const char *runtime_dir;    /* engine.runtime_dir: the uid-range locks (uidslot.h) */
    size_t tmp_size_bytes;      /* engine.tmp_size_mb: a sandbox's /tmp */
    cm_limits limits;           /* engine.memory_mb, cpu_quota_pct, pids_max: the defaults */
    bool test_mode;             /* engine.test_mode: honour CODEMODE_TEST_DISABLE_LAYER */
    const struct cJSON *require_layers; /* engine.require_layers (borrowed array, or NULL) */
    bool zygote;                        /* engine.zygote: fork sandboxes from a zygote */
    int workers;                        /* engine.workers: chains running at once (zygote's room) */
    int pool_size;                      /* engine.pool_size: warm minimal-rootfs sandboxes */
    int pool_full_size;                 /* engine.pool_full_size: warm full-rootfs sandboxes */
    int pool_refill_concurrency;        /* engine.pool_refill_concurrency */
    bool provider_jail;                 /* engine.provider_jail (doctor reports it) */
    const char *user; /* engine.user (NULL: unset): the service user (doctor reports it) */
} cm_iso_config;

typedef struct cm_isolation {
    cm_layer_status layers[CM_LAYER_COUNT];
    bool disabled[CM_LAYER_COUNT];
    /* seccomp: compiled once, installed raw in each child */
    struct sock_filter *seccomp_insns;
    unsigned short seccomp_len;
    int last_cap;           /* highest capability number the kernel knows */
    cm_cgroup_root cgroups; /* the cgroup layer's hierarchy (cgroup.h) */
    /* uid allocation: a bitmap over [uid_base, uid_base + uid_count) */
    pthread_mutex_t uid_lock;
    uid_t uid_base;
    gid_t gid_base;
    unsigned uid_count;
    unsigned char *uid_used;
    unsigned uid_next;
    cm_uid_slot uid_slot; /* the host-wide claim on [uid_base, +uid_count) (uidslot.h) */
    struct cm_guard *guard;
    /* the privileged part (privsep.h) once the engine dropped to its
     * service user: id maps and cgroup attaches are requests; NULL: the
     * engine does them itself (root, or rootless) */
    struct cm_privsep *privsep;
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
/* Takes the range's last uid/gid out of the allocator for good (the
 * service user when no account is configured): -1 when the range is too
 * small to give one away. */
int cm_isolation_reserve_last(cm_isolation *iso, uid_t *uid, gid_t *gid, cm_error *err);

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
/* Moves pid (pidfd: the same process, or -1) into j's cgroups, through
 * the privileged part when the engine has one (a zygote's child). */
int cm_jail_attach(cm_jail *j, pid_t pid, int pidfd, cm_error *err);

/* ---- seccomp.c ---- */
int cm_seccomp_compile(cm_isolation *iso, cm_error *err);

/* ---- guard.c ---- */
int cm_guard_attach(cm_isolation *iso, cm_error *err);
void cm_guard_detach(cm_isolation *iso);

/* ---- doctor.c ---- */
/* Engine start: init from the settings, log every layer, fail only when
 * cfg->require_layers names a layer that is not active. */
int cm_isolation_start(cm_isolation *iso, const cm_iso_config *cfg, cm_error *err);
/* `codemode doctor`'s report on stdout for the settings (the engine loads
 * the config, engine/cmd_doctor.c): 0 when every required layer is active
 * and the live check passed, 1 when not, -1 when the layers cannot even be
 * prepared (err set). */
int cm_doctor_report(const cm_iso_config *cfg, const char *version, cm_error *err);

#endif
