/* mcp_oauth.c — MCP authorization as a client: the token a streamable-HTTP
 * session sends, obtained on a 401 and kept on the host (mcp_oauth.h).
 *
 * On a challenge: discovery (mcp_oauth_discover.c), then a client — the
 * configured client_id (pre-registered), a client ID metadata document URL
 * when the authorization server takes them, else dynamic registration
 * (RFC 7591) — then the configured grant:
 *  - authorization_code (default): PKCE S256, the authorization request
 *    sent without a user (its redirect is read, not followed: servers that
 *    grant at once, or a pre-consented client), then the code exchanged;
 *  - client_credentials (OAuth 2.1 §4.2 / SEP-1046);
 *  - jwt_bearer (SEP-990): an ID token exchanged at the IdP for an ID-JAG
 *    (RFC 8693), which the authorization server takes (RFC 7523).
 * Requests carry `resource` (RFC 8707) and the selected scopes (the
 * configured `scope`, else the challenge's, else the PRM's
 * scopes_supported, plus offline_access when the server lists it); the
 * token endpoint sees client_secret_basic, client_secret_post,
 * private_key_jwt or none.  A 403 insufficient_scope steps up to the
 * scopes it names, once per new set.  Expired tokens are refreshed.
 *
 * Why it exists: HTTP MCP servers that require authorization are common;
 * the secrets (client secret, key, tokens) must stay in the engine, so the
 * whole exchange is here, and no error carries them. */
#include "mcp_oauth.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_client.h"
#include "mcp_oauth_int.h"
#include "oauth_crypto.h"
#include "util.h"

#define DEFAULT_REDIRECT_URI "http://localhost/codemode/oauth/callback"
#define ERROR_EXCERPT 200

struct cm_mcp_oauth {
    cJSON *cfg;           /* the server entry's `oauth` (substituted: holds secrets) */
    char *server_url;     /* the MCP server (the resource without PRM) */
    pthread_mutex_t lock; /* guards the token fields */
    char *access_token, *refresh_token;
    int64_t expires_ms; /* cm_now_ms() after which it is renewed; 0: no expiry */
    uint64_t gen;       /* bumped with every new token */
    cJSON *scopes;      /* the current token's scopes (array of strings) */
    /* under flow: one authorization at a time */
    pthread_mutex_t flow;
    bool have_meta;
    cm_oauth_meta meta;
    char *client_id, *client_secret, *auth_method; /* the registered client */
};

cm_mcp_oauth *cm_mcp_oauth_new(const cJSON *server_cfg)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(server_cfg, "oauth");
    if (!cJSON_IsObject(cfg))
        return NULL;
    cm_mcp_oauth *o = cm_xcalloc(1, sizeof *o);
    o->cfg = cJSON_Duplicate(cfg, 1);
    const char *url = cm_json_str(server_cfg, "url");
    o->server_url = cm_xstrdup(url ? url : "");
    pthread_mutex_init(&o->lock, NULL);
    pthread_mutex_init(&o->flow, NULL);
    return o;
}

void cm_mcp_oauth_free(cm_mcp_oauth *o)
{
    if (!o)
        return;
    pthread_mutex_destroy(&o->lock);
    pthread_mutex_destroy(&o->flow);
    cJSON_Delete(o->cfg);
    free(o->server_url);
    free(o->access_token);
    free(o->refresh_token);
    cJSON_Delete(o->scopes);
    cm_oauth_meta_free(&o->meta);
    free(o->client_id);
    free(o->client_secret);
    free(o->auth_method);
    free(o);
}

static const char *cfg_str(const cm_mcp_oauth *o, const char *key)
{
    const char *v = cm_json_str(o->cfg, key);
    return v && *v ? v : NULL;
}

static const char *grant_of(const cm_mcp_oauth *o)
{
    const char *g = cfg_str(o, "grant_type");
    return g ? g : "authorization_code";
}

/* ---- scopes ------------------------------------------------------------- */

