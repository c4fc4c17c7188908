/* http_config.c — engine.http: where the streamable HTTP transport listens
 * and who may use it.  Bearer tokens are stored as their SHA-256 (hex) so
 * the config holds no secret; each stands for a caller identity {uid, gid}
 * that the policy maps to a profile as it maps a socket peer.  A listen
 * address off loopback needs allow_remote and tokens: an unauthenticated
 * network endpoint that runs code is never the default. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

#define NOBODY 65534

static const char *const KEYS[] = {
    "listen",         "allow_remote", "allowed_hosts",   "allowed_origins", "tokens", "anonymous",
    "session_idle_s", "max_sessions", "max_connections", "oauth",           NULL};

static int parse_addr(const char *listen, http_config *cfg, cm_error *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1])
        return cm_error_set(err, CM_ERR_CONFIG,
                            "http listen address '%.100s': expected HOST:PORT, e.g. "
                            "127.0.0.1:8765 or [::1]:8765",
                            listen);
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return cm_error_set(err, CM_ERR_CONFIG, "http listen address too long");
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return cm_error_set(err, CM_ERR_CONFIG, "http listen address '%.100s': bad port", listen);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)&cfg->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&cfg->addr;
    memset(&cfg->addr, 0, sizeof cfg->addr);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        cfg->addr_len = sizeof *v4;
        cfg->loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        cfg->addr_len = sizeof *v6;
        cfg->loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
    } else {
        return cm_error_set(err, CM_ERR_CONFIG,
                            "http listen address '%.100s': the host must be an IP address or "
                            "localhost",
                            listen);
    }
    return 0;
}

static int hex_digest(const char *hex, unsigned char out[32])
{
    if (!hex || strlen(hex) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
            sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

int cm_http_known_keys(const cJSON *obj, const char *where, const char *const *keys, cm_error *err)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known = known || !strcmp(keys[i], item->string);
        if (known)
            continue;
        char list[400] = "";
        for (size_t i = 0, n = 0; keys[i] && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", keys[i]);
        return cm_error_set(err, CM_ERR_CONFIG, "%s: unknown key '%.60s' (known: %s)", where,
                            item->string, list);
    }
    return 0;
}

static int id_of(const cJSON *obj, const char *key, long dflt, long *out, const char *where,
                 cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = dflt;
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4294967294.0 ||
        v->valuedouble != (double)(long)v->valuedouble)
        return cm_error_set(err, CM_ERR_CONFIG, "%s.%s: must be a uid/gid number", where, key);
    *out = (long)v->valuedouble;
    return 0;
}

int cm_http_identity(const cJSON *obj, struct ucred *who, const char *where, cm_error *err)
{
    long uid, gid;
    if (id_of(obj, "uid", NOBODY, &uid, where, err) < 0 ||
        id_of(obj, "gid", uid, &gid, where, err) < 0)
        return -1;
    who->pid = 0;
    who->uid = (uid_t)uid;
    who->gid = (gid_t)gid;
    return 0;
}

static int load_token(const cJSON *t, size_t i, http_token *out, cm_error *err)
{
    char where[64];
    snprintf(where, sizeof where, "engine.http.tokens[%zu]", i);
    if (!cJSON_IsObject(t))
        return cm_error_set(err, CM_ERR_CONFIG, "%s: must be an object {sha256, uid, gid, name}",
                            where);
    static const char *const token_keys[] = {"sha256", "uid", "gid", "name", NULL};
    if (cm_http_known_keys(t, where, token_keys, err) < 0)
        return -1;
    if (hex_digest(cm_json_str(t, "sha256"), out->sha256) < 0)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "%s.sha256: must be the token's SHA-256 as 64 hex digits (printf %%s "
                            "TOKEN | sha256sum); the token itself never goes in the config",
                            where);
    if (!cJSON_GetObjectItemCaseSensitive(t, "uid"))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "%s.uid: required: the caller identity the token stands for (the "
                            "policy's callers map it to a profile)",
                            where);
    const char *name = cm_json_str(t, "name");
    char dflt[32];
    snprintf(dflt, sizeof dflt, "token%zu", i);
    out->name = cm_xstrdup(name ? name : dflt);
    return cm_http_identity(t, &out->who, where, err);
}

static int load_tokens(const cJSON *arr, http_config *cfg, cm_error *err)
{
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http.tokens: must be a list");
    cfg->tokens = cm_xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *cfg->tokens);
    const cJSON *t;
    cJSON_ArrayForEach(t, arr)
    {
        if (load_token(t, cfg->ntokens, &cfg->tokens[cfg->ntokens], err) < 0)
            return -1;
        cfg->ntokens++;
    }
    return 0;
}

static int load_anonymous(const cJSON *v, http_config *cfg, cm_error *err)
{
    if (!v || cJSON_IsFalse(v) || cJSON_IsNull(v))
        return 0;
    cfg->anonymous = true;
    if (cJSON_IsTrue(v)) {
        cfg->anon = (struct ucred){.pid = 0, .uid = NOBODY, .gid = NOBODY};
        return 0;
    }
    if (!cJSON_IsObject(v))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http.anonymous: true, false or {uid, gid}");
    return cm_http_identity(v, &cfg->anon, "engine.http.anonymous", err);
}

static int string_list(const cJSON *v, const char *key, cJSON **out, cm_error *err)
{
    *out = cJSON_CreateArray();
    if (!v)
        return 0;
    const cJSON *item;
    if (!cJSON_IsArray(v))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http.%s: must be a list of strings", key);
    cJSON_ArrayForEach(item, v)
    {
        if (!cJSON_IsString(item))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.http.%s: must be a list of strings",
                                key);
        cJSON_AddItemToArray(*out, cJSON_CreateString(item->valuestring));
    }
    return 0;
}

static int int_key(const cJSON *sec, const char *key, int lo, int hi, int *out, cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sec, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        v->valuedouble != (double)(int)v->valuedouble)
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http.%s: must be an integer %d..%d", key,
                            lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int check_exposure(http_config *cfg, cm_error *err)
{
    if (cfg->loopback)
        return 0;
    if (!cfg->allow_remote)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "http listen address %s is not loopback: the HTTP transport serves "
                            "loopback only unless engine.http.allow_remote is true (then also "
                            "configure engine.http.tokens and put TLS in front)",
                            cfg->listen);
    if ((!cfg->ntokens && !cfg->oauth) || cfg->anonymous)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.http.allow_remote needs engine.http.tokens (or oauth) and no "
                            "engine.http.anonymous: a network endpoint must authenticate");
    return 0;
}

int cm_http_config_load(const cJSON *sec, const char *listen_override, http_config *cfg,
                        cm_error *err)
{
    *cfg = (http_config){.session_idle_s = 1800, .max_sessions = 256, .max_connections = 512};
    if (sec && !cJSON_IsObject(sec))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http: must be an object");
    if (sec && cm_http_known_keys(sec, "engine.http", KEYS, err) < 0)
        return -1;
    const char *listen = listen_override ? listen_override : cm_json_str(sec, "listen");
    if (!listen)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.http: needs listen (HOST:PORT) or codemode serve --http ADDR");
    cfg->listen = cm_xstrdup(listen);
    const cJSON *remote = cJSON_GetObjectItemCaseSensitive(sec, "allow_remote");
    if (remote && !cJSON_IsBool(remote))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.http.allow_remote: must be true or false");
    cfg->allow_remote = cJSON_IsTrue(remote);
    if (parse_addr(listen, cfg, err) < 0 ||
        string_list(cJSON_GetObjectItemCaseSensitive(sec, "allowed_hosts"), "allowed_hosts",
                    &cfg->allowed_hosts, err) < 0 ||
        string_list(cJSON_GetObjectItemCaseSensitive(sec, "allowed_origins"), "allowed_origins",
                    &cfg->allowed_origins, err) < 0 ||
        load_tokens(cJSON_GetObjectItemCaseSensitive(sec, "tokens"), cfg, err) < 0 ||
        load_anonymous(cJSON_GetObjectItemCaseSensitive(sec, "anonymous"), cfg, err) < 0 ||
        int_key(sec, "session_idle_s", 10, 86400, &cfg->session_idle_s, err) < 0 ||
        int_key(sec, "max_sessions", 1, 65536, &cfg->max_sessions, err) < 0 ||
        int_key(sec, "max_connections", 4, 4096, &cfg->max_connections, err) < 0 ||
        cm_http_oauth_load(cJSON_GetObjectItemCaseSensitive(sec, "oauth"), &cfg->oauth, err) < 0)
        return -1;
    return check_exposure(cfg, err);
}

void cm_http_config_free(http_config *cfg)
{
    for (size_t i = 0; i < cfg->ntokens; i++)
        free(cfg->tokens[i].name);
    free(cfg->tokens);
    cJSON_Delete(cfg->allowed_hosts);
    cJSON_Delete(cfg->allowed_origins);
    cm_http_oauth_free(cfg->oauth);
    free(cfg->listen);
    *cfg = (http_config){0};
}

const http_token *cm_http_token_find(const http_config *cfg, const char *token)
{
    unsigned char d[32];
    SHA256((const unsigned char *)token, strlen(token), d);
    const http_token *found = NULL;
    for (size_t i = 0; i < cfg->ntokens; i++) /* every entry compared, in constant time */
        if (CRYPTO_memcmp(d, cfg->tokens[i].sha256, sizeof d) == 0 && !found)
            found = &cfg->tokens[i];
    return found;
}

