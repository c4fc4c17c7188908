/* zygote.c — start, talk to and stop the sandbox zygote (contract in
 * zygote.h; the zygote's own side is rootfs/runner.py `zygote_main` and
 * isolate/zygote_ext.c).
 *
 * Why it exists: a sandbox built from scratch spends 55-80 ms starting
 * CPython and importing the runner's modules; on two cores that caps the
 * warm pool at ~15 refills per second.  The zygote pays that once and forks.
 *
 * Protocol over a SOCK_SEQPACKET pair (one datagram per message):
 *   engine -> zygote  config JSON {"seccomp": hex, "caps": n, "rlimits":
 *                     [fsize, nofile, nproc, as] | null, "tmp_size": n,
 *                     "init": bool}            (once, first)
 *   zygote -> engine  "ready" | "error <message>"
 *   engine -> zygote  "spawn" + SCM_RIGHTS [control socket end, output pipe end]
 *   zygote -> engine  "ok <pid>" + SCM_RIGHTS [pidfd] | "error <message>"
 *   engine -> zygote  "tools" + SCM_RIGHTS [memfd: a `tools` frame's JSON]
 *   zygote -> engine  "ok" | "error <message>"   (children forked after
 *                     inherit the table, parsed: cm_zygote_prime)
 * The engine then moves the child (host pid from the pidfd's fdinfo) into
 * the chain's cgroups and writes "G" on the control socket; the child
 * hardens itself and goes on as the runner (the chain's one process). */
#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "runner_proto.h"
#include "util.h"

#define ZYGOTE_START_TIMEOUT_MS 20000
#define ZYGOTE_REPLY_TIMEOUT_MS 5000
/* a zygote that is alive but slow (a loaded machine, namespaces being torn
 * down) is waited for up to this long: declaring it lost kills every sandbox
 * it forked, running chains included (the soak saw such a chain answered
 * "the sandbox runner exited without a result") */
#define ZYGOTE_ALIVE_WAIT_MS 60000
#define ZYGOTE_RETRY_MS 1000
#define ZYGOTE_TMP_BYTES (1u << 20)
#define ZYGOTE_PIDS_MAX 1024
#define ZYGOTE_NS_CHILDREN(cfg)                                                                    \
    (4u * (unsigned)((cfg)->workers + (cfg)->pool_size + (cfg)->pool_full_size) + 64u)

void cm_zygote_init(cm_zygote *z, bool full, const cm_iso_config *cfg, cm_isolation *iso)
{
    memset(z, 0, sizeof *z);
    pthread_mutex_init(&z->mu, NULL);
    z->cfg = cfg;
    z->iso = iso;
    z->full = full;
    z->fd = z->out_fd = -1;
    z->sb.pid = z->sb.pidfd = -1;
}

/* ---- messages ---------------------------------------------------------- */

