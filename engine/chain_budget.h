/* chain_budget.h — bounded engine memory for tool calls (issue 14): the
 * bytes of tool-call arguments and results the engine holds for a chain (its
 * in-flight data) are counted per chain and for the whole engine, so a
 * hostile chain meets a clear tool_error instead of taking the engine's
 * memory.  The chain's counter is guarded by its caller's lock (the chain's);
 * the engine's is atomic. */
#ifndef CM_CHAIN_BUDGET_H
#define CM_CHAIN_BUDGET_H

#include <stddef.h>

#include "engine.h"
#include "error.h"

typedef struct cm_chain_budget {
    size_t bytes; /* this chain's in-flight bytes (arguments of running calls,
                     results not yet sent to the sandbox) */
    size_t peak;  /* its high-water mark */
} cm_chain_budget;

/* Reserves n bytes of a new tool call's arguments: refused (tool_error
 * naming the key and the numbers) when one call is over engine.max_call_mb,
 * or the chain would go over engine.chain_inflight_mb, or the engine over
 * engine.inflight_mb. */
int cm_budget_reserve(cm_engine *eng, cm_chain_budget *b, size_t n, cm_error *err);
/* Counts n bytes that already exist (a finished call's result). */
void cm_budget_charge(cm_engine *eng, cm_chain_budget *b, size_t n);
/* Gives n bytes back (at most what the chain holds). */
void cm_budget_release(cm_engine *eng, cm_chain_budget *b, size_t n);
/* At the chain's end: gives back whatever it still holds, then returns
 * freed memory to the OS (malloc_trim) when the engine holds no in-flight
 * data any more after a large peak. */
void cm_budget_end(cm_engine *eng, cm_chain_budget *b);

#endif