static cJSON *split_scopes(const char *s)
{
    cJSON *a = cJSON_CreateArray();
    while (s && *s) {
        size_t n = strcspn(s, " ");
        if (n) {
            cm_autofree char *one = strndup(s, n);
            cJSON_AddItemToArray(a, cJSON_CreateString(one));
        }
        s += n + (s[n] == ' ');
    }
    return a;
}

static bool has_scope(const cJSON *a, const char *scope)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (cJSON_IsString(e) && !strcmp(e->valuestring, scope)) return true;
    return false;
}

static void add_scopes(cJSON *to, const cJSON *from)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, from) if (cJSON_IsString(e) && !has_scope(to, e->valuestring))
        cJSON_AddItemToArray(to, cJSON_CreateString(e->valuestring));
}

static char *join_scopes(const cJSON *a)
{
    cm_buf b = {0};
    cm_error ignored;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (b.len)
            cm_buf_append(&b, " ", 1, &ignored);
        cm_buf_append(&b, e->valuestring, strlen(e->valuestring), &ignored);
    }
    return b.data; /* NULL: none */
}

/* ---- the token endpoint -------------------------------------------------- */

/* text with every secret the client holds replaced by "[redacted]": the
 * tokens and a registered secret are no variables, so the engine's
 * redaction does not know them (caller frees). */
static char *scrubbed(cm_mcp_oauth *o, const char *text)
{
    pthread_mutex_lock(&o->lock);
    const char *secrets[] = {o->access_token,
                             o->refresh_token,
                             o->client_secret,
                             cfg_str(o, "client_secret"),
                             cfg_str(o, "idp_id_token"),
                             cfg_str(o, "idp_client_secret")};
    char *out = cm_xstrdup(text);
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++) {
        size_t n = secrets[i] ? strlen(secrets[i]) : 0;
        char *at;
        while (n >= 4 && (at = strstr(out, secrets[i]))) {
            char *next = NULL;
            if (asprintf(&next, "%.*s[redacted]%s", (int)(at - out), out, at + n) < 0)
                abort();
            free(out);
            out = next;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return out;
}

/* A token-endpoint or registration error, worded from the answer's
 * `error` and `error_description` only (never the request), scrubbed. */
static int endpoint_error(cm_mcp_oauth *o, const char *what, const char *url, long status,
                          const cJSON *j, cm_error *err)
{
    cm_autofree char *u = cm_http_url_for_message(url);
    cm_autofree char *e = cm_json_str(j, "error") ? scrubbed(o, cm_json_str(j, "error")) : NULL;
    cm_autofree char *d = cm_json_str(j, "error_description")
                              ? scrubbed(o, cm_json_str(j, "error_description"))
                              : NULL;
    return cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth: %s %s: HTTP %ld%s%.*s%s%.*s%s", what, u,
                        status, e ? ", error " : "", ERROR_EXCERPT, e ? e : "", d ? " (" : "",
                        ERROR_EXCERPT, d ? d : "", d ? ")" : "");
}

static const cJSON *as_list(const cm_mcp_oauth *o, const char *key)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o->meta.as, key);
    return cJSON_IsArray(l) ? l : NULL;
}

/* How the client authenticates at the token endpoint. */
static const char *auth_method(const cm_mcp_oauth *o)
{
    if (cfg_str(o, "token_endpoint_auth_method"))
        return cfg_str(o, "token_endpoint_auth_method");
    if (o->auth_method)
        return o->auth_method;
    if (cfg_str(o, "private_key"))
        return "private_key_jwt";
    if (!o->client_secret)
        return "none";
    const cJSON *l = as_list(o, "token_endpoint_auth_methods_supported");
    if (l && !has_scope(l, "client_secret_basic") && has_scope(l, "client_secret_post"))
        return "client_secret_post";
    return "client_secret_basic";
}

/* "Authorization: Basic ..." of RFC 6749 §2.3.1 (both parts form-encoded). */
static char *basic_header(const char *id, const char *secret)
{
    cm_buf b = {0};
    cm_error ignored;
    cm_http_append_escaped(&b, id);
    cm_buf_append(&b, ":", 1, &ignored);
    cm_http_append_escaped(&b, secret ? secret : "");
    cm_autofree char *enc = cm_oauth_b64((const unsigned char *)b.data, b.len);
    cm_buf_free(&b);
    char *line = NULL;
    if (asprintf(&line, "Authorization: Basic %s", enc) < 0)
        abort();
    return line;
}

