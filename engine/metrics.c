/* metrics.c — counters and latency histograms for observability (see
 * metrics.h).  One mutex guards everything: recording is a few increments,
 * rendering is rare (scrapes, stats). */
#include "metrics.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const double latency_buckets_ms[] = {5,    10,   25,   50,    100,   250,  500,
                                            1000, 2500, 5000, 10000, 30000, 60000};
#define NBUCKETS (sizeof latency_buckets_ms / sizeof *latency_buckets_ms)

typedef struct histogram {
    unsigned long buckets[NBUCKETS]; /* cumulative on render, per-bucket here */
    unsigned long count;
    double sum;
} histogram;

typedef struct label_count {
    char *a, *b; /* label values */
    unsigned long n;
} label_count;

typedef struct label_table {
    label_count *rows;
    size_t len, cap;
} label_table;

struct cm_metrics {
    pthread_mutex_t lock;
    label_table chains;     /* outcome */
    label_table tool_calls; /* manual, decision */
    histogram chain_ms;
    histogram sandbox_ms;
    histogram pool_refill_ms;
    unsigned long pool_misses;
};

cm_metrics *cm_metrics_new(void)
{
    cm_metrics *m = cm_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void table_free(label_table *t)
{
    for (size_t i = 0; i < t->len; i++) {
        free(t->rows[i].a);
        free(t->rows[i].b);
    }
    free(t->rows);
}

void cm_metrics_free(cm_metrics *m)
{
    if (!m)
        return;
    table_free(&m->chains);
    table_free(&m->tool_calls);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Caller holds the lock. */
static void table_add(label_table *t, const char *a, const char *b)
{
    for (size_t i = 0; i < t->len; i++)
        if (!strcmp(t->rows[i].a, a) && (!b || !strcmp(t->rows[i].b, b))) {
            t->rows[i].n++;
            return;
        }
    if (t->len == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        label_count *rows = realloc(t->rows, t->cap * sizeof *rows);
        if (!rows)
            abort();
        t->rows = rows;
    }
    t->rows[t->len++] = (label_count){cm_xstrdup(a), b ? cm_xstrdup(b) : NULL, 1};
}

static void observe(histogram *h, double v)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        if (v <= latency_buckets_ms[i]) {
            h->buckets[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void cm_metrics_chain_done(cm_metrics *m, const char *outcome, double wall_ms)
{
    pthread_mutex_lock(&m->lock);
    table_add(&m->chains, outcome, NULL);
    observe(&m->chain_ms, wall_ms);
    pthread_mutex_unlock(&m->lock);
}

void cm_metrics_tool_call(cm_metrics *m, const char *manual, const char *decision)
{
    pthread_mutex_lock(&m->lock);
    table_add(&m->tool_calls, manual ? manual : "unknown", decision);
    pthread_mutex_unlock(&m->lock);
}

void cm_metrics_sandbox_ready(cm_metrics *m, double ms)
{
    pthread_mutex_lock(&m->lock);
    observe(&m->sandbox_ms, ms);
    pthread_mutex_unlock(&m->lock);
}

void cm_metrics_pool_refill(cm_metrics *m, double ms)
{
    pthread_mutex_lock(&m->lock);
    observe(&m->pool_refill_ms, ms);
    pthread_mutex_unlock(&m->lock);
}

void cm_metrics_pool_miss(cm_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->pool_misses++;
    pthread_mutex_unlock(&m->lock);
}

/* Label values are engine-made names, but escape anyway: \ " and newline. */
static int put_label(cm_buf *out, const char *v, cm_error *err)
{
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (cm_buf_append(out, esc ? esc : p, esc ? 2 : 1, err) < 0)
            return -1;
    }
    return 0;
}

static int render_histogram(cm_buf *out, const char *name, const char *help, const histogram *h,
                            cm_error *err)
{
    if (cm_buf_printf(out, err, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name) < 0)
        return -1;
    unsigned long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += h->buckets[i];
        if (cm_buf_printf(out, err, "%s_bucket{le=\"%g\"} %lu\n", name, latency_buckets_ms[i],
                          cum) < 0)
            return -1;
    }
    return cm_buf_printf(out, err, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.3f\n%s_count %lu\n", name,
                         h->count, name, h->sum, name, h->count);
}

static int render_counters(cm_metrics *m, cm_buf *out, cm_error *err)
{
    if (cm_buf_printf(out, err,
                      "# HELP codemode_chains_total Chains finished, by outcome (ok or error "
                      "kind).\n# TYPE codemode_chains_total counter\n") < 0)
        return -1;
    for (size_t i = 0; i < m->chains.len; i++) {
        if (cm_buf_printf(out, err, "codemode_chains_total{outcome=\"") < 0 ||
            put_label(out, m->chains.rows[i].a, err) < 0 ||
            cm_buf_printf(out, err, "\"} %lu\n", m->chains.rows[i].n) < 0)
            return -1;
    }
    if (cm_buf_printf(out, err,
                      "# HELP codemode_tool_calls_total Tool calls, by manual and decision "
                      "(ok, error, denied).\n# TYPE codemode_tool_calls_total counter\n") < 0)
        return -1;
    for (size_t i = 0; i < m->tool_calls.len; i++) {
        if (cm_buf_printf(out, err, "codemode_tool_calls_total{manual=\"") < 0 ||
            put_label(out, m->tool_calls.rows[i].a, err) < 0 ||
            cm_buf_printf(out, err, "\",decision=\"") < 0 ||
            put_label(out, m->tool_calls.rows[i].b, err) < 0 ||
            cm_buf_printf(out, err, "\"} %lu\n", m->tool_calls.rows[i].n) < 0)
            return -1;
    }
    return 0;
}

static int render_gauges(const cJSON *gauges, cm_buf *out, cm_error *err)
{
    const cJSON *g;
    cJSON_ArrayForEach(g, gauges)
    {
        if (!cJSON_IsNumber(g))
            continue;
        if (cm_buf_printf(out, err, "# TYPE codemode_%s gauge\ncodemode_%s %g\n", g->string,
                          g->string, g->valuedouble) < 0)
            return -1;
    }
    return 0;
}

int cm_metrics_render(cm_metrics *m, const cJSON *gauges, cm_buf *out, cm_error *err)
{
    pthread_mutex_lock(&m->lock);
    int rc = render_counters(m, out, err);
    if (rc == 0)
        rc = render_histogram(out, "codemode_chain_duration_ms",
                              "Wall time of chains from request to answer.", &m->chain_ms, err);
    if (rc == 0)
        rc = render_histogram(out, "codemode_sandbox_ready_ms",
                              "Time from sandbox creation to runner ready.", &m->sandbox_ms, err);
    if (rc == 0)
        rc = render_histogram(out, "codemode_pool_refill_ms",
                              "Time to build one warm-pool sandbox (spawn to ready).",
                              &m->pool_refill_ms, err);
    if (rc == 0)
        rc = cm_buf_printf(out, err,
                           "# HELP codemode_pool_misses_total Chains that found the warm pool "
                           "empty and built a sandbox on the request path.\n# TYPE "
                           "codemode_pool_misses_total counter\ncodemode_pool_misses_total %lu\n",
                           m->pool_misses);
    pthread_mutex_unlock(&m->lock);
    if (rc == 0)
        rc = render_gauges(gauges, out, err);
    return rc;
}

/* Upper bound of the bucket holding quantile q (histogram estimate). */
static double quantile(const histogram *h, double q)
{
    if (!h->count)
        return 0;
    unsigned long want = (unsigned long)(q * (double)h->count + 0.999999), cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += h->buckets[i];
        if (cum >= want)
            return latency_buckets_ms[i];
    }
    return latency_buckets_ms[NBUCKETS - 1];
}

cJSON *cm_metrics_json(cm_metrics *m)
{
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&m->lock);
    cJSON *chains = cJSON_AddObjectToObject(j, "chains");
    for (size_t i = 0; i < m->chains.len; i++)
        cJSON_AddNumberToObject(chains, m->chains.rows[i].a, (double)m->chains.rows[i].n);
    cJSON *calls = cJSON_AddObjectToObject(j, "tool_calls");
    for (size_t i = 0; i < m->tool_calls.len; i++) {
        cJSON *per = cJSON_GetObjectItemCaseSensitive(calls, m->tool_calls.rows[i].a);
        if (!per)
            per = cJSON_AddObjectToObject(calls, m->tool_calls.rows[i].a);
        cJSON_AddNumberToObject(per, m->tool_calls.rows[i].b, (double)m->tool_calls.rows[i].n);
    }
    cJSON *lat = cJSON_AddObjectToObject(j, "chain_latency_ms");
    cJSON_AddNumberToObject(lat, "count", (double)m->chain_ms.count);
    cJSON_AddNumberToObject(lat, "sum", m->chain_ms.sum);
    cJSON_AddNumberToObject(lat, "p50_le", quantile(&m->chain_ms, 0.5));
    cJSON_AddNumberToObject(lat, "p99_le", quantile(&m->chain_ms, 0.99));
    pthread_mutex_unlock(&m->lock);
    return j;
}

int cm_metrics_write_file(cm_metrics *m, const cJSON *gauges, const char *path, cm_error *err)
{
    cm_buf out = {0};
    if (cm_metrics_render(m, gauges, &out, err) < 0) {
        cm_buf_free(&out);
        return -1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = -1;
    cm_autofd int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        cm_error_sys(err, CM_ERR_IO, "cannot write metrics file %s", tmp);
    else if (cm_write_all(fd, out.data ? out.data : "", out.len, err) == 0) {
        if (rename(tmp, path) < 0)
            cm_error_sys(err, CM_ERR_IO, "cannot rename %s to %s", tmp, path);
        else
            rc = 0;
    }
    cm_buf_free(&out);
    return rc;
}
