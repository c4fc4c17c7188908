/* http.c — the UTCP `http` provider: tool calls over libcurl (through
 * http_client.c) and manual discovery from a URL serving a UTCP manual or an
 * OpenAPI/Swagger document.
 *
 * Why it exists: REST APIs are the most common tools.  This file owns the
 * UTCP mapping of arguments onto a request (headers, body, path, query),
 * the auth kinds (api_key, basic, oauth2 client credentials with a token
 * cache that refreshes), and the mapping of the response (JSON parsed when
 * the Content-Type says so, status >= 400 → tool_error with an excerpt). */
#include "http.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http_client.h"
#include "openapi.h"
#include "text_file.h"

#define CALL_TIMEOUT_MS 30000
#define DISCOVERY_TIMEOUT_MS 10000
#define EXCERPT_BYTES 500

struct cm_oauth_token {
    char *key; /* token_url \n client_id \n scope */
    char *access_token;
    int64_t expires_ms; /* cm_now_ms() after which it is refreshed */
    cm_oauth_token *next;
};

void cm_http_mapped_free(cm_http_mapped *m)
{
    free(m->url);
    curl_slist_free_all(m->headers);
    free(m->body);
    memset(m, 0, sizeof *m);
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static char *scalar_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return cm_xstrdup(v->valuestring);
    if (cJSON_IsBool(v))
        return cm_xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    return cm_json_print(v);
}

static int add_header(struct curl_slist **h, const char *name, const char *value, cm_error *err)
{
    if (!*name || has_crlf(name) || strchr(name, ':'))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "header name '%.60s' is invalid (CR/LF, ':' "
                            "or empty)",
                            name);
    if (has_crlf(value))
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "header '%s': value contains CR/LF", name);
    cm_autofree char *line = NULL;
    if (asprintf(&line, "%s: %s", name, value) < 0)
        abort();
    *h = curl_slist_append(*h, line);
    return 0;
}

static void append_escaped(cm_buf *b, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    cm_error ignored;
    cm_buf_append(b, e, strlen(e), &ignored);
    curl_free(e);
}

static void append_query_pair(cm_buf *q, const char *key, const cJSON *v)
{
    cm_error ignored;
    cm_autofree char *text = scalar_text(v);
    if (q->len)
        cm_buf_append(q, "&", 1, &ignored);
    append_escaped(q, key);
    cm_buf_append(q, "=", 1, &ignored);
    append_escaped(q, text);
}

static bool is_scalar(const cJSON *v)
{
    return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v);
}

/* key=v for scalars, repeated key for arrays of scalars, JSON otherwise. */
static void append_query_arg(cm_buf *q, const char *key, const cJSON *v)
{
    if (cJSON_IsNull(v))
        return;
    if (cJSON_IsArray(v)) {
        bool flat = true;
        const cJSON *e;
        cJSON_ArrayForEach(e, v) flat = flat && is_scalar(e);
        if (flat) {
            cJSON_ArrayForEach(e, v) append_query_pair(q, key, e);
            return;
        }
    }
    append_query_pair(q, key, v);
}

/* Replaces `{name}` in the URL with the escaped argument and removes the
 * argument from `rest`. */
static int substitute_path(const char *url, cJSON *rest, cm_buf *out, cm_error *err)
{
    cm_error ignored;
    for (const char *p = url; *p;) {
        const char *open = strchr(p, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        if (!open || !close) {
            cm_buf_append(out, p, strlen(p), &ignored);
            break;
        }
        cm_buf_append(out, p, (size_t)(open - p), &ignored);
        cm_autofree char *name = strndup(open + 1, (size_t)(close - open - 1));
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(rest, name);
        if (!v || cJSON_IsNull(v)) {
            cJSON_Delete(v);
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "missing path parameter '%s'", name);
        }
        cm_autofree char *text = scalar_text(v);
        cJSON_Delete(v);
        append_escaped(out, text);
        p = close + 1;
    }
    return 0;
}

static int template_headers(const cJSON *tmpl, struct curl_slist **h, cm_error *err)
{
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(tmpl, "headers");
    if (!hs || cJSON_IsNull(hs))
        return 0;
    if (!cJSON_IsObject(hs))
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "headers: must be an object");
    const cJSON *v;
    cJSON_ArrayForEach(v, hs)
    {
        cm_autofree char *text = scalar_text(v);
        if (add_header(h, v->string, text, err) < 0)
            return -1;
    }
    return 0;
}