/* The private_key_jwt client assertion (RFC 7523 §2.2): iss = sub = the
 * client, aud = the authorization server. */
static int client_assertion(const cm_mcp_oauth *o, char **jwt, cm_error *err)
{
    const char *aud = cm_json_str(o->meta.as, "issuer");
    cm_autofree char *jti = cm_oauth_random(16);
    if (!jti)
        return cm_error_set(err, CM_ERR_INTERNAL, "oauth: no randomness");
    cm_autojson cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "iss", o->client_id);
    cJSON_AddStringToObject(c, "sub", o->client_id);
    cJSON_AddStringToObject(c, "aud", aud ? aud : o->meta.token_endpoint);
    double now = (double)time(NULL);
    cJSON_AddNumberToObject(c, "iat", now);
    cJSON_AddNumberToObject(c, "exp", now + 300);
    cJSON_AddStringToObject(c, "jti", jti);
    return cm_oauth_sign_jwt(cfg_str(o, "private_key"), cfg_str(o, "signing_algorithm"), c, jwt,
                             err);
}

/* Adds the client's authentication to a token request. */
static int client_auth(const cm_mcp_oauth *o, cm_buf *form, struct curl_slist **h, cm_error *err)
{
    const char *m = auth_method(o);
    if (!strcmp(m, "client_secret_basic")) {
        cm_autofree char *line = basic_header(o->client_id, o->client_secret);
        *h = curl_slist_append(*h, line);
        return 0;
    }
    cm_http_form_add(form, "client_id", o->client_id);
    if (!strcmp(m, "client_secret_post")) {
        cm_http_form_add(form, "client_secret", o->client_secret ? o->client_secret : "");
    } else if (!strcmp(m, "private_key_jwt")) {
        cm_autofree char *jwt = NULL;
        if (client_assertion(o, &jwt, err) < 0)
            return -1;
        cm_http_form_add(form, "client_assertion_type",
                         "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        cm_http_form_add(form, "client_assertion", jwt);
    } else if (strcmp(m, "none")) {
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth.token_endpoint_auth_method '%.40s': client_secret_basic, "
                            "client_secret_post, private_key_jwt or none",
                            m);
    }
    return 0;
}

/* POSTs a form to url; *j the JSON answer, *status its status. */
static int post_form(const cm_oauth_io *io, const char *url, const cm_buf *form,
                     struct curl_slist *h, long *status, cJSON **j, cm_error *err)
{
    h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
    int rc = cm_oauth_http(io, "POST", url, h, form->data ? form->data : "", false, status, j, NULL,
                           err);
    curl_slist_free_all(h);
    return rc;
}

/* A token request (form: the grant's fields) authenticated as the client;
 * the answer becomes the session's token.  wanted: the scopes asked for. */
static int token_request(cm_mcp_oauth *o, const cm_oauth_io *io, cm_buf *form, const cJSON *wanted,
                         cm_error *err)
{
    if (!o->meta.token_endpoint)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: the authorization server has no token_endpoint");
    if (o->meta.resource)
        cm_http_form_add(form, "resource", o->meta.resource);
    struct curl_slist *h = NULL;
    if (client_auth(o, form, &h, err) < 0) {
        curl_slist_free_all(h);
        return -1;
    }
    long status = 0;
    cm_autojson cJSON *j = NULL;
    if (post_form(io, o->meta.token_endpoint, form, h, &status, &j, err) < 0)
        return cm_error_prefix(err, "oauth: token request");
    const char *tok = cm_json_str(j, "access_token");
    if (status < 200 || status >= 300 || !tok)
        return endpoint_error(o, "token endpoint", o->meta.token_endpoint, status, j, err);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    const char *granted = cm_json_str(j, "scope");
    pthread_mutex_lock(&o->lock);
    free(o->access_token);
    o->access_token = cm_xstrdup(tok);
    if (cm_json_str(j, "refresh_token")) {
        free(o->refresh_token);
        o->refresh_token = cm_xstrdup(cm_json_str(j, "refresh_token"));
    }
    /* renewed 30 s early, or at half-life when it lives a minute or less */
    double s = cJSON_IsNumber(exp) && exp->valuedouble > 0 ? exp->valuedouble : 0;
    o->expires_ms = s ? cm_now_ms() + (int64_t)((s > 60 ? s - 30 : s / 2) * 1000) : 0;
    cJSON_Delete(o->scopes);
    o->scopes = granted  ? split_scopes(granted)
                : wanted ? cJSON_Duplicate(wanted, 1)
                         : cJSON_CreateArray();
    o->gen++;
    pthread_mutex_unlock(&o->lock);
    return 0;
}

