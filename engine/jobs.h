/* jobs.h — the bounded worker pool that runs slow requests (chains, manual
 * registration) off the event loop.  A full queue is refused at once
 * (`busy`), never waited on: the event loop must stay responsive. */
#ifndef CM_JOBS_H
#define CM_JOBS_H

#include <cjson/cJSON.h>

#include "engine.h"

/* A job (and every tool handler): run(eng, conn, id, params) returns the
 * result the worker answers id with, or NULL when it answered itself (a
 * chain answers before its sandbox is torn down).  id NULL: a
 * notification, whose result is dropped.  Handlers send only streamed
 * notifications (log lines, progress) on conn. */
typedef cJSON *(*cm_job_fn)(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params);

int cm_jobs_start(cm_engine *eng, int workers, int queue_max, cm_jobs **out, cm_error *err);
/* Queues a job; takes references on conn and copies id/params.  Returns -1
 * with CM_ERR_BUSY when the queue is full or the pool is stopping. */
int cm_jobs_submit(cm_jobs *j, cm_job_fn fn, cm_conn *conn, const cJSON *id, const cJSON *params,
                   cm_error *err);
/* Stops taking jobs, lets running and queued jobs finish, joins workers. */
void cm_jobs_stop(cm_jobs *j);
int cm_jobs_queued(cm_jobs *j);
int cm_jobs_running(cm_jobs *j);

#endif
