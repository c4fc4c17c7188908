/* server.c — Unix-socket listener and epoll event loop (see server.h).
 *
 * One thread owns every client fd.  It reads, splits newline-delimited
 * requests, answers cheap methods inline and queues slow ones to the worker
 * pool; workers hand answers back through each connection's output buffer
 * and an eventfd.  Writes are non-blocking, so a client that stalls only
 * grows its own (bounded) buffer and is dropped past the bound. */
#include "server.h"

#include "jsonrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "reload.h"

#define MAX_CONNS 4096
#define MAX_PENDING_OUT (64u << 20)
/* After the drain time, the chains still running are stopped; their
 * answers (kind shutdown) get this long to reach their clients. */
#define ABORT_FLUSH_MS 5000

/* epoll tags: pointers for connections, small ints for the rest */
#define TAG_LISTEN ((void *)1)
#define TAG_WAKE ((void *)2)
#define TAG_SIGNAL ((void *)3)

void cm_conn_ref(cm_conn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void cm_conn_unref(cm_conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&c->lock);
    cm_buf_free(&c->in);
    cm_buf_free(&c->out);
    if (c->release)
        c->release(c);
    else
        free(c);
}

/* With nothing queued before it, a message goes straight to the socket from
 * the sending thread (no event-loop hand-off on the answer's path); returns
 * the bytes written, the rest is queued for the loop.  Under c->lock, which
 * also guards c->fd against conn_close. */
static size_t send_direct(cm_conn *c, const char *data, size_t len)
{
    size_t sent = 0;
    while (c->fd >= 0 && c->out.len == 0 && sent < len) {
        ssize_t n = send(c->fd, data + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            sent += (size_t)n;
        else if (!(n < 0 && errno == EINTR))
            break; /* EAGAIN: the loop writes the rest; an error: it closes */
    }
    return sent;
}

void cm_conn_answer(cm_conn *c, const cJSON *id, cJSON *result)
{
    if (!id) {
        cJSON_Delete(result);
        return;
    }
    cm_conn_send(c, cm_rpc_result(id, result));
}

void cm_conn_send(cm_conn *c, cJSON *msg)
{
    if (!msg)
        return;
    if (atomic_load(&c->closed)) {
        cJSON_Delete(msg);
        return;
    }
    if (c->sink) {
        c->sink(c, msg);
        return;
    }
    char *s = cm_json_print(msg);
    cJSON_Delete(msg);
    cm_error err;
    size_t len = strlen(s);
    s[len] = '\n'; /* the terminator becomes the line end; len + 1 bytes are sent */
    pthread_mutex_lock(&c->lock);
    size_t sent = send_direct(c, s, len + 1);
    if (c->out.len + (len + 1 - sent) > MAX_PENDING_OUT) {
        /* the client is not reading: give up on it */
        atomic_store(&c->closed, true);
    } else if (sent < len + 1) {
        cm_buf_append(&c->out, s + sent, len + 1 - sent, &err);
    }
    pthread_mutex_unlock(&c->lock);
    free(s);
    uint64_t one = 1;
    if (write(c->eng->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        cm_log("warn", "cannot wake event loop: %s", strerror(errno));
}

static int socket_in_use(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    cm_autofd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    return connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
}

static int remove_stale_socket(const char *path, cm_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : cm_error_sys(err, CM_ERR_IO, "cannot stat %s", path);
    if (!S_ISSOCK(st.st_mode))
        return cm_error_set(err, CM_ERR_IO, "%s exists and is not a socket; not replacing it",
                            path);
    if (socket_in_use(path))
        return cm_error_set(err, CM_ERR_IO, "another engine is already serving on %s", path);
    if (unlink(path) < 0)
        return cm_error_sys(err, CM_ERR_IO, "cannot remove stale socket %s", path);
    return 0;
}

/* systemd socket activation: LISTEN_PID is us and LISTEN_FDS >= 1 → fd 3
 * is our listening socket.  Returns 1 when adopted, 0 when not activated. */
static int adopt_systemd_socket(cm_engine *eng, cm_error *err)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1)
        return 0;
    int fd = 3, listening = 0;
    socklen_t len = sizeof listening;
    struct sockaddr_un sa;
    socklen_t salen = sizeof sa;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) < 0 || sa.sun_family != AF_UNIX)
        return cm_error_set(err, CM_ERR_IO,
                            "socket activation: fd 3 is not a listening Unix socket");
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || cm_set_nonblock(fd, true, err) < 0)
        return cm_error_sys(err, CM_ERR_IO, "socket activation: fd 3");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    eng->listen_fd = fd;
    eng->socket_activated = true;
    eng->socket_path = cm_xstrdup(salen > sizeof(sa_family_t) ? sa.sun_path : "(systemd)");
    return 1;
}

