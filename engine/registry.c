/* registry.c — the registered manuals and their tools (see registry.h).
 * It is the single owner of UTCP manual validation at registration time and
 * of the Python access names chains use, so the sandbox, search, interface
 * generation and dispatch all agree on one name for each tool.  Unlike the
 * references it handles keywords and collisions, and reports every rename. */
#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "pyiface.h"
#include "search.h"
#include "util.h"

#define MAX_TOOL_NAME 128

typedef struct reg_tool {
    char *name;        /* qualified UTCP name "manual.tool" */
    char *access_tool; /* tool part of the access name */
    char *access_name; /* "access_manual.access_tool" */
    cJSON *def;        /* normalized definition (name qualified) */
    cm_search_doc doc;
    const struct reg_manual *manual; /* back-pointer: visibility by owner */
    cm_pyiface_tool_text iface; /* Python interface parts (pyiface.h), cached with the manual */
} reg_tool;

typedef struct reg_manual {
    char *name;
    char *owner; /* registering profile; NULL: the engine (config) */
    char *access;
    cJSON *call_template;
    reg_tool *tools;
    size_t ntools;
} reg_manual;

struct cm_registry {
    pthread_rwlock_t lock;
    reg_manual **manuals; /* registration order */
    size_t n, cap;
    /* search index: built on the first search after a change (under
     * index_lock, inside the read lock); dropped under the write lock */
    pthread_mutex_t index_lock;
    cm_search_index *index;
    const reg_tool **index_tools;
    /* bumped by every change (under the write lock): what was built from
     * the registry (a chain's tool table, engine/chain_tools.c) is valid
     * while it is unchanged */
    atomic_ulong gen;
};

/* ---- names --------------------------------------------------------------- */

static const char *const PY_KEYWORDS[] = {
    "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",
};

/* Globals a chain already has: a manual must not shadow them. */
static const char *const CHAIN_GLOBALS[] = {
    "asyncio", "json",        "math",         "re",         "time",         "datetime",
    "typing",  "collections", "itertools",    "functools",  "operator",     "uuid",
    "print",   "ToolError",   "PolicyDenied", "interfaces", "search_tools", "get_tool_interface",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

static bool is_py_keyword(const char *s)
{
    return in_list(s, PY_KEYWORDS, sizeof PY_KEYWORDS / sizeof PY_KEYWORDS[0]);
}

static bool is_chain_global(const char *s)
{
    return in_list(s, CHAIN_GLOBALS, sizeof CHAIN_GLOBALS / sizeof CHAIN_GLOBALS[0]);
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

char *cm_manual_name_sanitize(const char *name)
{
    char *out = cm_xstrdup(name);
    for (char *p = out; *p; p++)
        if (!ident_char(*p))
            *p = '_';
    return out;
}

/* [^A-Za-z0-9_] → '_', leading digit → '_' prefix, empty → '_'. */
static char *sanitize_part(const char *part, size_t len)
{
    char *out = cm_xmalloc(len + 2);
    size_t o = 0;
    if (len == 0 || (part[0] >= '0' && part[0] <= '9'))
        out[o++] = '_';
    for (size_t i = 0; i < len; i++)
        out[o++] = ident_char(part[i]) ? part[i] : '_';
    out[o] = '\0';
    return out;
}

static char *append_suffix(char *s, const char *suffix)
{
    size_t n = strlen(s) + strlen(suffix) + 1;
    char *out = cm_xmalloc(n);
    snprintf(out, n, "%s%s", s, suffix);
    free(s);
    return out;
}

char *cm_access_ident(const char *part, const char **renamed)
{
    char *id = sanitize_part(part, strlen(part));
    *renamed = strcmp(id, part) ? "sanitized" : NULL;
    if (is_py_keyword(id)) {
        id = append_suffix(id, "_");
        *renamed = "keyword";
    }
    return id;
}

/* Tool part of an access name: the parts of the qualified name after the
 * first '.', each sanitized, joined with '_'; a keyword gets '_'. */
static char *tool_access_ident(const char *qualified, const char **renamed)
{
    const char *rest = strchr(qualified, '.');
    rest = rest ? rest + 1 : qualified;
    cm_buf b = {0};
    *renamed = NULL;
    for (;;) {
        const char *dot = strchr(rest, '.');
        size_t len = dot ? (size_t)(dot - rest) : strlen(rest);
        cm_autofree char *part = sanitize_part(rest, len);
        if (strlen(part) != len || memcmp(part, rest, len) != 0)
            *renamed = "sanitized";
        if ((b.len && cm_buf_append(&b, "_", 1, NULL) < 0) ||
            cm_buf_append(&b, part, strlen(part), NULL) < 0)
            abort();
        if (!dot)
            break;
        rest = dot + 1;
    }
    if (is_py_keyword(b.data)) {
        b.data = append_suffix(b.data, "_");
        *renamed = "keyword";
    }
    return b.data;
}

/* ---- a small string set (collision checks stay linear) -------------------- */

typedef struct strset {
    const char **slots;
    size_t cap, n;
} strset;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void strset_init(strset *s, size_t expected)
{
    s->cap = 16;
    while (s->cap < expected * 2 + 1)
        s->cap *= 2;
    s->slots = cm_xcalloc(s->cap, sizeof *s->slots);
    s->n = 0;
}

static bool strset_has(const strset *s, const char *key)
{
    for (size_t i = hash_str(key) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i])
            return false;
        if (!strcmp(s->slots[i], key))
            return true;
    }
}

