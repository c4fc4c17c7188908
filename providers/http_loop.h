/* http_loop.h — the providers' HTTP I/O loop: one long-lived thread driving
 * every asynchronous HTTP request through one curl multi handle (sharing
 * the providers' curl share, so connections are reused with the blocking
 * path).  Requests are submitted from any thread with a completion
 * callback; the callback runs on the loop thread and must not block. */
#ifndef CM_PROVIDERS_HTTP_LOOP_H
#define CM_PROVIDERS_HTTP_LOOP_H

#include "http_client.h"

/* resp is the final response (valid during the call only; the callback may
 * steal its fields) or NULL with err set. */
typedef void (*cm_http_done_fn)(void *arg, cm_http_resp *resp, const cm_error *err);

/* Queues the request (its pointers must stay valid until done runs).  done
 * is called exactly once: on the loop thread, or before this returns when
 * the request cannot even start. */
void cm_http_submit(cm_providers *p, const cm_http_req *req, cm_http_done_fn done, void *arg);
/* Makes the loop look at cancel flags now (a chain was cancelled). */
void cm_http_loop_wakeup(cm_providers *p);
/* Stops the loop (pending requests fail) and joins its thread. */
void cm_http_loop_free(cm_providers *p);

#endif
