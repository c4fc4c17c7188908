/* policy.h — the policy engine's core: a policy file (YAML, see
 * policies/README.md) loaded into an immutable cm_policy, and the pure
 * decisions made against it — may this profile call this tool with these
 * arguments, may it reach this URL.  Engine wiring (caller → profile, per-chain
 * state, audit log, reload) is in session.h; the CLI in policy_cli.c. */
#ifndef CM_POLICY_H
#define CM_POLICY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cm_limits.h"
#include "egress.h"
#include "error.h"

typedef struct cm_policy cm_policy;
typedef struct cm_policy_profile cm_policy_profile;

/* Per-chain counters a decision reads and updates (max_calls per rule). */
typedef struct cm_policy_calls {
    int *per_rule; /* one counter per rule of the profile */
    size_t nrules;
} cm_policy_calls;

typedef struct cm_decision {
    bool allow;
    bool audit_args; /* the deciding rule asks for argument values in the audit log */
    char rule[128];  /* deciding rule's name; "default" when no rule matched */
    char reason[512];
    long decision_ns; /* time the decision took (set by the session) */
} cm_decision;

/* Loads and validates a policy file.  Errors (kind config) read
 * "FILE:LINE:COL: message" for syntax and schema errors alike. */
int cm_policy_load(const char *path, cm_policy **out, cm_error *err);
/* Same from text; `name` is used in messages. */
int cm_policy_parse(const char *text, size_t len, const char *name, cm_policy **out, cm_error *err);
void cm_policy_ref(cm_policy *p);
void cm_policy_unref(cm_policy *p);
const char *cm_policy_path(const cm_policy *p);

/* NULL when no profile has that name. */
const cm_policy_profile *cm_policy_find_profile(const cm_policy *p, const char *name);
const char *cm_profile_name(const cm_policy_profile *prof);
size_t cm_profile_rule_count(const cm_policy_profile *prof);
/* The profile's limits as set in the file; unset fields are 0 (timeout_s < 0:
 * unset).  Applied by cm_policy_resolve_limits. */
const cm_limits *cm_profile_limits(const cm_policy_profile *prof);
/* NULL (runner default), the string "all", or an array of module names. */
const cJSON *cm_profile_imports(const cm_policy_profile *prof);

/* Effective limits: each limit is the smallest of the engine maximum (*base),
 * the profile's value and the request's value (request: object of limit
 * names → numbers, may be NULL).  Every request value above what applies is
 * reported in `clamped` (array of {limit, requested, applied}).  Returns -1
 * for malformed request values (kind invalid_request). */
int cm_policy_resolve_limits(const cm_policy_profile *prof, const cm_limits *base,
                             const cJSON *request, cm_limits *out, cJSON *clamped, cm_error *err);

/* Decides one tool call (qualified name `manual.tool`).  First matching rule
 * decides; no match → deny by "default".  Updates `calls` (may be NULL) and
 * the profile's rate buckets when the call is allowed.  `trace` (may be NULL)
 * receives one string per rule considered, for `policy explain`. */
void cm_policy_decide(const cm_policy *p, const cm_policy_profile *prof, cm_policy_calls *calls,
                      const char *tool, const cJSON *args, cm_decision *d, cJSON *trace);

/* Whether a chain of this profile is shown the tool at all (interfaces,
 * in-chain search): the first rule matching the name allows it.  Argument
 * constraints, budgets and rates still apply per call.  prof NULL (no
 * policy) → true. */
bool cm_policy_tool_advertised(const cm_policy_profile *prof, const char *tool);

/* Per-manual variables: may tool template variables `names` (array of strings)
 * be used by `manual`?  `owner` is the profile that registered the manual
 * over the socket, NULL for a config manual: a registered manual gets only
 * what an entry with `owner: <that profile>` grants (never a config
 * manual's grant, nor unrestricted variables).  Fills d (rule
 * "manuals.<manual>.variables"). */
void cm_policy_check_variables(const cm_policy *p, const char *manual, const char *owner,
                               const cJSON *names, cm_decision *d);

/* Control-plane authority (grants.c, policies/README.md "grants"). */
typedef enum cm_action {
    CM_ACT_REGISTER,
    CM_ACT_DEREGISTER, /* own manuals; manage_all: every manual */
    CM_ACT_MANAGE_ALL, /* see, call and deregister every manual, config ones too */
    CM_ACT_RELOAD,
    CM_ACT_STATS, /* codemode/stats */
    CM_ACT_HEALTH,
    CM_ACT_METRICS,
} cm_action;
bool cm_profile_may(const cm_policy_profile *prof, cm_action a);
const char *cm_action_name(cm_action a);
/* The action of that name, -1 if none (`codemode policy test` cases). */
int cm_action_from_name(const char *name);
/* May this profile register this call template (a manual's, or one of its
 * discovered tools')?  Type in grants.register; cli steps and MCP stdio
 * command lines in grants.commands; env names in grants.env.  -1 with kind
 * policy_denied "policy denied by rule 'profiles.P.grants.K': why". */
int cm_policy_check_template(const cm_policy_profile *prof, const cJSON *tmpl, cm_error *err);

/* HTTP egress (for the http provider).  cm_policy_check_egress: may the
 * profile fetch `url` (scheme, host, port against its `http:` rules; IP
 * literals in private/link-local ranges only when a rule lists them)?
 * cm_policy_check_egress_addr: may it connect to this resolved address
 * (call it from CURLOPT_OPENSOCKETFUNCTION so DNS cannot smuggle a private
 * address)?  Both return 0 or -1 with kind policy_denied naming the reason. */
int cm_policy_check_egress(const cm_policy_profile *prof, const char *url, cm_error *err);
/* The profile's rules as the providers' egress contract (core/egress.h):
 * rules = prof, the checks above.  prof must outlive every use. */
cm_egress cm_policy_egress(const cm_policy_profile *prof);
int cm_policy_check_egress_addr(const cm_policy_profile *prof, const struct sockaddr *addr,
                                cm_error *err);

#endif
