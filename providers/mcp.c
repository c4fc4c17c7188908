/* mcp.c — the UTCP `mcp` provider: discovery (tools/list on every server of
 * config.mcpServers) and tool calls (tools/call), over the sessions of
 * mcp_session.c, and the mapping of MCP results to chain values.
 *
 * Why it exists: MCP servers are the other big source of tools; this file
 * keeps the UTCP shape (tools `<server>.<tool>` in the manual, one session
 * per server) separate from the transports. */
#include "mcp.h"

#include <pthread.h>
#include <string.h>

#include "util.h"

#define EXCERPT_BYTES 1000

static int substituted(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **out, cm_error *err)
{
    if (!ctx->vars) {
        *out = cJSON_Duplicate(tmpl, 1);
        return 0;
    }
    return cm_vars_substitute(ctx->vars, ctx->manual_name, tmpl, out, err);
}

static const cJSON *servers_of(const cJSON *tmpl, cm_error *err)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(tmpl, "config");
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(cfg, "mcpServers");
    if (!cJSON_IsObject(servers) || !servers->child) {
        cm_error_set(err, CM_ERR_CONFIG, "config.mcpServers: must be a non-empty object");
        return NULL;
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, servers)
    {
        if (!cJSON_IsObject(s) || (!cm_json_str(s, "command") && !cm_json_str(s, "url"))) {
            cm_error_set(err, CM_ERR_CONFIG,
                         "config.mcpServers.%s: needs `command` (stdio) or `url` (streamable "
                         "HTTP)",
                         s->string);
            return NULL;
        }
        const char *t = cm_json_str(s, "transport");
        if (t && strcmp(t, "stdio") && strcmp(t, "http") && strcmp(t, "streamable-http")) {
            cm_error_set(err, CM_ERR_CONFIG,
                         "config.mcpServers.%s.transport: '%s' is not supported (stdio, http)",
                         s->string, t);
            return NULL;
        }
    }
    return servers;
}

/* ---- results ------------------------------------------------------------ */

static void append_text_blocks(const cJSON *content, cm_buf *b)
{
    cm_error ignored;
    const cJSON *c;
    cJSON_ArrayForEach(c, content)
    {
        const char *text = cm_json_str(c, "text");
        if (!text)
            continue;
        if (b->len)
            cm_buf_append(b, "\n", 1, &ignored);
        cm_buf_append(b, text, strlen(text), &ignored);
    }
}

int cm_mcp_map_result(const cJSON *result, cJSON **out, cm_error *err)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(result, "content");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError"))) {
        cm_buf b = {0};
        append_text_blocks(content, &b);
        int rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "tool reported an error: %.*s", EXCERPT_BYTES,
                              b.len ? b.data : "(no text)");
        cm_buf_free(&b);
        return rc;
    }
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(result, "structuredContent");
    if (sc && !cJSON_IsNull(sc)) {
        const cJSON *lone = cJSON_IsObject(sc) && sc->child && !sc->child->next &&
                                    !strcmp(sc->child->string, "result")
                                ? sc->child
                                : NULL;
        *out = cJSON_Duplicate(lone ? lone : sc, 1);
        return 0;
    }
    if (!cJSON_IsArray(content)) {
        *out = cJSON_CreateNull();
        return 0;
    }
    if (cJSON_GetArraySize(content) == 1) {
        const cJSON *c = content->child;
        const char *type = cm_json_str(c, "type");
        const char *text = cm_json_str(c, "text");
        if (type && !strcmp(type, "text") && text) {
            cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);
            *out = j ? j : cJSON_CreateString(text);
            return 0;
        }
    }
    if (cJSON_GetArraySize(content) == 0) {
        *out = cJSON_CreateNull();
        return 0;
    }
    *out = cJSON_Duplicate(content, 1);
    return 0;
}

/* ---- tool calls ---------------------------------------------------------- */

