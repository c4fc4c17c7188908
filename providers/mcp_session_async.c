/* mcp_session_async.c — asynchronous MCP requests (cm_mcp_request_async):
 * written at once on a ready stdio session and finished by the session's
 * reader thread, which matches answers by id, fails the ones whose caller
 * gave up, whose deadline passed or whose server hung, and calls each
 * request's callback once, outside the lock.
 *
 * Why its own file: it is the one place that owns heap-allocated pending
 * requests and their callbacks; the reader loop (mcp_session_stdio.c) only
 * asks it how long to sleep and what to finish. */
#include <string.h>

#include "mcp_int.h"
#include "util.h"

/* Fails async requests whose caller gave up, whose deadline passed, or
 * whose server stopped answering (lock held). */
void cm_mcp_expire_async_locked(cm_mcp_session *s)
{
    int64_t now = cm_now_ms();
    for (pending *p = s->pending; p; p = p->next) {
        if (!p->fn || p->done)
            continue;
        if (p->cancel && atomic_load(p->cancel)) {
            cm_error_set(&p->err, CM_ERR_TIMEOUT, "MCP server '%s': cancelled: the caller gave up",
                         s->server);
            cm_mcp_send_cancelled_locked(s, p->id, "the calling chain ended");
        } else if (now >= p->hung_at) {
            cm_mcp_server_hung(s, p->method, &p->err); /* fails every call, this one says why */
        } else if (now >= p->deadline_ms) {
            cm_error_set(&p->err, CM_ERR_TIMEOUT, "MCP server '%s': timed out", s->server);
            cm_mcp_send_cancelled_locked(s, p->id, "the call's deadline passed");
        } else {
            continue;
        }
        p->failed = true;
        p->done = true;
    }
}

/* Milliseconds the reader may sleep: until the nearest async deadline,
 * at most 100 (cancel flags are also polled); -1 without async requests
 * for a while (lock held).  While async calls come and go it keeps a
 * 100 ms timeout, so a new request needs no wake-up (reader_idle). */
int cm_mcp_reader_timeout_locked(const cm_mcp_session *s)
{
    int64_t next = 100, now = cm_now_ms();
    bool any = false;
    for (const pending *p = s->pending; p; p = p->next) {
        if (!p->fn)
            continue;
        any = true;
        int64_t t = p->done ? 0 : (p->deadline_ms < p->hung_at ? p->deadline_ms : p->hung_at) - now;
        if (t < next)
            next = t;
    }
    if (!any)
        return now < s->async_linger ? 100 : -1;
    return next < 0 ? 0 : (int)next;
}

/* Unlinks the finished async requests (lock held). */
static pending *take_finished_async_locked(cm_mcp_session *s)
{
    pending *done = NULL;
    bool answered = false;
    for (pending **pp = &s->pending; *pp;) {
        pending *p = *pp;
        if (p->fn && p->done) {
            *pp = p->next;
            p->next = done;
            done = p;
            answered |= p->msg != NULL;
        } else {
            pp = &p->next;
        }
    }
    if (answered && cm_now_ms() - s->started_ms > 5000)
        s->crashes = 0;
    return done;
}

/* Calls back every finished async request (lock NOT held). */
void cm_mcp_finish_async(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    pending *done = take_finished_async_locked(s);
    char last_exit[sizeof s->last_exit];
    memcpy(last_exit, s->last_exit, sizeof last_exit);
    pthread_mutex_unlock(&s->lock);
    while (done) {
        pending *p = done;
        done = p->next;
        cJSON *result = NULL;
        int rc = -1;
        if (p->failed)
            ; /* p->err says why */
        else if (!p->msg)
            cm_error_set(&p->err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s during the call",
                         s->server, last_exit[0] ? last_exit : "exited");
        else
            rc = cm_mcp_answer_to_result(s, p->method, p->msg, &result, &p->err);
        if (rc == 0)
            p->fn(p->arg, result, NULL);
        else
            p->fn(p->arg, NULL, &p->err);
        cJSON_Delete(p->msg);
        free(p);
    }
}

/* Sends the request on a ready stdio session and leaves the answer to the
 * reader thread (lock held).  0 when the session cannot take it now. */
static int send_async_locked(cm_mcp_session *s, const char *method, cJSON *params,
                             const cm_call_ctx *ctx, cm_mcp_answer_fn fn, void *arg)
{
    if (s->http || s->closing || s->state != S_READY || !s->reader_running || s->reader_done ||
        s->in_fd < 0 || s->wake_fd < 0)
        return 0;
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    pending *pd = cm_xcalloc(1, sizeof *pd);
    pd->id = ++s->next_id;
    pd->fn = fn;
    pd->arg = arg;
    pd->method = method;
    pd->cancel = ctx->cancel;
    pd->hung_at = cm_now_ms() + cm_mcp_request_timeout_ms(s);
    pd->deadline_ms = cm_mcp_request_deadline(s, ctx);
    cJSON_AddNumberToObject(msg, "id", (double)pd->id);
    cm_mcp_progress_token(method, params, pd->id);
    cm_mcp_pending_notes(pd, ctx);
    cJSON_AddStringToObject(msg, "method", method);
    if (params)
        cJSON_AddItemReferenceToObject(msg, "params", params);
    pd->next = s->pending;
    s->pending = pd; /* before the write: the answer may come at once */
    s->async_linger = cm_now_ms() + 1000;
    if (cm_mcp_send_line_locked(s, msg, pd->deadline_ms, &pd->err) < 0)
        pd->failed = pd->done = true;
    if (pd->failed || s->reader_idle) {
        s->reader_idle = false;
        cm_mcp_wake_reader(s); /* it takes a timeout now; finishes a failed send */
    }
    return 1;
}

int cm_mcp_request_async(cm_providers *p, const char *manual, const char *server,
                         const cJSON *server_cfg, const char *base_dir, const char *method,
                         cJSON *params, const cm_call_ctx *ctx, cm_mcp_answer_fn fn, void *arg)
{
    if (!p || cm_json_str(server_cfg, "url"))
        return 0;
    cm_mcp_session *s = cm_mcp_session_get(p, manual, server, server_cfg, base_dir);
    pthread_mutex_lock(&s->lock);
    int started = send_async_locked(s, method, params, ctx, fn, arg);
    pthread_mutex_unlock(&s->lock);
    cm_mcp_session_put(s);
    return started;
}

void cm_mcp_sessions_wakeup(cm_providers *p)
{
    pthread_mutex_lock(&p->lock);
    for (cm_mcp_session *s = p->sessions; s; s = s->next)
        cm_mcp_wake_reader(s);
    pthread_mutex_unlock(&p->lock);
}
