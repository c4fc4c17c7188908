/* agent.c — the agent-facing surface (see agent.h): which tools are
 * advertised, their Python interfaces, search over them, and the prompt
 * that tells an agent how chains behave here. */
#include "agent.h"
#include "authority.h"
#include "policy.h"

#include <stdio.h>
#include <string.h>

#include "jsonrpc.h"
#include "pyiface.h"
#include "tools.h"
#include "util.h"

/* Teaches the cheapest path first (issue 20: search → signature → one
 * interface → one chain); stays under 600 tokens. */
const char CM_AGENT_PROMPT[] =
    "You run Python through the `call_tool_chain` tool: one chain calls many tools and\n"
    "processes their results, so only what you return comes back.\n"
    "\n"
    "Cheapest path to a tool:\n"
    "1. `search_tools(task_description)` ranks tools: access_name (`manual.tool`), a one-line\n"
    "   signature and a sentence each. Usually enough to write the call.\n"
    "2. For the result's fields or a nested argument, `get_tool_interface(tool_name)`: that\n"
    "   tool's Python TypedDicts (detail \"full\": every nested type; `tools_info`: schemas).\n"
    "3. One chain doing the whole task. Avoid `get_all_tools_python_interfaces` on large\n"
    "   manuals and `list_tools` (names, paged) unless you must browse.\n"
    "Inside a chain the same: `search_tools(query, limit=10)` (list of dicts),\n"
    "`get_tool_interface(name)` (also `__get_tool_interface`), and `interfaces` (also\n"
    "`__interfaces`): an index, one line per tool you may call.\n"
    "\n"
    "Writing the chain:\n"
    "- The code is an async function body: top-level `await` and `return` work.\n"
    "- `await manual.tool(name=value, ...)` with keyword arguments, e.g.\n"
    "  `await github.pulls_list(owner='o', repo='r', state='open')`. Without `await` a call\n"
    "  blocks and gives the value; `asyncio.gather(...)` runs calls concurrently.\n"
    "- `return` a JSON value: it becomes `result` (sets, NaN fail: result_not_serializable).\n"
    "  Return only what you need: filter and summarise inside the chain.\n"
    "- `print(...)` lines become `logs` (kept when the chain fails).\n"
    "- A failed call raises `ToolError` (`.kind`, `.message`, `.tool`); a refused one\n"
    "  `PolicyDenied` (a ToolError). Catch them to recover.\n"
    "- Imports: json, math, asyncio, datetime, time, re, typing, collections, itertools,\n"
    "  functools, operator, uuid, random, string, textwrap, decimal, fractions, statistics,\n"
    "  base64, copy, dataclasses, enum, heapq, bisect. No files, network or subprocesses:\n"
    "  only tools reach outside.\n"
    "\n"
    "Limits: `timeout` (seconds, default 30), caps on output, result size and tool calls.\n"
    "\n"
    "The answer is `{result, logs, error, stats}`; `error` is null or `{kind, message,\n"
    "traceback?}` (kind: syntax, exception, timeout, memory_limit, policy_denied, tool_error,\n"
    "output_limit, result_not_serializable, sandbox_failure, invalid_request, busy). Fix the\n"
    "code from the message and traceback (your line numbers) and retry.\n";

bool cm_agent_tool_visible(const struct cm_policy_profile *prof, const char *utcp_name)
{
    /* the one policy hook: a tool the caller's profile denies is not advertised */
    return cm_policy_tool_advertised(prof, utcp_name);
}

cm_registry_view cm_agent_view(const struct cm_policy_profile *prof)
{
    return (cm_registry_view){
        .owner = prof ? cm_profile_name(prof) : NULL,
        .all = !prof || cm_profile_may(prof, CM_ACT_MANAGE_ALL),
    };
}

int cm_agent_lookup(cm_engine *eng, const struct cm_policy_profile *prof, const char *name,
                    cJSON **tool, char **manual_name, char **owner, cm_error *err)
{
    cm_registry_view v = cm_agent_view(prof);
    return cm_registry_lookup(eng->registry, &v, name, tool, manual_name, owner, err);
}