int cm_mcp_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                cm_error *err)
{
    const char *server = cm_json_str(tmpl, "mcp_server");
    const char *tool = cm_json_str(tmpl, "mcp_tool");
    if (!server || !tool)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "mcp tool template needs mcp_server and mcp_tool (register the "
                            "manual through mcp discovery)");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tmpl, "mcp_task_required")))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "mcp %s.%s: the server runs this tool only as a task (MCP tasks, "
                            "execution.taskSupport: required), which codemode's MCP client does "
                            "not support; use another tool of the server",
                            server, tool);
    cm_autojson cJSON *t = NULL;
    if (substituted(tmpl, ctx, &t, err) < 0) {
        err->kind = CM_ERR_TOOL_ERROR;
        return cm_error_prefix(err, "mcp %s.%s", server, tool);
    }
    const cJSON *servers = servers_of(t, err);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(servers, server);
    if (!cfg) {
        err->kind = CM_ERR_TOOL_ERROR;
        return cm_error_prefix(err, "mcp %s.%s", server, tool);
    }
    /* a resources/prompts access tool (add_access_tools) sends its method
       with the arguments as params and returns the result as it is */
    const char *direct = cm_json_str(tmpl, "mcp_method");
    cm_autojson cJSON *params = NULL;
    if (direct) {
        params = args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject();
    } else {
        params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "name", tool);
        cJSON_AddItemToObject(params, "arguments",
                              args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject());
    }
    cm_autojson cJSON *res = NULL;
    const char *manual = cm_json_str(t, "manual") ? cm_json_str(t, "manual") : ctx->manual_name;
    if (cm_mcp_request(ctx->providers, manual ? manual : "", server, cfg, ctx->base_dir,
                       direct ? direct : "tools/call", params, ctx, &res, err) < 0 ||
        (direct ? (*result = cm_steal_ptr(&res), 0) : cm_mcp_map_result(res, result, err)) < 0)
        return cm_error_prefix(err, "mcp %s.%s", server, tool);
    return 0;
}

/* ---- asynchronous tool calls --------------------------------------------- */

typedef struct async_call {
    cm_provider_done_fn done;
    void *arg;
    char *server, *tool;
    /* the blocking fallback (session not ready): its own copies */
    cJSON *tmpl, *args;
    cm_call_ctx ctx;
} async_call;

static void async_call_free(async_call *c)
{
    free(c->server);
    free(c->tool);
    cJSON_Delete(c->tmpl);
    cJSON_Delete(c->args);
    free(c);
}

/* On the session's reader thread: map the answer, report, free. */
static void on_answer(void *arg, cJSON *res, const cm_error *e)
{
    async_call *c = arg;
    cm_error err;
    cJSON *out = NULL;
    if (e) {
        err = *e;
    } else if (cm_mcp_map_result(res, &out, &err) == 0) {
        cJSON_Delete(res);
        cm_provider_done_fn done = c->done;
        void *done_arg = c->arg;
        async_call_free(c);
        done(done_arg, out, NULL);
        return;
    }
    cJSON_Delete(res);
    cm_error_prefix(&err, "mcp %s.%s", c->server, c->tool);
    cm_provider_done_fn done = c->done;
    void *done_arg = c->arg;
    async_call_free(c);
    done(done_arg, NULL, &err);
}

/* The session is not ready (first call, restart, HTTP): the blocking call
 * on a thread of its own, which reports through done. */
static void *blocking_call_main(void *arg)
{
    async_call *c = arg;
    cm_error err;
    cJSON *out = NULL;
    int rc = cm_mcp_call(c->tmpl, c->args, &c->ctx, &out, &err);
    cm_provider_done_fn done = c->done;
    void *done_arg = c->arg;
    async_call_free(c);
    done(done_arg, rc == 0 ? out : NULL, rc == 0 ? NULL : &err);
    return NULL;
}

static void call_on_thread(async_call *c, const cJSON *tmpl, const cJSON *args,
                           const cm_call_ctx *ctx)
{
    c->tmpl = cJSON_Duplicate(tmpl, 1);
    c->args = args ? cJSON_Duplicate(args, 1) : NULL;
    c->ctx = *ctx;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, blocking_call_main, c);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return;
    cm_error err;
    cm_error_set(&err, CM_ERR_TOOL_ERROR, "mcp %s.%s: cannot start a call thread: %s", c->server,
                 c->tool, strerror(rc));
    cm_provider_done_fn done = c->done;
    void *done_arg = c->arg;
    async_call_free(c);
    done(done_arg, NULL, &err);
}

void cm_mcp_call_async(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx,
                       cm_provider_done_fn done, void *arg)
{
    const char *server = cm_json_str(tmpl, "mcp_server");
    const char *tool = cm_json_str(tmpl, "mcp_tool");
    async_call *c = cm_xcalloc(1, sizeof *c);
    c->done = done;
    c->arg = arg;
    c->server = cm_xstrdup(server ? server : "");
    c->tool = cm_xstrdup(tool ? tool : "");
    cm_autojson cJSON *t = NULL;
    cm_error err;
    const cJSON *cfg = NULL;
    if (server && tool && substituted(tmpl, ctx, &t, &err) == 0) {
        cm_error ignored;
        cfg = cJSON_GetObjectItemCaseSensitive(servers_of(t, &ignored), server);
    }
    if (!cfg || !ctx->providers || cm_json_str(tmpl, "mcp_method") ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tmpl, "mcp_task_required"))) {
        /* the blocking path words the error */
        call_on_thread(c, tmpl, args, ctx);
        return;
    }
    cm_autojson cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "name", tool);
    cJSON_AddItemToObject(params, "arguments",
                          args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject());
    const char *manual = cm_json_str(t, "manual") ? cm_json_str(t, "manual") : ctx->manual_name;
    if (!cm_mcp_request_async(ctx->providers, manual ? manual : "", server, cfg, ctx->base_dir,
                              "tools/call", params, ctx, on_answer, c))
        call_on_thread(c, tmpl, args, ctx);
}

