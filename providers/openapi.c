/* openapi.c — converts an OpenAPI 3.x or Swagger 2.0 document into a UTCP
 * manual whose tools are `http` call templates.
 *
 * Why it exists: most HTTP APIs publish OpenAPI, not UTCP.  Unlike the
 * reference SDKs this resolves `$ref` at any depth (cycles are cut, never
 * expanded forever), always emits `type: object` inputs with `required`, and
 * is only used for documents that say they are OpenAPI. */
#include "openapi.h"

#include <ctype.h>
#include <string.h>

#include "http_client.h"
#include "util.h"

#define MAX_REF_DEPTH 64

static const char *const methods[] = {"get", "post", "put", "patch", "delete"};

bool cm_openapi_detect(const cJSON *doc)
{
    return cJSON_IsObject(doc) && (cJSON_GetObjectItemCaseSensitive(doc, "openapi") ||
                                   cJSON_GetObjectItemCaseSensitive(doc, "swagger"));
}

/* Follows a local JSON pointer ("#/a/b"), with ~0/~1 unescaping. */
static const cJSON *follow_pointer(const cJSON *doc, const char *ref)
{
    if (strncmp(ref, "#/", 2))
        return NULL;
    const cJSON *cur = doc;
    const char *p = ref + 2;
    while (cur && *p) {
        size_t n = strcspn(p, "/");
        cm_autofree char *key = cm_xmalloc(n + 1);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                key[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                key[k++] = p[i];
            }
        }
        key[k] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n;
        if (*p == '/')
            p++;
    }
    return cur;
}

typedef struct ref_stack {
    const char *refs[MAX_REF_DEPTH];
    int n;
} ref_stack;

static bool on_stack(const ref_stack *s, const char *ref)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->refs[i], ref))
            return true;
    return false;
}

static cJSON *resolve_in(const cJSON *doc, const cJSON *node, ref_stack *st)
{
    if (cJSON_IsArray(node)) {
        cJSON *a = cJSON_CreateArray();
        const cJSON *e;
        cJSON_ArrayForEach(e, node) cJSON_AddItemToArray(a, resolve_in(doc, e, st));
        return a;
    }
    if (!cJSON_IsObject(node))
        return cJSON_Duplicate(node, 1);
    const char *ref = cm_json_str(node, "$ref");
    if (ref) {
        const cJSON *target = follow_pointer(doc, ref);
        if (!target || on_stack(st, ref) || st->n >= MAX_REF_DEPTH) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "object");
            cJSON_AddStringToObject(o, "description",
                                    target ? "recursive reference (not expanded)"
                                           : "unresolved reference");
            cJSON_AddStringToObject(o, "x-ref", ref);
            return o;
        }
        st->refs[st->n++] = ref;
        cJSON *r = resolve_in(doc, target, st);
        st->n--;
        return r;
    }
    cJSON *o = cJSON_CreateObject();
    const cJSON *e;
    cJSON_ArrayForEach(e, node) cJSON_AddItemToObject(o, e->string, resolve_in(doc, e, st));
    return o;
}

cJSON *cm_openapi_resolve(const cJSON *doc, const cJSON *schema)
{
    ref_stack st = {.n = 0};
    return resolve_in(doc, schema, &st);
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

static void add_param(const cJSON *doc, const cJSON *param, cJSON *props, cJSON *required,
                      cJSON *header_fields)
{
    cm_autojson cJSON *p = cm_openapi_resolve(doc, param);
    const char *name = cm_json_str(p, "name");
    const char *in = cm_json_str(p, "in");
    if (!name || !in || !strcmp(in, "cookie"))
        return;
    if (!strcmp(in, "body")) { /* Swagger 2 body parameter */
        cJSON *s = cJSON_DetachItemFromObjectCaseSensitive(p, "schema");
        cJSON_DeleteItemFromObjectCaseSensitive(props, "body");
        cJSON_AddItemToObject(props, "body", s ? s : cJSON_CreateObject());
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "required")))
            cJSON_AddItemToArray(required, cJSON_CreateString("body"));
        return;
    }
    cJSON *schema = cJSON_DetachItemFromObjectCaseSensitive(p, "schema");
    if (!schema) { /* Swagger 2 inline type */
        schema = cJSON_CreateObject();
        const char *type = cm_json_str(p, "type");
        cJSON_AddStringToObject(schema, "type", type ? type : "string");
    }
    const char *desc = cm_json_str(p, "description");
    if (desc && !cJSON_GetObjectItemCaseSensitive(schema, "description"))
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