/* Sends one datagram with up to two fds attached. */
static int send_msg(int fd, const char *text, const int *fds, int nfds, cm_error *err)
{
    struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
    if (cm_send_fds(fd, &iov, 1, fds, nfds) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote: send");
    return 0;
}

/* Receives one datagram (NUL-terminated into text) and at most one fd
 * (*fd_out, -1 if none), waiting until timeout_ms. */
static int recv_msg(int fd, char *text, size_t cap, int *fd_out, int timeout_ms, cm_error *err)
{
    *fd_out = -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int pr;
    do {
        pr = poll(&p, 1, timeout_ms);
    } while (pr < 0 && errno == EINTR);
    if (pr < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote: poll");
    if (pr == 0)
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: no answer in %d ms", timeout_ms);
    struct iovec iov = {.iov_base = text, .iov_len = cap - 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    do {
        n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote: receive");
    if (n == 0)
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: exited");
    text[n] = '\0';
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(fd_out, CMSG_DATA(c), sizeof(int));
    }
    return 0;
}

/* ---- start / stop ------------------------------------------------------ */

/* Closing its socket first makes the zygote exit by itself (it reads
 * end-of-file), even where the kill cannot be delivered. */
static void shut_down(cm_zygote *z)
{
    cm_cleanup_fd(&z->fd);
    if (z->sb.pidfd >= 0) {
        cm_error ignored;
        cm_sandbox_kill(&z->sb);
        cm_sandbox_reap(&z->sb, NULL, NULL, &ignored);
    }
    cm_jail_finish(&z->jail, NULL);
    cm_cleanup_fd(&z->out_fd);
    z->up = false;
    z->primed[0] = '\0';
}

/* The hardening every child gets: what cm_jail_prepare put in the spec. */
static char *config_json(const cm_sandbox_spec *spec)
{
    cJSON *c = cJSON_CreateObject();
    size_t len = (size_t)spec->seccomp_len * sizeof(struct sock_filter);
    char *hex = cm_xcalloc(1, 2 * len + 1);
    const unsigned char *b = (const unsigned char *)spec->seccomp_insns;
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    cJSON_AddStringToObject(c, "seccomp", hex);
    free(hex);
    cJSON_AddNumberToObject(c, "caps", spec->drop_caps_upto);
    if (spec->rlimits) {
        /* nproc 0 = unchanged: RLIMIT_NPROC counts per user namespace and
         * uid, which all chains of a zygote share; the pids cgroup caps
         * each chain instead */
        double rl[4] = {(double)spec->rlimit_fsize, (double)spec->rlimit_nofile, 0,
                        (double)spec->rlimit_as};
        cJSON_AddItemToObject(c, "rlimits", cJSON_CreateDoubleArray(rl, 4));
    } else {
        cJSON_AddNullToObject(c, "rlimits");
    }
    cJSON_AddNumberToObject(c, "tmp_size", (double)spec->tmp_size_bytes);
    cJSON_AddBoolToObject(c, "init", spec->use_init);
    char *s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return s;
}

static int start_locked(cm_zygote *z, cm_error *err)
{
    const cm_iso_config *c = z->cfg;
    z->starts++;
    int sv[2], pipefd[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote socketpair");
    z->fd = sv[0];
    cm_autofd int child_fd = sv[1];
    if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote pipe");
    z->out_fd = pipefd[0];
    cm_autofd int child_out = pipefd[1];
    cm_sandbox_spec spec = {
        .rootfs = z->full ? c->rootfs_full : c->rootfs,
        .argv = cm_zygote_argv,
        .envp = cm_runner_envp,
        .control_fd = child_fd,
        .output_fd = child_out,
        .tmp_size_bytes = c->tmp_size_bytes, /* the chains' /tmp (and rlimit_fsize) */
    };
    cm_limits zlim = {.memory_bytes = c->limits.memory_bytes,
                      .cpu_quota_pct =
                          c->limits.cpu_quota_pct > 100 ? c->limits.cpu_quota_pct : 100,
                      .pids_max = ZYGOTE_PIDS_MAX};
    if (cm_jail_prepare(z->iso, &zlim, &z->jail, &spec, err) < 0)
        return -1;
    cm_autofree char *cfg = config_json(&spec);
    /* the zygote itself keeps its capabilities (inside its own user
     * namespace: it creates the chains' namespaces and mounts their /tmp)
     * and has no seccomp filter, rlimits or init; its children get them */
    spec.seccomp_len = 0;
    spec.drop_caps_upto = 0;
    spec.rlimits = false;
    spec.use_init = false;
    spec.tmp_size_bytes = ZYGOTE_TMP_BYTES;
    /* started from whichever thread needs it first (a pool thread, a worker,
     * the start-up self-check): it must not die with that thread; it exits
     * when the engine's end of its socket closes */
    spec.no_deathsig = true;
    /* it creates every chain's pid/mnt/net/ipc/uts/cgroup namespaces in its
     * user namespace: room for all live chains, and for net namespaces whose
     * release the kernel finishes asynchronously */
    spec.ns_children = ZYGOTE_NS_CHILDREN(c);
    if (cm_sandbox_spawn(&spec, &z->sb, err) < 0)
        return cm_error_prefix(err, "zygote");
    /* normal priority whichever thread started it (a refill thread runs at
     * nice 10); each request then gives it its caller's (caller_nice) */
    setpriority(PRIO_PROCESS, (id_t)z->sb.pid, 0);
    cm_cleanup_fd(&child_fd);
    cm_cleanup_fd(&child_out);
    char reply[512];
    int nofd;
    if (send_msg(z->fd, cfg, NULL, 0, err) < 0 ||
        recv_msg(z->fd, reply, sizeof reply, &nofd, ZYGOTE_START_TIMEOUT_MS, err) < 0) {
        cm_error_prefix_output(err, z->out_fd);
        return -1;
    }
    cm_cleanup_fd(&nofd);
    if (strcmp(reply, "ready") != 0)
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: %.400s", reply);
    z->up = true;
    return 0;
}

static int ensure_up_locked(cm_zygote *z, cm_error *err)
{
    if (z->up)
        return 0;
    if (cm_now_ms() < z->retry_after_ms)
        return 1;
    if (start_locked(z, err) == 0) {
        cm_log("info", "zygote (%s rootfs) started, pid %d", z->full ? "full" : "minimal",
               (int)z->sb.pid);
        return 0;
    }
    snprintf(z->last_error, sizeof z->last_error, "%.200s", err->message);
    cm_log("warn", "zygote (%s rootfs) unavailable, building sandboxes directly: %s",
           z->full ? "full" : "minimal", err->message);
    shut_down(z);
    z->retry_after_ms = cm_now_ms() + ZYGOTE_RETRY_MS;
    return 1;
}

void cm_zygote_stop(cm_zygote *z)
{
    pthread_mutex_lock(&z->mu);
    shut_down(z);
    pthread_mutex_unlock(&z->mu);
    pthread_mutex_destroy(&z->mu);
}

/* ---- spawning ---------------------------------------------------------- */

/* The pidfd's process as the engine sees it ("Pid:" in its fdinfo). */
static pid_t pidfd_host_pid(int pidfd, cm_error *err)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    cm_autofd int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote: read %s", path);
    buf[n] = '\0';
    const char *p = strstr(buf, "\nPid:");
    long pid = p ? strtol(p + 5, NULL, 10) : -1;
    if (pid <= 0)
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: child already gone");
    return (pid_t)pid;
}

/* Waits for the zygote's answer while it lives: 0 when one is there, -1
 * when it died or stayed silent past ZYGOTE_ALIVE_WAIT_MS. */
static int wait_answer(cm_zygote *z, cm_error *err)
{
    int64_t t0 = cm_now_ms();
    bool warned = false;
    for (;;) {
        struct pollfd p[2] = {{.fd = z->fd, .events = POLLIN},
                              {.fd = z->sb.pidfd, .events = POLLIN}};
        int pr = poll(p, 2, ZYGOTE_REPLY_TIMEOUT_MS);
        if (pr < 0 && errno != EINTR)
            return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote: poll");
        if (pr > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            return 0;
        if (pr > 0 && (p[1].revents & POLLIN))
            return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: exited");
        int64_t waited = cm_now_ms() - t0;
        if (waited >= ZYGOTE_ALIVE_WAIT_MS)
            return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: no answer in %lld ms",
                                (long long)waited);
        if (pr == 0 && !warned) {
            cm_log("warn", "zygote (%s rootfs) slow: no answer after %lld ms, still waiting",
                   z->full ? "full" : "minimal", (long long)waited);
            warned = true;
        }
    }
}

/* One request/answer with the zygote; returns the child's pidfd, -1 when
 * the zygote refused, -2 when the channel broke (the zygote is shut down,
 * so the next ensure_up_locked starts a new one). */
static int ask_zygote(cm_zygote *z, int child_ctl, int child_out, cm_error *err)
{
    int fds[2] = {child_ctl, child_out};
    char reply[512];
    int pidfd = -1;
    if (send_msg(z->fd, "spawn", fds, 2, err) < 0 || wait_answer(z, err) < 0 ||
        recv_msg(z->fd, reply, sizeof reply, &pidfd, ZYGOTE_REPLY_TIMEOUT_MS, err) < 0) {
        cm_log("warn", "zygote (%s rootfs) lost: %s", z->full ? "full" : "minimal", err->message);
        shut_down(z);
        z->retry_after_ms = 0;
        return -2;
    }
    if (strncmp(reply, "ok ", 3) != 0 || pidfd < 0) {
        cm_cleanup_fd(&pidfd);
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: %.400s", reply);
    }
    z->spawns++;
    return pidfd;
}

/* A forked sandbox inherits the zygote's nice value, which is that of
 * whichever thread started the zygote; give it the caller's instead (a
 * refill thread's lower priority, restored on take; a request's normal
 * one).  Set before the child forks the runner's processes.  Raising a
 * priority (a lower nice) needs CAP_SYS_NICE or RLIMIT_NICE, which the
 * engine's container lacks (deploy/README.md): there a sandbox of a zygote
 * a refill thread started keeps that lower priority (slower under load,
 * no less isolated), as the pool's restore on take is best effort too. */
static int caller_nice(void)
{
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    return nice == -1 && errno != 0 ? 0 : nice;
}

static int match_caller_priority(pid_t pid, cm_error *err)
{
    int nice = caller_nice();
    if (setpriority(PRIO_PROCESS, (id_t)pid, nice) < 0 && errno != EACCES && errno != EPERM)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "setpriority of sandbox pid %d", (int)pid);
    return 0;
}

static int send_go(int engine_ctl, cm_error *err)
{
    ssize_t n;
    do {
        n = send(engine_ctl, "G", 1, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote: release the child");
    return 0;
}

int cm_zygote_prime(cm_zygote *z, const char *key, const char *data, size_t len, cm_error *err)
{
    cm_autofd int mfd = memfd_create("codemode-prime", MFD_CLOEXEC);
    if (mfd < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "zygote: memfd_create");
    if (cm_write_all(mfd, data, len, err) < 0 || lseek(mfd, 0, SEEK_SET) < 0)
        return cm_error_prefix(err, "zygote: prime data");
    pthread_mutex_lock(&z->mu);
    int rc = 1;
    char reply[512];
    int nofd = -1;
    if (z->up) {
        rc = 0;
        if (send_msg(z->fd, "tools", &mfd, 1, err) < 0 || wait_answer(z, err) < 0 ||
            recv_msg(z->fd, reply, sizeof reply, &nofd, ZYGOTE_REPLY_TIMEOUT_MS, err) < 0) {
            cm_log("warn", "zygote (%s rootfs) lost: %s", z->full ? "full" : "minimal",
                   err->message);
            shut_down(z);
            z->retry_after_ms = 0;
            rc = -1;
        } else if (strcmp(reply, "ok") != 0) {
            cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "zygote: %.400s", reply);
            rc = -1;
        } else {
            snprintf(z->primed, sizeof z->primed, "%s", key);
        }
    }
    pthread_mutex_unlock(&z->mu);
    cm_cleanup_fd(&nofd);
    return rc;
}

void cm_zygote_primed_key(cm_zygote *z, char *out, size_t cap)
{
    pthread_mutex_lock(&z->mu);
    snprintf(out, cap, "%s", z->up ? z->primed : "");
    pthread_mutex_unlock(&z->mu);
}

int cm_zygote_spawn(cm_zygote *z, const cm_limits *lim, int engine_ctl, int child_ctl,
                    int child_out, cm_sandbox *sb, cm_jail *jail, char *primed, size_t primed_cap,
                    cm_error *err)
{
    if (!z->cfg->zygote || !cm_isolation_active(z->iso, CM_LAYER_CGROUP))
        return 1;
    cm_sandbox_spec unused = {.tmp_size_bytes = z->cfg->tmp_size_bytes};
    if (cm_jail_prepare(z->iso, lim, jail, &unused, err) < 0)
        return -1;
    pthread_mutex_lock(&z->mu);
    int rc, pidfd = -1;
    /* a zygote that died since the last request is replaced once, here */
    for (int attempt = 0; attempt < 2 && pidfd < 0; attempt++) {
        rc = ensure_up_locked(z, err);
        /* the zygote works at its caller's priority: a refill's fork yields
         * to requests, a request's miss does not wait behind them */
        if (rc == 0)
            setpriority(PRIO_PROCESS, (id_t)z->sb.pid, caller_nice());
        pidfd = rc == 0 ? ask_zygote(z, child_ctl, child_out, err) : -1;
        if (pidfd != -2)
            break;
    }
    if (primed)
        snprintf(primed, primed_cap, "%s", pidfd >= 0 ? z->primed : "");
    pthread_mutex_unlock(&z->mu);
    if (rc != 0 || pidfd < 0) {
        cm_jail_finish(jail, NULL);
        return rc != 0 ? rc : -1;
    }
    *sb = (cm_sandbox){.pid = -1, .pidfd = pidfd, .foreign = true};
    sb->pid = pidfd_host_pid(pidfd, err);
    if (sb->pid < 0 || cm_jail_attach(jail, sb->pid, sb->pidfd, err) < 0 ||
        match_caller_priority(sb->pid, err) < 0 || send_go(engine_ctl, err) < 0) {
        cm_error ignored;
        cm_sandbox_kill(sb);
        if (sb->pid < 0)
            sb->pid = 0; /* reap by pidfd only */
        cm_sandbox_reap(sb, NULL, NULL, &ignored);
        cm_jail_finish(jail, NULL);
        return -1;
    }
    return 0;
}
