/* grants.c — a profile's authority over the control plane (issue 14): what
 * its callers may do besides running chains and reading their own tools.
 * Loads the `grants` section and decides registrations: which call-template
 * types, which host commands (cli steps, MCP stdio servers) and which
 * environment variables a registered template may use.  The default is
 * nothing, so a profile that says nothing can never start a host process.
 * Pure functions of the loaded policy; the engine asks through session.h. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "load_int.h"
#include "policy_int.h"
#include "util.h"

static const char *const TYPES[] = {"cli", "file", "http", "mcp", "text"};
#define NTYPES (sizeof TYPES / sizeof *TYPES)
#define TYPE_BIT(i) (1u << (i))
#define ALL_TYPES (TYPE_BIT(NTYPES) - 1)

/* Characters that make a cli step more than "this command with these
 * words": a glob entry only matches a step free of them (exact entries
 * match anything, the admin wrote them out). */
static const char SHELL_META[] = ";&|`$<>(){}\n\r\\\"'*?[]!#~";

static int type_index(const char *t)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (!strcmp(TYPES[i], t))
            return (int)i;
    return -1;
}

/* ---- loading ------------------------------------------------------------- */

static bool is_all(const cJSON *j)
{
    return cJSON_IsString(j) && !strcmp(j->valuestring, "all");
}

static int load_types(vctx *v, const cJSON *j, profile_grants *g)
{
    if (is_all(j)) {
        g->register_types = ALL_TYPES;
        return 0;
    }
    if (pv_string_list(v, j, false, "call-template types (cli, file, http, mcp, openapi, text)") <
        0)
        return -1;
    int i = 0;
    for (const cJSON *t = j->child; t; t = t->next, i++) {
        int k = type_index(t->valuestring);
        if (k >= 0) {
            g->register_types |= TYPE_BIT(k);
            continue;
        }
        if (!strcmp(t->valuestring, "openapi")) {
            /* an OpenAPI description arrives through an http manual and its
             * operations are http tools: the grant is http's */
            g->register_types |= TYPE_BIT(type_index("http"));
            continue;
        }
        pv_push_idx(v, i);
        int rc = pv_err(v, "unknown call-template type '%s' (cli, file, http, mcp, openapi, text)",
                        t->valuestring);
        pv_pop(v);
        return rc;
    }
    return 0;
}

static int load_names(vctx *v, const cJSON *j, bool *all, char ***out, size_t *n)
{
    if (is_all(j)) {
        *all = true;
        return 0;
    }
    if (pv_string_list(v, j, false, "strings") < 0)
        return -1;
    *n = (size_t)cJSON_GetArraySize(j);
    *out = cm_xcalloc(*n ? *n : 1, sizeof **out);
    size_t i = 0;
    for (const cJSON *t = j->child; t; t = t->next)
        (*out)[i++] = cm_xstrdup(t->valuestring);
    return 0;
}

static int load_flag(vctx *v, const cJSON *it, profile_grants *g)
{
    static const struct {
        const char *key;
        size_t off;
    } flags[] = {
        {"deregister", offsetof(profile_grants, deregister)},
        {"manage_all", offsetof(profile_grants, manage_all)},
        {"reload", offsetof(profile_grants, reload)},
        {"stats", offsetof(profile_grants, stats)},
        {"health", offsetof(profile_grants, health)},
        {"metrics", offsetof(profile_grants, metrics)},
    };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (!strcmp(it->string, flags[i].key))
            return pv_bool(v, it, (bool *)((char *)g + flags[i].off));
    return pv_err(v, "unknown key (register, commands, env, deregister, manage_all, reload, "
                     "stats, health, metrics)");
}

static int load_key(vctx *v, const cJSON *it, profile_grants *g)
{
    if (!strcmp(it->string, "register"))
        return load_types(v, it, g);
    if (!strcmp(it->string, "commands"))
        return load_names(v, it, &g->all_commands, &g->commands, &g->ncommands);
    if (!strcmp(it->string, "env"))
        return load_names(v, it, &g->all_env, &g->env, &g->nenv);
    return load_flag(v, it, g);
}

