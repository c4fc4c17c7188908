/* pyiface.c — generates Python TypedDict interfaces from tools' JSON Schemas
 * (see pyiface.h).  The reference libraries emit interfaces that do not
 * compile (unquoted odd keys, Literal not imported, $ref → Any, classes that
 * collide across manuals); this generator's output always compiles: every
 * identifier it writes is checked, every string literal escaped, every class
 * reference quoted (so cycles and forward references just work). */
#include "pyiface.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_DEPTH 24

const char CM_PYIFACE_HEADER[] =
    "from typing import Any, Dict, List, Literal, NotRequired, Optional, TypedDict, Union, "
    "Unpack\n";

static const char *const PY_KEYWORDS[] = {
    "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",
};

/* ---- output helpers --------------------------------------------------------- */

static void put(cm_buf *b, const char *s)
{
    cm_error err;
    if (cm_buf_append(b, s, strlen(s), &err) < 0)
        abort();
}

static void putn(cm_buf *b, const char *s, size_t n)
{
    cm_error err;
    if (cm_buf_append(b, s, n, &err) < 0)
        abort();
}

/* A Python string literal "..." holding s: backslash, quote and control
 * characters escaped; non-UTF-8 bytes escaped as \xNN. */
static void put_pystr(cm_buf *b, const char *s)
{
    bool utf8 = cm_utf8_valid(s, strlen(s));
    put(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '\\')
            put(b, "\\\\");
        else if (*p == '"')
            put(b, "\\\"");
        else if (*p == '\n')
            put(b, "\\n");
        else if (*p == '\r')
            put(b, "\\r");
        else if (*p == '\t')
            put(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8)) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            put(b, esc);
        } else
            putn(b, (const char *)p, 1);
    }
    put(b, "\"");
}

/* A comment body on one line: control characters become spaces. */
static void put_comment_text(cm_buf *b, const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n < max; p++, n++)
        putn(b, (*p < 0x20 || *p == 0x7f) ? " " : (const char *)p, 1);
    if (s[n])
        put(b, "...");
}

static bool is_keyword(const char *s)
{
    for (size_t i = 0; i < sizeof PY_KEYWORDS / sizeof *PY_KEYWORDS; i++)
        if (!strcmp(PY_KEYWORDS[i], s))
            return true;
    return false;
}

/* s.properties when it is an object (keys are field names), else NULL: a
 * malformed schema (properties as an array, ...) has no fields. */
static const cJSON *props_of(const cJSON *s)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "properties");
    return cJSON_IsObject(p) ? p : NULL;
}

/* A key usable as a TypedDict class-body field: an ASCII identifier, not a
 * keyword, and not name-mangled (`__x` inside a class becomes `_C__x`). */
static bool plain_field_name(const char *s)
{
    if (!s[0] || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return !is_keyword(s) && strncmp(s, "__", 2) != 0;
}

/* Alphanumerics of s, each run capitalized: "get_pull-request" → "GetPullRequest".
 * Never contains '_', so "<manual>_<Pascal>" names cannot collide across manuals. */
static void put_pascal(cm_buf *b, const char *s, const char *fallback)
{
    bool up = true;
    size_t start = b->len;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool alnum =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!alnum) {
            up = true;
            continue;
        }
        char c = (char)*p;
        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        up = false;
        putn(b, &c, 1);
    }
    if (b->len == start)
        put(b, fallback);
}

/* ---- generator state --------------------------------------------------------- */

typedef struct ref_entry {
    char *ref;
    char *cls;  /* class name, or NULL for a non-object target */
    char *expr; /* non-object target: its expression once rendered (NULL while being
                   expanded: a reference back is a cycle → Any) */
} ref_entry;

/* A non-object definition used again is rendered again from its first
 * expression when that is at most this long, else as Any: shared
 * enums/strings keep their type, and definitions that nest each other twice
 * (S_i = Union[S_i-1, S_i-1]) cannot grow the text exponentially. */
#define MAX_SHARED_EXPR 256

/* Class names taken in one manual: open-addressing hash set. */
struct cm_pyiface_names {
    char **slots;
    size_t cap, n;
};