/* Binds and listens on a temporary name beside `path`, then renames it into
 * place: a client that sees the path can always connect. */
int cm_server_listen(cm_engine *eng, const char *path, cm_error *err)
{
    int adopted = adopt_systemd_socket(eng, err);
    if (adopted != 0)
        return adopted < 0 ? -1 : 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s.%d.tmp", path, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof sa.sun_path)
        return cm_error_set(err, CM_ERR_CONFIG, "socket path too long (max %zu): %s",
                            sizeof sa.sun_path - 16, path);
    if (remove_stale_socket(path, err) < 0)
        return -1;
    unlink(sa.sun_path);
    cm_autofd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "socket");
    mode_t old = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0)
        return cm_error_sys(err, CM_ERR_IO, "cannot bind %s", path);
    if (chmod(sa.sun_path, 0660) < 0 || listen(fd, 512) < 0 || rename(sa.sun_path, path) < 0) {
        cm_error_sys(err, CM_ERR_IO, "cannot listen on %s", path);
        unlink(sa.sun_path);
        return -1;
    }
    eng->socket_path = cm_xstrdup(path);
    eng->listen_fd = cm_steal_fd(&fd);
    return 0;
}

static int epoll_add(cm_engine *eng, int fd, uint32_t events, void *tag, cm_error *err)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    if (epoll_ctl(eng->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return cm_error_sys(err, CM_ERR_IO, "epoll_ctl(ADD)");
    return 0;
}

void cm_server_block_signals(sigset_t *mask)
{
    sigemptyset(mask);
    sigaddset(mask, SIGTERM);
    sigaddset(mask, SIGINT);
    sigaddset(mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, mask, NULL);
}

static int setup_loop(cm_engine *eng, cm_error *err)
{
    eng->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (eng->epoll_fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "epoll_create1");
    eng->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (eng->wake_fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "eventfd");
    sigset_t mask;
    cm_server_block_signals(&mask);
    eng->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (eng->signal_fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "signalfd");
    if (epoll_add(eng, eng->listen_fd, EPOLLIN, TAG_LISTEN, err) < 0 ||
        epoll_add(eng, eng->wake_fd, EPOLLIN, TAG_WAKE, err) < 0 ||
        epoll_add(eng, eng->signal_fd, EPOLLIN, TAG_SIGNAL, err) < 0)
        return -1;
    return 0;
}

static void conn_close(cm_engine *eng, cm_conn *c)
{
    if (c->half_closed)
        eng->nhalf_closed--;
    atomic_store(&c->closed, true);
    epoll_ctl(eng->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    pthread_mutex_lock(&c->lock); /* a worker may be sending on it (send_direct) */
    close(c->fd);
    c->fd = -1;
    pthread_mutex_unlock(&c->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        eng->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    eng->nconns--;
    cm_conn_unref(c);
}

static void accept_clients(cm_engine *eng)
{
    for (;;) {
        int fd = accept4(eng->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR)
                cm_log("warn", "accept: %s", strerror(errno));
            return;
        }
        if (eng->nconns >= MAX_CONNS) {
            static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,"
                                      "\"message\":\"busy: too many connections\"}}\n";
            (void)!write(fd, msg, sizeof msg - 1);
            close(fd);
            continue;
        }
        cm_conn *c = cm_xcalloc(1, sizeof *c);
        c->eng = eng;
        c->fd = fd;
        atomic_init(&c->refs, 1);
        pthread_mutex_init(&c->lock, NULL);
        socklen_t len = sizeof c->peer;
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->peer, &len);
        cm_error err;
        if (epoll_add(eng, fd, EPOLLIN | EPOLLRDHUP, c, &err) < 0) {
            cm_log("warn", "%s", err.message);
            close(fd);
            pthread_mutex_destroy(&c->lock);
            free(c);
            continue;
        }
        c->next = eng->conns;
        if (eng->conns)
            eng->conns->prev = c;
        eng->conns = c;
        eng->nconns++;
    }
}

/* Splits buffered input into lines; an over-long line is answered with an
 * error and skipped up to its newline, the connection stays usable. */
static void process_input(cm_engine *eng, cm_conn *c)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->in.data + start, '\n', c->in.len - start);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (c->in.data + start));
        if (c->discarding)
            c->discarding = false;
        else if (len > 0)
            eng->on_line(eng, c, c->in.data + start, len);
        start += len + 1;
    }
    cm_buf_consume(&c->in, start);
    if (c->in.len > eng->cfg.max_request_bytes) {
        if (!c->discarding) {
            char msg[128];
            snprintf(msg, sizeof msg, "request exceeds %zu bytes", eng->cfg.max_request_bytes);
            cm_conn_send(c, cm_rpc_error(NULL, -32600, msg));
        }
        c->discarding = true;
        cm_buf_consume(&c->in, c->in.len);
    }
}

