/* rpc.c — JSON-RPC 2.0 with MCP's method vocabulary (initialize, ping,
 * tools/list, tools/call) plus engine-only `codemode/` methods.  Parses and
 * validates each request line, answers cheap methods inline and hands slow
 * tools (chains, manual registration) to the worker pool. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "authority.h"
#include "jobs.h"
#include "jsonrpc.h"
#include "jsonscan.h"
#include "rpc.h"
#include "server.h"
#include "reload.h"
#include "session.h"
#include "tools.h"

static const char *const supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                                 "2024-11-05"};

static cJSON *initialize_result(const cJSON *params)
{
    const char *asked = cm_json_str(params, "protocolVersion");
    const char *version = supported_versions[0];
    for (size_t i = 0; asked && i < sizeof supported_versions / sizeof *supported_versions; i++)
        if (strcmp(asked, supported_versions[i]) == 0)
            version = supported_versions[i];
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "protocolVersion", version);
    cJSON *caps = cJSON_AddObjectToObject(r, "capabilities");
    cJSON *tools = cJSON_AddObjectToObject(caps, "tools");
    cJSON_AddBoolToObject(tools, "listChanged", 0);
    cJSON_AddObjectToObject(caps, "logging");
    cJSON *info = cJSON_AddObjectToObject(r, "serverInfo");
    cJSON_AddStringToObject(info, "name", "codemode");
    cJSON_AddStringToObject(info, "version", CM_VERSION);
    cJSON_AddStringToObject(
        r, "instructions",
        "Call call_tool_chain with Python code (the body of an async function: top-level await "
        "and return work). Registered tools are manual.tool(**kwargs); use search_tools and "
        "tools_info to discover them.");
    return r;
}

static cJSON *metrics_result(cm_engine *eng)
{
    cm_buf text = {0};
    cm_error err;
    cJSON *r = cJSON_CreateObject();
    if (cm_engine_metrics_text(eng, &text, &err) < 0)
        cJSON_AddStringToObject(r, "error", err.message);
    else
        cJSON_AddStringToObject(r, "text", text.data ? text.data : "");
    cJSON_AddStringToObject(r, "content_type", "text/plain; version=0.0.4");
    cm_buf_free(&text);
    return r;
}

static bool valid_id(const cJSON *id)
{
    return cJSON_IsString(id) || cJSON_IsNumber(id);
}

/* A numeric id is echoed as the client wrote it (cJSON holds a double:
 * 2^64, -0 or 1e3 would come back changed).  The raw token replaces the
 * parsed one when both denote the same number. */
static const cJSON *exact_id(cJSON *req, const cJSON *id, const char *line, size_t len)
{
    const char *start;
    size_t n;
    if (!cJSON_IsNumber(id) || !cm_json_member_span(line, len, "id", &start, &n) || n > 64)
        return id;
    char raw[65];
    memcpy(raw, start, n);
    raw[n] = '\0';
    cm_autojson cJSON *again = cJSON_Parse(raw);
    if (!cJSON_IsNumber(again) || again->valuedouble != id->valuedouble)
        return id;
    cJSON_ReplaceItemInObjectCaseSensitive(req, "id", cJSON_CreateRaw(raw));
    return cJSON_GetObjectItemCaseSensitive(req, "id");
}

/* C strings end at NUL: a \u0000 anywhere would silently cut a chain's code
 * or an argument, so the request is refused instead. */
static bool refuse_nul(cm_conn *conn, const char *method, const cJSON *id)
{
    static const char msg[] = "a string in the request contains a NUL character (\\u0000); "
                              "code and arguments must be text without NUL";
    if (!strcmp(method, "tools/call"))
        cm_conn_answer(conn, id, cm_tool_result_error(CM_ERR_INVALID_REQUEST, msg));
    else if (id)
        cm_conn_send(conn, cm_rpc_error(id, -32602, msg));
    return true;
}

