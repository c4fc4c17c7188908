/* mcp_session.c — long-lived MCP client sessions: one per (manual, server),
 * over stdio (a child process speaking newline-delimited JSON-RPC, read by
 * one reader thread) or streamable HTTP (POST per message, JSON or SSE
 * answers, Mcp-Session-Id, re-initialize on 404).
 *
 * Why it exists: MCP servers are stateful and slow to start; a session is
 * initialized once, shared by every call (requests are matched to answers
 * by id, so calls overlap), failed calls never hang the engine (deadline
 * and cancel are polled), a crashed server fails its in-flight calls and is
 * restarted with backoff, and closing a manual or the engine leaves no
 * process behind.
 *
 * This file owns a session's life: start-up (spawn or not, initialize
 * handshake, protocol version), the blocking request with one retry on an
 * expired HTTP session, and closing.  The transports and the asynchronous
 * requests are files of their own (mcp_int.h says which and why). */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "mcp_int.h"
#include "util.h"

const char *const cm_mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

static int exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                    const cm_call_ctx *ctx, cJSON **answer, cm_error *err)
{
    if (s->http)
        return cm_mcp_http_exchange(s, method, params, notify, ctx, answer, err);
    return cm_mcp_stdio_exchange(s, method, params, notify, ctx, answer, err);
}

/* Request → result, JSON-RPC errors mapped. */
static int rpc(cm_mcp_session *s, const char *method, cJSON *params, const cm_call_ctx *ctx,
               cJSON **result, cm_error *err)
{
    cm_autojson cJSON *answer = NULL;
    int rc = exchange(s, method, params, false, ctx, &answer, err);
    if (rc != 0)
        return rc;
    return cm_mcp_answer_to_result(s, method, answer, result, err);
}

static bool version_supported(const char *v)
{
    for (int i = 0; v && cm_mcp_versions[i]; i++)
        if (!strcmp(v, cm_mcp_versions[i]))
            return true;
    return false;
}

static int handshake(cm_mcp_session *s, const cm_call_ctx *ctx, cm_error *err)
{
    cm_autojson cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "protocolVersion", cm_mcp_versions[0]);
    /* answered by cm_mcp_client_reply (stdio: the reader thread; HTTP: on
       the answer stream as it arrives): roots are empty, sampling is
       refused, elicitation declined; declared so a server shows the tools
       that ask for them */
    cJSON *caps = cJSON_AddObjectToObject(params, "capabilities");
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(caps, "roots"), "listChanged", 0);
    cJSON_AddObjectToObject(caps, "sampling");
    cJSON_AddObjectToObject(caps, "elicitation");
    cJSON *ci = cJSON_AddObjectToObject(params, "clientInfo");
    cJSON_AddStringToObject(ci, "name", "codemode");
    cJSON_AddStringToObject(ci, "version", "0.1.0");
    cm_autojson cJSON *res = NULL;
    int rc = rpc(s, "initialize", params, ctx, &res, err);
    if (rc != 0)
        return rc < 0 ? -1 : cm_error_set(err, CM_ERR_TOOL_ERROR, "initialize: session expired");
    const char *v = cm_json_str(res, "protocolVersion");
    if (!version_supported(v))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "MCP server '%s' speaks protocol '%s'; this client speaks 2025-11-25, "
                            "2025-06-18, 2025-03-26",
                            s->server, v ? v : "(none)");
    pthread_mutex_lock(&s->lock);
    snprintf(s->proto, sizeof s->proto, "%s", v);
    pthread_mutex_unlock(&s->lock);
    cJSON *none = NULL;
    return exchange(s, "notifications/initialized", NULL, true, ctx, &none, err) < 0 ? -1 : 0;
}

