/* tools.c — the engine's MCP tools other than call_tool_chain (which lives in
 * chain.c): manual registration and tool discovery.  Shapes follow the Code
 * Mode MCP bridge so existing clients work unchanged. */
#include "tools.h"

#include <string.h>

#include "agent.h"
#include "authority.h"
#include "jobs.h"
#include "jsonrpc.h"
#include "pctx.h"

/* list_tools' page when the caller names none. */
#define CM_LIST_PAGE 100

static cJSON *args_of(const cJSON *params)
{
    return cJSON_GetObjectItemCaseSensitive(params, "arguments");
}

static cJSON *error_result(const cm_error *err)
{
    return cm_tool_result_error(err->kind, err->message);
}

/* The request's caller (policies/authority.h); false with *refused set to
 * the answer when it cannot be resolved. */
static bool begin_caller(cm_engine *eng, cm_conn *conn, cm_caller *c, cJSON **refused)
{
    cm_error err;
    if (cm_caller_begin(eng->policy, &conn->peer, c, &err) == 0)
        return true;
    *refused = error_result(&err);
    return false;
}

/* A refused control-plane request is logged as well as audited: without a
 * policy there is no audit log, and an operator should see attempts. */
static cJSON *refusal_result(const cm_conn *conn, const cm_error *err)
{
    if (err->kind == CM_ERR_POLICY_DENIED)
        cm_log("warn", "refused uid %ld: %s", (long)conn->peer.uid, err->message);
    return error_result(err);
}

static cJSON *tool_register_manual(cm_engine *eng, cm_conn *conn, const cJSON *id,
                                   const cJSON *params)
{
    (void)id;
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(args_of(params), "manual_call_template");
    cm_error err;
    if (!cJSON_IsObject(tmpl)) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST,
                     "register_manual: manual_call_template must be an object");
        return error_result(&err);
    }
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    cJSON *report = NULL;
    int rc = cm_engine_register_manual(eng, tmpl, &c, &report, &err);
    cm_caller_end(&c);
    if (rc < 0) {
        return refusal_result(conn, &err);
    }
    cJSON_AddBoolToObject(report, "success", 1);
    return cm_tool_result(report, false);
}

/* Own manuals with the deregister grant; the config's and other tenants'
 * only with manage_all.  A manual the caller cannot see is "not found". */
static int deregister(cm_engine *eng, const cm_caller *c, const char *name, cm_error *err)
{
    if (cm_caller_may(c, CM_ACT_DEREGISTER, err) < 0)
        return -1;
    cm_autofree char *owner = NULL;
    bool exists = cm_registry_owner(eng->registry, name, &owner);
    bool all = cm_caller_sees_all(c);
    if (exists && !owner && !all && cm_caller_may(c, CM_ACT_MANAGE_ALL, err) < 0)
        return cm_error_prefix(err, "manual '%s' belongs to the engine config", name);
    cm_registry_view v = {.owner = cm_caller_owner(c), .all = all};
    return cm_registry_remove(eng->registry, &v, name, err);
}

static cJSON *tool_deregister_manual(cm_engine *eng, cm_conn *conn, const cJSON *id,
                                     const cJSON *params)
{
    (void)id;
    const char *name = cm_json_str(args_of(params), "manual_name");
    cm_error err;
    if (!name) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST,
                     "deregister_manual: manual_name must be a "
                     "string");
        return error_result(&err);
    }
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    int rc = deregister(eng, &c, name, &err);
    cm_caller_end(&c);
    if (rc < 0) {
        return refusal_result(conn, &err);
    }
    cm_providers_release_manual(eng->providers, name);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddBoolToObject(s, "success", 1);
    cJSON_AddStringToObject(s, "manual_name", name);
    return cm_tool_result(s, false);
}

/* An optional integer argument in [lo, hi]; false when present and not. */
static bool int_arg(const cJSON *args, const char *key, int lo, int hi, int dflt, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    *out = dflt;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        v->valuedouble != (double)(int)v->valuedouble)
        return false;
    *out = v->valueint;
    return true;
}

/* Names, a page at a time (issue 20: 1,223 GitHub names are 12k tokens):
 * {tools: [...], total, next_offset (when more follow)}. */
