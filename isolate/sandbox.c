/* sandbox.c — start one process inside fresh namespaces with the rootfs as
 * its root (contract in sandbox.h).
 *
 * Why it exists: the kernel, not the Python language filter, is codemode's
 * security boundary.  This file builds the namespace and filesystem floor
 * every sandbox stands on.
 *
 * Isolation layers here:
 *   - namespaces: user (sandbox root = one unprivileged host uid/gid,
 *     setgroups denied), pid, mount, net (empty), ipc, uts, cgroup;
 *   - filesystem: rootfs bind-mounted, pivot_root'ed into, old root detached,
 *     remounted read-only (keeping the flags the kernel locks); size-capped
 *     nosuid,nodev,noexec tmpfs on /tmp; /dev/{null,zero,urandom} bound in;
 *     no /proc, no host path visible;
 *   - process: parent-death SIGKILL, setsid, no_new_privs, every fd but
 *     0-3 closed, signal dispositions and mask reset, getcwd() checked.
 * Hardening applied here when the spec asks (prepared by isolation.c):
 * max_user_namespaces=0 inside, a fresh cgroup namespace after the parent
 * attached the cgroups, rlimits, every capability set emptied with locked
 * securebits, the precompiled seccomp filter (installed last), and a
 * minimal init as pid 1 with the runner as its child.
 *
 * Process model.  The engine is multi-threaded, so the child is created with
 * the raw clone syscall (fork semantics, CLONE_PIDFD) and, until execve, only
 * makes raw system calls: every string it needs is computed by the parent
 * before clone (struct child_plan), errors are formatted by hand into a stack
 * buffer and sent over a close-on-exec pipe.  Order of set-up (mirrors
 * bubblewrap/nsjail; see isolate/README.md):
 *   parent: clone -> setgroups=deny, gid_map, uid_map -> sync byte -> read the
 *           error pipe until EOF (EOF with no bytes = exec succeeded);
 *   child:  signals reset, pdeathsig -> / rprivate -> bind rootfs -> tmpfs
 *           /tmp, /dev nodes -> open /dev/null, pivot_root, detach old root ->
 *           max_user_namespaces=0 -> read-only remount -> wait sync (the
 *           parent wrote the maps and attached the cgroups) ->
 *           setresgid/setresuid(0) -> cgroup ns -> hostname, setsid,
 *           no_new_privs -> rlimits -> fds 0-3, close the rest -> getcwd()
 *           == "/" -> drop capabilities -> seccomp -> fork: pid 1 stays the
 *           init, its child execve's. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harden.h"
#include "ucounts.h"
#include "util.h"

#define SANDBOX_HOSTNAME "codemode"
#define CHILD_EXIT_FAILURE 127
#define CHILD_MSG_MAX 512

enum { DEV_NODE_COUNT = 3 };
static const char *const dev_nodes[DEV_NODE_COUNT] = {"/dev/null", "/dev/zero", "/dev/urandom"};

/* Everything the child needs, computed by the parent before clone so the
 * child never allocates or formats. */
typedef struct child_plan {
    const cm_sandbox_spec *spec;
    char rootfs[PATH_MAX];
    char tmp_path[PATH_MAX];
    char tmp_opts[64];
    char dev_paths[DEV_NODE_COUNT][PATH_MAX];
    int sync_fd;             /* child's end of the sync socketpair */
    int sync_peer_fd;        /* parent's end: closed in the child */
    int err_fd;              /* write end of the error pipe (O_CLOEXEC) */
    int err_peer_fd;         /* read end: closed in the child */
    cm_ucounts_plan ucounts; /* when spec->limit_userns */
} child_plan;

/* ---------------------------------------------------------------- child --
 * Below this line until execve: raw system calls and async-signal-safe
 * functions only. */

static size_t child_strlcat(char *dst, size_t cap, const char *src)
{
    size_t len = 0;
    while (len < cap - 1 && dst[len])
        len++;
    while (len < cap - 1 && *src)
        dst[len++] = *src++;
    dst[len] = '\0';
    return len;
}

