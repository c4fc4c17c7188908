/* config.c — loads and validates the engine configuration (see config.h).
 * The file is the `.utcp_config.json` format plus an `engine:` section, so
 * one file serves both the UTCP libraries and this engine.  Everything is
 * checked up front, with errors naming the offending key, so a typo fails at
 * start-up instead of silently falling back to a default. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "isolation.h"
#include "jsonschema.h"
#include "util.h"

#define CONFIG_MAX_BYTES (16u << 20)

/* "<where>: unknown key 'worker' (did you mean 'workers'?)": a typo names
 * the key that was meant. */
static int unknown_key(cm_error *err, const char *where, const char *key, const char *const *known)
{
    const char *near = cm_nearest_name(key, known);
    if (near)
        return cm_error_set(err, CM_ERR_CONFIG, "%s: unknown key '%s' (did you mean '%s'?)", where,
                            key, near);
    return cm_error_set(err, CM_ERR_CONFIG, "%s: unknown key '%s'", where, key);
}

/* ---- engine: section ------------------------------------------------- */

typedef enum { EK_INT, EK_SIZE, EK_SIZE_MB, EK_UID, EK_GID } engine_kind;

typedef struct engine_key {
    const char *key;
    engine_kind kind;
    size_t offset;
    double min, max;
} engine_key;

static const engine_key ENGINE_KEYS[] = {
    {"workers", EK_INT, offsetof(cm_config, workers), 1, 256},
    {"queue_max", EK_INT, offsetof(cm_config, queue_max), 1, 1000000},
    {"default_timeout_s", EK_INT, offsetof(cm_config, default_timeout_s), 1, 3600},
    {"max_timeout_s", EK_INT, offsetof(cm_config, max_timeout_s), 1, 3600},
    {"drain_timeout_s", EK_INT, offsetof(cm_config, drain_timeout_s), 1, 3600},
    {"max_request_bytes", EK_SIZE, offsetof(cm_config, max_request_bytes), 1024, 1 << 30},
    {"max_output_bytes", EK_SIZE, offsetof(cm_config, max_output_bytes), 1024, 1 << 30},
    {"max_result_bytes", EK_SIZE, offsetof(cm_config, max_result_bytes), 1024, 1 << 30},
    {"tmp_size_mb", EK_SIZE_MB, offsetof(cm_config, tmp_size_bytes), 1, 65536},
    {"sandbox_uid", EK_UID, offsetof(cm_config, sandbox_uid), 1, 4294967294.0},
    {"sandbox_gid", EK_GID, offsetof(cm_config, sandbox_gid), 1, 4294967294.0},
    {"max_tool_calls", EK_INT, offsetof(cm_config, max_tool_calls), 1, 1000000},
    {"max_inflight_calls", EK_INT, offsetof(cm_config, max_inflight_calls), 1, 1024},
    {"max_tool_output_bytes", EK_SIZE, offsetof(cm_config, max_tool_output_bytes), 1024, 1 << 30},
    {"chain_inflight_mb", EK_SIZE_MB, offsetof(cm_config, chain_inflight_bytes), 1, 65536},
    {"inflight_mb", EK_SIZE_MB, offsetof(cm_config, inflight_bytes), 1, 1 << 20},
    {"max_call_mb", EK_SIZE_MB, offsetof(cm_config, max_call_bytes), 1, 4096},
    {"max_call_result_mb", EK_SIZE_MB, offsetof(cm_config, max_call_result_bytes), 1, 4096},
    {"metrics_port", EK_INT, offsetof(cm_config, metrics_port), 0, 65535},
    {"memory_mb", EK_SIZE_MB, offsetof(cm_config, memory_bytes), 16, 1 << 20},
    {"cpu_quota_pct", EK_INT, offsetof(cm_config, cpu_quota_pct), 1, 100000},
    {"pids_max", EK_INT, offsetof(cm_config, pids_max), 8, 1000000},
    {"sandbox_uid_range", EK_INT, offsetof(cm_config, sandbox_uid_range), 1, 65536},
    {"pool_size", EK_INT, offsetof(cm_config, pool_size), 0, 1024},
    {"pool_full_size", EK_INT, offsetof(cm_config, pool_full_size), 0, 1024},
    {"pool_refill_concurrency", EK_INT, offsetof(cm_config, pool_refill_concurrency), 1, 64},
    {"client_queue_max", EK_INT, offsetof(cm_config, client_queue_max), 1, 1000000},
};

