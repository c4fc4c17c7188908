/* http.c — the UTCP `http` provider: tool calls over libcurl (through
 * http_client.c) and manual discovery from a URL serving a UTCP manual or an
 * OpenAPI/Swagger document.
 *
 * Why it exists: REST APIs are the most common tools.  This file owns the
 * UTCP mapping of arguments onto a request (headers, body, path, query),
 * the auth kinds (api_key, basic, oauth2 client credentials with a token
 * cache that refreshes), and the mapping of the response (JSON parsed when
 * the Content-Type says so, and a tool_error showing the first bytes when
 * such a body is not JSON; other types as text; status >= 400 → tool_error
 * with an excerpt). */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cm_limits.h"
#include "yamljson.h"
#include "http_client.h"
#include "http_loop.h"
#include "openapi.h"
#include "text_file.h"

#define CALL_TIMEOUT_MS 30000
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

static void append_query_pair(cm_buf *q, const char *key, const cJSON *v)
{
    cm_autofree char *text = scalar_text(v);
    cm_http_form_add(q, key, text);
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
        cm_http_append_escaped(out, text);
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
    cm_http_append_escaped(&b, name);
    cm_buf_append(&b, "=", 1, &ignored);
    cm_http_append_escaped(&b, value);
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

/* The token request of an oauth2 auth (its storage outlives the request). */
typedef struct token_req {
    cm_buf form;
    struct curl_slist *headers;
    cm_http_req req;
} token_req;

static void token_req_free(token_req *t)
{
    cm_buf_free(&t->form);
    curl_slist_free_all(t->headers);
    memset(t, 0, sizeof *t);
}

static void token_req_build(const cJSON *auth, const cm_call_ctx *ctx, token_req *t)
{
    memset(t, 0, sizeof *t);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "grant_type", "client_credentials");
    cJSON_AddStringToObject(f, "client_id", cm_json_str(auth, "client_id"));
    cJSON_AddStringToObject(f, "client_secret", cm_json_str(auth, "client_secret"));
    if (cm_json_str(auth, "scope"))
        cJSON_AddStringToObject(f, "scope", cm_json_str(auth, "scope"));
    form_encode(f, &t->form);
    cJSON_Delete(f);
    t->headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    t->headers = curl_slist_append(t->headers, "Accept: application/json");
    t->req = (cm_http_req){.method = "POST",
                           .url = cm_json_str(auth, "token_url"),
                           .headers = t->headers,
                           .body = t->form.data,
                           .body_len = t->form.len,
                           .max_bytes = 1 << 20,
                           .deadline_ms = ctx->deadline_ms,
                           .cancel = ctx->cancel,
                           .egress = ctx->egress};
}

/* The token endpoint's answer → cached token (*token, caller frees). */
static int token_from_response(const cJSON *auth, const cm_call_ctx *ctx, const cm_http_resp *resp,
                               char **token, cm_error *err)
{
    cm_autojson cJSON *j =
        resp->status < 300 ? cJSON_Parse(resp->body.data ? resp->body.data : "") : NULL;
    const char *tok = cm_json_str(j, "access_token");
    if (!tok) {
        cm_autofree char *u = cm_http_url_for_message(cm_json_str(auth, "token_url"));
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth2 token %s: status %ld, no access_token",
                            u, resp->status);
    }
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    double expires_in = cJSON_IsNumber(exp) && exp->valuedouble > 0 ? exp->valuedouble : 3600;
    cm_autofree char *key = token_key(auth);
    store_token(ctx->providers, key, tok, expires_in);
    *token = cm_xstrdup(tok);
    return 0;
}

static int oauth2_fields_ok(const cJSON *auth, cm_error *err)
{
    if (!cm_json_str(auth, "token_url") || !cm_json_str(auth, "client_id") ||
        !cm_json_str(auth, "client_secret"))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "auth oauth2: token_url, client_id and client_secret are required");
    return 0;
}

/* Blocking: the cached token, else one fetched now. */
static int oauth2_token(const cJSON *auth, const cm_call_ctx *ctx, char **token, cm_error *err)
{
    if (oauth2_fields_ok(auth, err) < 0)
        return -1;
    cm_autofree char *key = token_key(auth);
    if ((*token = cached_token(ctx->providers, key)))
        return 0;
    token_req t;
    token_req_build(auth, ctx, &t);
    cm_http_resp resp;
    int rc = cm_http_perform(ctx->providers, &t.req, &resp, err);
    token_req_free(&t);
    if (rc < 0)
        return cm_error_prefix(err, "oauth2 token");
    rc = token_from_response(auth, ctx, &resp, token, err);
    cm_http_resp_free(&resp);
    return rc;
}

