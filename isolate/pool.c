/* pool.c — the warm pool of single-use sandboxes and the reaper that tears
 * used ones down off the request path (see pool.h).  Why: building a
 * sandbox costs ~100 ms (mostly the interpreter's start and imports); a
 * chain should only pay for a socket write. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "zygote.h"

typedef struct dispose_item {
    cm_sandbox sb;
    cm_jail jail;
    struct dispose_item *next;
} dispose_item;

struct cm_pool {
    cm_iso_config cfg; /* a copy (borrowed strings) */
    cm_isolation *iso;
    cm_pool_metrics metrics;
    pthread_mutex_t lock;
    pthread_cond_t refill_cv; /* refill threads: room in the pool, or stopping */
    pthread_cond_t warm_cv;   /* a sandbox was added */
    pthread_cond_t reap_cv;   /* reaper: work, or stopping */
    cm_pool_sandbox *idle[2]; /* [0] minimal, [1] full */
    int nidle[2], target[2], building[2];
    long hits, misses;
    dispose_item *dispose_head, *dispose_tail;
    int disposing;
    bool stopping, reaper_stopping;
    int nrefill;
    pthread_t *refill;
    pthread_t reaper;
    bool reaper_started;
    cm_zygote zygote[2]; /* [0] minimal, [1] full rootfs */
};

/* ---- building ----------------------------------------------------------- */

static void destroy_now(cm_sandbox *sb, cm_jail *jail)
{
    int status;
    cm_error ignored;
    cm_sandbox_kill(sb);
    cm_sandbox_reap(sb, &status, NULL, &ignored);
    cm_jail_finish(jail, NULL);
}

int cm_pool_spawn(cm_pool *p, cm_isolation *iso, bool full, const cm_limits *lim, int engine_ctl,
                  cm_sandbox_spec *spec, cm_sandbox *sb, cm_jail *jail, char *primed,
                  size_t primed_cap, cm_error *err)
{
    if (primed)
        primed[0] = '\0';
    if (p) {
        int rc = cm_zygote_spawn(&p->zygote[full ? 1 : 0], lim, engine_ctl, spec->control_fd,
                                 spec->output_fd, sb, jail, primed, primed_cap, err);
        if (rc <= 0)
            return rc;
    }
    if (cm_jail_prepare(iso, lim, jail, spec, err) < 0)
        return -1;
    if (cm_sandbox_spawn(spec, sb, err) < 0) {
        cm_jail_finish(jail, NULL);
        return -1;
    }
    return 0;
}

static int list_tasks(const cm_cgroup *cg, pid_t *tids, int cap);

int cm_pool_build(cm_pool *p, bool full, const cm_limits *lim, int64_t deadline_ms,
                  cm_pool_sandbox *out, cm_error *err)
{
    memset(out, 0, sizeof *out);
    out->ctl_fd = out->out_fd = -1;
    int64_t t0 = cm_now_us();
    int sv[2], pipefd[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "socketpair");
    cm_autofd int child_ctl = sv[1];
    cm_autofd int ctl = sv[0];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "pipe2");
    cm_autofd int child_out = pipefd[1];
    cm_autofd int outfd = pipefd[0];
    if (cm_set_nonblock(ctl, true, err) < 0 || cm_set_nonblock(outfd, true, err) < 0)
        return -1;
    cm_sandbox_spec spec = {
        .rootfs = full ? p->cfg.rootfs_full : p->cfg.rootfs,
        .argv = cm_runner_argv,
        .envp = cm_runner_envp,
        .control_fd = child_ctl,
        .output_fd = child_out,
        .tmp_size_bytes = p->cfg.tmp_size_bytes,
    };
    if (cm_pool_spawn(p, p->iso, full, lim, ctl, &spec, &out->sb, &out->jail, out->primed,
                      sizeof out->primed, err) < 0)
        return -1;
    cm_cleanup_fd(&child_ctl);
    cm_cleanup_fd(&child_out);
    if (cm_runner_wait_ready(ctl, deadline_ms, err) < 0) {
        cm_error_prefix_output(err, outfd); /* a zygote child's set-up error, a traceback */
        destroy_now(&out->sb, &out->jail);
        return -1;
    }
    out->limits = *lim;
    out->full = full;
    out->ctl_fd = cm_steal_fd(&ctl);
    out->out_fd = cm_steal_fd(&outfd);
    out->build_ms = (double)(cm_now_us() - t0) / 1000.0;
    if (out->jail.iso && out->jail.cg.npaths > 0) {
        cm_cgroup_usage_open(&out->jail.cg, &out->usage);
        out->usage_open = true;
        out->ntids = list_tasks(&out->jail.cg, out->tids, 8);
        if (out->ntids >= 8)
            out->ntids = 0; /* more than kept: list them again on take */
    }
    return 0;
}

