/* mcp_session_http.c — the streamable HTTP transport of an MCP session: one
 * POST per message through http_client.c (egress rules, deadline, cancel),
 * answers as JSON or an SSE stream read as it arrives (notifications to the
 * caller's notes, server requests answered by POST, a stream that ends
 * early resumed with GET + Last-Event-ID after its retry delay), the
 * Mcp-Session-Id captured at initialize and sent back, 404 → the session
 * expired, DELETE at close.
 *
 * Why its own file: libcurl and SSE parsing are this transport's alone; the
 * stdio transport (mcp_session_stdio.c) shares none of it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "log.h"
#include "mcp_int.h"
#include "util.h"

static int header_lines(const cJSON *cfg, struct curl_slist **h, cm_error *err)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cfg, "headers"))
    {
        if (!cJSON_IsString(v) || strpbrk(v->string, "\r\n:") || strpbrk(v->valuestring, "\r\n"))
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "headers.%.60s: invalid header", v->string);
        cm_autofree char *line = NULL;
        if (asprintf(&line, "%s: %s", v->string, v->valuestring) < 0)
            abort();
        *h = curl_slist_append(*h, line);
    }
    return 0;
}

/* The answer to `id` in a JSON body (one message or a batch). */
static cJSON *json_answer(const cm_http_resp *r, int64_t id)
{
    cJSON *j = cJSON_Parse(r->body.data ? r->body.data : "");
    if (!cJSON_IsArray(j))
        return j;
    cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        const cJSON *eid = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(eid) && (int64_t)eid->valuedouble == id) {
            cJSON *out = cJSON_DetachItemViaPointer(j, e);
            cJSON_Delete(j);
            return out;
        }
    }
    cJSON_Delete(j);
    return NULL;
}

/* ---- SSE answers, read as they arrive ------------------------------------ */

/* One request's SSE reader: events are handled as they come (the server's
 * progress and log notifications go to the caller's notes at once, its
 * requests are answered by a POST while it waits), the answer is kept, and
 * the last event id and retry delay are kept for resumption. */
typedef struct sse_reader {
    cm_mcp_session *s;
    const cm_call_ctx *ctx;
    int64_t id;
    size_t off; /* parsed up to here in the body */
    cm_buf data;
    char last_id[128];
    long retry_ms; /* -1: the server sent none */
    cJSON *answer;
    bool listener; /* the GET stream: notifications go to every call in flight */
} sse_reader;

static void post_reply(cm_mcp_session *s, const cm_call_ctx *ctx, const cJSON *request);

static void sse_event(sse_reader *rd)
{
    if (!rd->data.len)
        return;
    cJSON *j = cJSON_ParseWithLength(rd->data.data, rd->data.len);
    cm_buf_consume(&rd->data, rd->data.len);
    const cJSON *eid = cJSON_GetObjectItemCaseSensitive(j, "id");
    bool method = cJSON_GetObjectItemCaseSensitive(j, "method") != NULL;
    if (!method && cJSON_IsNumber(eid) && (int64_t)eid->valuedouble == rd->id && !rd->answer) {
        rd->answer = j;
        return;
    }
    if (method && eid) {
        post_reply(rd->s, rd->ctx, j);
    } else if (method && rd->listener) {
        pthread_mutex_lock(&rd->s->lock);
        cm_mcp_forward_notification_locked(rd->s, j);
        pthread_mutex_unlock(&rd->s->lock);
    } else if (method) {
        cm_mcp_note_for(rd->ctx, j, rd->id);
    }
    cJSON_Delete(j);
}

static void sse_line(sse_reader *rd, const char *p, size_t l)
{
    cm_error ignored;
    if (l == 0) {
        sse_event(rd);
    } else if (l >= 5 && !strncmp(p, "data:", 5)) {
        size_t skip = 5 + (l > 5 && p[5] == ' ');
        if (rd->data.len)
            cm_buf_append(&rd->data, "\n", 1, &ignored);
        cm_buf_append(&rd->data, p + skip, l - skip, &ignored);
    } else if (l >= 3 && !strncmp(p, "id:", 3)) {
        size_t skip = 3 + (l > 3 && p[3] == ' ');
        snprintf(rd->last_id, sizeof rd->last_id, "%.*s", (int)(l - skip), p + skip);
    } else if (l >= 6 && !strncmp(p, "retry:", 6)) {
        rd->retry_ms = strtol(p + 6, NULL, 10);
    }
}

