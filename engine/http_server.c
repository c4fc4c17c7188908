/* http_server.c — the streamable HTTP transport's server (libmicrohttpd,
 * one thread per connection so an SSE response can wait for its chain):
 * POST /mcp carries one JSON-RPC message (answered as JSON, or as an SSE
 * stream for a chain: its logs as notifications/message, progress, then the
 * answer), GET /mcp opens the session's stream or resumes one with
 * Last-Event-ID, DELETE /mcp ends the session.  Before anything runs, the
 * Host and Origin headers are checked (DNS rebinding) and the caller is
 * authenticated (bearer token or configured anonymous identity); the
 * identity rides on the request's connection as its peer, so the policy
 * and the grants see it as they see a socket peer. */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "jsonrpc.h"
#include "tools.h"

#define KEEPALIVE_MS 15000
#define SSE_BLOCK 16384

typedef struct http_req {
    cm_http *h;
    cm_buf body;
    bool too_big;
    http_reader reader; /* SSE responses */
    http_session *session;
} http_req;

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *body, const http_session *s,
                                 const char *www_authenticate)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (*body)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (s)
        MHD_add_response_header(r, "Mcp-Session-Id", s->id);
    if (www_authenticate)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_authenticate);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A JSON-RPC error as the HTTP answer (id: the request's, or null). */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const cJSON *id,
                                  int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const cJSON *id,
                                  int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cm_autojson cJSON *e = cm_rpc_error(id, code, msg);
    cm_autofree char *s = cm_json_print(e);
    return send_body(c, status, "application/json", s, NULL, NULL);
}

static bool version_ok(const char *v)
{
    static const char *const known[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(v, known[i]))
            return true;
    return false;
}

static enum MHD_Result refuse_auth(cm_http *h, struct MHD_Connection *c, unsigned status,
                                   const char *error, const char *why)
{
    char challenge[900];
    if (h->cfg.oauth)
        cm_http_oauth_challenge(h->cfg.oauth, error, why, challenge, sizeof challenge);
    else if (error)
        snprintf(challenge, sizeof challenge,
                 "Bearer realm=\"codemode\", error=\"%s\", error_description=\"%s\"", error, why);
    else
        snprintf(challenge, sizeof challenge, "Bearer realm=\"codemode\"");
    cm_log("warn", "http: refused a request: %s", why);
    char msg[400];
    snprintf(msg, sizeof msg, "%s: %s", status == 403 ? "forbidden" : "authentication failed", why);
    cm_autojson cJSON *e = cm_rpc_error(NULL, -32001, msg);
    cm_autofree char *s = cm_json_print(e);
    return send_body(c, status, "application/json", s, NULL, challenge);
}

/* 0 and *who: authenticated; else the 401/403 is queued (*rc). */
static int authenticate(cm_http *h, struct MHD_Connection *c, struct ucred *who,
                        enum MHD_Result *rc)
{
    const char *auth = header(c, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        const http_token *t = cm_http_token_find(&h->cfg, auth + 7);
        if (t) {
            *who = t->who;
            return 0;
        }
        cm_http_oauth_result res = {0};
        if (h->cfg.oauth && cm_http_oauth_check(h->cfg.oauth, auth + 7, who, &res) == 0)
            return 0;
        *rc = refuse_auth(
            h, c, h->cfg.oauth ? (unsigned)res.status : MHD_HTTP_UNAUTHORIZED, "invalid_token",
            h->cfg.oauth ? res.description : "the bearer token is not one of engine.http.tokens");
        return -1;
    }
    if (!auth && h->cfg.anonymous) {
        *who = h->cfg.anon;
        return 0;
    }
    *rc = refuse_auth(h, c, MHD_HTTP_UNAUTHORIZED, NULL,
                      h->cfg.oauth ? "send Authorization: Bearer TOKEN (a token from the "
                                     "authorization server in the resource metadata)"
                                   : "send Authorization: Bearer TOKEN (a token whose SHA-256 "
                                     "is listed in engine.http.tokens)");
    return -1;
}

static bool same_caller(const struct ucred *a, const struct ucred *b)
{
    return a->uid == b->uid && a->gid == b->gid;
}