cm_pyiface_names *cm_pyiface_names_new(void)
{
    cm_pyiface_names *s = cm_xcalloc(1, sizeof *s);
    s->cap = 64;
    s->slots = cm_xcalloc(s->cap, sizeof *s->slots);
    return s;
}

void cm_pyiface_names_free(cm_pyiface_names *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    free(s);
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool names_has(const cm_pyiface_names *s, const char *n)
{
    for (size_t i = hash_name(n) & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
        if (!strcmp(s->slots[i], n))
            return true;
    return false;
}

static void names_add(cm_pyiface_names *s, const char *n)
{
    if (2 * (s->n + 1) > s->cap) {
        cm_pyiface_names bigger = {.cap = s->cap * 2};
        bigger.slots = cm_xcalloc(bigger.cap, sizeof *bigger.slots);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i]) {
                size_t j = hash_name(s->slots[i]) & (bigger.cap - 1);
                while (bigger.slots[j])
                    j = (j + 1) & (bigger.cap - 1);
                bigger.slots[j] = s->slots[i];
            }
        free(s->slots);
        s->slots = bigger.slots;
        s->cap = bigger.cap;
    }
    size_t i = hash_name(n) & (s->cap - 1);
    while (s->slots[i])
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = cm_xstrdup(n);
    s->n++;
}

typedef struct gen {
    cm_buf classes;        /* finished class definitions, dependencies first */
    const cJSON *root;     /* schema $ref paths resolve against */
    const char *manual;    /* access manual: class-name prefix */
    const char *root_stem; /* "<manual>_<Tool>Input": $ref targets are named after it */
    cm_pyiface_names *names;
    ref_entry *refs;
    size_t nrefs;
    size_t *ref_slots; /* open-addressing index over refs: entry index + 1, 0 empty */
    size_t ref_cap;    /* power of two, at least twice nrefs */
} gen;

/* Reserves a unique class name "<stem>" (or "<stem>2", ...). Caller frees. */
static char *reserve_name(gen *g, const char *stem)
{
    cm_buf b = {0};
    put(&b, stem);
    for (int i = 2; names_has(g->names, b.data); i++) {
        b.len = 0;
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        put(&b, stem);
        put(&b, num);
    }
    names_add(g->names, b.data);
    return b.data;
}

static void type_expr(gen *g, const cJSON *s, const char *hint, cm_buf *e, int depth);

/* "#/a/b~1c" inside the root schema (JSON Pointer, ~0 ~1 unescaped). */
static const cJSON *resolve_ref(const cJSON *root, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const cJSON *cur = root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        cm_buf key = {0};
        while (*p && *p != '/') {
            if (p[0] == '~' && p[1] == '0') {
                put(&key, "~");
                p += 2;
            } else if (p[0] == '~' && p[1] == '1') {
                put(&key, "/");
                p += 2;
            } else {
                putn(&key, p++, 1);
            }
        }
        cur = cJSON_IsObject(cur)  ? cJSON_GetObjectItemCaseSensitive(cur, key.data ? key.data : "")
              : cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(key.data ? key.data : "0"))
                                   : NULL;
        cm_buf_free(&key);
        if (!cur)
            return NULL;
    }
    return *p ? NULL : cur;
}

static bool is_object_schema(const cJSON *s)
{
    const char *t = cm_json_str(s, "type");
    return cJSON_IsObject(s) &&
           ((t && !strcmp(t, "object")) ||
            (!t && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "properties"))));
}

static bool has_properties(const cJSON *s)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "properties");
    return cJSON_IsObject(p) && p->child;
}

static bool in_required(const cJSON *s, const char *key)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required"), *r;
    cJSON_ArrayForEach(r, req)
    {
        if (cJSON_IsString(r) && !strcmp(r->valuestring, key))
            return true;
    }
    return false;
}

/* ---- TypedDicts ---------------------------------------------------------------- */

static void emit_doc_line(cm_buf *b, const char *indent, const char *doc)
{
    if (!doc || !doc[0])
        return;
    put(b, indent);
    put_pystr(b, doc);
    put(b, "\n");
}

