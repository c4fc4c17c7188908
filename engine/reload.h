/* reload.h — re-reading the policy while the engine serves: SIGHUP (from
 * the event loop) and the `codemode/reload` JSON-RPC method. */
#ifndef CM_POLICY_RELOAD_H
#define CM_POLICY_RELOAD_H

#include "engine.h"

/* SIGHUP: reload, log the outcome (a broken file is logged with
 * FILE:LINE:COL and the policy in force stays). */
void cm_policy_reload_logged(cm_engine *eng);
/* codemode/reload: result {reloaded: true, policy: FILE} or JSON-RPC error
 * -32002 with the reason (the policy in force stays). */
void cm_policy_handle_reload(cm_engine *eng, cm_conn *conn, const cJSON *id);

#endif