/* The template's auth when it is oauth2, else NULL. */
static const cJSON *oauth2_auth(const cJSON *tmpl)
{
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(tmpl, "auth");
    const char *type = cm_json_str(auth, "auth_type");
    return type && !strcmp(type, "oauth2") ? auth : NULL;
}

static int apply_oauth2(const char *token, cm_http_mapped *m, cm_error *err)
{
    if (!token)
        return cm_error_set(err, CM_ERR_INTERNAL, "auth oauth2: no token");
    cm_autofree char *bearer = NULL;
    if (asprintf(&bearer, "Bearer %s", token) < 0)
        abort();
    return add_header(&m->headers, "Authorization", bearer, err);
}

typedef struct auth_out {
    const char *username, *password;
    char *oauth_key; /* set when an oauth2 token was used */
} auth_out;

/* `token`: the oauth2 access token when the auth is oauth2. */
static int apply_auth(const cJSON *tmpl, const char *token, cm_http_mapped *m, auth_out *a,
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
        return apply_oauth2(token, m, err);
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

/* The first bytes of a body for a message: printable ASCII kept, the rest
 * as \xNN, at most `max` bytes of the body. */
static void body_excerpt(const cm_buf *b, size_t max, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < b->len && i < max && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
    if (b->len > max && o + 4 < cap)
        memcpy(out + o, "...", 4);
}

/* A JSON content type must carry JSON: a body that does not parse is a
 * tool_error showing its first bytes, not a string the chain mistakes for
 * data.  Other types come back as text; an empty body as null. */
static int response_value(const cm_http_resp *r, const char *method, const char *url, cJSON **out,
                          cm_error *err)
{
    size_t blank = 0;
    while (blank < r->body.len && r->body.data[blank] && strchr(" \t\r\n", r->body.data[blank]))
        blank++;
    if (blank == r->body.len) {
        *out = r->body.len && !cm_http_is_json_type(r->content_type) ? text_value(&r->body)
                                                                     : cJSON_CreateNull();
        return 0;
    }
    if (!cm_http_is_json_type(r->content_type)) {
        *out = text_value(&r->body);
        return 0;
    }
    *out = cJSON_ParseWithLength(r->body.data, r->body.len);
    if (*out)
        return 0;
    char first[4 * 120 + 8];
    body_excerpt(&r->body, 120, first, sizeof first);
    return cm_error_set(err, CM_ERR_TOOL_ERROR,
                        "http %s %s: the response is labelled %s but its body (%zu bytes) is not "
                        "JSON; it begins: %s",
                        method, url, r->content_type, r->body.len, first);
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

/* One request of a call, ready for cm_http_perform or cm_http_submit. */
typedef struct http_request {
    cm_http_mapped m;
    auth_out a;
    cm_http_req req;
} http_request;

static void http_request_free(http_request *r)
{
    cm_http_mapped_free(&r->m);
    free(r->a.oauth_key);
    memset(r, 0, sizeof *r);
}

/* Prepare: arguments mapped, auth applied (`token` for oauth2), limits. */
static int request_for(const cJSON *t, const cJSON *args, const cm_call_ctx *ctx,
                       const char *method, const char *token, int64_t timeout_ms, http_request *r,
                       cm_error *err)
{
    memset(r, 0, sizeof *r);
    if (cm_http_map_args(t, args, &r->m, err) < 0)
        return -1;
    if (apply_auth(t, token, &r->m, &r->a, err) < 0) {
        http_request_free(r);
        return -1;
    }
    r->req = (cm_http_req){.method = method,
                           .url = r->m.url,
                           .headers = r->m.headers,
                           .body = r->m.body,
                           .body_len = r->m.body_len,
                           .username = r->a.username,
                           .password = r->a.password,
                           .max_bytes = ctx->max_output_bytes ? ctx->max_output_bytes : 0,
                           .deadline_ms = ctx->deadline_ms,
                           .cancel = ctx->cancel,
                           .egress = ctx->egress};
    int64_t cap = cm_now_ms() + timeout_ms;
    if (!r->req.deadline_ms || r->req.deadline_ms > cap)
        r->req.deadline_ms = cap;
    return 0;
}

/* Interpret: status >= 400 → tool_error with an excerpt, else the value. */
static int interpret(const cm_http_resp *resp, const char *method, const char *shown,
                     cJSON **result, cm_error *err)
{
    if (resp->status >= 400)
        return status_error(resp, method, shown, err);
    return response_value(resp, method, shown, result, err);
}

/* A cached token the server no longer accepts is refreshed once. */
static bool retry_with_new_token(const cm_http_resp *resp, const http_request *r, int attempt)
{
    return resp->status == 401 && r->a.oauth_key && attempt == 0;
}

static int http_once(const cJSON *t, const cJSON *args, const cm_call_ctx *ctx, const char *method,
                     int64_t timeout_ms, cm_http_resp *resp, http_request *r, cm_error *err)
{
    memset(r, 0, sizeof *r);
    const cJSON *oauth = oauth2_auth(t);
    cm_autofree char *token = NULL;
    if (oauth && oauth2_token(oauth, ctx, &token, err) < 0)
        return -1;
    if (request_for(t, args, ctx, method, token, timeout_ms, r, err) < 0)
        return -1;
    return cm_http_perform(ctx->providers, &r->req, resp, err);
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
        http_request r;
        int rc = http_once(t, args, ctx, method, CALL_TIMEOUT_MS, &resp, &r, err);
        bool retry = rc == 0 && retry_with_new_token(&resp, &r, attempt);
        if (retry)
            forget_token(ctx->providers, r.a.oauth_key);
        http_request_free(&r);
        if (rc < 0)
            return cm_error_prefix(err, "http %s %s", method, shown);
        if (!retry)
            break;
        cm_http_resp_free(&resp);
    }
    int rc = interpret(&resp, method, shown, result, err);
    cm_http_resp_free(&resp);
    return rc;
}

/* ---- the same call, asynchronous (curl multi loop, http_loop.c) ---------
 * States: [token] → main → done.  The oauth2 token fetch, when the cache
 * has none, is a chained transfer on the loop (never a blocked thread); a
 * 401 with an oauth2 token forgets it and starts over once. */

typedef struct http_async {
    cJSON *t;    /* substituted template */
    cJSON *args; /* copy */
    cm_call_ctx ctx;
    const char *method;
    char *shown;
    int attempt;
    token_req tok;
    http_request r;
    cm_provider_done_fn done;
    void *arg;
} http_async;

static void async_complete(http_async *a, cJSON *result, cm_error *err)
{
    a->done(a->arg, result, err);
    cJSON_Delete(a->t);
    cJSON_Delete(a->args);
    free(a->shown);
    token_req_free(&a->tok);
    http_request_free(&a->r);
    free(a);
}

static void async_fail(http_async *a, cm_error *err)
{
    cm_error_prefix(err, "http %s %s", a->method, a->shown);
    async_complete(a, NULL, err);
}

static void async_begin(http_async *a);

static void on_main(void *arg, cm_http_resp *resp, const cm_error *e)
{
    http_async *a = arg;
    cm_error err;
    if (!resp) {
        err = *e;
        async_fail(a, &err);
        return;
    }
    if (retry_with_new_token(resp, &a->r, a->attempt)) {
        forget_token(a->ctx.providers, a->r.a.oauth_key);
        http_request_free(&a->r);
        a->attempt++;
        async_begin(a);
        return;
    }
    cJSON *result = NULL;
    if (interpret(resp, a->method, a->shown, &result, &err) < 0)
        async_complete(a, NULL, &err);
    else
        async_complete(a, result, NULL);
}

static void async_main(http_async *a, const char *token)
{
    cm_error err;
    if (request_for(a->t, a->args, &a->ctx, a->method, token, CALL_TIMEOUT_MS, &a->r, &err) < 0) {
        async_fail(a, &err);
        return;
    }
    cm_http_submit(a->ctx.providers, &a->r.req, on_main, a);
}

static void on_token(void *arg, cm_http_resp *resp, const cm_error *e)
{
    http_async *a = arg;
    cm_error err;
    cm_autofree char *token = NULL;
    const cJSON *auth = oauth2_auth(a->t);
    if (!resp) {
        err = *e;
        cm_error_prefix(&err, "oauth2 token");
    }
    token_req_free(&a->tok);
    if (!resp || token_from_response(auth, &a->ctx, resp, &token, &err) < 0) {
        async_fail(a, &err);
        return;
    }
    async_main(a, token);
}

static void async_begin(http_async *a)
{
    cm_error err;
    const cJSON *auth = oauth2_auth(a->t);
    if (!auth) {
        async_main(a, NULL);
        return;
    }
    if (oauth2_fields_ok(auth, &err) < 0) {
        async_fail(a, &err);
        return;
    }
    cm_autofree char *key = token_key(auth);
    cm_autofree char *token = cached_token(a->ctx.providers, key);
    if (token) {
        async_main(a, token);
        return;
    }
    token_req_build(auth, &a->ctx, &a->tok);
    cm_http_submit(a->ctx.providers, &a->tok.req, on_token, a);
}

void cm_http_call_async(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx,
                        cm_provider_done_fn done, void *arg)
{
    const char *raw_url = cm_json_str(tmpl, "url");
    http_async *a = cm_xcalloc(1, sizeof *a);
    a->shown = cm_http_url_for_message(raw_url ? raw_url : "(no url)");
    a->ctx = *ctx;
    a->done = done;
    a->arg = arg;
    a->args = args && cJSON_IsObject(args) ? cJSON_Duplicate(args, 1) : cJSON_CreateObject();
    cm_error err;
    if (substituted(tmpl, ctx, &a->t, &err) < 0) {
        err.kind = CM_ERR_TOOL_ERROR;
        cm_error_prefix(&err, "http %s", a->shown);
        async_complete(a, NULL, &err);
        return;
    }
    if (!(a->method = method_of(a->t, &err))) {
        cm_error_prefix(&err, "http %s", a->shown);
        async_complete(a, NULL, &err);
        return;
    }
    async_begin(a);
}

/* ---- discovery ------------------------------------------------------- */

int cm_manual_from_document(cJSON *doc, const char *spec_url, const char *what,
                            const cm_call_ctx *ctx, cJSON **manual, cm_error *err)
{
    if (cJSON_IsObject(doc) && cm_openapi_detect(doc))
        return cm_openapi_to_manual(doc, spec_url, ctx, manual, err);
    if (cJSON_IsObject(doc) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "tools"))) {
        *manual = cJSON_Duplicate(doc, 1);
        return 0;
    }
    return cm_error_set(err, CM_ERR_CONFIG,
                        "%s is neither a UTCP manual (utcp_version + tools) nor an OpenAPI/Swagger "
                        "document (openapi/swagger key)",
                        what);
}