/* cm_http_req.on_data: the complete lines received since the last call;
 * true (end the transfer) once the answer is in: a server may keep the
 * stream open after it. */
static bool sse_on_data(void *arg, const cm_buf *body)
{
    sse_reader *rd = arg;
    while (!rd->answer) {
        const char *p = body->data + rd->off;
        const char *eol = memchr(p, '\n', body->len - rd->off);
        if (!eol)
            return false;
        size_t len = (size_t)(eol - p);
        sse_line(rd, p, len && p[len - 1] == '\r' ? len - 1 : len);
        rd->off += len + 1;
    }
    return true;
}

/* One HTTP request of the session: its Mcp-Session-Id and protocol
 * version, its bearer token (*gen: the token's generation, 0: none), the
 * server entry's headers, extra (one more header line or NULL); rd, when
 * set, reads an SSE body as it arrives. */
static int send_http(cm_mcp_session *s, const char *method, const char *body, const char *extra,
                     const cm_call_ctx *ctx, sse_reader *rd, cm_http_resp *resp, uint64_t *gen,
                     cm_error *err)
{
    int64_t deadline = cm_mcp_request_deadline(s, ctx);
    uint64_t ignored_gen;
    cm_autofree char *bearer =
        s->oauth ? cm_mcp_oauth_header(s->oauth, s->p, ctx, deadline, gen ? gen : &ignored_gen)
                 : NULL;
    pthread_mutex_lock(&s->lock);
    cm_autofree char *sid = s->session_id ? cm_xstrdup(s->session_id) : NULL;
    char proto[sizeof s->proto];
    memcpy(proto, s->proto, sizeof proto);
    pthread_mutex_unlock(&s->lock);
    struct curl_slist *h = NULL;
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, body ? "Accept: application/json, text/event-stream"
                                  : "Accept: text/event-stream");
    char line[256];
    if (sid) {
        snprintf(line, sizeof line, "Mcp-Session-Id: %.200s", sid);
        h = curl_slist_append(h, line);
    }
    if (proto[0]) {
        snprintf(line, sizeof line, "MCP-Protocol-Version: %s", proto);
        h = curl_slist_append(h, line);
    }
    if (extra)
        h = curl_slist_append(h, extra);
    if (bearer)
        h = curl_slist_append(h, bearer);
    int rc = header_lines(s->cfg, &h, err);
    if (rc == 0) {
        cm_http_req req = {.method = method,
                           .url = cm_json_str(s->cfg, "url"),
                           .headers = h,
                           .body = body,
                           .body_len = body ? strlen(body) : 0,
                           .max_bytes = LINE_MAX_BYTES,
                           .deadline_ms = deadline,
                           .cancel = ctx->cancel,
                           .capture_header = "Mcp-Session-Id",
                           .egress = ctx->egress,
                           .on_data = rd ? sse_on_data : NULL,
                           .on_data_arg = rd};
        rc = cm_http_perform(s->p, &req, resp, err);
    }
    curl_slist_free_all(h);
    return rc;
}

/* A server request on an answer stream (elicitation, sampling, roots,
 * ping): answered by a POST while the stream stays open. */
static void post_reply(cm_mcp_session *s, const cm_call_ctx *ctx, const cJSON *request)
{
    cm_autojson cJSON *reply = cm_mcp_client_reply(s, request);
    cm_autofree char *body = cm_json_print(reply);
    cm_http_resp resp = {0};
    cm_error err;
    if (send_http(s, "POST", body, NULL, ctx, NULL, &resp, NULL, &err) < 0)
        cm_log("warn", "MCP server '%s': cannot answer its %s: %s", s->server,
               cm_json_str(request, "method"), err.message);
    cm_http_resp_free(&resp);
}