/* The peer shut down its write side but may still read: stop reading,
 * finish what it asked for, then close (see sweep_half_closed). */
static void half_close(cm_engine *eng, cm_conn *c)
{
    c->half_closed = true;
    eng->nhalf_closed++;
    struct epoll_event ev = {.events = c->want_out ? EPOLLOUT : 0, .data.ptr = c};
    epoll_ctl(eng->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Returns -1 when the connection was closed (and c freed). */
static int read_client(cm_engine *eng, cm_conn *c, uint32_t events)
{
    char chunk[65536];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(c->fd, chunk, sizeof chunk);
        if (n > 0) {
            cm_error err;
            if (cm_buf_append(&c->in, chunk, (size_t)n, &err) < 0) {
                conn_close(eng, c);
                return -1;
            }
            process_input(eng, c);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n == 0 && !(events & (EPOLLHUP | EPOLLERR))) {
            half_close(eng, c);
            return 0;
        }
        /* gone in both directions: its in-flight work is dropped */
        conn_close(eng, c);
        return -1;
    }
    return 0;
}

/* Writes what is pending; returns -1 when the connection must be closed. */
static int flush_client(cm_engine *eng, cm_conn *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            cm_buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    bool pending = c->out.len > 0;
    pthread_mutex_unlock(&c->lock);
    if (atomic_load(&c->closed))
        return -1;
    if (pending != c->want_out) {
        uint32_t in = c->half_closed ? 0 : EPOLLIN | EPOLLRDHUP;
        struct epoll_event ev = {.events = in | (pending ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(eng->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = pending;
    }
    return 0;
}

static void flush_all(cm_engine *eng)
{
    uint64_t v;
    while (read(eng->wake_fd, &v, sizeof v) > 0)
        ;
    cm_conn *c = eng->conns;
    while (c) {
        cm_conn *next = c->next;
        if (flush_client(eng, c) < 0)
            conn_close(eng, c);
        c = next;
    }
}

static void handle_conn_event(cm_engine *eng, cm_conn *c, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (!c->half_closed && read_client(eng, c, events) < 0)
            return;
        if (c->half_closed && (events & (EPOLLHUP | EPOLLERR))) {
            conn_close(eng, c);
            return;
        }
    }
    if (flush_client(eng, c) < 0)
        conn_close(eng, c);
}

static void sweep_half_closed(cm_engine *eng)
{
    if (eng->nhalf_closed == 0)
        return;
    cm_conn *c = eng->conns;
    while (c) {
        cm_conn *next = c->next;
        if (c->half_closed && atomic_load(&c->inflight) == 0) {
            bool done = flush_client(eng, c) < 0;
            pthread_mutex_lock(&c->lock);
            done = done || c->out.len == 0;
            pthread_mutex_unlock(&c->lock);
            if (done)
                conn_close(eng, c);
        }
        c = next;
    }
}

static void begin_stop(cm_engine *eng)
{
    if (atomic_exchange(&eng->stopping, true))
        return;
    cm_log("info", "stopping: no new connections, finishing running requests");
    epoll_ctl(eng->epoll_fd, EPOLL_CTL_DEL, eng->listen_fd, NULL);
    close(eng->listen_fd);
    eng->listen_fd = -1;
    if (eng->socket_path && !eng->socket_activated)
        unlink(eng->socket_path);
}

static bool drained(cm_engine *eng)
{
    if (eng->requests_busy(eng))
        return false;
    for (cm_conn *c = eng->conns; c; c = c->next) {
        pthread_mutex_lock(&c->lock);
        size_t pending = c->out.len;
        pthread_mutex_unlock(&c->lock);
        if (pending)
            return false;
    }
    return true;
}

/* The bounded drain: running requests get engine.drain_timeout_s; then
 * every chain still running is stopped with kind `shutdown`, and its answer
 * gets ABORT_FLUSH_MS to reach the client before the loop ends. */
static bool drain_done(cm_engine *eng, int64_t *deadline)
{
    int64_t now = cm_now_ms();
    if (!*deadline)
        *deadline = now + (int64_t)eng->cfg.drain_timeout_s * 1000;
    if (drained(eng))
        return true;
    if (now <= *deadline)
        return false;
    if (!atomic_exchange(&eng->abort_chains, true)) {
        cm_log("warn", "drain time over (engine.drain_timeout_s = %ds): stopping running chains",
               eng->cfg.drain_timeout_s);
        *deadline = now + ABORT_FLUSH_MS;
        return false;
    }
    return true;
}

int cm_server_run(cm_engine *eng, cm_error *err)
{
    if (setup_loop(eng, err) < 0)
        return -1;
    cm_log("info", "serving on %s", eng->socket_path);
    int64_t stop_deadline = 0;
    struct epoll_event evs[64];
    for (;;) {
        if (atomic_load(&eng->stopping) && drain_done(eng, &stop_deadline))
            break;
        int n = epoll_wait(eng->epoll_fd, evs, 64, atomic_load(&eng->stopping) ? 50 : 1000);
        if (n < 0 && errno != EINTR)
            return cm_error_sys(err, CM_ERR_IO, "epoll_wait");
        /* the wake-up's flush comes after the batch: it may close (and free) a
         * connection that still has an event later in evs */
        bool wake = false;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == TAG_LISTEN) {
                accept_clients(eng);
            } else if (tag == TAG_WAKE) {
                wake = true;
            } else if (tag == TAG_SIGNAL) {
                struct signalfd_siginfo si;
                bool stop = false;
                while (read(eng->signal_fd, &si, sizeof si) > 0) {
                    if (si.ssi_signo == SIGHUP)
                        cm_policy_reload_logged(eng);
                    else
                        stop = true;
                }
                if (stop)
                    begin_stop(eng);
            } else {
                handle_conn_event(eng, tag, evs[i].events);
            }
        }
        if (wake)
            flush_all(eng);
        sweep_half_closed(eng);
        eng->tick(eng, false);
    }
    eng->tick(eng, true);
    cm_log("info", "stopped");
    return 0;
}

void cm_server_close(cm_engine *eng)
{
    while (eng->conns)
        conn_close(eng, eng->conns);
    if (eng->listen_fd >= 0) {
        close(eng->listen_fd);
        eng->listen_fd = -1;
        if (eng->socket_path && !eng->socket_activated)
            unlink(eng->socket_path);
    }
    cm_autofd int e = eng->epoll_fd, w = eng->wake_fd, s = eng->signal_fd;
    eng->epoll_fd = eng->wake_fd = eng->signal_fd = -1;
    free(eng->socket_path);
    eng->socket_path = NULL;
}
