/* openapi.c — converts an OpenAPI 3.x or Swagger 2.0 document into a UTCP
 * manual whose tools are `http` call templates.
 *
 * Why it exists: most HTTP APIs publish OpenAPI, not UTCP.  Unlike the
 * reference SDKs this keeps `$ref`s as JSON Schema "$defs" (each shared
 * schema once, recursive ones stay references: openapi_refs.c, so memory is
 * linear in the document and capped by engine.registration), always emits
 * `type: object` inputs with `required`, and is only used for documents that
 * say they are OpenAPI. */
#include "openapi.h"

#include <ctype.h>
#include <string.h>

#include "cm_limits.h"
#include "http_client.h"
#include "openapi_auth.h"
#include "openapi_refs.h"
#include "util.h"

static const char *const methods[] = {"get", "post", "put", "patch", "delete"};

bool cm_openapi_detect(const cJSON *doc)
{
    return cJSON_IsObject(doc) && (cJSON_GetObjectItemCaseSensitive(doc, "openapi") ||
                                   cJSON_GetObjectItemCaseSensitive(doc, "swagger"));
}

/* ---- base URL -------------------------------------------------------- */

static char *join_url(const char *base, const char *rel)
{
    CURLU *h = curl_url();
    char *out = NULL;
    if (curl_url_set(h, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(h, CURLUPART_URL, rel, 0) == CURLUE_OK) {
        char *u = NULL;
        if (curl_url_get(h, CURLUPART_URL, &u, 0) == CURLUE_OK) {
            out = cm_xstrdup(u);
            curl_free(u);
        }
    }
    curl_url_cleanup(h);
    return out;
}

static char *strip_slash(char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

/* servers[0].url with each `{name}` replaced by its variable's default
 * (`https://{region}.example.com`), so no server variable is left for the
 * http provider to take for a path parameter. */
static char *server_url(const cJSON *server)
{
    const char *url = cm_json_str(server, "url");
    if (!url)
        return NULL;
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(server, "variables");
    cm_buf b = {0};
    cm_error ignored;
    for (const char *p = url; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close && close - p < 128) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(close - p - 1), p + 1);
            const char *def = cm_json_str(cJSON_GetObjectItemCaseSensitive(vars, name), "default");
            if (def) {
                cm_buf_append(&b, def, strlen(def), &ignored);
                p = close + 1;
                continue;
            }
        }
        cm_buf_append(&b, p, 1, &ignored);
        p++;
    }
    return b.data ? b.data : cm_xstrdup("");
}

/* The API's base URL: the manual's `base_url`, else servers[0] (relative:
 * against the document's URL), Swagger schemes/host/basePath, else the
 * document's origin. */
static int base_url(const cJSON *doc, const char *spec_url, const cJSON *manual_tmpl, char **out,
                    cm_error *err)
{
    const char *override = cm_json_str(manual_tmpl, "base_url");
    if (override && *override) {
        *out = strip_slash(cm_xstrdup(override));
        return 0;
    }
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(doc, "servers");
    cm_autofree char *s0 = server_url(cJSON_GetArrayItem(servers, 0));
    if (s0 && *s0) {
        if (strstr(s0, "://")) {
            *out = strip_slash(cm_steal_ptr(&s0));
            return 0;
        }
        if (spec_url && (*out = join_url(spec_url, s0)))
            return strip_slash(*out), 0;
        return cm_error_set(err, CM_ERR_CONFIG,
                            "servers[0].url '%.200s' is relative and the document has no URL "
                            "(a text or file manual): set base_url on the manual",
                            s0);
    }
    const char *host = cm_json_str(doc, "host");
    if (host) {
        const cJSON *schemes = cJSON_GetObjectItemCaseSensitive(doc, "schemes");
        const char *scheme = cJSON_IsString(cJSON_GetArrayItem(schemes, 0))
                                 ? cJSON_GetArrayItem(schemes, 0)->valuestring
                                 : "https";
        const char *bp = cm_json_str(doc, "basePath");
        if (asprintf(out, "%s://%s%s", scheme, host, bp ? bp : "") < 0)
            abort();
        strip_slash(*out);
        return 0;
    }
    if (spec_url) {
        const char *bp = cm_json_str(doc, "basePath");
        if ((*out = join_url(spec_url, bp && *bp == '/' ? bp : "/")))
            return strip_slash(*out), 0;
    }
    return cm_error_set(err, CM_ERR_CONFIG,
                        "no servers, host or document URL: cannot derive the API's base URL; set "
                        "base_url on the manual");
}