/* The answer stream ended without the answer: resume it with GET and
 * Last-Event-ID after the server's retry delay (SEP-1699), a few times,
 * within the call's deadline. */
static int resume(cm_mcp_session *s, const cm_call_ctx *ctx, sse_reader *rd, cm_error *err)
{
    for (int tries = 0; !rd->answer && rd->last_id[0] && tries < 5; tries++) {
        int64_t at = cm_now_ms() + (rd->retry_ms >= 0 ? rd->retry_ms : 1000);
        while (cm_now_ms() < at) {
            if (cm_mcp_check_wait(s, ctx, err) < 0)
                return -1;
            usleep(10000);
        }
        char hdr[200];
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", rd->last_id);
        rd->off = 0;
        cm_buf_consume(&rd->data, rd->data.len);
        cm_http_resp resp = {0};
        int rc = send_http(s, "GET", NULL, hdr, ctx, rd, &resp, NULL, err);
        long status = resp.status;
        cm_http_resp_free(&resp);
        if (rc < 0)
            return cm_error_prefix(err, "MCP server '%s': resuming its stream", s->server);
        if (status >= 400)
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "MCP server '%s': its answer stream ended early and resuming "
                                "it (GET, Last-Event-ID %.60s) got HTTP %ld",
                                s->server, rd->last_id, status);
    }
    return 0;
}

/* The POST of a message; a 401 or 403 answer to it, with an `oauth`
 * client, gets a new token and the POST again (twice at most: the first
 * authorization, then one step-up).  -1 with err prefixed when the
 * authorization fails. */
static int post_authorized(cm_mcp_session *s, const char *body, const cm_call_ctx *ctx,
                           sse_reader *rd, cm_http_resp *resp, cm_error *err)
{
    for (int attempt = 0;; attempt++) {
        uint64_t gen = 0;
        int rc = send_http(s, "POST", body, NULL, ctx, rd, resp, &gen, err);
        if (rc < 0 || !s->oauth || (resp->status != 401 && resp->status != 403) || attempt == 2)
            return rc;
        long status = resp->status;
        cm_autofree char *www = cm_steal_ptr(&resp->www_authenticate);
        cm_http_resp_free(resp);
        cm_buf_free(&rd->data);
        *rd = (sse_reader){.s = s, .ctx = ctx, .id = rd->id, .retry_ms = -1};
        if (cm_mcp_oauth_challenge(s->oauth, s->p, ctx, cm_mcp_request_deadline(s, ctx), status,
                                   www, gen, err) < 0)
            return cm_error_prefix(err, "authorization");
    }
}

int cm_mcp_http_exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                         const cm_call_ctx *ctx, cJSON **answer, cm_error *err)
{
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    pthread_mutex_lock(&s->lock);
    int64_t id = notify ? 0 : ++s->next_id;
    bool had_session = s->session_id != NULL;
    pthread_mutex_unlock(&s->lock);
    if (!notify) {
        cJSON_AddNumberToObject(msg, "id", (double)id);
        cm_mcp_progress_token(method, params, id);
    }
    cJSON_AddStringToObject(msg, "method", method);
    if (params)
        cJSON_AddItemReferenceToObject(msg, "params", params);
    cm_autofree char *body = cm_json_print(msg);
    sse_reader rd = {.s = s, .ctx = ctx, .id = id, .retry_ms = -1};
    cm_http_resp resp = {0};
    int rc = post_authorized(s, body, ctx, &rd, &resp, err);
    if (rc < 0) {
        rc = cm_error_prefix(err, "MCP server '%s'", s->server);
    } else if (resp.status == 404 && had_session) {
        rc = RETRY_EXPIRED;
    } else if (resp.status == 401 && !s->oauth) {
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR,
                          "MCP server '%s': HTTP status 401: it requires authorization; give "
                          "its entry an `oauth` object (providers/README.md, \"mcp\")",
                          s->server);
    } else if (resp.status >= 400) {
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': HTTP status %ld: %.300s",
                          s->server, resp.status, resp.body.data ? resp.body.data : "");
    } else {
        if (!strcmp(method, "initialize") && resp.captured) {
            pthread_mutex_lock(&s->lock);
            free(s->session_id);
            s->session_id = cm_steal_ptr(&resp.captured);
            pthread_mutex_unlock(&s->lock);
        }
        bool sse = resp.content_type && strstr(resp.content_type, "text/event-stream");
        if (!notify && !sse)
            *answer = json_answer(&resp, id);
        else if (!notify && (rc = resume(s, ctx, &rd, err)) == 0)
            *answer = cm_steal_ptr(&rd.answer);
        if (rc == 0 && !notify && !*answer)
            rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': no answer to request %lld",
                              s->server, (long long)id);
    }
    cm_http_resp_free(&resp);
    cm_buf_free(&rd.data);
    cJSON_Delete(rd.answer);
    return rc;
}