/* Reports "<step>[ <detail>]: <strerror(errno)>" on the error pipe and exits. */
static _Noreturn void child_fail(const child_plan *plan, const char *step, const char *detail)
{
    int saved = errno;
    char msg[CHILD_MSG_MAX] = "";
    child_strlcat(msg, sizeof msg, step);
    if (detail) {
        child_strlcat(msg, sizeof msg, " ");
        child_strlcat(msg, sizeof msg, detail);
    }
    child_strlcat(msg, sizeof msg, ": ");
    const char *desc = saved ? strerrordesc_np(saved) : "failed";
    size_t len = child_strlcat(msg, sizeof msg, desc ? desc : "unknown error");
    const char *p = msg;
    while (len > 0) {
        ssize_t n = write(plan->err_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
    _exit(CHILD_EXIT_FAILURE);
}

/* The child starts with the calling thread's signal handlers (engine code)
 * and mask; give it default dispositions and an empty mask. */
static void child_reset_signals(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* EINVAL for libc-internal signals */
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* SIGKILL when the spawning thread dies.  getppid() cannot detect a parent
 * that died before this point (in a new pid namespace it is always 0), so
 * that case is caught by the sync socket reading EOF instead. */
static void child_set_deathsig(const child_plan *plan)
{
    if (!plan->spec->no_deathsig && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(plan, "prctl PR_SET_PDEATHSIG", NULL);
}

static void child_build_mounts(const child_plan *plan)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(plan, "make / rprivate", NULL);
    if (mount(plan->rootfs, plan->rootfs, NULL, MS_BIND, NULL) < 0)
        child_fail(plan, "bind rootfs", plan->rootfs);
    if (mount("tmpfs", plan->tmp_path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, plan->tmp_opts) <
        0)
        child_fail(plan, "mount", "/tmp");
    for (int i = 0; i < DEV_NODE_COUNT; i++) {
        if (mount(dev_nodes[i], plan->dev_paths[i], NULL, MS_BIND, NULL) < 0)
            child_fail(plan, "bind", dev_nodes[i]);
    }
}

/* Returns an fd on the host's /dev/null (opened before the host disappears). */
static int child_open_devnull(const child_plan *plan)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        child_fail(plan, "open", "/dev/null");
    return fd;
}

static void child_pivot_root(const child_plan *plan)
{
    if (chdir(plan->rootfs) < 0)
        child_fail(plan, "chdir", plan->rootfs);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        child_fail(plan, "pivot_root", NULL);
    if (umount2(".", MNT_DETACH) < 0)
        child_fail(plan, "detach old root", NULL);
    if (chdir("/") < 0)
        child_fail(plan, "chdir", "/");
}

/* Read-only remount of the new root.  Inside a user namespace the kernel
 * refuses to clear flags it locked on the mount (nosuid, noexec, atime...),
 * so those are carried over from statfs (as bubblewrap does). */
static void child_remount_root_readonly(const child_plan *plan)
{
    struct statfs st; /* f_flags holds the ST_* mount flags (raw syscall) */
    if (statfs("/", &st) < 0)
        child_fail(plan, "statfs", "/");
    static const struct {
        unsigned long st_flag;
        unsigned long ms_flag;
    } keep[] = {
        {ST_NOEXEC, MS_NOEXEC},           {ST_NOATIME, MS_NOATIME},
        {ST_NODIRATIME, MS_NODIRATIME},   {ST_RELATIME, MS_RELATIME},
        {ST_SYNCHRONOUS, MS_SYNCHRONOUS}, {ST_MANDLOCK, MS_MANDLOCK},
    };
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        if ((unsigned long)st.f_flags & keep[i].st_flag)
            flags |= keep[i].ms_flag;
    }
    if (mount(NULL, "/", NULL, flags, NULL) < 0)
        child_fail(plan, "remount / read-only", NULL);
}

/* Blocks until the parent has written the id maps. */
static void child_wait_for_maps(const child_plan *plan)
{
    char byte;
    ssize_t n;
    do {
        n = read(plan->sync_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        if (n == 0)
            errno = EPIPE; /* parent gone */
        child_fail(plan, "wait for id maps", NULL);
    }
    close(plan->sync_fd);
}

/* Raw syscalls on purpose: glibc's setresuid/setresgid broadcast the change
 * to every thread of the process (SIGSETXID) and, in a child of a raw clone
 * from a multi-threaded parent, wait forever for threads that do not exist
 * here (deadlock seen in test_concurrent_spawns_from_threads). */
static void child_become_root(const child_plan *plan)
{
    if (syscall(SYS_setresgid, 0, 0, 0) < 0)
        child_fail(plan, "setresgid", NULL);
    if (syscall(SYS_setresuid, 0, 0, 0) < 0)
        child_fail(plan, "setresuid", NULL);
}

/* The parent attached the cgroups before the sync byte: a fresh cgroup
 * namespace now roots the sandbox's view at its own cgroup. */
static void child_enter_cgroup_ns(const child_plan *plan)
{
    if (plan->spec->attach && unshare(CLONE_NEWCGROUP) < 0)
        child_fail(plan, "unshare", "cgroup namespace");
}

static void child_set_process_attrs(const child_plan *plan)
{
    if (sethostname(SANDBOX_HOSTNAME, sizeof SANDBOX_HOSTNAME - 1) < 0)
        child_fail(plan, "sethostname", NULL);
    if (setsid() < 0)
        child_fail(plan, "setsid", NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(plan, "prctl PR_SET_NO_NEW_PRIVS", NULL);
}

/* Moves fd to a number >= 4 so that dup2 onto 0-3 cannot clobber it. */
static int child_lift_fd(const child_plan *plan, int fd, const char *what)
{
    if (fd < 0)
        return -1;
    int lifted = fcntl(fd, F_DUPFD_CLOEXEC, 4);
    if (lifted < 0)
        child_fail(plan, "dup", what);
    return lifted;
}

static void child_dup_to(const child_plan *plan, int from, int to, const char *what)
{
    if (dup2(from, to) < 0)
        child_fail(plan, "dup2", what);
}

/* fd 0 = /dev/null, 1 and 2 = output (or /dev/null), 3 = control (or
 * closed); everything else closed except the error pipe, which is
 * O_CLOEXEC and so disappears at execve.  plan->err_fd is updated. */
static void child_set_fds(child_plan *plan, int devnull_fd)
{
    const cm_sandbox_spec *spec = plan->spec;
    int err_fd = fcntl(plan->err_fd, F_DUPFD_CLOEXEC, 4);
    if (err_fd < 0)
        child_fail(plan, "dup", "error pipe");
    plan->err_fd = err_fd;
    int null_fd = child_lift_fd(plan, devnull_fd, "/dev/null");
    int out_fd = spec->output_fd >= 0 ? child_lift_fd(plan, spec->output_fd, "output") : null_fd;
    int ctl_fd = child_lift_fd(plan, spec->control_fd, "control");

    child_dup_to(plan, null_fd, 0, "stdin");
    child_dup_to(plan, out_fd, 1, "stdout");
    child_dup_to(plan, out_fd, 2, "stderr");
    if (ctl_fd >= 0)
        child_dup_to(plan, ctl_fd, 3, "control");
    else
        close(3);

    if (err_fd > 4 && syscall(SYS_close_range, 4U, (unsigned)err_fd - 1, 0U) < 0)
        child_fail(plan, "close_range", NULL);
    if (syscall(SYS_close_range, (unsigned)err_fd + 1, ~0U, 0U) < 0)
        child_fail(plan, "close_range", NULL);
}

/* Nested user namespaces give capabilities back (measured: mount, chroot,
 * fsopen, AF_PACKET all worked): limit them to 0 inside this sandbox's user
 * namespace, and the other ucounts low (ucounts.c: what the sandbox holds is
 * charged to host root too).  Done while the host /proc is still reachable
 * and the child holds CAP_SYS_RESOURCE in its new namespace; the sysctls are
 * per user namespace, so these writes affect only this sandbox. */
static void child_limit_userns(const child_plan *plan)
{
    if (!plan->spec->limit_userns)
        return;
    const char *what = NULL;
    if (cm_ucounts_apply(&plan->ucounts, &what) < 0)
        child_fail(plan, "set user namespace limit", what);
}

/* rlimits (harden.c); RLIMIT_NPROC counts per user namespace and uid, so
 * per sandbox here. */
static void child_set_rlimits(const child_plan *plan)
{
    const cm_sandbox_spec *spec = plan->spec;
    if (!spec->rlimits)
        return;
    const cm_harden_rlimits r = {.fsize = spec->rlimit_fsize,
                                 .nofile = spec->rlimit_nofile,
                                 .nproc = spec->rlimit_nproc,
                                 .as = spec->rlimit_as};
    const char *step;
    if (cm_harden_rlimits_apply(&r, &step) < 0)
        child_fail(plan, step, NULL);
}

/* libcap runs in the parent (cap_max_bits gives drop_caps_upto; doctor
 * names the capabilities); the child drops with raw calls (harden.c). */
static void child_drop_capabilities(const child_plan *plan)
{
    const char *step;
    if (plan->spec->drop_caps_upto > 0 &&
        cm_harden_drop_caps(plan->spec->drop_caps_upto, &step) < 0)
        child_fail(plan, step, NULL);
}

/* Installed last, from the filter the engine compiled at start. */
static void child_install_seccomp(const child_plan *plan)
{
    const cm_sandbox_spec *spec = plan->spec;
    const char *step;
    if (spec->seccomp_len > 0 &&
        cm_harden_seccomp(spec->seccomp_insns, spec->seccomp_len, &step) < 0)
        child_fail(plan, step, NULL);
}

/* With use_init: the parent becomes the minimal init (harden.c: a reaper
 * that closes every fd, is non-dumpable and exits with the runner's status,
 * so the runner is an ordinary process and never a host binary exec'd inside,
 * CVE-2019-5736); the child returns and goes on to execve. */
static void child_fork_init(const child_plan *plan)
{
    const char *step;
    if (plan->spec->use_init && cm_harden_fork_init(NULL, &step) < 0)
        child_fail(plan, step, NULL);
}

/* CVE-2024-21626: never exec with a working directory outside the root. */
static void child_check_cwd(const child_plan *plan)
{
    const char *step;
    if (cm_harden_check_cwd(&step) < 0)
        child_fail(plan, step, NULL);
}

static _Noreturn void child_main(child_plan *plan)
{
    close(plan->sync_peer_fd);
    close(plan->err_peer_fd);
    child_reset_signals();
    child_set_deathsig(plan);
    child_build_mounts(plan);
    child_limit_userns(plan);
    int devnull_fd = child_open_devnull(plan);
    child_pivot_root(plan);
    child_remount_root_readonly(plan);
    child_wait_for_maps(plan);
    child_become_root(plan);
    child_enter_cgroup_ns(plan);
    child_set_process_attrs(plan);
    /* fds first: with RLIMIT_NOFILE already lowered, dup'ing above the
     * engine's (possibly thousands of) open fds would fail with EMFILE */
    child_set_fds(plan, devnull_fd);
    child_set_rlimits(plan);
    child_check_cwd(plan);
    child_drop_capabilities(plan);
    child_install_seccomp(plan);
    child_fork_init(plan);
    execve(plan->spec->argv[0], (char *const *)plan->spec->argv, (char *const *)plan->spec->envp);
    child_fail(plan, "execve", plan->spec->argv[0]);
}

/* --------------------------------------------------------------- parent -- */

static int validate_spec(const cm_sandbox_spec *spec, cm_error *err)
{
    if (!spec->rootfs || spec->rootfs[0] != '/')
        return cm_error_set(err, CM_ERR_INVALID_REQUEST, "sandbox rootfs must be absolute");
    if (spec->host_uid == 0 || spec->host_gid == 0)
        return cm_error_set(err, CM_ERR_INVALID_REQUEST,
                            "sandbox host uid/gid must not be 0 (got %u/%u)",
                            (unsigned)spec->host_uid, (unsigned)spec->host_gid);
    if (!spec->argv || !spec->argv[0] || spec->argv[0][0] != '/')
        return cm_error_set(err, CM_ERR_INVALID_REQUEST,
                            "sandbox argv[0] must be an absolute path inside the rootfs");
    if (!spec->envp)
        return cm_error_set(err, CM_ERR_INVALID_REQUEST, "sandbox envp must not be NULL");
    if (spec->tmp_size_bytes == 0)
        return cm_error_set(err, CM_ERR_INVALID_REQUEST, "sandbox /tmp size must be > 0");
    return 0;
}

static int format_path(char *dst, size_t cap, const char *root, const char *sub, cm_error *err)
{
    int n = snprintf(dst, cap, "%s%s", root, sub);
    if (n < 0 || (size_t)n >= cap)
        return cm_error_set(err, CM_ERR_INVALID_REQUEST, "sandbox path too long: %s%s", root, sub);
    return 0;
}

static int prepare_plan(const cm_sandbox_spec *spec, child_plan *plan, cm_error *err)
{
    plan->spec = spec;
    if (format_path(plan->rootfs, sizeof plan->rootfs, spec->rootfs, "", err) < 0 ||
        format_path(plan->tmp_path, sizeof plan->tmp_path, spec->rootfs, "/tmp", err) < 0)
        return -1;
    for (int i = 0; i < DEV_NODE_COUNT; i++) {
        if (format_path(plan->dev_paths[i], sizeof plan->dev_paths[i], spec->rootfs, dev_nodes[i],
                        err) < 0)
            return -1;
    }
    snprintf(plan->tmp_opts, sizeof plan->tmp_opts, "size=%zu,mode=1777", spec->tmp_size_bytes);
    if (spec->limit_userns)
        cm_ucounts_plan_make(&plan->ucounts, spec->ns_children);
    return 0;
}

/* Clones the child with every signal blocked, so no engine signal handler
 * can run in it before it resets them.  Returns the pid; in the child,
 * runs child_main and never returns. */
static pid_t clone_child(child_plan *plan, int *pidfd, cm_error *err)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const unsigned long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
                                CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_PIDFD;
    long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, pidfd, NULL, 0);
    if (pid == 0)
        child_main(plan);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    if (pid < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "clone sandbox");
    return (pid_t)pid;
}

static int write_proc_file(pid_t pid, const char *name, const char *text, cm_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    cm_autofd int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "open %s", path);
    ssize_t n;
    do {
        n = write(fd, text, strlen(text));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "write %s", path);
    if ((size_t)n != strlen(text))
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "short write to %s", path);
    return 0;
}

