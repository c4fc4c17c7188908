/* decide.c — the policy decisions that are pure functions of a loaded policy
 * (plus per-chain counters and the profile's rate buckets): which rule
 * decides a tool call and why, whether a manual may use a variable, and
 * which limits a chain gets.  The rule: the first rule whose `match` glob
 * matches the qualified tool name decides; no match denies ("default"). */
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy_int.h"
#include "util.h"

static void set_decision(cm_decision *d, bool allow, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_decision(cm_decision *d, bool allow, const char *rule, const char *fmt, ...)
{
    d->allow = allow;
    snprintf(d->rule, sizeof d->rule, "%s", rule);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
}

static void trace_add(cJSON *trace, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace_add(cJSON *trace, const char *fmt, ...)
{
    if (!trace)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cJSON_AddItemToArray(trace, cJSON_CreateString(line));
}

/* ---- argument constraints ------------------------------------------------ */

static bool type_ok(arg_type t, const cJSON *v)
{
    switch (t) {
    case ARG_ANY:
        return true;
    case ARG_STRING:
        return cJSON_IsString(v);
    case ARG_NUMBER:
        return cJSON_IsNumber(v);
    case ARG_INTEGER:
        return cJSON_IsNumber(v) && v->valuedouble >= -9e15 && v->valuedouble <= 9e15 &&
               v->valuedouble == (double)(long long)v->valuedouble;
    case ARG_BOOLEAN:
        return cJSON_IsBool(v);
    case ARG_ARRAY:
        return cJSON_IsArray(v);
    case ARG_OBJECT:
        return cJSON_IsObject(v);
    case ARG_NULL:
        return cJSON_IsNull(v);
    }
    return false;
}

static const char *type_name(arg_type t)
{
    static const char *const names[] = {"any",     "string", "number", "integer",
                                        "boolean", "array",  "object", "null"};
    return names[t];
}

static bool in_enum(const cJSON *values, const cJSON *v)
{
    for (const cJSON *e = values->child; e; e = e->next)
        if (cJSON_Compare(e, v, 1))
            return true;
    return false;
}

/* Returns NULL when v satisfies a, else writes why into buf. */
static const char *check_arg(const arg_rule *a, const cJSON *v, char *buf, size_t size)
{
    if (!v) {
        if (a->required)
            snprintf(buf, size, "argument '%s' is required", a->name);
        return a->required ? buf : NULL;
    }
    if (a->forbidden)
        snprintf(buf, size, "argument '%s' is forbidden", a->name);
    else if (!type_ok(a->type, v))
        snprintf(buf, size, "argument '%s' must be of type %s", a->name, type_name(a->type));
    else if (a->enum_values && !in_enum(a->enum_values, v)) {
        cm_autofree char *val = cm_json_print(v);
        snprintf(buf, size, "argument '%s' value %.100s is not in the allowed set", a->name, val);
    } else if (a->pattern && (!cJSON_IsString(v) || regexec(&a->re, v->valuestring, 0, NULL, 0)))
        snprintf(buf, size, "argument '%s' does not match pattern '%.100s'", a->name, a->pattern);
    else if (a->has_min && (!cJSON_IsNumber(v) || v->valuedouble < a->min))
        snprintf(buf, size, "argument '%s' is below the minimum %g", a->name, a->min);
    else if (a->has_max && (!cJSON_IsNumber(v) || v->valuedouble > a->max))
        snprintf(buf, size, "argument '%s' is above the maximum %g", a->name, a->max);
    else if (a->max_length >= 0 && cJSON_IsString(v) &&
             (long)strlen(v->valuestring) > a->max_length)
        snprintf(buf, size, "argument '%s' is longer than %ld bytes", a->name, a->max_length);
    else if (a->max_length >= 0 && cJSON_IsArray(v) && cJSON_GetArraySize(v) > a->max_length)
        snprintf(buf, size, "argument '%s' has more than %ld items", a->name, a->max_length);
    else
        return NULL;
    return buf;
}

static const char *check_args(const tool_rule *r, const cJSON *args, char *buf, size_t size)
{
    for (size_t i = 0; i < r->nargs; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, r->args[i].name);
        const char *why = check_arg(&r->args[i], v, buf, size);
        if (why)
            return why;
    }
    return NULL;
}

/* ---- budgets and rates --------------------------------------------------- */

/* Token bucket per rule, shared by every chain of the profile. */
static bool take_token(const cm_policy *p, tool_rule *r)
{
    int64_t now = cm_now_us();
    pthread_mutex_t *lock = (pthread_mutex_t *)&p->rate_lock;
    pthread_mutex_lock(lock);
    if (r->last_us) {
        r->tokens += (double)(now - r->last_us) / 1e6 * r->rate;
        if (r->tokens > r->burst)
            r->tokens = r->burst;
    }
    r->last_us = now;
    bool ok = r->tokens >= 1.0;
    if (ok)
        r->tokens -= 1.0;
    pthread_mutex_unlock(lock);
    return ok;
}

static void decide_by_rule(const cm_policy *p, tool_rule *r, size_t index, cm_policy_calls *calls,
                           const cJSON *args, cm_decision *d, cJSON *trace)
{
    char why[512];
    d->audit_args = r->audit_args;
    if (!r->allow) {
        set_decision(d, false, r->name, "rule '%s' (match %s) denies this tool", r->name, r->match);
    } else if (check_args(r, args, why, sizeof why)) {
        set_decision(d, false, r->name, "%s", why);
    } else if (r->max_calls && calls && index < calls->nrules &&
               calls->per_rule[index] >= r->max_calls) {
        set_decision(d, false, r->name, "max_calls: at most %ld calls per chain", r->max_calls);
    } else if (r->rate && !take_token(p, r)) {
        set_decision(d, false, r->name, "rate: more than %g calls per second for this profile",
                     r->rate);
    } else {
        if (calls && index < calls->nrules)
            calls->per_rule[index]++;
        set_decision(d, true, r->name, "allowed by rule '%s' (match %s)", r->name, r->match);
    }
    trace_add(trace, "rule '%s' (match %s) matches and decides: %s — %s", r->name, r->match,
              d->allow ? "allow" : "deny", d->reason);
}

void cm_policy_decide(const cm_policy *p, const cm_policy_profile *prof, cm_policy_calls *calls,
                      const char *tool, const cJSON *args, cm_decision *d, cJSON *trace)
{
    memset(d, 0, sizeof *d);
    for (size_t i = 0; i < prof->nrules; i++) {
        tool_rule *r = &prof->rules[i];
        if (fnmatch(r->match, tool, 0) != 0) {
            trace_add(trace, "rule '%s' (match %s) does not match", r->name, r->match);
            continue;
        }
        decide_by_rule(p, r, i, calls, args, d, trace);
        return;
    }
    set_decision(d, false, "default",
                 "no rule of profile '%s' matches tool '%.200s' (default deny)", prof->name, tool);
    trace_add(trace, "no rule matched: default deny");
}

/* ---- variables ------------------------------------------------------------ */

static bool name_listed(const cJSON *names, const char *name)
{
    for (const cJSON *n = names ? names->child : NULL; n; n = n->next)
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return true;
    return false;
}

/* The policy entry for (manual, owner): a config manual (owner NULL) matches
 * entries without `owner`; a registered manual only an entry naming its
 * owner, so a look-alike registered later never inherits a grant. */
static const manual_vars *manual_entry(const cm_policy *p, const char *manual, const char *owner)
{
    for (size_t i = 0; i < p->nmanuals; i++) {
        const manual_vars *m = &p->manuals[i];
        if (strcmp(m->manual, manual))
            continue;
        if (owner ? (m->owner && !strcmp(m->owner, owner)) : !m->owner)
            return m;
    }
    return NULL;
}

void cm_policy_check_variables(const cm_policy *p, const char *manual, const char *owner,
                               const cJSON *names, cm_decision *d)
{
    memset(d, 0, sizeof *d);
    char rule[128];
    snprintf(rule, sizeof rule, "manuals.%.100s.variables", manual);
    if (!p->has_manuals && !owner) {
        set_decision(d, true, rule, "no manuals section: variables unrestricted");
        return;
    }
    const manual_vars *m = manual_entry(p, manual, owner);
    for (const cJSON *n = names ? names->child : NULL; n; n = n->next) {
        if (!cJSON_IsString(n) || (m && (m->all || name_listed(m->names, n->valuestring))))
            continue;
        if (owner)
            set_decision(d, false, rule,
                         "manual '%.100s' registered by profile '%.100s' may not use variable "
                         "'%.100s' (grant it with manuals.%.100s.owner: %.100s)",
                         manual, owner, n->valuestring, manual, owner);
        else
            set_decision(d, false, rule, "manual '%.100s' may not use variable '%.100s'%s", manual,
                         n->valuestring, m ? "" : " (manual not listed under manuals)");
        return;
    }
    set_decision(d, true, rule, "variables allowed");
}

/* ---- limits ---------------------------------------------------------------- */

/* A limit as requests and policy files name it, and its field in cm_limits:
 * `unit` is how many of the field's units one named unit is (memory_mb:
 * 2^20 bytes; cpu: 100 percent of a CPU). */
typedef enum { LF_DOUBLE, LF_U64, LF_INT, LF_LONG } limit_kind;

typedef struct limit_field {
    const char *name;
    size_t offset;
    limit_kind kind;
    double unit;
} limit_field;

static const limit_field LIMIT_FIELDS[] = {
    {"timeout_s", offsetof(cm_limits, timeout_s), LF_DOUBLE, 1},
    {"memory_mb", offsetof(cm_limits, memory_bytes), LF_U64, 1048576},
    {"cpu", offsetof(cm_limits, cpu_quota_pct), LF_INT, 100},
    {"cpu_shares", offsetof(cm_limits, cpu_shares), LF_LONG, 1},
    {"pids", offsetof(cm_limits, pids_max), LF_INT, 1},
    {"max_tool_calls", offsetof(cm_limits, max_tool_calls), LF_LONG, 1},
    {"max_output_bytes", offsetof(cm_limits, max_output_bytes), LF_LONG, 1},
    {"max_result_bytes", offsetof(cm_limits, max_result_bytes), LF_LONG, 1},
};

/* The field's value in the named unit (what requests and reports use). */
static double get_field(const cm_limits *l, const limit_field *f)
{
    const char *p = (const char *)l + f->offset;
    switch (f->kind) {
    case LF_DOUBLE:
        return *(const double *)p / f->unit;
    case LF_U64:
        return (double)*(const uint64_t *)p / f->unit;
    case LF_INT:
        return *(const int *)p / f->unit;
    case LF_LONG:
        return (double)*(const long *)p / f->unit;
    }
    return 0;
}

static void set_field(cm_limits *l, const limit_field *f, double v)
{
    char *p = (char *)l + f->offset;
    double x = v * f->unit;
    switch (f->kind) {
    case LF_DOUBLE:
        *(double *)p = x;
        break;
    case LF_U64:
        *(uint64_t *)p = (uint64_t)x;
        break;
    case LF_INT: /* a positive request never rounds to "unset" */
        *(int *)p = x > 0 && x < 1 ? 1 : (int)(x + 0.5);
        break;
    case LF_LONG:
        *(long *)p = (long)x;
        break;
    }
}

/* 0 means "unset" on every side. */
static double smaller(double a, double b)
{
    if (a <= 0)
        return b;
    if (b <= 0)
        return a;
    return a < b ? a : b;
}

static const limit_field *find_limit(const char *name)
{
    for (size_t i = 0; i < sizeof LIMIT_FIELDS / sizeof *LIMIT_FIELDS; i++)
        if (!strcmp(LIMIT_FIELDS[i].name, name))
            return &LIMIT_FIELDS[i];
    return NULL;
}

static void report_clamp(cJSON *clamped, const char *name, double requested, double applied)
{
    if (!clamped)
        return;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "limit", name);
    cJSON_AddNumberToObject(c, "requested", requested);
    cJSON_AddNumberToObject(c, "applied", applied);
    cJSON_AddItemToArray(clamped, c);
}