/* ---- operations → tools ---------------------------------------------- */

static char *derived_name(const char *method, const char *path)
{
    cm_buf b = {0};
    cm_error ignored;
    cm_buf_append(&b, method, strlen(method), &ignored);
    bool sep = true;
    for (const char *p = path; *p; p++) {
        if (isalnum((unsigned char)*p)) {
            if (sep)
                cm_buf_append(&b, "_", 1, &ignored);
            cm_buf_append(&b, p, 1, &ignored);
            sep = false;
        } else {
            sep = true;
        }
    }
    return b.data;
}

/* ---- tool names ------------------------------------------------------ */

/* What names an operation: registration needs every name unique and
 * qualified (`manual.name`) within MAX_TOOL_NAME (engine/registry.c, 128). */
typedef struct op_ref {
    const char *method, *path;
    bool has_id;
} op_ref;

#define TOOL_NAME_MAX 128

static uint32_t fnv1a(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (const char *s = a; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    for (const char *s = b ? b : ""; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* name, or (over max bytes) its first bytes + "_" + 8 hex digits of a hash
 * of the whole name: stable across registrations, never a cut UTF-8
 * sequence. */
static char *fit_name(char *name, size_t max)
{
    size_t n = strlen(name);
    if (n <= max)
        return name;
    uint32_t h = fnv1a(name, NULL);
    size_t keep = max - 9;
    while (keep && ((unsigned char)name[keep] & 0xC0) == 0x80)
        keep--;
    snprintf(name + keep, n + 1 - keep, "_%08x", h);
    return name;
}

static char *suffixed(const char *name, uint32_t h)
{
    char *out = NULL;
    if (asprintf(&out, "%s_%08x", name, h) < 0)
        abort();
    return out;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(**(char **const *)a, **(char **const *)b);
}

/* dup[i] = names[i] is used more than once. */
static bool mark_dups(char **names, int n, bool *dup)
{
    cm_autofree char ***sorted = cm_xcalloc((size_t)n + 1, sizeof *sorted);
    for (int i = 0; i < n; i++) {
        sorted[i] = &names[i];
        dup[i] = false;
    }
    qsort(sorted, (size_t)n, sizeof *sorted, compare_names);
    bool any = false;
    for (int i = 1; i < n; i++)
        if (!strcmp(*sorted[i - 1], *sorted[i])) {
            dup[sorted[i - 1] - names] = dup[sorted[i] - names] = true;
            any = true;
        }
    return any;
}

/* Unique names for the tools: operationId, else `<method>_<path words>`;
 * operations sharing a name are renamed to `<method>_<path words>`, then
 * (still shared) suffixed with a hash of "METHOD path", which is unique in
 * a document; names too long get a hash suffix (fit_name).  Deterministic:
 * the same document always gives the same names. */
static void assign_names(cJSON *tools, const op_ref *ops, int n, size_t max)
{
    if (n <= 0)
        return;
    char **names = cm_xcalloc((size_t)n, sizeof *names);
    cm_autofree bool *dup = cm_xcalloc((size_t)n, sizeof *dup);
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        names[i] = fit_name(cm_xstrdup(cm_json_str(t, "name")), max);
        i++;
    }
    for (int round = 0; round < 3 && mark_dups(names, n, dup); round++)
        for (i = 0; i < n; i++) {
            if (!dup[i])
                continue;
            cm_autofree char *derived = derived_name(ops[i].method, ops[i].path);
            uint32_t h = fnv1a(ops[i].method, ops[i].path);
            char *next = round == 0 && ops[i].has_id ? cm_steal_ptr(&derived)
                         : round < 2                 ? suffixed(derived, h)
                                                     : suffixed(names[i], (uint32_t)i);
            free(names[i]);
            names[i] = fit_name(next, max);
        }
    i = 0;
    cJSON *tool;
    cJSON_ArrayForEach(tool, tools)
    {
        cJSON_ReplaceItemInObjectCaseSensitive(tool, "name", cJSON_CreateString(names[i]));
        free(names[i++]);
    }
    free(names);
}

static void add_param(const cJSON *doc, cm_oa_schema *sch, const cJSON *param, cJSON *props,
                      cJSON *required, cJSON *header_fields)
{
    const cJSON *p = cm_oa_deref(doc, param);
    const char *name = cm_json_str(p, "name");
    const char *in = cm_json_str(p, "in");
    if (!name || !in || !strcmp(in, "cookie"))
        return;
    const cJSON *s0 = cJSON_GetObjectItemCaseSensitive(p, "schema");
    if (!strcmp(in, "body")) { /* Swagger 2 body parameter */
        cJSON_DeleteItemFromObjectCaseSensitive(props, "body");
        cJSON_AddItemToObject(props, "body", s0 ? cm_oa_convert(sch, s0) : cJSON_CreateObject());
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "required")))
            cJSON_AddItemToArray(required, cJSON_CreateString("body"));
        return;
    }
    cJSON *schema = s0 ? cm_oa_convert(sch, s0) : NULL;
    if (!schema) { /* Swagger 2 inline type */
        schema = cJSON_CreateObject();
        const char *type = cm_json_str(p, "type");
        cJSON_AddStringToObject(schema, "type", type ? type : "string");
    }
    const char *desc = cm_json_str(p, "description");
    if (desc && cJSON_IsObject(schema) && !cJSON_GetObjectItemCaseSensitive(schema, "description"))
        cJSON_AddStringToObject(schema, "description", desc);
    cJSON_DeleteItemFromObjectCaseSensitive(props, name);
    cJSON_AddItemToObject(props, name, schema);
    if (!strcmp(in, "path") || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "required")))
        cJSON_AddItemToArray(required, cJSON_CreateString(name));
    if (!strcmp(in, "header"))
        cJSON_AddItemToArray(header_fields, cJSON_CreateString(name));
}

