/* chain_int.h — what chain.c (sandbox, control frames, limits),
 * chain_calls.c (the chain's tool calls and their memory budget) and
 * chain_check.c (the protocol rules a chain's frames must keep) share: the
 * chain's state.  Private to those files. */
#ifndef CM_CHAIN_INT_H
#define CM_CHAIN_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "chain_budget.h"
#include "engine.h"
#include "frame.h"
#include "isolation.h"
#include "pool.h"
#include "provider.h"
#include "redact.h"
#include "sandbox.h"
#include "session.h"

typedef struct chain chain;

typedef struct tool_call {
    chain *ch;
    double id;
    char *tool;
    char *manual;     /* set once the tool resolved */
    cJSON *args;      /* NULL once the provider has its own copy (and no audit needs it) */
    size_t arg_bytes; /* the call frame's size, counted in the chain's budget */
    pthread_t thread;
    struct tool_call *next;
    /* calls on the providers' I/O loop (http): no thread; see start_async_call */
    bool async;
    char *qualified;
    cm_call_ctx ctx;
    cm_decision d;
    int64_t t0;
    cm_redactor *redact; /* the call's substituted values, out of its result frame */
} tool_call;

struct chain {
    cm_engine *eng;
    cm_conn *conn;
    int ctl_fd, out_fd, wake_fd;
    cm_sandbox sb;
    bool spawned;
    bool pool_hit;      /* the sandbox came from the warm pool */
    double pool_cpu_ms; /* its cgroup's CPU time when taken (the build's) */
    cm_frame_reader reader;
    cm_buf to_sandbox; /* chain thread only */
    cm_buf diag;       /* runner's stdout/stderr, capped */
    pthread_mutex_t lock;
    cm_buf finished_calls;     /* encoded result frames from tool threads (under lock) */
    int inflight;              /* under lock */
    cm_chain_budget budget;    /* in-flight tool-call bytes (under lock) */
    size_t results_queued;     /* of them: result frames not yet sent (under lock) */
    pthread_cond_t calls_done; /* signalled when an async call posted (under lock) */
    atomic_bool cancel;
    tool_call *calls;
    tool_call *waiting;     /* calls over engine.max_inflight_calls, in order (chain thread) */
    cJSON *tool_notes;      /* providers' lines for the logs, not yet taken (under lock) */
    size_t tool_note_bytes; /* their size (under lock) */
    int ncalls;
    cJSON *logs;
    size_t log_bytes;
    cJSON *result;
    cJSON *error;
    bool finished;
    int64_t start_us, deadline_ms, ready_us;
    double timeout_s;
    cm_policy_chain *pc;         /* policy session (policies/session.h) */
    cm_egress egress;            /* the profile's egress rules for providers (rules NULL: none) */
    const cm_limits *lim;        /* this chain's limits: engine ∩ profile ∩ request */
    const cJSON *progress_token; /* MCP progress token of the request, or NULL */
    cm_running run;              /* registered on conn while it runs (cancel.c) */
    bool registered;
    cm_limits limits;              /* isolation: this chain's cgroup limits */
    cm_jail jail;                  /* isolation: ids and cgroups of this chain's sandbox */
    char primed[CM_POOL_KEY_MAX];  /* the warm sandbox's tool table (chain_tools.h), or "" */
    cm_cgroup_usage_fds usage_fds; /* its cgroup usage files, when usage_open */
    bool usage_open;
    /* chain_check.c: what the chain's frames are checked against */
    long long next_id;           /* the id the next call/search/interfaces must have */
    atomic_ulong returned_kinds; /* bit k: a failed result of kind k went to the chain */
    unsigned long registry_gen;  /* the registry's generation when the run began */
    char runner_end[40];         /* the init's report of the runner's end, or "" (chain.c) */
};

/* chain_state.c: the chain's error (first one wins; ends the chain) */
void cm_chain_set_error(chain *ch, cm_errkind kind, const char *message, const char *traceback);
void cm_chain_errorf(chain *ch, cm_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* chain.c: a provider's line (an MCP server's progress or log) into the
 * chain's logs, streamed like a print; dropped past max_output_bytes. */
void cm_chain_note(chain *ch, const char *line);
/* Encodes frame (taken) onto the bytes waiting for the sandbox. */
void cm_chain_queue(chain *ch, cJSON *frame);

/* chain_check.c: the protocol rules (a broken one ends the chain with kind
 * exception, "the chain broke the runner protocol: ...") */
void cm_chain_broke(chain *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* id is the next of the chain's call/search/interfaces ids (1, 2, 3...);
 * false (and the chain ended) when not. */
bool cm_chain_take_id(chain *ch, const cJSON *id, const char *what);
/* tool names a tool of this run (the caller's view of the registry); false
 * (and the chain ended) when not. */
bool cm_chain_tool_known(chain *ch, const char *tool);
/* A failed result of this kind goes to the chain (any thread). */
void cm_chain_returned(chain *ch, cm_errkind kind);
/* A `done` may carry this kind: one the runner produces, or one returned. */
bool cm_chain_may_claim(chain *ch, const char *kind);

/* chain_calls.c */
cJSON *cm_chain_result_frame(double id, cJSON *value, const cm_error *err);
/* A `call` frame of frame_len bytes (msg's args are taken from it). */
void cm_chain_start_call(chain *ch, cJSON *msg, size_t frame_len);
/* A frame of frame_len bytes, over the reader's limit, was dropped unread:
 * a tool call (its head says so) is refused, anything else ends the chain. */
void cm_chain_oversized_frame(chain *ch, const char *head, size_t frame_len);
/* Moves finished calls' result frames onto the bytes for the sandbox. */
void cm_chain_collect_calls(chain *ch);
/* n bytes went to the sandbox: the results among them leave the budget. */
void cm_chain_sent(chain *ch, size_t n);
/* Cancels and waits for every call of the chain, then frees them. */
void cm_chain_join_calls(chain *ch);

#endif
