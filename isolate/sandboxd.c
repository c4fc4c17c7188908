/* sandboxd.c — the privileged part (`codemode __sandboxd`).  Why it
 * exists: the engine parses untrusted input (JSON-RPC, YAML, OpenAPI,
 * remote answers through libcurl) and should not do so as root, yet a few
 * operations on its sandboxes and provider processes are the kernel's to
 * grant only to root: writing another uid into a user namespace's id map,
 * moving a process of another uid into a cgroup, starting a process as a
 * sandbox uid, signalling it afterwards.  This broker does exactly those
 * five (IDS, ATTACH, PROVIDER, SIGNAL, UIDKILL; sandboxd.h), each on a
 * target it checks itself against the facts of its command line (the
 * service uid, the sandbox uid range, the instance cgroups, the work dir),
 * never against anything the engine says.  A request that fails a check
 * closes the channel: the broker kills and removes what the engine's
 * instance holds and exits, and the engine, without its broker, stops.
 * End-of-file (the engine stopped or was killed) does the same clean-up,
 * so even a SIGKILLed engine leaves nothing behind.  It is single-threaded
 * and started by exec, so it holds nothing the engine parsed. */
#include "sandboxd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/capability.h>

#include "cgroup.h"
#include "log.h"
#include "provider_exec.h"
#include "provider_jail.h"
#include "util.h"

#define SBD_MAX_DIRS 6

typedef struct sbd_dir {
    const char *path;
    bool v2;
    int fd; /* O_PATH directory, opened at start */
} sbd_dir;

typedef struct sbd_proc {
    pid_t pgid;
    uid_t uid;
} sbd_proc;

/* Everything the broker knows: its command line's facts, the fds it opened
 * from them, the provider process groups it started. */
typedef struct sbd {
    int chan;
    uid_t svc_uid;
    gid_t svc_gid;
    uid_t uid_base;
    gid_t gid_base;
    unsigned count;
    const char *workdir;
    int workdir_fd;
    sbd_dir inst[SBD_MAX_DIRS], cg[SBD_MAX_DIRS];
    int ninst, ncg;
    char **opts; /* the exec step's fixed options */
    int nopts;
    sbd_proc procs[CM_SBD_MAX_PROCS];
    int nprocs;
    char why[512];
} sbd;

/* A request that fails a check: -1, the reason kept for the log. */
static int refuse(sbd *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(sbd *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    return -1;
}

static bool uid_ok(const sbd *s, uint32_t uid)
{
    return uid != 0 && uid != s->svc_uid && uid >= s->uid_base && uid - s->uid_base < s->count;
}

static gid_t gid_of(const sbd *s, uid_t uid)
{
    return s->gid_base + (uid - s->uid_base);
}

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > CM_SBD_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'z') || n[i] == '-'))
            return false;
    return true;
}

/* Absolute, no "." or ".." component, no empty component but a final "/". */
static bool abs_path_ok(const char *p)
{
    if (p[0] != '/' || strlen(p) >= 4096)
        return false;
    for (const char *c = p + 1; *c;) {
        size_t n = strcspn(c, "/");
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.') || (n == 0 && c[1]))
            return false;
        c += n + (c[n] == '/');
    }
    return true;
}

/* A direct child of the work dir: "<workdir>/<name>", name without '/'. */
static const char *call_dir_name(const sbd *s, const char *p)
{
    size_t w = strlen(s->workdir);
    if (strncmp(p, s->workdir, w) || p[w] != '/')
        return NULL;
    const char *n = p + w + 1;
    if (!n[0] || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, "..") || strlen(n) > 255)
        return NULL;
    return n;
}

/* The pid of a pidfd from its fdinfo; -1 when fd is no pidfd, 0 when its
 * process is gone. */
static pid_t pidfd_pid(int fd)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return -1;
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strstr(buf, "\nPid:\t");
    if (!p)
        return -1;
    long pid = strtol(p + 6, NULL, 10);
    return pid > 0 ? (pid_t)pid : 0;
}