/* /run/codemode for root; an ordinary user's own $XDG_RUNTIME_DIR/codemode
 * (or /tmp/codemode-<uid>), where it can create its locks. */
static char *default_runtime_dir(void)
{
    if (geteuid() == 0)
        return cm_xstrdup("/run/codemode");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    char buf[512];
    if (xdg && xdg[0] == '/' && strlen(xdg) < 400)
        snprintf(buf, sizeof buf, "%s/codemode", xdg);
    else
        snprintf(buf, sizeof buf, "/tmp/codemode-%u", (unsigned)geteuid());
    return cm_xstrdup(buf);
}

static void set_engine_defaults(cm_config *cfg)
{
    cfg->workers = 8;
    cfg->queue_max = 256;
    cfg->drain_timeout_s = 30;
    cfg->runtime_dir = default_runtime_dir();
    cfg->default_timeout_s = 30;
    cfg->max_timeout_s = 300;
    cfg->max_request_bytes = 4u << 20;
    cfg->max_output_bytes = 1u << 20;
    cfg->max_result_bytes = 4u << 20;
    cfg->tmp_size_bytes = 16u << 20;
    cfg->sandbox_uid = 100000;
    cfg->sandbox_gid = 100000;
    cfg->max_tool_calls = 1000;
    cfg->max_inflight_calls = 16;
    cfg->max_tool_output_bytes = 1u << 20;
    cfg->chain_inflight_bytes = 32u << 20;
    cfg->inflight_bytes = 96u << 20;
    cfg->max_call_bytes = 8u << 20;
    cfg->max_call_result_bytes = 4u << 20;
    cfg->memory_bytes = 256u << 20;
    cfg->cpu_quota_pct = 100;
    cfg->pids_max = 64;
    cfg->sandbox_uid_range = 1000;
    cfg->pool_size = 2;
    cfg->pool_full_size = 0;
    cfg->zygote = true;
    cfg->provider_jail = true;
    cfg->pool_refill_concurrency = 1;
    cfg->client_queue_max = 32;
    cfg->registration = cm_reg_limits_or_default(NULL);
}

static bool is_integral(const cJSON *v);

/* engine.registration: {timeout_s, max_bytes, max_tools, max_schema_bytes}. */
static int apply_registration(cm_config *cfg, const cJSON *v, cm_error *err)
{
    static const struct {
        const char *key;
        double min, max;
    } keys[] = {{"timeout_s", 1, 3600},
                {"max_bytes", 1024, 4294967296.0},
                {"max_tools", 1, 1000000},
                {"max_schema_bytes", 1024, 17179869184.0}};
    if (!cJSON_IsObject(v))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.registration: must be an object");
    const cJSON *item;
    cJSON_ArrayForEach(item, v)
    {
        size_t i = 0;
        while (i < sizeof keys / sizeof *keys && strcmp(keys[i].key, item->string))
            i++;
        if (i == sizeof keys / sizeof *keys) {
            static const char *const names[] = {"timeout_s", "max_bytes", "max_tools",
                                                "max_schema_bytes", NULL};
            unknown_key(err, "engine.registration", item->string, names);
            size_t n = strlen(err->message);
            snprintf(err->message + n, sizeof err->message - n,
                     "; keys: timeout_s, max_bytes, max_tools, max_schema_bytes");
            return -1;
        }
        if (!is_integral(item))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.registration.%s: must be an integer",
                                item->string);
        if (item->valuedouble < keys[i].min || item->valuedouble > keys[i].max)
            return cm_error_set(err, CM_ERR_CONFIG,
                                "engine.registration.%s: %.0f out of range %.0f..%.0f",
                                item->string, item->valuedouble, keys[i].min, keys[i].max);
        double d = item->valuedouble;
        if (i == 0)
            cfg->registration.timeout_s = (int)d;
        else if (i == 1)
            cfg->registration.max_bytes = (size_t)d;
        else if (i == 2)
            cfg->registration.max_tools = (int)d;
        else
            cfg->registration.max_schema_bytes = (size_t)d;
    }
    return 0;
}

