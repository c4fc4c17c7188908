/* http_stream.c — the HTTP transport's sessions (Mcp-Session-Id) and answer
 * streams.  Each request that expects an answer gets a stream that embeds
 * its own engine connection: the request layer (rpc.c) and the chain write
 * to that connection as they would to a socket client, and its sink keeps
 * every message (log and progress notifications, then the answer) as an
 * event with id "<stream>-<index>", so a client whose SSE connection broke
 * resumes with Last-Event-ID.  A broken connection is not a cancellation
 * (MCP transports spec); notifications/cancelled, DELETE and the session's
 * idle expiry are, and they stop the chain through its connection. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "http_int.h"

#define STREAM_MAX_BYTES (64u << 20) /* as the socket's pending-output bound */
#define UNREAD_KEEP_MS 300000        /* an answer nobody fetched is dropped after 5 min */

static void stream_release(cm_conn *c)
{
    http_stream *st = (http_stream *)c;
    for (size_t i = 0; i < st->nevents; i++)
        free(st->events[i]);
    free(st->events);
    free(st->req_id);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cond);
    free(st);
}

static void push_event(http_stream *st, char *ev, size_t len)
{
    if (st->nevents == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 8;
        char **grown = realloc(st->events, st->cap * sizeof *grown);
        if (!grown)
            abort();
        st->events = grown;
    }
    st->events[st->nevents++] = ev;
    st->bytes += len;
}

/* cm_conn.sink: a message for this stream's client (any thread). */
static void stream_sink(cm_conn *c, cJSON *msg)
{
    http_stream *st = (http_stream *)c;
    bool answer = !cJSON_GetObjectItemCaseSensitive(msg, "method");
    char *s = cm_json_print(msg);
    cJSON_Delete(msg);
    size_t len = strlen(s);
    pthread_mutex_lock(&st->mu);
    if (st->answered || st->ended || st->bytes + len > STREAM_MAX_BYTES) {
        if (!st->answered && !st->ended) { /* nobody reads it: stop its chain */
            st->ended = true;
            atomic_store(&c->closed, true);
        }
        free(s);
    } else {
        push_event(st, s, len);
        if (answer) {
            st->answered = true;
            st->answered_ms = cm_now_ms();
        }
    }
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
}

static http_stream *stream_alloc(cm_http *h, http_session *s)
{
    http_stream *st = cm_xcalloc(1, sizeof *st);
    st->conn.eng = h->eng;
    st->conn.fd = -1;
    atomic_init(&st->conn.refs, 1); /* the session's list */
    pthread_mutex_init(&st->conn.lock, NULL);
    st->conn.peer = s->who;
    atomic_store(&st->conn.log_level, atomic_load(&s->log_level));
    st->conn.sink = stream_sink;
    st->conn.release = stream_release;
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    st->session = s;
    st->no = ++s->next_stream;
    push_event(st, NULL, 0); /* the priming event */
    return st;
}

static void random_id(char *out, size_t size)
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        abort(); /* a guessable session id would let others join */
    for (size_t i = 0; i < sizeof r && 2 * i + 2 < size; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

http_session *cm_http_session_new(cm_http *h, const struct ucred *who, cm_error *err)
{
    cm_http_sweep(h);
    pthread_mutex_lock(&h->lock);
    if (h->nsessions >= h->cfg.max_sessions || h->stopping) {
        pthread_mutex_unlock(&h->lock);
        cm_error_set(err, CM_ERR_BUSY,
                     "busy: %d HTTP sessions open (engine.http.max_sessions); end unused ones "
                     "with DELETE",
                     h->cfg.max_sessions);
        return NULL;
    }
    http_session *s = cm_xcalloc(1, sizeof *s);
    random_id(s->id, sizeof s->id);
    s->who = *who;
    s->refs = 2; /* the list's and the caller's */
    s->last_ms = cm_now_ms();
    s->next = h->sessions;
    h->sessions = s;
    h->nsessions++;
    pthread_mutex_unlock(&h->lock);
    return s;
}

http_session *cm_http_session_get(cm_http *h, const char *id)
{
    cm_http_sweep(h);
    pthread_mutex_lock(&h->lock);
    http_session *s = h->sessions;
    while (s && (s->ended || strcmp(s->id, id) != 0))
        s = s->next;
    if (s) {
        s->refs++;
        s->last_ms = cm_now_ms();
    }
    pthread_mutex_unlock(&h->lock);
    return s;
}

/* under h->lock */
static void session_unlink(cm_http *h, http_session *s)
{
    for (http_session **p = &h->sessions; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            h->nsessions--;
            return;
        }
}

void cm_http_session_put(cm_http *h, http_session *s)
{
    pthread_mutex_lock(&h->lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last)
        free(s);
}

static void stream_end(http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    if (!st->answered)
        atomic_store(&st->conn.closed, true); /* its chain stops, its answer is dropped */
    st->ended = true;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->mu);
}