static int header_field_args(const cJSON *tmpl, cJSON *rest, struct curl_slist **h, cm_error *err)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(tmpl, "header_fields");
    if (!fields || cJSON_IsNull(fields))
        return 0;
    if (!cJSON_IsArray(fields))
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "header_fields: must be an array of strings");
    const cJSON *f;
    cJSON_ArrayForEach(f, fields)
    {
        if (!cJSON_IsString(f))
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "header_fields: must be an array of strings");
        cm_autojson cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(rest, f->valuestring);
        if (!v || cJSON_IsNull(v))
            continue;
        cm_autofree char *text = scalar_text(v);
        if (add_header(h, f->valuestring, text, err) < 0)
            return -1;
    }
    return 0;
}

static const char *content_type_of(const cJSON *tmpl)
{
    const char *ct = cm_json_str(tmpl, "content_type");
    return ct && *ct ? ct : "application/json";
}

static void form_encode(const cJSON *body, cm_buf *out)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, body) append_query_arg(out, v->string, v);
}

static void encode_body(const cJSON *tmpl, const cJSON *body, cm_http_mapped *out)
{
    const char *ct = content_type_of(tmpl);
    if (cm_http_is_json_type(ct)) {
        out->body = cm_json_print(body);
    } else if (strstr(ct, "x-www-form-urlencoded") && cJSON_IsObject(body)) {
        cm_buf b = {0};
        form_encode(body, &b);
        out->body = b.data ? b.data : cm_xstrdup("");
    } else {
        out->body = scalar_text(body);
    }
    out->body_len = strlen(out->body);
}

/* Path and query part of the mapping; `rest` holds the unconsumed args. */
static int map_url(const char *url, cJSON *rest, cm_http_mapped *out, cm_error *err)
{
    cm_buf u = {0}, q = {0};
    if (substitute_path(url, rest, &u, err) < 0) {
        cm_buf_free(&u);
        return -1;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, rest) append_query_arg(&q, v->string, v);
    if (q.len) {
        cm_error ignored;
        cm_buf_append(&u, strchr(u.data, '?') ? "&" : "?", 1, &ignored);
        cm_buf_append(&u, q.data, q.len, &ignored);
    }
    cm_buf_free(&q);
    out->url = u.data ? u.data : cm_xstrdup("");
    return 0;
}

static int map_all(const cJSON *tmpl, cJSON *rest, cm_http_mapped *out, cm_error *err)
{
    if (template_headers(tmpl, &out->headers, err) < 0 ||
        header_field_args(tmpl, rest, &out->headers, err) < 0)
        return -1;
    const char *body_field = cm_json_str(tmpl, "body_field");
    cm_autojson cJSON *body =
        cJSON_DetachItemFromObjectCaseSensitive(rest, body_field ? body_field : "body");
    if (body && !cJSON_IsNull(body)) {
        encode_body(tmpl, body, out);
        if (add_header(&out->headers, "Content-Type", content_type_of(tmpl), err) < 0)
            return -1;
    }
    return map_url(cm_json_str(tmpl, "url"), rest, out, err);
}

int cm_http_map_args(const cJSON *tmpl, const cJSON *args, cm_http_mapped *out, cm_error *err)
{
    memset(out, 0, sizeof *out);
    const char *url = cm_json_str(tmpl, "url");
    if (!url || !*url)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "url: must be a non-empty string");
    cm_autojson cJSON *rest =
        args && cJSON_IsObject(args) ? cJSON_Duplicate(args, 1) : cJSON_CreateObject();
    if (map_all(tmpl, rest, out, err) < 0) {
        cm_http_mapped_free(out);
        return -1;
    }
    return 0;
}

/* ---- auth ------------------------------------------------------------- */

static void append_url_param(char **url, const char *name, const char *value)
{
    cm_buf b = {0};
    cm_error ignored;
    cm_buf_append(&b, *url, strlen(*url), &ignored);
    cm_buf_append(&b, strchr(*url, '?') ? "&" : "?", 1, &ignored);
    append_escaped(&b, name);
    cm_buf_append(&b, "=", 1, &ignored);
    append_escaped(&b, value);
    free(*url);
    *url = b.data;
}