/* Keys are borrowed; the set never grows past the size it was made for
 * plus headroom, so callers size it with the number of keys. */
static void strset_add(strset *s, const char *key)
{
    size_t i = hash_str(key) & (s->cap - 1);
    while (s->slots[i])
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = key;
    s->n++;
}

static void strset_free(strset *s)
{
    free(s->slots);
    s->slots = NULL;
}

/* Appends _2, _3, … until the name is not in the set. */
static char *dedupe_name(char *base, const strset *taken, bool *changed)
{
    *changed = false;
    if (!strset_has(taken, base))
        return base;
    *changed = true;
    size_t n = strlen(base) + 24;
    char *candidate = cm_xmalloc(n);
    for (unsigned k = 2;; k++) {
        snprintf(candidate, n, "%s_%u", base, k);
        if (!strset_has(taken, candidate))
            break;
    }
    free(base);
    return candidate;
}

/* ---- manual validation ------------------------------------------------- */

static void free_tool(reg_tool *t)
{
    cm_pyiface_tool_text_free(&t->iface);
    free(t->name);
    free(t->access_tool);
    free(t->access_name);
    cJSON_Delete(t->def);
    cm_search_doc_free(&t->doc);
}

static void free_manual(reg_manual *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->ntools; i++)
        free_tool(&m->tools[i]);
    free(m->tools);
    free(m->name);
    free(m->owner);
    free(m->access);
    cJSON_Delete(m->call_template);
    free(m);
}

static int check_optional_string(const cJSON *obj, const char *key, cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v && !cJSON_IsString(v))
        return cm_error_set(err, CM_ERR_CONFIG, "%s: must be a string", key);
    return 0;
}

/* Allowed protocols: allowed_communication_protocols, else the manual's own type. */
static int allowed_protocols(const cJSON *call_template, const cJSON **list, const char **own,
                             cm_error *err)
{
    *own = cm_json_str(call_template, "call_template_type");
    *list = cJSON_GetObjectItemCaseSensitive(call_template, "allowed_communication_protocols");
    if (*list && !cJSON_IsNull(*list)) {
        if (!cJSON_IsArray(*list))
            return cm_error_set(err, CM_ERR_CONFIG,
                                "allowed_communication_protocols: must be an array of strings");
        const cJSON *p;
        cJSON_ArrayForEach(p, *list)
        {
            if (!cJSON_IsString(p))
                return cm_error_set(err, CM_ERR_CONFIG,
                                    "allowed_communication_protocols: must be an array of strings");
        }
        return 0;
    }
    *list = NULL;
    if (!*own)
        return cm_error_set(err, CM_ERR_CONFIG, "call_template_type: missing");
    return 0;
}

static bool protocol_allowed(const cJSON *list, const char *own, const char *type)
{
    if (!list)
        return !strcmp(own, type);
    const cJSON *p;
    cJSON_ArrayForEach(p, list)
    {
        if (!strcmp(p->valuestring, type))
            return true;
    }
    return false;
}

