/* agent.c — the agent-facing surface (see agent.h): which tools are
 * advertised, their Python interfaces, search over them, and the prompt
 * that tells an agent how chains behave here. */
#include "agent.h"
#include "authority.h"
#include "policy.h"

#include <stdio.h>
#include <string.h>

#include "pyiface.h"
#include "jsonrpc.h"
#include "tools.h"

const char CM_AGENT_PROMPT[] =
    "You can run Python code through the `call_tool_chain` tool. Use it to call many tools in\n"
    "one step and to process their results before answering.\n"
    "\n"
    "Discover tools first:\n"
    "- `search_tools(task_description, limit)` ranks the registered tools for a task (name,\n"
    "  access_name, description, inputs, outputs).\n"
    "- `get_all_tools_python_interfaces` returns Python TypedDict interfaces of every tool;\n"
    "  `tools_info(tool_names)` gives full definitions.\n"
    "- Inside a chain: `interfaces` (also `__interfaces`) is that interface text,\n"
    "  `get_tool_interface(name)` (also `__get_tool_interface`) one tool's interface, and\n"
    "  `search_tools(query, limit=10)` searches (a list of dicts). They show only the tools\n"
    "  this chain may call. Each manual appears as `# namespace <manual>`.\n"
    "\n"
    "Writing the chain:\n"
    "- The code is the body of an async function: top-level `await` and `return` work.\n"
    "- Call a tool as `await manual.tool(name=value, ...)` with keyword arguments (the\n"
    "  access name shown by search_tools, e.g. `github.get_pull_request(owner='o', repo='r',\n"
    "  pull_number=1)`); a single dict argument is accepted too. Without `await` the call\n"
    "  blocks and gives the value. `asyncio.gather(a.x(), b.y())` runs calls concurrently.\n"
    "- `return` a JSON value (dict, list, str, number, bool, None): it becomes `result`.\n"
    "  Sets, NaN and other non-JSON values fail with `result_not_serializable`.\n"
    "- `print(...)` lines become `logs` (kept even when the chain fails; streamed to MCP\n"
    "  clients as log notifications while the chain runs).\n"
    "- A failed tool call raises `ToolError` (`.kind`, `.message`, `.tool`); a tool the\n"
    "  policy refuses raises `PolicyDenied` (a ToolError). Catch them to recover.\n"
    "- Imports are limited to json, math, asyncio, datetime, time, re, typing,\n"
    "  collections, itertools, functools, operator, uuid, random, string, textwrap, decimal,\n"
    "  fractions, statistics, base64, copy, dataclasses, enum, heapq, bisect. No files,\n"
    "  network or subprocesses: reach the outside world only through tools.\n"
    "\n"
    "Limits: a wall-clock timeout (argument `timeout`, seconds, default 30), caps on printed\n"
    "output, result size and tool calls per chain. A chain that exceeds them is stopped.\n"
    "\n"
    "The answer is `{result, logs, error, stats}`. `error` is null on success, else\n"
    "`{kind, message, traceback?}` with kind one of syntax, exception, timeout,\n"
    "memory_limit, policy_denied, tool_error, output_limit, result_not_serializable,\n"
    "sandbox_failure, invalid_request, busy; over MCP a failed chain has `isError: true`.\n"
    "Fix the code from the message and traceback (line numbers are your code's) and retry.\n";

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

cJSON *cm_agent_search(cm_engine *eng, const struct cm_policy_profile *prof, const char *query,
                       int limit)
{
    cm_registry_view v = cm_agent_view(prof);
    return cm_registry_search_filtered(eng->registry, &v, query, limit, tool_visible, (void *)prof);
}

static const cJSON *args_of(const cJSON *params)
{
    return cJSON_GetObjectItemCaseSensitive(params, "arguments");
}

/* Interfaces as the requesting caller sees them; when the caller cannot be
 * resolved, NULL with *refused set to the answer. */
static char *caller_interfaces(cm_engine *eng, cm_conn *conn, const char *only, cJSON **refused)
{
    cm_caller c;
    cm_error err;
    if (cm_caller_begin(eng->policy, &conn->peer, &c, &err) < 0) {
        *refused = cm_tool_result_error(err.kind, err.message);
        return NULL;
    }
    char *text = cm_agent_interfaces(eng, c.profile, only);
    cm_caller_end(&c);
    return text;
}

cJSON *cm_tool_get_interfaces(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    (void)id;
    (void)params;
    cJSON *refused = NULL;
    cm_autofree char *text = caller_interfaces(eng, conn, NULL, &refused);
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
    cJSON *refused = NULL;
    cm_autofree char *text = caller_interfaces(eng, conn, name, &refused);
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