/* Returns the body's content type (caller frees: it may name a key of the
 * resolved request body, which is freed here), NULL without a body. */
static char *add_request_body(const cJSON *doc, const cJSON *op, cJSON *props, cJSON *required)
{
    const cJSON *rb0 = cJSON_GetObjectItemCaseSensitive(op, "requestBody");
    if (!rb0)
        return NULL;
    cm_autojson cJSON *rb = cm_openapi_resolve(doc, rb0);
    const cJSON *media = NULL;
    const char *ct = body_content_type(cJSON_GetObjectItemCaseSensitive(rb, "content"), &media);
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(media, "schema");
    cJSON *s = schema ? cJSON_Duplicate(schema, 1) : cJSON_CreateObject();
    const char *desc = cm_json_str(rb, "description");
    if (desc && !cJSON_GetObjectItemCaseSensitive(s, "description"))
        cJSON_AddStringToObject(s, "description", desc);
    cJSON_AddItemToObject(props, "body", s);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rb, "required")))
        cJSON_AddItemToArray(required, cJSON_CreateString("body"));
    return cm_xstrdup(ct ? ct : "application/json");
}

static cJSON *output_schema(const cJSON *doc, const cJSON *op)
{
    const cJSON *responses = cJSON_GetObjectItemCaseSensitive(op, "responses");
    static const char *const codes[] = {"200", "201", "202", "default"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(responses, codes[i]);
        if (!r)
            continue;
        cm_autojson cJSON *rr = cm_openapi_resolve(doc, r);
        const cJSON *media = NULL;
        body_content_type(cJSON_GetObjectItemCaseSensitive(rr, "content"), &media);
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(media, "schema");
        if (!schema)
            schema = cJSON_GetObjectItemCaseSensitive(rr, "schema"); /* Swagger 2 */
        if (schema)
            return cJSON_Duplicate(schema, 1);
    }
    return cJSON_CreateObject();
}

static cJSON *operation_tool(const cJSON *doc, const char *base, const char *path,
                             const cJSON *path_item, const char *method, const cJSON *op)
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
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(path_item, "parameters"))
        add_param(doc, p, props, required, header_fields);
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(op, "parameters"))
        add_param(doc, p, props, required, header_fields);
    cm_autofree char *ct = add_request_body(doc, op, props, required);
    if (!ct && cJSON_GetObjectItemCaseSensitive(props, "body"))
        ct = cm_xstrdup("application/json");
    cJSON_AddItemToObject(inputs, "required", required);
    cJSON_AddItemToObject(tool, "outputs", output_schema(doc, op));
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

int cm_openapi_to_manual(const cJSON *doc, const char *spec_url, cJSON **manual, cm_error *err)
{
    if (!cm_openapi_detect(doc))
        return cm_error_set(err, CM_ERR_CONFIG, "not an OpenAPI/Swagger document");
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    if (!cJSON_IsObject(paths))
        return cm_error_set(err, CM_ERR_CONFIG, "OpenAPI document: paths: must be an object");
    cm_autofree char *base = NULL;
    if (base_url(doc, spec_url, &base, err) < 0)
        return cm_error_prefix(err, "OpenAPI document");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "utcp_version", "1.0.1");
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(doc, "info");
    const char *version = cm_json_str(info, "version");
    cJSON_AddStringToObject(m, "manual_version", version ? version : "1.0.0");
    cJSON *tools = cJSON_AddArrayToObject(m, "tools");
    const cJSON *item;
    cJSON_ArrayForEach(item, paths)
    {
        cm_autojson cJSON *resolved_item = cm_openapi_resolve(doc, item);
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
            const cJSON *op = cJSON_GetObjectItemCaseSensitive(item, methods[i]);
            if (cJSON_IsObject(op))
                cJSON_AddItemToArray(
                    tools, operation_tool(doc, base, item->string, resolved_item, methods[i], op));
        }
    }
    *manual = m;
    return 0;
}