/* setgroups must be denied before an unprivileged-style gid_map is written. */
static int write_id_maps(pid_t pid, uid_t uid, gid_t gid, cm_error *err)
{
    char map[64];
    if (write_proc_file(pid, "setgroups", "deny", err) < 0)
        return -1;
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
    if (write_proc_file(pid, "gid_map", map, err) < 0)
        return -1;
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
    return write_proc_file(pid, "uid_map", map, err);
}

static int send_sync_byte(int fd, cm_error *err)
{
    ssize_t n;
    do {
        n = send(fd, "x", 1, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "sync sandbox child");
    return 0;
}

/* Reads the error pipe until EOF into msg (NUL-terminated, truncated).
 * Returns the number of bytes kept, or -1 on a read error. */
static ssize_t read_child_message(int fd, char *msg, size_t cap, cm_error *err)
{
    size_t len = 0;
    for (;;) {
        char chunk[256];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "read sandbox error pipe");
        if (n == 0)
            break;
        size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
        memcpy(msg + len, chunk, take);
        len += take;
    }
    msg[len] = '\0';
    return (ssize_t)len;
}

static int wait_pid(pid_t pid, int *status, struct rusage *usage)
{
    int st = 0;
    pid_t r;
    do {
        r = wait4(pid, &st, 0, usage);
    } while (r < 0 && errno == EINTR);
    if (status)
        *status = st;
    return r < 0 ? -1 : 0;
}

