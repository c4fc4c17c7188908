/* pool.h — the warm pool: single-use sandboxes built ahead of time (ids,
 * cgroups, namespaces, mounts, runner started with its imports done and its
 * run prepared, `ready` received), per rootfs flavour (minimal, and
 * full when engine.pool_full_size > 0).  A chain takes one, uses it once,
 * and hands it to the pool's reaper, which kills, reaps and removes its
 * cgroups off the request path.  Refills run on long-lived threads (the
 * sandbox's parent-death signal is tied to the spawning thread), at most
 * engine.pool_refill_concurrency at once.  Owned by the engine context, which
 * hands it the isolation settings, the isolation context and its metrics
 * callbacks (it never sees the engine itself). */
#ifndef CM_POOL_H
#define CM_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "cgroup.h"
#include "isolation.h"
#include "runner_proto.h"

typedef struct cm_pool cm_pool;

/* The engine's counters the pool reports to (either may be NULL). */
typedef struct cm_pool_metrics {
    void *ctx;
    void (*refill)(void *ctx, double build_ms); /* a refill built one sandbox */
    void (*miss)(void *ctx);                    /* a take found no idle sandbox */
    /* optional: what the next chain will need sent ahead (its tool table):
     * when its key differs from have, 1 with key set and *data (a control
     * frame's JSON text, malloc'd, *len bytes); else 0.  The pool gives it to
     * the zygote (every sandbox forked after inherits it) or, for a sandbox
     * built without one, writes it to the sandbox's control socket. */
    int (*prime_data)(void *ctx, const char *have, char *key, size_t cap, char **data, size_t *len);
} cm_pool_metrics;

#define CM_POOL_KEY_MAX 256

/* One built sandbox: the runner waits on ctl_fd for its `run` frame. */
typedef struct cm_pool_sandbox {
    cm_sandbox sb;
    cm_jail jail;
    cm_limits limits;             /* the cgroup limits it was built with */
    int ctl_fd;                   /* control socket (non-blocking) */
    int out_fd;                   /* runner stdout/stderr (non-blocking) */
    bool full;                    /* rootfs flavour */
    double build_ms;              /* spawn → ready */
    char primed[CM_POOL_KEY_MAX]; /* key of what prime sent ("": nothing) */
    /* its cgroup usage files, opened while it was built (usage_open), so a
     * chain only reads them: no cgroup path walk on the request path */
    cm_cgroup_usage_fds usage;
    bool usage_open;
    /* its tasks when it reported ready (init, chain process), read
     * then so that a take only resets their priority (no cgroup read) */
    pid_t tids[8];
    int ntids;
    struct cm_pool_sandbox *next;
} cm_pool_sandbox;

/* Starts the reaper and the refill threads (sizes from cfg, which is
 * copied; its strings and iso must outlive the pool).  *out is set even on
 * failure (cm_pool_stop it). */
int cm_pool_start(const cm_iso_config *cfg, cm_isolation *iso, const cm_pool_metrics *metrics,
                  cm_pool **out, cm_error *err);
/* Stops refilling, destroys the idle sandboxes, drains the reaper. */
void cm_pool_stop(cm_pool *p);

/* An idle sandbox of the flavour, or NULL (a miss: counted, and the
 * caller builds on the request path).  The caller owns the result and
 * must pass its sb + jail to cm_pool_dispose. */
cm_pool_sandbox *cm_pool_take(cm_pool *p, bool full);
/* Kill + reap + cgroup removal + id release on the reaper thread. */
void cm_pool_dispose(cm_pool *p, cm_sandbox *sb, cm_jail *jail);
/* Blocks until the minimal flavour has a sandbox (or timeout); 0 if it has. */
int cm_pool_wait_warm(cm_pool *p, int timeout_ms);

/* Builds one sandbox and waits (until deadline_ms, CLOCK_MONOTONIC ms) for
 * the runner's `ready`.  Nothing is left behind on failure. */
int cm_pool_build(cm_pool *p, bool full, const cm_limits *lim, int64_t deadline_ms,
                  cm_pool_sandbox *out, cm_error *err);
/* Starts one sandbox for spec (its control_fd/output_fd are the sandbox's
 * ends; engine_ctl is the engine's end of the control socket): forked from
 * the flavour's zygote when p is not NULL and its zygote is available, else
 * cloned directly with iso's layers.  Fills *sb and *jail, and primed (if
 * not NULL) with the key of the data the sandbox inherited from the zygote
 * (prime_data; "" for none); nothing is left behind on failure. */
int cm_pool_spawn(cm_pool *p, cm_isolation *iso, bool full, const cm_limits *lim, int engine_ctl,
                  cm_sandbox_spec *spec, cm_sandbox *sb, cm_jail *jail, char *primed,
                  size_t primed_cap, cm_error *err);
/* Applies lim to a live sandbox's cgroups when it differs from what it was
 * built with (a request lowered them). */
int cm_pool_apply_limits(cm_pool_sandbox *s, const cm_limits *lim, cm_error *err);

/* Gauges: {"size","idle","idle_full","building","misses","hits","disposing"}. */
typedef struct cm_pool_stats {
    int size, full_size, idle, idle_full, building, disposing;
    long hits, misses;
    int zygotes;        /* running zygotes (0-2) */
    long zygote_spawns; /* sandboxes forked from a zygote */
} cm_pool_stats;
void cm_pool_get_stats(cm_pool *p, cm_pool_stats *s);

#endif
