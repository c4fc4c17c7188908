/* engine.h — the engine context: the one struct that holds every piece of
 * mutable engine state (config, registry, worker pool, connections,
 * counters).  Nothing in codemode keeps state in globals; everything hangs
 * off a cm_engine passed down explicitly. */
#ifndef CM_ENGINE_H
#define CM_ENGINE_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"
#include "metrics.h"
#include "error.h"
#include "isolation.h"
#include "log.h"
#include "privsep.h"
#include "registry.h"
#include "util.h"
#include "vars.h"

#define CM_VERSION "0.1.0"

typedef struct cm_jobs cm_jobs;
typedef struct cm_engine cm_engine;

/* A request of a connection that notifications/cancelled can stop (a
 * running chain): engine/cancel.c. */
typedef struct cm_running {
    char *id; /* the request id as printed JSON */
    atomic_bool cancelled;
    struct cm_running *next;
} cm_running;

/* One client connection.  The event loop owns the fd; workers only append
 * responses to `out` (under `lock`) and wake the loop.  Reference-counted:
 * a worker holding a request keeps the struct alive after a disconnect. */
typedef struct cm_conn {
    cm_engine *eng;
    int fd;
    atomic_int refs;
    atomic_bool closed;   /* peer gone: workers drop responses, chains stop */
    atomic_int inflight;  /* requests queued or running for this client */
    pthread_mutex_t lock; /* guards out */
    cm_buf out;
    cm_buf in;        /* event loop only */
    bool discarding;  /* event loop only: skipping an oversized line */
    bool want_out;    /* event loop only: EPOLLOUT armed */
    bool half_closed; /* event loop only: peer shut down writing; close when answered */
    struct ucred peer;
    atomic_int log_level;        /* 0: logging off (default), else MCP logging/setLevel index + 1 */
    struct cm_conn *next, *prev; /* event loop only */
    /* another transport's connection (engine/http_stream.c): fd is -1, every
       message goes to sink (which takes it) instead of the socket, and the
       last unref calls release to free the struct that embeds this one */
    void (*sink)(struct cm_conn *c, cJSON *msg);
    void (*release)(struct cm_conn *c);
    cm_running *running; /* cancellable requests (under lock; engine/cancel.c) */
} cm_conn;

typedef struct cm_engine_stats {
    atomic_long chains_ok;
    atomic_long chains_failed;
    atomic_long tool_calls;
    atomic_long requests;
    atomic_long busy_rejections;
} cm_engine_stats;

struct cm_engine {
    cm_config cfg;
    cm_vars *vars;
    cm_registry *registry;
    cm_jobs *jobs;
    char *socket_path;
    int listen_fd;
    int epoll_fd;
    int wake_fd;   /* eventfd: workers → event loop (output pending) */
    int signal_fd; /* SIGTERM/SIGINT */
    atomic_bool stopping;
    /* the request layer: called with each complete line a client sent
     * (set by main to cm_rpc_handle_line; the transport knows no more) */
    void (*on_line)(struct cm_engine *eng, cm_conn *conn, const char *line, size_t len);
    /* true while requests are queued or running (the worker pool's count) */
    bool (*requests_busy)(struct cm_engine *eng);
    /* the loop's periodic work (metrics file every 5 s; final: at stop) */
    void (*tick)(struct cm_engine *eng, bool final);
    atomic_bool abort_chains; /* the drain time is over: running chains stop (shutdown) */
    cm_conn *conns;           /* event loop only */
    int nconns;               /* event loop only */
    int nhalf_closed;         /* event loop only */
    cm_engine_stats stats;
    cm_metrics *metrics;
    /* start-up readiness (set before the loop starts, read-only after) */
    int manuals_loaded, manuals_failed;
    char *sandbox_check; /* NULL = a sandbox ran a chain at start-up; else why not */
    int metrics_fd;      /* loopback Prometheus listener, -1 when off */
    pthread_t metrics_thread;
    bool socket_activated; /* listening fd came from systemd: do not unlink it */
    int64_t metrics_written_ms;
    struct cm_policy_store *policy; /* NULL: no engine.policy configured */
    struct cm_providers *providers; /* provider connections and MCP sessions */
    struct cm_http *http; /* streamable HTTP transport, NULL when off (http_transport.h) */
    cm_isolation iso;     /* isolation layers (isolate/isolation.h) */
    struct cm_pool *pool; /* warm sandboxes + reaper (isolate/pool.h) */
    struct cm_chain_tools *chain_tools; /* tool tables per registry generation (chain_tools.h) */
    char *work_dir;                     /* provider temp dirs (workdir.c) */
    cm_cgroup provider_cg;              /* every provider process (workdir.c) */
    char **provider_exec;               /* argv prefix of provider spawns (provider_exec.h) */
    /* privilege separation (privdrop.c): the broker, and the service user
     * the engine runs as once separated */
    cm_privsep privsep;
    bool separated;
    uid_t svc_uid;
    gid_t svc_gid;
    char svc_from[64]; /* where the service user came from (doctor, log) */
    /* tool-call data in flight for all chains, and its high-water mark since
       the last malloc_trim (engine/chain_budget.h) */
    atomic_size_t inflight_bytes;
    atomic_size_t inflight_peak;
};

/* Runs `return 1` in a real sandbox and records the outcome in
 * eng->sandbox_check (readiness for codemode/health). */
void cm_engine_self_check(cm_engine *eng);
/* Registers every manual of the config; failures are logged, not fatal. */
void cm_engine_load_manuals(cm_engine *eng);
/* Registers one manual call template (discovery + registry); report as
 * registry.h describes.  caller NULL: the engine's own (config) manual;
 * else a socket caller, whose grants decide the template, the discovered
 * tools' templates, the variables and the name, whose egress rules bound
 * discovery, and whose profile owns the manual (policies/authority.h). */
struct cm_caller;
int cm_engine_register_manual(cm_engine *eng, const cJSON *call_template,
                              const struct cm_caller *caller, cJSON **report, cm_error *err);
/* 1 when `name` (sanitized) is the name of a manual in the engine config:
 * only a manage_all caller may register or deregister it. */
int cm_engine_config_manual(const cm_engine *eng, const char *name);

/* Connection references and output (thread-safe). */
void cm_conn_ref(cm_conn *c);
void cm_conn_unref(cm_conn *c);
/* Queues one JSON-RPC message (plus '\n') for the client and wakes the loop.
 * Takes ownership of msg. Dropped silently when the client is gone. */
void cm_conn_send(cm_conn *c, cJSON *msg);
/* Cancellation (engine/cancel.c): a running request registers itself with
 * its id; notifications/cancelled {requestId} sets its flag.  cm_conn_cancel
 * returns true when a running request had that id. */
void cm_conn_running_add(cm_conn *c, cm_running *r, const cJSON *id);
void cm_conn_running_remove(cm_conn *c, cm_running *r);
bool cm_conn_cancel(cm_conn *c, const cJSON *request_id);
/* The answer to request `id`: {"jsonrpc","id","result"} sent on c; for a
 * notification (id NULL) result is only freed.  Takes ownership. */
void cm_conn_answer(cm_conn *c, const cJSON *id, cJSON *result);

#endif