/* ---- the GET stream ----------------------------------------------------- */

static void *listen_main(void *arg)
{
    cm_mcp_session *s = arg;
    cm_call_ctx ctx = {.cancel = &s->listen_stop, .providers = s->p};
    int failures = 0;
    char last[160] = "";
    while (!atomic_load(&s->listen_stop) && failures < 8) {
        sse_reader rd = {.s = s, .ctx = &ctx, .id = -1, .retry_ms = -1, .listener = true};
        cm_http_resp resp = {0};
        cm_error err;
        int64_t t0 = cm_now_ms();
        int rc = send_http(s, "GET", NULL, last[0] ? last : NULL, &ctx, &rd, &resp, NULL, &err);
        long status = resp.status;
        cm_http_resp_free(&resp);
        cm_buf_free(&rd.data);
        if (rd.last_id[0])
            snprintf(last, sizeof last, "Last-Event-ID: %s", rd.last_id);
        if (rc == 0 && status >= 400)
            break; /* 405: no GET stream; 404: the session is gone */
        /* a stream that stayed open a while is the normal case (our own 30 s
           cap ends it): back at once; quick failures back off */
        failures = cm_now_ms() - t0 > 5000 ? 0 : failures + 1;
        int64_t until = cm_now_ms() + (rd.retry_ms >= 0 ? rd.retry_ms : 250L * failures);
        while (cm_now_ms() < until && !atomic_load(&s->listen_stop))
            usleep(20000);
    }
    atomic_store(&s->listener_done, true);
    return NULL;
}

void cm_mcp_http_listen_start(cm_mcp_session *s)
{
    if (s->listener_started && !atomic_load(&s->listener_done))
        return; /* still listening */
    if (s->listener_started)
        pthread_join(s->listener, NULL);
    s->listener_started = false;
    atomic_store(&s->listener_done, false);
    atomic_store(&s->listen_stop, false);
    if (pthread_create(&s->listener, NULL, listen_main, s) == 0)
        s->listener_started = true;
}

void cm_mcp_http_listen_stop(cm_mcp_session *s)
{
    atomic_store(&s->listen_stop, true);
    if (s->listener_started)
        pthread_join(s->listener, NULL);
    s->listener_started = false;
}

void cm_mcp_delete_http_session(cm_mcp_session *s)
{
    if (!s->session_id)
        return;
    char line[256];
    snprintf(line, sizeof line, "Mcp-Session-Id: %.200s", s->session_id);
    struct curl_slist *h = curl_slist_append(NULL, line);
    uint64_t gen;
    cm_autofree char *bearer = s->oauth ? cm_mcp_oauth_header(s->oauth, NULL, NULL, 0, &gen) : NULL;
    if (bearer)
        h = curl_slist_append(h, bearer);
    cm_http_req req = {.method = "DELETE",
                       .url = cm_json_str(s->cfg, "url"),
                       .headers = h,
                       .deadline_ms = cm_now_ms() + 2000};
    cm_http_resp resp;
    cm_error ignored;
    if (cm_http_perform(s->p, &req, &resp, &ignored) == 0)
        cm_http_resp_free(&resp);
    curl_slist_free_all(h);
}