/* Non-numeric isolation keys: imports, test_mode, require_layers.  Sets
 * *done when the key was one of them. */
static int apply_isolation_key(cm_config *cfg, const cJSON *item, bool *done, cm_error *err)
{
    *done = true;
    if (!strcmp(item->string, "imports")) {
        const char *v = cJSON_IsString(item) ? item->valuestring : "";
        if (strcmp(v, "all") != 0 && strcmp(v, "default") != 0)
            return cm_error_set(err, CM_ERR_CONFIG,
                                "engine.imports: must be \"default\" or \"all\"");
        cfg->imports_all = !strcmp(v, "all");
    } else if (!strcmp(item->string, "test_mode")) {
        if (!cJSON_IsBool(item))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.test_mode: must be true or false");
        cfg->test_mode = cJSON_IsTrue(item);
    } else if (!strcmp(item->string, "zygote")) {
        if (!cJSON_IsBool(item))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.zygote: must be true or false");
        cfg->zygote = cJSON_IsTrue(item);
    } else if (!strcmp(item->string, "provider_jail")) {
        if (!cJSON_IsBool(item))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.provider_jail: must be true or false");
        cfg->provider_jail = cJSON_IsTrue(item);
    } else if (!strcmp(item->string, "require_layers")) {
        const cJSON *l;
        if (!cJSON_IsArray(item))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.require_layers: must be an array");
        cJSON_ArrayForEach(l, item)
        {
            if (!cJSON_IsString(l))
                return cm_error_set(err, CM_ERR_CONFIG,
                                    "engine.require_layers: entries must be layer names");
        }
        cfg->require_layers = item;
    } else {
        *done = false;
    }
    return 0;
}

static void store_engine_value(cm_config *cfg, const engine_key *k, double v)
{
    char *field = (char *)cfg + k->offset;
    switch (k->kind) {
    case EK_INT:
        *(int *)field = (int)v;
        break;
    case EK_SIZE:
        *(size_t *)field = (size_t)v;
        break;
    case EK_SIZE_MB:
        *(size_t *)field = (size_t)v << 20;
        break;
    case EK_UID:
        *(uid_t *)field = (uid_t)v;
        break;
    case EK_GID:
        *(gid_t *)field = (gid_t)v;
        break;
    }
}

/* Integral and small enough to convert exactly (no libm: floor needs -lm). */
static bool is_integral(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || v->valuedouble > 9e15 || v->valuedouble < -9e15)
        return false;
    return v->valuedouble == (double)(long long)v->valuedouble;
}

static int apply_engine_number(cm_config *cfg, const engine_key *k, const cJSON *v, cm_error *err)
{
    if (!is_integral(v))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.%s: must be an integer", k->key);
    if (v->valuedouble < k->min || v->valuedouble > k->max)
        return cm_error_set(err, CM_ERR_CONFIG, "engine.%s: %.0f out of range %.0f..%.0f", k->key,
                            v->valuedouble, k->min, k->max);
    store_engine_value(cfg, k, v->valuedouble);
    return 0;
}

/* Joins dir and a relative path; absolute paths are returned as is. */
static char *resolve_path(const char *dir, const char *path)
{
    if (path[0] == '/')
        return cm_xstrdup(path);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *out = cm_xmalloc(n);
    snprintf(out, n, "%s/%s", dir, path);
    return out;
}

static int apply_engine_rootfs(cm_config *cfg, const cJSON *v, cm_error *err)
{
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return cm_error_set(err, CM_ERR_CONFIG, "engine.rootfs: must be a non-empty string");
    free(cfg->rootfs);
    cfg->rootfs = resolve_path(cfg->base_dir, v->valuestring);
    return 0;
}