/* ---- the client ---------------------------------------------------------- */

/* Dynamic client registration (RFC 7591). */
static int register_client(cm_mcp_oauth *o, const cm_oauth_io *io, cm_error *err)
{
    const char *url = o->meta.registration_endpoint;
    const char *redirect = cfg_str(o, "redirect_uri");
    cm_autojson cJSON *req = cJSON_CreateObject();
    const char *name = cfg_str(o, "client_name");
    cJSON_AddStringToObject(req, "client_name", name ? name : "codemode");
    cJSON *uris = cJSON_AddArrayToObject(req, "redirect_uris");
    cJSON_AddItemToArray(uris, cJSON_CreateString(redirect ? redirect : DEFAULT_REDIRECT_URI));
    cJSON *grants = cJSON_AddArrayToObject(req, "grant_types");
    cJSON_AddItemToArray(grants, cJSON_CreateString(grant_of(o)));
    cJSON_AddItemToArray(grants, cJSON_CreateString("refresh_token"));
    cJSON *types = cJSON_AddArrayToObject(req, "response_types");
    cJSON_AddItemToArray(types, cJSON_CreateString("code"));
    const cJSON *l = as_list(o, "token_endpoint_auth_methods_supported");
    const char *m = cfg_str(o, "token_endpoint_auth_method");
    if (!m && l)
        m = has_scope(l, "client_secret_basic")  ? "client_secret_basic"
            : has_scope(l, "client_secret_post") ? "client_secret_post"
            : has_scope(l, "none")               ? "none"
                                                 : NULL;
    if (m)
        cJSON_AddStringToObject(req, "token_endpoint_auth_method", m);
    cm_autofree char *body = cm_json_print(req);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;
    cm_autojson cJSON *j = NULL;
    int rc = cm_oauth_http(io, "POST", url, h, body, false, &status, &j, NULL, err);
    curl_slist_free_all(h);
    if (rc < 0)
        return cm_error_prefix(err, "oauth: client registration");
    if (status < 200 || status >= 300 || !cm_json_str(j, "client_id"))
        return endpoint_error(o, "client registration", url, status, j, err);
    o->client_id = cm_xstrdup(cm_json_str(j, "client_id"));
    const char *secret = cm_json_str(j, "client_secret");
    o->client_secret = secret ? cm_xstrdup(secret) : NULL;
    const char *method = cm_json_str(j, "token_endpoint_auth_method");
    o->auth_method = method ? cm_xstrdup(method) : NULL;
    return 0;
}

/* The client: configured (pre-registered), a client ID metadata document
 * URL (when the server takes them), else registered now. */
static int ensure_client(cm_mcp_oauth *o, const cm_oauth_io *io, cm_error *err)
{
    if (o->client_id)
        return 0;
    if (cfg_str(o, "client_id")) {
        o->client_id = cm_xstrdup(cfg_str(o, "client_id"));
        const char *secret = cfg_str(o, "client_secret");
        o->client_secret = secret ? cm_xstrdup(secret) : NULL;
        return 0;
    }
    const cJSON *cimd =
        cJSON_GetObjectItemCaseSensitive(o->meta.as, "client_id_metadata_document_supported");
    if (cJSON_IsTrue(cimd) && cfg_str(o, "client_metadata_url")) {
        o->client_id = cm_xstrdup(cfg_str(o, "client_metadata_url"));
        o->auth_method = cm_xstrdup("none");
        return 0;
    }
    if (!o->meta.registration_endpoint || strcmp(grant_of(o), "authorization_code"))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth.client_id: required (the authorization server %.200s has no "
                            "dynamic client registration%s)",
                            o->meta.issuer, o->meta.registration_endpoint ? " for this grant" : "");
    return register_client(o, io, err);
}

