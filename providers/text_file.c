/* text_file.c — the UTCP `text` and `file` providers.
 *
 * Why it exists: the simplest ways to register a manual are to paste it
 * (`text`: the `content` is the manual) or to point at it (`file`:
 * `file_path`).  Used as tool templates they return that content.  Both
 * accept JSON or YAML, read files with a size cap, and name the source in
 * every error. */
#include "text_file.h"

#include <stdio.h>
#include <string.h>

#include "cm_limits.h"
#include "yamljson.h"
#include "openapi.h"
#include "util.h"

#define FILE_MAX_BYTES ((size_t)16 << 20)

/* JSON when the text parses as JSON, else YAML (via engine/config.c). */
static int parse_json_or_yaml(const char *text, size_t len, const char *what, cJSON **out,
                              cm_error *err)
{
    return cm_parse_json_or_yaml(text, len, what, out, err);
}

/* A bare tool list becomes {utcp_version, manual_version, tools}. */
static cJSON *manual_from_tool_list(cJSON *tools)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "utcp_version", "1.0.0");
    cJSON_AddStringToObject(m, "manual_version", "1.0.0");
    cJSON_AddItemToObject(m, "tools", tools);
    return m;
}

int cm_parse_manual_text(const char *text, size_t len, const char *what, const cm_call_ctx *ctx,
                         cJSON **manual, cm_error *err)
{
    cm_autojson cJSON *doc = NULL;
    if (parse_json_or_yaml(text, len, what, &doc, err) < 0) {
        err->kind = CM_ERR_CONFIG;
        return -1;
    }
    if (cJSON_IsArray(doc)) {
        *manual = manual_from_tool_list(cm_steal_ptr(&doc));
        return 0;
    }
    if (!cJSON_IsObject(doc))
        return cm_error_set(err, CM_ERR_CONFIG, "%s is not a UTCP manual (expected an object)",
                            what);
    if (cm_openapi_detect(doc))
        return cm_openapi_to_manual(doc, NULL, ctx, manual, err) < 0
                   ? cm_error_prefix(err, "%s", what)
                   : 0;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "tools")))
        return cm_error_set(err, CM_ERR_CONFIG, "%s is not a UTCP manual (no \"tools\" array)",
                            what);
    *manual = cm_steal_ptr(&doc);
    return 0;
}

static char *resolve_path(const cm_call_ctx *ctx, const char *path)
{
    if (path[0] == '/' || !ctx->base_dir || !*ctx->base_dir)
        return cm_xstrdup(path);
    char *full = NULL;
    if (asprintf(&full, "%s/%s", ctx->base_dir, path) < 0)
        abort();
    return full;
}

/* The template after variable substitution (ctx->vars may be NULL). */
static int substituted(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **out, cm_error *err)
{
    if (!ctx->vars) {
        *out = cJSON_Duplicate(tmpl, 1);
        return 0;
    }
    return cm_vars_substitute(ctx->vars, ctx->manual_name, tmpl, out, err);
}

/* key: the config key that sets max, named when the file is over it. */
static int read_capped(const char *path, size_t max, const char *key, char **text, size_t *len,
                       cm_error *err)
{
    if (cm_read_file(path, max, text, len, err) == 0)
        return 0;
    if (err->sys_errno)
        return cm_error_set(err, CM_ERR_CONFIG, "cannot open: %s", strerror(err->sys_errno));
    if (key)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "larger than %s (%zu bytes); raise it or use a smaller file", key, max);
    return cm_error_set(err, CM_ERR_CONFIG, "larger than %zu bytes", max);
}

static int template_path(const cJSON *tmpl, const cm_call_ctx *ctx, char **path, cm_error *err)
{
    cm_autojson cJSON *t = NULL;
    if (substituted(tmpl, ctx, &t, err) < 0)
        return -1;
    const char *p = cm_json_str(t, "file_path");
    if (!p || !*p)
        return cm_error_set(err, CM_ERR_CONFIG, "file_path: must be a non-empty string");
    *path = resolve_path(ctx, p);
    return 0;
}

int cm_text_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                     cm_error *err)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(manual_tmpl, "content");
    if (cJSON_IsObject(content) || cJSON_IsArray(content)) {
        cm_autofree char *s = cm_json_print(content);
        return cm_parse_manual_text(s, strlen(s), "content", ctx, manual, err) < 0
                   ? cm_error_prefix(err, "text manual")
                   : 0;
    }
    if (!cJSON_IsString(content))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "text manual: content must be a string or an object");
    if (cm_parse_manual_text(content->valuestring, strlen(content->valuestring), "content", ctx,
                             manual, err) < 0)
        return cm_error_prefix(err, "text manual");
    return 0;
}

int cm_file_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                     cm_error *err)
{
    cm_autofree char *path = NULL;
    cm_autofree char *text = NULL;
    size_t len = 0;
    if (template_path(manual_tmpl, ctx, &path, err) < 0)
        return cm_error_prefix(err, "file manual");
    cm_reg_limits lim = cm_reg_limits_or_default(ctx->reg);
    if (read_capped(path, lim.max_bytes, "engine.registration.max_bytes", &text, &len, err) < 0 ||
        cm_parse_manual_text(text, len, "content", ctx, manual, err) < 0)
        return cm_error_prefix(err, "file manual '%s'", path);
    return 0;
}

/* Tool result: parsed JSON/YAML when the text parses as a document, else
 * the text itself as a JSON string. */
static cJSON *content_value(const char *text, size_t len)
{
    if (memchr(text, '\0', len) || !cm_utf8_valid(text, len))
        return cJSON_CreateString("(binary content)");
    cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);
    if (j)
        return j;
    return cJSON_CreateString(text);
}

int cm_text_call(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **result, cm_error *err)
{
    (void)ctx;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(tmpl, "content");
    if (!content)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "text tool: no content");
    *result = cJSON_IsString(content)
                  ? content_value(content->valuestring, strlen(content->valuestring))
                  : cJSON_Duplicate(content, 1);
    return 0;
}

int cm_file_call(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **result, cm_error *err)
{
    cm_autofree char *path = NULL;
    cm_autofree char *text = NULL;
    size_t len = 0;
    if (template_path(tmpl, ctx, &path, err) < 0) {
        err->kind = CM_ERR_TOOL_ERROR;
        return cm_error_prefix(err, "file tool");
    }
    if (read_capped(path, FILE_MAX_BYTES, NULL, &text, &len, err) < 0) {
        err->kind = CM_ERR_TOOL_ERROR;
        return cm_error_prefix(err, "file tool '%s'", path);
    }
    *result = content_value(text, len);
    return 0;
}