static int copy_object_field(const cJSON *tool, cJSON *def, const char *key, size_t i,
                             cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tool, key);
    if (v && !cJSON_IsNull(v) && !cJSON_IsObject(v))
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].%s: must be an object", i, key);
    cJSON_AddItemToObject(def, key,
                          v && cJSON_IsObject(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateObject());
    return 0;
}

static int copy_tags(const cJSON *tool, cJSON *def, size_t i, cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tool, "tags");
    if (!v || cJSON_IsNull(v)) {
        cJSON_AddItemToObject(def, "tags", cJSON_CreateArray());
        return 0;
    }
    if (!cJSON_IsArray(v))
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].tags: must be an array of strings", i);
    size_t k = 0;
    const cJSON *tag;
    cJSON_ArrayForEach(tag, v)
    {
        if (!cJSON_IsString(tag))
            return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].tags[%zu]: must be a string", i, k);
        k++;
    }
    cJSON_AddItemToObject(def, "tags", cJSON_Duplicate(v, 1));
    return 0;
}

static int copy_description(const cJSON *tool, cJSON *def, size_t i, cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tool, "description");
    if (v && !cJSON_IsNull(v) && !cJSON_IsString(v))
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].description: must be a string", i);
    cJSON_AddStringToObject(def, "description", cJSON_IsString(v) ? v->valuestring : "");
    return 0;
}

static int copy_average_response_size(const cJSON *tool, cJSON *def, size_t i, cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tool, "average_response_size");
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "tools[%zu].average_response_size: must be a number", i);
    cJSON_AddNumberToObject(def, "average_response_size", v->valuedouble);
    return 0;
}

static int copy_tool_call_template(const cJSON *tool, cJSON *def, size_t i, const cJSON *allowed,
                                   const char *own, cm_error *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(tool, "tool_call_template");
    if (!t)
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].tool_call_template: missing", i);
    if (!cJSON_IsObject(t))
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].tool_call_template: must be an object",
                            i);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "call_template_type");
    if (!type)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "tools[%zu].tool_call_template.call_template_type: missing", i);
    if (!cJSON_IsString(type))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "tools[%zu].tool_call_template.call_template_type: must be a string",
                            i);
    if (!protocol_allowed(allowed, own, type->valuestring))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "tools[%zu].tool_call_template.call_template_type: protocol '%s' "
                            "not allowed for this manual",
                            i, type->valuestring);
    cJSON_AddItemToObject(def, "tool_call_template", cJSON_Duplicate(t, 1));
    return 0;
}

static char *qualify_name(const char *manual, const char *tool)
{
    size_t mlen = strlen(manual);
    if (!strncmp(tool, manual, mlen) && tool[mlen] == '.')
        return cm_xstrdup(tool);
    size_t n = mlen + strlen(tool) + 2;
    char *out = cm_xmalloc(n);
    snprintf(out, n, "%s.%s", manual, tool);
    return out;
}

static int tool_name(const cJSON *tool, const char *manual, size_t i, char **out, cm_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tool, "name");
    if (!v)
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].name: missing", i);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].name: must be a non-empty string", i);
    char *q = qualify_name(manual, v->valuestring);
    if (strlen(q) > MAX_TOOL_NAME) {
        free(q);
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu].name: longer than %d characters", i,
                            MAX_TOOL_NAME);
    }
    *out = q;
    return 0;
}

