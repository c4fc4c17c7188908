/* provider.c — the dispatcher between the engine and the providers.
 *
 * Why it exists: the engine knows call templates only as JSON; this file
 * reads `call_template_type` and hands the template to the provider that
 * owns it (cli.c, text_file.c), so adding a provider touches one table. */
#include "provider.h"

#include <malloc.h>
#include <string.h>

#include "cli.h"
#include "http.h"
#include "http_loop.h"
#include "mcp.h"
#include "text_file.h"
#include "util.h"

typedef int (*call_fn)(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                       cm_error *err);
typedef int (*discover_fn)(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **manual,
                           cm_error *err);

static int text_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                     cm_error *err)
{
    (void)args;
    return cm_text_call(tmpl, ctx, result, err);
}

static int file_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                     cm_error *err)
{
    (void)args;
    return cm_file_call(tmpl, ctx, result, err);
}

typedef struct provider_entry {
    const char *type;
    call_fn call;
    discover_fn discover;
} provider_entry;

static const provider_entry providers[] = {
    {"cli", cm_cli_call, cm_cli_discover}, {"text", text_call, cm_text_discover},
    {"file", file_call, cm_file_discover}, {"http", cm_http_call, cm_http_discover},
    {"mcp", cm_mcp_call, cm_mcp_discover},
};

static const provider_entry *find_provider(const char *type)
{
    if (!type)
        return NULL;
    for (size_t i = 0; i < sizeof providers / sizeof *providers; i++)
        if (strcmp(providers[i].type, type) == 0)
            return &providers[i];
    return NULL;
}

/* The provider for a template, or an error of `kind` saying why not. */
static const provider_entry *provider_for(const cJSON *tmpl, cm_errkind kind, cm_error *err)
{
    if (!cJSON_IsObject(tmpl)) {
        cm_error_set(err, kind, "call template must be an object");
        return NULL;
    }
    const char *type = cm_json_str(tmpl, "call_template_type");
    if (!type) {
        cm_error_set(err, kind, "call template has no call_template_type");
        return NULL;
    }
    const provider_entry *p = find_provider(type);
    if (!p)
        cm_error_set(err, kind, "call_template_type '%s' is not supported by this engine yet",
                     type);
    return p;
}

/* http and mcp share connections and sessions through ctx->providers. */
static int needs_context(const provider_entry *p, const cm_call_ctx *ctx, cm_errkind kind,
                         cm_error *err)
{
    if (ctx->providers || (strcmp(p->type, "http") && strcmp(p->type, "mcp")))
        return 0;
    return cm_error_set(err, kind, "%s provider: no provider context", p->type);
}

int cm_provider_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                     cm_error *err)
{
    const provider_entry *p = provider_for(tmpl, CM_ERR_TOOL_ERROR, err);
    if (!p || needs_context(p, ctx, CM_ERR_TOOL_ERROR, err) < 0)
        return -1;
    return p->call(tmpl, args, ctx, result, err);
}

int cm_provider_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                         cm_error *err)
{
    const provider_entry *p = provider_for(manual_tmpl, CM_ERR_CONFIG, err);
    if (!p || needs_context(p, ctx, CM_ERR_CONFIG, err) < 0)
        return -1;
    cm_call_ctx c = *ctx;
    c.manual_tmpl = manual_tmpl;
    int rc = p->discover(manual_tmpl, &c, manual, err);
    /* the downloaded document (a parsed 13 MB description is ~100 MB of
     * cJSON) is freed by now: give it back instead of keeping the peak */
    malloc_trim(0);
    return rc;
}

int cm_provider_supported(const char *call_template_type)
{
    return find_provider(call_template_type) != NULL;
}

int cm_provider_async_capable(const cJSON *tmpl)
{
    const char *type = cJSON_IsObject(tmpl) ? cm_json_str(tmpl, "call_template_type") : NULL;
    return type && (!strcmp(type, "http") || !strcmp(type, "mcp"));
}

void cm_provider_call_async(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx,
                            cm_provider_done_fn done, void *arg)
{
    cm_error err;
    const provider_entry *p = provider_for(tmpl, CM_ERR_TOOL_ERROR, &err);
    if (p && needs_context(p, ctx, CM_ERR_TOOL_ERROR, &err) == 0) {
        if (!strcmp(p->type, "http")) {
            cm_http_call_async(tmpl, args, ctx, done, arg);
            return;
        }
        if (!strcmp(p->type, "mcp")) {
            cm_mcp_call_async(tmpl, args, ctx, done, arg);
            return;
        }
        cm_error_set(&err, CM_ERR_INTERNAL, "call_template_type '%s' has no asynchronous calls",
                     p->type);
    }
    done(arg, NULL, &err);
}

void cm_providers_wakeup(struct cm_providers *p)
{
    if (!p)
        return;
    cm_http_loop_wakeup(p);
    cm_mcp_sessions_wakeup(p);
}
