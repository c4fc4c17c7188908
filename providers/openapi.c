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

static int base_url(const cJSON *doc, const char *spec_url, char **out, cm_error *err)
{
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(doc, "servers");
    const char *s0 = cm_json_str(cJSON_GetArrayItem(servers, 0), "url");
    if (s0) {
        if (strstr(s0, "://")) {
            *out = strip_slash(cm_xstrdup(s0));
            return 0;
        }
        if (spec_url && (*out = join_url(spec_url, s0)))
            return strip_slash(*out), 0;
        return cm_error_set(err, CM_ERR_CONFIG,
                            "servers[0].url '%s' is relative and the document has no URL", s0);
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
        char *o = cm_http_origin(spec_url);
        if (o && (*out = join_url(spec_url, "/")))
            return free(o), strip_slash(*out), 0;
        free(o);
    }
    return cm_error_set(err, CM_ERR_CONFIG,
                        "no servers, host or document URL: cannot derive the API's base URL");
}

/* ---- security → auth ------------------------------------------------- */

static const cJSON *security_schemes(const cJSON *doc)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(doc, "components");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "securitySchemes");
    return s ? s : cJSON_GetObjectItemCaseSensitive(doc, "securityDefinitions");
}

static int scheme_index(const cJSON *schemes, const char *name)
{
    int i = 1;
    const cJSON *s;
    cJSON_ArrayForEach(s, schemes)
    {
        if (!strcmp(s->string, name))
            return i;
        i++;
    }
    return 0;
}

static cJSON *var_ref(const char *prefix, const char *base, int n)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s${%s_%d}", prefix, base, n);
    return cJSON_CreateString(buf);
}

static cJSON *auth_for_scheme(const cJSON *sch, int n)
{
    const char *type = cm_json_str(sch, "type");
    const char *scheme = cm_json_str(sch, "scheme");
    cJSON *a = cJSON_CreateObject();
    if (type && !strcmp(type, "apiKey")) {
        cJSON_AddStringToObject(a, "auth_type", "api_key");
        cJSON_AddItemToObject(a, "api_key", var_ref("", "API_KEY", n));
        const char *name = cm_json_str(sch, "name");
        cJSON_AddStringToObject(a, "var_name", name ? name : "X-Api-Key");
        const char *in = cm_json_str(sch, "in");
        cJSON_AddStringToObject(a, "location", in ? in : "header");
    } else if (type && ((!strcmp(type, "http") && scheme && !strcasecmp(scheme, "basic")) ||
                        !strcmp(type, "basic"))) {
        cJSON_AddStringToObject(a, "auth_type", "basic");
        cJSON_AddItemToObject(a, "username", var_ref("", "USERNAME", n));
        cJSON_AddItemToObject(a, "password", var_ref("", "PASSWORD", n));
    } else if (type && !strcmp(type, "http") && scheme && !strcasecmp(scheme, "bearer")) {
        cJSON_AddStringToObject(a, "auth_type", "api_key");
        cJSON_AddItemToObject(a, "api_key", var_ref("Bearer ", "API_KEY", n));
        cJSON_AddStringToObject(a, "var_name", "Authorization");
        cJSON_AddStringToObject(a, "location", "header");
    } else if (type && !strcmp(type, "oauth2")) {
        const cJSON *flows = cJSON_GetObjectItemCaseSensitive(sch, "flows");
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(flows, "clientCredentials");
        const char *tok = cm_json_str(cc, "tokenUrl");
        if (!tok)
            tok = cm_json_str(sch, "tokenUrl"); /* Swagger 2 */
        if (!tok) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddStringToObject(a, "auth_type", "oauth2");
        cJSON_AddStringToObject(a, "token_url", tok);
        cJSON_AddItemToObject(a, "client_id", var_ref("", "CLIENT_ID", n));
        cJSON_AddItemToObject(a, "client_secret", var_ref("", "CLIENT_SECRET", n));
    } else {
        cJSON_Delete(a);
        return NULL;
    }
    return a;
}

/* Auth for an operation: its `security` (or the document's), first
 * requirement with a scheme we can express. */
static cJSON *operation_auth(const cJSON *doc, const cJSON *op)
{
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(op, "security");
    if (!sec)
        sec = cJSON_GetObjectItemCaseSensitive(doc, "security");
    const cJSON *schemes = security_schemes(doc);
    const cJSON *req;
    cJSON_ArrayForEach(req, sec)
    {
        const cJSON *name;
        cJSON_ArrayForEach(name, req)
        {
            const cJSON *sch = cJSON_GetObjectItemCaseSensitive(schemes, name->string);
            cJSON *a = sch ? auth_for_scheme(sch, scheme_index(schemes, name->string)) : NULL;
            if (a)
                return a;
        }
    }
    return NULL;
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

static cJSON *operation_tool(const cJSON *doc, cm_oa_budget *budget, const char *base,
                             const char *path, const cJSON *path_item, const char *method,
                             const cJSON *op)
{
    cJSON *tool = cJSON_CreateObject();
    const char *opid = cm_json_str(op, "operationId");
    cm_autofree char *name = opid ? cm_xstrdup(opid) : derived_name(method, path);
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
    cJSON *auth = operation_auth(doc, op);
    if (auth)
        cJSON_AddItemToObject(t, "auth", auth);
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
    if (base_url(doc, spec_url, &base, err) < 0)
        return cm_error_prefix(err, "OpenAPI document");
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
                tools, operation_tool(doc, &budget, base, item->string, pi, methods[i], op));
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
    *manual = cm_steal_ptr(&m);
    return 0;
}
