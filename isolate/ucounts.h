/* ucounts.h — the per-user-namespace limits (/proc/sys/user/max_*) every
 * sandbox's user namespace gets, so that what a chain holds there (inotify
 * instances and watches, namespaces, fanotify groups) stays bounded and is
 * not taken from the host user that created the namespace (issue 14).
 *
 * The parent fills a plan (paths and value strings) before clone; the child
 * applies it with raw open/write while it still sees the host /proc and
 * holds CAP_SYS_RESOURCE in its new user namespace. */
#ifndef CM_UCOUNTS_H
#define CM_UCOUNTS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define CM_UCOUNTS_MAX 16

typedef struct cm_ucount_limit {
    const char *name; /* "max_inotify_instances" */
    char path[64];    /* "/proc/sys/user/max_inotify_instances" */
    char value[24];   /* "8\n" */
    unsigned long n;  /* the value as a number */
} cm_ucount_limit;

typedef struct cm_ucounts_plan {
    cm_ucount_limit v[CM_UCOUNTS_MAX];
    int n;
} cm_ucounts_plan;

/* The limits a sandbox's user namespace gets.  ns_children: how many
 * namespaces of each kind (pid, mnt, net, ipc, uts, cgroup) processes of the
 * sandbox may create after the limits are written — 0 for a chain's own
 * sandbox (only its cgroup namespace is re-entered once), the zygote's bound
 * on live chains for the zygote.  Sysctls this kernel does not have are left
 * out (max_user_namespaces is required: the caller's probe checks it). */
void cm_ucounts_plan_make(cm_ucounts_plan *p, unsigned ns_children);

/* In the child (raw system calls only): writes every limit of the plan.
 * Returns 0, or -1 with errno set and *what naming the sysctl. */
int cm_ucounts_apply(const cm_ucounts_plan *p, const char **what);

/* "user=0 inotify_instances=8 ... pid=0" (max_ and _namespaces dropped) for
 * the start-up report; writes at most cap bytes (always NUL-terminated). */
void cm_ucounts_describe(const cm_ucounts_plan *p, char *buf, size_t cap);

#endif