static int ensure_ready(cm_mcp_session *s, const cm_call_ctx *ctx, cm_error *err)
{
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (s->closing) {
            pthread_mutex_unlock(&s->lock);
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': manual was removed",
                                s->server);
        }
        if (s->state == S_READY) {
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        if (s->state == S_STARTING) {
            if (cm_mcp_check_wait(s, ctx, err) < 0) {
                pthread_mutex_unlock(&s->lock);
                return -1;
            }
            cm_mcp_wait_ms(s, 100);
            continue;
        }
        int64_t wait = s->restart_at_ms - cm_now_ms();
        if (wait > 0) {
            pthread_mutex_unlock(&s->lock);
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s; restarting in %lld ms",
                                s->server, s->last_exit[0] ? s->last_exit : "failed",
                                (long long)wait);
        }
        s->state = S_STARTING;
        s->proto[0] = '\0';
        free(s->session_id);
        s->session_id = NULL;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    int rc = s->http ? 0 : cm_mcp_start_stdio(s, err);
    if (rc == 0)
        rc = handshake(s, ctx, err);
    pthread_mutex_lock(&s->lock);
    if (rc == 0 && !s->closing && s->state == S_STARTING) {
        s->state = S_READY;
        s->started_ms = cm_now_ms();
        if (s->http)
            cm_mcp_http_listen_start(s); /* under the lock: one starter at a time */
    } else {
        if (rc == 0)
            rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s during start-up",
                              s->server, s->last_exit[0] ? s->last_exit : "exited");
        if (s->state == S_STARTING)
            cm_mcp_fail_all_locked(s, err->message);
        if (!s->http && s->pid_alive)
            cm_providers_signal(s->p, s->pid, SIGKILL); /* the reader reaps it */
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return rc < 0 ? cm_error_prefix(err, "starting MCP server '%s'", s->server) : 0;
}

/* HTTP session gone (404): forget it so the next ensure_ready
 * re-initializes (not a crash: no backoff). */
static void expire_session(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->state == S_READY)
        s->state = S_NEW;
    pthread_mutex_unlock(&s->lock);
}

int cm_mcp_request(cm_providers *p, const char *manual, const char *server, const cJSON *server_cfg,
                   const char *base_dir, const char *method, cJSON *params, const cm_call_ctx *ctx,
                   cJSON **result, cm_error *err)
{
    if (!p)
        return cm_error_set(err, CM_ERR_INTERNAL, "mcp: no provider context");
    cm_mcp_session *s = cm_mcp_session_get(p, manual, server, server_cfg, base_dir);
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure_ready(s, ctx, err) < 0) {
            rc = -1;
            break;
        }
        rc = rpc(s, method, params, ctx, result, err);
        if (rc != RETRY_EXPIRED)
            break;
        expire_session(s);
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': session expired twice", server);
    }
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        if (cm_now_ms() - s->started_ms > 5000)
            s->crashes = 0;
        pthread_mutex_unlock(&s->lock);
    }
    cm_mcp_session_put(s);
    return rc;
}

static void session_close(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    cm_mcp_fail_all_locked(s, "was closed");
    pthread_mutex_unlock(&s->lock);
    if (s->http) {
        cm_mcp_http_listen_stop(s);
        cm_mcp_delete_http_session(s);
    } else {
        cm_mcp_stop_stdio(s);
    }
    cm_providers_release_ids(s->p, &s->ids, NULL); /* kills what the server left running */
    pthread_mutex_lock(&s->lock);
    while (s->refs > 0)
        cm_mcp_wait_ms(s, 50);
    pthread_mutex_unlock(&s->lock);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->manual);
    free(s->server);
    free(s->base_dir);
    free(s->session_id);
    cm_mcp_oauth_free(s->oauth);
    cJSON_Delete(s->cfg);
    free(s);
}

void cm_mcp_sessions_close(cm_providers *p, const char *manual_name)
{
    cm_mcp_session *doomed = NULL;
    pthread_mutex_lock(&p->lock);
    for (cm_mcp_session **pp = &p->sessions; *pp;) {
        cm_mcp_session *s = *pp;
        if (!manual_name || !strcmp(s->manual, manual_name)) {
            *pp = s->next;
            s->next = doomed;
            doomed = s;
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&p->lock);
    while (doomed) {
        cm_mcp_session *s = doomed;
        doomed = s->next;
        session_close(s);
    }
}
