/* tools.h — the tools the engine offers over MCP (call_tool_chain,
 * register_manual, ...): their schemas, handlers and result shapes. */
#ifndef CM_TOOLS_H
#define CM_TOOLS_H

#include <stdbool.h>

#include "engine.h"
#include "jobs.h"

typedef struct cm_tool_def {
    const char *name;
    const char *description;
    const char *input_schema; /* JSON text */
    bool slow;                /* runs on the worker pool */
    bool read_only;
    cm_job_fn run;
} cm_tool_def;

const cm_tool_def *cm_tools_find(const char *name);
/* {tools:[{name, description, inputSchema, annotations}]} */
cJSON *cm_tools_list(void);

/* health.c */
cJSON *cm_engine_stats_json(cm_engine *eng);
cJSON *cm_engine_health_json(cm_engine *eng);
int cm_engine_metrics_text(cm_engine *eng, cm_buf *out, cm_error *err);
/* the loop's periodic work: the metrics file every 5 s (final: now) */
void cm_engine_tick(cm_engine *eng, bool final);
/* metrics_http.c: GET /metrics on 127.0.0.1:engine.metrics_port (0 = off) */
int cm_metrics_http_start(cm_engine *eng, cm_error *err);
void cm_metrics_http_stop(cm_engine *eng);

/* chain.c: runs one chain, returns {result, logs, error, stats} */
cJSON *cm_chain_run(cm_engine *eng, cm_conn *conn, const char *code, double timeout_s);
/* The same; each log line is also streamed to conn (agent.h) with the MCP
 * progress token (may be NULL). */
cJSON *cm_chain_run_progress(cm_engine *eng, cm_conn *conn, const char *code, double timeout_s,
                             const cJSON *progress_token);
cJSON *cm_tool_call_tool_chain(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params);

#endif
