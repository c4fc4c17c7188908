/* mcp_int.h — what the parts of an MCP session share: the session and its
 * in-flight requests, and the helpers every part uses.  Private to
 * providers/mcp_session*.c (the public side is mcp.h).
 *
 * Why it exists: one session is served by several files, one concern each
 * (mcp_session.c: start-up and life; mcp_session_stdio.c: the child process
 * and its reader thread; mcp_session_async.c: requests the reader thread
 * finishes; mcp_session_http.c: streamable HTTP; mcp_session_state.c: the
 * table, waiting, failing calls, timeouts).  They all read one struct, so it
 * is declared here once.  Calls go one way, never back: mcp_session.c calls
 * stdio and http, stdio calls async, and every part calls state. */
#ifndef CM_PROVIDERS_MCP_INT_H
#define CM_PROVIDERS_MCP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "mcp.h"
#include "mcp_oauth.h"
#include "pctx.h"

#define LINE_MAX_BYTES ((size_t)32 << 20)
#define MAX_BACKOFF_MS 5000
#define RETRY_EXPIRED 1 /* internal: HTTP session expired (404) */
#define DEFAULT_CALL_TIMEOUT_MS 30000

enum sess_state { S_NEW, S_STARTING, S_READY, S_DEAD };

typedef struct pending {
    int64_t id;
    cJSON *msg; /* the answer; NULL with done = server gone */
    bool done;
    struct pending *next;
    /* asynchronous requests (cm_mcp_request_async): heap-allocated, finished
     * by the session's reader thread, which calls fn outside the lock */
    cm_mcp_answer_fn fn;
    void *arg;
    const char *method; /* a string literal */
    int64_t deadline_ms, hung_at;
    const atomic_bool *cancel;
    bool failed; /* err holds why */
    cm_error err;
    /* the caller's note hook (cm_call_ctx.note), for the server's progress
       and log notifications while this request runs */
    void (*note)(void *note_arg, const char *line);
    void *note_arg;
    const void *note_group;
} pending;

struct cm_mcp_session {
    char *manual, *server, *base_dir;
    cJSON *cfg;
    bool http;
    cm_providers *p;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum sess_state state;
    int refs;
    bool closing;
    int64_t next_id;
    pending *pending;
    int crashes;
    int64_t restart_at_ms, started_ms;
    char last_exit[160];
    bool hung_killed; /* killed for not answering: keep that as last_exit */
    /* stdio */
    cm_provider_ids ids; /* the server's uid while the session lives (pctx.h) */
    pid_t pid;
    bool pid_alive;
    int in_fd;
    pthread_t reader;
    bool reader_running; /* joinable */
    bool reader_done;
    int wake_fd;          /* eventfd: wakes the reader (cancel, failures) */
    bool reader_idle;     /* the reader sleeps without a timeout: wake it for async */
    int64_t async_linger; /* until then the reader polls every 100 ms anyway */
    /* http */
    char *session_id;
    char proto[16];
    pthread_t listener;        /* the GET stream for server messages (mcp_session_http.c) */
    bool listener_started;     /* joinable */
    atomic_bool listener_done; /* it returned (the server has no GET stream, or stop) */
    atomic_bool listen_stop;
    cm_mcp_oauth *oauth; /* the entry's `oauth` client (mcp_oauth.h), NULL: none */
    cm_mcp_session *next;
};

/* ---- mcp_session_state.c ---------------------------------------------- */

/* The (manual, server) session, made on first use; one reference taken. */
cm_mcp_session *cm_mcp_session_get(cm_providers *p, const char *manual, const char *server,
                                   const cJSON *cfg, const char *base_dir);
void cm_mcp_session_put(cm_mcp_session *s);
/* Waits on the session's condition for at most ms (lock held). */
void cm_mcp_wait_ms(cm_mcp_session *s, int64_t ms);
/* 0 while the caller may keep waiting; else an error (deadline/cancel). */
int cm_mcp_check_wait(const cm_mcp_session *s, const cm_call_ctx *ctx, cm_error *err);
/* Writes one message line to a stdio server (lock held). */
int cm_mcp_send_line_locked(cm_mcp_session *s, const cJSON *msg, int64_t deadline_ms,
                            cm_error *err);