cJSON *cm_agent_visible_tools(cm_engine *eng, const struct cm_policy_profile *prof)
{
    cm_registry_view v = cm_agent_view(prof);
    cJSON *all = cm_registry_chain_tools(eng->registry, &v);
    cJSON *t = all->child;
    while (t) {
        cJSON *next = t->next;
        const char *n = cm_json_str(t, "name");
        if (!n || !cm_agent_tool_visible(prof, n))
            cJSON_Delete(cJSON_DetachItemViaPointer(all, t));
        t = next;
    }
    return all;
}

cJSON *cm_agent_chain_tools(cm_engine *eng, const struct cm_policy_profile *prof)
{
    cm_registry_view v = cm_agent_view(prof);
    cJSON *all = cm_registry_chain_tools(eng->registry, &v);
    cJSON *t;
    cJSON_ArrayForEach(t, all)
    {
        const char *n = cm_json_str(t, "name");
        cJSON_AddBoolToObject(t, "advertised", n && cm_agent_tool_visible(prof, n));
    }
    return all;
}

static bool tool_visible(const char *utcp_name, void *ctx)
{
    return cm_agent_tool_visible(ctx, utcp_name);
}

char *cm_agent_interfaces(cm_engine *eng, const struct cm_policy_profile *prof, const char *only)
{
    cm_autojson cJSON *tools = cm_agent_visible_tools(eng, prof);
    return cm_pyiface_assemble(tools, only);
}

char *cm_agent_index(cm_engine *eng, const struct cm_policy_profile *prof)
{
    cm_autojson cJSON *tools = cm_agent_visible_tools(eng, prof);
    return cm_pyiface_index(tools);
}

/* One tool's whole interface, generated now (not cached: asked for rarely). */
static char *full_interface(cm_engine *eng, const struct cm_policy_profile *prof, const char *name)
{
    cm_autojson cJSON *def = NULL;
    cm_error err;
    if (cm_agent_lookup(eng, prof, name, &def, NULL, NULL, &err) < 0 ||
        !cm_agent_tool_visible(prof, cm_json_str(def, "name")))
        return NULL;
    const char *access = cm_json_str(def, "access_name");
    const char *dot = access ? strchr(access, '.') : NULL;
    if (!dot)
        return NULL; /* cannot happen: every access name is manual.tool */
    cm_autofree char *manual = cm_xstrdup(access);
    manual[dot - access] = '\0';
    cm_pyiface_tool_text x = {0};
    cm_pyiface_tool_full(manual, dot + 1, def, &x);
    cJSON *one = cJSON_CreateArray(), *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", cm_json_str(def, "name"));
    cJSON_AddStringToObject(e, "access_manual", manual);
    cJSON_AddStringToObject(e, "access_tool", dot + 1);
    cJSON_AddStringToObject(e, "iface_classes", x.classes);
    cJSON_AddStringToObject(e, "iface_method", x.method);
    cJSON_AddItemToArray(one, e);
    char *text = cm_pyiface_assemble(one, NULL);
    cJSON_Delete(one);
    cm_pyiface_tool_text_free(&x);
    return text;
}

cJSON *cm_agent_search(cm_engine *eng, const struct cm_policy_profile *prof, const char *query,
                       int limit, bool full)
{
    cm_registry_view v = cm_agent_view(prof);
    return cm_registry_search_filtered(eng->registry, &v, query, limit, full, tool_visible,
                                       (void *)prof);
}

static const cJSON *args_of(const cJSON *params)
{
    return cJSON_GetObjectItemCaseSensitive(params, "arguments");
}

/* What interface text a request asks for. */
enum iface_kind { IFACE_COMPACT, IFACE_FULL, IFACE_INDEX };

/* The `detail` argument: absent → dflt; else one of the allowed words
 * (*bad set when it is none of them). */
static enum iface_kind detail_arg(const cJSON *params, bool index_ok, bool *bad)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(args_of(params), "detail");
    *bad = false;
    if (!d || cJSON_IsNull(d))
        return IFACE_COMPACT;
    if (cJSON_IsString(d) && !strcmp(d->valuestring, "full"))
        return IFACE_FULL;
    if (cJSON_IsString(d) && !strcmp(d->valuestring, "compact"))
        return IFACE_COMPACT;
    if (cJSON_IsString(d) && index_ok && !strcmp(d->valuestring, "index"))
        return IFACE_INDEX;
    *bad = true;
    return IFACE_COMPACT;
}

/* Interfaces as the requesting caller sees them; when the caller cannot be
 * resolved, NULL with *refused set to the answer. */