/* under h->lock: takes every stream off s (the caller ends and unrefs them) */
static http_stream *take_streams(http_session *s)
{
    http_stream *all = s->streams;
    s->streams = NULL;
    if (s->standalone) {
        s->standalone->next = all;
        all = s->standalone;
        s->standalone = NULL;
    }
    for (http_stream *st = all; st; st = st->next)
        st->session = NULL;
    return all;
}

static void end_list(http_stream *st)
{
    while (st) {
        http_stream *next = st->next;
        stream_end(st);
        cm_conn_unref(&st->conn);
        st = next;
    }
}

void cm_http_session_end(cm_http *h, http_session *s)
{
    pthread_mutex_lock(&h->lock);
    http_stream *all = NULL;
    if (!s->ended) {
        s->ended = true;
        all = take_streams(s);
        session_unlink(h, s);
        s->refs--; /* the list's reference */
    }
    pthread_mutex_unlock(&h->lock);
    end_list(all);
}

void cm_http_sessions_end_all(cm_http *h)
{
    for (;;) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        http_session *s = h->sessions;
        if (s)
            s->refs++;
        pthread_mutex_unlock(&h->lock);
        if (!s)
            return;
        cm_http_session_end(h, s);
        cm_http_session_put(h, s);
    }
}

static bool stream_idle(http_stream *st, int64_t now)
{
    pthread_mutex_lock(&st->mu);
    bool idle = st->answered && now - st->answered_ms > UNREAD_KEEP_MS;
    pthread_mutex_unlock(&st->mu);
    return idle;
}

void cm_http_sweep(cm_http *h)
{
    int64_t now = cm_now_ms();
    http_session *expired = NULL;
    http_stream *dropped = NULL;
    pthread_mutex_lock(&h->lock);
    for (http_session *s = h->sessions; s; s = s->next) {
        for (http_stream **p = &s->streams; *p;) {
            http_stream *st = *p;
            if (stream_idle(st, now)) {
                *p = st->next;
                st->session = NULL;
                st->next = dropped;
                dropped = st;
            } else {
                p = &st->next;
            }
        }
        if (!expired && !s->ended && s->refs == 1 && !s->streams &&
            now - s->last_ms > (int64_t)h->cfg.session_idle_s * 1000) {
            expired = s;
            s->refs++;
        }
    }
    pthread_mutex_unlock(&h->lock);
    end_list(dropped);
    if (expired) {
        cm_log("info", "http: session %.8s… idle for %d s: ended", expired->id,
               h->cfg.session_idle_s);
        cm_http_session_end(h, expired);
        cm_http_session_put(h, expired);
    }
}

http_stream *cm_http_stream_new(cm_http *h, http_session *s, const cJSON *req_id, cm_error *err)
{
    pthread_mutex_lock(&h->lock);
    int open = 0;
    for (http_stream *st = s->streams; st; st = st->next)
        open++;
    if (s->ended || open >= h->eng->cfg.client_queue_max) {
        pthread_mutex_unlock(&h->lock);
        cm_error_set(err, CM_ERR_BUSY,
                     "client busy: %d requests of this session already open "
                     "(engine.client_queue_max)",
                     open);
        return NULL;
    }
    http_stream *st = stream_alloc(h, s);
    st->req_id = req_id ? cm_json_print(req_id) : NULL;
    st->next = s->streams;
    s->streams = st;
    cm_conn_ref(&st->conn); /* the caller's */
    pthread_mutex_unlock(&h->lock);
    return st;
}

http_stream *cm_http_stream_standalone(cm_http *h, http_session *s)
{
    pthread_mutex_lock(&h->lock);
    http_stream *st = NULL;
    if (!s->ended && !s->standalone) {
        st = stream_alloc(h, s);
        st->standalone = true;
        s->standalone = st;
        cm_conn_ref(&st->conn);
    }
    pthread_mutex_unlock(&h->lock);
    return st;
}

