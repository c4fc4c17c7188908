/* manuals.c — registering a manual: validate the manual call template, run
 * discovery through its provider, and add the tools to the registry, all or
 * nothing.  Used at start-up (config) and by the register_manual tool, where
 * the caller's authority (policies/authority.h) is checked at each step:
 * the template before anything runs, the name, the variables, discovery
 * under the caller's egress rules, then every discovered tool's template. */
#include <string.h>

#include "authority.h"
#include "engine.h"
#include "pctx.h"
#include "provider.h"
#include "redact.h"
#include "vars.h"

static int check_template(const cJSON *tmpl, cm_error *err)
{
    const char *name = cm_json_str(tmpl, "name");
    const char *type = cm_json_str(tmpl, "call_template_type");
    if (!name || !*name)
        return cm_error_set(err, CM_ERR_CONFIG, "manual call template: name: missing or empty");
    if (!type)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "manual call template '%s': call_template_type: missing", name);
    if (!cm_provider_supported(type))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "manual call template '%s': call_template_type '%s' is not supported "
                            "by this engine",
                            name, type);
    return 0;
}

int cm_engine_config_manual(const cm_engine *eng, const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, eng->cfg.manual_call_templates)
    {
        const char *n = cm_json_str(t, "name");
        cm_autofree char *clean = n ? cm_manual_name_sanitize(n) : NULL;
        if (clean && !strcmp(clean, name))
            return 1;
    }
    return 0;
}

/* A socket caller may take a name nobody uses and the config does not
 * reserve (no deregister-then-register takeover of a trusted name). */
static int check_name(cm_engine *eng, const cm_caller *caller, const char *name, cm_error *err)
{
    cm_autofree char *owner = NULL;
    if (cm_registry_owner(eng->registry, name, &owner))
        return cm_error_set(err, CM_ERR_CONFIG, "manual '%s' is already registered%s", name,
                            caller && !owner ? " (by the engine config)" : "");
    if (caller && cm_engine_config_manual(eng, name) && !cm_caller_sees_all(caller))
        return cm_error_set(err, CM_ERR_POLICY_DENIED,
                            "policy denied register by rule 'manuals: config names are the "
                            "engine's': '%s' is a manual of the engine config; only a profile "
                            "granted manage_all may register it",
                            name);
    return 0;
}

/* The template and the variables it uses, as this caller may register them. */
static int check_caller_template(const cm_caller *caller, const char *manual, const cJSON *tmpl,
                                 cm_error *err)
{
    if (cm_caller_check_template(caller, tmpl, err) < 0)
        return -1;
    cm_autojson cJSON *names = cJSON_CreateArray();
    cm_vars_required(tmpl, names);
    return cm_caller_check_variables(caller, manual, names, err);
}

/* Every tool discovery produced must be one the caller could have
 * registered by hand (an MCP server or OpenAPI document cannot smuggle in
 * a cli tool or a variable). */
static int check_discovered(const cm_caller *caller, const char *manual, const cJSON *disc,
                            cm_error *err)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(disc, "tools"))
    {
        const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(t, "tool_call_template");
        if (tmpl && check_caller_template(caller, manual, tmpl, err) < 0)
            return cm_error_prefix(err, "discovered tool '%.100s'", cm_json_str(t, "name"));
    }
    return 0;
}

static int discover(cm_engine *eng, const cJSON *tmpl, const char *name, const cm_caller *caller,
                    cJSON **manual, cm_error *err)
{
    cm_egress egress =
        caller && caller->profile ? cm_policy_egress(caller->profile) : (cm_egress){0};
    cm_call_ctx ctx = {
        .vars = eng->vars,
        .manual_name = name,
        .base_dir = eng->cfg.base_dir,
        .deadline_ms = cm_now_ms() + (int64_t)eng->cfg.registration.timeout_s * 1000,
        .max_output_bytes = eng->cfg.registration.max_bytes,
        .providers = eng->providers,
        .egress = egress.rules ? &egress : NULL,
        .reg = &eng->cfg.registration,
    };
    if (cm_provider_discover(tmpl, &ctx, manual, err) < 0)
        return -1;
    return caller ? check_discovered(caller, name, *manual, err) : 0;
}

/* A failed discovery's message (a curl error quoting the URL, a server's
 * answer) goes to the caller and the log: without the values substituted
 * into the manual template. */
static void redact_error(cm_engine *eng, const char *name, const cJSON *tmpl, cm_error *err)
{
    cm_redactor *r = cm_redactor_for_call(eng->vars, name, tmpl, eng->cfg.public_variables);
    cm_redact_message(r, err->message, sizeof err->message);
    cm_redactor_free(r);
}

int cm_engine_register_manual(cm_engine *eng, const cJSON *call_template, const cm_caller *caller,
                              cJSON **report, cm_error *err)
{
    if (check_template(call_template, err) < 0)
        return -1;
    cm_autofree char *name = cm_manual_name_sanitize(cm_json_str(call_template, "name"));
    if (caller && (cm_caller_may(caller, CM_ACT_REGISTER, err) < 0 ||
                   check_caller_template(caller, name, call_template, err) < 0))
        return cm_error_prefix(err, "manual '%s'", name);
    if (check_name(eng, caller, name, err) < 0)
        return -1;
    cm_autojson cJSON *tmpl = cJSON_Duplicate(call_template, 1);
    cJSON_ReplaceItemInObjectCaseSensitive(tmpl, "name", cJSON_CreateString(name));
    cm_autojson cJSON *manual = NULL;
    if (discover(eng, tmpl, name, caller, &manual, err) < 0) {
        cm_providers_release_manual(eng->providers, name);
        redact_error(eng, name, tmpl, err);
        return cm_error_prefix(err, "manual '%s'", name);
    }
    int ntools = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(manual, "tools"));
    if (ntools > eng->cfg.registration.max_tools) { /* any provider: UTCP, MCP, cli */
        cm_providers_release_manual(eng->providers, name);
        return cm_error_set(err, CM_ERR_CONFIG,
                            "manual '%s': discovery found %d tools, over "
                            "engine.registration.max_tools (%d); raise it or register a "
                            "smaller manual",
                            name, ntools, eng->cfg.registration.max_tools);
    }
    const char *owner = caller ? cm_caller_owner(caller) : NULL;
    if (cm_registry_add(eng->registry, tmpl, manual, owner, report, err) < 0) {
        cm_providers_release_manual(eng->providers, name); /* nothing half-registers */
        return -1; /* the registry's message names the manual */
    }
    return 0;
}

void cm_engine_load_manuals(cm_engine *eng)
{
    const cJSON *t;
    int ok = 0, failed = 0;
    cJSON_ArrayForEach(t, eng->cfg.manual_call_templates)
    {
        cm_error err;
        cJSON *report = NULL;
        if (cm_engine_register_manual(eng, t, NULL, &report, &err) < 0) {
            cm_log("error", "config: %s", err.message);
            failed++;
            continue;
        }
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(report, "tools");
        cm_log("info", "registered manual '%s' with %d tools", cm_json_str(report, "manual_name"),
               cJSON_GetArraySize(tools));
        cJSON_Delete(report);
        ok++;
    }
    if (ok + failed)
        cm_log("info", "manuals: %d registered, %d failed", ok, failed);
    eng->manuals_loaded = ok;
    eng->manuals_failed = failed;
}
