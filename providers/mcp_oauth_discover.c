/* mcp_oauth_discover.c — how the MCP OAuth client finds who issues tokens
 * for a server: the Bearer challenge's parameters, RFC 9728 protected-
 * resource metadata (PRM), RFC 8414 / OpenID Connect authorization-server
 * metadata, and the 2025-03-26 fallbacks (rules in mcp_oauth_int.h).
 *
 * Why its own file: discovery is a fixed sequence of well-known URLs with
 * its own validation (the PRM must name this server, the metadata its
 * issuer), independent of which grant the flows (mcp_oauth.c) then run.
 * Every fetch goes through http_client.c with the caller's egress rules. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "http_client.h"
#include "mcp_oauth_int.h"
#include "util.h"

#define METADATA_MAX_BYTES (256u << 10)

void cm_oauth_meta_free(cm_oauth_meta *m)
{
    free(m->resource);
    cJSON_Delete(m->prm_scopes);
    free(m->issuer);
    cJSON_Delete(m->as);
    free(m->authorization_endpoint);
    free(m->token_endpoint);
    free(m->registration_endpoint);
    memset(m, 0, sizeof *m);
}

/* ---- the challenge ------------------------------------------------------ */

static bool token_char(char c)
{
    return c && !isspace((unsigned char)c) && !strchr(",=\"", c);
}

char *cm_oauth_challenge_param(const char *h, const char *name)
{
    const char *p = h ? strcasestr(h, "bearer") : NULL;
    if (!p)
        return NULL;
    p += 6;
    size_t nl = strlen(name);
    while (*p) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        const char *key = p;
        while (token_char(*p))
            p++;
        size_t kl = (size_t)(p - key);
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=')
            return NULL; /* the end, or the next challenge's scheme */
        p++;
        while (isspace((unsigned char)*p))
            p++;
        cm_buf v = {0};
        cm_error ignored;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                cm_buf_append(&v, p, 1, &ignored);
            }
            if (*p == '"')
                p++;
        } else {
            const char *s = p;
            while (token_char(*p))
                p++;
            cm_buf_append(&v, s, (size_t)(p - s), &ignored);
        }
        if (kl == nl && !strncasecmp(key, name, nl))
            return v.data ? v.data : cm_xstrdup("");
        cm_buf_free(&v);
    }
    return NULL;
}

/* ---- fetching ----------------------------------------------------------- */

int cm_oauth_http(const cm_oauth_io *io, const char *method, const char *url,
                  const struct curl_slist *headers, const char *body, bool no_redirects,
                  long *status, cJSON **json, char **location, cm_error *err)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    for (const struct curl_slist *e = headers; e; e = e->next)
        h = curl_slist_append(h, e->data);
    cm_http_req req = {.method = method,
                       .url = url,
                       .headers = h,
                       .body = body,
                       .body_len = body ? strlen(body) : 0,
                       .max_bytes = METADATA_MAX_BYTES,
                       .deadline_ms = io->deadline_ms,
                       .cancel = io->ctx->cancel,
                       .egress = io->ctx->egress,
                       .no_redirects = no_redirects};
    cm_http_resp resp;
    int rc = cm_http_perform(io->p, &req, &resp, err);
    curl_slist_free_all(h);
    if (rc < 0)
        return -1;
    *status = resp.status;
    *json = cJSON_Parse(resp.body.data ? resp.body.data : "");
    if (location)
        *location = cm_steal_ptr(&resp.location);
    cm_http_resp_free(&resp);
    return 0;
}

/* A JSON object from url (2xx), NULL (no error) when there is none there:
 * a 4xx/5xx or a body that is not an object.  -1 on transport errors. */
static int fetch_object(const cm_oauth_io *io, const char *url, cJSON **out, cm_error *err)
{
    long status = 0;
    cJSON *j = NULL;
    *out = NULL;
    if (cm_oauth_http(io, "GET", url, NULL, NULL, false, &status, &j, NULL, err) < 0)
        return -1;
    if (status >= 200 && status < 300 && cJSON_IsObject(j))
        *out = j;
    else
        cJSON_Delete(j);
    return 0;
}

/* ---- URLs --------------------------------------------------------------- */

/* origin ("scheme://host[:port]", as written) and path (without query and
 * fragment, no trailing '/') of an absolute URL; -1 when it has neither. */
static int split_url(const char *url, char **origin, char **path)
{
    const char *s = strstr(url, "://");
    if (!s)
        return -1;
    s += 3;
    size_t host = strcspn(s, "/?#");
    size_t plen = strcspn(s + host, "?#");
    while (plen && s[host + plen - 1] == '/')
        plen--;
    *origin = strndup(url, (size_t)(s - url) + host);
    *path = strndup(s + host, plen);
    return 0;
}

static char *join(const char *a, const char *b, const char *c)
{
    char *out = NULL;
    if (asprintf(&out, "%s%s%s", a, b, c ? c : "") < 0)
        abort();
    return out;
}

/* True when the PRM's resource covers the server URL: the same origin, and
 * its path the server's path or a parent of it. */
static bool resource_matches(const char *resource, const char *server_url)
{
    cm_autofree char *ro = cm_http_origin(resource);
    cm_autofree char *so = cm_http_origin(server_url);
    cm_autofree char *o1 = NULL, *p1 = NULL, *o2 = NULL, *p2 = NULL;
    if (!ro || !so || strcasecmp(ro, so) || split_url(resource, &o1, &p1) < 0 ||
        split_url(server_url, &o2, &p2) < 0)
        return false;
    size_t n = strlen(p1);
    return !strncmp(p1, p2, n) && (p2[n] == '\0' || p2[n] == '/');
}

