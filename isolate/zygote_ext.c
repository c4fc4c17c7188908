/* zygote_ext.c — the CPython extension module `_codemode_zygote`, shipped in
 * the rootfs's lib-dynload and used only by the runner's zygote mode.
 *
 * Why it exists: starting CPython and importing the runner's modules costs
 * 55-80 ms of wall time (120-200 ms CPU) per sandbox on this machine; a fork
 * of an interpreter that already did it costs a few.  The zygote is itself a
 * sandbox the engine built (user, pid, mount, net, ipc, uts namespaces, the
 * read-only rootfs as root, its own cgroup, max_user_namespaces=0); it keeps
 * its capabilities inside its own user namespace so that, per chain, it can
 * clone a child into FRESH pid, mount, network, ipc and uts namespaces.  That
 * child then ends in the same hardened state as a freshly cloned sandbox:
 * its own size-capped /tmp tmpfs, hostname, session, the engine-made cgroup
 * (attached by the engine before the child goes on) and a fresh cgroup
 * namespace, fds 0-3 only, no_new_privs, rlimits, every capability dropped
 * with locked securebits, the engine's seccomp filter, and a minimal init as
 * pid 1 (harden.c, the same code sandbox.c uses).  What chains of one zygote
 * share: the user namespace (so the host uid, and the RLIMIT_NPROC count —
 * the per-chain task cap is the pids cgroup) and the zygote's pre-fork
 * memory image (CPython's hash seed; `random` is reseeded at fork).
 *
 * Protocol (called from rootfs/runner.py `zygote_main`):
 *   configure(seccomp: bytes, drop_caps_upto: int, rlimits: tuple | None,
 *             tmp_size: int, use_init: bool)
 *   spawn(ctl_fd, out_fd) -> (pid, pidfd) in the zygote; (0, -1) in the
 *             child, which by then is hardened and holds fd 3 = ctl_fd,
 *             fd 1 and 2 = out_fd, fd 0 = /dev/null and nothing else.
 * Before going on, the child reads one byte "G" from ctl_fd: the engine sends
 * it after moving the child into the chain's cgroup.  A child whose set-up
 * fails writes "sandbox set-up: <step>: <error>" to out_fd and exits 127. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harden.h"

#define ZYGOTE_HOSTNAME "codemode"
#define CHILD_EXIT_FAILURE 127
#define MAX_FILTER_INSNS 4096

/* The zygote's configuration, set once by configure(); this process is the
 * zygote, so its state is process state. */
typedef struct zygote_config {
    bool configured;
    struct sock_filter filter[MAX_FILTER_INSNS];
    unsigned short filter_len;
    int drop_caps_upto;
    bool rlimits;
    cm_harden_rlimits rl;
    char tmp_opts[64];
    bool use_init;
} zygote_config;

static zygote_config config;

/* ---------------------------------------------------------------- child -- */

static void child_write_all(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

static _Noreturn void child_fail(int out_fd, const char *step)
{
    const char *desc = errno ? strerrordesc_np(errno) : "failed";
    child_write_all(out_fd, "sandbox set-up: ");
    child_write_all(out_fd, step);
    child_write_all(out_fd, ": ");
    child_write_all(out_fd, desc ? desc : "unknown error");
    child_write_all(out_fd, "\n");
    _exit(CHILD_EXIT_FAILURE);
}

/* The engine moved us into the chain's cgroup when this byte arrives. */
static void child_wait_go(int ctl_fd, int out_fd)
{
    char byte = 0;
    ssize_t n;
    do {
        n = read(ctl_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || byte != 'G') {
        if (n == 0)
            errno = EPIPE;
        child_fail(out_fd, "wait for the engine (cgroup attach)");
    }
}

static void child_namespaces_and_mounts(int out_fd)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(out_fd, "prctl PR_SET_PDEATHSIG");
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, config.tmp_opts) < 0)
        child_fail(out_fd, "mount /tmp");
    if (sethostname(ZYGOTE_HOSTNAME, sizeof ZYGOTE_HOSTNAME - 1) < 0)
        child_fail(out_fd, "sethostname");
    if (setsid() < 0)
        child_fail(out_fd, "setsid");
}

/* fd 0 = /dev/null, 1 and 2 = out, 3 = ctl, everything else closed
 * (including the zygote's own control socket). */
