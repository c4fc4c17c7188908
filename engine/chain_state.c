/* chain_state.c — a chain's outcome (the first error wins and ends it) and
 * its queue of frames to the sandbox: the two pieces of chain state both the
 * frame loop (chain.c) and the tool calls (chain_calls.c) write, in a file of
 * their own so neither has to call back into the other. */
#include <stdarg.h>
#include <stdio.h>

#include "chain_int.h"

void cm_chain_set_error(chain *ch, cm_errkind kind, const char *message, const char *traceback)
{
    if (ch->error)
        return;
    ch->error = cJSON_CreateObject();
    cJSON_AddStringToObject(ch->error, "kind", cm_errkind_name(kind));
    cJSON_AddStringToObject(ch->error, "message", message);
    if (traceback)
        cJSON_AddStringToObject(ch->error, "traceback", traceback);
    ch->finished = true;
}

void cm_chain_errorf(chain *ch, cm_errkind kind, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cm_chain_set_error(ch, kind, msg, NULL);
}

void cm_chain_queue(chain *ch, cJSON *frame)
{
    cm_error err;
    if (cm_frame_encode(frame, &ch->to_sandbox, &err) < 0)
        cm_chain_errorf(ch, CM_ERR_INTERNAL, "cannot encode control frame: %s", err.message);
    cJSON_Delete(frame);
}
