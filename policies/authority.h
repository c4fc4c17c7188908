/* authority.h — who may do what on the control plane (issue 14; the model is
 * in policies/README.md "Authority").  A request that is not a chain —
 * register_manual, deregister_manual, codemode/reload, stats, health,
 * metrics — resolves its caller once, asks cm_caller_may() and gets either
 * permission or an error naming the rule, audited.  Without a policy the
 * engine is single-tenant: only root and the engine's own uid hold every
 * grant; any other peer gets chains and queries only. */
#ifndef CM_POLICY_AUTHORITY_H
#define CM_POLICY_AUTHORITY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "policy.h"
#include "session.h"

typedef struct cm_caller {
    cm_policy_store *store;
    cm_policy *policy;                /* referenced; NULL without a policy */
    const cm_policy_profile *profile; /* NULL without a policy */
    long uid, gid;
    bool trusted; /* no policy: root or the engine's uid */
} cm_caller;

/* Resolves the peer (profile, or trust without a policy).  -1 (kind
 * policy_denied) when the policy maps the peer to no profile. */
int cm_caller_begin(cm_policy_store *s, const struct ucred *peer, cm_caller *c, cm_error *err);
void cm_caller_end(cm_caller *c);
/* The owner manuals this caller registers get: its profile name, or "" for
 * any caller when there is no policy (single tenant). */
const char *cm_caller_owner(const cm_caller *c);
/* Sees, calls and deregisters every manual (manage_all, or no policy). */
bool cm_caller_sees_all(const cm_caller *c);
/* May the caller do `a`?  Audits the decision (authority line); denied: -1,
 * kind policy_denied "policy denied <action> by rule 'R': why". */
int cm_caller_may(const cm_caller *c, cm_action a, cm_error *err);
/* cm_policy_check_template for this caller (trusted/no-policy callers may
 * register anything); audits a denial. */
int cm_caller_check_template(const cm_caller *c, const cJSON *tmpl, cm_error *err);
/* cm_policy_check_variables for a manual this caller registers (owner:
 * cm_caller_owner); no policy → allowed. */
int cm_caller_check_variables(const cm_caller *c, const char *manual, const cJSON *names,
                              cm_error *err);

#endif
