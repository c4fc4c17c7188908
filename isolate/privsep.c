/* privsep.c — the engine's end of the privileged part: starts `codemode
 * __sandboxd` (sandboxd.c) with the facts the root engine decided, and
 * turns each of the five operations an unprivileged engine cannot do
 * itself into one request frame on the channel.  Why a module of its own:
 * the callers (sandbox set-up, the zygote, provider spawns and their
 * signals, the uid clean-up) must not each know the wire format, and the
 * one lock here keeps a request and its reply together when several
 * engine threads ask at once.  A refused request means the broker closed
 * the channel; the engine then has no privileged part and every later
 * request fails at once. */
#include "privsep.h"

#include <errno.h>
#include <grp.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandboxd.h"
#include "util.h"

static void push(char ***v, size_t *n, const char *s)
{
    *v = realloc(*v, (*n + 2) * sizeof **v);
    if (!*v)
        abort();
    (*v)[(*n)++] = cm_xstrdup(s);
    (*v)[*n] = NULL;
}

static void push_dir(char ***v, size_t *n, const char *opt, const char *dir, bool v2)
{
    char buf[4200];
    snprintf(buf, sizeof buf, "%c:%s", v2 ? '2' : '1', dir);
    push(v, n, opt);
    push(v, n, buf);
}

static char **broker_argv(const cm_privsep_facts *f)
{
    char **v = NULL, buf[64];
    size_t n = 0;
    push(&v, &n, f->exe);
    push(&v, &n, CM_SANDBOXD_CMD);
    push(&v, &n, "--fd");
    push(&v, &n, "3");
    snprintf(buf, sizeof buf, "%u:%u", (unsigned)f->svc_uid, (unsigned)f->svc_gid);
    push(&v, &n, "--service");
    push(&v, &n, buf);
    snprintf(buf, sizeof buf, "%u:%u:%u", (unsigned)f->uid_base, (unsigned)f->gid_base, f->count);
    push(&v, &n, "--range");
    push(&v, &n, buf);
    push(&v, &n, "--workdir");
    push(&v, &n, f->workdir);
    for (int i = 0; i < f->ninstance; i++)
        push_dir(&v, &n, "--instance", f->instance[i], f->instance_v2[i]);
    for (int i = 0; i < f->ncgroup; i++)
        push_dir(&v, &n, "--cgroup", f->cgroup[i], f->cgroup_v2[i]);
    push(&v, &n, "--");
    for (char *const *o = f->exec_opts; o && *o; o++)
        push(&v, &n, *o);
    return v;
}

int cm_privsep_start(const cm_privsep_facts *f, cm_privsep *ps, cm_error *err)
{
    ps->fd = -1;
    ps->pid = -1;
    pthread_mutex_init(&ps->lock, NULL);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return cm_error_sys(err, CM_ERR_IO, "privileged part: socketpair");
    char **argv = broker_argv(f);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3); /* clears CLOEXEC, also when sv[1] == 3 */
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    int rc = posix_spawn(&ps->pid, f->exe, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        ps->pid = -1;
        errno = rc;
        return cm_error_sys(err, CM_ERR_IO, "start the privileged part %s %s", f->exe,
                            CM_SANDBOXD_CMD);
    }
    ps->fd = sv[0];
    return 0;
}

int cm_privsep_stop(cm_privsep *ps)
{
    pthread_mutex_lock(&ps->lock);
    if (ps->fd >= 0)
        close(ps->fd);
    ps->fd = -1;
    pid_t pid = ps->pid;
    ps->pid = -1;
    pthread_mutex_unlock(&ps->lock);
    if (pid <= 0)
        return -1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One request and its reply, under the lock. */
static int ask(cm_privsep *ps, const cm_sbd_hdr *h, const char *payload, const int *fds, int nfds,
               cm_sbd_reply *r, cm_error *err)
{
    size_t len = sizeof *h + h->len;
    if (len > CM_SBD_MAX_FRAME)
        return cm_error_set(err, CM_ERR_INVALID_REQUEST,
                            "privileged part: request of %zu bytes (at most %u)", len,
                            CM_SBD_MAX_FRAME);
    struct iovec iov[2] = {{(void *)h, sizeof *h}, {(void *)payload, h->len}};
    pthread_mutex_lock(&ps->lock);
    ssize_t n = -1;
    if (ps->fd >= 0) {
        n = cm_send_fds(ps->fd, iov, h->len ? 2 : 1, fds, nfds);
        if (n == (ssize_t)len)
            while ((n = recv(ps->fd, r, sizeof *r, 0)) < 0 && errno == EINTR)
                ;
        if (n != (ssize_t)sizeof *r || r->magic != CM_SBD_MAGIC) {
            close(ps->fd); /* lost: the broker refused, or died */
            ps->fd = -1;
            n = -1;
        }
    }
    pthread_mutex_unlock(&ps->lock);
    if (n < 0)
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE,
                            "the privileged part closed its channel (a refused request; its log "
                            "line says why)");
    if (r->status) {
        errno = r->status;
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "privileged part");
    }
    return 0;
}

