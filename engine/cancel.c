/* cancel.c — notifications/cancelled for the requests a connection has
 * running (MCP's cancellation utility).  A chain registers itself under its
 * request id while it runs; a cancellation names the id and sets the
 * chain's flag, which its serve loop sees within its poll interval: the
 * sandbox is killed, its tool calls are cancelled, and no answer is sent
 * (the spec: the receiver of a cancellation sends none).  Ids are compared
 * as printed JSON, so 7 and "7" differ as JSON-RPC says. */
#include <string.h>

#include "engine.h"

void cm_conn_running_add(cm_conn *c, cm_running *r, const cJSON *id)
{
    r->id = cm_json_print(id);
    atomic_init(&r->cancelled, false);
    pthread_mutex_lock(&c->lock);
    r->next = c->running;
    c->running = r;
    pthread_mutex_unlock(&c->lock);
}

void cm_conn_running_remove(cm_conn *c, cm_running *r)
{
    pthread_mutex_lock(&c->lock);
    for (cm_running **p = &c->running; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    pthread_mutex_unlock(&c->lock);
    free(r->id);
    r->id = NULL;
}

bool cm_conn_cancel(cm_conn *c, const cJSON *request_id)
{
    if (!cJSON_IsString(request_id) && !cJSON_IsNumber(request_id))
        return false;
    cm_autofree char *key = cm_json_print(request_id);
    bool found = false;
    pthread_mutex_lock(&c->lock);
    for (cm_running *r = c->running; r; r = r->next)
        if (!strcmp(r->id, key)) {
            atomic_store(&r->cancelled, true);
            found = true;
        }
    pthread_mutex_unlock(&c->lock);
    return found;
}