/* ---- grants -------------------------------------------------------------- */

/* The value of query parameter `name` of url (caller frees), NULL if absent. */
static char *query_param(const char *url, const char *name)
{
    const char *q = strchr(url, '?');
    size_t nl = strlen(name);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        size_t n = strcspn(p, "&#");
        if (n > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            cm_autofree char *raw = strndup(p + nl + 1, n - nl - 1);
            for (char *c = raw; *c; c++)
                *c = *c == '+' ? ' ' : *c;
            int len = 0;
            char *v = curl_easy_unescape(NULL, raw, 0, &len);
            char *out = v ? strndup(v, (size_t)len) : NULL;
            curl_free(v);
            return out;
        }
        if (p[n] != '&')
            break;
        p += n + 1;
    }
    return NULL;
}

static bool pkce_s256_ok(const cm_mcp_oauth *o)
{
    /* without metadata (the 2025-03-26 fallback) there is nothing to ask */
    return !o->meta.as || has_scope(as_list(o, "code_challenge_methods_supported"), "S256");
}

/* The authorization request, answered by a redirect to redirect_uri that
 * carries the code (*code, caller frees). */
static int authorize(const cm_mcp_oauth *o, const cm_oauth_io *io, const char *scope,
                     const char *verifier, char **code, cm_error *err)
{
    const char *ep = o->meta.authorization_endpoint;
    if (!ep)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: the authorization server has no authorization_endpoint");
    if (!pkce_s256_ok(o))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: authorization server %.200s does not offer PKCE S256 "
                            "(code_challenge_methods_supported): not authorizing",
                            o->meta.issuer);
    const char *redirect = cfg_str(o, "redirect_uri");
    redirect = redirect ? redirect : DEFAULT_REDIRECT_URI;
    cm_autofree char *state = cm_oauth_random(16);
    cm_autofree char *challenge = cm_oauth_pkce_challenge(verifier);
    if (!state)
        return cm_error_set(err, CM_ERR_INTERNAL, "oauth: no randomness");
    cm_buf q = {0};
    cm_http_form_add(&q, "response_type", "code");
    cm_http_form_add(&q, "client_id", o->client_id);
    cm_http_form_add(&q, "redirect_uri", redirect);
    cm_http_form_add(&q, "state", state);
    cm_http_form_add(&q, "code_challenge", challenge);
    cm_http_form_add(&q, "code_challenge_method", "S256");
    if (scope)
        cm_http_form_add(&q, "scope", scope);
    if (o->meta.resource)
        cm_http_form_add(&q, "resource", o->meta.resource);
    cm_autofree char *url = NULL;
    if (asprintf(&url, "%s%c%s", ep, strchr(ep, '?') ? '&' : '?', q.data) < 0)
        abort();
    cm_buf_free(&q);
    long status = 0;
    cm_autojson cJSON *j = NULL;
    cm_autofree char *loc = NULL;
    if (cm_oauth_http(io, "GET", url, NULL, NULL, true, &status, &j, &loc, err) < 0)
        return cm_error_prefix(err, "oauth: authorization request");
    cm_autofree char *u = cm_http_url_for_message(ep);
    if (!loc || strncmp(loc, redirect, strcspn(redirect, "?#")))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: the authorization endpoint %s answered HTTP %ld without "
                            "redirecting to the redirect_uri: it wants a user, and codemode "
                            "authorizes without one (use grant_type client_credentials, or a "
                            "client the server grants without interaction)",
                            u, status);
    cm_autofree char *got_state = query_param(loc, "state");
    cm_autofree char *error = query_param(loc, "error");
    *code = query_param(loc, "code");
    if (error || !*code || !got_state || strcmp(got_state, state)) {
        free(*code);
        *code = NULL;
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: the authorization endpoint %s refused: %.*s", u, ERROR_EXCERPT,
                            error                                    ? error
                            : !got_state || strcmp(got_state, state) ? "state mismatch"
                                                                     : "no code");
    }
    return 0;
}