int cm_privsep_ids(cm_privsep *ps, int pidfd, uid_t uid, cm_error *err)
{
    cm_sbd_hdr h = {.magic = CM_SBD_MAGIC, .op = CM_SBD_IDS, .uid = uid};
    cm_sbd_reply r;
    return ask(ps, &h, NULL, &pidfd, 1, &r, err) < 0 ? cm_error_prefix(err, "id maps") : 0;
}

int cm_privsep_attach(cm_privsep *ps, int pidfd, const char *name, cm_error *err)
{
    cm_sbd_hdr h = {
        .magic = CM_SBD_MAGIC, .op = CM_SBD_ATTACH, .nstr = 1, .len = (uint32_t)strlen(name) + 1};
    cm_sbd_reply r;
    return ask(ps, &h, name, &pidfd, 1, &r, err) < 0 ? cm_error_prefix(err, "cgroup attach") : 0;
}

static void add_str(cm_buf *b, uint32_t *nstr, char tag, const char *s)
{
    cm_error ignored;
    cm_buf_append(b, &tag, 1, &ignored);
    cm_buf_append(b, s, strlen(s) + 1, &ignored);
    ++*nstr;
}

int cm_privsep_provider(cm_privsep *ps, const cm_privsep_spawn *sp, pid_t *pid, cm_error *err)
{
    cm_buf b = {0};
    uint32_t nstr = 0;
    add_str(&b, &nstr, 'p', sp->prog);
    for (char *const *a = sp->argv; a && *a; a++)
        add_str(&b, &nstr, 'a', *a);
    for (char *const *e = sp->envp; e && *e; e++)
        add_str(&b, &nstr, 'e', *e);
    add_str(&b, &nstr, 'c', sp->cwd ? sp->cwd : "/");
    for (const char *const *r = sp->rw; r && *r; r++)
        add_str(&b, &nstr, 'r', *r);
    if (sp->own)
        add_str(&b, &nstr, 'o', sp->own);
    cm_sbd_hdr h = {.magic = CM_SBD_MAGIC,
                    .op = CM_SBD_PROVIDER,
                    .uid = sp->uid,
                    .nstr = nstr,
                    .len = (uint32_t)b.len};
    cm_sbd_reply r = {0};
    int rc = ask(ps, &h, b.data, sp->fds, 3, &r, err);
    cm_buf_free(&b);
    if (rc < 0)
        return cm_error_prefix(err, "start provider %s", sp->prog);
    *pid = r.pid;
    return 0;
}

int cm_privsep_signal(cm_privsep *ps, pid_t pgid, int sig, cm_error *err)
{
    cm_sbd_hdr h = {.magic = CM_SBD_MAGIC, .op = CM_SBD_SIGNAL, .pgid = pgid, .sig = sig};
    cm_sbd_reply r;
    return ask(ps, &h, NULL, NULL, 0, &r, err) < 0 ? cm_error_prefix(err, "signal %d", (int)pgid)
                                                   : 0;
}

int cm_privsep_uidkill(cm_privsep *ps, uid_t uid, const char *call_dir, cm_error *err)
{
    cm_sbd_hdr h = {.magic = CM_SBD_MAGIC,
                    .op = CM_SBD_UIDKILL,
                    .uid = uid,
                    .nstr = call_dir ? 1 : 0,
                    .len = call_dir ? (uint32_t)strlen(call_dir) + 1 : 0};
    cm_sbd_reply r;
    return ask(ps, &h, call_dir, NULL, 0, &r, err) < 0
               ? cm_error_prefix(err, "clear uid %u", (unsigned)uid)
               : 0;
}

static bool have_cap(cap_value_t c)
{
    cap_t caps = cap_get_proc();
    cap_flag_value_t v = CAP_CLEAR;
    if (caps)
        cap_get_flag(caps, c, CAP_EFFECTIVE, &v);
    cap_free(caps);
    return v == CAP_SET;
}

/* True when the process holds no capability in any set. */
static bool caps_empty(void)
{
    cap_t caps = cap_get_proc(), none = cap_init();
    bool empty = caps && none && cap_compare(caps, none) == 0;
    cap_free(caps);
    cap_free(none);
    return empty;
}

