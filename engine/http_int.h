/* http_int.h — what the HTTP transport's files share: its configuration
 * (http_config.c), sessions and streams (http_stream.c) and the server
 * (http_server.c).  Private to engine/http_*.c. */
#ifndef CM_HTTP_INT_H
#define CM_HTTP_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "http_transport.h"

#define CM_HTTP_PATH "/mcp"

typedef struct http_token {
    unsigned char sha256[32];
    char *name;
    struct ucred who; /* pid 0 */
} http_token;

typedef struct http_oauth http_oauth;

typedef struct http_config {
    char *listen; /* as configured, for messages */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool loopback;
    bool allow_remote;
    cJSON *allowed_hosts;   /* owned array of strings: Host values beyond loopback names */
    cJSON *allowed_origins; /* owned array of strings: Origin values beyond loopback ones */
    http_token *tokens;
    size_t ntokens;
    bool anonymous; /* requests without a token run as anon */
    struct ucred anon;
    int session_idle_s;
    int max_sessions;
    int max_connections;
    http_oauth *oauth; /* engine.http.oauth: resource-server mode, NULL when off */
} http_config;

/* One answer stream: the request it carries runs on `conn`, whose sink
 * appends every message (notifications, then the answer) to events.
 * Embeds its connection: it lives as long as the connection's references
 * (the session's, a reader's, a worker's). */
typedef struct http_stream {
    cm_conn conn; /* first: the connection's release frees the stream */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char **events; /* raw JSON messages; index 0 is the priming event (NULL) */
    size_t nevents, cap, bytes;
    bool answered;   /* the last event is the request's answer */
    bool ended;      /* cancelled or its session ended: no answer will come */
    bool standalone; /* the GET stream: only ends with its session */
    int reader_gen;  /* a new reader (resumption) supersedes the old one */
    int no;          /* event ids are "<no>-<index>" */
    char *req_id;    /* printed JSON-RPC id of the request, for notifications/cancelled */
    struct http_session *session; /* under cm_http.lock; NULL once it ended */
    int64_t answered_ms;
    struct http_stream *next; /* in the session's list, under cm_http.lock */
} http_stream;

typedef struct http_session {
    char id[33];
    struct ucred who;
    atomic_int log_level;
    int refs; /* under cm_http.lock: requests using it */
    bool ended;
    int64_t last_ms;
    int next_stream;
    http_stream *streams;    /* open answer streams (answered ones wait for a reader) */
    http_stream *standalone; /* the GET stream, or NULL */
    struct http_session *next;
} http_session;

struct cm_http {
    cm_engine *eng;
    http_config cfg;
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock; /* sessions and their stream lists */
    http_session *sessions;
    int nsessions;
    bool stopping;
};

/* http_config.c */
int cm_http_config_load(const cJSON *section, const char *listen_override, http_config *cfg,
                        cm_error *err);
void cm_http_config_free(http_config *cfg);
/* Unknown keys of obj (at `where`) are an error listing the known ones. */
int cm_http_known_keys(const cJSON *obj, const char *where, const char *const *keys, cm_error *err);
/* {uid, gid} of obj (uid default 65534, gid default uid) as a caller identity. */
int cm_http_identity(const cJSON *obj, struct ucred *who, const char *where, cm_error *err);
/* The identity a bearer token stands for, or NULL. */
const http_token *cm_http_token_find(const http_config *cfg, const char *token);
/* Host header acceptable (DNS rebinding): a loopback name, the listen
 * address when remote, or engine.http.allowed_hosts. */
bool cm_http_host_ok(const http_config *cfg, const char *host);
/* Origin header acceptable: absent, a loopback origin, or allowed_origins. */
bool cm_http_origin_ok(const http_config *cfg, const char *origin);

/* http_oauth.c: OAuth 2.1 resource-server mode */
typedef struct cm_http_oauth_result {
    int status;     /* 401 or 403 */
    char error[32]; /* invalid_token, insufficient_scope */
    char description[200];
} cm_http_oauth_result;
int cm_http_oauth_load(const cJSON *section, http_oauth **out, cm_error *err);
void cm_http_oauth_free(http_oauth *o);
/* The RFC 9728 protected-resource metadata document (owned). */
char *cm_http_oauth_metadata(const http_oauth *o);
/* The WWW-Authenticate value: resource_metadata, scope, and error when set. */
void cm_http_oauth_challenge(const http_oauth *o, const char *error, const char *description,
                             char *out, size_t size);
/* Introspects token at the authorization server: 0 and *who when it is
 * active, unexpired, for this resource, with the scopes, of a mapped
 * subject; else -1 and res says what to answer. */
int cm_http_oauth_check(const http_oauth *o, const char *token, struct ucred *who,
                        cm_http_oauth_result *res);

/* http_stream.c (callers hold no lock unless said) */
http_session *cm_http_session_new(cm_http *h, const struct ucred *who, cm_error *err);
/* The session with this id, referenced; NULL when unknown or ended. */
http_session *cm_http_session_get(cm_http *h, const char *id);
void cm_http_session_put(cm_http *h, http_session *s);
/* Ends the session: its streams end, their chains stop. */
void cm_http_session_end(cm_http *h, http_session *s);
/* A stream for one request of s (referenced for the caller); NULL when the
 * session already has engine.client_queue_max streams open. */
http_stream *cm_http_stream_new(cm_http *h, http_session *s, const cJSON *req_id, cm_error *err);
/* The standalone GET stream of s (referenced); NULL when one is open. */
http_stream *cm_http_stream_standalone(cm_http *h, http_session *s);
/* The stream of s numbered no (referenced), for resumption; NULL if gone. */
http_stream *cm_http_stream_find(cm_http *h, http_session *s, int no);
/* notifications/cancelled: ends the stream carrying req_id, stops its chain. */
void cm_http_stream_cancel(cm_http *h, http_session *s, const char *req_id);
/* The reader delivered everything (answer included): the stream leaves s. */
void cm_http_stream_done(cm_http *h, http_stream *st);
void cm_http_stream_unref(http_stream *st);
/* Waits up to deadline_ms for the answer; returns it (owned) or NULL. */
char *cm_http_stream_wait_answer(http_stream *st, int64_t deadline_ms);
/* One HTTP response reading a stream (SSE), from event index next on. */
typedef struct http_reader {
    http_stream *st; /* referenced */
    int gen;
    size_t next;
    cm_buf pending; /* formatted bytes not yet handed to the server */
    bool delivered; /* the answer went out */
} http_reader;
/* Attaches r to st (superseding an earlier reader) from event index from. */
void cm_http_reader_attach(http_reader *r, http_stream *st, size_t from);
/* Up to max SSE bytes for r, blocking up to keepalive_ms for an event (a
 * comment line then); 0 when the stream is over for this reader. */
size_t cm_http_stream_read(http_reader *r, char *buf, size_t max, int keepalive_ms);
/* Ends all sessions (stop). */
void cm_http_sessions_end_all(cm_http *h);
/* Drops sessions idle past engine.http.session_idle_s (under no lock). */
void cm_http_sweep(cm_http *h);

#endif