static void handle_tools_call(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    const char *name = cm_json_str(params, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
    if (!name) {
        cm_conn_send(conn, cm_rpc_error(id, -32602, "tools/call: params.name must be a string"));
        return;
    }
    if (args && !cJSON_IsObject(args) && !cJSON_IsNull(args)) {
        cm_conn_send(conn,
                     cm_rpc_error(id, -32602, "tools/call: params.arguments must be an object"));
        return;
    }
    const cm_tool_def *def = cm_tools_find(name);
    if (!def) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown tool '%.200s'", name);
        cm_conn_answer(conn, id, cm_tool_result_error(CM_ERR_INVALID_REQUEST, msg));
        return;
    }
    if (!def->slow) {
        cm_conn_answer(conn, id, def->run(eng, conn, id, params));
        return;
    }
    cm_error err;
    if (atomic_load(&conn->inflight) >= eng->cfg.client_queue_max) {
        atomic_fetch_add(&eng->stats.busy_rejections, 1);
        cm_error_set(&err, CM_ERR_BUSY,
                     "client busy: %d requests of this connection already "
                     "queued or running (engine.client_queue_max)",
                     eng->cfg.client_queue_max);
        cm_conn_answer(conn, id, cm_tool_result_error(err.kind, err.message));
        return;
    }
    if (cm_jobs_submit(eng->jobs, def->run, conn, id, params, &err) < 0) {
        atomic_fetch_add(&eng->stats.busy_rejections, 1);
        cm_conn_answer(conn, id, cm_tool_result_error(err.kind, err.message));
    }
}

/* logging/setLevel: chain log lines at or above the level are streamed to
 * this connection as notifications/message. */
static void set_log_level(cm_conn *conn, const cJSON *id, const cJSON *params)
{
    int level = cm_agent_log_level(cm_json_str(params, "level"));
    if (level < 0) {
        if (id)
            cm_conn_send(conn, cm_rpc_error(id, -32602,
                                            "logging/setLevel: level must be one of debug, info, "
                                            "notice, warning, error, critical, alert, emergency"));
        return;
    }
    atomic_store(&conn->log_level, level + 1);
    cm_conn_answer(conn, id, cJSON_CreateObject());
}

/* Engine methods past chains and queries need a grant (authority.h):
 * refused with -32001 naming the rule, audited and logged. */
static bool method_allowed(cm_engine *eng, cm_conn *conn, const cJSON *id, cm_action a)
{
    cm_caller c;
    cm_error err;
    int rc = cm_caller_begin(eng->policy, &conn->peer, &c, &err);
    if (rc == 0)
        rc = cm_caller_may(&c, a, &err);
    cm_caller_end(&c);
    if (rc == 0)
        return true;
    cm_log("warn", "refused uid %ld: %s", (long)conn->peer.uid, err.message);
    if (id)
        cm_conn_send(conn, cm_rpc_error(id, -32001, err.message));
    return false;
}

static void reload(cm_engine *eng, cm_conn *conn, const cJSON *id)
{
    cm_error err;
    cJSON *r = cm_policy_reload_result(eng, &err);
    if (r)
        cm_conn_answer(conn, id, r);
    else if (id)
        cm_conn_send(conn, cm_rpc_error(id, -32002, err.message));
}

