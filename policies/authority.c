/* authority.c — the control plane's trust boundary (issue 14): resolves a
 * non-chain request's caller to its profile (or, without a policy, to
 * "trusted" for root and the engine's own uid) and decides each action
 * against the profile's `grants` (grants.c).  Every decision is one audit
 * line {"event":"authority", uid, gid, profile, action, decision, rule,
 * reason}, so a refused registration is as visible as a refused tool call.
 * The engine's handlers ask here and nowhere else. */
#include "authority.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

int cm_caller_begin(cm_policy_store *s, const struct ucred *peer, cm_caller *c, cm_error *err)
{
    memset(c, 0, sizeof *c);
    c->store = s;
    c->uid = (long)peer->uid;
    c->gid = (long)peer->gid;
    if (!s) {
        c->trusted = peer->uid == 0 || peer->uid == geteuid();
        return 0;
    }
    return cm_policy_store_acquire(s, peer, &c->policy, &c->profile, err);
}

void cm_caller_end(cm_caller *c)
{
    cm_policy_unref(c->policy);
    c->policy = NULL;
    c->profile = NULL;
}

const char *cm_caller_owner(const cm_caller *c)
{
    return c->profile ? cm_profile_name(c->profile) : "";
}

bool cm_caller_sees_all(const cm_caller *c)
{
    return !c->profile || cm_profile_may(c->profile, CM_ACT_MANAGE_ALL);
}

static void audit_decision(const cm_caller *c, const char *action, bool allow, const char *rule,
                           const char *reason)
{
    int fd = cm_policy_store_audit_fd(c->store);
    if (fd < 0)
        return;
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "event", "authority");
    cJSON_AddNumberToObject(line, "uid", (double)c->uid);
    cJSON_AddNumberToObject(line, "gid", (double)c->gid);
    cJSON_AddStringToObject(line, "profile", cm_caller_owner(c));
    cJSON_AddStringToObject(line, "action", action);
    cJSON_AddStringToObject(line, "decision", allow ? "allow" : "deny");
    cJSON_AddStringToObject(line, "rule", rule);
    cJSON_AddStringToObject(line, "reason", reason);
    cm_audit_write(fd, line);
}

/* The grant key that allows an action (deregister also follows from
 * manage_all). */
static const char *grant_key(cm_action a)
{
    return a == CM_ACT_DEREGISTER ? "deregister" : cm_action_name(a);
}

int cm_caller_may(const cm_caller *c, cm_action a, cm_error *err)
{
    char rule[300];
    if (!c->policy) {
        /* single tenant: the read-only engine methods stay open to all */
        if (c->trusted || a == CM_ACT_HEALTH || a == CM_ACT_STATS || a == CM_ACT_METRICS)
            return 0;
        return cm_error_set(err, CM_ERR_POLICY_DENIED,
                            "policy denied %s by rule 'no policy: only root and the engine's uid "
                            "%ld': caller uid %ld (configure engine.policy with grants for other "
                            "callers)",
                            cm_action_name(a), (long)geteuid(), c->uid);
    }
    snprintf(rule, sizeof rule, "profiles.%.200s.grants.%s", cm_profile_name(c->profile),
             grant_key(a));
    bool allow = cm_profile_may(c->profile, a);
    audit_decision(c, cm_action_name(a), allow, rule,
                   allow ? "granted" : "not granted by the caller's profile");
    if (allow)
        return 0;
    return cm_error_set(err, CM_ERR_POLICY_DENIED,
                        "policy denied %s by rule '%s': profile '%s' is not granted %s",
                        cm_action_name(a), rule, cm_profile_name(c->profile), grant_key(a));
}

int cm_caller_check_template(const cm_caller *c, const cJSON *tmpl, cm_error *err)
{
    if (!c->policy)
        return c->trusted ? 0 : cm_caller_may(c, CM_ACT_REGISTER, err);
    if (cm_policy_check_template(c->profile, tmpl, err) == 0)
        return 0;
    audit_decision(c, "register", false, "grants", err->message);
    return -1;
}

int cm_caller_check_variables(const cm_caller *c, const char *manual, const cJSON *names,
                              cm_error *err)
{
    if (!c->policy)
        return 0;
    cm_decision d;
    cm_policy_check_variables(c->policy, manual, cm_caller_owner(c), names, &d);
    if (d.allow)
        return 0;
    audit_decision(c, "register", false, d.rule, d.reason);
    return cm_error_set(err, CM_ERR_POLICY_DENIED, "policy denied register by rule '%s': %s",
                        d.rule, d.reason);
}