/* The session the request names (referenced into r->session), or the
 * error response queued (*rc) and NULL. */
static http_session *find_session(http_req *r, struct MHD_Connection *c, const struct ucred *who,
                                  enum MHD_Result *rc)
{
    const char *sid = header(c, "Mcp-Session-Id");
    if (!sid) {
        *rc = send_error(c, MHD_HTTP_BAD_REQUEST, NULL, -32000,
                         "Mcp-Session-Id header required: send initialize first and then the "
                         "session id it returned");
        return NULL;
    }
    http_session *s = cm_http_session_get(r->h, sid);
    if (s && !same_caller(&s->who, who)) { /* another caller's session: not for you */
        cm_http_session_put(r->h, s);
        s = NULL;
    }
    if (!s)
        *rc = send_error(c, MHD_HTTP_NOT_FOUND, NULL, -32001,
                         "session not found (ended, expired or never created): initialize a "
                         "new session");
    r->session = s;
    return s;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    http_req *r = cls;
    size_t n = cm_http_stream_read(&r->reader, buf, max, KEEPALIVE_MS);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

/* Streams st to the client from event index `from` (takes the st reference). */
static enum MHD_Result send_stream(http_req *r, struct MHD_Connection *c, http_stream *st,
                                   size_t from)
{
    cm_http_reader_attach(&r->reader, st, from);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, sse_read, r, NULL);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (r->session)
        MHD_add_response_header(resp, "Mcp-Session-Id", r->session->id);
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* A chain (a slow engine tool) answers on an SSE stream when the client
 * takes one; everything else answers as one JSON body. */
static bool wants_stream(struct MHD_Connection *c, const char *method, const cJSON *params)
{
    const char *accept = header(c, MHD_HTTP_HEADER_ACCEPT);
    if (!accept || !strstr(accept, "text/event-stream") || strcmp(method, "tools/call") != 0)
        return false;
    const char *name = cm_json_str(params, "name");
    const cm_tool_def *def = name ? cm_tools_find(name) : NULL;
    return def && def->slow;
}

static enum MHD_Result answer_json(http_req *r, struct MHD_Connection *c, http_stream *st,
                                   bool initialize)
{
    cm_engine *eng = r->h->eng;
    int64_t wait_s = eng->cfg.max_timeout_s + eng->cfg.drain_timeout_s + 60;
    cm_autofree char *answer = cm_http_stream_wait_answer(st, cm_now_ms() + wait_s * 1000);
    cm_http_stream_done(r->h, st);
    cm_http_stream_unref(st);
    if (!answer) /* cancelled (no answer, as the spec says) or the session ended */
        return send_body(c, MHD_HTTP_ACCEPTED, "application/json", "", NULL, NULL);
    if (initialize && strstr(answer, "\"error\":")) {
        cm_http_session_end(r->h, r->session);
        return send_body(c, MHD_HTTP_OK, "application/json", answer, NULL, NULL);
    }
    return send_body(c, MHD_HTTP_OK, "application/json", answer, r->session, NULL);
}

/* A notification or a client's response: nothing to answer (202). */
static enum MHD_Result post_notification(http_req *r, struct MHD_Connection *c, const char *method,
                                         const cJSON *params)
{
    if (method && !strcmp(method, "notifications/cancelled")) {
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(params, "requestId");
        if (rid) {
            cm_autofree char *key = cm_json_print(rid);
            cm_http_stream_cancel(r->h, r->session, key);
        }
    } else if (method) {
        cm_error err;
        http_stream *st = cm_http_stream_new(r->h, r->session, NULL, &err);
        if (st) {
            r->h->eng->on_line(r->h->eng, &st->conn, r->body.data, r->body.len);
            cm_http_stream_done(r->h, st);
            cm_http_stream_unref(st);
        }
    }
    return send_body(c, MHD_HTTP_ACCEPTED, "application/json", "", NULL, NULL);
}

static enum MHD_Result post_request(http_req *r, struct MHD_Connection *c, const cJSON *msg,
                                    const char *method)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
    cm_error err;
    http_stream *st = cm_http_stream_new(r->h, r->session, id, &err);
    if (!st)
        return send_error(c, MHD_HTTP_TOO_MANY_REQUESTS, id, -32000, "%s", err.message);
    r->h->eng->on_line(r->h->eng, &st->conn, r->body.data, r->body.len);
    if (!strcmp(method, "logging/setLevel"))
        atomic_store(&r->session->log_level, atomic_load(&st->conn.log_level));
    if (wants_stream(c, method, params))
        return send_stream(r, c, st, 0);
    return answer_json(r, c, st, !strcmp(method, "initialize"));
}

