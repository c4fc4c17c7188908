/* ucounts.c — low per-user-namespace limits for every sandbox (ucounts.h).
 *
 * Why it exists: the kernel charges what a process holds in a user
 * namespace (inotify instances and watches, fanotify groups, namespaces) at
 * every level up to the initial namespace, to the user that created each
 * namespace — here host root, the engine.  Measured: a chain holding 128
 * inotify instances made inotify_init() fail for every host root process.
 * The /proc/sys/user/max_* sysctls are per user namespace and writable by
 * CAP_SYS_RESOURCE in it, and every level's limit is checked on each
 * charge, so a low limit written into the sandbox's own namespace bounds
 * what it can take from the host.  The host's values are never touched. */
#include "ucounts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SYSCTL_DIR "/proc/sys/user/"

/* Inotify: enough for a library that watches a few files, far below the
 * host's 128 instances.  Fanotify and new user namespaces: none (seccomp
 * denies fanotify_init and unshare as well; these hold without it). */
enum {
    LIMIT_INOTIFY_INSTANCES = 8,
    LIMIT_INOTIFY_WATCHES = 256,
};

typedef struct limit_def {
    const char *name;
    unsigned long fixed; /* the value, unless per_child */
    bool per_child;      /* ns_children (+ extra) namespaces of this kind */
    unsigned long extra; /* namespaces the sandbox itself still creates */
    bool required;       /* must exist (the userns_limit layer probes it) */
} limit_def;

static const limit_def limits[] = {
    {"max_user_namespaces", 0, false, 0, true},
    {"max_inotify_instances", LIMIT_INOTIFY_INSTANCES, false, 0, false},
    {"max_inotify_watches", LIMIT_INOTIFY_WATCHES, false, 0, false},
    {"max_fanotify_groups", 0, false, 0, false},
    {"max_fanotify_marks", 0, false, 0, false},
    {"max_pid_namespaces", 0, true, 0, false},
    {"max_mnt_namespaces", 0, true, 0, false},
    {"max_net_namespaces", 0, true, 0, false},
    {"max_ipc_namespaces", 0, true, 0, false},
    {"max_uts_namespaces", 0, true, 0, false},
    /* the sandbox re-enters a fresh cgroup namespace after its cgroup
     * attach (counted once: the namespaces made by the clone itself were
     * charged to host root's kuid, before the id maps) */
    {"max_cgroup_namespaces", 0, true, 1, false},
    {"max_time_namespaces", 0, false, 0, false},
};

void cm_ucounts_plan_make(cm_ucounts_plan *p, unsigned ns_children)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < sizeof limits / sizeof *limits && p->n < CM_UCOUNTS_MAX; i++) {
        const limit_def *d = &limits[i];
        cm_ucount_limit *l = &p->v[p->n];
        snprintf(l->path, sizeof l->path, SYSCTL_DIR "%s", d->name);
        if (!d->required && access(l->path, F_OK) != 0)
            continue; /* older kernel: no such ucount */
        l->name = d->name;
        l->n = d->per_child ? (unsigned long)ns_children + d->extra : d->fixed;
        snprintf(l->value, sizeof l->value, "%lu\n", l->n);
        p->n++;
    }
}

int cm_ucounts_apply(const cm_ucounts_plan *p, const char **what)
{
    for (int i = 0; i < p->n; i++) {
        const cm_ucount_limit *l = &p->v[i];
        *what = l->name;
        int fd = open(l->path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        size_t len = strlen(l->value);
        ssize_t n;
        do {
            n = write(fd, l->value, len);
        } while (n < 0 && errno == EINTR);
        int saved = errno;
        close(fd);
        if (n != (ssize_t)len) {
            errno = n < 0 ? saved : EIO;
            return -1;
        }
    }
    return 0;
}

void cm_ucounts_describe(const cm_ucounts_plan *p, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < p->n && used + 1 < cap; i++) {
        /* "max_pid_namespaces" -> "pid", "max_inotify_watches" -> "inotify_watches" */
        const char *name = p->v[i].name + strlen("max_");
        size_t len = strlen(name);
        const char *ns = strstr(name, "_namespaces");
        if (ns && ns[strlen("_namespaces")] == '\0')
            len = (size_t)(ns - name);
        int n =
            snprintf(buf + used, cap - used, "%s%.*s=%lu", i ? " " : "", (int)len, name, p->v[i].n);
        if (n < 0)
            break;
        used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
    }
}
