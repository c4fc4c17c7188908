/* mcp_session_http.c — the streamable HTTP transport of an MCP session: one
 * POST per message through http_client.c (egress rules, deadline, cancel),
 * answers as JSON or an SSE stream, the Mcp-Session-Id captured at
 * initialize and sent back, 404 → the session expired, DELETE at close.
 *
 * Why its own file: libcurl and SSE parsing are this transport's alone; the
 * stdio transport (mcp_session_stdio.c) shares none of it. */
#include <string.h>

#include "http_client.h"
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

/* Finds the answer to `id` in a JSON or SSE body; the progress and log
 * notifications before it go to the caller's notes. */
static cJSON *find_answer(const cm_http_resp *r, int64_t id, const cm_call_ctx *ctx)
{
    const char *body = r->body.data ? r->body.data : "";
    bool sse = r->content_type && strstr(r->content_type, "text/event-stream");
    if (!sse) {
        cJSON *j = cJSON_Parse(body);
        if (cJSON_IsArray(j)) {
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
        return j;
    }
    /* SSE: events separated by blank lines; data lines joined by \n */
    cm_buf data = {0};
    cm_error ignored;
    cJSON *found = NULL;
    const char *p = body;
    while (!found) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        size_t l = len && p[len - 1] == '\r' ? len - 1 : len;
        if (l == 0 || !eol) {
            if (!eol && l > 5 && !strncmp(p, "data:", 5))
                cm_buf_append(&data, p + 5 + (p[5] == ' '), l - 5 - (p[5] == ' '), &ignored);
            if (data.len) {
                cJSON *j = cJSON_ParseWithLength(data.data, data.len);
                const cJSON *eid = cJSON_GetObjectItemCaseSensitive(j, "id");
                if (cJSON_IsNumber(eid) && (int64_t)eid->valuedouble == id &&
                    !cJSON_GetObjectItemCaseSensitive(j, "method")) {
                    found = j;
                } else {
                    cm_mcp_note_for(ctx, j, id);
                    cJSON_Delete(j);
                }
            }
            cm_buf_free(&data);
            data = (cm_buf){0};
        } else if (l >= 5 && !strncmp(p, "data:", 5)) {
            if (data.len)
                cm_buf_append(&data, "\n", 1, &ignored);
            size_t skip = 5 + (l > 5 && p[5] == ' ');
            cm_buf_append(&data, p + skip, l - skip, &ignored);
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    cm_buf_free(&data);
    return found;
}

int cm_mcp_http_exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                         const cm_call_ctx *ctx, cJSON **answer, cm_error *err)
{
    const char *url = cm_json_str(s->cfg, "url");
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    pthread_mutex_lock(&s->lock);
    int64_t id = notify ? 0 : ++s->next_id;
    cm_autofree char *sid = s->session_id ? cm_xstrdup(s->session_id) : NULL;
    char proto[sizeof s->proto];
    memcpy(proto, s->proto, sizeof proto);
    pthread_mutex_unlock(&s->lock);
    if (!notify) {
        cJSON_AddNumberToObject(msg, "id", (double)id);
        cm_mcp_progress_token(method, params, id);
    }
    cJSON_AddStringToObject(msg, "method", method);
    if (params)
        cJSON_AddItemReferenceToObject(msg, "params", params);
    cm_autofree char *body = cm_json_print(msg);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json, text/event-stream");
    char line[256];
    if (sid) {
        snprintf(line, sizeof line, "Mcp-Session-Id: %.200s", sid);
        h = curl_slist_append(h, line);
    }
    if (proto[0]) {
        snprintf(line, sizeof line, "MCP-Protocol-Version: %s", proto);
        h = curl_slist_append(h, line);
    }
    int rc = header_lines(s->cfg, &h, err);
    cm_http_resp resp = {0};
    if (rc == 0) {
        cm_http_req req = {.method = "POST",
                           .url = url,
                           .headers = h,
                           .body = body,
                           .body_len = strlen(body),
                           .max_bytes = LINE_MAX_BYTES,
                           .deadline_ms = cm_mcp_request_deadline(s, ctx),
                           .cancel = ctx->cancel,
                           .capture_header = "Mcp-Session-Id",
                           .egress = ctx->egress};
        rc = cm_http_perform(s->p, &req, &resp, err);
    }
    curl_slist_free_all(h);
    if (rc < 0) {
        cm_http_resp_free(&resp);
        return cm_error_prefix(err, "MCP server '%s'", s->server);
    }
    if (resp.status == 404 && sid) {
        cm_http_resp_free(&resp);
        return RETRY_EXPIRED;
    }
    if (resp.status >= 400) {
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': HTTP status %ld: %.300s",
                          s->server, resp.status, resp.body.data ? resp.body.data : "");
        cm_http_resp_free(&resp);
        return rc;
    }
    if (!strcmp(method, "initialize") && resp.captured) {
        pthread_mutex_lock(&s->lock);
        free(s->session_id);
        s->session_id = cm_steal_ptr(&resp.captured);
        pthread_mutex_unlock(&s->lock);
    }
    if (!notify && !(*answer = find_answer(&resp, id, ctx)))
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': no answer to request %lld",
                          s->server, (long long)id);
    cm_http_resp_free(&resp);
    return rc;
}

void cm_mcp_delete_http_session(cm_mcp_session *s)
{
    if (!s->session_id)
        return;
    char line[256];
    snprintf(line, sizeof line, "Mcp-Session-Id: %.200s", s->session_id);
    struct curl_slist *h = curl_slist_append(NULL, line);
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