/* Validates tools[i] and fills t (name + normalized def + search index). */
static int build_tool(const cJSON *tool, size_t i, const char *manual, const cJSON *allowed,
                      const char *own, reg_tool *t, cm_error *err)
{
    if (!cJSON_IsObject(tool))
        return cm_error_set(err, CM_ERR_CONFIG, "tools[%zu]: must be an object", i);
    if (tool_name(tool, manual, i, &t->name, err) < 0)
        return -1;
    t->def = cJSON_CreateObject();
    cJSON_AddStringToObject(t->def, "name", t->name);
    if (copy_description(tool, t->def, i, err) < 0 ||
        copy_object_field(tool, t->def, "inputs", i, err) < 0 ||
        copy_object_field(tool, t->def, "outputs", i, err) < 0 ||
        copy_tags(tool, t->def, i, err) < 0 ||
        copy_average_response_size(tool, t->def, i, err) < 0 ||
        copy_tool_call_template(tool, t->def, i, allowed, own, err) < 0)
        return -1;
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(t->def, "tool_call_template");
    cm_search_text text = {
        .name = t->name,
        .tags = cJSON_GetObjectItemCaseSensitive(t->def, "tags"),
        .description = cm_json_str(t->def, "description"),
        .path = cm_json_str(tmpl, "url"),
        .params = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(t->def, "inputs"), "properties"),
    };
    cm_search_doc_build(&t->doc, &text);
    return 0;
}

static int compare_tool_names(const void *a, const void *b)
{
    return strcmp((*(reg_tool *const *)a)->name, (*(reg_tool *const *)b)->name);
}

static int check_duplicate_tools(const reg_manual *m, cm_error *err)
{
    if (m->ntools < 2)
        return 0;
    cm_autofree reg_tool **sorted = cm_xcalloc(m->ntools, sizeof *sorted);
    for (size_t i = 0; i < m->ntools; i++)
        sorted[i] = &m->tools[i];
    qsort(sorted, m->ntools, sizeof *sorted, compare_tool_names);
    for (size_t i = 1; i < m->ntools; i++)
        if (!strcmp(sorted[i - 1]->name, sorted[i]->name))
            return cm_error_set(err, CM_ERR_CONFIG, "duplicate tool name '%s'", sorted[i]->name);
    return 0;
}

static int validate_manual_header(const cJSON *manual, const cJSON **tools, cm_error *err)
{
    if (!cJSON_IsObject(manual))
        return cm_error_set(err, CM_ERR_CONFIG, "manual must be a JSON object");
    if (check_optional_string(manual, "utcp_version", err) < 0 ||
        check_optional_string(manual, "manual_version", err) < 0)
        return -1;
    *tools = cJSON_GetObjectItemCaseSensitive(manual, "tools");
    if (!*tools)
        return cm_error_set(err, CM_ERR_CONFIG, "tools: missing");
    if (!cJSON_IsArray(*tools))
        return cm_error_set(err, CM_ERR_CONFIG, "tools: must be an array");
    return 0;
}

/* Builds the manual outside the lock: everything but the access names. */
static int build_manual(const cJSON *call_template, const cJSON *manual, reg_manual **out,
                        cm_error *err)
{
    const char *name = cm_json_str(call_template, "name");
    if (!cJSON_IsObject(call_template) || !name || !name[0])
        return cm_error_set(err, CM_ERR_CONFIG, "manual call template: name missing");
    const cJSON *tools = NULL, *allowed = NULL;
    const char *own = NULL;
    if (validate_manual_header(manual, &tools, err) < 0 ||
        allowed_protocols(call_template, &allowed, &own, err) < 0)
        return cm_error_prefix(err, "manual '%s'", name);
    reg_manual *m = cm_xcalloc(1, sizeof *m);
    m->name = cm_xstrdup(name);
    m->call_template = cJSON_Duplicate(call_template, 1);
    m->tools = cm_xcalloc((size_t)cJSON_GetArraySize(tools) + 1, sizeof *m->tools);
    size_t i = 0;
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools)
    {
        m->ntools++;
        if (build_tool(tool, i++, name, allowed, own, &m->tools[m->ntools - 1], err) < 0)
            goto fail;
    }
    if (check_duplicate_tools(m, err) < 0)
        goto fail;
    for (size_t k = 0; k < m->ntools; k++)
        m->tools[k].manual = m;
    *out = m;
    return 0;
fail:
    free_manual(m);
    return cm_error_prefix(err, "manual '%s'", name);
}

/* ---- access names -------------------------------------------------------- */

static void report_rename(cJSON *renamed, const char *name, const char *access, const char *why)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "access", access);
    cJSON_AddStringToObject(e, "reason", why);
    cJSON_AddItemToArray(renamed, e);
}