/* Leaves nothing behind: SIGKILL, then collect the zombie. */
static void kill_and_reap(cm_sandbox *sb)
{
    cm_sandbox_kill(sb);
    wait_pid(sb->pid, NULL, NULL);
    close(sb->pidfd);
    sb->pid = -1;
    sb->pidfd = -1;
}

/* Parent-side failure after clone: kill the child, prefer its own message if
 * it sent one (more precise than ours), reap.  Always returns -1. */
static int abort_child(cm_sandbox *sb, int err_fd, cm_error *err)
{
    cm_sandbox_kill(sb);
    char msg[CHILD_MSG_MAX];
    cm_error ignored;
    if (read_child_message(err_fd, msg, sizeof msg, &ignored) > 0)
        cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "sandbox set-up: %s", msg);
    kill_and_reap(sb);
    return -1;
}

int cm_sandbox_spawn(const cm_sandbox_spec *spec, cm_sandbox *out, cm_error *err)
{
    out->pid = -1;
    out->pidfd = -1;
    out->foreign = false;
    if (validate_spec(spec, err) < 0)
        return -1;
    cm_autofree child_plan *plan = cm_xcalloc(1, sizeof *plan);
    if (prepare_plan(spec, plan, err) < 0)
        return -1;

    int sync_pair[2], err_pipe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_pair) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "sandbox sync socketpair");
    cm_autofd int sync_parent = sync_pair[0];
    cm_autofd int sync_child = sync_pair[1];
    if (pipe2(err_pipe, O_CLOEXEC) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "sandbox error pipe");
    cm_autofd int err_read = err_pipe[0];
    cm_autofd int err_write = err_pipe[1];
    plan->sync_fd = sync_child;
    plan->sync_peer_fd = sync_parent;
    plan->err_fd = err_write;
    plan->err_peer_fd = err_read;

    cm_sandbox sb = {.pid = -1, .pidfd = -1, .foreign = false};
    sb.pid = clone_child(plan, &sb.pidfd, err);
    if (sb.pid < 0)
        return -1;
    cm_cleanup_fd(&sync_child);
    cm_cleanup_fd(&err_write);

    if ((spec->id_maps ? spec->id_maps(spec->id_maps_ctx, sb.pidfd, err)
                       : write_id_maps(sb.pid, spec->host_uid, spec->host_gid, err)) < 0 ||
        (spec->attach && spec->attach(spec->attach_ctx, sb.pid, err) < 0) ||
        send_sync_byte(sync_parent, err) < 0)
        return abort_child(&sb, err_read, err);

    char msg[CHILD_MSG_MAX];
    ssize_t len = read_child_message(err_read, msg, sizeof msg, err);
    if (len < 0)
        return abort_child(&sb, err_read, err);
    if (len > 0) {
        kill_and_reap(&sb);
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "sandbox set-up: %s", msg);
    }
    *out = sb;
    return 0;
}

