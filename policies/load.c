/* load.c — reads a policy file into a cm_policy.  The YAML becomes cJSON
 * (engine/yamljson.c, libyaml), then every key is checked against the schema
 * in policies/README.md: unknown keys, wrong types and bad values are errors
 * that name the file, line, column and key path, so a typo can never turn
 * into a silently wider policy. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "yamljson.h"
#include "load_int.h"
#include "policy_int.h"
#include "util.h"

#define POLICY_MAX_BYTES (4u << 20)

/* ---- limits -------------------------------------------------------------- */

static int get_long(vctx *v, const cJSON *j, long min, long max, long *out)
{
    if (!pv_is_int(j) || j->valuedouble < (double)min || j->valuedouble > (double)max)
        return pv_err(v, "must be an integer in %ld..%ld", min, max);
    *out = (long)j->valuedouble;
    return 0;
}

static int get_positive(vctx *v, const cJSON *j, double max, double *out)
{
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0) || j->valuedouble > max)
        return pv_err(v, "must be a number > 0 and <= %g", max);
    *out = j->valuedouble;
    return 0;
}

/* A number of CPUs as the percent of one CPU cm_limits holds. */
static int get_cpus(vctx *v, const cJSON *j, int *pct)
{
    double cpus = 0;
    if (get_positive(v, j, 1024, &cpus) < 0)
        return -1;
    *pct = cpus * 100 < 1 ? 1 : (int)(cpus * 100 + 0.5);
    return 0;
}

static int load_cpu(vctx *v, const cJSON *j, cm_limits *l)
{
    if (cJSON_IsNumber(j))
        return get_cpus(v, j, &l->cpu_quota_pct);
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a number of CPUs (quota) or {quota, shares}");
    static const char *const keys[] = {"quota", "shares", NULL};
    if (pv_check_keys(v, j, keys) < 0)
        return -1;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "quota");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "shares");
    int rc = 0;
    if (q) {
        pv_push_key(v, "quota");
        rc = get_cpus(v, q, &l->cpu_quota_pct);
        pv_pop(v);
    }
    if (rc == 0 && s) {
        pv_push_key(v, "shares");
        rc = get_long(v, s, 2, 262144, &l->cpu_shares);
        pv_pop(v);
    }
    return rc;
}

static int load_limit(vctx *v, const cJSON *it, cm_limits *l)
{
    const char *k = it->string;
    if (!strcmp(k, "timeout_s"))
        return get_positive(v, it, 86400, &l->timeout_s);
    long n = 0;
    if (!strcmp(k, "memory_mb")) {
        if (get_long(v, it, 1, 1 << 20, &n) < 0)
            return -1;
        l->memory_bytes = (uint64_t)n << 20;
        return 0;
    }
    if (!strcmp(k, "cpu"))
        return load_cpu(v, it, l);
    if (!strcmp(k, "pids")) {
        if (get_long(v, it, 1, 1 << 22, &n) < 0)
            return -1;
        l->pids_max = (int)n;
        return 0;
    }
    if (!strcmp(k, "max_tool_calls"))
        return get_long(v, it, 1, 1000000, &l->max_tool_calls);
    if (!strcmp(k, "max_output_bytes"))
        return get_long(v, it, 1, 1L << 30, &l->max_output_bytes);
    if (!strcmp(k, "max_result_bytes"))
        return get_long(v, it, 1, 1L << 30, &l->max_result_bytes);
    return pv_err(v, "unknown key");
}