/* Emits `cls` as a TypedDict for the object schema s into g->classes. */
static void emit_typeddict(gen *g, const cJSON *s, const char *cls, int depth)
{
    const cJSON *props = props_of(s), *p;
    bool functional = false;
    size_t nfields = 0;
    cJSON_ArrayForEach(p, props)
    {
        nfields++;
        if (!plain_field_name(p->string))
            functional = true;
    }
    cm_buf body = {0};
    if (functional) {
        if (cm_json_str(s, "description")) {
            put(&body, "# ");
            put(&body, cls);
            put(&body, ": ");
            put_comment_text(&body, cm_json_str(s, "description"), 400);
            put(&body, "\n");
        }
        cJSON_ArrayForEach(p, props)
        {
            const char *d = cm_json_str(p, "description");
            if (!d)
                continue;
            put(&body, "#   ");
            put_comment_text(&body, p->string, 80);
            put(&body, ": ");
            put_comment_text(&body, d, 400);
            put(&body, "\n");
        }
        put(&body, cls);
        put(&body, " = TypedDict(");
        put_pystr(&body, cls);
        put(&body, ", {");
    } else {
        put(&body, "class ");
        put(&body, cls);
        put(&body, "(TypedDict):\n");
        emit_doc_line(&body, "    ", cm_json_str(s, "description"));
        if (nfields == 0 && !cm_json_str(s, "description"))
            put(&body, "    pass\n");
    }
    bool first = true;
    cJSON_ArrayForEach(p, props)
    {
        cm_buf hint = {0};
        put(&hint, cls);
        put_pascal(&hint, p->string, "Field");
        cm_buf t = {0};
        type_expr(g, p, hint.data, &t, depth + 1);
        bool req = in_required(s, p->string);
        if (functional) {
            if (!first)
                put(&body, ", ");
            put_pystr(&body, p->string);
            put(&body, ": ");
        } else {
            put(&body, "    ");
            put(&body, p->string);
            put(&body, ": ");
        }
        if (!req)
            put(&body, "NotRequired[");
        put(&body, t.data);
        if (!req)
            put(&body, "]");
        if (!functional) {
            put(&body, "\n");
            emit_doc_line(&body, "    ", cm_json_str(p, "description"));
        }
        first = false;
        cm_buf_free(&hint);
        cm_buf_free(&t);
    }
    if (functional)
        put(&body, "})\n");
    put(&body, "\n");
    putn(&g->classes, body.data, body.len);
    cm_buf_free(&body);
}

/* Quoted reference to a new TypedDict class for the object schema s. */
static void object_class(gen *g, const cJSON *s, const char *hint, cm_buf *e, int depth)
{
    char *cls = reserve_name(g, hint);
    emit_typeddict(g, s, cls, depth);
    put(e, "\"");
    put(e, cls);
    put(e, "\"");
    free(cls);
}

/* ---- type expressions ----------------------------------------------------------- */

/* Appends a Literal element for v; false when v cannot be one. */
static bool literal_value(const cJSON *v, cm_buf *e)
{
    char num[40];
    if (cJSON_IsString(v))
        put_pystr(e, v->valuestring);
    else if (cJSON_IsTrue(v))
        put(e, "True");
    else if (cJSON_IsFalse(v))
        put(e, "False");
    else if (cJSON_IsNull(v))
        put(e, "None");
    else if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble &&
             v->valuedouble > -9e15 && v->valuedouble < 9e15) {
        snprintf(num, sizeof num, "%lld", (long long)v->valuedouble);
        put(e, num);
    } else
        return false;
    return true;
}

static void literal_expr(const cJSON *values, cm_buf *e)
{
    cm_buf lit = {0};
    put(&lit, "Literal[");
    bool first = true;
    const cJSON *v;
    cJSON_ArrayForEach(v, values)
    {
        if (!first)
            put(&lit, ", ");
        if (!literal_value(v, &lit)) {
            cm_buf_free(&lit);
            put(e, "Any");
            return;
        }
        first = false;
    }
    put(&lit, "]");
    put(e, first ? "Any" : lit.data);
    cm_buf_free(&lit);
}

/* Index of the entry for ref, or SIZE_MAX (hashed: a schema may hold
 * thousands of definitions). */