/* The fds of a built sandbox that no chain took. */
static void close_fds(cm_pool_sandbox *s)
{
    close(s->ctl_fd);
    close(s->out_fd);
    if (s->usage_open)
        cm_cgroup_usage_close(&s->usage);
    s->usage_open = false;
}

int cm_pool_apply_limits(cm_pool_sandbox *s, const cm_limits *lim, cm_error *err)
{
    if (!memcmp(&s->limits, lim, sizeof *lim))
        return 0;
    if (cm_cgroup_update_limits(&s->jail.cg, &s->limits, lim, err) < 0)
        return cm_error_prefix(err, "applying the chain's limits to a warm sandbox");
    s->limits = *lim;
    return 0;
}

/* ---- refill threads ------------------------------------------------------ */

/* Flavour with the most room (idle + building below target), or -1. */
static int wanted_flavour(const cm_pool *p)
{
    int best = -1, room = 0;
    for (int f = 0; f < 2; f++) {
        int r = p->target[f] - p->nidle[f] - p->building[f];
        if (r > room) {
            room = r;
            best = f;
        }
    }
    return best;
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *m, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, m, &ts);
}

/* Refills run at a lower CPU priority (nice is per thread on Linux and is
 * inherited by the sandboxes this thread clones), so building the next
 * sandbox does not compete with the chains being served on a small machine;
 * a sandbox gets normal priority back when a chain takes it. */
#define REFILL_NICE 10

/* An engine separated from its privileged part (iso->privsep) has no
 * CAP_SYS_NICE and RLIMIT_NICE 0: it can lower a thread's priority but
 * never raise it again, and a sandbox cloned at nice 10 would keep it.
 * Its refill and reaper threads stay at normal priority (refills then
 * compete with served chains; giving nice back through the privileged
 * part is a later step, isolate/README.md "Privilege separation"). */
static bool may_renice(const cm_pool *p)
{
    return !p->iso->privsep;
}

/* A sandbox's tasks as its cgroup lists them (up to cap); their number. */
static int list_tasks(const cm_cgroup *cg, pid_t *tids, int cap)
{
    static const char *const lists[] = {"tasks", "cgroup.threads"};
    for (size_t i = 0; i < sizeof lists / sizeof *lists && cg->npaths > 0; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", cg->paths[0], lists[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        int n = 0;
        long tid;
        while (n < cap && fscanf(f, "%ld", &tid) == 1)
            tids[n++] = (pid_t)tid;
        fclose(f);
        return n;
    }
    return 0;
}

/* Normal priority for a taken sandbox: its tasks were listed when it became
 * ready (a runner starts no task while it waits), so only the setpriority
 * calls are on the request path. */
static void restore_priority(const cm_pool_sandbox *s)
{
    pid_t tids[8];
    int n = s->ntids;
    if (n == 0)
        n = list_tasks(&s->jail.cg, tids, 8);
    else
        memcpy(tids, s->tids, sizeof tids);
    for (int i = 0; i < n; i++)
        setpriority(PRIO_PROCESS, (id_t)tids[i], 0);
}

/* What the next chain needs, given to the zygote when it changed: every
 * sandbox forked after that inherits it parsed (zygote.h cm_zygote_prime). */
static void prime_zygote(cm_pool *p, int f)
{
    char have[CM_POOL_KEY_MAX], key[CM_POOL_KEY_MAX];
    char *data = NULL;
    size_t len = 0;
    if (!p->metrics.prime_data)
        return;
    cm_zygote_primed_key(&p->zygote[f], have, sizeof have);
    if (p->metrics.prime_data(p->metrics.ctx, have, key, sizeof key, &data, &len) <= 0)
        return;
    cm_error err;
    if (cm_zygote_prime(&p->zygote[f], key, data, len, &err) < 0)
        cm_log("warn", "pool: cannot prime the zygote: %s", err.message);
    free(data);
}