int cm_grants_load(vctx *v, const cJSON *j, profile_grants *g)
{
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping (register, commands, env, deregister, manage_all, "
                         "reload, stats, health, metrics)");
    for (const cJSON *it = j->child; it; it = it->next) {
        pv_push_key(v, it->string);
        int rc = load_key(v, it, g);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    bool cli = g->register_types & TYPE_BIT(type_index("cli"));
    if (cli && !g->all_commands && g->ncommands == 0)
        return pv_err(v, "register lists cli: commands must list the allowed commands (or `all`)");
    return 0;
}

void cm_grants_free(profile_grants *g)
{
    for (size_t i = 0; i < g->ncommands; i++)
        free(g->commands[i]);
    free(g->commands);
    for (size_t i = 0; i < g->nenv; i++)
        free(g->env[i]);
    free(g->env);
}

/* ---- decisions ------------------------------------------------------------ */

bool cm_profile_may(const cm_policy_profile *prof, cm_action a)
{
    const profile_grants *g = &prof->grants;
    switch (a) {
    case CM_ACT_REGISTER:
        return g->register_types != 0;
    case CM_ACT_DEREGISTER:
        return g->deregister || g->manage_all;
    case CM_ACT_MANAGE_ALL:
        return g->manage_all;
    case CM_ACT_RELOAD:
        return g->reload;
    case CM_ACT_STATS:
        return g->stats;
    case CM_ACT_HEALTH:
        return g->health;
    case CM_ACT_METRICS:
        return g->metrics;
    }
    return false;
}

const char *cm_action_name(cm_action a)
{
    static const char *const names[] = {"register", "deregister", "manage_all", "reload",
                                        "stats",    "health",     "metrics"};
    return (unsigned)a < sizeof names / sizeof *names ? names[a] : "?";
}

int cm_action_from_name(const char *name)
{
    for (int a = CM_ACT_REGISTER; name && a <= CM_ACT_METRICS; a++)
        if (!strcmp(cm_action_name((cm_action)a), name))
            return a;
    return -1;
}

static int deny(const cm_policy_profile *prof, const char *key, cm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int deny(const cm_policy_profile *prof, const char *key, cm_error *err, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cm_error_set(err, CM_ERR_POLICY_DENIED,
                        "policy denied by rule 'profiles.%s.grants.%s': %s", prof->name, key, why);
}

static bool command_listed(const profile_grants *g, const char *line, bool shell)
{
    if (g->all_commands)
        return true;
    for (size_t i = 0; i < g->ncommands; i++) {
        if (!strcmp(g->commands[i], line))
            return true;
        if (shell && strpbrk(line, SHELL_META))
            continue;
        if (fnmatch(g->commands[i], line, 0) == 0)
            return true;
    }
    return false;
}

static bool env_listed(const profile_grants *g, const char *name)
{
    if (g->all_env)
        return true;
    for (size_t i = 0; i < g->nenv; i++)
        if (!strcmp(g->env[i], name))
            return true;
    return false;
}

static int check_env(const cm_policy_profile *prof, const cJSON *env, const char *where,
                     cm_error *err)
{
    if (env && !cJSON_IsObject(env))
        return deny(prof, "env", err, "%s: must be a mapping of variable names", where);
    for (const cJSON *e = env ? env->child : NULL; e; e = e->next)
        if (!env_listed(&prof->grants, e->string))
            return deny(prof, "env", err, "%s sets environment variable '%.100s', not listed",
                        where, e->string);
    return 0;
}

static int check_cli(const cm_policy_profile *prof, const cJSON *tmpl, cm_error *err)
{
    const cJSON *inherit = cJSON_GetObjectItemCaseSensitive(tmpl, "inherit_env_vars");
    if (inherit && !cJSON_IsFalse(inherit) && !prof->grants.all_env)
        return deny(prof, "env", err,
                    "cli template sets inherit_env_vars (the engine's environment); only a "
                    "profile with env: all may");
    if (check_env(prof, cJSON_GetObjectItemCaseSensitive(tmpl, "env_vars"), "cli template", err) <
        0)
        return -1;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(tmpl, "commands");
    const cJSON *s;
    cJSON_ArrayForEach(s, steps)
    {
        const char *cmd = cm_json_str(s, "command");
        if (cmd && !command_listed(&prof->grants, cmd, true))
            return deny(prof, "commands", err, "cli command '%.200s' is not an allowed command",
                        cmd);
    }
    return 0;
}

/* "command arg1 arg2 ..." of one MCP stdio server entry. */
static char *server_line(const cJSON *srv)
{
    const char *cmd = cm_json_str(srv, "command");
    size_t n = strlen(cmd) + 1;
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(srv, "args")) n +=
        1 + (cJSON_IsString(a) ? strlen(a->valuestring) : 1);
    char *line = cm_xmalloc(n), *p = line;
    p += sprintf(p, "%s", cmd);
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(srv, "args")) p +=
        sprintf(p, " %s", cJSON_IsString(a) ? a->valuestring : "?");
    return line;
}

static int check_mcp_server(const cm_policy_profile *prof, const char *name, const cJSON *srv,
                            cm_error *err)
{
    if (!cJSON_IsObject(srv) || !cm_json_str(srv, "command"))
        return 0; /* streamable HTTP: egress rules apply when the engine connects */
    cm_autofree char *line = server_line(srv);
    if (!command_listed(&prof->grants, line, false))
        return deny(prof, "commands", err,
                    "MCP stdio server '%.100s' command '%.200s' is not an "
                    "allowed command",
                    name, line);
    char where[160];
    snprintf(where, sizeof where, "MCP server '%.100s'", name);
    return check_env(prof, cJSON_GetObjectItemCaseSensitive(srv, "env"), where, err);
}

static int check_mcp(const cm_policy_profile *prof, const cJSON *tmpl, cm_error *err)
{
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(tmpl, "config"), "mcpServers");
    /* a manual template lists its servers; a discovered tool's template
     * carries its own server's entry the same way */
    const cJSON *srv;
    cJSON_ArrayForEach(srv, servers)
    {
        if (check_mcp_server(prof, srv->string, srv, err) < 0)
            return -1;
    }
    return 0;
}

int cm_policy_check_template(const cm_policy_profile *prof, const cJSON *tmpl, cm_error *err)
{
    const char *type = cJSON_IsObject(tmpl) ? cm_json_str(tmpl, "call_template_type") : NULL;
    int k = type ? type_index(type) : -1;
    if (k < 0 || !(prof->grants.register_types & TYPE_BIT(k)))
        return deny(prof, "register", err,
                    "call_template_type '%.40s' may not be registered by "
                    "this profile",
                    type ? type : "(missing)");
    if (!strcmp(type, "cli"))
        return check_cli(prof, tmpl, err);
    if (!strcmp(type, "mcp"))
        return check_mcp(prof, tmpl, err);
    return 0;
}