static int apply_api_key(const cJSON *auth, cm_http_mapped *m, cm_error *err)
{
    const char *key = cm_json_str(auth, "api_key");
    const char *name = cm_json_str(auth, "var_name");
    const char *loc = cm_json_str(auth, "location");
    if (!key)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "auth.api_key: missing");
    if (!name)
        name = "X-Api-Key";
    if (!loc || !strcmp(loc, "header"))
        return add_header(&m->headers, name, key, err);
    if (!strcmp(loc, "query")) {
        append_url_param(&m->url, name, key);
        return 0;
    }
    if (!strcmp(loc, "cookie")) {
        cm_autofree char *c = NULL;
        if (asprintf(&c, "%s=%s", name, key) < 0)
            abort();
        return add_header(&m->headers, "Cookie", c, err);
    }
    return cm_error_set(err, CM_ERR_TOOL_ERROR,
                        "auth.location: must be header, query or cookie (got '%s')", loc);
}

static char *token_key(const cJSON *auth)
{
    char *k = NULL;
    const char *scope = cm_json_str(auth, "scope");
    if (asprintf(&k, "%s\n%s\n%s", cm_json_str(auth, "token_url"), cm_json_str(auth, "client_id"),
                 scope ? scope : "") < 0)
        abort();
    return k;
}

static char *cached_token(cm_providers *p, const char *key)
{
    char *tok = NULL;
    pthread_mutex_lock(&p->lock);
    for (cm_oauth_token *t = p->tokens; t; t = t->next)
        if (!strcmp(t->key, key) && cm_now_ms() < t->expires_ms)
            tok = cm_xstrdup(t->access_token);
    pthread_mutex_unlock(&p->lock);
    return tok;
}

static void store_token(cm_providers *p, const char *key, const char *token, double expires_in)
{
    pthread_mutex_lock(&p->lock);
    cm_oauth_token *t = p->tokens;
    while (t && strcmp(t->key, key))
        t = t->next;
    if (!t) {
        t = cm_xcalloc(1, sizeof *t);
        t->key = cm_xstrdup(key);
        t->next = p->tokens;
        p->tokens = t;
    }
    free(t->access_token);
    t->access_token = cm_xstrdup(token);
    /* refresh 30 s early (or at half-life for short-lived tokens) */
    double margin = expires_in > 60 ? 30 : expires_in / 2;
    t->expires_ms = cm_now_ms() + (int64_t)((expires_in - margin) * 1000);
    pthread_mutex_unlock(&p->lock);
}

static void forget_token(cm_providers *p, const char *key)
{
    pthread_mutex_lock(&p->lock);
    for (cm_oauth_token *t = p->tokens; t; t = t->next)
        if (!strcmp(t->key, key))
            t->expires_ms = 0;
    pthread_mutex_unlock(&p->lock);
}

void cm_oauth_tokens_free(cm_providers *p)
{
    while (p->tokens) {
        cm_oauth_token *t = p->tokens;
        p->tokens = t->next;
        free(t->key);
        free(t->access_token);
        free(t);
    }
}

static int fetch_token(const cJSON *auth, const cm_call_ctx *ctx, char **token, double *expires_in,
                       cm_error *err)
{
    const char *url = cm_json_str(auth, "token_url");
    cm_buf form = {0};
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "grant_type", "client_credentials");
    cJSON_AddStringToObject(f, "client_id", cm_json_str(auth, "client_id"));
    cJSON_AddStringToObject(f, "client_secret", cm_json_str(auth, "client_secret"));
    if (cm_json_str(auth, "scope"))
        cJSON_AddStringToObject(f, "scope", cm_json_str(auth, "scope"));
    form_encode(f, &form);
    cJSON_Delete(f);
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    h = curl_slist_append(h, "Accept: application/json");
    cm_http_req req = {.method = "POST",
                       .url = url,
                       .headers = h,
                       .body = form.data,
                       .body_len = form.len,
                       .max_bytes = 1 << 20,
                       .deadline_ms = ctx->deadline_ms,
                       .cancel = ctx->cancel,
                       .egress = ctx->egress};
    cm_http_resp resp;
    int rc = cm_http_perform(ctx->providers, &req, &resp, err);
    curl_slist_free_all(h);
    cm_buf_free(&form);
    if (rc < 0)
        return cm_error_prefix(err, "oauth2 token");
    cm_autojson cJSON *j =
        resp.status < 300 ? cJSON_Parse(resp.body.data ? resp.body.data : "") : NULL;
    const char *tok = cm_json_str(j, "access_token");
    if (!tok) {
        cm_autofree char *u = cm_http_url_for_message(url);
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth2 token %s: status %ld, no access_token", u,
                          resp.status);
        cm_http_resp_free(&resp);
        return rc;
    }
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    *expires_in = cJSON_IsNumber(exp) && exp->valuedouble > 0 ? exp->valuedouble : 3600;
    *token = cm_xstrdup(tok);
    cm_http_resp_free(&resp);
    return 0;
}