/* Caller holds the write lock (collisions are against registered manuals). */
static void assign_manual_access(cm_registry *r, reg_manual *m, cJSON *renamed)
{
    const char *why;
    char *access = cm_access_ident(m->name, &why);
    if (is_chain_global(access)) {
        access = append_suffix(access, "_");
        why = "reserved";
    }
    strset taken;
    strset_init(&taken, r->n);
    for (size_t i = 0; i < r->n; i++)
        strset_add(&taken, r->manuals[i]->access);
    bool collided;
    m->access = dedupe_name(access, &taken, &collided);
    strset_free(&taken);
    if (collided)
        why = "collision";
    if (why)
        report_rename(renamed, m->name, m->access, why);
}

static void assign_tool_access(reg_manual *m, cJSON *renamed)
{
    strset taken;
    strset_init(&taken, m->ntools);
    for (size_t i = 0; i < m->ntools; i++) {
        reg_tool *t = &m->tools[i];
        const char *why;
        bool collided;
        t->access_tool = dedupe_name(tool_access_ident(t->name, &why), &taken, &collided);
        strset_add(&taken, t->access_tool);
        if (collided)
            why = "collision";
        size_t n = strlen(m->access) + strlen(t->access_tool) + 2;
        t->access_name = cm_xmalloc(n);
        snprintf(t->access_name, n, "%s.%s", m->access, t->access_tool);
        if (why)
            report_rename(renamed, t->name, t->access_name, why);
    }
    strset_free(&taken);
}

/* Python interfaces are generated once per manual, when it is registered
 * (access names known); re-registering a manual regenerates them. */
static void generate_interfaces(reg_manual *m)
{
    cm_pyiface_manual *pm = cm_pyiface_manual_new(m->access);
    for (size_t i = 0; i < m->ntools; i++)
        cm_pyiface_tool(pm, m->tools[i].access_tool, m->tools[i].def, &m->tools[i].iface);
    cm_pyiface_manual_free(pm);
}

static cJSON *make_report(const reg_manual *m, cJSON *renamed)
{
    cJSON *rep = cJSON_CreateObject();
    cJSON_AddStringToObject(rep, "manual_name", m->name);
    cJSON *names = cJSON_AddArrayToObject(rep, "tools");
    for (size_t i = 0; i < m->ntools; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(m->tools[i].name));
    cJSON_AddItemToObject(rep, "renamed", renamed);
    return rep;
}

/* ---- registry ------------------------------------------------------------- */

int cm_registry_new(cm_registry **out, cm_error *err)
{
    cm_registry *r = cm_xcalloc(1, sizeof *r);
    int rc = pthread_rwlock_init(&r->lock, NULL);
    if (rc != 0) {
        free(r);
        return cm_error_set(err, CM_ERR_INTERNAL, "pthread_rwlock_init: %s", strerror(rc));
    }
    pthread_mutex_init(&r->index_lock, NULL);
    *out = r;
    return 0;
}

/* Caller holds the write lock. */
static void drop_index(cm_registry *r)
{
    cm_search_index_free(r->index);
    free(r->index_tools);
    r->index = NULL;
    r->index_tools = NULL;
}

void cm_registry_free(cm_registry *r)
{
    if (!r)
        return;
    drop_index(r);
    pthread_mutex_destroy(&r->index_lock);
    for (size_t i = 0; i < r->n; i++)
        free_manual(r->manuals[i]);
    free(r->manuals);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

static ssize_t find_manual(const cm_registry *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->manuals[i]->name, name))
            return (ssize_t)i;
    return -1;
}

static void append_manual(cm_registry *r, reg_manual *m)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->manuals = realloc(r->manuals, r->cap * sizeof *r->manuals);
        if (!r->manuals)
            abort();
    }
    r->manuals[r->n++] = m;
}

/* The one visibility rule (registry.h): a view sees the engine's manuals,
 * its owner's, or everything. */
static bool visible(const cm_registry_view *v, const reg_manual *m)
{
    return !v || v->all || !m->owner || (v->owner && !strcmp(m->owner, v->owner));
}