/* ---- discovery ----------------------------------------------------------- */

static cJSON *tool_from_mcp(const cJSON *mt, const char *manual, const char *server,
                            const cJSON *server_cfg_raw)
{
    const char *name = cm_json_str(mt, "name");
    cJSON *tool = cJSON_CreateObject();
    cm_autofree char *qualified = NULL;
    if (asprintf(&qualified, "%s.%s", server, name) < 0)
        abort();
    cJSON_AddStringToObject(tool, "name", qualified);
    const char *desc = cm_json_str(mt, "description");
    cJSON_AddStringToObject(tool, "description", desc ? desc : "");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(mt, "inputSchema");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(mt, "outputSchema");
    cJSON_AddItemToObject(tool, "inputs",
                          cJSON_IsObject(in) ? cJSON_Duplicate(in, 1) : cJSON_CreateObject());
    cJSON_AddItemToObject(tool, "outputs",
                          cJSON_IsObject(out) ? cJSON_Duplicate(out, 1) : cJSON_CreateObject());
    cJSON_AddItemToObject(tool, "tags", cJSON_CreateArray());
    cJSON *t = cJSON_AddObjectToObject(tool, "tool_call_template");
    cJSON_AddStringToObject(t, "call_template_type", "mcp");
    cJSON_AddStringToObject(t, "manual", manual);
    cJSON_AddStringToObject(t, "mcp_server", server);
    cJSON_AddStringToObject(t, "mcp_tool", name);
    const char *tasks =
        cm_json_str(cJSON_GetObjectItemCaseSensitive(mt, "execution"), "taskSupport");
    if (tasks && !strcmp(tasks, "required"))
        cJSON_AddBoolToObject(t, "mcp_task_required", 1);
    cJSON *servers = cJSON_AddObjectToObject(cJSON_AddObjectToObject(t, "config"), "mcpServers");
    cJSON_AddItemToObject(servers, server, cJSON_Duplicate(server_cfg_raw, 1));
    return tool;
}

static int list_server_tools(const cJSON *cfg, const cJSON *raw_cfg, const char *server,
                             const cm_call_ctx *ctx, cJSON *tools, cm_error *err)
{
    cm_autofree char *cursor = NULL;
    for (int page = 0; page < 100; page++) {
        cm_autojson cJSON *params = cJSON_CreateObject();
        if (cursor)
            cJSON_AddStringToObject(params, "cursor", cursor);
        cm_autojson cJSON *res = NULL;
        if (cm_mcp_request(ctx->providers, ctx->manual_name, server, cfg, ctx->base_dir,
                           "tools/list", params, ctx, &res, err) < 0)
            return -1;
        const cJSON *mt;
        cJSON_ArrayForEach(mt, cJSON_GetObjectItemCaseSensitive(res, "tools"))
        {
            if (cm_json_str(mt, "name"))
                cJSON_AddItemToArray(tools, tool_from_mcp(mt, ctx->manual_name, server, raw_cfg));
        }
        const char *next = cm_json_str(res, "nextCursor");
        free(cursor);
        cursor = next && *next ? cm_xstrdup(next) : NULL;
        if (!cursor)
            return 0;
    }
    return 0;
}

/* ---- resources and prompts as tools ---------------------------------------- */

/* Up to 5 names (key) of a list result's array, for a description. */
static void some_names(const cJSON *res, const char *array, const char *key, char *out, size_t size)
{
    size_t n = 0;
    int count = 0;
    const cJSON *e;
    out[0] = '\0';
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res, array))
    {
        const char *v = cm_json_str(e, key);
        if (!v || count == 5 || n >= size)
            continue;
        n += (size_t)snprintf(out + n, size - n, "%s%.120s", count++ ? ", " : "", v);
    }
}

