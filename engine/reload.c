/* reload.c — policy reload entry points for the engine (see reload.h).
 * The swap itself is atomic in session.c: a new policy replaces the old one
 * only when it loaded and validated completely. */
#include "reload.h"

#include "session.h"

void cm_policy_reload_logged(cm_engine *eng)
{
    cm_error err;
    if (cm_policy_store_reload(eng->policy, &err) < 0)
        cm_log("error", "policy reload rejected, previous policy stays in force: %s", err.message);
    else
        cm_log("info", "policy reloaded");
}

cJSON *cm_policy_reload_result(cm_engine *eng, cm_error *err)
{
    if (cm_policy_store_reload(eng->policy, err) < 0) {
        cm_log("error", "policy reload rejected, previous policy stays in force: %s", err->message);
        return NULL;
    }
    cm_log("info", "policy reloaded");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "reloaded", 1);
    return r;
}