/* The whole buffer on a non-blocking socket, waiting for room. */
static int send_all(int fd, const char *buf, size_t n, int64_t deadline_ms)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            buf += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        int64_t left = deadline_ms - cm_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (left <= 0 || poll(&pfd, 1, (int)left) < 0)
            return -1;
    }
    return 0;
}

/* A sandbox that did not inherit it (built without the zygote, or the
 * zygote had other data) gets it as a frame before its run; -1: the
 * control stream is broken. */
static int send_prime(cm_pool_sandbox *s, const char *key, char *data, size_t len)
{
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    int64_t deadline = cm_now_ms() + 5000;
    int rc = send_all(s->ctl_fd, (const char *)hdr, 4, deadline) < 0 ||
                     send_all(s->ctl_fd, data, len, deadline) < 0
                 ? -1
                 : 0;
    free(data);
    if (rc == 0)
        snprintf(s->primed, sizeof s->primed, "%s", key);
    return rc;
}

static int prime_sandbox(cm_pool *p, cm_pool_sandbox *s)
{
    char key[CM_POOL_KEY_MAX];
    char *data = NULL;
    size_t len = 0;
    if (!p->metrics.prime_data ||
        p->metrics.prime_data(p->metrics.ctx, s->primed, key, sizeof key, &data, &len) <= 0)
        return 0;
    return send_prime(s, key, data, len);
}

static void enqueue_dispose_locked(cm_pool *p, const cm_sandbox *sb, const cm_jail *jail);

/* An idle sandbox primed for another key than the next chain's (built
 * before the first chain, or before the registry changed) gets the new
 * data, out of the idle list (counted as building) while its frame is
 * written.  Called with the lock held; true when it primed one. */
static bool reprime_idle_locked(cm_pool *p)
{
    for (int f = 0; f < 2 && p->metrics.prime_data; f++) {
        for (cm_pool_sandbox **pp = &p->idle[f]; *pp; pp = &(*pp)->next) {
            cm_pool_sandbox *s = *pp;
            char key[CM_POOL_KEY_MAX];
            char *data = NULL;
            size_t len = 0;
            if (p->metrics.prime_data(p->metrics.ctx, s->primed, key, sizeof key, &data, &len) <= 0)
                continue;
            *pp = s->next;
            p->nidle[f]--;
            p->building[f]++;
            pthread_mutex_unlock(&p->lock);
            int rc = send_prime(s, key, data, len);
            pthread_mutex_lock(&p->lock);
            p->building[f]--;
            if (rc < 0) {
                close(s->ctl_fd);
                close(s->out_fd);
                enqueue_dispose_locked(p, &s->sb, &s->jail);
                free(s);
                return true;
            }
            s->next = p->idle[f];
            p->idle[f] = s;
            p->nidle[f]++;
            pthread_cond_broadcast(&p->warm_cv);
            return true;
        }
    }
    return false;
}

static void *refill_main(void *arg)
{
    cm_pool *p = arg;
    if (may_renice(p))
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), REFILL_NICE);
    cm_limits lim = p->cfg.limits;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        int f = wanted_flavour(p);
        if (f < 0) {
            /* full: bring idle sandboxes up to date, else look again soon
             * (the next chain's key changes without a signal here) */
            if (!reprime_idle_locked(p))
                timed_wait(&p->refill_cv, &p->lock, p->metrics.prime_data ? 250 : 60000);
            continue;
        }
        p->building[f]++;
        pthread_mutex_unlock(&p->lock);
        cm_pool_sandbox *s = cm_xcalloc(1, sizeof *s);
        cm_error err;
        prime_zygote(p, f);
        int rc = cm_pool_build(p, f == 1, &lim, cm_now_ms() + 30000, s, &err);
        if (rc == 0 && prime_sandbox(p, s) < 0) {
            close_fds(s);
            destroy_now(&s->sb, &s->jail);
            rc = cm_error_set(&err, CM_ERR_SANDBOX_FAILURE, "priming a warm sandbox failed");
        }
        if (rc == 0 && p->metrics.refill)
            p->metrics.refill(p->metrics.ctx, s->build_ms);
        pthread_mutex_lock(&p->lock);
        p->building[f]--;
        if (rc < 0) {
            free(s);
            cm_log("warn", "pool: cannot build a warm sandbox: %s", err.message);
            if (!p->stopping)
                timed_wait(&p->refill_cv, &p->lock, 1000); /* back off */
            continue;
        }
        s->next = p->idle[f];
        p->idle[f] = s;
        p->nidle[f]++;
        pthread_cond_broadcast(&p->warm_cv);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- reaper ------------------------------------------------------------- */

