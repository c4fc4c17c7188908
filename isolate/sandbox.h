/* sandbox.h — start one process inside a fresh set of namespaces with the
 * rootfs as its root.  Foundation floor: new user (root inside maps to an
 * unprivileged host uid/gid, setgroups denied), pid, mount, network, ipc and
 * uts namespaces; the rootfs bind-mounted read-only and pivot_root'ed into
 * (old root detached); a size-capped tmpfs on /tmp; /dev/{null,zero,urandom}
 * bind-mounted; no host path visible; no_new_privs; parent-death SIGKILL.
 *
 * The caller owns the result: it must cm_sandbox_kill() and/or
 * cm_sandbox_reap() it exactly once.  Safe to call from any thread of a
 * multi-threaded process (the child only makes raw system calls before
 * execve). */
#ifndef CM_SANDBOX_H
#define CM_SANDBOX_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "error.h"

typedef struct cm_sandbox_spec {
    const char *rootfs;      /* absolute, symlink-free path of the rootfs directory */
    uid_t host_uid;          /* host uid that sandbox uid 0 maps to (never 0) */
    gid_t host_gid;          /* host gid that sandbox gid 0 maps to (never 0) */
    const char *const *argv; /* argv[0] is a path inside the rootfs */
    const char *const *envp;
    int control_fd;        /* becomes fd 3 inside (the control socket) */
    int output_fd;         /* becomes fd 1 and 2 inside; -1 for /dev/null */
    size_t tmp_size_bytes; /* size cap of the /tmp tmpfs */
    /* Hardening layers (issue #3); all zero = the namespace floor only. */
    const struct sock_filter *seccomp_insns; /* precompiled filter, installed last */
    unsigned short seccomp_len;              /* 0: no seccomp */
    int drop_caps_upto; /* > 0: empty every capability set (bounding 0..this), lock securebits */
    /* the per-user-namespace limits of ucounts.h (max_user_namespaces=0,
     * inotify, fanotify, namespaces) inside the new user namespace */
    bool limit_userns;
    unsigned ns_children; /* namespaces of each kind it may still create (the zygote's chains) */
    bool rlimits;         /* core 0, and the rlimit_* values below */
    unsigned long rlimit_fsize, rlimit_nofile; /* file size, open files */
    unsigned long rlimit_nproc, rlimit_as;     /* tasks of the sandbox uid, address space */
    bool use_init; /* pid 1 stays a minimal reaper; argv runs as its child */
    /* No parent-death signal: for a long-lived sandbox spawned from any
     * thread (the zygote), which instead exits when its control socket
     * reads end-of-file, i.e. when the engine process is gone. */
    bool no_deathsig;
    /* Called by the parent with the child's host pid before the child may
     * proceed past its id maps (cgroup attach).  Optional. */
    int (*attach)(void *ctx, pid_t pid, cm_error *err);
    void *attach_ctx;
    /* Writes the child's id maps instead of the parent (an unprivileged
     * engine asks the privileged part: isolation.c).  Optional. */
    int (*id_maps)(void *ctx, int pidfd, cm_error *err);
    void *id_maps_ctx;
} cm_sandbox_spec;

typedef struct cm_sandbox {
    pid_t pid;    /* host pid of the sandbox's pid 1; -1 when reaped */
    int pidfd;    /* pidfd of that process (O_CLOEXEC); -1 when reaped */
    bool foreign; /* not our child (forked by the zygote): reaped by the zygote,
                   * "reap" waits on the pidfd and reports status 0, no rusage */
} cm_sandbox;

/* Spawns the sandboxed process and waits until it has exec'd argv[0] (or
 * failed to: then returns -1 with the child's own error message, kind
 * CM_ERR_SANDBOX_FAILURE, and nothing is left running). */
int cm_sandbox_spawn(const cm_sandbox_spec *spec, cm_sandbox *out, cm_error *err);

/* SIGKILL to the sandbox's pid 1 (so the kernel kills its whole pid
 * namespace).  Idempotent; safe after the process already exited. */
void cm_sandbox_kill(cm_sandbox *sb);

/* Waits for pid 1 to exit and collects it; fills *status (waitpid-style) and
 * *usage (may be NULL; zeroed for a foreign sandbox).  Closes the pidfd. */
int cm_sandbox_reap(cm_sandbox *sb, int *status, struct rusage *usage, cm_error *err);

#endif