static size_t find_ref(const gen *g, const char *ref)
{
    if (!g->ref_cap)
        return SIZE_MAX;
    for (size_t i = hash_name(ref) & (g->ref_cap - 1); g->ref_slots[i];
         i = (i + 1) & (g->ref_cap - 1))
        if (!strcmp(g->refs[g->ref_slots[i] - 1].ref, ref))
            return g->ref_slots[i] - 1;
    return SIZE_MAX;
}

static void slot_ref(gen *g, size_t idx)
{
    size_t i = hash_name(g->refs[idx].ref) & (g->ref_cap - 1);
    while (g->ref_slots[i])
        i = (i + 1) & (g->ref_cap - 1);
    g->ref_slots[i] = idx + 1;
}

static size_t add_ref(gen *g, const char *ref)
{
    g->refs = realloc(g->refs, (g->nrefs + 1) * sizeof *g->refs);
    if (!g->refs)
        abort();
    g->refs[g->nrefs] = (ref_entry){.ref = cm_xstrdup(ref)};
    size_t idx = g->nrefs++;
    if (2 * g->nrefs > g->ref_cap) {
        free(g->ref_slots);
        g->ref_cap = g->ref_cap ? g->ref_cap * 2 : 16;
        g->ref_slots = cm_xcalloc(g->ref_cap, sizeof *g->ref_slots);
        for (size_t i = 0; i < g->nrefs; i++)
            slot_ref(g, i);
    } else {
        slot_ref(g, idx);
    }
    return idx;
}

static void ref_expr(gen *g, const char *ref, const char *hint, cm_buf *e, int depth)
{
    size_t found = find_ref(g, ref);
    if (found != SIZE_MAX) {
        const ref_entry *r = &g->refs[found];
        if (r->cls) {
            put(e, "\"");
            put(e, r->cls);
            put(e, "\"");
        } else
            put(e, r->expr ? r->expr : "Any"); /* NULL: a cycle through a non-object schema */
        return;
    }
    const cJSON *target = resolve_ref(g->root, ref);
    if (!target) {
        put(e, "Any");
        return;
    }
    size_t idx = add_ref(g, ref);
    if (is_object_schema(target)) {
        /* name it after the definition: "#/$defs/Node" → <tool>Node */
        const char *last = strrchr(ref, '/');
        cm_buf stem = {0};
        put(&stem, g->root_stem ? g->root_stem : hint);
        put_pascal(&stem, last ? last + 1 : "Ref", "Ref");
        char *cls = reserve_name(g, stem.data);
        cm_buf_free(&stem);
        g->refs[idx].cls = cls; /* registered first: a reference back is a forward ref */
        emit_typeddict(g, target, cls, depth);
        put(e, "\"");
        put(e, cls);
        put(e, "\"");
        return;
    }
    cm_buf x = {0};
    type_expr(g, target, hint, &x, depth + 1);
    put(e, x.data ? x.data : "Any");
    /* g->refs may have moved while the target was rendered */
    if (x.data && x.len <= MAX_SHARED_EXPR)
        g->refs[idx].expr = x.data;
    else {
        g->refs[idx].expr = cm_xstrdup("Any");
        cm_buf_free(&x);
    }
}

static void union_expr(gen *g, const cJSON *alts, const char *hint, cm_buf *e, int depth)
{
    int n = cJSON_GetArraySize(alts);
    if (n == 0) {
        put(e, "Any");
        return;
    }
    if (n > 1)
        put(e, "Union[");
    int i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, alts)
    {
        if (i)
            put(e, ", ");
        cm_buf h = {0};
        put(&h, hint);
        if (n > 1) {
            char num[32];
            snprintf(num, sizeof num, "Variant%d", i + 1);
            put(&h, num);
        }
        type_expr(g, a, h.data, e, depth + 1);
        cm_buf_free(&h);
        i++;
    }
    if (n > 1)
        put(e, "]");
}

/* allOf: objects merge into one TypedDict (refs followed); otherwise the
 * first part stands for the whole. */
