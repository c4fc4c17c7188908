/* http_loop.c — the providers' HTTP I/O loop (see http_loop.h).
 *
 * Why it exists: a chain that awaits fifty HTTP calls together must not
 * cost fifty blocked threads.  One thread owns a curl multi handle and runs
 * curl_multi_poll; submitters queue requests and wake it with
 * curl_multi_wakeup.  The per-request rules (URL/policy checks per hop,
 * credential dropping, caps, deadline) are http_client.c's cm_http_xfer, the
 * same code the blocking path runs.  Cancelled or expired requests are
 * removed from the multi handle within one poll slice (100 ms), or at once
 * when the canceller calls cm_http_loop_wakeup. */
#include "http_loop.h"

#include <string.h>

#include "util.h"

#define POLL_SLICE_MS 100
#define IDLE_CONNECTIONS 64

typedef struct job {
    cm_http_xfer *x;
    cm_http_resp resp;
    cm_http_done_fn done;
    void *arg;
    struct job *next;
} job;

struct cm_http_loop {
    cm_providers *p;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t lock; /* guards queue and stop */
    job *queue;           /* submitted, not yet in the multi */
    job *active;          /* loop thread only */
    bool stop;
};

static void finish(job *j, const cm_error *err)
{
    j->done(j->arg, err ? NULL : &j->resp, err);
    cm_http_resp_free(&j->resp);
    cm_http_xfer_free(j->x);
    free(j);
}

static void unlink_active(cm_http_loop *l, job *j)
{
    for (job **pp = &l->active; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            return;
        }
}

/* Adds the job's current hop to the multi; on failure finishes it. */
static void start_hop(cm_http_loop *l, job *j)
{
    cm_error err;
    CURL *c = cm_http_xfer_start(l->p, j->x, &err);
    if (!c) {
        finish(j, &err);
        return;
    }
    curl_easy_setopt(c, CURLOPT_PRIVATE, j);
    CURLMcode mc = curl_multi_add_handle(l->multi, c);
    if (mc != CURLM_OK) {
        cm_http_xfer_abort(j->x, &err);
        cm_error_set(&err, CM_ERR_INTERNAL, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        finish(j, &err);
        return;
    }
    j->next = l->active;
    l->active = j;
}

static void hop_done(cm_http_loop *l, CURL *c, CURLcode rc)
{
    job *j = NULL;
    curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&j);
    curl_multi_remove_handle(l->multi, c);
    unlink_active(l, j);
    cm_error err;
    int r = cm_http_xfer_finish(j->x, rc, &err);
    if (r == 1)
        start_hop(l, j);
    else
        finish(j, r < 0 ? &err : NULL);
}

static void collect_done(cm_http_loop *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            hop_done(l, m->easy_handle, m->data.result);
}

/* Removes cancelled/expired jobs (all of them when stopping). */
static void sweep(cm_http_loop *l, bool all)
{
    for (job **pp = &l->active; *pp;) {
        job *j = *pp;
        if (!all && !cm_http_xfer_should_abort(j->x)) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        curl_multi_remove_handle(l->multi, cm_http_xfer_easy(j->x));
        cm_error err;
        cm_http_xfer_abort(j->x, &err);
        if (all)
            cm_error_set(&err, CM_ERR_TOOL_ERROR, "http: the engine is shutting down");
        finish(j, &err);
    }
}

static void *loop_main(void *arg)
{
    cm_http_loop *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        job *q = l->queue;
        l->queue = NULL;
        bool stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        while (q) {
            job *j = q;
            q = q->next;
            start_hop(l, j);
        }
        if (stop) {
            sweep(l, true);
            break;
        }
        int running = 0;
        curl_multi_perform(l->multi, &running);
        collect_done(l);
        sweep(l, false);
        curl_multi_poll(l->multi, NULL, 0, POLL_SLICE_MS, NULL);
    }
    return NULL;
}

/* The loop, started on first use (lock held by the caller: p->lock). */
static cm_http_loop *loop_get(cm_providers *p, cm_error *err)
{
    if (p->http_loop)
        return p->http_loop;
    if (p->http_closed) {
        cm_error_set(err, CM_ERR_TOOL_ERROR, "http: the engine is shutting down");
        return NULL;
    }
    cm_http_loop *l = cm_xcalloc(1, sizeof *l);
    l->p = p;
    l->multi = curl_multi_init();
    if (!l->multi) {
        free(l);
        cm_error_set(err, CM_ERR_INTERNAL, "curl_multi_init failed");
        return NULL;
    }
    /* keep idle keep-alive connections for every call of a gather: the
     * default (4 x handles currently added) shrinks to 4 as the calls
     * finish and closes the rest, so each burst reconnected */
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)IDLE_CONNECTIONS);
    pthread_mutex_init(&l->lock, NULL);
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) {
        curl_multi_cleanup(l->multi);
        pthread_mutex_destroy(&l->lock);
        free(l);
        cm_error_set(err, CM_ERR_INTERNAL, "cannot start the HTTP loop thread: %s", strerror(rc));
        return NULL;
    }
    p->http_loop = l;
    return l;
}

void cm_http_submit(cm_providers *p, const cm_http_req *req, cm_http_done_fn done, void *arg)
{
    cm_error err;
    job *j = cm_xcalloc(1, sizeof *j);
    j->done = done;
    j->arg = arg;
    j->x = cm_http_xfer_new(req, &j->resp, &err);
    if (!j->x) {
        finish(j, &err);
        return;
    }
    pthread_mutex_lock(&p->lock);
    cm_http_loop *l = loop_get(p, &err);
    pthread_mutex_unlock(&p->lock);
    if (!l) {
        finish(j, &err);
        return;
    }
    pthread_mutex_lock(&l->lock);
    bool stopping = l->stop;
    if (!stopping) {
        j->next = l->queue;
        l->queue = j;
    }
    pthread_mutex_unlock(&l->lock);
    if (stopping) {
        cm_error_set(&err, CM_ERR_TOOL_ERROR, "http: the engine is shutting down");
        finish(j, &err);
        return;
    }
    curl_multi_wakeup(l->multi);
}

void cm_http_loop_wakeup(cm_providers *p)
{
    pthread_mutex_lock(&p->lock);
    cm_http_loop *l = p->http_loop;
    if (l)
        curl_multi_wakeup(l->multi);
    pthread_mutex_unlock(&p->lock);
}

void cm_http_loop_free(cm_providers *p)
{
    pthread_mutex_lock(&p->lock);
    cm_http_loop *l = p->http_loop;
    p->http_loop = NULL;
    p->http_closed = true;
    pthread_mutex_unlock(&p->lock);
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_mutex_unlock(&l->lock);
    curl_multi_wakeup(l->multi);
    pthread_join(l->thread, NULL);
    curl_multi_cleanup(l->multi);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