static char *caller_interfaces(cm_engine *eng, cm_conn *conn, const char *only,
                               enum iface_kind kind, cJSON **refused)
{
    cm_caller c;
    cm_error err;
    if (cm_caller_begin(eng->policy, &conn->peer, &c, &err) < 0) {
        *refused = cm_tool_result_error(err.kind, err.message);
        return NULL;
    }
    char *text = kind == IFACE_INDEX          ? cm_agent_index(eng, c.profile)
                 : kind == IFACE_FULL && only ? full_interface(eng, c.profile, only)
                                              : cm_agent_interfaces(eng, c.profile, only);
    cm_caller_end(&c);
    return text;
}

cJSON *cm_tool_get_interfaces(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)id;
    bool bad;
    enum iface_kind kind = detail_arg(params, true, &bad);
    if (bad || kind == IFACE_FULL)
        return cm_tool_result_error(CM_ERR_INVALID_REQUEST,
                                    "get_all_tools_python_interfaces: detail must be \"compact\" "
                                    "(the default) or \"index\"; one tool in full: "
                                    "get_tool_interface with detail \"full\"");
    cJSON *refused = NULL;
    cm_autofree char *text = caller_interfaces(eng, conn, NULL, kind, &refused);
    if (refused)
        return refused;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "interfaces", text);
    return cm_tool_result(s, false);
}

cJSON *cm_tool_get_tool_interface(cm_engine *eng, cm_conn *conn, const cJSON *id,
                                  const cJSON *params)
{
    (void)id;
    const char *name = cm_json_str(args_of(params), "tool_name");
    if (!name)
        return cm_tool_result_error(CM_ERR_INVALID_REQUEST,
                                    "get_tool_interface: tool_name must be a string");
    bool bad;
    enum iface_kind kind = detail_arg(params, false, &bad);
    if (bad)
        return cm_tool_result_error(CM_ERR_INVALID_REQUEST,
                                    "get_tool_interface: detail must be \"compact\" (the "
                                    "default) or \"full\" (every nested type, whole "
                                    "descriptions)");
    cJSON *refused = NULL;
    cm_autofree char *text = caller_interfaces(eng, conn, name, kind, &refused);
    if (refused)
        return refused;
    if (!text) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown tool '%.200s'", name);
        return cm_tool_result_error(CM_ERR_NOT_FOUND, msg);
    }
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "tool_name", name);
    cJSON_AddStringToObject(s, "interface", text);
    return cm_tool_result(s, false);
}

cJSON *cm_tool_agent_prompt(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)eng;
    (void)conn;
    (void)id;
    (void)params;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "prompt", CM_AGENT_PROMPT);
    return cm_tool_result(s, false);
}

static const char *const LOG_LEVELS[] = {"debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency"};

int cm_agent_log_level(const char *name)
{
    for (int i = 0; i < (int)(sizeof LOG_LEVELS / sizeof *LOG_LEVELS); i++)
        if (name && !strcmp(name, LOG_LEVELS[i]))
            return i;
    return -1;
}

static cJSON *notification(const char *method)
{
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "jsonrpc", "2.0");
    cJSON_AddStringToObject(n, "method", method);
    return n;
}

void cm_agent_stream_log(cm_conn *conn, const cJSON *progress_token, int count, const char *line)
{
    if (!conn || atomic_load(&conn->closed))
        return;
    int level = atomic_load(&conn->log_level); /* index + 1, 0 = off */
    if (level > 0 && level - 1 <= 1) {
        cJSON *n = notification("notifications/message");
        cJSON *p = cJSON_AddObjectToObject(n, "params");
        cJSON_AddStringToObject(p, "level", "info");
        cJSON_AddStringToObject(p, "logger", "chain");
        cJSON_AddStringToObject(p, "data", line);
        cm_conn_send(conn, n);
    }
    if (progress_token && (cJSON_IsString(progress_token) || cJSON_IsNumber(progress_token))) {
        cJSON *n = notification("notifications/progress");
        cJSON *p = cJSON_AddObjectToObject(n, "params");
        cJSON_AddItemToObject(p, "progressToken", cJSON_Duplicate(progress_token, 1));
        cJSON_AddNumberToObject(p, "progress", count);
        cJSON_AddStringToObject(p, "message", line);
        cm_conn_send(conn, n);
    }
}