static const engine_key *find_engine_key(const char *name)
{
    for (size_t i = 0; i < sizeof ENGINE_KEYS / sizeof ENGINE_KEYS[0]; i++)
        if (!strcmp(ENGINE_KEYS[i].key, name))
            return &ENGINE_KEYS[i];
    return NULL;
}

static int unknown_engine_key(const char *key, cm_error *err)
{
    static const char *const other[] = {"rootfs",         "rootfs_full", "metrics_file", "policy",
                                        "registration",   "imports",     "test_mode",    "zygote",
                                        "require_layers", "http",        "provider_jail"};
    size_t nk = sizeof ENGINE_KEYS / sizeof ENGINE_KEYS[0], no = sizeof other / sizeof *other;
    const char
        *names[sizeof ENGINE_KEYS / sizeof ENGINE_KEYS[0] + sizeof other / sizeof *other + 1];
    for (size_t i = 0; i < nk; i++)
        names[i] = ENGINE_KEYS[i].key;
    for (size_t i = 0; i < no; i++)
        names[nk + i] = other[i];
    names[nk + no] = NULL;
    return unknown_key(err, "engine", key, names);
}

static int apply_engine_section(cm_config *cfg, const cJSON *engine, cm_error *err)
{
    if (!cJSON_IsObject(engine))
        return cm_error_set(err, CM_ERR_CONFIG, "engine: must be an object");
    const cJSON *item;
    cJSON_ArrayForEach(item, engine)
    {
        if (!strcmp(item->string, "rootfs")) {
            if (apply_engine_rootfs(cfg, item, err) < 0)
                return -1;
            continue;
        }
        char **path = !strcmp(item->string, "rootfs_full")    ? &cfg->rootfs_full
                      : !strcmp(item->string, "metrics_file") ? &cfg->metrics_file
                      : !strcmp(item->string, "runtime_dir")  ? &cfg->runtime_dir
                                                              : NULL;
        if (path) {
            if (!cJSON_IsString(item) || !item->valuestring[0])
                return cm_error_set(err, CM_ERR_CONFIG, "engine.%s: must be a non-empty string",
                                    item->string);
            free(*path);
            *path = resolve_path(cfg->base_dir, item->valuestring);
            continue;
        }
        if (!strcmp(item->string, "user")) {
            if (!cJSON_IsString(item) || !item->valuestring[0])
                return cm_error_set(err, CM_ERR_CONFIG,
                                    "engine.user: must be a user name or uid:gid");
            free(cfg->user);
            cfg->user = cm_xstrdup(item->valuestring);
            continue;
        }
        if (!strcmp(item->string, "policy")) {
            cfg->policy = item;
            continue;
        }
        if (!strcmp(item->string, "http")) {
            cfg->http = item;
            continue;
        }
        if (!strcmp(item->string, "registration")) {
            if (apply_registration(cfg, item, err) < 0)
                return -1;
            continue;
        }
        bool done;
        if (apply_isolation_key(cfg, item, &done, err) < 0)
            return -1;
        if (done)
            continue;
        const engine_key *k = find_engine_key(item->string);
        if (!k)
            return unknown_engine_key(item->string, err);
        if (apply_engine_number(cfg, k, item, err) < 0)
            return -1;
    }
    if (cfg->default_timeout_s > cfg->max_timeout_s)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.default_timeout_s: %d exceeds engine.max_timeout_s %d",
                            cfg->default_timeout_s, cfg->max_timeout_s);
    return 0;
}

/* ---- UTCP sections ----------------------------------------------------- */

