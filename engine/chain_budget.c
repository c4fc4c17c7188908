/* chain_budget.c — the in-flight memory budget of tool calls, per chain and
 * engine-wide (chain_budget.h).  Why: one chain gathering 16 calls with 5 MB
 * arguments each made the engine hold several copies of every argument at
 * once (parsed frame, provider request, encoded body) and grew it to GBs that
 * glibc never gave back; now what a chain may hold is bounded and refused
 * with a precise message, and the memory returns to the OS afterwards. */
#include "chain_budget.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

/* Trim only after a peak this large: malloc_trim walks every arena. */
#define TRIM_AFTER_PEAK (16u << 20)
static void note_peak(cm_engine *eng, size_t total)
{
    size_t peak = atomic_load(&eng->inflight_peak);
    while (total > peak && !atomic_compare_exchange_weak(&eng->inflight_peak, &peak, total))
        ;
}

int cm_budget_reserve(cm_engine *eng, cm_chain_budget *b, size_t n, cm_error *err)
{
    const cm_config *cfg = &eng->cfg;
    if (n > cfg->max_call_bytes)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "tool call of %zu bytes exceeds the limit of %zu bytes for one call "
                            "(engine.max_call_mb)",
                            n, cfg->max_call_bytes);
    if (b->bytes + n > cfg->chain_inflight_bytes)
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "tool call of %zu bytes refused: the chain already has %zu bytes of "
                            "tool-call data in flight and its budget is %zu bytes "
                            "(engine.chain_inflight_mb); await some calls before starting more",
                            n, b->bytes, cfg->chain_inflight_bytes);
    size_t total = atomic_load(&eng->inflight_bytes);
    do {
        if (total + n > cfg->inflight_bytes)
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "tool call of %zu bytes refused: the engine already has %zu bytes "
                                "of tool-call data in flight for all chains and its budget is %zu "
                                "bytes (engine.inflight_mb); retry later",
                                n, total, cfg->inflight_bytes);
    } while (!atomic_compare_exchange_weak(&eng->inflight_bytes, &total, total + n));
    note_peak(eng, total + n);
    b->bytes += n;
    if (b->bytes > b->peak)
        b->peak = b->bytes;
    return 0;
}

void cm_budget_charge(cm_engine *eng, cm_chain_budget *b, size_t n)
{
    note_peak(eng, atomic_fetch_add(&eng->inflight_bytes, n) + n);
    b->bytes += n;
    if (b->bytes > b->peak)
        b->peak = b->bytes;
}

void cm_budget_release(cm_engine *eng, cm_chain_budget *b, size_t n)
{
    if (n > b->bytes)
        n = b->bytes;
    b->bytes -= n;
    atomic_fetch_sub(&eng->inflight_bytes, n);
}

void cm_budget_end(cm_engine *eng, cm_chain_budget *b)
{
    cm_budget_release(eng, b, b->bytes);
    if (atomic_load(&eng->inflight_bytes) != 0)
        return; /* the last chain holding data trims */
    if (atomic_exchange(&eng->inflight_peak, 0) >= TRIM_AFTER_PEAK)
        malloc_trim(0);
}