static void child_set_fds(int ctl_fd, int out_fd)
{
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        child_fail(out_fd, "open /dev/null");
    int ctl = fcntl(ctl_fd, F_DUPFD_CLOEXEC, 4);
    int out = fcntl(out_fd, F_DUPFD_CLOEXEC, 4);
    int nul = fcntl(null_fd, F_DUPFD_CLOEXEC, 4);
    if (ctl < 0 || out < 0 || nul < 0)
        child_fail(out_fd, "dup");
    if (dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || dup2(ctl, 3) < 0)
        child_fail(out_fd, "dup2");
    if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
        child_fail(2, "close_range");
}

static void after_fork_child(void)
{
    PyOS_AfterFork_Child();
}

static void child_harden(void)
{
    const char *step = NULL;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(2, "prctl PR_SET_NO_NEW_PRIVS");
    if (config.rlimits && cm_harden_rlimits_apply(&config.rl, &step) < 0)
        child_fail(2, step);
    if (cm_harden_check_cwd(&step) < 0)
        child_fail(2, step);
    if (config.drop_caps_upto > 0 && cm_harden_drop_caps(config.drop_caps_upto, &step) < 0)
        child_fail(2, step);
    if (config.filter_len > 0 && cm_harden_seccomp(config.filter, config.filter_len, &step) < 0)
        child_fail(2, step);
    /* CPython's after-fork work (at-fork hooks, lock re-initialisation)
     * runs only in the process that goes on in Python: pid 1 stays in C, so
     * its pages are never touched (no copy-on-write faults) */
    if (!config.use_init)
        after_fork_child();
    else if (cm_harden_fork_init(after_fork_child, &step) < 0)
        child_fail(2, step);
}

static void child_main(int ctl_fd, int out_fd)
{
    child_namespaces_and_mounts(out_fd);
    child_wait_go(ctl_fd, out_fd);
    if (unshare(CLONE_NEWCGROUP) < 0)
        child_fail(out_fd, "unshare cgroup namespace");
    child_set_fds(ctl_fd, out_fd);
    child_harden();
}

/* --------------------------------------------------------------- zygote -- */

static PyObject *zygote_configure(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer filter;
    int caps, tmp_size_ok, use_init;
    unsigned long long tmp_size;
    PyObject *rl;
    if (!PyArg_ParseTuple(args, "y*iOKp", &filter, &caps, &rl, &tmp_size, &use_init))
        return NULL;
    tmp_size_ok = tmp_size > 0;
    if (filter.len % (Py_ssize_t)sizeof(struct sock_filter) != 0 ||
        filter.len / (Py_ssize_t)sizeof(struct sock_filter) > MAX_FILTER_INSNS || !tmp_size_ok) {
        PyBuffer_Release(&filter);
        PyErr_SetString(PyExc_ValueError, "bad seccomp filter or /tmp size");
        return NULL;
    }
    memcpy(config.filter, filter.buf, (size_t)filter.len);
    config.filter_len = (unsigned short)(filter.len / (Py_ssize_t)sizeof(struct sock_filter));
    PyBuffer_Release(&filter);
    config.rlimits = rl != Py_None;
    if (config.rlimits && !PyArg_ParseTuple(rl, "kkkk", &config.rl.fsize, &config.rl.nofile,
                                            &config.rl.nproc, &config.rl.as))
        return NULL;
    config.drop_caps_upto = caps;
    config.use_init = use_init != 0;
    snprintf(config.tmp_opts, sizeof config.tmp_opts, "size=%llu,mode=1777", tmp_size);
    config.configured = true;
    Py_RETURN_NONE;
}

static PyObject *zygote_spawn(PyObject *self, PyObject *args)
{
    (void)self;
    int ctl_fd, out_fd;
    if (!PyArg_ParseTuple(args, "ii", &ctl_fd, &out_fd))
        return NULL;
    if (!config.configured) {
        PyErr_SetString(PyExc_RuntimeError, "zygote not configured");
        return NULL;
    }
    const unsigned long flags =
        CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
    int pidfd = -1;
    PyOS_BeforeFork();
    long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, &pidfd, NULL, 0);
    if (pid == 0) {
        child_main(ctl_fd, out_fd);
        return Py_BuildValue("(ii)", 0, -1);
    }
    int saved = errno;
    PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("(li)", pid, pidfd);
}

static PyMethodDef zygote_methods[] = {
    {"configure", zygote_configure, METH_VARARGS, "Set the hardening every child gets."},
    {"spawn", zygote_spawn, METH_VARARGS, "Fork a hardened sandbox child (fork semantics)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef zygote_module = {
    PyModuleDef_HEAD_INIT,
    "_codemode_zygote",
    "codemode's sandbox zygote (see zygote_ext.c)",
    -1,
    zygote_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__codemode_zygote(void)
{
    return PyModule_Create(&zygote_module);
}
