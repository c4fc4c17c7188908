/* jobs.c — fixed pool of worker threads over a bounded FIFO (see jobs.h). */
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    cm_job_fn fn;
    cm_conn *conn;
    cJSON *id;
    cJSON *params;
    struct job *next;
} job;

struct cm_jobs {
    cm_engine *eng;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    int queued, running, queue_max, nthreads;
    bool stopping;
    pthread_t *threads;
};

static job *take_job(cm_jobs *j)
{
    pthread_mutex_lock(&j->lock);
    while (!j->head && !j->stopping)
        pthread_cond_wait(&j->cond, &j->lock);
    job *jb = j->head;
    if (jb) {
        j->head = jb->next;
        if (!j->head)
            j->tail = NULL;
        j->queued--;
        j->running++;
    }
    pthread_mutex_unlock(&j->lock);
    return jb;
}

static void finish_job(cm_jobs *j, job *jb)
{
    atomic_fetch_sub(&jb->conn->inflight, 1);
    cm_conn_unref(jb->conn);
    cJSON_Delete(jb->id);
    cJSON_Delete(jb->params);
    free(jb);
    pthread_mutex_lock(&j->lock);
    j->running--;
    pthread_mutex_unlock(&j->lock);
}

static void *worker_main(void *arg)
{
    cm_jobs *j = arg;
    job *jb;
    while ((jb = take_job(j)) != NULL) {
        cJSON *result = jb->fn(j->eng, jb->conn, jb->id, jb->params);
        if (result)
            cm_conn_answer(jb->conn, jb->id, result);
        finish_job(j, jb);
    }
    return NULL;
}

int cm_jobs_start(cm_engine *eng, int workers, int queue_max, cm_jobs **out, cm_error *err)
{
    cm_jobs *j = cm_xcalloc(1, sizeof *j);
    j->eng = eng;
    j->queue_max = queue_max;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->threads = cm_xcalloc((size_t)workers, sizeof *j->threads);
    for (int i = 0; i < workers; i++) {
        int rc = pthread_create(&j->threads[i], NULL, worker_main, j);
        if (rc != 0) {
            j->nthreads = i;
            cm_jobs_stop(j);
            errno = rc;
            return cm_error_sys(err, CM_ERR_INTERNAL, "cannot start worker thread %d", i);
        }
        j->nthreads = i + 1;
    }
    *out = j;
    return 0;
}

int cm_jobs_submit(cm_jobs *j, cm_job_fn fn, cm_conn *conn, const cJSON *id, const cJSON *params,
                   cm_error *err)
{
    pthread_mutex_lock(&j->lock);
    if (j->stopping) {
        pthread_mutex_unlock(&j->lock);
        return cm_error_set(err, CM_ERR_BUSY, "engine is shutting down");
    }
    if (j->queued >= j->queue_max) {
        pthread_mutex_unlock(&j->lock);
        return cm_error_set(err, CM_ERR_BUSY, "engine busy: %d requests already queued",
                            j->queue_max);
    }
    job *jb = cm_xcalloc(1, sizeof *jb);
    jb->fn = fn;
    jb->conn = conn;
    cm_conn_ref(conn);
    atomic_fetch_add(&conn->inflight, 1);
    jb->id = id ? cJSON_Duplicate(id, 1) : NULL;
    jb->params = params ? cJSON_Duplicate(params, 1) : NULL;
    if (j->tail)
        j->tail->next = jb;
    else
        j->head = jb;
    j->tail = jb;
    j->queued++;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

void cm_jobs_stop(cm_jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    free(j->threads);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

int cm_jobs_queued(cm_jobs *j)
{
    pthread_mutex_lock(&j->lock);
    int n = j->queued;
    pthread_mutex_unlock(&j->lock);
    return n;
}

int cm_jobs_running(cm_jobs *j)
{
    pthread_mutex_lock(&j->lock);
    int n = j->running;
    pthread_mutex_unlock(&j->lock);
    return n;
}