static cJSON *tool_list_tools(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)id;
    int offset, limit;
    if (!int_arg(args_of(params), "offset", 0, 1 << 30, 0, &offset) ||
        !int_arg(args_of(params), "limit", 1, 1000, CM_LIST_PAGE, &limit)) {
        cm_error err;
        cm_error_set(&err, CM_ERR_INVALID_REQUEST,
                     "list_tools: offset must be an integer >= 0 and limit one in 1..1000 "
                     "(default %d)",
                     CM_LIST_PAGE);
        return error_result(&err);
    }
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    cm_registry_view v = cm_agent_view(c.profile);
    cJSON *all = cm_registry_access_names(eng->registry, &v);
    cm_caller_end(&c);
    int total = cJSON_GetArraySize(all);
    cJSON *s = cJSON_CreateObject(), *page = cJSON_AddArrayToObject(s, "tools");
    for (int i = offset; i < total && i < offset + limit; i++)
        cJSON_AddItemToArray(page, cJSON_CreateString(cJSON_GetArrayItem(all, i)->valuestring));
    cJSON_AddNumberToObject(s, "total", total);
    if (offset + limit < total)
        cJSON_AddNumberToObject(s, "next_offset", offset + limit);
    cJSON_Delete(all);
    return cm_tool_result(s, false);
}

static cJSON *tool_search_tools(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)id;
    const cJSON *args = args_of(params);
    const char *query = cm_json_str(args, "task_description");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(args, "limit");
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(args, "detail");
    cm_error err;
    if (!query) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST,
                     "search_tools: task_description must be a string");
        return error_result(&err);
    }
    if (strlen(query) > CM_SEARCH_MAX_QUERY) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST,
                     "search_tools: task_description is %zu bytes, over the limit of %d",
                     strlen(query), CM_SEARCH_MAX_QUERY);
        return error_result(&err);
    }
    if (limit && (!cJSON_IsNumber(limit) || limit->valuedouble < 1 || limit->valuedouble > 1000)) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST, "search_tools: limit must be 1..1000");
        return error_result(&err);
    }
    bool full = cJSON_IsString(detail) && !strcmp(detail->valuestring, "full");
    if (detail && !cJSON_IsNull(detail) && !full &&
        !(cJSON_IsString(detail) && !strcmp(detail->valuestring, "summary"))) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST,
                     "search_tools: detail must be \"summary\" (the default: access name, "
                     "signature, first sentence) or \"full\" (inputs and outputs schemas)");
        return error_result(&err);
    }
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddItemToObject(
        s, "tools", cm_agent_search(eng, c.profile, query, limit ? limit->valueint : 10, full));
    cm_caller_end(&c);
    return cm_tool_result(s, false);
}

static cJSON *tool_tools_info(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)id;
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(args_of(params), "tool_names");
    cm_error err;
    if (!cJSON_IsArray(names)) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST, "tools_info: tool_names must be an array");
        return error_result(&err);
    }
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    cJSON *s = cJSON_CreateObject();
    cJSON *tools = cJSON_AddArrayToObject(s, "tools");
    cJSON *missing = cJSON_AddArrayToObject(s, "not_found");
    const cJSON *n;
    cJSON_ArrayForEach(n, names)
    {
        if (!cJSON_IsString(n))
            continue;
        cJSON *def = NULL;
        char *manual = NULL;
        if (cm_agent_lookup(eng, c.profile, n->valuestring, &def, &manual, NULL, &err) == 0 &&
            cm_agent_tool_visible(c.profile, cm_json_str(def, "name")))
            cJSON_AddItemToArray(tools, def);
        else {
            cJSON_Delete(def);
            cJSON_AddItemToArray(missing, cJSON_CreateString(n->valuestring));
        }
        free(manual);
    }
    cm_caller_end(&c);
    return cm_tool_result(s, false);
}

