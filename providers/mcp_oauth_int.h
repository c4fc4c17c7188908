/* mcp_oauth_int.h — what the parts of the MCP OAuth client share: the
 * discovered metadata and the one HTTP helper.  Private to
 * providers/mcp_oauth*.c (the public side is mcp_oauth.h).
 *
 * Why it exists: discovery (mcp_oauth_discover.c: challenges, protected-
 * resource and authorization-server metadata) and the flows (mcp_oauth.c:
 * registration, grants, the token cache) are separate concerns that hand
 * one struct across. */
#ifndef CM_PROVIDERS_MCP_OAUTH_INT_H
#define CM_PROVIDERS_MCP_OAUTH_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "pctx.h"
#include "provider.h"

/* One exchange's context: the providers' curl share, the caller's egress
 * rules and cancel flag, and the deadline. */
typedef struct cm_oauth_io {
    cm_providers *p;
    const cm_call_ctx *ctx;
    int64_t deadline_ms;
} cm_oauth_io;

/* What discovery found for one MCP server. */
typedef struct cm_oauth_meta {
    char *resource;    /* the protected resource (RFC 8707 `resource`); NULL: no PRM */
    cJSON *prm_scopes; /* the PRM's scopes_supported (may be NULL) */
    char *issuer;      /* the authorization server */
    cJSON *as;         /* its metadata (NULL: the 2025-03-26 default endpoints) */
    char *authorization_endpoint, *token_endpoint, *registration_endpoint; /* may be NULL */
} cm_oauth_meta;

void cm_oauth_meta_free(cm_oauth_meta *m);

/* The value of auth-param `name` of the Bearer challenge in a
 * WWW-Authenticate header (caller frees), NULL when absent. */
char *cm_oauth_challenge_param(const char *www_authenticate, const char *name);

/* Discovery for the MCP server at server_url: its protected-resource
 * metadata (the challenge's resource_metadata URL, else the path-based
 * then the root well-known URL; the `resource` it names must be this
 * server), its authorization server's metadata (RFC 8414 and OpenID
 * Connect well-known URLs, path-aware; issuer checked), or without PRM the
 * 2025-03-26 fallbacks (metadata at the server's origin, else /authorize,
 * /token, /register there). */
int cm_oauth_discover(const cm_oauth_io *io, const char *server_url, const char *prm_url,
                      cm_oauth_meta *m, cm_error *err);

/* One request to an authorization server: body (may be NULL) with
 * content_type, extra headers (may be NULL); *json gets the parsed body
 * (NULL when it is not JSON), *status the status.  no_redirects: a
 * redirect is the answer, *location its target (caller frees).  Transport
 * errors only are -1. */
int cm_oauth_http(const cm_oauth_io *io, const char *method, const char *url,
                  const struct curl_slist *headers, const char *body, bool no_redirects,
                  long *status, cJSON **json, char **location, cm_error *err);

#endif
