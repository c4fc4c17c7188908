/* agent.h — what an agent sees of the engine: the tools a chain may call
 * (one function, so the policy can filter it), their Python interfaces,
 * policy-aware search, and the agent prompt. */
#ifndef CM_AGENT_H
#define CM_AGENT_H

#include <cjson/cJSON.h>

#include "engine.h"

/* THE visibility decision: may a caller with this policy profile see this
 * tool?  prof NULL (no policy, or an engine-level request not tied to a
 * chain) → every tool; else the first rule matching the name must allow it
 * (policies/decide.c).  Everything below follows it. */
struct cm_policy_profile;
bool cm_agent_tool_visible(const struct cm_policy_profile *prof, const char *utcp_name);
/* The tools a caller with this profile may see, in registration order, as
 * cm_registry_chain_tools entries (a denied tool is not advertised).  Caller
 * frees. */
cJSON *cm_agent_visible_tools(cm_engine *eng, const struct cm_policy_profile *prof);
/* Every registered tool for a chain's run frame, each with "advertised":
 * false when the profile hides it (still callable: the call is then denied
 * by policy with the rule named).  Caller frees. */
cJSON *cm_agent_chain_tools(cm_engine *eng, const struct cm_policy_profile *prof);
/* Interface text for the visible tools (only: NULL = all, else one tool by
 * UTCP or access name; NULL returned when it is not visible).  Caller frees. */
char *cm_agent_interfaces(cm_engine *eng, const struct cm_policy_profile *prof, const char *only);
/* Which manuals a caller with this profile sees (ownership, issue 14): the
 * engine's and its own; every manual for manage_all or without a policy. */
cm_registry_view cm_agent_view(const struct cm_policy_profile *prof);
/* cm_registry_lookup through that view (a tool of another tenant's manual
 * is "not found", exactly like an unknown one). */
int cm_agent_lookup(cm_engine *eng, const struct cm_policy_profile *prof, const char *name,
                    cJSON **tool, char **manual_name, char **owner, cm_error *err);
/* The compact index of the visible tools (what `__interfaces` is in a
 * chain: a signature and a sentence per tool).  Caller frees. */
char *cm_agent_index(cm_engine *eng, const struct cm_policy_profile *prof);
/* search_tools restricted to the visible tools; full: the definitions'
 * shape, else {access_name, signature, summary} per tool. */
cJSON *cm_agent_search(cm_engine *eng, const struct cm_policy_profile *prof, const char *query,
                       int limit, bool full);

/* Index of an MCP level name (debug=0 ... emergency=7), -1 if unknown. */
int cm_agent_log_level(const char *name);
/* Streams one chain log line to the client while the chain runs: a
 * notifications/message (level info, logger "chain") when the client asked
 * for info or lower, and a notifications/progress when the request carried a
 * progress token.  count = lines so far. */
void cm_agent_stream_log(cm_conn *conn, const cJSON *progress_token, int count, const char *line);

/* The agent prompt template (`codemode prompt`, the `agent_prompt` tool). */
extern const char CM_AGENT_PROMPT[];

/* Engine tools (tools.c tool_defs). */
cJSON *cm_tool_get_interfaces(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params);
cJSON *cm_tool_get_tool_interface(cm_engine *eng, cm_conn *conn, const cJSON *id,
                                  const cJSON *params);
cJSON *cm_tool_agent_prompt(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params);

#endif