static void all_of_expr(gen *g, const cJSON *parts, const char *hint, cm_buf *e, int depth)
{
    cJSON *merged = cJSON_CreateObject();
    cJSON *props = cJSON_AddObjectToObject(merged, "properties");
    cJSON *req = cJSON_AddArrayToObject(merged, "required");
    bool all_objects = cJSON_GetArraySize(parts) > 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, parts)
    {
        const cJSON *s = part;
        const char *ref = cm_json_str(part, "$ref");
        if (ref)
            s = resolve_ref(g->root, ref);
        if (!s || !is_object_schema(s)) {
            all_objects = false;
            break;
        }
        const cJSON *p, *r;
        cJSON_ArrayForEach(p, props_of(s))
        {
            cJSON_DeleteItemFromObjectCaseSensitive(props, p->string);
            cJSON_AddItemToObject(props, p->string, cJSON_Duplicate(p, 1));
        }
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(s, "required"))
        {
            if (cJSON_IsString(r))
                cJSON_AddItemToArray(req, cJSON_CreateString(r->valuestring));
        }
        if (!cm_json_str(merged, "description") && cm_json_str(s, "description"))
            cJSON_AddStringToObject(merged, "description", cm_json_str(s, "description"));
    }
    if (all_objects)
        object_class(g, merged, hint, e, depth);
    else
        type_expr(g, cJSON_GetArrayItem(parts, 0), hint, e, depth + 1);
    cJSON_Delete(merged);
}

static void single_type(gen *g, const cJSON *s, const char *t, const char *hint, cm_buf *e,
                        int depth)
{
    if (!strcmp(t, "string"))
        put(e, "str");
    else if (!strcmp(t, "integer"))
        put(e, "int");
    else if (!strcmp(t, "number"))
        put(e, "float");
    else if (!strcmp(t, "boolean"))
        put(e, "bool");
    else if (!strcmp(t, "null"))
        put(e, "None");
    else if (!strcmp(t, "array")) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        cm_buf h = {0};
        put(&h, hint);
        put(&h, "Item");
        put(e, "List[");
        if (cJSON_IsObject(items))
            type_expr(g, items, h.data, e, depth + 1);
        else
            put(e, "Any");
        put(e, "]");
        cm_buf_free(&h);
    } else if (!strcmp(t, "object")) {
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        if (has_properties(s)) {
            object_class(g, s, hint, e, depth);
        } else if (cJSON_IsObject(extra) && extra->child) {
            cm_buf h = {0};
            put(&h, hint);
            put(&h, "Value");
            put(e, "Dict[str, ");
            type_expr(g, extra, h.data, e, depth + 1);
            put(e, "]");
            cm_buf_free(&h);
        } else
            put(e, "Dict[str, Any]");
    } else
        put(e, "Any");
}

static void type_expr_inner(gen *g, const cJSON *s, const char *hint, cm_buf *e, int depth)
{
    const cJSON *x;
    const char *ref = cm_json_str(s, "$ref");
    if (ref) {
        ref_expr(g, ref, hint, e, depth);
        return;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(s, "const"))) {
        cJSON *one = cJSON_CreateArray();
        cJSON_AddItemToArray(one, cJSON_Duplicate(x, 1));
        literal_expr(one, e);
        cJSON_Delete(one);
        return;
    }
    if (cJSON_IsArray(x = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
        literal_expr(x, e);
        return;
    }
    if (cJSON_IsArray(x = cJSON_GetObjectItemCaseSensitive(s, "anyOf")) ||
        cJSON_IsArray(x = cJSON_GetObjectItemCaseSensitive(s, "oneOf"))) {
        union_expr(g, x, hint, e, depth);
        return;
    }
    if (cJSON_IsArray(x = cJSON_GetObjectItemCaseSensitive(s, "allOf"))) {
        all_of_expr(g, x, hint, e, depth);
        return;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(type)) {
        single_type(g, s, type->valuestring, hint, e, depth);
    } else if (cJSON_IsArray(type) && cJSON_GetArraySize(type) > 0) {
        int n = cJSON_GetArraySize(type), i = 0;
        if (n > 1)
            put(e, "Union[");
        cJSON_ArrayForEach(x, type)
        {
            if (i++)
                put(e, ", ");
            single_type(g, s, cJSON_IsString(x) ? x->valuestring : "", hint, e, depth);
        }
        if (n > 1)
            put(e, "]");
    } else if (is_object_schema(s)) {
        single_type(g, s, "object", hint, e, depth);
    } else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "items"))) {
        single_type(g, s, "array", hint, e, depth);
    } else {
        put(e, "Any");
    }
}