void cm_mcp_wake_reader(cm_mcp_session *s);
/* Marks the session dead and fails every in-flight call (lock held). */
void cm_mcp_fail_all_locked(cm_mcp_session *s, const char *why);
/* The server's per-request timeout (config `timeout`, default 30 s). */
int64_t cm_mcp_request_timeout_ms(const cm_mcp_session *s);
/* The earlier of the caller's deadline and now + the server's timeout. */
int64_t cm_mcp_request_deadline(const cm_mcp_session *s, const cm_call_ctx *ctx);
/* A stdio server alive but not answering (lock held): killed, calls failed. */
int cm_mcp_server_hung(cm_mcp_session *s, const char *method, cm_error *err);
/* A JSON-RPC answer → its result; an `error` member → CM_ERR_TOOL_ERROR. */
int cm_mcp_answer_to_result(cm_mcp_session *s, const char *method, cJSON *answer, cJSON **result,
                            cm_error *err);

/* A tools/call's params get _meta.progressToken = its request id, so the
 * server's progress notifications name the call they belong to. */
void cm_mcp_progress_token(const char *method, cJSON *params, int64_t id);
/* The caller's note hook into p (from ctx). */
void cm_mcp_pending_notes(pending *p, const cm_call_ctx *ctx);
/* A notification from the server: progress goes to the request it names,
 * a log message to each chain with a request in flight (lock held). */
void cm_mcp_forward_notification_locked(cm_mcp_session *s, const cJSON *msg);
/* The same for one request (id) whose notifications came with its answer
 * (an HTTP server's SSE body). */
void cm_mcp_note_for(const cm_call_ctx *ctx, const cJSON *msg, int64_t id);

/* The client's answer to a server's request (ping, roots/list: empty,
 * elicitation/create: declined, or the schema's defaults accepted when the
 * server entry says `elicitation: accept_defaults`, sampling/createMessage:
 * refused, else method not found). */
cJSON *cm_mcp_client_reply(const cm_mcp_session *s, const cJSON *request);
/* Tells a stdio server the request it is working on was given up (the
 * chain's cancel or deadline): notifications/cancelled (lock held). */
void cm_mcp_send_cancelled_locked(cm_mcp_session *s, int64_t id, const char *reason);

/* ---- mcp_session_async.c ---------------------------------------------- */

/* Fails async requests given up, past their deadline or hung (lock held). */
void cm_mcp_expire_async_locked(cm_mcp_session *s);
/* How long the reader may sleep in poll (lock held); -1: no limit. */
int cm_mcp_reader_timeout_locked(const cm_mcp_session *s);
/* Calls back every finished async request (lock NOT held). */
void cm_mcp_finish_async(cm_mcp_session *s);

/* ---- mcp_session_stdio.c ---------------------------------------------- */

/* Spawns the server and its reader thread (a previous one reaped first). */
int cm_mcp_start_stdio(cm_mcp_session *s, cm_error *err);
int cm_mcp_stdio_exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                          const cm_call_ctx *ctx, cJSON **answer, cm_error *err);
/* EOF on the server's stdin, then SIGTERM, SIGKILL; joins the reader. */
void cm_mcp_stop_stdio(cm_mcp_session *s);

/* ---- mcp_session_http.c ----------------------------------------------- */

/* One POST; RETRY_EXPIRED when the server forgot the session (404). */
int cm_mcp_http_exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                         const cm_call_ctx *ctx, cJSON **answer, cm_error *err);
/* The session's GET stream, listened to on a thread of its own: the
 * server's requests on it are answered, its notifications go to the calls
 * in flight; ends when the server has none (405) or at stop. */
void cm_mcp_http_listen_start(cm_mcp_session *s);
void cm_mcp_http_listen_stop(cm_mcp_session *s);
/* DELETE of the Mcp-Session-Id, if any (best effort, 2 s). */
void cm_mcp_delete_http_session(cm_mcp_session *s);

#endif
