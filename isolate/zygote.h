/* zygote.h — the engine's side of the sandbox zygote: one long-lived
 * sandbox per rootfs flavour whose runner has started CPython and imported
 * everything, and which forks a freshly namespaced, hardened sandbox per
 * request (rootfs/runner.py `zygote_main`, isolate/zygote_ext.c).  Owned by
 * the warm pool (which lends it the isolation settings and context); started lazily by whichever
 * thread needs it first (it has no parent-death signal: it exits when its control socket reads
 * end-of-file, i.e. when the engine is gone), restarted after a failure at
 * most once per second.  Used only when the cgroup layer is active: chains of one
 * zygote share its user namespace, so their per-chain task and memory caps
 * must come from their own cgroups. */
#ifndef CM_ZYGOTE_H
#define CM_ZYGOTE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "isolation.h"

typedef struct cm_zygote {
    pthread_mutex_t mu;
    const cm_iso_config *cfg; /* borrowed from the pool */
    cm_isolation *iso;
    bool full;      /* rootfs flavour */
    atomic_bool up; /* running and configured (read without the lock by stats) */
    cm_sandbox sb;
    cm_jail jail;
    int fd;     /* SOCK_SEQPACKET to the zygote */
    int out_fd; /* its stdout/stderr (read on failure) */
    int64_t retry_after_ms;
    char last_error[256];
    char primed[256]; /* key of the data its children inherit (cm_zygote_prime), or "" */
    atomic_long spawns, starts;
} cm_zygote;

/* cfg and iso are borrowed and must outlive the zygote. */
void cm_zygote_init(cm_zygote *z, bool full, const cm_iso_config *cfg, cm_isolation *iso);
/* Kills and reaps the zygote (its children die with it). */
void cm_zygote_stop(cm_zygote *z);

/* Forks one sandbox from the zygote (starting it first if needed): makes
 * the chain's cgroups (jail), hands the zygote the sandbox's ends of the
 * control socket and output pipe, moves the child into the cgroups and
 * lets it go on by writing "G" on engine_ctl.  Returns 0 with *sb and *jail
 * filled (sb->foreign: reap by pidfd), 1 when the zygote is not available
 * (disabled, not startable right now: the caller spawns directly), -1 on a
 * failure with nothing left behind. */
int cm_zygote_spawn(cm_zygote *z, const cm_limits *lim, int engine_ctl, int child_ctl,
                    int child_out, cm_sandbox *sb, cm_jail *jail, char *primed, size_t primed_cap,
                    cm_error *err);

/* Hands a running zygote data every sandbox it forks from now on inherits
 * already parsed: a control frame's JSON text (the engine's `tools` frame:
 * the tool table of the key, rootfs/README.md "Control protocol"), in a
 * memfd.  A spawn then reports key in primed.  0 done, 1 the zygote is not
 * running (nothing sent), -1 it refused or failed. */
int cm_zygote_prime(cm_zygote *z, const char *key, const char *data, size_t len, cm_error *err);
/* The key its children inherit now ("" for none). */
void cm_zygote_primed_key(cm_zygote *z, char *out, size_t cap);

#endif
