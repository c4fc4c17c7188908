/* session.h — the policy as the engine uses it: the policy store (current
 * policy, caller → profile mapping, audit log, atomic reload) and the
 * per-chain session (resolved profile and limits, per-chain call counters,
 * denial count, audit lines).  Configured by the engine config's
 * `engine.policy` section; without it there is no store (NULL) and chains
 * run with the engine's limits and no tool restrictions, as before. */
#ifndef CM_POLICY_SESSION_H
#define CM_POLICY_SESSION_H

#include <cjson/cJSON.h>
#include <sys/socket.h>

#include "policy.h"

typedef struct cm_policy_store cm_policy_store;
typedef struct cm_policy_chain cm_policy_chain;

/* section: the engine config's `engine.policy` value (NULL → *out = NULL, no
 * policy).  Relative paths resolve against base_dir. */
int cm_policy_store_open(const cJSON *section, const char *base_dir, cm_policy_store **out,
                         cm_error *err);
void cm_policy_store_free(cm_policy_store *s);
/* Re-reads the policy file; on any error the policy in force stays and err
 * says FILE:LINE:COL.  Also checks every caller mapping names a profile. */
int cm_policy_store_reload(cm_policy_store *s, cm_error *err);
/* The profile serving this peer, or -1 (kind policy_denied) when no caller
 * mapping matches and there is no default profile.  s NULL → "" (no policy). */
int cm_policy_store_peer_profile(cm_policy_store *s, const struct ucred *peer, char *name,
                                 size_t size, cm_error *err);
/* The policy in force (referenced: cm_policy_unref it) and the peer's
 * profile in it; errors as cm_policy_store_peer_profile.  s must be set. */
int cm_policy_store_acquire(cm_policy_store *s, const struct ucred *peer, cm_policy **policy,
                            const cm_policy_profile **profile, cm_error *err);
/* The audit log's fd, -1 for none (s may be NULL). */
int cm_policy_store_audit_fd(const cm_policy_store *s);

/* Starts a chain's session: profile for the peer, effective limits (base:
 * the engine's limits; request: call_tool_chain's `limits` object plus its
 * `timeout` as timeout_s, either may be NULL).  Writes the chain_start audit
 * line.  s may be NULL. */
int cm_policy_chain_begin(cm_policy_store *s, const struct ucred *peer, const cm_limits *base,
                          const cJSON *request_limits, cm_policy_chain **out, cm_error *err);
/* The limits the chain must apply (core/cm_limits.h), adjustable by the
 * chain; 0 = no value on any side. */
cm_limits *cm_policy_chain_limits(cm_policy_chain *pc);
/* The chain's profile (NULL without a policy): its HTTP egress rules go to
 * the providers. */
const cm_policy_profile *cm_policy_chain_profile(const cm_policy_chain *pc);
/* Which load of the policy the chain runs under (0 at start-up, +1 per
 * reload): with the profile's name it identifies what the profile allows. */
unsigned long cm_policy_chain_serial(const cm_policy_chain *pc);
#define CM_POLICY_SERIAL_UNKNOWN (~0UL) /* reloaded while the chain began */
/* For the runner's `allowed_imports`: NULL (default list), "all" or array. */
const cJSON *cm_policy_chain_imports(const cm_policy_chain *pc);
/* Checks one tool call before its provider runs (thread-safe): the tool
 * rules, then the manual's variables (names used by the tool's template;
 * owner: who registered the manual, NULL for a config manual).
 * Denied: -1, err kind policy_denied "policy denied <tool> by rule 'R': why",
 * the denial counted and audited.  Allowed: 0; audit with ..._audit_call. */
int cm_policy_chain_authorize(cm_policy_chain *pc, const char *tool, const char *manual,
                              const char *owner, const cJSON *tmpl, const cJSON *args,
                              cm_decision *d, cm_error *err);
/* The audit line of an allowed call, written once the provider returned. */
void cm_policy_chain_audit_call(cm_policy_chain *pc, const char *tool, const cJSON *args,
                                const cm_decision *d, int64_t call_us, size_t bytes_in,
                                size_t bytes_out, const cm_error *call_err);
/* True when cm_policy_chain_audit_call writes anything (a policy with an
 * audit log): callers skip measuring arguments and results otherwise. */
bool cm_policy_chain_audits(const cm_policy_chain *pc);

/* Adds stats.policy_denials, stats.profile, stats.limits and stats.clamped
 * to the chain response, writes the chain_end audit line, frees pc. */
void cm_policy_chain_end(cm_policy_chain *pc, cJSON *response);

#endif
