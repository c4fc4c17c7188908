/* http_oauth.c — OAuth 2.1 resource-server mode of the HTTP transport (MCP
 * authorization spec): engine.http.oauth names this server's canonical URI
 * (the audience tokens must be issued for) and its authorization server.
 * The server publishes RFC 9728 protected-resource metadata, its 401s point
 * at it (WWW-Authenticate resource_metadata), and a bearer token that is
 * not one of engine.http.tokens is checked by RFC 7662 introspection at the
 * authorization server (this server's own client credentials): active, not
 * expired, audience = the resource, the required scopes; its subject then
 * maps to a caller identity {uid, gid} as a static token does. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_int.h"

#define INTROSPECT_MAX_BYTES (64u << 10)
#define INTROSPECT_TIMEOUT_MS 5000L

typedef struct subject {
    char *sub;
    struct ucred who;
} subject;

struct http_oauth {
    char *resource, *issuer, *introspection_url, *client_id, *client_secret;
    cJSON *scopes; /* required scopes (array of strings), also scopes_supported */
    subject *subjects;
    size_t nsubjects;
    bool has_default;
    struct ucred dflt;
};

static const char *const KEYS[] = {
    "resource", "issuer",   "introspection_url", "client_id", "client_secret_env",
    "scopes",   "subjects", "default",           NULL};

static int need_string(const cJSON *sec, const char *key, char **out, cm_error *err)
{
    const char *v = cm_json_str(sec, key);
    if (!v || !*v)
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http.oauth.%s: required (a string)", key);
    *out = cm_xstrdup(v);
    return 0;
}

/* uid is required here: a subject without one would silently become nobody */
static int load_identity(const cJSON *obj, struct ucred *who, const char *where, cm_error *err)
{
    if (!cJSON_GetObjectItemCaseSensitive(obj, "uid"))
        return cm_error_set(err, CM_ERR_CONFIG, "%s.uid: required (the caller identity)", where);
    return cm_http_identity(obj, who, where, err);
}

static int load_subjects(const cJSON *arr, http_oauth *o, cm_error *err)
{
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.http.oauth.subjects: a list of {sub, uid, gid}");
    o->subjects = cm_xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *o->subjects);
    const cJSON *s;
    cJSON_ArrayForEach(s, arr)
    {
        char where[64];
        snprintf(where, sizeof where, "engine.http.oauth.subjects[%zu]", o->nsubjects);
        const char *sub = cm_json_str(s, "sub");
        if (!sub)
            return cm_error_set(err, CM_ERR_CONFIG, "%s.sub: required (the token's subject)",
                                where);
        subject *e = &o->subjects[o->nsubjects++];
        e->sub = cm_xstrdup(sub);
        if (load_identity(s, &e->who, where, err) < 0)
            return -1;
    }
    return 0;
}

static int load_secret(const cJSON *sec, http_oauth *o, cm_error *err)
{
    const char *env = cm_json_str(sec, "client_secret_env");
    if (!env)
        return 0; /* a public client: introspection without credentials */
    const char *v = getenv(env);
    if (!v || !*v)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.http.oauth.client_secret_env: environment variable %.60s is "
                            "not set (the introspection client secret stays out of the config)",
                            env);
    o->client_secret = cm_xstrdup(v);
    return 0;
}

int cm_http_oauth_load(const cJSON *sec, http_oauth **out, cm_error *err)
{
    *out = NULL;
    if (!sec)
        return 0;
    if (!cJSON_IsObject(sec))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http.oauth: must be an object");
    http_oauth *o = cm_xcalloc(1, sizeof *o);
    *out = o;
    if (cm_http_known_keys(sec, "engine.http.oauth", KEYS, err) < 0 ||
        need_string(sec, "resource", &o->resource, err) < 0 ||
        need_string(sec, "issuer", &o->issuer, err) < 0 ||
        need_string(sec, "introspection_url", &o->introspection_url, err) < 0 ||
        need_string(sec, "client_id", &o->client_id, err) < 0 || load_secret(sec, o, err) < 0 ||
        load_subjects(cJSON_GetObjectItemCaseSensitive(sec, "subjects"), o, err) < 0)
        return -1;
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(sec, "scopes");
    o->scopes = scopes ? cJSON_Duplicate(scopes, 1) : cJSON_CreateArray();
    const cJSON *s;
    cJSON_ArrayForEach(s, o->scopes) if (!cJSON_IsString(s)) return cm_error_set(
        err, CM_ERR_CONFIG, "engine.http.oauth.scopes: a list of strings");
    const cJSON *dflt = cJSON_GetObjectItemCaseSensitive(sec, "default");
    if (dflt) {
        o->has_default = true;
        return load_identity(dflt, &o->dflt, "engine.http.oauth.default", err);
    }
    return 0;
}

void cm_http_oauth_free(http_oauth *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nsubjects; i++)
        free(o->subjects[i].sub);
    free(o->subjects);
    cJSON_Delete(o->scopes);
    free(o->resource);
    free(o->issuer);
    free(o->introspection_url);
    free(o->client_id);
    free(o->client_secret);
    free(o);
}

/* ---- metadata and challenges ------------------------------------------- */

char *cm_http_oauth_metadata(const http_oauth *o)
{
    cm_autojson cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "resource", o->resource);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(m, "authorization_servers"),
                         cJSON_CreateString(o->issuer));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(m, "bearer_methods_supported"),
                         cJSON_CreateString("header"));
    cJSON_AddItemToObject(m, "scopes_supported", cJSON_Duplicate(o->scopes, 1));
    cJSON_AddStringToObject(m, "resource_name", "codemode");
    return cm_json_print(m);
}