int cm_policy_resolve_limits(const cm_policy_profile *prof, const cm_limits *base,
                             const cJSON *request, cm_limits *out, cJSON *clamped, cm_error *err)
{
    cm_limits allowed = *base;
    for (size_t i = 0; prof && i < sizeof LIMIT_FIELDS / sizeof *LIMIT_FIELDS; i++) {
        const limit_field *f = &LIMIT_FIELDS[i];
        set_field(&allowed, f, smaller(get_field(base, f), get_field(&prof->limits, f)));
    }
    *out = allowed;
    if (!request || cJSON_IsNull(request))
        return 0;
    if (!cJSON_IsObject(request))
        return cm_error_set(err, CM_ERR_INVALID_REQUEST, "limits: must be an object");
    for (const cJSON *it = request->child; it; it = it->next) {
        const limit_field *f = find_limit(it->string);
        if (!f)
            return cm_error_set(err, CM_ERR_INVALID_REQUEST, "limits.%.100s: unknown limit",
                                it->string);
        if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || !isfinite(it->valuedouble))
            return cm_error_set(err, CM_ERR_INVALID_REQUEST,
                                "limits.%.100s: must be a positive number", it->string);
        double cap = get_field(&allowed, f);
        if (cap > 0 && it->valuedouble > cap) {
            report_clamp(clamped, f->name, it->valuedouble, cap);
            continue;
        }
        set_field(out, f, it->valuedouble);
    }
    return 0;
}

bool cm_policy_tool_advertised(const cm_policy_profile *prof, const char *tool)
{
    if (!prof)
        return true;
    for (size_t i = 0; i < prof->nrules; i++)
        if (fnmatch(prof->rules[i].match, tool, 0) == 0)
            return prof->rules[i].allow;
    return false;
}
