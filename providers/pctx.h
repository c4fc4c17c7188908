/* pctx.h — the providers' shared, engine-owned state: the libcurl share
 * (connection cache, DNS, TLS sessions) every HTTP request goes through, the
 * OAuth2 token cache and the long-lived MCP sessions.  One cm_providers hangs
 * off the engine context; calls reach it through cm_call_ctx.providers.
 * Everything in it is guarded by its own locks (providers run on many
 * threads at once). */
#ifndef CM_PROVIDERS_PCTX_H
#define CM_PROVIDERS_PCTX_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct cm_providers cm_providers;
typedef struct cm_mcp_session cm_mcp_session;
typedef struct cm_oauth_token cm_oauth_token;
typedef struct cm_http_loop cm_http_loop;

struct cm_providers {
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_mutex_t lock;   /* guards tokens and sessions */
    cm_oauth_token *tokens; /* OAuth2 client-credentials cache */
    cm_mcp_session *sessions;
    cm_http_loop *http_loop; /* async HTTP (http_loop.c), started on first use */
    bool http_closed;        /* engine exit: no new loop */
    /* argv every provider process is started through (the engine's
     * `codemode __provider-exec PROCS`: its provider cgroup), NULL: direct;
     * borrowed, set once before any provider runs */
    char *const *exec_prefix;
    /* parent of provider temp dirs (the engine's own, removed with it);
     * NULL: $TMPDIR or /tmp */
    const char *work_dir;
};

/* Creates the context (calls curl_global_init: call before threads start). */
int cm_providers_new(cm_providers **out, cm_error *err);
/* Closes every MCP session (no orphan processes) and frees everything. */
void cm_providers_free(cm_providers *p);
/* What to spawn for a provider process running prog with argv: *path gets
 * the program to exec (prog itself when there is no prefix) and the result
 * the argv (prefix + prog + argv, or a copy of argv); free() only the
 * array, its strings are borrowed.  p may be NULL. */
char **cm_providers_exec_argv(const cm_providers *p, const char *prog, char *const *argv,
                              const char **path);
/* Closes the MCP sessions of one manual (deregister_manual). */
void cm_providers_release_manual(cm_providers *p, const char *manual_name);

/* Implemented in mcp_session.c. */
void cm_mcp_sessions_close(cm_providers *p, const char *manual_name);
/* Implemented in http_loop.c. */
void cm_http_loop_free(cm_providers *p);
/* Implemented in http.c. */
void cm_oauth_tokens_free(cm_providers *p);

#endif