static void add_access_tool(cJSON *tools, const char *manual, const char *server,
                            const cJSON *raw_cfg, const char *name, const char *method,
                            const char *desc, const char *schema)
{
    char qualified[300];
    snprintf(qualified, sizeof qualified, "%s.%s", server, name);
    const cJSON *have;
    cJSON_ArrayForEach(
        have,
        tools) if (!strcmp(cm_json_str(have, "name"),
                           qualified)) return; /* the server has a tool of that name: it wins */
    cJSON *mt = cJSON_CreateObject();
    cJSON_AddStringToObject(mt, "name", name);
    cJSON_AddStringToObject(mt, "description", desc);
    cJSON_AddItemToObject(mt, "inputSchema", cJSON_Parse(schema));
    cJSON *tool = tool_from_mcp(mt, manual, server, raw_cfg);
    cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(tool, "tool_call_template"),
                            "mcp_method", method);
    cJSON_Delete(mt);
    cJSON_AddItemToArray(tools, tool);
}

/* A server that answers resources/list or prompts/list gets tools that
 * reach them from a chain: list_resources, read_resource(uri), and
 * list_prompts, get_prompt(name, arguments); their results are the MCP
 * results as they are.  A server without them costs one refused request. */
static void add_access_tools(const cJSON *cfg, const cJSON *raw_cfg, const char *server,
                             const cm_call_ctx *ctx, cJSON *tools)
{
    static const char *const kinds[][2] = {{"resources/list", "resources"},
                                           {"prompts/list", "prompts"}};
    for (size_t k = 0; k < 2; k++) {
        cm_autojson cJSON *params = cJSON_CreateObject(), *res = NULL;
        cm_error ignored;
        if (cm_mcp_request(ctx->providers, ctx->manual_name, server, cfg, ctx->base_dir,
                           kinds[k][0], params, ctx, &res, &ignored) < 0)
            continue;
        char names[700], desc[900];
        some_names(res, kinds[k][1], k == 0 ? "uri" : "name", names, sizeof names);
        if (k == 0) {
            add_access_tool(tools, ctx->manual_name, server, raw_cfg, "list_resources",
                            "resources/list",
                            "Lists the MCP server's resources (resources/list; pass cursor for "
                            "the next page).",
                            "{\"type\":\"object\",\"properties\":{\"cursor\":{\"type\":"
                            "\"string\"}}}");
            snprintf(desc, sizeof desc,
                     "Reads one of the MCP server's resources by URI (resources/read); the "
                     "result is {contents: [{uri, mimeType, text | blob}]}. Some: %s",
                     names[0] ? names : "(none listed)");
            add_access_tool(tools, ctx->manual_name, server, raw_cfg, "read_resource",
                            "resources/read", desc,
                            "{\"type\":\"object\",\"properties\":{\"uri\":{\"type\":"
                            "\"string\"}},\"required\":[\"uri\"]}");
        } else {
            add_access_tool(tools, ctx->manual_name, server, raw_cfg, "list_prompts",
                            "prompts/list",
                            "Lists the MCP server's prompts and their arguments (prompts/list).",
                            "{\"type\":\"object\",\"properties\":{\"cursor\":{\"type\":"
                            "\"string\"}}}");
            snprintf(desc, sizeof desc,
                     "Gets one of the MCP server's prompts with its arguments (prompts/get); "
                     "the result is {description, messages}. Prompts: %s",
                     names[0] ? names : "(none listed)");
            add_access_tool(tools, ctx->manual_name, server, raw_cfg, "get_prompt", "prompts/get",
                            desc,
                            "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
                            "\"string\"},\"arguments\":{\"type\":\"object\"}},"
                            "\"required\":[\"name\"]}");
        }
    }
}

int cm_mcp_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual, cm_error *err)
{
    cm_autojson cJSON *t = NULL;
    if (substituted(manual_tmpl, ctx, &t, err) < 0)
        return cm_error_prefix(err, "mcp manual");
    const cJSON *servers = servers_of(t, err);
    const cJSON *raw = servers_of(manual_tmpl, err);
    if (!servers || !raw)
        return cm_error_prefix(err, "mcp manual");
    cm_autojson cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "utcp_version", "1.0.1");
    cJSON_AddStringToObject(m, "manual_version", "1.0.0");
    cJSON *tools = cJSON_AddArrayToObject(m, "tools");
    const cJSON *s;
    cJSON_ArrayForEach(s, servers)
    {
        if (list_server_tools(s, cJSON_GetObjectItemCaseSensitive(raw, s->string), s->string, ctx,
                              tools, err) < 0) {
            err->kind = CM_ERR_CONFIG;
            cm_mcp_sessions_close(ctx->providers, ctx->manual_name);
            return cm_error_prefix(err, "mcp manual: server '%s'", s->string);
        }
        add_access_tools(s, cJSON_GetObjectItemCaseSensitive(raw, s->string), s->string, ctx,
                         tools);
    }
    *manual = cm_steal_ptr(&m);
    return 0;
}
