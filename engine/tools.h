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

/* MCP tool result: {content:[{type:"text", text:<json>}], structuredContent, isError}.
 * Takes ownership of structured. */
cJSON *cm_tool_result(cJSON *structured, bool is_error);
/* {success:false, error:{kind, message}} as an isError tool result. */
cJSON *cm_tool_result_error(cm_errkind kind, const char *message);

/* Sends result for id (no-op for notifications); takes ownership. */
void cm_rpc_reply(cm_conn *conn, const cJSON *id, cJSON *result);

cJSON *cm_engine_stats_json(cm_engine *eng);

/* chain.c: runs one chain, returns {result, logs, error, stats} */
cJSON *cm_chain_run(cm_engine *eng, cm_conn *conn, const char *code, double timeout_s);
/* Same with explicit per-chain resource limits (isolation). */
cJSON *cm_chain_run_limited(cm_engine *eng, cm_conn *conn, const char *code, double timeout_s,
                            const cm_limits *limits);
void cm_tool_call_tool_chain(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params);

#endif