static int grant_authorization_code(cm_mcp_oauth *o, const cm_oauth_io *io, cJSON *wanted,
                                    cm_error *err)
{
    /* a client that wants refresh tokens asks for offline_access where the
       server lists it (SEP-2207) */
    if (has_scope(as_list(o, "scopes_supported"), "offline_access") &&
        !has_scope(wanted, "offline_access"))
        cJSON_AddItemToArray(wanted, cJSON_CreateString("offline_access"));
    cm_autofree char *scope = join_scopes(wanted);
    cm_autofree char *verifier = cm_oauth_random(48);
    cm_autofree char *code = NULL;
    if (!verifier)
        return cm_error_set(err, CM_ERR_INTERNAL, "oauth: no randomness");
    if (authorize(o, io, scope, verifier, &code, err) < 0)
        return -1;
    const char *redirect = cfg_str(o, "redirect_uri");
    cm_buf form = {0};
    cm_http_form_add(&form, "grant_type", "authorization_code");
    cm_http_form_add(&form, "code", code);
    cm_http_form_add(&form, "redirect_uri", redirect ? redirect : DEFAULT_REDIRECT_URI);
    cm_http_form_add(&form, "code_verifier", verifier);
    int rc = token_request(o, io, &form, wanted, err);
    cm_buf_free(&form);
    return rc;
}

/* SEP-990: the configured ID token exchanged at the IdP (RFC 8693) for an
 * identity assertion grant for this authorization server (*jag). */
static int id_jag(cm_mcp_oauth *o, const cm_oauth_io *io, const char *scope, char **jag,
                  cm_error *err)
{
    const char *ep = cfg_str(o, "idp_token_endpoint");
    const char *id_token = cfg_str(o, "idp_id_token");
    if (!ep || !id_token)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: grant_type jwt_bearer needs idp_token_endpoint and "
                            "idp_id_token");
    const char *aud = cm_json_str(o->meta.as, "issuer");
    cm_buf form = {0};
    cm_http_form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
    cm_http_form_add(&form, "requested_token_type", "urn:ietf:params:oauth:token-type:id-jag");
    cm_http_form_add(&form, "audience", aud ? aud : o->meta.issuer);
    cm_http_form_add(&form, "resource", o->meta.resource ? o->meta.resource : o->server_url);
    cm_http_form_add(&form, "subject_token", id_token);
    cm_http_form_add(&form, "subject_token_type", "urn:ietf:params:oauth:token-type:id_token");
    if (scope)
        cm_http_form_add(&form, "scope", scope);
    struct curl_slist *h = NULL;
    if (cfg_str(o, "idp_client_id") && cfg_str(o, "idp_client_secret")) {
        cm_autofree char *line =
            basic_header(cfg_str(o, "idp_client_id"), cfg_str(o, "idp_client_secret"));
        h = curl_slist_append(h, line);
    } else if (cfg_str(o, "idp_client_id")) {
        cm_http_form_add(&form, "client_id", cfg_str(o, "idp_client_id"));
    }
    long status = 0;
    cm_autojson cJSON *j = NULL;
    int rc = post_form(io, ep, &form, h, &status, &j, err);
    cm_buf_free(&form);
    if (rc < 0)
        return cm_error_prefix(err, "oauth: token exchange at the IdP");
    if (status < 200 || status >= 300 || !cm_json_str(j, "access_token"))
        return endpoint_error(o, "token exchange at", ep, status, j, err);
    *jag = cm_xstrdup(cm_json_str(j, "access_token"));
    return 0;
}