static const char *body_content_type(const cJSON *content, const cJSON **media)
{
    static const char *const prefs[] = {"application/json", "application/x-www-form-urlencoded",
                                        "text/plain"};
    for (size_t i = 0; i < sizeof prefs / sizeof *prefs; i++)
        if ((*media = cJSON_GetObjectItemCaseSensitive(content, prefs[i])))
            return prefs[i];
    *media = content ? content->child : NULL;
    return *media ? (*media)->string : NULL;
}

/* Returns the body's content type (caller frees), NULL without a body. */
static char *add_request_body(const cJSON *doc, cm_oa_schema *sch, const cJSON *op, cJSON *props,
                              cJSON *required)
{
    const cJSON *rb0 = cJSON_GetObjectItemCaseSensitive(op, "requestBody");
    if (!rb0)
        return NULL;
    const cJSON *rb = cm_oa_deref(doc, rb0);
    const cJSON *media = NULL;
    const char *ct = body_content_type(cJSON_GetObjectItemCaseSensitive(rb, "content"), &media);
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(media, "schema");
    cJSON *s = schema ? cm_oa_convert(sch, schema) : cJSON_CreateObject();
    const char *desc = cm_json_str(rb, "description");
    if (desc && cJSON_IsObject(s) && !cJSON_GetObjectItemCaseSensitive(s, "description"))
        cJSON_AddStringToObject(s, "description", desc);
    cJSON_AddItemToObject(props, "body", s);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rb, "required")))
        cJSON_AddItemToArray(required, cJSON_CreateString("body"));
    return cm_xstrdup(ct ? ct : "application/json");
}