static int require_string_field(const cJSON *obj, const char *what, size_t idx, const char *key,
                                cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return cm_error_set(err, CM_ERR_CONFIG, "%s[%zu].%s: missing", what, idx, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return cm_error_set(err, CM_ERR_CONFIG, "%s[%zu].%s: must be a non-empty string", what, idx,
                            key);
    return 0;
}

static int validate_manual_call_templates(const cJSON *arr, cm_error *err)
{
    if (!cJSON_IsArray(arr))
        return cm_error_set(err, CM_ERR_CONFIG, "manual_call_templates: must be an array");
    size_t i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, arr)
    {
        if (!cJSON_IsObject(t))
            return cm_error_set(err, CM_ERR_CONFIG, "manual_call_templates[%zu]: must be an object",
                                i);
        if (require_string_field(t, "manual_call_templates", i, "name", err) < 0 ||
            require_string_field(t, "manual_call_templates", i, "call_template_type", err) < 0)
            return -1;
        i++;
    }
    return 0;
}

static cJSON *variable_as_string(const cJSON *v)
{
    char buf[64];
    if (cJSON_IsString(v))
        return cJSON_CreateString(v->valuestring);
    if (cJSON_IsBool(v))
        return cJSON_CreateString(cJSON_IsTrue(v) ? "true" : "false");
    if (!cJSON_IsNumber(v))
        return NULL;
    if (is_integral(v))
        snprintf(buf, sizeof buf, "%.0f", v->valuedouble);
    else
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
    return cJSON_CreateString(buf);
}

/* Numbers and booleans become strings in place so consumers see only strings. */
static int normalize_variables(cJSON *vars, cm_error *err)
{
    if (!cJSON_IsObject(vars))
        return cm_error_set(err, CM_ERR_CONFIG, "variables: must be an object");
    for (cJSON *v = vars->child; v; v = v->next) {
        if (cJSON_IsString(v))
            continue;
        cJSON *s = variable_as_string(v);
        if (!s)
            return cm_error_set(err, CM_ERR_CONFIG, "variables.%s: must be a string", v->string);
        /* (ReplaceItemViaPointer would drop the key) */
        cJSON_ReplaceItemInObjectCaseSensitive(vars, v->string, s);
        v = s;
    }
    return 0;
}

static int validate_variable_loaders(const cJSON *arr, cm_error *err)
{
    if (!cJSON_IsArray(arr))
        return cm_error_set(err, CM_ERR_CONFIG, "load_variables_from: must be an array");
    size_t i = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, arr)
    {
        if (!cJSON_IsObject(l))
            return cm_error_set(err, CM_ERR_CONFIG, "load_variables_from[%zu]: must be an object",
                                i);
        if (require_string_field(l, "load_variables_from", i, "variable_loader_type", err) < 0)
            return -1;
        const char *type = cm_json_str(l, "variable_loader_type");
        if (strcmp(type, "dotenv") != 0)
            return cm_error_set(err, CM_ERR_CONFIG,
                                "load_variables_from[%zu].variable_loader_type: unsupported '%s' "
                                "(only \"dotenv\")",
                                i, type);
        if (require_string_field(l, "load_variables_from", i, "env_file_path", err) < 0)
            return -1;
        i++;
    }
    return 0;
}

/* `tool_repository`, `tool_search_strategy` and `post_processing` belong to
 * the UTCP client libraries' .utcp_config.json; they are accepted so the same
 * file works with both, and ignored (the engine has its own registry and
 * search, and returns tool results unmodified). */
static bool is_ignored_utcp_key(const char *key)
{
    return !strcmp(key, "tool_repository") || !strcmp(key, "tool_search_strategy") ||
           !strcmp(key, "post_processing");
}

/* Variables that are settings, not secrets: their values are not redacted
 * from what tool calls return (engine/redact.h). */
static int validate_public_variables(const cJSON *item, cm_error *err)
{
    const cJSON *n;
    if (!cJSON_IsArray(item))
        return cm_error_set(err, CM_ERR_CONFIG, "public_variables: must be a list of names");
    cJSON_ArrayForEach(n, item)
    {
        if (!cJSON_IsString(n))
            return cm_error_set(err, CM_ERR_CONFIG, "public_variables: entries must be names");
    }
    return 0;
}

