/* mcp_session_state.c — what every part of an MCP session uses: the
 * session table (one session per (manual, server)), waiting on a session with
 * deadline and cancel, writing a line to a stdio server, failing every
 * in-flight call when a server dies or hangs, per-request timeouts, and the
 * JSON-RPC answer → result mapping.
 *
 * Why its own file: the stdio transport, the asynchronous requests and the
 * session's life all need these; here they sit below all three, so none of
 * those files has to call another one back (see mcp_int.h). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mcp_int.h"
#include "util.h"

static cm_mcp_session *session_new(cm_providers *p, const char *manual, const char *server,
                                   const cJSON *cfg, const char *base_dir)
{
    cm_mcp_session *s = cm_xcalloc(1, sizeof *s);
    s->manual = cm_xstrdup(manual);
    s->server = cm_xstrdup(server);
    s->base_dir = cm_xstrdup(base_dir ? base_dir : ".");
    s->cfg = cJSON_Duplicate(cfg, 1);
    s->http = cm_json_str(cfg, "url") != NULL;
    s->oauth = s->http ? cm_mcp_oauth_new(cfg) : NULL;
    s->p = p;
    s->in_fd = -1;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

cm_mcp_session *cm_mcp_session_get(cm_providers *p, const char *manual, const char *server,
                                   const cJSON *cfg, const char *base_dir)
{
    pthread_mutex_lock(&p->lock);
    cm_mcp_session *s = p->sessions;
    while (s && (strcmp(s->manual, manual) || strcmp(s->server, server)))
        s = s->next;
    if (!s) {
        s = session_new(p, manual, server, cfg, base_dir);
        s->next = p->sessions;
        p->sessions = s;
    }
    pthread_mutex_lock(&s->lock);
    s->refs++;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&p->lock);
    return s;
}

void cm_mcp_session_put(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    s->refs--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Waits on the session's condition for at most ms (lock held). */
void cm_mcp_wait_ms(cm_mcp_session *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

/* 0 while the caller may keep waiting; else an error (deadline/cancel). */
int cm_mcp_check_wait(const cm_mcp_session *s, const cm_call_ctx *ctx, cm_error *err)
{
    if (ctx->cancel && atomic_load(ctx->cancel))
        return cm_error_set(err, CM_ERR_TIMEOUT, "MCP server '%s': cancelled: the caller gave up",
                            s->server);
    if (ctx->deadline_ms && cm_now_ms() >= ctx->deadline_ms)
        return cm_error_set(err, CM_ERR_TIMEOUT, "MCP server '%s': timed out", s->server);
    return 0;
}

static int write_deadline(int fd, const char *data, size_t len, int64_t deadline_ms)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -1;
        int64_t left = deadline_ms - cm_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        poll(&pfd, 1, left > 100 ? 100 : (int)left);
    }
    return 0;
}

/* Writes one message line (lock held). */
int cm_mcp_send_line_locked(cm_mcp_session *s, const cJSON *msg, int64_t deadline_ms, cm_error *err)
{
    if (s->in_fd < 0)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' is not running", s->server);
    cm_autofree char *text = cm_json_print(msg);
    size_t n = strlen(text);
    char *line = cm_xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    int rc = write_deadline(s->in_fd, line, n + 1, deadline_ms);
    free(line);
    if (rc < 0)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': cannot write request: %s",
                            s->server, strerror(errno));
    return 0;
}

static int64_t backoff_ms(int crashes)
{
    if (crashes <= 1)
        return 0;
    int64_t b = (int64_t)250 << (crashes - 2 > 5 ? 5 : crashes - 2);
    return b > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : b;
}

void cm_mcp_wake_reader(cm_mcp_session *s)
{
    uint64_t one = 1;
    if (s->wake_fd >= 0)
        (void)!write(s->wake_fd, &one, sizeof one);
}

/* Marks the session dead and fails every in-flight call (lock held). */
void cm_mcp_fail_all_locked(cm_mcp_session *s, const char *why)
{
    if (s->state == S_READY || s->state == S_STARTING) {
        s->state = S_DEAD;
        if (!s->closing) {
            s->crashes++;
            s->restart_at_ms = cm_now_ms() + backoff_ms(s->crashes);
        }
    }
    snprintf(s->last_exit, sizeof s->last_exit, "%s", why);
    for (pending *p = s->pending; p; p = p->next) {
        if (p->fn && !p->done) { /* worded now, as a blocking caller would */
            cm_error_set(&p->err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s during the call",
                         s->server, why);
            p->failed = true;
        }
        p->done = true;
    }
    pthread_cond_broadcast(&s->cond);
    cm_mcp_wake_reader(s);
}