static void type_expr(gen *g, const cJSON *s, const char *hint, cm_buf *e, int depth)
{
    if (!cJSON_IsObject(s) || depth > MAX_DEPTH) {
        put(e, "Any");
        return;
    }
    bool nullable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "nullable"));
    if (nullable)
        put(e, "Optional[");
    type_expr_inner(g, s, hint, e, depth);
    if (nullable)
        put(e, "]");
}

/* ---- tools ---------------------------------------------------------------------- */

static void gen_free(gen *g)
{
    for (size_t i = 0; i < g->nrefs; i++) {
        free(g->refs[i].ref);
        free(g->refs[i].cls);
        free(g->refs[i].expr);
    }
    free(g->refs);
    g->refs = NULL;
    g->nrefs = 0;
    free(g->ref_slots);
    g->ref_slots = NULL;
    g->ref_cap = 0;
}

/* The top-level class for a tool's inputs or outputs; *is_td says whether
 * the expression is a TypedDict (usable with Unpack). */
static void root_expr(gen *g, const cJSON *schema, const char *cls, cm_buf *e, bool *is_td)
{
    g->root = schema;
    g->root_stem = cls;
    *is_td = false;
    if (!cJSON_IsObject(schema) || !schema->child) {
        put(e, "Any");
        return;
    }
    if (is_object_schema(schema) && !cJSON_GetObjectItemCaseSensitive(schema, "$ref") &&
        !cJSON_GetObjectItemCaseSensitive(schema, "anyOf") &&
        !cJSON_GetObjectItemCaseSensitive(schema, "oneOf")) {
        if (cJSON_GetObjectItemCaseSensitive(schema, "allOf"))
            all_of_expr(g, cJSON_GetObjectItemCaseSensitive(schema, "allOf"), cls, e, 0);
        else
            object_class(g, schema, cls, e, 0);
        *is_td = e->data && e->data[0] == '"';
        return;
    }
    type_expr(g, schema, cls, e, 0);
}

static void put_access_form(cm_buf *b, const char *manual, const char *tool, const cJSON *inputs)
{
    put(b, "await ");
    put(b, manual);
    put(b, ".");
    put(b, tool);
    put(b, "(");
    const cJSON *p;
    bool first = true;
    cJSON_ArrayForEach(p, props_of(inputs))
    {
        if (!first)
            put(b, ", ");
        if (plain_field_name(p->string)) {
            put(b, p->string);
            put(b, "=...");
        } else {
            put(b, "**{");
            put_pystr(b, p->string);
            put(b, ": ...}");
        }
        first = false;
    }
    put(b, ")");
}

void cm_pyiface_tool(const char *access_manual, const char *access_tool, const cJSON *def,
                     cm_pyiface_names *names, char **classes, char **method)
{
    gen g = {.manual = access_manual, .names = names};
    cm_buf stem = {0};
    put(&stem, access_manual);
    put(&stem, "_");
    put_pascal(&stem, access_tool, "Tool");
    size_t stem_len = stem.len;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(def, "inputs");
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(def, "outputs");
    const char *name = cm_json_str(def, "name");
    const char *desc = cm_json_str(def, "description");

    put(&g.classes, "# ---- tool ");
    put_comment_text(&g.classes, name ? name : access_tool, 200);
    put(&g.classes, "\n");
    cm_buf in = {0}, out = {0};
    bool in_td, out_td;
    put(&stem, "Input");
    root_expr(&g, inputs, stem.data, &in, &in_td);
    gen_free(&g);
    stem.len = stem_len;
    put(&stem, "Output");
    root_expr(&g, outputs, stem.data, &out, &out_td);
    gen_free(&g);
    (void)out_td;

    cm_buf m = {0};
    put(&m, "    @staticmethod\n    async def ");
    put(&m, access_tool);
    put(&m, in_td ? "(**kwargs: Unpack[" : "(**kwargs: Any");
    if (in_td)
        put(&m, in.data);
    put(&m, in_td ? "]) -> " : ") -> ");
    put(&m, out.data);
    put(&m, ":\n        ");
    cm_buf doc = {0};
    if (desc && desc[0]) {
        put(&doc, desc);
        put(&doc, "\n\n");
    }
    put(&doc, "Access: ");
    put_access_form(&doc, access_manual, access_tool, inputs);
    put(&doc, "\nUTCP name: ");
    put(&doc, name ? name : access_tool);
    put_pystr(&m, doc.data);
    put(&m, "\n        ...\n");
    cm_buf_free(&doc);
    cm_buf_free(&in);
    cm_buf_free(&out);
    cm_buf_free(&stem);
    *classes = g.classes.data ? g.classes.data : cm_xstrdup("");
    *method = m.data;
}