/* Teardown yields to requests: the reaper thread and the sandbox being torn
 * down (its exit unmaps a copy of the zygote's image) run at the lowest
 * priority; the runner (the chain's one process) has lowered itself once
 * it sent `done` (runner_chain.py _wait_for_kill).  But a
 * sandbox holds a uid and cgroups until it is reaped: when teardown falls
 * behind (a loaded machine starves nice 19; `make bench` at concurrency 16
 * ran out of sandbox uids), the reaper and the sandboxes it kills go back to
 * normal priority until it has caught up. */
#define TEARDOWN_NICE 19
#define TEARDOWN_BACKLOG 4

static void teardown_priority(const cm_pool *p, const dispose_item *d, bool behind)
{
    if (!may_renice(p)) {
        if (!behind && d->jail.cg.npaths > 0 && d->sb.pid > 0) /* it dies: one way is enough */
            setpriority(PRIO_PROCESS, (id_t)d->sb.pid, TEARDOWN_NICE);
        return;
    }
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), behind ? 0 : TEARDOWN_NICE);
    if (d->jail.cg.npaths == 0 || d->sb.pid <= 0)
        return;
    if (!behind) {
        setpriority(PRIO_PROCESS, (id_t)d->sb.pid, TEARDOWN_NICE);
        return;
    }
    pid_t tids[64];
    int n = list_tasks(&d->jail.cg, tids, 64);
    for (int i = 0; i < n; i++)
        setpriority(PRIO_PROCESS, (id_t)tids[i], 0);
}

static void *reaper_main(void *arg)
{
    cm_pool *p = arg;
    if (may_renice(p))
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), TEARDOWN_NICE);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        dispose_item *d = p->dispose_head;
        if (!d) {
            if (p->reaper_stopping)
                break;
            pthread_cond_wait(&p->reap_cv, &p->lock);
            continue;
        }
        p->dispose_head = d->next;
        if (!p->dispose_head)
            p->dispose_tail = NULL;
        bool behind = p->disposing > TEARDOWN_BACKLOG;
        pthread_mutex_unlock(&p->lock);
        teardown_priority(p, d, behind);
        destroy_now(&d->sb, &d->jail);
        free(d);
        pthread_mutex_lock(&p->lock);
        p->disposing--;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Queues a sandbox for the reaper; called with the lock held. */
static void enqueue_dispose_locked(cm_pool *p, const cm_sandbox *sb, const cm_jail *jail)
{
    dispose_item *d = cm_xcalloc(1, sizeof *d);
    d->sb = *sb;
    d->jail = *jail;
    if (p->dispose_tail)
        p->dispose_tail->next = d;
    else
        p->dispose_head = d;
    p->dispose_tail = d;
    p->disposing++;
    pthread_cond_signal(&p->reap_cv);
}

void cm_pool_dispose(cm_pool *p, cm_sandbox *sb, cm_jail *jail)
{
    if (!p) {
        destroy_now(sb, jail);
        return;
    }
    pthread_mutex_lock(&p->lock);
    enqueue_dispose_locked(p, sb, jail);
    pthread_mutex_unlock(&p->lock);
    sb->pid = -1;
    sb->pidfd = -1;
    jail->iso = NULL;
    jail->have_ids = false;
}

/* ---- taking ------------------------------------------------------------- */

/* An idle runner sends nothing after ready: anything readable on its
 * control socket (end-of-file, mostly) means it died while waiting (its
 * zygote was killed, say). */
