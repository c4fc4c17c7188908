/* reload.h — re-reading the policy while the engine serves: SIGHUP (from
 * the event loop) and the `codemode/reload` JSON-RPC method. */
#ifndef CM_POLICY_RELOAD_H
#define CM_POLICY_RELOAD_H

#include "engine.h"

/* SIGHUP: reload, log the outcome (a broken file is logged with
 * FILE:LINE:COL and the policy in force stays). */
void cm_policy_reload_logged(cm_engine *eng);
/* codemode/reload: the result {reloaded: true}, or NULL with err set (the
 * policy in force stays; the RPC layer answers JSON-RPC error -32002). */
cJSON *cm_policy_reload_result(cm_engine *eng, cm_error *err);

#endif