int cm_registry_add(cm_registry *r, const cJSON *call_template, const cJSON *manual,
                    const char *owner, cJSON **report, cm_error *err)
{
    reg_manual *m = NULL;
    if (report)
        *report = NULL;
    if (build_manual(call_template, manual, &m, err) < 0)
        return -1;
    m->owner = owner ? cm_xstrdup(owner) : NULL;
    cJSON *renamed = cJSON_CreateArray();
    pthread_rwlock_wrlock(&r->lock);
    if (find_manual(r, m->name) >= 0) {
        pthread_rwlock_unlock(&r->lock);
        cm_error_set(err, CM_ERR_CONFIG, "manual '%s' is already registered", m->name);
        free_manual(m);
        cJSON_Delete(renamed);
        return -1;
    }
    assign_manual_access(r, m, renamed);
    assign_tool_access(m, renamed);
    generate_interfaces(m);
    append_manual(r, m);
    drop_index(r);
    atomic_fetch_add(&r->gen, 1);
    cJSON *rep = report ? make_report(m, renamed) : NULL;
    pthread_rwlock_unlock(&r->lock);
    if (report)
        *report = rep;
    else
        cJSON_Delete(renamed);
    return 0;
}

int cm_registry_owner(cm_registry *r, const char *manual_name, char **owner)
{
    pthread_rwlock_rdlock(&r->lock);
    ssize_t i = find_manual(r, manual_name);
    if (i >= 0 && owner)
        *owner = r->manuals[i]->owner ? cm_xstrdup(r->manuals[i]->owner) : NULL;
    pthread_rwlock_unlock(&r->lock);
    return i >= 0;
}

int cm_registry_remove(cm_registry *r, const cm_registry_view *view, const char *manual_name,
                       cm_error *err)
{
    pthread_rwlock_wrlock(&r->lock);
    ssize_t i = find_manual(r, manual_name);
    reg_manual *m = NULL;
    if (i >= 0 && visible(view, r->manuals[i])) {
        m = r->manuals[i];
        memmove(&r->manuals[i], &r->manuals[i + 1], (r->n - (size_t)i - 1) * sizeof *r->manuals);
        r->n--;
        drop_index(r);
        atomic_fetch_add(&r->gen, 1);
    }
    pthread_rwlock_unlock(&r->lock);
    if (!m)
        return cm_error_set(err, CM_ERR_NOT_FOUND, "manual '%s' is not registered", manual_name);
    free_manual(m);
    return 0;
}

cJSON *cm_registry_chain_tools(cm_registry *r, const cm_registry_view *view)
{
    cJSON *out = cJSON_CreateArray();
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        const reg_manual *m = r->manuals[i];
        if (!visible(view, m))
            continue;
        for (size_t k = 0; k < m->ntools; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", m->tools[k].name);
            cJSON_AddStringToObject(e, "manual", m->name);
            cJSON_AddStringToObject(e, "access_manual", m->access);
            cJSON_AddStringToObject(e, "access_tool", m->tools[k].access_tool);
            const cm_pyiface_tool_text *x = &m->tools[k].iface;
            cJSON_AddStringToObject(e, "iface_classes", x->classes);
            cJSON_AddStringToObject(e, "iface_method", x->method);
            cJSON_AddStringToObject(e, "iface_signature", x->signature);
            cJSON_AddStringToObject(e, "iface_summary", x->summary);
            cJSON_AddItemToArray(out, e);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return out;
}

static int compare_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

unsigned long cm_registry_generation(cm_registry *r)
{
    return atomic_load(&r->gen);
}

cJSON *cm_registry_access_names(cm_registry *r, const cm_registry_view *view)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t total = 0;
    for (size_t i = 0; i < r->n; i++)
        total += r->manuals[i]->ntools;
    cm_autofree const char **names = cm_xcalloc(total ? total : 1, sizeof *names);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        for (size_t j = 0; j < r->manuals[i]->ntools && visible(view, r->manuals[i]); j++)
            names[k++] = r->manuals[i]->tools[j].access_name;
    total = k;
    if (total)
        qsort(names, total, sizeof *names, compare_cstr);
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; i < total; i++)
        cJSON_AddItemToArray(out, cJSON_CreateString(names[i]));
    pthread_rwlock_unlock(&r->lock);
    return out;
}

static bool has_prefix_dot(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(name, prefix, n) && name[n] == '.';
}