/* Alive, whoever owns it: without CAP_KILL (a container's root) the
 * probe of another uid's process fails with EPERM, which still means alive. */
static bool pidfd_alive(int pidfd)
{
    return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0 || errno == EPERM;
}

static int write_at(int dirfd, const char *name, const char *text)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = n == (ssize_t)strlen(text) ? 0 : (n < 0 ? errno : EIO);
    close(fd);
    return e;
}

/* The first bytes of a target's /proc file; -1 when it cannot be read. */
static ssize_t read_proc(int procfd, const char *name, char *buf, size_t cap)
{
    int fd = openat(procfd, name, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* The ids of a target from /proc/PID/status (readable without ptrace
 * access, which a container's root lacks): its parent, its four uids and
 * gids.  -1 when they cannot be read. */
static int target_ids(int procfd, pid_t *ppid, unsigned uid[4], unsigned gid[4])
{
    char buf[4096];
    if (read_proc(procfd, "status", buf, sizeof buf) <= 0)
        return -1;
    const char *p = strstr(buf, "\nPPid:"), *u = strstr(buf, "\nUid:"), *g = strstr(buf, "\nGid:");
    int pp;
    if (!p || !u || !g || sscanf(p + 6, "%d", &pp) != 1 ||
        sscanf(u + 5, "%u %u %u %u", &uid[0], &uid[1], &uid[2], &uid[3]) != 4 ||
        sscanf(g + 5, "%u %u %u %u", &gid[0], &gid[1], &gid[2], &gid[3]) != 4)
        return -1;
    *ppid = pp;
    return 0;
}

/* The target of IDS and ATTACH, checked from the host's view.  IDS: a
 * child of the engine (the broker's parent) running as the service user
 * with every uid and gid (so its user namespace, unmapped as IDS checks,
 * is one the service user made: it could enter no other).  ATTACH: such
 * a child whose map IDS wrote (a direct sandbox before it switches to the
 * mapped uid), or a process whose uids are one sandbox uid of the range
 * and gids its gid (a zygote's child).  0 with *procfd (/proc/PID)
 * and *pid, an errno > 0 when the process is gone (a race the engine may
 * lose), -1 refused. */
static int check_target(sbd *s, int pidfd, bool ids, int *procfd, pid_t *pid)
{
    *procfd = -1;
    *pid = pidfd_pid(pidfd);
    if (*pid < 0)
        return refuse(s, "the fd is no pidfd");
    if (*pid == 0)
        return ESRCH;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)*pid);
    int pfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    pid_t ppid = 0;
    unsigned uid[4], gid[4];
    int got = pfd >= 0 ? target_ids(pfd, &ppid, uid, gid) : -1;
    /* alive after the reads: /proc/PID was that process, not a reused pid */
    if (got < 0 || !pidfd_alive(pidfd)) {
        if (pfd >= 0)
            close(pfd);
        return ESRCH;
    }
    bool svc = ppid == getppid(), range = uid_ok(s, uid[0]);
    for (int i = 0; i < 4; i++) {
        svc = svc && uid[i] == s->svc_uid && gid[i] == s->svc_gid;
        range = range && uid[i] == uid[0] && gid[i] == gid_of(s, uid[0]);
    }
    /* ATTACH of a direct sandbox comes after its IDS, before it switches
     * to the mapped uid: its map must name a sandbox uid */
    char map[64];
    unsigned in, out, n;
    char tail;
    bool mapped = svc && !ids && read_proc(pfd, "uid_map", map, sizeof map) > 0 &&
                  sscanf(map, " %u %u %u %c", &in, &out, &n, &tail) == 3 && in == 0 && n == 1 &&
                  uid_ok(s, out);
    if (ids ? !svc : !(range || mapped)) {
        close(pfd);
        return refuse(
            s, "pid %d (parent %d, uid %u, gid %u) is no %s", (int)*pid, (int)ppid, uid[0], gid[0],
            ids ? "child of the engine running as the service user" : "process of a sandbox uid");
    }
    *procfd = pfd;
    return 0;
}

/* The exit status of a fork (pid < 0: fork's errno; killed: EIO). */
static int fork_status(pid_t pid)
{
    if (pid < 0)
        return errno;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

/* Runs fn in a fork of the broker and returns its status (0 or an errno). */
static int in_fork(const sbd *s, int (*fn)(const sbd *, void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(s, arg) & 0xff);
    return fork_status(pid);
}

typedef struct sbd_maps {
    int procfd;
    char uid_map[32], gid_map[32];
} sbd_maps;

/* In a fork with the service user as effective uid and CAP_SETUID,
 * CAP_SETGID raised again: writing another namespace's maps needs
 * CAP_SYS_ADMIN in it, which its owner has (the service user) and a root
 * without CAP_SYS_ADMIN (a container's) has not, plus CAP_SETUID/SETGID
 * in the parent namespace, which root keeps in its permitted set across an
 * effective uid change.  The target's /proc files are the service user's
 * (the engine is dumpable), so the opens need no CAP_DAC_OVERRIDE. */
static int write_maps(const sbd *s, void *arg)
{
    const sbd_maps *m = arg;
    if (setresuid((uid_t)-1, s->svc_uid, (uid_t)-1) < 0)
        return errno;
    cap_t caps = cap_get_proc();
    cap_value_t want[] = {CAP_SETUID, CAP_SETGID};
    if (!caps || cap_set_flag(caps, CAP_EFFECTIVE, 2, want, CAP_SET) < 0 || cap_set_proc(caps) < 0)
        return EPERM;
    cap_free(caps);
    char text[16];
    read_proc(m->procfd, "setgroups", text, sizeof text);
    int rc = strncmp(text, "deny", 4) ? write_at(m->procfd, "setgroups", "deny") : 0;
    if (!rc)
        rc = write_at(m->procfd, "gid_map", m->gid_map);
    return rc ? rc : write_at(m->procfd, "uid_map", m->uid_map);
}

static int req_ids(sbd *s, const cm_sbd_hdr *h, int pidfd)
{
    if (!uid_ok(s, h->uid))
        return refuse(s, "IDS: uid %u outside the sandbox range", h->uid);
    int procfd;
    pid_t pid;
    int rc = check_target(s, pidfd, true, &procfd, &pid);
    if (rc)
        return rc;
    char text[16];
    if (read_proc(procfd, "uid_map", text, sizeof text) != 0 ||
        read_proc(procfd, "gid_map", text, sizeof text) != 0) {
        close(procfd);
        return refuse(s, "IDS: pid %d already has id maps", (int)pid);
    }
    sbd_maps m = {.procfd = procfd};
    snprintf(m.gid_map, sizeof m.gid_map, "0 %u 1\n", (unsigned)gid_of(s, h->uid));
    snprintf(m.uid_map, sizeof m.uid_map, "0 %u 1\n", (unsigned)h->uid);
    rc = in_fork(s, write_maps, &m);
    close(procfd);
    if (!rc && !pidfd_alive(pidfd))
        rc = ESRCH;
    return rc;
}

static int req_attach(sbd *s, const char *name, int pidfd)
{
    if (!name_ok(name) || !strcmp(name, "providers"))
        return refuse(s, "ATTACH: bad cgroup name");
    int sub[SBD_MAX_DIRS], found = 0;
    for (int i = 0; i < s->ninst; i++) {
        sub[i] = openat(s->inst[i].fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        found += sub[i] >= 0;
    }
    int procfd = -1, rc = 0;
    pid_t pid = 0;
    if (!found)
        rc = refuse(s, "ATTACH: no cgroup %s below the instance", name);
    else
        rc = check_target(s, pidfd, false, &procfd, &pid);
    if (procfd >= 0)
        close(procfd);
    char text[32];
    snprintf(text, sizeof text, "%d", (int)pid);
    for (int i = 0; i < s->ninst; i++) {
        if (sub[i] < 0)
            continue;
        if (!rc)
            rc = write_at(sub[i], "cgroup.procs", text);
        close(sub[i]);
    }
    return rc;
}

/* The PROVIDER request's strings, checked. */
typedef struct sbd_spawn {
    const char *prog, *cwd, *own;
    const char *argv[CM_SBD_MAX_STRS + 1], *envp[CM_SBD_MAX_STRS + 1], *rw[CM_JAIL_MAX_RW];
    int nargv, nenv, nrw;
} sbd_spawn;

static int parse_spawn(sbd *s, const char *strs, uint32_t nstr, sbd_spawn *p)
{
    for (uint32_t i = 0; i < nstr; i++, strs += strlen(strs) + 1) {
        const char *v = strs + 1;
        switch (strs[0]) {
        case 'p':
            if (p->prog || !v[0])
                return refuse(s, "PROVIDER: program");
            p->prog = v;
            break;
        case 'a':
            p->argv[p->nargv++] = v;
            break;
        case 'e':
            if (!strchr(v, '=') || v[0] == '=')
                return refuse(s, "PROVIDER: environment entry without a name");
            p->envp[p->nenv++] = v;
            break;
        case 'c':
            if (p->cwd || !abs_path_ok(v))
                return refuse(s, "PROVIDER: working directory");
            p->cwd = v;
            break;
        case 'r':
            if (p->nrw == CM_JAIL_MAX_RW || !abs_path_ok(v))
                return refuse(s, "PROVIDER: writable directory");
            p->rw[p->nrw++] = v;
            break;
        case 'o':
            if (p->own || !call_dir_name(s, v))
                return refuse(s, "PROVIDER: call directory not a direct child of the work dir");
            p->own = v;
            break;
        default:
            return refuse(s, "PROVIDER: unknown string tag");
        }
    }
    if (!p->prog || !p->nargv)
        return refuse(s, "PROVIDER: no program or argv");
    return 0;
}

static void remember(sbd *s, pid_t pgid, uid_t uid)
{
    if (s->nprocs == CM_SBD_MAX_PROCS) /* the oldest group is long gone */
        memmove(s->procs, s->procs + 1, --s->nprocs * sizeof *s->procs);
    s->procs[s->nprocs++] = (sbd_proc){pgid, uid};
}

/* The engine's child (CLONE_PARENT: the engine waits for it as before)
 * running the exec step with the broker's own options and the uid. */
static int req_provider(sbd *s, const cm_sbd_hdr *h, const char *strs, const int *fds,
                        int32_t *out_pid)
{
    if (!uid_ok(s, h->uid))
        return refuse(s, "PROVIDER: uid %u outside the sandbox range", h->uid);
    sbd_spawn *p = cm_xcalloc(1, sizeof *p);
    int rc = parse_spawn(s, strs, h->nstr, p);
    size_t n = 0, cap = (size_t)s->nopts + 2 * CM_JAIL_MAX_RW + (size_t)p->nargv + 10;
    const char **argv = cm_xcalloc(cap, sizeof *argv);
    char ids[32];
    snprintf(ids, sizeof ids, "%u:%u", h->uid, (unsigned)gid_of(s, h->uid));
    argv[n++] = "/proc/self/exe";
    argv[n++] = CM_PROVIDER_EXEC_CMD;
    for (int i = 0; i < s->nopts; i++)
        argv[n++] = s->opts[i];
    argv[n++] = "--ids";
    argv[n++] = ids;
    for (int i = 0; i < p->nrw; i++)
        argv[n++] = "--rw", argv[n++] = p->rw[i];
    if (p->own)
        argv[n++] = "--own", argv[n++] = p->own;
    argv[n++] = "--";
    argv[n++] = p->prog;
    for (int i = 0; i < p->nargv; i++)
        argv[n++] = p->argv[i];
    pid_t pid = rc ? -1 : (pid_t)syscall(SYS_clone, CLONE_PARENT, NULL, NULL, NULL, 0);
    if (pid == 0) {
        /* single-threaded broker: ordinary calls are safe until execve */
        sigset_t none;
        sigemptyset(&none);
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setpgid(0, 0);
        for (int i = 0; i < 3; i++)
            if (dup2(fds[i], i) < 0)
                _exit(126);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        if (p->cwd && chdir(p->cwd) < 0) {
            dprintf(2, "codemode: provider working directory %s: %s\n", p->cwd, strerror(errno));
            _exit(126);
        }
        execve("/proc/self/exe", (char **)argv, (char **)p->envp);
        _exit(127);
    }
    if (!rc && pid < 0)
        rc = errno;
    if (!rc) {
        remember(s, pid, h->uid);
        *out_pid = pid;
    }
    free(argv);
    free(p);
    return rc;
}

/* Runs fn in a fork that became uid (and its gid) and returns its status. */
static int as_uid(const sbd *s, uid_t uid, gid_t gid, int (*fn)(const sbd *, void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
            _exit(EPERM);
        _exit(fn(s, arg) & 0xff);
    }
    return fork_status(pid);
}

static int kill_group(const sbd *s, void *arg)
{
    (void)s;
    const int *a = arg;
    return kill(-a[0], a[1]) == 0 ? 0 : errno;
}

static int req_signal(sbd *s, const cm_sbd_hdr *h)
{
    if (h->sig != SIGTERM && h->sig != SIGKILL)
        return refuse(s, "SIGNAL: signal %d", h->sig);
    for (int i = 0; i < s->nprocs; i++)
        if (s->procs[i].pgid == h->pgid && h->pgid > 1) {
            int a[2] = {h->pgid, h->sig};
            uid_t uid = s->procs[i].uid;
            return as_uid(s, uid, gid_of(s, uid), kill_group, a);
        }
    return refuse(s, "SIGNAL: %d is no provider process group of this broker", h->pgid);
}

/* As the uid: kill everything of it, then empty its call directory. */
static int clear_uid(const sbd *s, void *arg)
{
    (void)s;
    for (int i = 0; i < 100 && kill(-1, SIGKILL) == 0; i++)
        ;
    const char *dir = arg;
    if (dir) {
        struct stat st;
        if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid())
            cm_remove_tree(dir); /* the directory itself: rmdir_call, below */
    }
    return 0;
}

/* As the service user, whose work dir holds the emptied call directory
 * (root without CAP_DAC_OVERRIDE, in a container, may not write there). */
static int rmdir_call(const sbd *s, void *arg)
{
    const char *name = arg;
    return unlinkat(s->workdir_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : errno;
}

static int uid_clear(sbd *s, uid_t uid, const char *dir)
{
    int rc = as_uid(s, uid, gid_of(s, uid), clear_uid, (void *)dir);
    int rm = dir ? as_uid(s, s->svc_uid, s->svc_gid, rmdir_call, (void *)call_dir_name(s, dir)) : 0;
    rc = rc ? rc : rm;
    int k = 0;
    for (int i = 0; i < s->nprocs; i++)
        if (s->procs[i].uid != uid)
            s->procs[k++] = s->procs[i];
    s->nprocs = k;
    return rc;
}

static int req_uidkill(sbd *s, const cm_sbd_hdr *h, const char *dir)
{
    if (!uid_ok(s, h->uid))
        return refuse(s, "UIDKILL: uid %u outside the sandbox range", h->uid);
    if (dir && !call_dir_name(s, dir))
        return refuse(s, "UIDKILL: %s is not a direct child of the work dir", dir);
    return uid_clear(s, h->uid, dir);
}

/* The frame's shape: magic, op, the fields and fds the op uses (every other
 * one zero), strings exactly filling the payload. */
static int check_frame(sbd *s, const cm_sbd_hdr *h, size_t n, int nfds)
{
    static const int want_fds[] = {0, 1, 1, 3, 0, 0};
    if (h->magic != CM_SBD_MAGIC || h->op < CM_SBD_IDS || h->op > CM_SBD_UIDKILL)
        return refuse(s, "bad magic or op");
    if (h->len != n - sizeof *h || h->nstr > CM_SBD_MAX_STRS || nfds != want_fds[h->op])
        return refuse(s, "op %u: bad length, string count or fd count", h->op);
    bool uid = h->op == CM_SBD_IDS || h->op == CM_SBD_PROVIDER || h->op == CM_SBD_UIDKILL;
    bool sig = h->op == CM_SBD_SIGNAL;
    uint32_t max_str = h->op == CM_SBD_PROVIDER                            ? CM_SBD_MAX_STRS
                       : h->op == CM_SBD_ATTACH || h->op == CM_SBD_UIDKILL ? 1
                                                                           : 0;
    if ((!uid && h->uid) || (!sig && (h->pgid || h->sig)) || h->nstr > max_str ||
        (h->op == CM_SBD_ATTACH && h->nstr != 1))
        return refuse(s, "op %u: fields it does not use are set", h->op);
    const char *p = (const char *)(h + 1), *end = p + h->len;
    uint32_t k = 0;
    while (p < end) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            return refuse(s, "op %u: unterminated string", h->op);
        p = z + 1;
        k++;
    }
    if (k != h->nstr)
        return refuse(s, "op %u: %u strings, %u announced", h->op, k, h->nstr);
    return 0;
}

/* One request; 1 at end-of-file, -1 refused or channel broken. */
static int serve_one(sbd *s, char *buf)
{
    int fds[3] = {-1, -1, -1}, nfds = 0;
    char ctl[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {buf, CM_SBD_MAX_FRAME + 1};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    ssize_t n;
    while ((n = recvmsg(s->chan, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    int rc = 0;
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            rc = refuse(s, "control message other than SCM_RIGHTS");
            continue;
        }
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (nfds < 3)
                fds[nfds] = fd;
            else
                close(fd);
            nfds++;
        }
    }
    if (n == 0 && nfds == 0)
        return 1;
    const cm_sbd_hdr *h = (const cm_sbd_hdr *)buf;
    cm_sbd_reply r = {CM_SBD_MAGIC, 0, 0};
    if (n < 0)
        rc = refuse(s, "recvmsg: %s", strerror(errno));
    else if (!rc && (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        rc = refuse(s, "frame or fds truncated (at most %u bytes, 3 fds)", CM_SBD_MAX_FRAME);
    else if (!rc && (size_t)n < sizeof *h)
        rc = refuse(s, "short frame (%zd bytes)", n);
    if (!rc)
        rc = check_frame(s, h, (size_t)n, nfds);
    const char *str = (const char *)(h + 1);
    if (!rc) {
        switch (h->op) {
        case CM_SBD_IDS:
            rc = req_ids(s, h, fds[0]);
            break;
        case CM_SBD_ATTACH:
            rc = req_attach(s, str, fds[0]);
            break;
        case CM_SBD_PROVIDER:
            rc = req_provider(s, h, str, fds, &r.pid);
            break;
        case CM_SBD_SIGNAL:
            rc = req_signal(s, h);
            break;
        default:
            rc = req_uidkill(s, h, h->nstr ? str : NULL);
            break;
        }
    }
    for (int i = 0; i < nfds && i < 3; i++)
        close(fds[i]);
    if (rc < 0)
        return -1;
    r.status = rc;
    if (send(s->chan, &r, sizeof r, MSG_NOSIGNAL) != (ssize_t)sizeof r)
        return refuse(s, "reply: %s", strerror(errno));
    return 0;
}

static int remove_workdir_as_svc(const sbd *s, void *arg)
{
    (void)arg;
    cm_remove_tree(s->workdir);
    return 0;
}

/* Nothing of the instance survives the channel: its cgroups (sandboxes,
 * zygotes, providers) killed and removed, every sandbox uid that owns a
 * call directory cleared as that uid, then the work dir removed as the
 * service user (it is theirs to have filled, never root's to follow). */
static void clean_up(sbd *s)
{
    /* cgroup2 first: cgroup.kill needs no CAP_KILL, and every sandbox and
     * provider is in a cgroup2 directory too, so the v1 ones are empty by
     * the time they are removed (v1 can only be emptied by kill(2)) */
    for (int v2 = 1; v2 >= 0; v2--) {
        for (int i = 0; i < s->ninst; i++)
            if (s->inst[i].v2 == v2)
                cm_cgroup_remove_instance(s->inst[i].path, v2);
        for (int i = 0; i < s->ncg; i++)
            if (s->cg[i].v2 == v2)
                cm_cgroup_remove_instance(s->cg[i].path, v2);
    }
    int fd = openat(s->workdir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(s->workdir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
            !S_ISDIR(st.st_mode) || !uid_ok(s, st.st_uid))
            continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", s->workdir, e->d_name);
        uid_clear(s, st.st_uid, dir);
    }
    if (d)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    as_uid(s, s->svc_uid, s->svc_gid, remove_workdir_as_svc, NULL);
    rmdir(s->workdir); /* when its parent is not the service user's to write */
}

static int add_dir(sbd_dir *v, int *n, const char *arg)
{
    if (*n == SBD_MAX_DIRS || (arg[0] != '1' && arg[0] != '2') || arg[1] != ':' ||
        !abs_path_ok(arg + 2))
        return -1;
    int fd = open(arg + 2, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    v[(*n)++] = (sbd_dir){arg + 2, arg[0] == '2', fd};
    return 0;
}

static int parse_args(sbd *s, int argc, char **argv)
{
    int i = 1;
    for (; i + 1 < argc && strcmp(argv[i], "--"); i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        unsigned a, b, c;
        char tail;
        if (!strcmp(o, "--fd") && sscanf(v, "%u%c", &a, &tail) == 1 && a > 2)
            s->chan = (int)a;
        else if (!strcmp(o, "--service") && sscanf(v, "%u:%u%c", &a, &b, &tail) == 2 && a && b)
            s->svc_uid = a, s->svc_gid = b;
        else if (!strcmp(o, "--range") && sscanf(v, "%u:%u:%u%c", &a, &b, &c, &tail) == 3 && a &&
                 b && c && c <= 65536)
            s->uid_base = a, s->gid_base = b, s->count = c;
        else if (!strcmp(o, "--workdir") && abs_path_ok(v) && strlen(v) > 1)
            s->workdir = v;
        else if (!(!strcmp(o, "--instance") && add_dir(s->inst, &s->ninst, v) == 0) &&
                 !(!strcmp(o, "--cgroup") && add_dir(s->cg, &s->ncg, v) == 0))
            return -1;
    }
    if (i >= argc || strcmp(argv[i], "--") || s->chan < 0 || !s->svc_uid || !s->count ||
        !s->workdir)
        return -1;
    s->opts = argv + i + 1;
    s->nopts = argc - i - 1;
    s->workdir_fd = open(s->workdir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return s->workdir_fd < 0 ? -1 : 0;
}

int cm_sandboxd_main(int argc, char **argv)
{
    sbd *s = cm_xcalloc(1, sizeof *s);
    s->chan = -1;
    if (geteuid() != 0 || parse_args(s, argc, argv) < 0) {
        fprintf(stderr, "codemode %s: bad arguments or not root (internal)\n", CM_SANDBOXD_CMD);
        return 2;
    }
    /* no core dumps or ptrace by the service user; no supplementary groups
     * for the forks that become a sandbox uid; signals for the process
     * group (a terminal's ^C, systemd's KillMode=mixed) are the engine's:
     * the broker follows it by end-of-file, after cleaning up */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (setgroups(0, NULL) < 0)
        return 2;
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    char *buf = cm_xmalloc(CM_SBD_MAX_FRAME + 1);
    int rc;
    while ((rc = serve_one(s, buf)) == 0)
        ;
    if (rc < 0)
        cm_log("error", "sandboxd: refused a request, closing the channel: %s", s->why);
    close(s->chan);
    clean_up(s);
    free(buf);
    free(s);
    return rc < 0 ? 3 : 0;
}