static int load_limits(vctx *v, const cJSON *j, cm_limits *l)
{
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping");
    for (const cJSON *it = j->child; it; it = it->next) {
        pv_push_key(v, it->string);
        int rc = load_limit(v, it, l);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- imports ------------------------------------------------------------- */

static int load_imports(vctx *v, const cJSON *j, cJSON **out)
{
    if (!(cJSON_IsString(j) && !strcmp(j->valuestring, "all")) &&
        pv_string_list(v, j, true, "module names") < 0)
        return -1;
    *out = cJSON_Duplicate(j, 1);
    return 0;
}

/* ---- tool rules ---------------------------------------------------------- */

static const char *const ARG_TYPES[] = {"any",     "string", "number", "integer",
                                        "boolean", "array",  "object", "null"};

static int load_arg_type(vctx *v, const cJSON *j, arg_rule *a)
{
    if (cJSON_IsString(j))
        for (size_t i = 0; i < sizeof ARG_TYPES / sizeof *ARG_TYPES; i++)
            if (!strcmp(j->valuestring, ARG_TYPES[i])) {
                a->type = (arg_type)i;
                return 0;
            }
    return pv_err(v, "must be one of any, string, number, integer, boolean, array, object, null");
}

static int load_pattern(vctx *v, const cJSON *j, arg_rule *a)
{
    if (!cJSON_IsString(j))
        return pv_err(v, "must be a string (a POSIX extended regex, anchored)");
    size_t n = strlen(j->valuestring) + 5;
    cm_autofree char *anchored = cm_xmalloc(n);
    snprintf(anchored, n, "^(%s)$", j->valuestring);
    int rc = regcomp(&a->re, anchored, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &a->re, msg, sizeof msg);
        return pv_err(v, "invalid regex: %s", msg);
    }
    a->pattern = cm_xstrdup(j->valuestring);
    return 0;
}

static int load_number(vctx *v, const cJSON *j, bool *has, double *out)
{
    if (!cJSON_IsNumber(j))
        return pv_err(v, "must be a number");
    *has = true;
    *out = j->valuedouble;
    return 0;
}

static int load_enum(vctx *v, const cJSON *j, arg_rule *a)
{
    if (!cJSON_IsArray(j) || !j->child)
        return pv_err(v, "must be a non-empty list of values");
    a->enum_values = cJSON_Duplicate(j, 1);
    return 0;
}

static int load_arg_key(vctx *v, const cJSON *it, arg_rule *a)
{
    const char *k = it->string;
    if (!strcmp(k, "type"))
        return load_arg_type(v, it, a);
    if (!strcmp(k, "enum"))
        return load_enum(v, it, a);
    if (!strcmp(k, "pattern"))
        return load_pattern(v, it, a);
    if (!strcmp(k, "min"))
        return load_number(v, it, &a->has_min, &a->min);
    if (!strcmp(k, "max"))
        return load_number(v, it, &a->has_max, &a->max);
    if (!strcmp(k, "max_length"))
        return get_long(v, it, 0, 1L << 30, &a->max_length);
    if (!strcmp(k, "required"))
        return pv_bool(v, it, &a->required);
    if (!strcmp(k, "forbidden"))
        return pv_bool(v, it, &a->forbidden);
    return pv_err(v, "unknown key");
}

static int load_arg(vctx *v, const cJSON *j, arg_rule *a)
{
    a->name = cm_xstrdup(j->string);
    a->max_length = -1;
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping of constraints");
    for (const cJSON *it = j->child; it; it = it->next) {
        pv_push_key(v, it->string);
        int rc = load_arg_key(v, it, a);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    if (a->required && a->forbidden)
        return pv_err(v, "cannot be both required and forbidden");
    return 0;
}

static int load_args(vctx *v, const cJSON *j, tool_rule *r)
{
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping of argument name → constraints");
    r->nargs = (size_t)cJSON_GetArraySize(j);
    r->args = cm_xcalloc(r->nargs ? r->nargs : 1, sizeof *r->args);
    size_t i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        pv_push_key(v, it->string);
        int rc = load_arg(v, it, &r->args[i]);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int load_rule_key(vctx *v, const cJSON *it, tool_rule *r)
{
    const char *k = it->string;
    if (!strcmp(k, "name") || !strcmp(k, "match")) {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 120)
            return pv_err(v, "must be a non-empty string of at most 120 bytes");
        char **dst = !strcmp(k, "name") ? &r->name : &r->match;
        *dst = cm_xstrdup(it->valuestring);
        return 0;
    }
    if (!strcmp(k, "allow"))
        return pv_bool(v, it, &r->allow);
    if (!strcmp(k, "audit_args"))
        return pv_bool(v, it, &r->audit_args);
    if (!strcmp(k, "args"))
        return load_args(v, it, r);
    if (!strcmp(k, "max_calls"))
        return get_long(v, it, 1, 1000000, &r->max_calls);
    if (!strcmp(k, "rate"))
        return get_positive(v, it, 1e6, &r->rate);
    if (!strcmp(k, "burst"))
        return get_positive(v, it, 1e6, &r->burst);
    return pv_err(v, "unknown key");
}

static int load_rule(vctx *v, const cJSON *j, int index, tool_rule *r)
{
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping with match and allow");
    for (const cJSON *it = j->child; it; it = it->next) {
        pv_push_key(v, it->string);
        int rc = load_rule_key(v, it, r);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    if (!r->match)
        return pv_err(v, "missing key 'match'");
    if (!cJSON_GetObjectItemCaseSensitive(j, "allow"))
        return pv_err(v, "missing key 'allow'");
    if (!r->allow && (r->args || r->max_calls || r->rate))
        return pv_err(v, "args, max_calls and rate apply to allow: true rules only");
    if (r->burst && !r->rate)
        return pv_err(v, "burst needs rate");
    if (r->rate && !r->burst)
        r->burst = r->rate < 1 ? 1 : r->rate;
    r->tokens = r->burst;
    if (!r->name) {
        char name[32];
        snprintf(name, sizeof name, "tools[%d]", index);
        r->name = cm_xstrdup(name);
    }
    return 0;
}

static int load_rules(vctx *v, const cJSON *j, cm_policy_profile *prof)
{
    if (!cJSON_IsArray(j))
        return pv_err(v, "must be a list of rules");
    prof->nrules = (size_t)cJSON_GetArraySize(j);
    prof->rules = cm_xcalloc(prof->nrules ? prof->nrules : 1, sizeof *prof->rules);
    int i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        pv_push_idx(v, i);
        int rc = load_rule(v, it, i, &prof->rules[i]);
        for (int k = 0; rc == 0 && k < i; k++)
            if (!strcmp(prof->rules[k].name, prof->rules[i].name))
                rc = pv_err(v, "duplicate rule name '%s'", prof->rules[i].name);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- http egress --------------------------------------------------------- */

static bool valid_hostname(const char *h)
{
    if (!*h || strlen(h) > 253)
        return false;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && *h != '-' && *h != '.')
            return false;
    return true;
}

static int load_egress_host(vctx *v, const cJSON *j, egress_rule *r)
{
    if (!cJSON_IsString(j))
        return pv_err(v, "must be a host name, *.domain, IP address or CIDR");
    const char *h = j->valuestring;
    r->host = cm_xstrdup(h);
    for (char *p = r->host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!strncmp(h, "*.", 2)) {
        r->wildcard = true;
        if (!valid_hostname(h + 2))
            return pv_err(v, "'%s': not a valid *.domain", h);
        return 0;
    }
    if (cm_egress_parse_ip(h, r) == 0)
        return 0;
    if (strchr(h, '/') || strchr(h, ':'))
        return pv_err(v, "'%s': not a valid IP address or CIDR", h);
    if (!valid_hostname(h))
        return pv_err(v, "'%s': not a valid host name", h);
    return 0;
}

static int load_ports(vctx *v, const cJSON *j, egress_rule *r)
{
    if (!cJSON_IsArray(j) || !j->child)
        return pv_err(v, "must be a non-empty list of port numbers");
    r->nports = (size_t)cJSON_GetArraySize(j);
    r->ports = cm_xcalloc(r->nports, sizeof *r->ports);
    int i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        pv_push_idx(v, i);
        int rc = get_long(v, it, 1, 65535, &r->ports[i]);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int load_schemes(vctx *v, const cJSON *j, egress_rule *r)
{
    if (!cJSON_IsArray(j) || !j->child)
        return pv_err(v, "must be a non-empty list of http / https");
    r->nschemes = 0;
    r->schemes = cm_xcalloc((size_t)cJSON_GetArraySize(j), sizeof *r->schemes);
    int i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        if (!cJSON_IsString(it) ||
            (strcmp(it->valuestring, "http") && strcmp(it->valuestring, "https"))) {
            pv_push_idx(v, i);
            int rc = pv_err(v, "must be http or https");
            pv_pop(v);
            return rc;
        }
        r->schemes[r->nschemes++] = cm_xstrdup(it->valuestring);
    }
    return 0;
}

static int load_egress_key(vctx *v, const cJSON *it, egress_rule *r)
{
    if (!strcmp(it->string, "host"))
        return load_egress_host(v, it, r);
    if (!strcmp(it->string, "ports"))
        return load_ports(v, it, r);
    if (!strcmp(it->string, "schemes"))
        return load_schemes(v, it, r);
    return pv_err(v, "unknown key");
}

static int load_egress_rule(vctx *v, const cJSON *j, egress_rule *r)
{
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping with host (and ports, schemes)");
    for (const cJSON *it = j->child; it; it = it->next) {
        pv_push_key(v, it->string);
        int rc = load_egress_key(v, it, r);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    if (!r->host)
        return pv_err(v, "missing key 'host'");
    if (!r->schemes) {
        r->schemes = cm_xcalloc(1, sizeof *r->schemes);
        r->schemes[0] = cm_xstrdup("https");
        r->nschemes = 1;
    }
    return 0;
}

static int load_egress(vctx *v, const cJSON *j, cm_policy_profile *prof)
{
    if (!cJSON_IsArray(j))
        return pv_err(v, "must be a list of {host, ports, schemes}");
    prof->negress = (size_t)cJSON_GetArraySize(j);
    prof->egress = cm_xcalloc(prof->negress ? prof->negress : 1, sizeof *prof->egress);
    int i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        pv_push_idx(v, i);
        int rc = load_egress_rule(v, it, &prof->egress[i]);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- profiles, manuals, document ----------------------------------------- */

static int load_profile_key(vctx *v, const cJSON *it, cm_policy_profile *prof)
{
    const char *k = it->string;
    if (!strcmp(k, "limits"))
        return load_limits(v, it, &prof->limits);
    if (!strcmp(k, "imports"))
        return load_imports(v, it, &prof->imports);
    if (!strcmp(k, "tools"))
        return load_rules(v, it, prof);
    if (!strcmp(k, "http"))
        return load_egress(v, it, prof);
    if (!strcmp(k, "grants"))
        return cm_grants_load(v, it, &prof->grants);
    return pv_err(v, "unknown key");
}

static int load_profile(vctx *v, const cJSON *j, cm_policy_profile *prof)
{
    prof->name = cm_xstrdup(j->string);
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping (limits, imports, tools, http, grants)");
    for (const cJSON *it = j->child; it; it = it->next) {
        pv_push_key(v, it->string);
        int rc = load_profile_key(v, it, prof);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int load_profiles(vctx *v, const cJSON *j, cm_policy *p)
{
    if (!cJSON_IsObject(j) || !j->child)
        return pv_err(v, "must be a mapping of at least one profile name → profile");
    p->nprofiles = (size_t)cJSON_GetArraySize(j);
    p->profiles = cm_xcalloc(p->nprofiles, sizeof *p->profiles);
    size_t i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        pv_push_key(v, it->string);
        int rc = load_profile(v, it, &p->profiles[i]);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int load_manual(vctx *v, const cJSON *j, manual_vars *m)
{
    m->manual = cm_xstrdup(j->string);
    static const char *const keys[] = {"variables", "owner", NULL};
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping with variables (and optionally owner)");
    if (pv_check_keys(v, j, keys) < 0)
        return -1;
    const cJSON *owner = cJSON_GetObjectItemCaseSensitive(j, "owner");
    if (owner && (!cJSON_IsString(owner) || !owner->valuestring[0])) {
        pv_push_key(v, "owner");
        int rc = pv_err(v, "must be the name of the profile whose registered manual this is");
        pv_pop(v);
        return rc;
    }
    m->owner = owner ? cm_xstrdup(owner->valuestring) : NULL;
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(j, "variables");
    if (!vars)
        return pv_err(v, "missing key 'variables'");
    pv_push_key(v, "variables");
    int rc = 0;
    if (cJSON_IsString(vars) && !strcmp(vars->valuestring, "all"))
        m->all = true;
    else if ((rc = pv_string_list(v, vars, false, "variable names")) == 0)
        m->names = cJSON_Duplicate(vars, 1);
    pv_pop(v);
    return rc;
}

static int load_manuals(vctx *v, const cJSON *j, cm_policy *p)
{
    if (!cJSON_IsObject(j))
        return pv_err(v, "must be a mapping of manual name → {variables}");
    p->has_manuals = true;
    p->nmanuals = (size_t)cJSON_GetArraySize(j);
    p->manuals = cm_xcalloc(p->nmanuals ? p->nmanuals : 1, sizeof *p->manuals);
    size_t i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        pv_push_key(v, it->string);
        int rc = load_manual(v, it, &p->manuals[i]);
        pv_pop(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int load_document(vctx *v, const cJSON *root, cm_policy *p)
{
    static const char *const keys[] = {"version", "profiles", "manuals", NULL};
    if (!cJSON_IsObject(root))
        return pv_err(v, "top level must be a mapping (version, profiles, manuals)");
    if (pv_check_keys(v, root, keys) < 0)
        return -1;
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!version)
        return pv_err(v, "missing key 'version' (use version: 1)");
    pv_push_key(v, "version");
    int rc = (pv_is_int(version) && version->valuedouble == 1) ? 0 : pv_err(v, "must be 1");
    pv_pop(v);
    if (rc < 0)
        return -1;
    const cJSON *profiles = cJSON_GetObjectItemCaseSensitive(root, "profiles");
    if (!profiles)
        return pv_err(v, "missing key 'profiles'");
    pv_push_key(v, "profiles");
    rc = load_profiles(v, profiles, p);
    pv_pop(v);
    const cJSON *manuals = cJSON_GetObjectItemCaseSensitive(root, "manuals");
    if (rc == 0 && manuals) {
        pv_push_key(v, "manuals");
        rc = load_manuals(v, manuals, p);
        pv_pop(v);
    }
    return rc;
}

/* yamljson reports "line L:C: msg"; policies say "FILE:L:C: msg". */
static int syntax_error(const char *name, cm_error *err)
{
    char msg[sizeof err->message];
    snprintf(msg, sizeof msg, "%s", err->message);
    const char *rest = strncmp(msg, "line ", 5) ? msg : msg + 5;
    return cm_error_set(err, CM_ERR_CONFIG, "%s:%s", name, rest);
}

int cm_policy_parse(const char *text, size_t len, const char *name, cm_policy **out, cm_error *err)
{
    cm_autojson cJSON *root = NULL;
    if (cm_yaml_to_json(text, len, &root, err) < 0)
        return syntax_error(name, err);
    cm_policy *p = cm_xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->rate_lock, NULL);
    p->path = cm_xstrdup(name);
    vctx v = {.text = text, .len = len, .name = name, .err = err};
    if (load_document(&v, root, p) < 0) {
        cm_policy_unref(p);
        return -1;
    }
    *out = p;
    return 0;
}

int cm_policy_load(const char *path, cm_policy **out, cm_error *err)
{
    cm_autofree char *text = NULL;
    size_t len = 0;
    if (cm_read_file(path, POLICY_MAX_BYTES, &text, &len, err) < 0)
        return cm_error_prefix(err, "policy %s", path);
    return cm_policy_parse(text, len, path, out, err);
}

/* ---- lifetime ------------------------------------------------------------ */

static void free_rule(tool_rule *r)
{
    for (size_t i = 0; i < r->nargs; i++) {
        free(r->args[i].name);
        cJSON_Delete(r->args[i].enum_values);
        if (r->args[i].pattern)
            regfree(&r->args[i].re);
        free(r->args[i].pattern);
    }
    free(r->args);
    free(r->name);
    free(r->match);
}

static void free_egress(egress_rule *e)
{
    free(e->host);
    free(e->ports);
    for (size_t i = 0; i < e->nschemes; i++)
        free(e->schemes[i]);
    free(e->schemes);
}

static void free_profile(cm_policy_profile *prof)
{
    free(prof->name);
    cJSON_Delete(prof->imports);
    for (size_t i = 0; i < prof->nrules; i++)
        free_rule(&prof->rules[i]);
    free(prof->rules);
    for (size_t i = 0; i < prof->negress; i++)
        free_egress(&prof->egress[i]);
    free(prof->egress);
    cm_grants_free(&prof->grants);
}

void cm_policy_ref(cm_policy *p)
{
    atomic_fetch_add(&p->refs, 1);
}

void cm_policy_unref(cm_policy *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    for (size_t i = 0; i < p->nprofiles; i++)
        free_profile(&p->profiles[i]);
    free(p->profiles);
    for (size_t i = 0; i < p->nmanuals; i++) {
        free(p->manuals[i].manual);
        free(p->manuals[i].owner);
        cJSON_Delete(p->manuals[i].names);
    }
    free(p->manuals);
    pthread_mutex_destroy(&p->rate_lock);
    free(p->path);
    free(p);
}

const char *cm_policy_path(const cm_policy *p)
{
    return p->path;
}

const cm_policy_profile *cm_policy_find_profile(const cm_policy *p, const char *name)
{
    for (size_t i = 0; name && i < p->nprofiles; i++)
        if (!strcmp(p->profiles[i].name, name))
            return &p->profiles[i];
    return NULL;
}

const char *cm_profile_name(const cm_policy_profile *prof)
{
    return prof->name;
}

size_t cm_profile_rule_count(const cm_policy_profile *prof)
{
    return prof->nrules;
}

const cm_limits *cm_profile_limits(const cm_policy_profile *prof)
{
    return &prof->limits;
}

const cJSON *cm_profile_imports(const cm_policy_profile *prof)
{
    return prof->imports;
}
