/* reload.c — policy reload entry points for the engine (see reload.h).
 * The swap itself is atomic in session.c: a new policy replaces the old one
 * only when it loaded and validated completely. */
#include "reload.h"

#include "server.h"
#include "session.h"
#include "tools.h"

void cm_policy_reload_logged(cm_engine *eng)
{
    cm_error err;
    if (cm_policy_store_reload(eng->policy, &err) < 0)
        cm_log("error", "policy reload rejected, previous policy stays in force: %s", err.message);
    else
        cm_log("info", "policy reloaded");
}

void cm_policy_handle_reload(cm_engine *eng, cm_conn *conn, const cJSON *id)
{
    cm_error err;
    if (cm_policy_store_reload(eng->policy, &err) < 0) {
        cm_log("error", "policy reload rejected, previous policy stays in force: %s", err.message);
        if (id)
            cm_conn_send(conn, cm_rpc_error(id, -32002, err.message));
        return;
    }
    cm_log("info", "policy reloaded");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "reloaded", 1);
    cm_rpc_reply(conn, id, r);
}
