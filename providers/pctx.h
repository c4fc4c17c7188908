/* pctx.h — the providers' shared, engine-owned state: the libcurl share
 * (connection cache, DNS, TLS sessions) every HTTP request goes through, the
 * OAuth2 token cache and the long-lived MCP sessions.  One cm_providers hangs
 * off the engine context; calls reach it through cm_call_ctx.providers.
 * Everything in it is guarded by its own locks (providers run on many
 * threads at once). */
#ifndef CM_PROVIDERS_PCTX_H
#define CM_PROVIDERS_PCTX_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct cm_providers cm_providers;
typedef struct cm_mcp_session cm_mcp_session;
typedef struct cm_oauth_token cm_oauth_token;
typedef struct cm_http_loop cm_http_loop;
struct cm_provider_spawn;

struct cm_providers {
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_mutex_t lock;   /* guards tokens and sessions */
    cm_oauth_token *tokens; /* OAuth2 client-credentials cache */
    cm_mcp_session *sessions;
    cm_http_loop *http_loop; /* async HTTP (http_loop.c), started on first use */
    bool http_closed;        /* engine exit: no new loop */
    /* argv every provider process is started through (the engine's
     * `codemode __provider-exec ...`: its provider cgroup and jail), NULL:
     * direct; borrowed, set once before any provider runs */
    char *const *exec_prefix;
    /* provider processes run jailed (isolate/provider_jail.h): HOME is the
     * jail's private /tmp, not the engine's */
    bool jailed;
    /* a distinct unprivileged uid/gid per provider process (root engine),
     * NULL: none (the process keeps the engine's uid); release kills what
     * still runs as the uid before it is used again */
    int (*take_ids)(void *ctx, unsigned *uid, unsigned *gid, cm_error *err);
    /* dir: the call directory the uid was given (removed with it), or NULL */
    void (*release_ids)(void *ctx, unsigned uid, const char *dir);
    void *ids_ctx;
    /* privilege separation (engine/workdir.c): provider processes that
     * get ids are started (0 or an errno value) and signalled by the
     * engine's privileged part; NULL: here (pspawn.c) */
    int (*spawn_hook)(void *ctx, const struct cm_provider_spawn *req, pid_t *pid);
    void (*signal_hook)(void *ctx, pid_t pgid, int sig);
    void *hook_ctx;
    /* parent of provider temp dirs (the engine's own, removed with it);
     * NULL: $TMPDIR or /tmp */
    const char *work_dir;
};

/* Creates the context (calls curl_global_init: call before threads start). */
int cm_providers_new(cm_providers **out, cm_error *err);
/* Closes every MCP session (no orphan processes) and frees everything. */
void cm_providers_free(cm_providers *p);
/* The ids one provider process runs as (cm_providers_take_ids). */
typedef struct cm_provider_ids {
    bool set;
    unsigned uid, gid;
    char arg[32]; /* "uid:gid", the exec step's --ids value */
} cm_provider_ids;
/* Takes ids for one provider process (ids->set false when the engine gives
 * none); release once the process is reaped (dir: the call directory it
 * was given, removed with it, or NULL).  p may be NULL. */
int cm_providers_take_ids(const cm_providers *p, cm_provider_ids *ids, cm_error *err);
void cm_providers_release_ids(const cm_providers *p, cm_provider_ids *ids, const char *dir);
/* What to spawn for a provider process running prog with argv: *path gets
 * the program to exec (prog itself when there is no prefix) and the result
 * the argv (prefix + per-spawn options (ids; rw: NULL-terminated absolute
 * directories the process may write, or NULL) + "--" + prog + argv, or a
 * copy of argv);
 * free() only the array, its strings are borrowed (from ids too).  p may
 * be NULL. */
char **cm_providers_exec_argv(const cm_providers *p, const char *prog, char *const *argv,
                              const cm_provider_ids *ids, char *const *rw, const char **path);
/* One provider process to start (cm_providers_spawn). */
typedef struct cm_provider_spawn {
    const char *prog;           /* the program (looked up in PATH when it has no '/') */
    char *const *argv;          /* its argv, argv[0] first */
    char *const *envp;          /* its whole environment */
    const char *cwd;            /* its working directory, NULL: the engine's */
    int in_fd;                  /* its fd 0, -1: /dev/null */
    int out_fd;                 /* its fd 1 */
    int err_fd;                 /* its fd 2, -1: the engine's stderr */
    const cm_provider_ids *ids; /* its ids (cm_providers_take_ids), NULL: none */
    char *const *rw;            /* NULL-terminated directories it may write (jail), or NULL */
    const char *own; /* the call directory its exec step gives to its ids (spawn_hook), or NULL */
} cm_provider_spawn;
/* Starts a provider process (pspawn.c) through cm_providers_exec_argv, as
 * the leader of a process group of its own, with an empty signal mask,
 * every signal at its default and fds from 3 closed.  0, or the errno value
 * of the failure (the caller words the error).  p may be NULL. */
int cm_providers_spawn(const cm_providers *p, const cm_provider_spawn *req, pid_t *pid);
/* Sends sig to the process group of a provider process cm_providers_spawn
 * started (pid: its leader; ignored unless > 0). */
void cm_providers_signal(const cm_providers *p, pid_t pid, int sig);
/* The environment every provider process starts from, into env (object of
 * strings): the allow-listed names of the engine's environment (PATH, HOME,
 * LANG, LC_ALL, LC_CTYPE, USER, LOGNAME, SHELL, TZ, TERM), HOME replaced by
 * /tmp when jailed.  What a manual declares is added on top by the caller. */
void cm_providers_base_env(const cm_providers *p, cJSON *env);
/* Closes the MCP sessions of one manual (deregister_manual). */
void cm_providers_release_manual(cm_providers *p, const char *manual_name);

/* Implemented in mcp_session.c. */
void cm_mcp_sessions_close(cm_providers *p, const char *manual_name);
/* Implemented in http_loop.c. */
void cm_http_loop_free(cm_providers *p);
/* Implemented in http.c. */
void cm_oauth_tokens_free(cm_providers *p);

#endif