void cm_sandbox_kill(cm_sandbox *sb)
{
    if (!sb || sb->pidfd < 0)
        return;
    /* ESRCH (already exited) is fine: kill is idempotent.  Where the
     * system call is missing (valgrind), the pid is still ours to signal:
     * not reaped yet (our child), or held by the zygote until it is. */
    if (syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0) < 0 && errno == ENOSYS &&
        sb->pid > 0)
        kill(sb->pid, SIGKILL);
}

/* A process that is not our child: its pidfd turns readable when it exits. */
static int wait_pidfd(int pidfd, int *status, struct rusage *usage)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r;
    do {
        r = poll(&p, 1, -1);
    } while (r < 0 && errno == EINTR);
    if (status)
        *status = 0;
    if (usage)
        memset(usage, 0, sizeof *usage);
    return r < 0 ? -1 : 0;
}

int cm_sandbox_reap(cm_sandbox *sb, int *status, struct rusage *usage, cm_error *err)
{
    if (!sb || sb->pid < 0 || (sb->foreign && sb->pidfd < 0))
        return cm_error_set(err, CM_ERR_INTERNAL, "sandbox already reaped");
    int rc = sb->foreign ? wait_pidfd(sb->pidfd, status, usage) : wait_pid(sb->pid, status, usage);
    int saved = errno;
    if (sb->pidfd >= 0)
        close(sb->pidfd);
    pid_t pid = sb->pid;
    sb->pid = -1;
    sb->pidfd = -1;
    if (rc < 0) {
        errno = saved;
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "wait for sandbox pid %d", (int)pid);
    }
    return 0;
}
