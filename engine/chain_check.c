/* chain_check.c — the engine's checks of what a chain sends on its control
 * socket, beyond the framing (frame.c) and the per-frame fields (chain.c,
 * chain_calls.c): the id sequence of calls, searches and interface requests,
 * the tools a call may name, and the error kinds a `done` may claim.
 *
 * Why its own file: the sandbox runs one process, the chain itself, which
 * holds the engine's socket (rootfs/README.md "One process"); there is no
 * in-sandbox bridge any more that checks and re-encodes the chain's frames,
 * so every rule it enforced is enforced here, once, by the party that has
 * to distrust every frame anyway.  A chain that breaks one ends with kind
 * `exception`, "the chain broke the runner protocol: ...", never the engine. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "chain_int.h"
#include "registry.h"

/* Kinds the runner itself produces in `done` (runner_chain.py); any other
 * kind a chain may end with only after the engine returned it to one of
 * this chain's calls (cm_chain_returned). */
static const char *const runner_kinds[] = {"syntax", "exception", "tool_error",
                                           "result_not_serializable", "output_limit"};

void cm_chain_broke(chain *ch, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    cm_chain_errorf(ch, CM_ERR_EXCEPTION, "the chain broke the runner protocol: %s", why);
}

bool cm_chain_take_id(chain *ch, const cJSON *id, const char *what)
{
    double v = cJSON_IsNumber(id) ? id->valuedouble : NAN;
    if (!(v == (double)ch->next_id) || floor(v) != v) {
        cm_autofree char *shown = id ? cm_json_print(id) : NULL;
        cm_chain_broke(ch, "%s id %.40s out of sequence (expected %lld)", what,
                       shown ? shown : "(none)", ch->next_id);
        return false;
    }
    ch->next_id++;
    return true;
}

bool cm_chain_tool_known(chain *ch, const char *tool)
{
    cm_error err;
    if (cm_agent_lookup(ch->eng, cm_policy_chain_profile(ch->pc), tool, NULL, NULL, NULL, &err) ==
        0)
        return true;
    /* a registry change since the run began may have removed it: then it
     * is the call's failure (answered as such), not the chain's */
    if (cm_registry_generation(ch->eng->registry) != ch->registry_gen)
        return true;
    cm_chain_broke(ch, "call to '%.120s', which is not a tool of this run", tool);
    return false;
}

void cm_chain_returned(chain *ch, cm_errkind kind)
{
    if ((int)kind > 0 && kind < CM_ERR__COUNT)
        atomic_fetch_or(&ch->returned_kinds, 1UL << kind);
}

bool cm_chain_may_claim(chain *ch, const char *kind)
{
    for (size_t i = 0; i < sizeof runner_kinds / sizeof *runner_kinds; i++)
        if (!strcmp(kind, runner_kinds[i]))
            return true;
    cm_errkind k = cm_errkind_from_name(kind);
    if (strcmp(cm_errkind_name(k), kind) != 0) /* not a kind at all */
        return false;
    return (atomic_load(&ch->returned_kinds) >> k) & 1UL;
}