static int grant_jwt_bearer(cm_mcp_oauth *o, const cm_oauth_io *io, const cJSON *wanted,
                            cm_error *err)
{
    cm_autofree char *scope = join_scopes(wanted);
    cm_autofree char *jag = NULL;
    if (id_jag(o, io, scope, &jag, err) < 0)
        return -1;
    cm_buf form = {0};
    cm_http_form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
    cm_http_form_add(&form, "assertion", jag);
    if (scope)
        cm_http_form_add(&form, "scope", scope);
    int rc = token_request(o, io, &form, wanted, err);
    cm_buf_free(&form);
    return rc;
}

static int grant_client_credentials(cm_mcp_oauth *o, const cm_oauth_io *io, const cJSON *wanted,
                                    cm_error *err)
{
    cm_autofree char *scope = join_scopes(wanted);
    cm_buf form = {0};
    cm_http_form_add(&form, "grant_type", "client_credentials");
    if (scope)
        cm_http_form_add(&form, "scope", scope);
    int rc = token_request(o, io, &form, wanted, err);
    cm_buf_free(&form);
    return rc;
}

/* A new token by the configured grant (flow held, metadata known). */
static int obtain(cm_mcp_oauth *o, const cm_oauth_io *io, cJSON *wanted, cm_error *err)
{
    const char *g = grant_of(o);
    bool code = !strcmp(g, "authorization_code");
    if (!code && strcmp(g, "client_credentials") && strcmp(g, "jwt_bearer"))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth.grant_type '%.40s': authorization_code, client_credentials or "
                            "jwt_bearer",
                            g);
    if (!code && !cfg_str(o, "client_id"))
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth.client_id: required for %s", g);
    if (ensure_client(o, io, err) < 0)
        return -1;
    if (code)
        return grant_authorization_code(o, io, wanted, err);
    return !strcmp(g, "jwt_bearer") ? grant_jwt_bearer(o, io, wanted, err)
                                    : grant_client_credentials(o, io, wanted, err);
}

/* The refresh_token grant; on failure the refresh token is dropped. */
static int refresh(cm_mcp_oauth *o, const cm_oauth_io *io, cm_error *err)
{
    pthread_mutex_lock(&o->lock);
    cm_autofree char *rt = o->refresh_token ? cm_xstrdup(o->refresh_token) : NULL;
    pthread_mutex_unlock(&o->lock);
    if (!rt || !o->client_id)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth: no refresh token");
    cm_buf form = {0};
    cm_http_form_add(&form, "grant_type", "refresh_token");
    cm_http_form_add(&form, "refresh_token", rt);
    pthread_mutex_lock(&o->lock);
    cm_autojson cJSON *scopes = o->scopes ? cJSON_Duplicate(o->scopes, 1) : NULL;
    pthread_mutex_unlock(&o->lock);
    int rc = token_request(o, io, &form, scopes, err);
    cm_buf_free(&form);
    if (rc < 0) {
        pthread_mutex_lock(&o->lock);
        free(o->refresh_token);
        o->refresh_token = NULL;
        pthread_mutex_unlock(&o->lock);
    }
    return rc;
}

/* ---- the session's side -------------------------------------------------- */

char *cm_mcp_oauth_header(cm_mcp_oauth *o, cm_providers *p, const cm_call_ctx *ctx,
                          int64_t deadline_ms, uint64_t *gen)
{
    pthread_mutex_lock(&o->lock);
    bool expired = o->access_token && o->expires_ms && cm_now_ms() >= o->expires_ms;
    pthread_mutex_unlock(&o->lock);
    if (expired && p) {
        cm_oauth_io io = {.p = p, .ctx = ctx, .deadline_ms = deadline_ms};
        cm_error ignored;
        pthread_mutex_lock(&o->flow);
        pthread_mutex_lock(&o->lock);
        expired = o->access_token && o->expires_ms && cm_now_ms() >= o->expires_ms;
        pthread_mutex_unlock(&o->lock);
        pthread_mutex_lock(&o->lock);
        cm_autojson cJSON *scopes = o->scopes ? cJSON_Duplicate(o->scopes, 1) : NULL;
        pthread_mutex_unlock(&o->lock);
        if (expired && refresh(o, &io, &ignored) < 0 &&
            (strcmp(grant_of(o), "client_credentials") ||
             grant_client_credentials(o, &io, scopes, &ignored) < 0)) {
            /* sent without: the server's 401 starts a new authorization */
            pthread_mutex_lock(&o->lock);
            free(o->access_token);
            o->access_token = NULL;
            pthread_mutex_unlock(&o->lock);
        }
        pthread_mutex_unlock(&o->flow);
    }
    pthread_mutex_lock(&o->lock);
    char *line = NULL;
    *gen = o->access_token ? o->gen : 0;
    if (o->access_token && asprintf(&line, "Authorization: Bearer %s", o->access_token) < 0)
        abort();
    pthread_mutex_unlock(&o->lock);
    return line;
}