/* RFC 9728 §3.1: https://host/path → https://host/.well-known/oauth-protected-resource/path */
static void metadata_url(const http_oauth *o, char *out, size_t size)
{
    const char *scheme_end = strstr(o->resource, "://");
    const char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    int host_len = path ? (int)(path - o->resource) : (int)strlen(o->resource);
    snprintf(out, size, "%.*s/.well-known/oauth-protected-resource%s", host_len, o->resource,
             path && strcmp(path, "/") ? path : "");
}

void cm_http_oauth_challenge(const http_oauth *o, const char *error, const char *description,
                             char *out, size_t size)
{
    char url[512];
    metadata_url(o, url, sizeof url);
    cm_autofree char *scope = NULL;
    cm_buf b = {0};
    cm_error ignored;
    const cJSON *s;
    cJSON_ArrayForEach(s, o->scopes)
        cm_buf_printf(&b, &ignored, "%s%s", b.len ? " " : "", s->valuestring);
    scope = b.data;
    int n = snprintf(out, size, "Bearer realm=\"codemode\", resource_metadata=\"%s\"", url);
    if (scope && n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, ", scope=\"%s\"", scope);
    if (error && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, ", error=\"%s\", error_description=\"%s\"", error,
                 description);
}

/* ---- introspection ------------------------------------------------------- */

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    cm_buf *b = arg;
    cm_error err;
    if (b->len + size * n > INTROSPECT_MAX_BYTES || cm_buf_append(b, data, size * n, &err) < 0)
        return 0;
    return size * n;
}

static int introspect(const http_oauth *o, const char *token, cJSON **out, cm_error *err)
{
    CURL *c = curl_easy_init();
    if (!c)
        return cm_error_set(err, CM_ERR_INTERNAL, "oauth: cannot start an HTTP client");
    char *enc = curl_easy_escape(c, token, 0);
    cm_buf body = {0}, resp = {0};
    cm_buf_printf(&body, err, "token=%s&token_type_hint=access_token", enc ? enc : "");
    curl_free(enc);
    curl_easy_setopt(c, CURLOPT_URL, o->introspection_url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, INTROSPECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_USERNAME, o->client_id);
    if (o->client_secret)
        curl_easy_setopt(c, CURLOPT_PASSWORD, o->client_secret);
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    cm_buf_free(&body);
    int ret = 0;
    if (rc != CURLE_OK)
        ret = cm_error_set(err, CM_ERR_IO, "token introspection at %s failed: %s",
                           o->introspection_url, curl_easy_strerror(rc));
    else if (status != 200)
        ret = cm_error_set(err, CM_ERR_IO, "token introspection at %s answered HTTP %ld",
                           o->introspection_url, status);
    else if (!(*out = cJSON_ParseWithLength(resp.data ? resp.data : "", resp.len)))
        ret = cm_error_set(err, CM_ERR_IO, "token introspection at %s: the answer is not JSON",
                           o->introspection_url);
    cm_buf_free(&resp);
    return ret;
}

static bool audience_ok(const http_oauth *o, const cJSON *aud)
{
    if (cJSON_IsString(aud))
        return !strcmp(aud->valuestring, o->resource);
    const cJSON *a;
    cJSON_ArrayForEach(a, aud) if (cJSON_IsString(a) &&
                                   !strcmp(a->valuestring, o->resource)) return true;
    return false;
}

static bool has_scope(const char *granted, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = granted; p && *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, want, n))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

static int identity_of(const http_oauth *o, const char *sub, struct ucred *who)
{
    for (size_t i = 0; sub && i < o->nsubjects; i++)
        if (!strcmp(o->subjects[i].sub, sub)) {
            *who = o->subjects[i].who;
            return 0;
        }
    if (!o->has_default)
        return -1;
    *who = o->dflt;
    return 0;
}

int cm_http_oauth_check(const http_oauth *o, const char *token, struct ucred *who,
                        cm_http_oauth_result *res)
{
    cm_autojson cJSON *info = NULL;
    cm_error err;
    if (introspect(o, token, &info, &err) < 0) {
        cm_log("warn", "http: %s", err.message);
        snprintf(res->description, sizeof res->description, "the token could not be checked");
        res->status = 401;
        return -1;
    }
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(info, "exp");
    const char *why =
        !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "active")) ? "the token is not active"
        : cJSON_IsNumber(exp) && exp->valuedouble <= (double)time(NULL) ? "the token has expired"
        : !audience_ok(o, cJSON_GetObjectItemCaseSensitive(info, "aud"))
            ? "the token was not issued for this resource (audience)"
            : NULL;
    res->status = 401;
    snprintf(res->error, sizeof res->error, "invalid_token");
    if (why) {
        snprintf(res->description, sizeof res->description, "%s", why);
        return -1;
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, o->scopes) if (!has_scope(cm_json_str(info, "scope"), s->valuestring))
    {
        res->status = 403;
        snprintf(res->error, sizeof res->error, "insufficient_scope");
        snprintf(res->description, sizeof res->description, "the token lacks scope %.60s",
                 s->valuestring);
        return -1;
    }
    if (identity_of(o, cm_json_str(info, "sub"), who) < 0) {
        res->status = 403;
        snprintf(res->error, sizeof res->error, "insufficient_scope");
        snprintf(res->description, sizeof res->description,
                 "subject %.80s is not mapped to a caller (engine.http.oauth.subjects)",
                 cm_json_str(info, "sub") ? cm_json_str(info, "sub") : "(none)");
        return -1;
    }
    return 0;
}