/* Caller holds the lock.  UTCP name first, then access name. */
static const reg_tool *find_tool(const cm_registry *r, const cm_registry_view *view,
                                 const char *name, const reg_manual **owner)
{
    for (size_t i = 0; i < r->n; i++) {
        const reg_manual *m = r->manuals[i];
        if (!has_prefix_dot(name, m->name) || !visible(view, m))
            continue;
        for (size_t k = 0; k < m->ntools; k++)
            if (!strcmp(m->tools[k].name, name)) {
                *owner = m;
                return &m->tools[k];
            }
    }
    for (size_t i = 0; i < r->n; i++) {
        const reg_manual *m = r->manuals[i];
        if (!has_prefix_dot(name, m->access) || !visible(view, m))
            continue;
        const char *part = name + strlen(m->access) + 1;
        for (size_t k = 0; k < m->ntools; k++)
            if (!strcmp(m->tools[k].access_tool, part)) {
                *owner = m;
                return &m->tools[k];
            }
    }
    return NULL;
}

int cm_registry_lookup(cm_registry *r, const cm_registry_view *view, const char *name, cJSON **tool,
                       char **manual_name, char **owner, cm_error *err)
{
    const reg_manual *m = NULL;
    pthread_rwlock_rdlock(&r->lock);
    const reg_tool *t = find_tool(r, view, name, &m);
    if (t) {
        if (tool) {
            *tool = cJSON_Duplicate(t->def, 1);
            cJSON_AddStringToObject(*tool, "access_name", t->access_name);
        }
        if (manual_name)
            *manual_name = cm_xstrdup(m->name);
        if (owner)
            *owner = m->owner ? cm_xstrdup(m->owner) : NULL;
    }
    pthread_rwlock_unlock(&r->lock);
    if (!t)
        return cm_error_set(err, CM_ERR_NOT_FOUND, "unknown tool '%s'", name);
    return 0;
}

/* ---- search ----------------------------------------------------------------- */

typedef struct ranked {
    const reg_tool *tool;
    double score;
} ranked;

static int compare_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return strcmp(x->tool->name, y->tool->name);
}

/* Scores are >= 0; rounding by hand keeps libm out of the link. */
static double round4(double x)
{
    return (double)(long long)(x * 10000.0 + 0.5) / 10000.0;
}

/* full: the definition's parts (the reference libraries' shape); else what
 * an agent needs to choose (issue 20): the access name, a one-line
 * signature (without the access name again: "(owner: str, ...) -> T") and
 * the first sentence of the description. */
static cJSON *search_entry(const ranked *rk, bool full)
{
    const cJSON *def = rk->tool->def;
    cJSON *e = cJSON_CreateObject();
    if (!full) {
        cJSON_AddStringToObject(e, "access_name", rk->tool->access_name);
        const char *sig = rk->tool->iface.signature; /* "<access_name>(...) -> T" */
        size_t an = strlen(rk->tool->access_name);
        cJSON_AddStringToObject(e, "signature",
                                strncmp(sig, rk->tool->access_name, an) ? sig : sig + an);
        if (rk->tool->iface.summary[0]) /* none when it would only repeat the name */
            cJSON_AddStringToObject(e, "summary", rk->tool->iface.summary);
        return e;
    }
    cJSON_AddStringToObject(e, "name", rk->tool->name);
    cJSON_AddStringToObject(e, "access_name", rk->tool->access_name);
    cJSON_AddStringToObject(e, "description", cm_json_str(def, "description"));
    static const char *const copied[] = {"tags", "inputs", "outputs"};
    for (size_t i = 0; i < 3; i++)
        cJSON_AddItemToObject(e, copied[i],
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(def, copied[i]), 1));
    cJSON_AddNumberToObject(e, "score", round4(rk->score));
    return e;
}

/* Caller holds the lock. */
static size_t collect_tools(const cm_registry *r, ranked **out, const cm_search_doc ***docs)
{
    size_t total = 0;
    for (size_t i = 0; i < r->n; i++)
        total += r->manuals[i]->ntools;
    *out = cm_xcalloc(total, sizeof **out);
    *docs = cm_xcalloc(total, sizeof **docs);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        for (size_t j = 0; j < r->manuals[i]->ntools; j++, k++) {
            (*out)[k].tool = &r->manuals[i]->tools[j];
            (*docs)[k] = &r->manuals[i]->tools[j].doc;
        }
    return total;
}