int cm_privsep_drop(uid_t uid, gid_t gid, bool *bounding_kept, cm_error *err)
{
    if (uid == 0 || gid == 0)
        return cm_error_set(err, CM_ERR_CONFIG, "drop: the service user must not be root");
    if (setgroups(0, NULL) < 0)
        return cm_error_sys(err, CM_ERR_IO, "drop: setgroups");
    *bounding_kept = !have_cap(CAP_SETPCAP);
    if (!*bounding_kept) {
        const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
                                   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
            return cm_error_sys(err, CM_ERR_IO, "drop: securebits");
        for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++)
            if (cap_drop_bound(c) < 0)
                return cm_error_sys(err, CM_ERR_IO, "drop: bounding set capability %d", (int)c);
    }
    if (cap_reset_ambient() < 0)
        return cm_error_sys(err, CM_ERR_IO, "drop: ambient set");
    if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        return cm_error_sys(err, CM_ERR_IO, "drop: become uid %u gid %u", (unsigned)uid,
                            (unsigned)gid);
    cap_t none = cap_init();
    int rc = none ? cap_set_proc(none) : -1;
    cap_free(none);
    if (rc < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return cm_error_sys(err, CM_ERR_IO, "drop: capabilities, dumpable or no_new_privs");
    uid_t r, e, sv;
    gid_t gr, ge, gs;
    if (getresuid(&r, &e, &sv) < 0 || getresgid(&gr, &ge, &gs) < 0 || r != uid || e != uid ||
        sv != uid || gr != gid || ge != gid || gs != gid || !caps_empty() ||
        (!*bounding_kept && CAP_IS_SUPPORTED(CAP_SETPCAP) && cap_get_bound(CAP_SETPCAP) != 0))
        return cm_error_set(err, CM_ERR_INTERNAL, "drop: still privileged after the drop");
    return 0;
}

bool cm_privsep_possible(char *why, size_t cap)
{
    if (have_cap(CAP_DAC_OVERRIDE))
        return true;
    snprintf(why, cap,
             "no CAP_DAC_OVERRIDE (a container): the privileged part could not attach sandboxes "
             "to cgroups the service user owns");
    return false;
}

int cm_privsep_service_user(const char *setting, uid_t base, gid_t gbase, unsigned count,
                            uid_t *uid, gid_t *gid, bool *from_range, char *from, size_t from_cap,
                            cm_error *err)
{
    const char *u = setting;
    *from_range = false;
    if (u && !strcmp(u, "root"))
        return 1;
    unsigned nu, ng;
    char tail;
    if (u && sscanf(u, "%u:%u%c", &nu, &ng, &tail) == 2) {
        *uid = nu;
        *gid = ng;
        snprintf(from, from_cap, "engine.user");
    } else if (u || getpwnam("codemode")) {
        const struct passwd *pw = getpwnam(u ? u : "codemode");
        if (!pw)
            return cm_error_set(err, CM_ERR_CONFIG, "engine.user: no user %s", u);
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
        snprintf(from, from_cap, "%s %.32s", u ? "engine.user" : "account", pw->pw_name);
    } else if (count >= 2) {
        *uid = base + count - 1;
        *gid = gbase + count - 1;
        *from_range = true;
        snprintf(from, from_cap, "the sandbox range's last uid");
        return 0;
    } else {
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.user: no account codemode, and the sandbox uid range of one "
                            "cannot spare a uid for the service user (set engine.user)");
    }
    if (*uid >= base && *uid - base < count)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.user: uid %u is in the sandbox uid range %u..%u",
                            (unsigned)*uid, (unsigned)base, (unsigned)(base + count - 1));
    if (*uid == 0 || *gid == 0)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.user: uid/gid 0 is root (engine.user: root keeps one process)");
    return 0;
}

bool cm_privsep_path_reachable(const char *path, uid_t uid, gid_t gid, char *why, size_t cap)
{
    if (!path)
        return true;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        struct stat st;
        bool ok = stat(buf, &st) == 0 && S_ISDIR(st.st_mode) &&
                  (st.st_uid == uid   ? (st.st_mode & S_IXUSR)
                   : st.st_gid == gid ? (st.st_mode & S_IXGRP)
                                      : (st.st_mode & S_IXOTH));
        if (!ok) {
            snprintf(why, cap,
                     "rootfs %.200s: directory %.200s is not searchable by the service user uid "
                     "%u, which binds it into every sandbox (make it o+x, or move the rootfs)",
                     path, buf, (unsigned)uid);
            return false;
        }
        buf[i] = c;
    }
    return true;
}
