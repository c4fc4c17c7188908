/* metrics.h — the engine's counters and histograms, rendered as Prometheus
 * text (file, loopback port, `codemode/metrics`) and JSON (`codemode/stats`).
 * Thread-safe: chains and tool calls record from worker threads. */
#ifndef CM_METRICS_H
#define CM_METRICS_H

#include <cjson/cJSON.h>

#include "error.h"
#include "util.h"

typedef struct cm_metrics cm_metrics;

cm_metrics *cm_metrics_new(void);
void cm_metrics_free(cm_metrics *m);

/* outcome: "ok" or a chain error kind. */
void cm_metrics_chain_done(cm_metrics *m, const char *outcome, double wall_ms);
/* decision: "ok", "error" (the provider failed) or "denied" (policy). */
void cm_metrics_tool_call(cm_metrics *m, const char *manual, const char *decision);
/* Sandbox creation time (set-up until the runner is ready). */
void cm_metrics_sandbox_ready(cm_metrics *m, double ms);
/* Warm pool: one sandbox built by a refill (ms), one take that found none. */
void cm_metrics_pool_refill(cm_metrics *m, double ms);
void cm_metrics_pool_miss(cm_metrics *m);

/* Appends the Prometheus text exposition of every metric to out; `gauges`
 * holds extra gauge name → number pairs (e.g. queue depth) or NULL. */
int cm_metrics_render(cm_metrics *m, const cJSON *gauges, cm_buf *out, cm_error *err);
/* {chains:{outcome:n}, tool_calls:{manual:{decision:n}}, chain_latency_ms:{p50,p99,count,sum}} */
cJSON *cm_metrics_json(cm_metrics *m);
/* Writes the Prometheus text to path atomically (temp file + rename). */
int cm_metrics_write_file(cm_metrics *m, const cJSON *gauges, const char *path, cm_error *err);

#endif