/* The server's per-request timeout: `timeout` (seconds) in its config,
 * default 30 s. */
int64_t cm_mcp_request_timeout_ms(const cm_mcp_session *s)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s->cfg, "timeout");
    if (cJSON_IsNumber(t) && t->valuedouble > 0 && t->valuedouble < 86400)
        return (int64_t)(t->valuedouble * 1000.0);
    return DEFAULT_CALL_TIMEOUT_MS;
}

/* The earlier of the caller's deadline and now + the server's timeout. */
int64_t cm_mcp_request_deadline(const cm_mcp_session *s, const cm_call_ctx *ctx)
{
    int64_t own = cm_now_ms() + cm_mcp_request_timeout_ms(s);
    return ctx->deadline_ms && ctx->deadline_ms < own ? ctx->deadline_ms : own;
}

/* A stdio server alive but not answering (lock held): kill its process
 * group (the reader reaps it), fail every in-flight call and schedule the
 * restart with backoff, as for a crash. */
int cm_mcp_server_hung(cm_mcp_session *s, const char *method, cm_error *err)
{
    char why[128];
    snprintf(why, sizeof why, "did not answer %.40s within %gs and was killed", method,
             (double)cm_mcp_request_timeout_ms(s) / 1000.0);
    if (s->pid_alive) {
        cm_providers_signal(s->p, s->pid, SIGKILL);
        s->hung_killed = true;
    }
    cm_mcp_fail_all_locked(s, why);
    return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s", s->server, why);
}

/* A JSON-RPC answer → its result; an `error` member → CM_ERR_TOOL_ERROR. */
int cm_mcp_answer_to_result(cm_mcp_session *s, const char *method, cJSON *answer, cJSON **result,
                            cm_error *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(answer, "error");
    if (e) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const char *m = cm_json_str(e, "message");
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': %s failed: %s (code %d)",
                            s->server, method, m ? m : "error",
                            cJSON_IsNumber(code) ? code->valueint : 0);
    }
    cJSON *r = cJSON_DetachItemFromObjectCaseSensitive(answer, "result");
    *result = r ? r : cJSON_CreateObject();
    return 0;
}

/* ---- server notifications into the calling chains' logs ------------------ */

void cm_mcp_progress_token(const char *method, cJSON *params, int64_t id)
{
    if (strcmp(method, "tools/call") != 0 || !cJSON_IsObject(params))
        return;
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
    if (!cJSON_IsObject(meta)) {
        cJSON_DeleteItemFromObjectCaseSensitive(params, "_meta");
        meta = cJSON_AddObjectToObject(params, "_meta");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "progressToken");
    cJSON_AddNumberToObject(meta, "progressToken", (double)id);
}

void cm_mcp_pending_notes(pending *p, const cm_call_ctx *ctx)
{
    p->note = ctx ? ctx->note : NULL;
    p->note_arg = ctx ? ctx->note_arg : NULL;
    p->note_group = ctx ? ctx->note_group : NULL;
}

static void progress_line(const cJSON *params, char *line, size_t size)
{
    const cJSON *progress = cJSON_GetObjectItemCaseSensitive(params, "progress");
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(params, "total");
    const char *message = cm_json_str(params, "message");
    int n =
        snprintf(line, size, "progress %g", cJSON_IsNumber(progress) ? progress->valuedouble : 0);
    if (cJSON_IsNumber(total) && n > 0 && (size_t)n < size)
        n += snprintf(line + n, size - (size_t)n, "/%g", total->valuedouble);
    if (message && n > 0 && (size_t)n < size)
        snprintf(line + n, size - (size_t)n, ": %.300s", message);
}

static void log_line(const cJSON *params, char *line, size_t size)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(params, "data");
    cm_autofree char *printed = cJSON_IsString(data) ? NULL : cm_json_print(data);
    const char *level = cm_json_str(params, "level"), *logger = cm_json_str(params, "logger");
    snprintf(line, size, "log %s%s%s: %.400s", level ? level : "info", logger ? " " : "",
             logger ? logger : "", cJSON_IsString(data) ? data->valuestring : printed);
}

