/* session.c — the policy store the engine holds (current policy behind a
 * mutex, swapped atomically on reload; caller → profile mapping; audit log)
 * and the per-chain policy session: the chain's profile and limits, its
 * per-rule call counters, denial count and audit lines.  A chain keeps a
 * reference to the policy it started with, so a reload never changes the
 * rules under a running chain. */
#include "session.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "util.h"
#include "util.h"
#include "vars.h"

typedef struct caller {
    long uid, gid; /* -1: any */
    char *profile;
} caller;

struct cm_policy_store {
    pthread_mutex_t lock; /* guards current */
    cm_policy *current;
    char *file;
    char *default_profile; /* NULL: unknown peers refused */
    unsigned long loads;   /* guarded by lock: policies loaded (serial of the next) */
    caller *callers;
    size_t ncallers;
    int audit_fd;
};

struct cm_policy_chain {
    cm_policy_store *store;
    cm_policy *policy; /* referenced; NULL without a store */
    const cm_policy_profile *profile;
    pthread_mutex_t lock; /* guards calls, denials */
    cm_policy_calls calls;
    int denials;
    cm_limits limits;
    cJSON *clamped;
    char id[20];
    long uid, gid;
    int64_t start_us;
    unsigned long serial; /* the store's loads when the policy was current */
};

/* ---- engine.policy section ---------------------------------------------- */

static char *resolve(const char *dir, const char *path)
{
    if (path[0] == '/')
        return cm_xstrdup(path);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *out = cm_xmalloc(n);
    snprintf(out, n, "%s/%s", dir, path);
    return out;
}

static int id_field(const cJSON *c, const char *key, long *out, size_t i, cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    *out = -1;
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4294967294.0 ||
        v->valuedouble != (double)(long)v->valuedouble)
        return cm_error_set(err, CM_ERR_CONFIG, "engine.policy.callers[%zu].%s: must be an id", i,
                            key);
    *out = (long)v->valuedouble;
    return 0;
}

static int load_caller(const cJSON *c, size_t i, caller *out, cm_error *err)
{
    if (!cJSON_IsObject(c))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.policy.callers[%zu]: must be {uid|gid, profile}", i);
    for (const cJSON *k = c->child; k; k = k->next)
        if (strcmp(k->string, "uid") && strcmp(k->string, "gid") && strcmp(k->string, "profile"))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.policy.callers[%zu]: unknown key '%s'",
                                i, k->string);
    const char *profile = cm_json_str(c, "profile");
    if (!profile)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.policy.callers[%zu].profile: must be a string", i);
    if (id_field(c, "uid", &out->uid, i, err) < 0 || id_field(c, "gid", &out->gid, i, err) < 0)
        return -1;
    if (out->uid < 0 && out->gid < 0)
        return cm_error_set(err, CM_ERR_CONFIG, "engine.policy.callers[%zu]: needs uid or gid", i);
    out->profile = cm_xstrdup(profile);
    return 0;
}

static int load_section(cm_policy_store *s, const cJSON *sec, const char *base_dir, cm_error *err)
{
    if (!cJSON_IsObject(sec))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.policy: must be a mapping");
    for (const cJSON *k = sec->child; k; k = k->next)
        if (strcmp(k->string, "file") && strcmp(k->string, "audit_log") &&
            strcmp(k->string, "callers") && strcmp(k->string, "default_profile"))
            return cm_error_set(err, CM_ERR_CONFIG, "engine.policy: unknown key '%s'", k->string);
    const char *file = cm_json_str(sec, "file");
    if (!file || !file[0])
        return cm_error_set(err, CM_ERR_CONFIG, "engine.policy.file: must be a path");
    s->file = resolve(base_dir, file);
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(sec, "default_profile");
    if (def && !cJSON_IsNull(def) && !cJSON_IsString(def))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.policy.default_profile: must be a profile name or null");
    if (cJSON_IsString(def))
        s->default_profile = cm_xstrdup(def->valuestring);
    const char *audit = cm_json_str(sec, "audit_log");
    if (cJSON_GetObjectItemCaseSensitive(sec, "audit_log") && !audit)
        return cm_error_set(err, CM_ERR_CONFIG, "engine.policy.audit_log: must be a path");
    if (audit) {
        cm_autofree char *path = resolve(base_dir, audit);
        if (cm_audit_open(path, &s->audit_fd, err) < 0)
            return -1;
    }
    const cJSON *callers = cJSON_GetObjectItemCaseSensitive(sec, "callers");
    if (callers && !cJSON_IsArray(callers))
        return cm_error_set(err, CM_ERR_CONFIG, "engine.policy.callers: must be a list");
    s->ncallers = callers ? (size_t)cJSON_GetArraySize(callers) : 0;
    s->callers = cm_xcalloc(s->ncallers ? s->ncallers : 1, sizeof *s->callers);
    size_t i = 0;
    for (const cJSON *c = callers ? callers->child : NULL; c; c = c->next, i++)
        if (load_caller(c, i, &s->callers[i], err) < 0)
            return -1;
    return 0;
}