/* A failed discovery download: over a registration limit → a message naming
 * the engine.registration key; any other failure is a config error (a
 * policy refusal stays one). */
static void discovery_error(cm_error *err, const cm_reg_limits *lim)
{
    if (err->sys_errno == EFBIG) {
        cm_error_set(err, CM_ERR_CONFIG,
                     "the document is larger than engine.registration.max_bytes (%zu MiB%s); "
                     "raise it or serve a smaller description",
                     lim->max_bytes >> 20, lim->max_bytes % (1u << 20) ? " and more" : "");
        return;
    }
    if (err->kind == CM_ERR_TIMEOUT) {
        cm_error_prefix(err, "no answer within engine.registration.timeout_s (%d s)",
                        lim->timeout_s);
        err->kind = CM_ERR_CONFIG;
        return;
    }
    err->kind = err->kind == CM_ERR_POLICY_DENIED ? err->kind : CM_ERR_CONFIG;
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
    cm_reg_limits lim = cm_reg_limits_or_default(ctx->reg);
    int64_t cap = cm_now_ms() + (int64_t)lim.timeout_s * 1000;
    if (!c.deadline_ms || c.deadline_ms > cap)
        c.deadline_ms = cap;
    c.max_output_bytes = lim.max_bytes;
    cm_http_resp resp;
    http_request r;
    /* discovery is a GET without arguments, whatever the template's method */
    int rc = http_once(t, NULL, &c, "GET", c.deadline_ms - cm_now_ms(), &resp, &r, err);
    http_request_free(&r);
    if (rc < 0) {
        discovery_error(err, &lim);
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
        cm_manual_from_document(doc, cm_json_str(t, "url"), "response", &c, manual, err) < 0) {
        err->kind = CM_ERR_CONFIG;
        return cm_error_prefix(err, "http manual %s", shown);
    }
    return 0;
}