static int apply_oauth2(const cJSON *auth, const cm_call_ctx *ctx, cm_http_mapped *m, cm_error *err)
{
    if (!cm_json_str(auth, "token_url") || !cm_json_str(auth, "client_id") ||
        !cm_json_str(auth, "client_secret"))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "auth oauth2: token_url, client_id and client_secret are required");
    cm_autofree char *key = token_key(auth);
    cm_autofree char *tok = cached_token(ctx->providers, key);
    if (!tok) {
        double expires_in = 0;
        if (fetch_token(auth, ctx, &tok, &expires_in, err) < 0)
            return -1;
        store_token(ctx->providers, key, tok, expires_in);
    }
    cm_autofree char *bearer = NULL;
    if (asprintf(&bearer, "Bearer %s", tok) < 0)
        abort();
    return add_header(&m->headers, "Authorization", bearer, err);
}

typedef struct auth_out {
    const char *username, *password;
    char *oauth_key; /* set when an oauth2 token was used */
} auth_out;

static int apply_auth(const cJSON *tmpl, const cm_call_ctx *ctx, cm_http_mapped *m, auth_out *a,
                      cm_error *err)
{
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(tmpl, "auth");
    if (!auth || cJSON_IsNull(auth))
        return 0;
    const char *type = cm_json_str(auth, "auth_type");
    if (!type)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "auth.auth_type: missing");
    if (!strcmp(type, "api_key"))
        return apply_api_key(auth, m, err);
    if (!strcmp(type, "basic")) {
        a->username = cm_json_str(auth, "username");
        a->password = cm_json_str(auth, "password");
        if (!a->username)
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "auth basic: username missing");
        return 0;
    }
    if (!strcmp(type, "oauth2")) {
        a->oauth_key = token_key(auth);
        return apply_oauth2(auth, ctx, m, err);
    }
    return cm_error_set(err, CM_ERR_TOOL_ERROR, "auth.auth_type '%s' is not supported", type);
}

/* ---- the call ---------------------------------------------------------- */

static int substituted(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **out, cm_error *err)
{
    if (!ctx->vars) {
        *out = cJSON_Duplicate(tmpl, 1);
        return 0;
    }
    return cm_vars_substitute(ctx->vars, ctx->manual_name, tmpl, out, err);
}

static const char *method_of(const cJSON *tmpl, cm_error *err)
{
    const char *m = cm_json_str(tmpl, "http_method");
    if (!m)
        return "GET";
    static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcasecmp(m, ok[i]))
            return ok[i];
    cm_error_set(err, CM_ERR_TOOL_ERROR, "http_method '%s' is not supported", m);
    return NULL;
}

static cJSON *text_value(const cm_buf *b)
{
    if (!b->data || !b->len)
        return cJSON_CreateString("");
    if (memchr(b->data, '\0', b->len) || !cm_utf8_valid(b->data, b->len))
        return cJSON_CreateString("(binary content)");
    return cJSON_CreateString(b->data);
}

static cJSON *response_value(const cm_http_resp *r)
{
    if (cm_http_is_json_type(r->content_type) && r->body.len) {
        cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
        if (j)
            return j;
    }
    if (!r->body.len)
        return cJSON_CreateNull();
    return text_value(&r->body);
}

static int status_error(const cm_http_resp *r, const char *method, const char *url, cm_error *err)
{
    size_t n = r->body.len < EXCERPT_BYTES ? r->body.len : EXCERPT_BYTES;
    cm_autofree char *excerpt = strndup(r->body.data ? r->body.data : "", n);
    if (!cm_utf8_valid(excerpt, strlen(excerpt)))
        excerpt[0] = '\0';
    return cm_error_set(err, CM_ERR_TOOL_ERROR, "http %s %s: status %ld: %s", method, url,
                        r->status, excerpt);
}

