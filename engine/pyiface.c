/* pyiface.c — renders a tool's JSON Schemas (inputs, outputs) as Python
 * TypedDicts (see pyiface.h; the manual-level sharing is pyiface_manual.c,
 * the stubs and assembly pyiface_text.c).  The reference libraries emit
 * interfaces that do not compile (unquoted odd keys, Literal not imported,
 * $ref → Any, classes that collide across manuals); this generator's output
 * always compiles: every identifier it writes is checked, every string
 * literal escaped, every class reference quoted (so cycles and forward
 * references just work).  Compact by default (issue 20): outputs are their
 * fields to one level of objects (deeper objects are plain dicts),
 * descriptions one sentence; `full` renders every level and every word. */
#include "pyiface_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 24
/* Compact outputs: objects nested deeper than this many levels below the
 * result are `dict` (the fields an agent reads are at the top; the
 * rest is in tools_info and get_tool_interface detail "full"). */
#define OUT_LEVELS 1
/* Compact descriptions: the first sentence, at most this many bytes. */
#define BRIEF_DOC 64

static const char *const PY_KEYWORDS[] = {
    "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",
};

/* ---- output helpers --------------------------------------------------------- */

void pi_put(cm_buf *b, const char *s)
{
    cm_error err;
    if (cm_buf_append(b, s, strlen(s), &err) < 0)
        abort();
}

void pi_putn(cm_buf *b, const char *s, size_t n)
{
    cm_error err;
    if (cm_buf_append(b, s, n, &err) < 0)
        abort();
}

#define put pi_put
#define putn pi_putn

/* A Python string literal "..." holding s: backslash, quote and control
 * characters escaped; non-UTF-8 bytes escaped as \xNN. */
void pi_put_pystr(cm_buf *b, const char *s)
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
#define put_pystr pi_put_pystr

/* A comment body on one line: control characters become spaces. */
void pi_put_comment_text(cm_buf *b, const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n < max; p++, n++)
        putn(b, (*p < 0x20 || *p == 0x7f) ? " " : (const char *)p, 1);
    if (s[n])
        put(b, "...");
}
#define put_comment_text pi_put_comment_text

/* Where the first sentence of s ends: ". " / ".\n" / a blank line / the end. */
static size_t sentence_end(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if ((s[i] == '.' || s[i] == '!' || s[i] == '?') &&
            (s[i + 1] == ' ' || s[i + 1] == '\n' || !s[i + 1]))
            return i + 1;
        if (s[i] == '\n' && s[i + 1] == '\n')
            return i;
    }
    return strlen(s);
}

void pi_put_sentence(cm_buf *b, const char *s, size_t max)
{
    while (*s == ' ' || *s == '\n' || *s == '\t')
        s++;
    size_t n = sentence_end(s), cut = n;
    if (cut > max) {
        cut = max;
        while (cut > max / 2 && s[cut] != ' ')
            cut--;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--; /* never inside a UTF-8 sequence */
    }
    cm_buf one = {0};
    putn(&one, s, cut);
    for (size_t i = 0; i < one.len; i++)
        if (one.data[i] == '\n' || one.data[i] == '\r' || one.data[i] == '\t')
            one.data[i] = ' ';
    if (cut < n)
        put(&one, "...");
    if (one.data)
        put(b, one.data);
    cm_buf_free(&one);
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
const cJSON *pi_props_of(const cJSON *s)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "properties");
    return cJSON_IsObject(p) ? p : NULL;
}
#define props_of pi_props_of

/* A key usable as a TypedDict class-body field: an ASCII identifier, not a
 * keyword, and not name-mangled (`__x` inside a class becomes `_C__x`). */