static void dispatch(cm_engine *eng, cm_conn *conn, const char *method, const cJSON *id,
                     const cJSON *params)
{
    if (strcmp(method, "initialize") == 0) {
        cm_conn_answer(conn, id, initialize_result(params));
    } else if (strcmp(method, "ping") == 0) {
        cm_conn_answer(conn, id, cJSON_CreateObject());
    } else if (strcmp(method, "notifications/cancelled") == 0) {
        /* a running chain with that id stops and sends no answer; an id that
           finished already (or never ran) is ignored, as the spec says */
        if (cm_conn_cancel(conn, cJSON_GetObjectItemCaseSensitive(params, "requestId")))
            cm_log("info", "request %s cancelled by the client",
                   cm_json_str(params, "reason") ? cm_json_str(params, "reason") : "(no reason)");
    } else if (strncmp(method, "notifications/", 14) == 0) {
        /* initialized, ...: nothing to answer */
    } else if (strcmp(method, "tools/list") == 0) {
        cm_conn_answer(conn, id, cm_tools_list());
    } else if (strcmp(method, "tools/call") == 0) {
        handle_tools_call(eng, conn, id, params);
    } else if (strcmp(method, "logging/setLevel") == 0) {
        set_log_level(conn, id, params);
    } else if (strcmp(method, "codemode/stats") == 0) {
        if (method_allowed(eng, conn, id, CM_ACT_STATS))
            cm_conn_answer(conn, id, cm_engine_stats_json(eng));
    } else if (strcmp(method, "codemode/health") == 0) {
        if (method_allowed(eng, conn, id, CM_ACT_HEALTH))
            cm_conn_answer(conn, id, cm_engine_health_json(eng));
    } else if (strcmp(method, "codemode/metrics") == 0) {
        if (method_allowed(eng, conn, id, CM_ACT_METRICS))
            cm_conn_answer(conn, id, metrics_result(eng));
    } else if (strcmp(method, "codemode/reload") == 0) {
        if (method_allowed(eng, conn, id, CM_ACT_RELOAD))
            reload(eng, conn, id);
    } else if (id) {
        char msg[300];
        snprintf(msg, sizeof msg, "method not found: %.200s", method);
        cm_conn_send(conn, cm_rpc_error(id, -32601, msg));
    }
}

void cm_rpc_handle_line(cm_engine *eng, cm_conn *conn, const char *line, size_t len)
{
    atomic_fetch_add(&eng->stats.requests, 1);
    if (len && line[len - 1] == '\r')
        len--;
    if (!cm_utf8_valid(line, len)) {
        cm_conn_send(conn, cm_rpc_error(NULL, -32700, "parse error: request is not valid UTF-8"));
        return;
    }
    const char *end = NULL;
    cm_autojson cJSON *req = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!req) {
        cm_conn_send(conn, cm_rpc_error(NULL, -32700, "parse error: request is not valid JSON"));
        return;
    }
    if (!cJSON_IsObject(req)) {
        cm_conn_send(conn, cm_rpc_error(NULL, -32600,
                                        "invalid request: expected one JSON-RPC object "
                                        "(batches are not supported)"));
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (id && !valid_id(id)) {
        cm_conn_send(conn, cm_rpc_error(NULL, -32600,
                                        "invalid request: id must be a string or "
                                        "number"));
        return;
    }
    id = exact_id(req, id, line, len);
    const char *method = cm_json_str(req, "method");
    const char *version = cm_json_str(req, "jsonrpc");
    if (!version || strcmp(version, "2.0") != 0 || !method) {
        if (id || !method)
            cm_conn_send(conn, cm_rpc_error(id, -32600,
                                            "invalid request: need jsonrpc \"2.0\" and a method"));
        return;
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
    if (params && !cJSON_IsObject(params)) {
        if (id)
            cm_conn_send(conn, cm_rpc_error(id, -32602, "invalid params: must be an object"));
        return;
    }
    if (atomic_load(&eng->stopping) && strcmp(method, "ping") != 0 &&
        strcmp(method, "codemode/health") != 0) {
        if (id)
            cm_conn_send(conn, cm_rpc_error(id, -32000, "engine is shutting down"));
        return;
    }
    if (cm_json_has_nul_escape(line, len) && refuse_nul(conn, method, id))
        return;
    char profile[256];
    cm_error err;
    if (strcmp(method, "ping") != 0 &&
        cm_policy_store_peer_profile(eng->policy, &conn->peer, profile, sizeof profile, &err) < 0) {
        if (id)
            cm_conn_send(conn, cm_rpc_error(id, -32001, err.message));
        return;
    }
    dispatch(eng, conn, method, id, params);
}