static int http_once(const cJSON *t, const cJSON *args, const cm_call_ctx *ctx, const char *method,
                     cm_http_resp *resp, char **oauth_key, cm_error *err)
{
    cm_http_mapped m;
    if (cm_http_map_args(t, args, &m, err) < 0)
        return -1;
    auth_out a = {0};
    int rc = apply_auth(t, ctx, &m, &a, err);
    *oauth_key = a.oauth_key;
    if (rc == 0) {
        cm_http_req req = {.method = method,
                           .url = m.url,
                           .headers = m.headers,
                           .body = m.body,
                           .body_len = m.body_len,
                           .username = a.username,
                           .password = a.password,
                           .max_bytes = ctx->max_output_bytes ? ctx->max_output_bytes : 0,
                           .deadline_ms = ctx->deadline_ms,
                           .cancel = ctx->cancel,
                       .egress = ctx->egress};
        int64_t cap = cm_now_ms() + CALL_TIMEOUT_MS;
        if (!req.deadline_ms || req.deadline_ms > cap)
            req.deadline_ms = cap;
        rc = cm_http_perform(ctx->providers, &req, resp, err);
    }
    cm_http_mapped_free(&m);
    return rc;
}

int cm_http_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                 cm_error *err)
{
    const char *raw_url = cm_json_str(tmpl, "url");
    cm_autofree char *shown = cm_http_url_for_message(raw_url ? raw_url : "(no url)");
    cm_autojson cJSON *t = NULL;
    if (substituted(tmpl, ctx, &t, err) < 0) {
        err->kind = CM_ERR_TOOL_ERROR;
        return cm_error_prefix(err, "http %s", shown);
    }
    const char *method = method_of(t, err);
    if (!method)
        return cm_error_prefix(err, "http %s", shown);
    cm_http_resp resp;
    for (int attempt = 0;; attempt++) {
        cm_autofree char *oauth_key = NULL;
        if (http_once(t, args, ctx, method, &resp, &oauth_key, err) < 0)
            return cm_error_prefix(err, "http %s %s", method, shown);
        /* a cached token the server no longer accepts: refresh once */
        if (resp.status == 401 && oauth_key && attempt == 0) {
            forget_token(ctx->providers, oauth_key);
            cm_http_resp_free(&resp);
            continue;
        }
        break;
    }
    int rc = 0;
    if (resp.status >= 400)
        rc = status_error(&resp, method, shown, err);
    else
        *result = response_value(&resp);
    cm_http_resp_free(&resp);
    return rc;
}

/* ---- discovery ------------------------------------------------------- */

int cm_manual_from_document(cJSON *doc, const char *spec_url, const char *what, cJSON **manual,
                            cm_error *err)
{
    if (cJSON_IsObject(doc) && cm_openapi_detect(doc))
        return cm_openapi_to_manual(doc, spec_url, manual, err);
    if (cJSON_IsObject(doc) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "tools"))) {
        *manual = cJSON_Duplicate(doc, 1);
        return 0;
    }
    return cm_error_set(err, CM_ERR_CONFIG,
                        "%s is neither a UTCP manual (utcp_version + tools) nor an OpenAPI/Swagger "
                        "document (openapi/swagger key)",
                        what);
}

int cm_http_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual,
                     cm_error *err)
{
    const char *raw_url = cm_json_str(manual_tmpl, "url");
    cm_autofree char *shown = cm_http_url_for_message(raw_url ? raw_url : "(no url)");
    cm_autojson cJSON *t = NULL;
    if (substituted(manual_tmpl, ctx, &t, err) < 0)
        return cm_error_prefix(err, "http manual %s", shown);
    cm_call_ctx c = *ctx;
    int64_t cap = cm_now_ms() + DISCOVERY_TIMEOUT_MS;
    if (!c.deadline_ms || c.deadline_ms > cap)
        c.deadline_ms = cap;
    c.max_output_bytes = 16u << 20;
    cm_http_resp resp;
    char *oauth_key = NULL;
    /* discovery is a GET without arguments, whatever the template's method */
    int rc = http_once(t, NULL, &c, "GET", &resp, &oauth_key, err);
    free(oauth_key);
    if (rc < 0) {
        err->kind = err->kind == CM_ERR_POLICY_DENIED ? err->kind : CM_ERR_CONFIG;
        return cm_error_prefix(err, "http manual %s", shown);
    }
    if (resp.status >= 400) {
        status_error(&resp, "GET", shown, err);
        err->kind = CM_ERR_CONFIG;
        cm_http_resp_free(&resp);
        return cm_error_prefix(err, "http manual");
    }
    cm_autojson cJSON *doc = NULL;
    rc = cm_parse_json_or_yaml(resp.body.data ? resp.body.data : "", resp.body.len, "response",
                               &doc, err);
    cm_http_resp_free(&resp);
    if (rc < 0 ||
        cm_manual_from_document(doc, cm_json_str(t, "url"), "response", manual, err) < 0) {
        err->kind = CM_ERR_CONFIG;
        return cm_error_prefix(err, "http manual %s", shown);
    }
    return 0;
}