static bool in_list(const cJSON *list, const char *v)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, list) if (!strcasecmp(item->valuestring, v)) return true;
    return false;
}

/* host[:port] whose host is localhost, 127.0.0.1 or [::1] */
static bool loopback_authority(const char *a)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(names[i]);
        if (!strncasecmp(a, names[i], n) && (a[n] == '\0' || a[n] == ':'))
            return a[n] == '\0' || strspn(a + n + 1, "0123456789") == strlen(a + n + 1);
    }
    return false;
}

bool cm_http_host_ok(const http_config *cfg, const char *host)
{
    if (!host)
        return false; /* HTTP/1.1 requires Host */
    if (loopback_authority(host) || in_list(cfg->allowed_hosts, host))
        return true;
    return cfg->allow_remote && cJSON_GetArraySize(cfg->allowed_hosts) == 0;
}

bool cm_http_origin_ok(const http_config *cfg, const char *origin)
{
    if (!origin)
        return true; /* not a browser: Host decides */
    if (in_list(cfg->allowed_origins, origin))
        return true;
    const char *rest = !strncasecmp(origin, "http://", 7)    ? origin + 7
                       : !strncasecmp(origin, "https://", 8) ? origin + 8
                                                             : NULL;
    return rest && loopback_authority(rest);
}