/* ---- protected-resource metadata ---------------------------------------- */

static int discover_prm(const cm_oauth_io *io, const char *server_url, const char *prm_url,
                        cJSON **prm, cm_error *err)
{
    cm_autofree char *origin = NULL, *path = NULL;
    if (split_url(server_url, &origin, &path) < 0)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth: invalid server URL");
    cm_autofree char *path_based =
        *path ? join(origin, "/.well-known/oauth-protected-resource", path) : NULL;
    cm_autofree char *root = join(origin, "/.well-known/oauth-protected-resource", NULL);
    const char *urls[] = {prm_url, path_based, root};
    *prm = NULL;
    for (size_t i = 0; i < 3 && !*prm; i++)
        if (urls[i] && fetch_object(io, urls[i], prm, err) < 0)
            return cm_error_prefix(err, "oauth: protected-resource metadata");
    return 0;
}

/* ---- authorization-server metadata -------------------------------------- */

static void set_endpoint(char **slot, const cJSON *as, const char *key, const char *fallback)
{
    const char *v = cm_json_str(as, key);
    *slot = v ? cm_xstrdup(v) : fallback ? cm_xstrdup(fallback) : NULL;
}

static bool same_issuer(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la && a[la - 1] == '/')
        la--;
    while (lb && b[lb - 1] == '/')
        lb--;
    return la == lb && !strncmp(a, b, la);
}

/* The metadata of the authorization server `issuer`: RFC 8414 §3.1 (the
 * well-known suffix inserted before the issuer's path), then OpenID
 * Connect with the same insertion and appended to the path. */
static int discover_as(const cm_oauth_io *io, const char *issuer, bool check_issuer, cJSON **as,
                       cm_error *err)
{
    cm_autofree char *origin = NULL, *path = NULL;
    if (split_url(issuer, &origin, &path) < 0)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: authorization server '%.200s' is not a URL", issuer);
    cm_autofree char *u1 = join(origin, "/.well-known/oauth-authorization-server", path);
    cm_autofree char *u2 = join(origin, "/.well-known/openid-configuration", path);
    cm_autofree char *u3 = *path ? join(origin, path, "/.well-known/openid-configuration") : NULL;
    const char *urls[] = {u1, u2, u3};
    *as = NULL;
    for (size_t i = 0; i < 3 && !*as; i++)
        if (urls[i] && fetch_object(io, urls[i], as, err) < 0)
            return cm_error_prefix(err, "oauth: authorization server metadata");
    const char *got = cm_json_str(*as, "issuer");
    if (*as && check_issuer && (!got || !same_issuer(got, issuer))) {
        cJSON_Delete(*as);
        *as = NULL;
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "oauth: the metadata of authorization server %.200s names issuer "
                            "'%.200s' (RFC 8414 §3.3: must be the same)",
                            issuer, got ? got : "");
    }
    return 0;
}

int cm_oauth_discover(const cm_oauth_io *io, const char *server_url, const char *prm_url,
                      cm_oauth_meta *m, cm_error *err)
{
    memset(m, 0, sizeof *m);
    cm_autojson cJSON *prm = NULL;
    if (discover_prm(io, server_url, prm_url, &prm, err) < 0)
        return -1;
    if (prm) {
        const char *resource = cm_json_str(prm, "resource");
        const cJSON *servers = cJSON_GetObjectItemCaseSensitive(prm, "authorization_servers");
        const char *issuer = cJSON_IsArray(servers) && cJSON_IsString(servers->child)
                                 ? servers->child->valuestring
                                 : NULL;
        if (!resource || !resource_matches(resource, server_url))
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "oauth: the protected-resource metadata names resource '%.200s', "
                                "not this server: not authorizing (RFC 9728 §3.3)",
                                resource ? resource : "");
        if (!issuer)
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "oauth: the protected-resource metadata lists no "
                                "authorization_servers");
        m->resource = cm_xstrdup(resource);
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(prm, "scopes_supported");
        m->prm_scopes = cJSON_IsArray(sc) ? cJSON_Duplicate(sc, 1) : NULL;
        m->issuer = cm_xstrdup(issuer);
    } else {
        /* 2025-03-26: the server's origin is its authorization server */
        cm_autofree char *path = NULL;
        if (split_url(server_url, &m->issuer, &path) < 0)
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "oauth: invalid server URL");
    }
    if (discover_as(io, m->issuer, prm != NULL, &m->as, err) < 0) {
        cm_oauth_meta_free(m);
        return -1;
    }
    if (!m->as && prm) {
        cm_error_set(err, CM_ERR_TOOL_ERROR,
                     "oauth: authorization server %.200s publishes no metadata (RFC 8414 / "
                     "OpenID Connect well-known URLs)",
                     m->issuer);
        cm_oauth_meta_free(m);
        return -1;
    }
    cm_autofree char *a = join(m->issuer, "/authorize", NULL);
    cm_autofree char *t = join(m->issuer, "/token", NULL);
    cm_autofree char *r = join(m->issuer, "/register", NULL);
    set_endpoint(&m->authorization_endpoint, m->as, "authorization_endpoint", m->as ? NULL : a);
    set_endpoint(&m->token_endpoint, m->as, "token_endpoint", m->as ? NULL : t);
    set_endpoint(&m->registration_endpoint, m->as, "registration_endpoint", m->as ? NULL : r);
    return 0;
}