http_stream *cm_http_stream_find(cm_http *h, http_session *s, int no)
{
    pthread_mutex_lock(&h->lock);
    http_stream *st = s->streams;
    while (st && st->no != no)
        st = st->next;
    if (!st && s->standalone && s->standalone->no == no)
        st = s->standalone;
    if (st)
        cm_conn_ref(&st->conn);
    pthread_mutex_unlock(&h->lock);
    return st;
}

/* under h->lock: unlinks st from its session; true when it was there */
static bool unlink_stream(http_stream *st)
{
    http_session *s = st->session;
    if (!s)
        return false;
    st->session = NULL;
    if (s->standalone == st) {
        s->standalone = NULL;
        return true;
    }
    for (http_stream **p = &s->streams; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            return true;
        }
    return false;
}

void cm_http_stream_cancel(cm_http *h, http_session *s, const char *req_id)
{
    pthread_mutex_lock(&h->lock);
    http_stream *st = s->streams;
    while (st && !(st->req_id && !strcmp(st->req_id, req_id)))
        st = st->next;
    bool mine = st && unlink_stream(st);
    pthread_mutex_unlock(&h->lock);
    if (!mine)
        return; /* finished already, or never ours: ignored, as the spec says */
    cm_log("info", "http: request %.40s cancelled by the client", req_id);
    cm_autojson cJSON *id = cJSON_Parse(req_id);
    if (cm_conn_cancel(&st->conn, id)) { /* a chain: it stops as cancelled, no answer */
        pthread_mutex_lock(&st->mu);
        st->ended = true;
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->mu);
    } else {
        stream_end(st);
    }
    cm_conn_unref(&st->conn);
}

void cm_http_stream_done(cm_http *h, http_stream *st)
{
    pthread_mutex_lock(&h->lock);
    bool mine = unlink_stream(st);
    pthread_mutex_unlock(&h->lock);
    if (mine)
        cm_conn_unref(&st->conn);
}

void cm_http_stream_unref(http_stream *st)
{
    cm_conn_unref(&st->conn);
}

static void deadline_ts(struct timespec *ts, int64_t wait_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += wait_ms / 1000;
    ts->tv_nsec += (wait_ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

char *cm_http_stream_wait_answer(http_stream *st, int64_t deadline_ms)
{
    pthread_mutex_lock(&st->mu);
    while (!st->answered && !st->ended) {
        int64_t left = deadline_ms - cm_now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        deadline_ts(&ts, left > 1000 ? 1000 : left);
        pthread_cond_timedwait(&st->cond, &st->mu, &ts);
    }
    char *answer = st->answered ? cm_xstrdup(st->events[st->nevents - 1]) : NULL;
    pthread_mutex_unlock(&st->mu);
    return answer;
}

void cm_http_reader_attach(http_reader *r, http_stream *st, size_t from)
{
    pthread_mutex_lock(&st->mu);
    r->st = st;
    r->gen = ++st->reader_gen;
    r->next = from;
    pthread_cond_broadcast(&st->cond); /* an earlier reader ends */
    pthread_mutex_unlock(&st->mu);
}

/* under st->mu: formats event i for r */
static void format_event(http_reader *r, size_t i)
{
    http_stream *st = r->st;
    cm_error err;
    if (!st->events[i])
        cm_buf_printf(&r->pending, &err, "id: %d-%zu\nretry: 1000\ndata: \n\n", st->no, i);
    else
        cm_buf_printf(&r->pending, &err, "id: %d-%zu\nevent: message\ndata: %s\n\n", st->no, i,
                      st->events[i]);
    if (st->answered && i == st->nevents - 1)
        r->delivered = true;
}

size_t cm_http_stream_read(http_reader *r, char *buf, size_t max, int keepalive_ms)
{
    http_stream *st = r->st;
    pthread_mutex_lock(&st->mu);
    while (r->pending.len == 0) {
        if (st->reader_gen != r->gen)
            break;
        if (r->next < st->nevents) {
            format_event(r, r->next++);
            continue;
        }
        if (st->answered || st->ended)
            break;
        struct timespec ts;
        deadline_ts(&ts, keepalive_ms);
        if (pthread_cond_timedwait(&st->cond, &st->mu, &ts) == ETIMEDOUT &&
            r->next >= st->nevents && !st->ended) {
            cm_error err;
            cm_buf_printf(&r->pending, &err, ": keepalive\n\n");
        }
    }
    size_t n = r->pending.len < max ? r->pending.len : max;
    memcpy(buf, r->pending.data, n);
    cm_buf_consume(&r->pending, n);
    pthread_mutex_unlock(&st->mu);
    return n;
}