static cJSON *output_schema(const cJSON *doc, cm_oa_budget *budget, const cJSON *op)
{
    const cJSON *responses = cJSON_GetObjectItemCaseSensitive(op, "responses");
    static const char *const codes[] = {"200", "201", "202", "default"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(responses, codes[i]);
        if (!r)
            continue;
        const cJSON *rr = cm_oa_deref(doc, r);
        const cJSON *media = NULL;
        body_content_type(cJSON_GetObjectItemCaseSensitive(rr, "content"), &media);
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(media, "schema");
        if (!schema)
            schema = cJSON_GetObjectItemCaseSensitive(rr, "schema"); /* Swagger 2 */
        if (schema) {
            cm_oa_schema *sch = cm_oa_schema_new(doc, budget);
            cJSON *out = cm_oa_convert(sch, schema);
            cm_oa_finish(sch, out);
            cm_oa_schema_free(sch);
            return out;
        }
    }
    return cJSON_CreateObject();
}

static cJSON *operation_tool(const cJSON *doc, cm_oa_budget *budget, const cm_oa_auth *auth,
                             const char *base, const char *path, const cJSON *path_item,
                             const char *method, const cJSON *op)
{
    cJSON *tool = cJSON_CreateObject();
    const char *opid = cm_json_str(op, "operationId");
    cm_autofree char *name = opid && *opid ? cm_xstrdup(opid) : derived_name(method, path);
    cJSON_AddStringToObject(tool, "name", name);
    const char *desc = cm_json_str(op, "summary");
    if (!desc)
        desc = cm_json_str(op, "description");
    cJSON_AddStringToObject(tool, "description", desc ? desc : "");
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(op, "tags");
    cJSON_AddItemToObject(tool, "tags",
                          cJSON_IsArray(tags) ? cJSON_Duplicate(tags, 1) : cJSON_CreateArray());
    cJSON *inputs = cJSON_AddObjectToObject(tool, "inputs");
    cJSON_AddStringToObject(inputs, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(inputs, "properties");
    cJSON *required = cJSON_CreateArray();
    cJSON *header_fields = cJSON_CreateArray();
    cm_oa_schema *sch = cm_oa_schema_new(doc, budget);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(path_item, "parameters"))
        add_param(doc, sch, p, props, required, header_fields);
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(op, "parameters"))
        add_param(doc, sch, p, props, required, header_fields);
    cm_autofree char *ct = add_request_body(doc, sch, op, props, required);
    if (!ct && cJSON_GetObjectItemCaseSensitive(props, "body"))
        ct = cm_xstrdup("application/json");
    cJSON_AddItemToObject(inputs, "required", required);
    cm_oa_finish(sch, inputs); /* the parameters' shared schemas, once, in inputs.$defs */
    cm_oa_schema_free(sch);
    cJSON_AddItemToObject(tool, "outputs", output_schema(doc, budget, op));
    cJSON *t = cJSON_AddObjectToObject(tool, "tool_call_template");
    cJSON_AddStringToObject(t, "call_template_type", "http");
    char upper[8] = {0};
    for (size_t i = 0; method[i] && i < 7; i++)
        upper[i] = (char)toupper((unsigned char)method[i]);
    cJSON_AddStringToObject(t, "http_method", upper);
    cm_autofree char *url = NULL;
    if (asprintf(&url, "%s%s", base, path) < 0)
        abort();
    cJSON_AddStringToObject(t, "url", url);
    cJSON_AddStringToObject(t, "content_type", ct ? ct : "application/json");
    if (ct)
        cJSON_AddStringToObject(t, "body_field", "body");
    if (cJSON_GetArraySize(header_fields))
        cJSON_AddItemToObject(t, "header_fields", header_fields);
    else
        cJSON_Delete(header_fields);
    cm_oa_auth_apply(auth, op, t);
    return tool;
}

