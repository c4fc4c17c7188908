/* seccomp.c — the sandbox's system-call allow-list, compiled once at engine
 * start with libseccomp and exported as classic BPF, so that each sandbox
 * child installs it with one raw seccomp(2) call (the child of a raw clone
 * must not call libseccomp, which allocates).
 *
 * Policy: default deny (EPERM); an allow-list of what CPython, asyncio and
 * threads need; clone3 -> ENOSYS (glibc then falls back to clone, whose
 * flags we can see); clone only without namespace flags; ioctl with
 * TIOCSTI/TIOCLINUX denied on the low 32 bits of the command (the kernel
 * ignores the high bits: CVE-2019-10063); socketpair only AF_UNIX (asyncio's
 * self-pipe); socket denied outright (the control socket is already open).
 * Everything dangerous (mount API, unshare, setns, pivot_root, chroot, bpf,
 * ptrace, process_vm_*, keyctl, userfaultfd, io_uring, perf_event_open,
 * kexec, modules, reboot, swapon, acct, settimeofday...) is simply not on
 * the list.  Foreign architectures are killed. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "isolation.h"
#include "util.h"

static const char *const allowed_syscalls[] = {
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "open",
    "openat",
    "openat2",
    "close",
    "close_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "statfs",
    "fstatfs",
    "lseek",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "msync",
    "mincore",
    "mlock",
    "munlock",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigsuspend",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "kill",
    "tkill",
    "tgkill",
    "pidfd_open",
    "pidfd_send_signal",
    "access",
    "faccessat",
    "faccessat2",
    "pipe",
    "pipe2",
    "select",
    "pselect6",
    "poll",
    "ppoll",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "getitimer",
    "setitimer",
    "alarm",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "getpgid",
    "getpgrp",
    "getsid",
    "setpgid",
    "getrlimit",
    "prlimit64",
    "getrusage",
    "sysinfo",
    "times",
    "uname",
    "umask",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "ftruncate",
    "truncate",
    "getdents",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "unlink",
    "unlinkat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "readlink",
    "readlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "fallocate",
    "fadvise64",
    "readahead",
    "sendfile",
    "splice",
    "tee",
    "copy_file_range",
    "memfd_create",
    "futex",
    "futex_waitv",
    "set_robust_list",
    "get_robust_list",
    "set_tid_address",
    "rseq",
    "arch_prctl",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "execve",
    "fork",
    "vfork",
    "getrandom",
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "restart_syscall",
    "prctl",
    "getpriority",
    "setpriority",
    "getcpu",
    "membarrier",
    "mlock2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "statmount",
    "listmount",
};

/* Namespace-creating clone flags: clone with any of them is denied. */
#define CLONE_NS_FLAGS                                                                             \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |     \
     CLONE_NEWCGROUP | CLONE_NEWTIME)

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
                    const struct scmp_arg_cmp *cmp, cm_error *err)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a syscall on this architecture/libseccomp: nothing to allow */
    int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
    if (rc < 0) {
        errno = -rc;
        return cm_error_sys(err, CM_ERR_INTERNAL, "seccomp rule for %s", name);
    }
    return 0;
}

/* Allows ioctl for every 64-bit command value in [lo, hi] (hi < 2^32),
 * as aligned power-of-two blocks matched with MASKED_EQ (libseccomp allows
 * one comparison per argument in a rule). */
static int allow_ioctl_range(scmp_filter_ctx ctx, uint64_t lo, uint64_t hi, cm_error *err)
{
    while (lo <= hi) {
        uint64_t size = 1;
        while (lo % (size * 2) == 0 && lo + size * 2 - 1 <= hi)
            size *= 2;
        struct scmp_arg_cmp block[] = {SCMP_A1(SCMP_CMP_MASKED_EQ, ~(size - 1), lo)};
        if (add_rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, block, err) < 0)
            return -1;
        lo += size;
    }
    return 0;
}

/* ioctl: allowed unless the command's low 32 bits (all the kernel looks
 * at: CVE-2019-10063) are TIOCSTI or TIOCLINUX.  The denial equals the
 * default action, so it is written as allow rules over clean 32-bit
 * commands; a command with any of the high 32 bits set is never allowed
 * (no legitimate caller passes one; (1<<32)|TIOCSTI is the attack). */
static int add_ioctl_rules(scmp_filter_ctx ctx, cm_error *err)
{
    struct scmp_arg_cmp below[] = {SCMP_A1(SCMP_CMP_LT, TIOCSTI)};
    if (add_rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, below, err) < 0 ||
        allow_ioctl_range(ctx, TIOCSTI + 1, TIOCLINUX - 1, err) < 0 ||
        allow_ioctl_range(ctx, TIOCLINUX + 1, 0xffffffffULL, err) < 0)
        return -1;
    return 0;
}

static int add_special_rules(scmp_filter_ctx ctx, cm_error *err)
{
    struct scmp_arg_cmp clone_ok[] = {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0)};
    struct scmp_arg_cmp unix_only[] = {SCMP_A0(SCMP_CMP_EQ, AF_UNIX)};
    if (add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err) < 0 ||
        add_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, clone_ok, err) < 0 ||
        add_rule(ctx, SCMP_ACT_ALLOW, "socketpair", 1, unix_only, err) < 0)
        return -1;
    return add_ioctl_rules(ctx, err);
}

/* libseccomp 2.5 exports only to an fd: export into a memfd, read it back. */
static int export_filter(scmp_filter_ctx ctx, cm_isolation *iso, cm_error *err)
{
    cm_autofd int fd = memfd_create("codemode-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_INTERNAL, "memfd_create");
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        errno = -rc;
        return cm_error_sys(err, CM_ERR_INTERNAL, "seccomp_export_bpf");
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
        return cm_error_set(err, CM_ERR_INTERNAL, "seccomp filter has a bad size (%lld bytes)",
                            (long long)size);
    iso->seccomp_insns = cm_xmalloc((size_t)size);
    if (pread(fd, iso->seccomp_insns, (size_t)size, 0) != size)
        return cm_error_sys(err, CM_ERR_INTERNAL, "read back seccomp filter");
    iso->seccomp_len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
    return 0;
}

int cm_seccomp_compile(cm_isolation *iso, cm_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return cm_error_set(err, CM_ERR_INTERNAL, "seccomp_init failed");
    int rc = 0;
    /* Bits the child sets itself (no_new_privs is set before installing). */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 ||
        seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0)
        rc = cm_error_set(err, CM_ERR_INTERNAL, "seccomp attributes");
    for (size_t i = 0; rc == 0 && i < sizeof allowed_syscalls / sizeof *allowed_syscalls; i++)
        rc = add_rule(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0, NULL, err);
    if (rc == 0)
        rc = add_special_rules(ctx, err);
    if (rc == 0)
        rc = export_filter(ctx, iso, err);
    seccomp_release(ctx);
    return rc;
}