bool pi_plain_field_name(const char *s)
{
    if (!s[0] || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return !is_keyword(s) && strncmp(s, "__", 2) != 0;
}
#define plain_field_name pi_plain_field_name

/* Alphanumerics of s, each run capitalized: "get_pull-request" → "GetPullRequest".
 * Never contains '_', so "<manual>_<Pascal>" names cannot collide across manuals. */
void pi_put_pascal(cm_buf *b, const char *s, const char *fallback)
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
#define put_pascal pi_put_pascal

/* ---- generator state --------------------------------------------------------- */

typedef struct ref_entry {
    char *ref;
    size_t block; /* class block, or SIZE_MAX for a non-object target */
    char *expr;   /* non-object target: its expression once rendered (NULL while being
                     expanded: a reference back is a cycle → Any) */
} ref_entry;

/* A non-object definition used again is rendered again from its first
 * expression when that is at most this long, else as Any: shared
 * enums/strings keep their type, and definitions that nest each other twice
 * (S_i = Union[S_i-1, S_i-1]) cannot grow the text exponentially. */
#define MAX_SHARED_EXPR 256

typedef struct gen {
    pi_tool *tool;      /* blocks go here */
    const cJSON *root;  /* schema $ref paths resolve against */
    const char *manual; /* access manual: class-name prefix */
    bool full;          /* every level, whole descriptions */
    bool out;           /* rendering outputs (compact: summarised) */
    int level;          /* object nesting below the root being rendered */
    bool capture;       /* the next class emitted is the root: keep its fields */
    ref_entry *refs;
    size_t nrefs;
    size_t *ref_slots; /* open-addressing index over refs: entry index + 1, 0 empty */
    size_t ref_cap;    /* power of two, at least twice nrefs */
} gen;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* A new (empty) class block with a preferred name; returns its index. */
static size_t new_block(gen *g, const char *stem)
{
    pi_tool *t = g->tool;
    t->blocks = realloc(t->blocks, (t->nblocks + 1) * sizeof *t->blocks);
    if (!t->blocks)
        abort();
    t->blocks[t->nblocks] = (pi_block){.stem = cm_xstrdup(stem)};
    return t->nblocks++;
}

/* The placeholder of block idx, as a class name inside text. */
static void put_ph(cm_buf *b, size_t idx)
{
    char ph[32];
    snprintf(ph, sizeof ph, "%c%zu%c", PH_OPEN, idx, PH_CLOSE);
    put(b, ph);
}

static void put_class_ref(cm_buf *e, size_t idx)
{
    put(e, "\"");
    put_ph(e, idx);
    put(e, "\"");
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

/* ---- TypedDicts ---------------------------------------------------------------- */

/* A description as a docstring line: whole (full), else its first sentence;
 * compact outputs carry none (their fields speak for themselves). */
static void emit_doc_line(const gen *g, cm_buf *b, const char *indent, const char *doc)
{
    if (!doc || !doc[0] || (!g->full && g->out))
        return;
    put(b, indent);
    if (g->full) {
        put_pystr(b, doc);
    } else {
        cm_buf one = {0};
        pi_put_sentence(&one, doc, BRIEF_DOC);
        put_pystr(b, one.data ? one.data : "");
        cm_buf_free(&one);
    }
    put(b, "\n");
}

static void emit_doc_comment(const gen *g, cm_buf *b, const char *prefix, const char *doc)
{
    if (!doc || (!g->full && g->out))
        return;
    put(b, prefix);
    if (g->full) {
        put_comment_text(b, doc, 400);
    } else {
        cm_buf one = {0};
        pi_put_sentence(&one, doc, BRIEF_DOC);
        put_comment_text(b, one.data ? one.data : "", 400);
        cm_buf_free(&one);
    }
    put(b, "\n");
}

static void capture_field(gen *g, const char *name, const char *expr, bool required)
{
    pi_tool *t = g->tool;
    t->fields = realloc(t->fields, (t->nfields + 1) * sizeof *t->fields);
    if (!t->fields)
        abort();
    t->fields[t->nfields++] =
        (pi_field){.name = cm_xstrdup(name), .expr = cm_xstrdup(expr), .required = required};
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

/* Compact outputs are total=False: every key optional, no NotRequired[] around each. */
static bool lenient(const gen *g)
{
    return !g->full && g->out;
}

static void class_header(const gen *g, cm_buf *body, const cJSON *s, size_t idx, bool functional)
{
    if (functional) {
        emit_doc_comment(g, body, "# ", cm_json_str(s, "description"));
        const cJSON *p;
        cJSON_ArrayForEach(p, props_of(s))
        {
            const char *d = cm_json_str(p, "description");
            if (!d || (!g->full && g->out))
                continue;
            put(body, "#   ");
            put_comment_text(body, p->string, 80);
            emit_doc_comment(g, body, ": ", d);
        }
        put_ph(body, idx);
        put(body, " = TypedDict(\"");
        put_ph(body, idx);
        put(body, "\", {");
        return;
    }
    put(body, "class ");
    put_ph(body, idx);
    put(body, lenient(g) ? "(TypedDict, total=False):\n" : "(TypedDict):\n");
    emit_doc_line(g, body, "    ", cm_json_str(s, "description"));
}

/* A compact output with many fields leaves out its hypermedia links
 * (`*_url`, GitHub's pull request has 10) but `html_url`, the one people
 * open; the comment that replaces them says how many, the full interface
 * has them. */
#define LINK_FOLD_FIELDS 16
static bool is_link(const char *field)
{
    size_t n = strlen(field);
    return n > 4 && !strcmp(field + n - 4, "_url") && strcmp(field, "html_url") != 0;
}

/* Whether s's links are folded: a compact output with many fields of which
 * at least half are not links (an object of links is all they are). */
static bool folds_links(const gen *g, const cJSON *s)
{
    size_t n = 0, links = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, props_of(s))
    {
        n++;
        links += is_link(p->string);
    }
    return lenient(g) && n > LINK_FOLD_FIELDS && 2 * links <= n;
}

/* Renders the object schema s as TypedDict block idx. */
static void emit_typeddict(gen *g, const cJSON *s, size_t idx, int depth)
{
    const cJSON *props = props_of(s), *p;
    bool functional = false, capture = g->capture;
    g->capture = false;
    if (capture)
        g->tool->fields_known = true;
    size_t nfields = 0;
    cJSON_ArrayForEach(p, props)
    {
        nfields++;
        if (!plain_field_name(p->string))
            functional = true;
    }
    cm_buf body = {0};
    class_header(g, &body, s, idx, functional);
    if (!functional && nfields == 0 && body.data[body.len - 2] == ':')
        put(&body, "    pass\n"); /* an empty class without a docstring */
    bool first = true;
    size_t folded = 0;
    bool fold = folds_links(g, s);
    g->level++;
    cJSON_ArrayForEach(p, props)
    {
        if (fold && is_link(p->string)) {
            folded++;
            continue;
        }
        cm_buf hint = {0};
        put(&hint, g->tool->blocks[idx].stem);
        put_pascal(&hint, p->string, "Field");
        cm_buf t = {0};
        type_expr(g, p, hint.data, &t, depth + 1);
        bool req = in_required(s, p->string) || lenient(g);
        if (capture)
            capture_field(g, p->string, t.data, in_required(s, p->string));
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
        if (!functional && g->full) {
            put(&body, "\n");
            emit_doc_line(g, &body, "    ", cm_json_str(p, "description"));
        } else if (!functional) { /* compact: the sentence on the field's line (an enum's
                                     values say enough) */
            if (cm_json_str(p, "description") && !g->out && strncmp(t.data, "Literal[", 8))
                emit_doc_comment(g, &body, "  # ", cm_json_str(p, "description"));
            else
                put(&body, "\n");
        }
        first = false;
        cm_buf_free(&hint);
        cm_buf_free(&t);
    }
    g->level--;
    if (functional)
        put(&body, lenient(g) ? "}, total=False)\n" : "})\n");
    if (folded) {
        char note[80];
        snprintf(note, sizeof note, "    # +%zu *_url fields\n", folded);
        put(&body, note);
    }
    put(&body, "\n");
    g->tool->blocks[idx].text = body.data;
}

/* Compact outputs stop at OUT_LEVELS levels of objects. */
static bool summarised(const gen *g)
{
    return !g->full && g->out && g->level >= OUT_LEVELS;
}

/* Quoted reference to a new TypedDict class for the object schema s. */
static void object_class(gen *g, const cJSON *s, const char *hint, cm_buf *e, int depth)
{
    if (summarised(g)) {
        put(e, "dict");
        return;
    }
    size_t idx = new_block(g, hint);
    emit_typeddict(g, s, idx, depth);
    put_class_ref(e, idx);
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

static void literal_expr(const gen *g, const cJSON *values, cm_buf *e)
{
    if (lenient(g)) { /* a compact output: the values are the API's business */
        const cJSON *v = cJSON_IsArray(values) ? values->child : NULL;
        put(e, cJSON_IsString(v)   ? "str"
               : cJSON_IsBool(v)   ? "bool"
               : cJSON_IsNumber(v) ? "float"
                                   : "Any");
        return;
    }
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
    g->refs[g->nrefs] = (ref_entry){.ref = cm_xstrdup(ref), .block = SIZE_MAX};
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

/* A named definition ("#/$defs/simple-user") is the class <manual>_SimpleUser,
 * so every tool of the manual that uses it can share one class.  In a
 * compact output below the first level it is `dict`: never cached,
 * since the same definition is a class where it is higher up. */
static void ref_expr(gen *g, const char *ref, const char *hint, cm_buf *e, int depth)
{
    const cJSON *target = resolve_ref(g->root, ref);
    if (target && is_object_schema(target) && summarised(g)) {
        put(e, "dict");
        return;
    }
    size_t found = find_ref(g, ref);
    if (found != SIZE_MAX) {
        const ref_entry *r = &g->refs[found];
        if (r->block != SIZE_MAX)
            put_class_ref(e, r->block);
        else
            put(e, r->expr ? r->expr : "Any"); /* NULL: a cycle through a non-object schema */
        return;
    }
    if (!target) {
        put(e, "Any");
        return;
    }
    size_t idx = add_ref(g, ref);
    if (is_object_schema(target)) {
        const char *last = strrchr(ref, '/');
        cm_buf stem = {0};
        put(&stem, g->manual);
        put(&stem, "_");
        put_pascal(&stem, last ? last + 1 : "Ref", "Ref");
        size_t block = new_block(g, stem.data);
        g->tool->blocks[block].named = true;
        cm_buf_free(&stem);
        g->refs[idx].block = block; /* registered first: a reference back is a forward ref */
        emit_typeddict(g, target, block, depth);
        put_class_ref(e, block);
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
    if (all_objects) {
        object_class(g, merged, hint, e, depth);
    } else {
        g->capture = false; /* the first part's classes are not the inputs' fields */
        type_expr(g, cJSON_GetArrayItem(parts, 0), hint, e, depth + 1);
    }
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
        literal_expr(g, one, e);
        cJSON_Delete(one);
        return;
    }
    if (cJSON_IsArray(x = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
        literal_expr(g, x, e);
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

static void gen_reset(gen *g)
{
    for (size_t i = 0; i < g->nrefs; i++) {
        free(g->refs[i].ref);
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
    g->level = 0;
    *is_td = false;
    if (!cJSON_IsObject(schema) || !schema->child) {
        put(e, "Any");
        return;
    }
    if (is_object_schema(schema) && !cJSON_GetObjectItemCaseSensitive(schema, "$ref") &&
        !cJSON_GetObjectItemCaseSensitive(schema, "anyOf") &&
        !cJSON_GetObjectItemCaseSensitive(schema, "oneOf")) {
        size_t first = g->tool->nblocks;
        g->capture = !g->out;
        if (cJSON_GetObjectItemCaseSensitive(schema, "allOf"))
            all_of_expr(g, cJSON_GetObjectItemCaseSensitive(schema, "allOf"), cls, e, 0);
        else
            object_class(g, schema, cls, e, 0);
        g->capture = false;
        *is_td = e->data && e->data[0] == '"';
        if (*is_td) /* the first block made is the root class (object_class makes it
                       before its fields' classes) */
            g->tool->blocks[first].root = true;
        return;
    }
    type_expr(g, schema, cls, e, 0);
}

void pi_render_tool(const char *access_manual, const char *access_tool, const cJSON *def, bool full,
                    pi_tool *t)
{
    memset(t, 0, sizeof *t);
    gen g = {.tool = t, .manual = access_manual, .full = full};
    cm_buf stem = {0};
    put(&stem, access_manual);
    put(&stem, "_");
    put_pascal(&stem, access_tool, "Tool");
    size_t stem_len = stem.len;
    cm_buf in = {0}, out = {0};
    bool out_td;
    put(&stem, "Input");
    root_expr(&g, cJSON_GetObjectItemCaseSensitive(def, "inputs"), stem.data, &in, &t->in_td);
    gen_reset(&g);
    stem.len = stem_len;
    put(&stem, "Output");
    g.out = true;
    root_expr(&g, cJSON_GetObjectItemCaseSensitive(def, "outputs"), stem.data, &out, &out_td);
    gen_reset(&g);
    cm_buf_free(&stem);
    t->in_expr = in.data ? in.data : cm_xstrdup("Any");
    t->out_expr = out.data ? out.data : cm_xstrdup("Any");
}

void pi_tool_free(pi_tool *t)
{
    for (size_t i = 0; i < t->nblocks; i++) {
        free(t->blocks[i].stem);
        free(t->blocks[i].text);
    }
    free(t->blocks);
    for (size_t i = 0; i < t->nfields; i++) {
        free(t->fields[i].name);
        free(t->fields[i].expr);
    }
    free(t->fields);
    free(t->in_expr);
    free(t->out_expr);
    memset(t, 0, sizeof *t);
}