static int count_operations(const cJSON *doc, const cJSON *paths)
{
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, paths)
    {
        const cJSON *pi = cm_oa_deref(doc, item);
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
            n += cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(pi, methods[i]));
    }
    return n;
}

static void put_size(char *buf, size_t len, size_t bytes)
{
    if (bytes >= (1u << 20) && !(bytes % (1u << 20)))
        snprintf(buf, len, "%zu MiB", bytes >> 20);
    else
        snprintf(buf, len, "%zu bytes", bytes);
}

int cm_openapi_to_manual(const cJSON *doc, const char *spec_url, const cm_call_ctx *ctx,
                         cJSON **manual, cm_error *err)
{
    if (!cm_openapi_detect(doc))
        return cm_error_set(err, CM_ERR_CONFIG, "not an OpenAPI/Swagger document");
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    if (!cJSON_IsObject(paths))
        return cm_error_set(err, CM_ERR_CONFIG, "OpenAPI document: paths: must be an object");
    cm_reg_limits lim = cm_reg_limits_or_default(ctx ? ctx->reg : NULL);
    int nops = count_operations(doc, paths);
    if (nops > lim.max_tools)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "OpenAPI document has %d operations, over "
                            "engine.registration.max_tools (%d); raise it or register a "
                            "smaller description",
                            nops, lim.max_tools);
    cm_autofree char *base = NULL;
    const cJSON *mt = ctx ? ctx->manual_tmpl : NULL;
    if (base_url(doc, spec_url, mt, &base, err) < 0)
        return cm_error_prefix(err, "OpenAPI document");
    cm_oa_auth auth;
    cm_oa_auth_init(&auth, doc, mt, spec_url, base);
    cm_autofree op_ref *ops = cm_xcalloc((size_t)nops + 1, sizeof *ops);
    cm_autojson cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "utcp_version", "1.0.1");
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(doc, "info");
    const char *version = cm_json_str(info, "version");
    cJSON_AddStringToObject(m, "manual_version", version ? version : "1.0.0");
    cJSON *tools = cJSON_AddArrayToObject(m, "tools");
    cm_oa_budget budget = {.left = lim.max_schema_bytes};
    int64_t deadline = ctx ? ctx->deadline_ms : 0;
    int done = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, paths)
    {
        const cJSON *pi = cm_oa_deref(doc, item);
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
            const cJSON *op = cJSON_GetObjectItemCaseSensitive(pi, methods[i]);
            if (!cJSON_IsObject(op))
                continue;
            cJSON_AddItemToArray(
                tools, operation_tool(doc, &budget, &auth, base, item->string, pi, methods[i], op));
            const char *opid = cm_json_str(op, "operationId");
            ops[done] = (op_ref){methods[i], item->string, opid && *opid};
            done++;
            if (budget.over) {
                char size[32];
                put_size(size, sizeof size, lim.max_schema_bytes);
                return cm_error_set(err, CM_ERR_CONFIG,
                                    "OpenAPI document: the tool schemas take more than "
                                    "engine.registration.max_schema_bytes (%s) at operation "
                                    "%d of %d (%s %.200s); raise it or register a smaller "
                                    "description",
                                    size, done, nops, methods[i], item->string);
            }
            if (deadline && cm_now_ms() > deadline)
                return cm_error_set(err, CM_ERR_TIMEOUT,
                                    "OpenAPI document: converting took longer than "
                                    "engine.registration.timeout_s (%d s) at operation %d of %d; "
                                    "raise it or register a smaller description",
                                    lim.timeout_s, done, nops);
        }
    }
    size_t mlen = ctx && ctx->manual_name ? strlen(ctx->manual_name) + 1 : 0;
    assign_names(tools, ops, done, mlen + 16 < TOOL_NAME_MAX ? TOOL_NAME_MAX - mlen : 16);
    *manual = cm_steal_ptr(&m);
    return 0;
}