static int validate_top_level(cm_config *cfg, cm_error *err)
{
    if (!cJSON_IsObject(cfg->root))
        return cm_error_set(err, CM_ERR_CONFIG, "%s: top level must be an object", cfg->path);
    for (cJSON *item = cfg->root->child; item; item = item->next) {
        const char *k = item->string;
        int rc = 0;
        if (!strcmp(k, "manual_call_templates")) {
            rc = validate_manual_call_templates(item, err);
            cfg->manual_call_templates = item;
        } else if (!strcmp(k, "variables")) {
            rc = normalize_variables(item, err);
            cfg->variables = item;
        } else if (!strcmp(k, "public_variables")) {
            rc = validate_public_variables(item, err);
            cfg->public_variables = item;
        } else if (!strcmp(k, "load_variables_from")) {
            rc = validate_variable_loaders(item, err);
            cfg->load_variables_from = item;
        } else if (!strcmp(k, "engine")) {
            rc = apply_engine_section(cfg, item, err);
        } else if (!is_ignored_utcp_key(k)) {
            static const char *const names[] = {
                "manual_call_templates", "variables",       "public_variables",
                "load_variables_from",   "engine",          "tool_repository",
                "tool_search_strategy",  "post_processing", NULL};
            const char *near = cm_nearest_name(k, names);
            return cm_error_set(err, CM_ERR_CONFIG, "unknown key '%s' at top level of %s%s%s%s", k,
                                cfg->path, near ? " (did you mean '" : "", near ? near : "",
                                near ? "'?)" : "");
        }
        if (rc < 0)
            return cm_error_prefix(err, "%s", cfg->path);
    }
    return 0;
}

/* ---- parsing the file -------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

static void offset_to_line_col(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int parse_json_strict(const char *text, size_t len, cJSON **out, cm_error *err)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t off = end ? (size_t)(end - text) : 0;
    if (j) {
        while (off < len && isspace((unsigned char)text[off]))
            off++;
        if (off == len) {
            *out = j;
            return 0;
        }
        cJSON_Delete(j);
    }
    size_t line, col;
    offset_to_line_col(text, off, &line, &col);
    return cm_error_set(err, CM_ERR_CONFIG, "line %zu:%zu: invalid JSON%s", line, col,
                        j ? " (trailing characters)" : "");
}

static int parse_config_text(const char *path, const char *text, size_t len, cJSON **out,
                             cm_error *err)
{
    if (has_suffix(path, ".json"))
        return parse_json_strict(text, len, out, err);
    if (has_suffix(path, ".yaml") || has_suffix(path, ".yml"))
        return cm_yaml_to_json(text, len, out, err);
    return cm_parse_json_or_yaml(text, len, "config", out, err);
}

static int set_base_dir(cm_config *cfg, cm_error *err)
{
    if (!cfg->path) {
        cfg->base_dir = getcwd(NULL, 0);
        if (!cfg->base_dir)
            return cm_error_sys(err, CM_ERR_IO, "getcwd");
        return 0;
    }
    cm_autofree char *real = realpath(cfg->path, NULL);
    if (!real)
        return cm_error_sys(err, CM_ERR_IO, "cannot resolve %s", cfg->path);
    cfg->base_dir = cm_xstrdup(dirname(real));
    return 0;
}

/* Rootless with no rootfs beside the binary: the user's own, in
 * $XDG_DATA_HOME/codemode/rootfs (~/.local/share/codemode/rootfs), which
 * the engine builds on first use (engine/main.c check_rootfs). */
static int user_rootfs_default(cm_config *cfg)
{
    if (geteuid() == 0 || access(cfg->rootfs, F_OK) == 0)
        return 0;
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    char buf[PATH_MAX];
    if (xdg && xdg[0] == '/' && strlen(xdg) < 3000)
        snprintf(buf, sizeof buf, "%s/codemode/rootfs", xdg);
    else if (home && home[0] == '/' && strlen(home) < 3000)
        snprintf(buf, sizeof buf, "%s/.local/share/codemode/rootfs", home);
    else
        return 0;
    free(cfg->rootfs);
    cfg->rootfs = cm_xstrdup(buf);
    cfg->rootfs_build_on_use = true;
    return 0;
}