static bool idle_sandbox_alive(const cm_pool_sandbox *s)
{
    struct pollfd pfd = {.fd = s->ctl_fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* Unlinks the first live idle sandbox of flavour f; dead ones go to the
 * reaper.  Called with the lock held. */
static cm_pool_sandbox *pop_live_locked(cm_pool *p, int f)
{
    cm_pool_sandbox *s;
    while ((s = p->idle[f])) {
        p->idle[f] = s->next;
        p->nidle[f]--;
        s->next = NULL;
        if (idle_sandbox_alive(s))
            return s;
        cm_log("warn", "pool: a warm sandbox (pid %d) died while idle; discarded", (int)s->sb.pid);
        close_fds(s);
        enqueue_dispose_locked(p, &s->sb, &s->jail);
        free(s);
    }
    return NULL;
}

cm_pool_sandbox *cm_pool_take(cm_pool *p, bool full)
{
    if (!p)
        return NULL;
    int f = full ? 1 : 0;
    pthread_mutex_lock(&p->lock);
    cm_pool_sandbox *s = pop_live_locked(p, f);
    if (s)
        p->hits++;
    else
        p->misses++;
    pthread_cond_signal(&p->refill_cv);
    pthread_mutex_unlock(&p->lock);
    if (s)
        restore_priority(s);
    else if (p->metrics.miss)
        p->metrics.miss(p->metrics.ctx);
    return s;
}

int cm_pool_wait_warm(cm_pool *p, int timeout_ms)
{
    int64_t deadline = cm_now_ms() + timeout_ms;
    pthread_mutex_lock(&p->lock);
    while (p->target[0] > 0 && p->nidle[0] == 0 && cm_now_ms() < deadline)
        timed_wait(&p->warm_cv, &p->lock, 100);
    int rc = p->target[0] == 0 || p->nidle[0] > 0 ? 0 : -1;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void cm_pool_get_stats(cm_pool *p, cm_pool_stats *s)
{
    pthread_mutex_lock(&p->lock);
    *s = (cm_pool_stats){.size = p->target[0],
                         .full_size = p->target[1],
                         .idle = p->nidle[0],
                         .idle_full = p->nidle[1],
                         .building = p->building[0] + p->building[1],
                         .disposing = p->disposing,
                         .hits = p->hits,
                         .misses = p->misses};
    pthread_mutex_unlock(&p->lock);
    for (int f = 0; f < 2; f++) {
        s->zygotes += atomic_load(&p->zygote[f].up) ? 1 : 0;
        s->zygote_spawns += atomic_load(&p->zygote[f].spawns);
    }
}

/* ---- life ---------------------------------------------------------------- */

int cm_pool_start(const cm_iso_config *cfg, cm_isolation *iso, const cm_pool_metrics *metrics,
                  cm_pool **out, cm_error *err)
{
    cm_pool *p = cm_xcalloc(1, sizeof *p);
    p->cfg = *cfg;
    p->iso = iso;
    if (metrics)
        p->metrics = *metrics;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->refill_cv, NULL);
    pthread_cond_init(&p->warm_cv, NULL);
    pthread_cond_init(&p->reap_cv, NULL);
    p->target[0] = p->cfg.pool_size;
    p->target[1] = p->cfg.rootfs_full ? p->cfg.pool_full_size : 0;
    cm_zygote_init(&p->zygote[0], false, &p->cfg, iso);
    cm_zygote_init(&p->zygote[1], true, &p->cfg, iso);
    *out = p;
    int rc = pthread_create(&p->reaper, NULL, reaper_main, p);
    if (rc != 0)
        return cm_error_set(err, CM_ERR_INTERNAL, "pool reaper thread: %s", strerror(rc));
    p->reaper_started = true;
    if (p->target[0] + p->target[1] == 0)
        return 0;
    p->refill = cm_xcalloc((size_t)p->cfg.pool_refill_concurrency, sizeof *p->refill);
    for (int i = 0; i < p->cfg.pool_refill_concurrency; i++) {
        rc = pthread_create(&p->refill[i], NULL, refill_main, p);
        if (rc != 0)
            return cm_error_set(err, CM_ERR_INTERNAL, "pool refill thread: %s", strerror(rc));
        p->nrefill++;
    }
    return 0;
}

static void free_idle(cm_pool_sandbox *s)
{
    while (s) {
        cm_pool_sandbox *next = s->next;
        close_fds(s);
        destroy_now(&s->sb, &s->jail);
        free(s);
        s = next;
    }
}

void cm_pool_stop(cm_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->refill_cv);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nrefill; i++)
        pthread_join(p->refill[i], NULL);
    free(p->refill);
    for (int f = 0; f < 2; f++)
        free_idle(p->idle[f]);
    pthread_mutex_lock(&p->lock);
    p->reaper_stopping = true;
    pthread_cond_broadcast(&p->reap_cv);
    pthread_mutex_unlock(&p->lock);
    if (p->reaper_started)
        pthread_join(p->reaper, NULL);
    cm_zygote_stop(&p->zygote[0]);
    cm_zygote_stop(&p->zygote[1]);
    pthread_cond_destroy(&p->refill_cv);
    pthread_cond_destroy(&p->warm_cv);
    pthread_cond_destroy(&p->reap_cv);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