/* ---- assembly ------------------------------------------------------------------- */

static bool tool_matches(const cJSON *t, const char *only)
{
    const char *name = cm_json_str(t, "name"), *am = cm_json_str(t, "access_manual"),
               *at = cm_json_str(t, "access_tool");
    if (name && !strcmp(name, only))
        return true;
    size_t n = am ? strlen(am) : 0;
    return am && at && !strncmp(only, am, n) && only[n] == '.' && !strcmp(only + n + 1, at);
}

typedef struct iface_entry {
    const char *manual, *classes, *method;
    size_t group; /* index of the manual's first appearance */
} iface_entry;

/* `github` → `GithubNamespace`, `my_api` → `MyApiNamespace` (the library's
 * README: `from generated_tools import GithubNamespace`); a leading digit
 * keeps its `_` (rootfs/runner_chain.py assembles the same text). */
static void put_namespace_class(cm_buf *b, const char *manual)
{
    bool up = true;
    for (const char *p = manual; *p; p++) {
        char c = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        if ((up = *p == '_' && !(p == manual && p[1] >= '0' && p[1] <= '9')))
            continue;
        putn(b, &c, 1);
    }
    put(b, "Namespace");
}

static void put_manual(cm_buf *b, const iface_entry *e, size_t n, size_t group)
{
    const char *manual = e[group].manual;
    put(b, "\n# namespace ");
    put(b, manual);
    put(b, "  (call its tools as: await ");
    put(b, manual);
    put(b, ".<tool>(name=value, ...))\n");
    for (size_t i = group; i < n; i++)
        if (e[i].group == group)
            put(b, e[i].classes);
    put(b, "class ");
    put_namespace_class(b, manual);
    put(b, ":\n    \"namespace ");
    put(b, manual);
    put(b, "\"\n\n");
    for (size_t i = group; i < n; i++)
        if (e[i].group == group)
            put(b, e[i].method);
}

char *cm_pyiface_assemble(const cJSON *tools, const char *only)
{
    size_t cap = (size_t)cJSON_GetArraySize(tools) + 1, n = 0;
    iface_entry *e = cm_xcalloc(cap, sizeof *e);
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const char *am = cm_json_str(t, "access_manual");
        if (!am || (only && !tool_matches(t, only)))
            continue;
        e[n].manual = am;
        e[n].classes = cm_json_str(t, "iface_classes");
        e[n].method = cm_json_str(t, "iface_method");
        if (!e[n].classes)
            e[n].classes = "";
        if (!e[n].method)
            e[n].method = "";
        /* tools of one manual are adjacent in registry order; look back first */
        e[n].group = n;
        if (n > 0 && !strcmp(e[n - 1].manual, am))
            e[n].group = e[n - 1].group;
        else
            for (size_t k = n; k-- > 0;)
                if (e[k].group == k && !strcmp(e[k].manual, am)) {
                    e[n].group = k;
                    break;
                }
        n++;
    }
    if (only && n == 0) {
        free(e);
        return NULL;
    }
    cm_buf b = {0};
    put(&b, CM_PYIFACE_HEADER);
    for (size_t i = 0; i < n; i++)
        if (e[i].group == i)
            put_manual(&b, e, n, i);
    free(e);
    return b.data;
}