static cJSON *tool_required_keys(cm_engine *eng, cm_conn *conn, const cJSON *id,
                                 const cJSON *params)
{
    (void)id;
    const char *name = cm_json_str(args_of(params), "tool_name");
    cm_error err;
    if (!name) {
        cm_error_set(&err, CM_ERR_INVALID_REQUEST,
                     "get_required_keys_for_tool: tool_name must be a string");
        return error_result(&err);
    }
    cJSON *def = NULL;
    char *manual = NULL;
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    int rc = cm_agent_lookup(eng, c.profile, name, &def, &manual, NULL, &err);
    cm_caller_end(&c);
    if (rc < 0) {
        return error_result(&err);
    }
    cJSON *s = cJSON_CreateObject();
    cJSON_AddBoolToObject(s, "success", 1);
    cJSON_AddStringToObject(s, "tool_name", cm_json_str(def, "name"));
    cJSON *req = cJSON_AddArrayToObject(s, "required_variables");
    cm_vars_required(cJSON_GetObjectItemCaseSensitive(def, "tool_call_template"), req);
    cJSON_Delete(def);
    free(manual);
    return cm_tool_result(s, false);
}

/* Descriptions are what every agent pays for on each tools/list (issue 20:
 * the whole list stays under 500 tokens); the agent prompt says the rest. */
#define OBJ(props, req) "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "]}"
#define OBJ0(props) "{\"type\":\"object\",\"properties\":{" props "}}"
#define STR(name) "\"" name "\":{\"type\":\"string\"}"
#define INT(name) "\"" name "\":{\"type\":\"integer\"}"

static const cm_tool_def tool_defs[] = {
    /* memory_mb, cpu_quota_pct, pids_max are still taken (chain.c), not advertised: limits
       says the same (timeout_s, memory_mb, cpu, pids, max_tool_calls, max_output_bytes,
       max_result_bytes; README) */
    {"call_tool_chain",
     "Run Python (async function body) in a sandbox; call tools as await manual.tool(k=v).",
     OBJ(STR("code") ",\"timeout\":{\"type\":\"number\",\"description\":\"seconds (30)\"},"
                     "\"limits\":{\"type\":\"object\"}",
         "\"code\""),
     true, false, cm_tool_call_tool_chain},
    {"register_manual", "Register a UTCP manual.",
     OBJ("\"manual_call_template\":{\"type\":\"object\"}", "\"manual_call_template\""), true, false,
     tool_register_manual},
    {"deregister_manual", "Remove a manual.", OBJ(STR("manual_name"), "\"manual_name\""), true,
     false, tool_deregister_manual}, /* slow: closes MCP sessions (stops their servers) */
    {"list_tools", "Tool names, paged.", OBJ0(INT("offset") "," INT("limit")), false, true,
     tool_list_tools},
    {"search_tools", "Rank tools for a task.",
     OBJ(STR("task_description") "," INT("limit") "," STR("detail"), "\"task_description\""), false,
     true, tool_search_tools},
    {"tools_info", "Full definitions of the named tools.",
     OBJ("\"tool_names\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", "\"tool_names\""),
     false, true, tool_tools_info},
    {"get_required_keys_for_tool", "Variables (secrets) a tool needs.",
     OBJ(STR("tool_name"), "\"tool_name\""), false, true, tool_required_keys},
    {"get_all_tools_python_interfaces", "Python interfaces of every tool.", OBJ0(STR("detail")),
     false, true, cm_tool_get_interfaces},
    {"get_tool_interface", "Python interface of one tool.",
     OBJ(STR("tool_name") "," STR("detail"), "\"tool_name\""), false, true,
     cm_tool_get_tool_interface},
    {"agent_prompt", "How to find tools and write chains.", OBJ0(""), false, true,
     cm_tool_agent_prompt},
};

const cm_tool_def *cm_tools_find(const char *name)
{
    for (size_t i = 0; i < sizeof tool_defs / sizeof *tool_defs; i++)
        if (strcmp(tool_defs[i].name, name) == 0)
            return &tool_defs[i];
    return NULL;
}

cJSON *cm_tools_list(void)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(r, "tools");
    for (size_t i = 0; i < sizeof tool_defs / sizeof *tool_defs; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", tool_defs[i].name);
        cJSON_AddStringToObject(t, "description", tool_defs[i].description);
        cJSON_AddItemToObject(t, "inputSchema", cJSON_Parse(tool_defs[i].input_schema));
        if (tool_defs[i].read_only) /* MCP's default is false: said only when true */
            cJSON_AddBoolToObject(cJSON_AddObjectToObject(t, "annotations"), "readOnlyHint", 1);
        cJSON_AddItemToArray(arr, t);
    }
    return r;
}