/* The log line of a progress (token set) or log notification; false for
 * any other message. */
static bool note_text(const cJSON *msg, const cJSON **token, char *line, size_t size)
{
    const char *method = cm_json_str(msg, "method");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
    *token = NULL;
    if (method && !strcmp(method, "notifications/progress")) {
        *token = cJSON_GetObjectItemCaseSensitive(params, "progressToken");
        progress_line(params, line, size);
        return cJSON_IsNumber(*token);
    }
    if (method && !strcmp(method, "notifications/message")) {
        log_line(params, line, size);
        return true;
    }
    return false;
}

void cm_mcp_forward_notification_locked(cm_mcp_session *s, const cJSON *msg)
{
    const cJSON *token;
    char line[512];
    if (!note_text(msg, &token, line, sizeof line))
        return;
    for (pending *p = s->pending; p; p = p->next) {
        if (!p->note || p->done)
            continue;
        if (token) {
            if (p->id == (int64_t)token->valuedouble)
                p->note(p->note_arg, line);
            continue;
        }
        bool first = true; /* of its chain: a server-wide line reaches a chain once */
        for (pending *q = s->pending; q != p && first; q = q->next)
            first = !(q->note && !q->done && q->note_group == p->note_group);
        if (first)
            p->note(p->note_arg, line);
    }
}

void cm_mcp_note_for(const cm_call_ctx *ctx, const cJSON *msg, int64_t id)
{
    const cJSON *token;
    char line[512];
    if (ctx && ctx->note && note_text(msg, &token, line, sizeof line) &&
        (!token || (int64_t)token->valuedouble == id))
        ctx->note(ctx->note_arg, line);
}

void cm_mcp_send_cancelled_locked(cm_mcp_session *s, int64_t id, const char *reason)
{
    if (s->http || s->in_fd < 0 || s->state != S_READY)
        return;
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    cJSON_AddStringToObject(msg, "method", "notifications/cancelled");
    cJSON *params = cJSON_AddObjectToObject(msg, "params");
    cJSON_AddNumberToObject(params, "requestId", (double)id);
    cJSON_AddStringToObject(params, "reason", reason);
    cm_error ignored;
    cm_mcp_send_line_locked(s, msg, cm_now_ms() + 200, &ignored);
}

/* elicitation: "accept_defaults" (server entry): every field of the
 * requested schema that has a default, accepted as the answer */
static cJSON *accept_defaults(const cJSON *params)
{
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "action", "accept");
    cJSON *content = cJSON_AddObjectToObject(res, "content");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(params, "requestedSchema"), "properties");
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(p, "default");
        if (d)
            cJSON_AddItemToObject(content, p->string, cJSON_Duplicate(d, 1));
    }
    return res;
}

cJSON *cm_mcp_client_reply(const cm_mcp_session *s, const cJSON *msg)
{
    const char *method = cm_json_str(msg, "method");
    const char *elicit = cm_json_str(s->cfg, "elicitation");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "jsonrpc", "2.0");
    cJSON_AddItemToObject(r, "id", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(msg, "id"), 1));
    if (!strcmp(method, "ping")) {
        cJSON_AddObjectToObject(r, "result");
    } else if (!strcmp(method, "roots/list")) {
        cJSON_AddArrayToObject(cJSON_AddObjectToObject(r, "result"), "roots");
    } else if (!strcmp(method, "elicitation/create") && elicit &&
               !strcmp(elicit, "accept_defaults")) {
        cJSON_AddItemToObject(r, "result",
                              accept_defaults(cJSON_GetObjectItemCaseSensitive(msg, "params")));
    } else if (!strcmp(method, "elicitation/create")) {
        /* no user behind a chain to ask: declined, as the spec words it */
        cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "result"), "action", "decline");
    } else if (!strcmp(method, "sampling/createMessage")) {
        cJSON *e = cJSON_AddObjectToObject(r, "error");
        cJSON_AddNumberToObject(e, "code", -1);
        cJSON_AddStringToObject(e, "message",
                                "sampling refused: codemode has no model to sample from; a tool "
                                "that needs an LLM completion cannot run from a chain");
    } else {
        cJSON *e = cJSON_AddObjectToObject(r, "error");
        cJSON_AddNumberToObject(e, "code", -32601);
        cJSON_AddStringToObject(e, "message", "method not supported by this client");
    }
    return r;
}