static bool content_type_json(struct MHD_Connection *c)
{
    const char *t = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    return t && !strncasecmp(t, "application/json", 16);
}

static enum MHD_Result handle_post(http_req *r, struct MHD_Connection *c, const struct ucred *who)
{
    enum MHD_Result rc;
    if (!content_type_json(c))
        return send_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, -32700,
                          "POST needs Content-Type: application/json");
    if (r->too_big)
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, -32600,
                          "request exceeds %zu bytes (engine.max_request_bytes)",
                          r->h->eng->cfg.max_request_bytes);
    cm_autojson cJSON *msg = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!msg)
        return send_error(c, MHD_HTTP_BAD_REQUEST, NULL, -32700,
                          "parse error: the body is not valid JSON");
    if (!cJSON_IsObject(msg))
        return send_error(c, MHD_HTTP_BAD_REQUEST, NULL, -32600,
                          "invalid request: expected one JSON-RPC object (batches are not "
                          "supported)");
    const char *method = cm_json_str(msg, "method");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    if (method && !strcmp(method, "initialize") && !header(c, "Mcp-Session-Id")) {
        cm_error err;
        r->session = cm_http_session_new(r->h, who, &err);
        if (!r->session)
            return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, id, -32000, "%s", err.message);
    } else if (!find_session(r, c, who, &rc)) {
        return rc;
    }
    if (!method || !id)
        return post_notification(r, c, method, cJSON_GetObjectItemCaseSensitive(msg, "params"));
    return post_request(r, c, msg, method);
}

static enum MHD_Result handle_get(http_req *r, struct MHD_Connection *c, const struct ucred *who)
{
    enum MHD_Result rc;
    const char *accept = header(c, MHD_HTTP_HEADER_ACCEPT);
    if (!accept || (!strstr(accept, "text/event-stream") && !strstr(accept, "*/*")))
        return send_error(c, MHD_HTTP_NOT_ACCEPTABLE, NULL, -32000,
                          "GET opens an SSE stream: send Accept: text/event-stream");
    if (!find_session(r, c, who, &rc))
        return rc;
    const char *last = header(c, MHD_HTTP_HEADER_LAST_EVENT_ID);
    int no;
    size_t idx;
    if (last) {
        http_stream *st = sscanf(last, "%d-%zu", &no, &idx) == 2
                              ? cm_http_stream_find(r->h, r->session, no)
                              : NULL;
        if (!st)
            return send_error(c, MHD_HTTP_NOT_FOUND, NULL, -32000,
                              "Last-Event-ID %.60s: no such stream in this session (its answer "
                              "was delivered or it expired)",
                              last);
        return send_stream(r, c, st, idx + 1);
    }
    http_stream *st = cm_http_stream_standalone(r->h, r->session);
    if (!st)
        return send_error(c, MHD_HTTP_CONFLICT, NULL, -32000,
                          "this session already has its GET stream open");
    return send_stream(r, c, st, 0);
}

