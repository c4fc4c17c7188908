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

static cJSON *tool_list_tools(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)id;
    (void)params;
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    cJSON *s = cJSON_CreateObject();
    cm_registry_view v = cm_agent_view(c.profile);
    cJSON_AddItemToObject(s, "tools", cm_registry_access_names(eng->registry, &v));
    cm_caller_end(&c);
    return cm_tool_result(s, false);
}

static cJSON *tool_search_tools(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)id;
    const cJSON *args = args_of(params);
    const char *query = cm_json_str(args, "task_description");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(args, "limit");
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
    cm_caller c;
    cJSON *refused = NULL;
    if (!begin_caller(eng, conn, &c, &refused))
        return refused;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddItemToObject(s, "tools",
                          cm_agent_search(eng, c.profile, query, limit ? limit->valueint : 10));
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

#define OBJ(props, req) "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "]}"

static const cm_tool_def tool_defs[] = {
    {"call_tool_chain",
     "Run Python code in a fresh sandbox. The code is the body of an async function: top-level "
     "await and return work. Every registered tool is callable as manual.tool(**kwargs). "
     "Returns {result, logs, error, stats}.",
     OBJ("\"code\":{\"type\":\"string\",\"description\":\"Python code (async function body)\"},"
         "\"timeout\":{\"type\":\"number\",\"description\":\"seconds, default 30\"},"
         "\"limits\":{\"type\":\"object\",\"description\":\"lower limits for this chain "
         "(timeout_s, memory_mb, cpu, pids, max_tool_calls, max_output_bytes, "
         "max_result_bytes); values above the caller's policy are clamped\"},"
         "\"memory_mb\":{\"type\":\"number\",\"description\":\"lower the memory cap\"},"
         "\"cpu_quota_pct\":{\"type\":\"number\",\"description\":\"lower the CPU quota\"},"
         "\"pids_max\":{\"type\":\"number\",\"description\":\"lower the process cap\"}",
         "\"code\""),
     true, false, cm_tool_call_tool_chain},
    {"register_manual", "Register a UTCP manual (its tools become callable in chains).",
     OBJ("\"manual_call_template\":{\"type\":\"object\"}", "\"manual_call_template\""), true, false,
     tool_register_manual},
    {"deregister_manual", "Remove a registered manual and its tools.",
     OBJ("\"manual_name\":{\"type\":\"string\"}", "\"manual_name\""), true, false,
     tool_deregister_manual}, /* slow: closes MCP sessions (stops their servers) */
    {"list_tools", "List the access names (manual.tool) of all registered tools.", OBJ("", ""),
     false, true, tool_list_tools},
    {"search_tools", "Find tools relevant to a task description, best first.",
     OBJ("\"task_description\":{\"type\":\"string\"},\"limit\":{\"type\":\"integer\","
         "\"default\":10}",
         "\"task_description\""),
     false, true, tool_search_tools},
    {"tools_info", "Full definitions (inputs, outputs, description) of the named tools.",
     OBJ("\"tool_names\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", "\"tool_names\""),
     false, true, tool_tools_info},
    {"get_required_keys_for_tool", "Variables (secrets) a tool needs to be configured.",
     OBJ("\"tool_name\":{\"type\":\"string\"}", "\"tool_name\""), false, true, tool_required_keys},
    {"get_all_tools_python_interfaces",
     "Python 3.11 TypedDict interfaces (valid, importable with typing alone) of every tool a "
     "chain may call, grouped by manual: {interfaces}.",
     OBJ("", ""), false, true, cm_tool_get_interfaces},
    {"get_tool_interface",
     "Python interface of one tool, by UTCP name or access name (manual.tool): {interface}.",
     OBJ("\"tool_name\":{\"type\":\"string\"}", "\"tool_name\""), false, true,
     cm_tool_get_tool_interface},
    {"agent_prompt",
     "The agent prompt template: how to discover tools and write chains for this engine.",
     OBJ("", ""), false, true, cm_tool_agent_prompt},
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
        cJSON *ann = cJSON_AddObjectToObject(t, "annotations");
        cJSON_AddBoolToObject(ann, "readOnlyHint", tool_defs[i].read_only);
        if (tool_defs[i].read_only)
            cJSON_AddBoolToObject(ann, "idempotentHint", 1);
        cJSON_AddItemToArray(arr, t);
    }
    return r;
}