/* Every profile the mapping names must exist in the policy. */
static int check_mapping(const cm_policy_store *s, const cm_policy *p, cm_error *err)
{
    if (s->default_profile && !cm_policy_find_profile(p, s->default_profile))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "%s: no profile '%s' (engine.policy.default_profile)",
                            cm_policy_path(p), s->default_profile);
    for (size_t i = 0; i < s->ncallers; i++)
        if (!cm_policy_find_profile(p, s->callers[i].profile))
            return cm_error_set(err, CM_ERR_CONFIG,
                                "%s: no profile '%s' (engine.policy.callers[%zu])",
                                cm_policy_path(p), s->callers[i].profile, i);
    return 0;
}

int cm_policy_store_open(const cJSON *section, const char *base_dir, cm_policy_store **out,
                         cm_error *err)
{
    *out = NULL;
    if (!section)
        return 0;
    cm_policy_store *s = cm_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->audit_fd = -1;
    if (load_section(s, section, base_dir, err) < 0 ||
        cm_policy_load(s->file, &s->current, err) < 0 || check_mapping(s, s->current, err) < 0) {
        cm_policy_store_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void cm_policy_store_free(cm_policy_store *s)
{
    if (!s)
        return;
    cm_policy_unref(s->current);
    for (size_t i = 0; i < s->ncallers; i++)
        free(s->callers[i].profile);
    free(s->callers);
    free(s->file);
    free(s->default_profile);
    if (s->audit_fd >= 0)
        close(s->audit_fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int cm_policy_store_reload(cm_policy_store *s, cm_error *err)
{
    if (!s)
        return cm_error_set(err, CM_ERR_INVALID_REQUEST,
                            "no policy configured (engine.policy in the engine config)");
    cm_policy *fresh = NULL;
    if (cm_policy_load(s->file, &fresh, err) < 0)
        return -1;
    if (check_mapping(s, fresh, err) < 0) {
        cm_policy_unref(fresh);
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    cm_policy *old = s->current;
    s->loads++;
    s->current = fresh;
    pthread_mutex_unlock(&s->lock);
    cm_policy_unref(old);
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "event", "policy_reload");
    cJSON_AddStringToObject(line, "policy", s->file);
    cm_audit_write(s->audit_fd, line);
    return 0;
}

static cm_policy *current_policy(cm_policy_store *s)
{
    pthread_mutex_lock(&s->lock);
    cm_policy *p = s->current;
    cm_policy_ref(p);
    pthread_mutex_unlock(&s->lock);
    return p;
}

static const char *profile_for(const cm_policy_store *s, const struct ucred *peer)
{
    for (size_t i = 0; i < s->ncallers; i++) {
        const caller *c = &s->callers[i];
        if ((c->uid < 0 || c->uid == (long)peer->uid) && (c->gid < 0 || c->gid == (long)peer->gid))
            return c->profile;
    }
    return s->default_profile;
}

int cm_policy_store_peer_profile(cm_policy_store *s, const struct ucred *peer, char *name,
                                 size_t size, cm_error *err)
{
    if (!s) {
        snprintf(name, size, "%s", "");
        return 0;
    }
    const char *p = profile_for(s, peer);
    if (!p)
        return cm_error_set(err, CM_ERR_POLICY_DENIED,
                            "caller uid %ld gid %ld matches no policy profile (and there is no "
                            "default_profile)",
                            (long)peer->uid, (long)peer->gid);
    snprintf(name, size, "%s", p);
    return 0;
}

int cm_policy_store_acquire(cm_policy_store *s, const struct ucred *peer, cm_policy **policy,
                            const cm_policy_profile **profile, cm_error *err)
{
    char name[256];
    if (cm_policy_store_peer_profile(s, peer, name, sizeof name, err) < 0)
        return -1;
    *policy = current_policy(s);
    *profile = cm_policy_find_profile(*policy, name);
    if (*profile)
        return 0;
    cm_policy_unref(*policy); /* check_mapping makes this unreachable; stay safe */
    *policy = NULL;
    return cm_error_set(err, CM_ERR_POLICY_DENIED, "policy has no profile '%s'", name);
}

int cm_policy_store_audit_fd(const cm_policy_store *s)
{
    return s ? s->audit_fd : -1;
}

/* ---- chain sessions -------------------------------------------------------- */

static void make_chain_id(char *id, size_t size)
{
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    snprintf(id, size, "c%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7]);
}

static cJSON *limits_json(const cm_limits *l)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "timeout_s", l->timeout_s);
    cJSON_AddNumberToObject(j, "memory_mb", (double)(l->memory_bytes >> 20));
    cJSON_AddNumberToObject(j, "cpu", l->cpu_quota_pct / 100.0);
    cJSON_AddNumberToObject(j, "cpu_shares", (double)l->cpu_shares);
    cJSON_AddNumberToObject(j, "pids", (double)l->pids_max);
    cJSON_AddNumberToObject(j, "max_tool_calls", (double)l->max_tool_calls);
    cJSON_AddNumberToObject(j, "max_output_bytes", (double)l->max_output_bytes);
    cJSON_AddNumberToObject(j, "max_result_bytes", (double)l->max_result_bytes);
    return j;
}

static cJSON *chain_line(const cm_policy_chain *pc, const char *event)
{
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "event", event);
    cJSON_AddStringToObject(line, "chain", pc->id);
    cJSON_AddNumberToObject(line, "uid", (double)pc->uid);
    cJSON_AddNumberToObject(line, "gid", (double)pc->gid);
    cJSON_AddStringToObject(line, "profile", pc->profile ? cm_profile_name(pc->profile) : "");
    return line;
}

static void audit(const cm_policy_chain *pc, cJSON *line)
{
    cm_audit_write(pc->store ? pc->store->audit_fd : -1, line);
}

static int attach_profile(cm_policy_chain *pc, cm_policy_store *s, const struct ucred *peer,
                          cm_error *err)
{
    if (cm_policy_store_acquire(s, peer, &pc->policy, &pc->profile, err) < 0)
        return -1;
    pthread_mutex_lock(&s->lock);
    pc->serial = s->current == pc->policy ? s->loads : CM_POLICY_SERIAL_UNKNOWN;
    pthread_mutex_unlock(&s->lock);
    pc->calls.nrules = cm_profile_rule_count(pc->profile);
    pc->calls.per_rule = cm_xcalloc(pc->calls.nrules ? pc->calls.nrules : 1, sizeof(int));
    return 0;
}

static void free_session(cm_policy_chain *pc)
{
    cm_policy_unref(pc->policy);
    free(pc->calls.per_rule);
    cJSON_Delete(pc->clamped);
    pthread_mutex_destroy(&pc->lock);
    free(pc);
}

int cm_policy_chain_begin(cm_policy_store *s, const struct ucred *peer, const cm_limits *base,
                          const cJSON *request_limits, cm_policy_chain **out, cm_error *err)
{
    cm_policy_chain *pc = cm_xcalloc(1, sizeof *pc);
    pthread_mutex_init(&pc->lock, NULL);
    pc->store = s;
    pc->uid = peer ? (long)peer->uid : -1;
    pc->gid = peer ? (long)peer->gid : -1;
    pc->start_us = cm_now_us();
    pc->clamped = cJSON_CreateArray();
    make_chain_id(pc->id, sizeof pc->id);
    if (s && attach_profile(pc, s, peer, err) < 0) {
        free_session(pc);
        return -1;
    }
    if (cm_policy_resolve_limits(pc->profile, base, request_limits, &pc->limits, pc->clamped, err) <
        0) {
        free_session(pc);
        return -1;
    }
    if (s) {
        cJSON *line = chain_line(pc, "chain_start");
        cJSON_AddItemToObject(line, "limits", limits_json(&pc->limits));
        cJSON_AddItemToObject(line, "clamped", cJSON_Duplicate(pc->clamped, 1));
        audit(pc, line);
    }
    *out = pc;
    return 0;
}

cm_limits *cm_policy_chain_limits(cm_policy_chain *pc)
{
    return &pc->limits;
}

const cJSON *cm_policy_chain_imports(const cm_policy_chain *pc)
{
    return pc->profile ? cm_profile_imports(pc->profile) : NULL;
}

static cJSON *call_line(const cm_policy_chain *pc, const char *tool, const cJSON *args,
                        const cm_decision *d)
{
    cJSON *line = chain_line(pc, "decision");
    cJSON_AddStringToObject(line, "tool", tool);
    cJSON_AddStringToObject(line, "decision", d->allow ? "allow" : "deny");
    cJSON_AddStringToObject(line, "rule", d->rule);
    cJSON_AddStringToObject(line, "reason", d->reason);
    cJSON_AddNumberToObject(line, "decision_us", (double)d->decision_ns / 1000.0);
    cJSON_AddItemToObject(line, "args", cm_audit_args(args, d->audit_args));
    return line;
}

static void decide_locked(cm_policy_chain *pc, const char *tool, const char *manual,
                          const char *owner, const cJSON *tmpl, const cJSON *args, cm_decision *d)
{
    cm_policy_decide(pc->policy, pc->profile, &pc->calls, tool, args, d, NULL);
    if (!d->allow || !manual)
        return;
    bool audit_args = d->audit_args;
    cm_autojson cJSON *names = cJSON_CreateArray();
    cm_vars_required(tmpl, names);
    cm_decision v;
    cm_policy_check_variables(pc->policy, manual, owner, names, &v);
    if (!v.allow) {
        *d = v;
        d->audit_args = audit_args;
    }
}

int cm_policy_chain_authorize(cm_policy_chain *pc, const char *tool, const char *manual,
                              const char *owner, const cJSON *tmpl, const cJSON *args,
                              cm_decision *d, cm_error *err)
{
    if (!pc->policy) {
        memset(d, 0, sizeof *d);
        d->allow = true;
        return 0;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_mutex_lock(&pc->lock);
    decide_locked(pc, tool, manual, owner, tmpl, args, d);
    if (!d->allow)
        pc->denials++;
    pthread_mutex_unlock(&pc->lock);
    clock_gettime(CLOCK_MONOTONIC, &b);
    d->decision_ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
    if (d->allow)
        return 0;
    cJSON *line = call_line(pc, tool, args, d);
    cJSON_AddNumberToObject(line, "bytes_in", 0);
    cJSON_AddNumberToObject(line, "bytes_out", 0);
    audit(pc, line);
    return cm_error_set(err, CM_ERR_POLICY_DENIED, "policy denied %s by rule '%s': %s", tool,
                        d->rule, d->reason);
}

void cm_policy_chain_audit_call(cm_policy_chain *pc, const char *tool, const cJSON *args,
                                const cm_decision *d, int64_t call_us, size_t bytes_in,
                                size_t bytes_out, const cm_error *call_err)
{
    if (!pc->policy)
        return;
    cJSON *line = call_line(pc, tool, args, d);
    cJSON_AddNumberToObject(line, "duration_ms", (double)call_us / 1000.0);
    cJSON_AddNumberToObject(line, "bytes_in", (double)bytes_in);
    cJSON_AddNumberToObject(line, "bytes_out", (double)bytes_out);
    cJSON_AddStringToObject(line, "outcome", call_err ? cm_errkind_name(call_err->kind) : "ok");
    audit(pc, line);
}

bool cm_policy_chain_audits(const cm_policy_chain *pc)
{
    return pc->policy && pc->store && pc->store->audit_fd >= 0;
}

void cm_policy_chain_end(cm_policy_chain *pc, cJSON *response)
{
    cJSON *stats = cJSON_GetObjectItemCaseSensitive(response, "stats");
    if (stats) {
        cJSON_AddNumberToObject(stats, "policy_denials", pc->denials);
        if (pc->profile)
            cJSON_AddStringToObject(stats, "profile", cm_profile_name(pc->profile));
        cJSON_AddItemToObject(stats, "limits", limits_json(&pc->limits));
        if (cJSON_GetArraySize(pc->clamped))
            cJSON_AddItemToObject(stats, "clamped", cJSON_Duplicate(pc->clamped, 1));
    }
    if (pc->policy) {
        cJSON *line = chain_line(pc, "chain_end");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(response, "error");
        const char *kind = cm_json_str(e, "kind");
        cJSON_AddStringToObject(line, "outcome", kind ? kind : "ok");
        cJSON_AddNumberToObject(line, "duration_ms", (double)(cm_now_us() - pc->start_us) / 1e3);
        if (stats)
            cJSON_AddItemToObject(line, "stats", cJSON_Duplicate(stats, 1));
        audit(pc, line);
    }
    free_session(pc);
}

unsigned long cm_policy_chain_serial(const cm_policy_chain *pc)
{
    return pc ? pc->serial : 0;
}

const cm_policy_profile *cm_policy_chain_profile(const cm_policy_chain *pc)
{
    return pc ? pc->profile : NULL;
}