/* Caller holds the read lock and index_lock. */
static void ensure_index(cm_registry *r)
{
    if (r->index)
        return;
    ranked *all = NULL;
    const cm_search_doc **docs = NULL;
    size_t n = collect_tools(r, &all, &docs);
    r->index_tools = cm_xcalloc(n ? n : 1, sizeof *r->index_tools);
    for (size_t i = 0; i < n; i++)
        r->index_tools[i] = all[i].tool;
    r->index = cm_search_index_build(docs, n);
    free(all);
    free(docs);
}

static size_t total_tools(const cm_registry *r)
{
    size_t total = 0;
    for (size_t i = 0; i < r->n; i++)
        total += r->manuals[i]->ntools;
    return total;
}

/* A query that is a tool's name (UTCP or access name, or its tool part:
 * "pulls/list", "github.pulls_list") means that tool: it ranks first. */
#define EXACT_NAME_BOOST 1000.0
static bool names_tool(const char *query, const reg_tool *t)
{
    while (*query == ' ')
        query++;
    size_t n = strlen(query);
    while (n && query[n - 1] == ' ')
        n--;
    const char *part = strchr(t->name, '.');
    const char *forms[] = {t->name, t->access_name, t->access_tool, part ? part + 1 : t->name};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        if (strlen(forms[i]) == n && !strncasecmp(forms[i], query, n))
            return true;
    return false;
}

/* Caller holds the read lock.  Ranks the tools sharing a term with the
 * query (through the index); *out sorted best first. */
static size_t rank_matches(cm_registry *r, const char *query, const cm_query_term *terms,
                           size_t nterms, ranked **out)
{
    size_t n = total_tools(r);
    cm_autofree double *scores = cm_xcalloc(n ? n : 1, sizeof *scores);
    cm_autofree uint32_t *touched = cm_xcalloc(n ? n : 1, sizeof *touched);
    pthread_mutex_lock(&r->index_lock);
    ensure_index(r);
    size_t k = cm_search_index_score(r->index, terms, nterms, scores, touched);
    *out = cm_xcalloc(k ? k : 1, sizeof **out);
    for (size_t i = 0; i < k; i++) {
        (*out)[i].tool = r->index_tools[touched[i]];
        (*out)[i].score = scores[touched[i]];
        if (names_tool(query, (*out)[i].tool))
            (*out)[i].score += EXACT_NAME_BOOST;
    }
    pthread_mutex_unlock(&r->index_lock);
    if (k)
        qsort(*out, k, sizeof **out, compare_ranked);
    return k;
}

cJSON *cm_registry_search_filtered(cm_registry *r, const cm_registry_view *view, const char *query,
                                   int limit, bool full, cm_tool_filter advertised, void *ctx)
{
    if (limit <= 0)
        limit = 10;
    cm_query_term *terms = NULL;
    size_t nterms = cm_search_query_terms(query ? query : "", &terms);
    cJSON *out = cJSON_CreateArray();
    pthread_rwlock_rdlock(&r->lock);
    cm_autofree ranked *ranks = NULL;
    size_t n;
    if (nterms > 0) {
        n = rank_matches(r, query, terms, nterms, &ranks);
    } else { /* empty query: every tool, by name */
        cm_autofree const cm_search_doc **docs = NULL;
        n = collect_tools(r, &ranks, &docs);
        if (n)
            qsort(ranks, n, sizeof *ranks, compare_ranked);
    }
    for (size_t i = 0, emitted = 0; i < n && emitted < (size_t)limit; i++) {
        if (!visible(view, ranks[i].tool->manual) ||
            (advertised && !advertised(ranks[i].tool->name, ctx)))
            continue;
        cJSON_AddItemToArray(out, search_entry(&ranks[i], full));
        emitted++;
    }
    pthread_rwlock_unlock(&r->lock);
    cm_search_terms_free(terms, nterms);
    return out;
}

cJSON *cm_registry_search(cm_registry *r, const char *query, int limit)
{
    return cm_registry_search_filtered(r, NULL, query, limit, true, NULL, NULL);
}