static int set_default_rootfs(cm_config *cfg, const char *exe_dir, cm_error *err)
{
    cm_autofree char *cwd = NULL;
    if (!exe_dir || exe_dir[0] != '/') {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            return cm_error_sys(err, CM_ERR_IO, "getcwd");
    }
    cm_autofree char *dir = exe_dir ? resolve_path(cwd ? cwd : "/", exe_dir) : cm_xstrdup(cwd);
    /* <exe_dir>/rootfs (build tree), <exe_dir>/../rootfs (build/asan/codemode
     * uses build/rootfs), <exe_dir>/../lib/codemode/rootfs (installed) */
    static const char *const candidates[] = {"rootfs", "../rootfs", "../lib/codemode/rootfs"};
    cfg->rootfs = resolve_path(dir, candidates[0]);
    for (size_t i = 1; i < sizeof candidates / sizeof *candidates; i++) {
        if (access(cfg->rootfs, F_OK) == 0)
            break;
        cm_autofree char *alt = resolve_path(dir, candidates[i]);
        if (access(alt, F_OK) == 0) {
            free(cfg->rootfs);
            cfg->rootfs = cm_steal_ptr(&alt);
        }
    }
    return user_rootfs_default(cfg);
}

static int load_file(cm_config *cfg, cm_error *err)
{
    cm_autofree char *text = NULL;
    size_t len = 0;
    if (cm_read_file(cfg->path, CONFIG_MAX_BYTES, &text, &len, err) < 0)
        return -1;
    if (parse_config_text(cfg->path, text, len, &cfg->root, err) < 0)
        return cm_error_prefix(err, "%s", cfg->path);
    return validate_top_level(cfg, err);
}

int cm_config_load(const char *path, const char *exe_dir, cm_config *cfg, cm_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    set_engine_defaults(cfg);
    if (path)
        cfg->path = cm_xstrdup(path);
    if (set_base_dir(cfg, err) < 0 || set_default_rootfs(cfg, exe_dir, err) < 0 ||
        (path && load_file(cfg, err) < 0)) {
        cm_config_free(cfg);
        return -1;
    }
    return 0;
}

void cm_config_free(cm_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->base_dir);
    free(cfg->rootfs);
    free(cfg->metrics_file);
    free(cfg->rootfs_full);
    free(cfg->runtime_dir);
    free(cfg->user);
    cJSON_Delete(cfg->root);
    memset(cfg, 0, sizeof *cfg);
}

void cm_config_iso(const cm_config *cfg, cm_iso_config *out)
{
    *out = (cm_iso_config){
        .rootfs = cfg->rootfs,
        .rootfs_full = cfg->rootfs_full,
        .sandbox_uid = cfg->sandbox_uid,
        .sandbox_gid = cfg->sandbox_gid,
        .sandbox_uid_range = (unsigned)cfg->sandbox_uid_range,
        .runtime_dir = cfg->runtime_dir,
        .user = cfg->user,
        .tmp_size_bytes = cfg->tmp_size_bytes,
        .limits = cm_config_limits(cfg),
        .test_mode = cfg->test_mode,
        .require_layers = cfg->require_layers,
        .zygote = cfg->zygote,
        .provider_jail = cfg->provider_jail,
        .workers = cfg->workers,
        .pool_size = cfg->pool_size,
        .pool_full_size = cfg->pool_full_size,
        .pool_refill_concurrency = cfg->pool_refill_concurrency,
    };
}

cm_limits cm_config_limits(const cm_config *cfg)
{
    return (cm_limits){
        .timeout_s = cfg->max_timeout_s,
        .memory_bytes = cfg->memory_bytes,
        .cpu_quota_pct = cfg->cpu_quota_pct,
        .pids_max = cfg->pids_max,
        .max_tool_calls = cfg->max_tool_calls,
        .max_output_bytes = (long)cfg->max_output_bytes,
        .max_result_bytes = (long)cfg->max_result_bytes,
    };
}
