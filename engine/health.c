/* health.c — readiness and the engine-only observability methods:
 * `codemode/health` (ready or not, and why), `codemode/stats` (counters,
 * latency summary, queue) and `codemode/metrics` (Prometheus text).  The
 * start-up self check runs one real chain so "ready" means a sandbox can
 * actually be built here, not just that the process is up. */
#include <string.h>

#include "jobs.h"
#include "pool.h"
#include "tools.h"

void cm_engine_self_check(cm_engine *eng)
{
    cJSON *r = cm_chain_run(eng, NULL, "return 1", 30);
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(r, "result");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(r, "error");
    free(eng->sandbox_check);
    eng->sandbox_check = NULL;
    if (!cJSON_IsNumber(result) || result->valuedouble != 1) {
        const char *msg = cm_json_str(error, "message");
        eng->sandbox_check = cm_xstrdup(msg ? msg : "self-check chain returned a wrong result");
        cm_log("error", "health: sandbox self-check failed: %s", eng->sandbox_check);
    } else {
        const cJSON *stats = cJSON_GetObjectItemCaseSensitive(r, "stats");
        const cJSON *wall = cJSON_GetObjectItemCaseSensitive(stats, "wall_ms");
        cm_log("info", "health: sandbox self-check ok in %.1f ms",
               cJSON_IsNumber(wall) ? wall->valuedouble : 0.0);
    }
    cJSON_Delete(r);
}

static cJSON *gauges(cm_engine *eng)
{
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "queue_depth", cm_jobs_queued(eng->jobs));
    cJSON_AddNumberToObject(g, "chains_running", cm_jobs_running(eng->jobs));
    cJSON_AddNumberToObject(g, "workers", eng->cfg.workers);
    cJSON_AddNumberToObject(g, "connections", eng->nconns);
    cJSON_AddNumberToObject(g, "manuals_loaded", eng->manuals_loaded);
    cJSON_AddNumberToObject(g, "manuals_failed", eng->manuals_failed);
    cJSON_AddNumberToObject(g, "ready", eng->sandbox_check == NULL);
    if (eng->pool) {
        cm_pool_stats ps;
        cm_pool_get_stats(eng->pool, &ps);
        cJSON_AddNumberToObject(g, "pool_idle", ps.idle + ps.idle_full);
        cJSON_AddNumberToObject(g, "pool_building", ps.building);
        cJSON_AddNumberToObject(g, "pool_disposing", ps.disposing);
    }
    return g;
}

cJSON *cm_engine_health_json(cm_engine *eng)
{
    cJSON *h = cJSON_CreateObject();
    bool stopping = atomic_load(&eng->stopping);
    /* with a warm pool configured, ready also means a sandbox is waiting */
    cm_pool_stats ps = {0};
    if (eng->pool)
        cm_pool_get_stats(eng->pool, &ps);
    bool warm = ps.size == 0 || ps.idle > 0;
    bool ready = !eng->sandbox_check && !stopping && warm;
    cJSON_AddBoolToObject(h, "ready", ready);
    cJSON_AddStringToObject(h, "status", stopping ? "stopping" : ready ? "ready" : "not_ready");
    if (eng->sandbox_check)
        cJSON_AddStringToObject(h, "reason", eng->sandbox_check);
    else if (!warm)
        cJSON_AddStringToObject(h, "reason", "the warm pool is empty (refilling)");
    cJSON *pool = cJSON_AddObjectToObject(h, "pool");
    cJSON_AddNumberToObject(pool, "size", ps.size);
    cJSON_AddNumberToObject(pool, "full_size", ps.full_size);
    cJSON_AddNumberToObject(pool, "idle", ps.idle);
    cJSON_AddNumberToObject(pool, "idle_full", ps.idle_full);
    cJSON_AddNumberToObject(pool, "building", ps.building);
    cJSON_AddNumberToObject(pool, "disposing", ps.disposing);
    cJSON_AddNumberToObject(pool, "hits", (double)ps.hits);
    cJSON_AddNumberToObject(pool, "misses", (double)ps.misses);
    cJSON_AddNumberToObject(pool, "zygotes", ps.zygotes);
    cJSON_AddNumberToObject(pool, "zygote_spawns", (double)ps.zygote_spawns);
    cJSON_AddStringToObject(h, "version", CM_VERSION);
    cJSON *m = cJSON_AddObjectToObject(h, "manuals");
    cJSON_AddNumberToObject(m, "loaded", eng->manuals_loaded);
    cJSON_AddNumberToObject(m, "failed", eng->manuals_failed);
    cJSON_AddStringToObject(h, "sandbox", eng->sandbox_check ? "failing" : "ok");
    return h;
}

cJSON *cm_engine_stats_json(cm_engine *eng)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "chains_ok", (double)atomic_load(&eng->stats.chains_ok));
    cJSON_AddNumberToObject(s, "chains_failed", (double)atomic_load(&eng->stats.chains_failed));
    cJSON_AddNumberToObject(s, "tool_calls", (double)atomic_load(&eng->stats.tool_calls));
    cJSON_AddNumberToObject(s, "requests", (double)atomic_load(&eng->stats.requests));
    cJSON_AddNumberToObject(s, "busy_rejections", (double)atomic_load(&eng->stats.busy_rejections));
    cJSON_AddNumberToObject(s, "queued", cm_jobs_queued(eng->jobs));
    cJSON_AddNumberToObject(s, "running", cm_jobs_running(eng->jobs));
    cJSON_AddNumberToObject(s, "connections", eng->nconns);
    cJSON_AddItemToObject(s, "metrics", cm_metrics_json(eng->metrics));
    return s;
}

int cm_engine_metrics_text(cm_engine *eng, cm_buf *out, cm_error *err)
{
    cm_autojson cJSON *g = gauges(eng);
    return cm_metrics_render(eng->metrics, g, out, err);
}

#define METRICS_FILE_MS 5000

void cm_engine_tick(cm_engine *eng, bool final)
{
    if (!eng->cfg.metrics_file)
        return;
    if (!final && cm_now_ms() - eng->metrics_written_ms < METRICS_FILE_MS)
        return;
    eng->metrics_written_ms = cm_now_ms();
    cm_autojson cJSON *g = gauges(eng);
    cm_error err;
    if (cm_metrics_write_file(eng->metrics, g, eng->cfg.metrics_file, &err) < 0)
        cm_log("warn", "metrics: %s", err.message);
}