static enum MHD_Result route(http_req *r, struct MHD_Connection *c, const char *url,
                             const char *method)
{
    cm_http *h = r->h;
    enum MHD_Result rc;
    if (h->cfg.oauth && !strcmp(method, "GET") &&
        !strncmp(url, "/.well-known/oauth-protected-resource", 37)) {
        cm_autofree char *doc = cm_http_oauth_metadata(h->cfg.oauth);
        return send_body(c, MHD_HTTP_OK, "application/json", doc, NULL, NULL);
    }
    if (strcmp(url, CM_HTTP_PATH) != 0)
        return send_body(c, MHD_HTTP_NOT_FOUND, "text/plain",
                         "not found: the MCP endpoint is " CM_HTTP_PATH "\n", NULL, NULL);
    if (!cm_http_host_ok(&h->cfg, header(c, MHD_HTTP_HEADER_HOST)) ||
        !cm_http_origin_ok(&h->cfg, header(c, MHD_HTTP_HEADER_ORIGIN))) {
        cm_log("warn", "http: refused Host %.80s Origin %.80s (DNS rebinding protection)",
               header(c, MHD_HTTP_HEADER_HOST) ?: "-", header(c, MHD_HTTP_HEADER_ORIGIN) ?: "-");
        return send_error(c, MHD_HTTP_FORBIDDEN, NULL, -32000,
                          "Host or Origin not allowed: this server answers loopback names and "
                          "engine.http.allowed_hosts / allowed_origins only");
    }
    const char *pv = header(c, "MCP-Protocol-Version");
    if (pv && !version_ok(pv))
        return send_error(c, MHD_HTTP_BAD_REQUEST, NULL, -32000,
                          "unsupported MCP-Protocol-Version %.40s (2025-11-25, 2025-06-18, "
                          "2025-03-26 and 2024-11-05 are)",
                          pv);
    struct ucred who;
    if (authenticate(h, c, &who, &rc) < 0)
        return rc;
    if (!strcmp(method, "POST"))
        return handle_post(r, c, &who);
    if (!strcmp(method, "GET"))
        return handle_get(r, c, &who);
    if (!strcmp(method, "DELETE")) {
        if (!find_session(r, c, &who, &rc))
            return rc;
        cm_http_session_end(h, r->session);
        return send_body(c, MHD_HTTP_OK, "application/json", "", NULL, NULL);
    }
    return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, -32000,
                      "method %.20s not allowed: POST, GET or DELETE", method);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    (void)version;
    cm_http *h = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = cm_xcalloc(1, sizeof *r);
        r->h = h;
        *con_cls = r;
        return MHD_YES;
    }
    if (*data_size) {
        cm_error err;
        if (r->body.len + *data_size > h->eng->cfg.max_request_bytes)
            r->too_big = true;
        else if (cm_buf_append(&r->body, data, *data_size, &err) < 0)
            r->too_big = true;
        *data_size = 0;
        return MHD_YES;
    }
    return route(r, c, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    cm_http *h = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    if (r->reader.st) {
        if (r->reader.delivered)
            cm_http_stream_done(h, r->reader.st);
        cm_http_stream_unref(r->reader.st);
    }
    if (r->session)
        cm_http_session_put(h, r->session);
    cm_buf_free(&r->reader.pending);
    cm_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    cm_log("warn", "http: %s", msg);
}

int cm_http_new(cm_engine *eng, const char *listen_override, cm_http **out, cm_error *err)
{
    *out = NULL;
    if (!listen_override && !eng->cfg.http)
        return 0;
    cm_http *h = cm_xcalloc(1, sizeof *h);
    h->eng = eng;
    pthread_mutex_init(&h->lock, NULL);
    if (cm_http_config_load(eng->cfg.http, listen_override, &h->cfg, err) < 0) {
        cm_http_free(h);
        return -1;
    }
    if (!h->cfg.ntokens && !h->cfg.anonymous)
        cm_log("warn", "http: no engine.http.tokens and no engine.http.anonymous: every request "
                       "will get 401");
    *out = h;
    return 0;
}

int cm_http_start(cm_http *h, cm_error *err)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (h->cfg.addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&h->cfg.addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)h->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (!h->daemon)
        return cm_error_sys(err, CM_ERR_IO,
                            "http: cannot listen on %s (in use? pick another port with --http)",
                            h->cfg.listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    char host[64] = "";
    const char *colon = strrchr(h->cfg.listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - h->cfg.listen), h->cfg.listen);
    cm_log("info", "http: serving MCP on http://%s:%u%s (%zu tokens%s)", host,
           info ? info->port : 0, CM_HTTP_PATH, h->cfg.ntokens,
           h->cfg.anonymous ? ", anonymous allowed" : "");
    return 0;
}

void cm_http_free(cm_http *h)
{
    if (!h)
        return;
    cm_http_sessions_end_all(h); /* streams end: their readers return */
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    cm_http_config_free(&h->cfg);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
