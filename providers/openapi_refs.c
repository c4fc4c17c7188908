/* openapi_refs.c — `$ref` handling for the OpenAPI converter that stays
 * linear in the size of the document.
 *
 * Why it exists: inlining every `$ref` target at its point of use is
 * exponential in the depth of shared references (a schema that names the
 * previous one twice, 40 levels deep, is 2^40 copies), and real descriptions
 * (Stripe's, DocuSign's, GitHub's) come close enough to take the engine to
 * gigabytes.  Here a referenced schema is copied once per schema root into
 * that root's JSON Schema "$defs" and every use becomes
 * {"$ref": "#/$defs/<Name>"}; a recursive schema stays a reference to
 * itself.  Every node copied is charged to the manual's budget
 * (engine.registration.max_schema_bytes), so even a document whose
 * definitions are all distinct and huge stops at a known size.  External
 * references are never followed. */
#include "openapi_refs.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_DEREF_HOPS 64
#define MAX_DEF_NAME 100

typedef struct def_entry {
    char *ref;  /* the document's pointer, "#/components/schemas/Pet" */
    char *name; /* its key in $defs, unique within the root */
    const cJSON *target;
} def_entry;

/* Open-addressing index over defs[]: slot value = entry index + 1, 0 empty. */
typedef struct index_tbl {
    size_t *slots;
    size_t cap; /* power of two */
} index_tbl;

struct cm_oa_schema {
    const cJSON *doc;
    cm_oa_budget *budget;
    def_entry *defs;
    size_t n, cap;
    index_tbl by_ref, by_name;
};

const cJSON *cm_oa_follow_pointer(const cJSON *doc, const char *ref)
{
    if (strncmp(ref, "#/", 2))
        return NULL;
    const cJSON *cur = doc;
    const char *p = ref + 2;
    while (cur && *p) {
        size_t n = strcspn(p, "/");
        cm_autofree char *key = cm_xmalloc(n + 1);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                key[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                key[k++] = p[i];
            }
        }
        key[k] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n;
        if (*p == '/')
            p++;
    }
    return cur;
}

const cJSON *cm_oa_deref(const cJSON *doc, const cJSON *node)
{
    for (int hops = 0; cJSON_IsObject(node); hops++) {
        const char *ref = cm_json_str(node, "$ref");
        if (!ref)
            return node;
        if (hops >= MAX_DEREF_HOPS)
            return NULL;
        node = cm_oa_follow_pointer(doc, ref);
    }
    return NULL;
}

/* ---- the index ------------------------------------------------------- */

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static const char *entry_key(const cm_oa_schema *s, const index_tbl *t, size_t idx)
{
    return t == &s->by_ref ? s->defs[idx].ref : s->defs[idx].name;
}

/* Index of the entry whose key is `key`, or SIZE_MAX. */
static size_t tbl_find(const cm_oa_schema *s, const index_tbl *t, const char *key)
{
    if (!t->cap)
        return SIZE_MAX;
    for (size_t i = hash_str(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->slots[i])
            return SIZE_MAX;
        if (!strcmp(entry_key(s, t, t->slots[i] - 1), key))
            return t->slots[i] - 1;
    }
}

static void tbl_put(const cm_oa_schema *s, index_tbl *t, size_t idx)
{
    size_t i = hash_str(entry_key(s, t, idx)) & (t->cap - 1);
    while (t->slots[i])
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = idx + 1;
}

/* Keeps both tables at most half full (call before adding entry s->n). */
static void tbl_grow(cm_oa_schema *s)
{
    if ((s->n + 1) * 2 <= s->by_ref.cap)
        return;
    size_t cap = s->by_ref.cap ? s->by_ref.cap * 2 : 16;
    index_tbl *tables[] = {&s->by_ref, &s->by_name};
    for (size_t k = 0; k < 2; k++) {
        free(tables[k]->slots);
        tables[k]->slots = cm_xmalloc(cap * sizeof(size_t));
        memset(tables[k]->slots, 0, cap * sizeof(size_t));
        tables[k]->cap = cap;
        for (size_t i = 0; i < s->n; i++)
            tbl_put(s, tables[k], i);
    }
}

/* ---- definitions ----------------------------------------------------- */

/* "#/components/schemas/simple-user" → "simple-user": the last pointer
 * segment unescaped, anything outside [A-Za-z0-9._-] as '_', so the
 * "#/$defs/<name>" pointer needs no escaping. */