/* The scopes to ask for after a 401: configured, else the challenge's,
 * else the PRM's scopes_supported, else none (the scope is omitted). */
static cJSON *scopes_for_401(const cm_mcp_oauth *o, const char *challenged)
{
    if (cfg_str(o, "scope"))
        return split_scopes(cfg_str(o, "scope"));
    if (challenged)
        return split_scopes(challenged);
    return o->meta.prm_scopes ? cJSON_Duplicate(o->meta.prm_scopes, 1) : cJSON_CreateArray();
}

static int challenge_locked(cm_mcp_oauth *o, const cm_oauth_io *io, long status, const char *www,
                            uint64_t gen, cm_error *err)
{
    pthread_mutex_lock(&o->lock);
    uint64_t cur = o->access_token ? o->gen : 0;
    cm_autojson cJSON *have = o->scopes ? cJSON_Duplicate(o->scopes, 1) : cJSON_CreateArray();
    pthread_mutex_unlock(&o->lock);
    if (status == 401 && cur != gen)
        return 0; /* another call renewed the token meanwhile */
    cm_autofree char *scope = cm_oauth_challenge_param(www, "scope");
    cm_autofree char *prm = cm_oauth_challenge_param(www, "resource_metadata");
    cm_autofree char *error = cm_oauth_challenge_param(www, "error");
    cm_autojson cJSON *wanted = NULL;
    if (status == 403) {
        if (!error || strcmp(error, "insufficient_scope"))
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "HTTP status 403%s%.*s", error ? ": " : "",
                                ERROR_EXCERPT, error ? error : "");
        cm_autojson cJSON *needed = split_scopes(scope);
        bool news = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, needed) news |= !has_scope(have, e->valuestring);
        if (!news && cur != gen)
            return 0; /* another call stepped up meanwhile */
        if (!news)
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "HTTP status 403: insufficient_scope (needs '%.*s'), and the "
                                "token has those scopes already: not authorizing again",
                                ERROR_EXCERPT, scope ? scope : "");
        wanted = have;
        have = NULL;
        add_scopes(wanted, needed);
    } else if (gen && cur == gen && refresh(o, io, err) == 0) {
        return 0;
    }
    if (!o->have_meta) {
        if (cm_oauth_discover(io, o->server_url, prm, &o->meta, err) < 0)
            return -1;
        o->have_meta = true;
    }
    if (!wanted)
        wanted = scopes_for_401(o, scope);
    return obtain(o, io, wanted, err);
}

int cm_mcp_oauth_challenge(cm_mcp_oauth *o, cm_providers *p, const cm_call_ctx *ctx,
                           int64_t deadline_ms, long status, const char *www_authenticate,
                           uint64_t gen, cm_error *err)
{
    if (status != 401 && status != 403)
        return cm_error_set(err, CM_ERR_INTERNAL, "oauth: not a challenge (HTTP %ld)", status);
    cm_oauth_io io = {.p = p, .ctx = ctx, .deadline_ms = deadline_ms};
    pthread_mutex_lock(&o->flow);
    int rc = challenge_locked(o, &io, status, www_authenticate, gen, err);
    pthread_mutex_unlock(&o->flow);
    return rc;
}
