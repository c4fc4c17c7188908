/* harden.h — the last steps of every sandbox child, shared by the two ways a
 * sandbox is born: a fresh clone from the engine (sandbox.c, before execve)
 * and a fork of the pre-imported zygote (zygote_ext.c, before the runner goes
 * on in Python).  Raw system calls only: both callers are children that must
 * not allocate or take locks.  Each function returns 0, or -1 with errno set
 * and *step naming what failed (a static string). */
#ifndef CM_HARDEN_H
#define CM_HARDEN_H

#include <linux/filter.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct cm_harden_rlimits {
    unsigned long fsize, nofile; /* file size, open files */
    unsigned long nproc, as; /* tasks of the uid (0 = unchanged), address space (0 = unchanged) */
} cm_harden_rlimits;

/* core 0 and the given caps. */
int cm_harden_rlimits_apply(const cm_harden_rlimits *r, const char **step);
/* Empties every capability set (bounding 0..upto) and locks the securebits. */
int cm_harden_drop_caps(int upto, const char **step);
/* Installs a precompiled seccomp filter (no_new_privs must be set). */
int cm_harden_seccomp(const struct sock_filter *insns, unsigned short len, const char **step);
/* Forks; the parent becomes the sandbox's minimal init (never returns), the
 * child returns 0.  after_fork_child may be NULL. */
int cm_harden_fork_init(void (*after_fork_child)(void), const char **step);
/* getcwd() must be "/" (CVE-2024-21626). */
int cm_harden_check_cwd(const char **step);

#endif
