/* manuals.c — registering a manual: validate the manual call template, run
 * discovery through its provider, and add the tools to the registry, all or
 * nothing.  Used at start-up (config) and by the register_manual tool. */
#include <string.h>

#include "engine.h"
#include "pctx.h"
#include "provider.h"

#define DISCOVERY_TIMEOUT_MS 60000

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

int cm_engine_register_manual(cm_engine *eng, const cJSON *call_template, cJSON **report,
                              cm_error *err)
{
    if (check_template(call_template, err) < 0)
        return -1;
    cm_autofree char *name = cm_manual_name_sanitize(cm_json_str(call_template, "name"));
    if (cm_registry_has(eng->registry, name))
        return cm_error_set(err, CM_ERR_CONFIG, "manual '%s' is already registered", name);
    cm_autojson cJSON *tmpl = cJSON_Duplicate(call_template, 1);
    cJSON_ReplaceItemInObjectCaseSensitive(tmpl, "name", cJSON_CreateString(name));
    cm_call_ctx ctx = {
        .vars = eng->vars,
        .manual_name = name,
        .base_dir = eng->cfg.base_dir,
        .deadline_ms = cm_now_ms() + DISCOVERY_TIMEOUT_MS,
        .max_output_bytes = 16u << 20,
        .providers = eng->providers,
    };
    cm_autojson cJSON *manual = NULL;
    if (cm_provider_discover(tmpl, &ctx, &manual, err) < 0) {
        cm_providers_release_manual(eng->providers, name);
        return cm_error_prefix(err, "manual '%s'", name);
    }
    if (cm_registry_add(eng->registry, tmpl, manual, report, err) < 0) {
        cm_providers_release_manual(eng->providers, name); /* nothing half-registers */
        return cm_error_prefix(err, "manual '%s'", name);
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
        if (cm_engine_register_manual(eng, t, &report, &err) < 0) {
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