static char *base_name(const char *ref)
{
    const char *last = strrchr(ref, '/');
    last = last ? last + 1 : ref;
    char *out = cm_xmalloc(MAX_DEF_NAME + 1);
    size_t k = 0;
    for (const char *p = last; *p && k < MAX_DEF_NAME; p++) {
        char c = *p;
        if (c == '~' && (p[1] == '0' || p[1] == '1'))
            c = *++p == '0' ? '~' : '/';
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        out[k++] = ok ? c : '_';
    }
    if (!k)
        memcpy(out, "Ref", 4);
    else
        out[k] = '\0';
    return out;
}

static const char *def_for(cm_oa_schema *s, const char *ref, const cJSON *target)
{
    size_t i = tbl_find(s, &s->by_ref, ref);
    if (i != SIZE_MAX)
        return s->defs[i].name;
    cm_autofree char *base = base_name(ref);
    char *name = cm_xstrdup(base);
    for (int k = 2; tbl_find(s, &s->by_name, name) != SIZE_MAX; k++) {
        free(name);
        if (asprintf(&name, "%s_%d", base, k) < 0)
            abort();
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->defs = realloc(s->defs, s->cap * sizeof *s->defs);
        if (!s->defs)
            abort();
    }
    tbl_grow(s);
    s->defs[s->n] = (def_entry){.ref = cm_xstrdup(ref), .name = name, .target = target};
    tbl_put(s, &s->by_ref, s->n);
    tbl_put(s, &s->by_name, s->n);
    return s->defs[s->n++].name;
}

/* ---- copying --------------------------------------------------------- */

static bool charge(cm_oa_schema *s, const cJSON *node)
{
    size_t cost = sizeof(cJSON) + (node->string ? strlen(node->string) + 1 : 0) +
                  (cJSON_IsString(node) && node->valuestring ? strlen(node->valuestring) + 1 : 0);
    if (s->budget->over || cost > s->budget->left) {
        s->budget->over = true;
        return false;
    }
    s->budget->left -= cost;
    return true;
}

static cJSON *unresolved(const char *ref)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "object");
    cJSON_AddStringToObject(o, "description", "unresolved reference");
    cJSON_AddStringToObject(o, "x-ref", ref);
    return o;
}

cJSON *cm_oa_convert(cm_oa_schema *s, const cJSON *node)
{
    if (!charge(s, node))
        return cJSON_CreateNull();
    if (cJSON_IsArray(node)) {
        cJSON *a = cJSON_CreateArray();
        const cJSON *e;
        cJSON_ArrayForEach(e, node) cJSON_AddItemToArray(a, cm_oa_convert(s, e));
        return a;
    }
    if (!cJSON_IsObject(node))
        return cJSON_Duplicate(node, 0);
    const char *ref = cm_json_str(node, "$ref");
    if (ref) {
        const cJSON *target = cm_oa_follow_pointer(s->doc, ref);
        if (!target)
            return unresolved(ref);
        cJSON *o = cJSON_CreateObject();
        cm_autofree char *local = NULL;
        if (asprintf(&local, "#/$defs/%s", def_for(s, ref, target)) < 0)
            abort();
        cJSON_AddStringToObject(o, "$ref", local);
        const cJSON *e; /* siblings (3.1 allows description, ...) are kept */
        cJSON_ArrayForEach(e, node)
        {
            if (strcmp(e->string, "$ref"))
                cJSON_AddItemToObject(o, e->string, cm_oa_convert(s, e));
        }
        return o;
    }
    cJSON *o = cJSON_CreateObject();
    const cJSON *e;
    cJSON_ArrayForEach(e, node) cJSON_AddItemToObject(o, e->string, cm_oa_convert(s, e));
    return o;
}

void cm_oa_finish(cm_oa_schema *s, cJSON *root)
{
    if (!s->n || !cJSON_IsObject(root))
        return;
    cJSON *defs = cJSON_CreateObject();
    /* s->n grows while definitions reference further ones */
    for (size_t i = 0; i < s->n && !s->budget->over; i++) {
        const cJSON *target = s->defs[i].target;
        cJSON *c = cm_oa_convert(s, target);
        cJSON_AddItemToObject(defs, s->defs[i].name, c);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "$defs");
    cJSON_AddItemToObject(root, "$defs", defs);
}

cm_oa_schema *cm_oa_schema_new(const cJSON *doc, cm_oa_budget *budget)
{
    cm_oa_schema *s = cm_xmalloc(sizeof *s);
    memset(s, 0, sizeof *s);
    s->doc = doc;
    s->budget = budget;
    return s;
}

void cm_oa_schema_free(cm_oa_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->defs[i].ref);
        free(s->defs[i].name);
    }
    free(s->defs);
    free(s->by_ref.slots);
    free(s->by_name.slots);
    free(s);
}
