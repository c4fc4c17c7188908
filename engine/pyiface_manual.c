/* pyiface_manual.c — one manual's classes (see pyiface.h).  A manual like
 * GitHub's has 1,223 tools whose schemas reference the same definitions
 * hundreds of times (simple-user, repository, ...); writing them once per
 * tool made one tool's interface thousands of tokens.  Each tool is
 * rendered with placeholder class names (pyiface_int.h); here every block
 * either matches a class the manual already has (same text once the names
 * it references are final: a `$ref`'d definition or any structurally
 * identical object) and is dropped for a reference to it, or becomes a new
 * class under a unique name.  A tool's `classes` text holds the classes it
 * uses and those they use, so it still compiles alone. */
#include "pyiface_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct m_class {
    char *name;
    bool named; /* a definition's class (its first block's) */
    char *key;  /* its text with its own name as "\x01" (NULL: not shareable) */
    char *text; /* final text */
    size_t *deps, ndeps;
} m_class;

struct cm_pyiface_manual {
    char *access;
    pi_strset names; /* the class names taken */
    m_class *classes;
    size_t nclasses;
    size_t *key_slots; /* index + 1 of classes by key, 0 empty */
    size_t key_cap;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

cm_pyiface_manual *cm_pyiface_manual_new(const char *access_manual)
{
    cm_pyiface_manual *m = cm_xcalloc(1, sizeof *m);
    m->access = cm_xstrdup(access_manual);
    pi_strset_init(&m->names);
    return m;
}

void cm_pyiface_manual_free(cm_pyiface_manual *m)
{
    if (!m)
        return;
    pi_strset_free(&m->names);
    for (size_t i = 0; i < m->nclasses; i++) {
        free(m->classes[i].name);
        free(m->classes[i].key);
        free(m->classes[i].text);
        free(m->classes[i].deps);
    }
    free(m->classes);
    free(m->key_slots);
    free(m->access);
    free(m);
}

/* ---- names ------------------------------------------------------------------ */

void pi_strset_init(pi_strset *set)
{
    set->cap = 64;
    set->n = 0;
    set->slots = cm_xcalloc(set->cap, sizeof *set->slots);
}

void pi_strset_free(pi_strset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    set->slots = NULL;
}

bool pi_strset_has(const pi_strset *set, const char *s)
{
    for (size_t i = hash_str(s) & (set->cap - 1); set->slots[i]; i = (i + 1) & (set->cap - 1))
        if (!strcmp(set->slots[i], s))
            return true;
    return false;
}

static void strset_insert(char **slots, size_t cap, char *s)
{
    size_t i = hash_str(s) & (cap - 1);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = s;
}

void pi_strset_add(pi_strset *set, const char *s)
{
    if (2 * (set->n + 1) > set->cap) {
        size_t cap = set->cap * 2;
        char **slots = cm_xcalloc(cap, sizeof *slots);
        for (size_t i = 0; i < set->cap; i++)
            if (set->slots[i])
                strset_insert(slots, cap, set->slots[i]);
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    strset_insert(set->slots, set->cap, cm_xstrdup(s));
    set->n++;
}

/* Reserves a unique class name "<stem>" (or "<stem>2", ...). Caller frees. */
static char *reserve_name(cm_pyiface_manual *m, const char *stem)
{
    cm_buf b = {0};
    pi_put(&b, stem);
    for (int i = 2; pi_strset_has(&m->names, b.data); i++) {
        b.len = 0;
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        pi_put(&b, stem);
        pi_put(&b, num);
    }
    pi_strset_add(&m->names, b.data);
    return b.data;
}

/* ---- placeholders ------------------------------------------------------------- */

/* Reads the placeholder at p (its block index into *idx); returns its
 * length, 0 when it is malformed. */
static size_t parse_ph(const char *p, size_t *idx)
{
    size_t n = 0, i = 1;
    while (p[i] >= '0' && p[i] <= '9')
        n = n * 10 + (size_t)(p[i++] - '0');
    *idx = n;
    return p[i] == PH_CLOSE ? i + 1 : 0;
}

char *pi_substitute(const char *text, char *const *names, size_t nnames)
{
    cm_buf b = {0};
    for (const char *p = text; *p;) {
        const char *ph = strchr(p, PH_OPEN);
        if (!ph) {
            pi_put(&b, p);
            break;
        }
        pi_putn(&b, p, (size_t)(ph - p));
        size_t idx, len = parse_ph(ph, &idx);
        if (len && idx < nnames && names[idx])
            pi_put(&b, names[idx]);
        else if (len)
            pi_putn(&b, ph, len); /* not final yet: kept */
        else
            len = 1; /* cannot happen: placeholders are written whole */
        p = ph + len;
    }
    return b.data ? b.data : cm_xstrdup("");
}

/* Whether text still holds a placeholder other than block self's. */
static bool has_foreign_ph(const char *text, size_t self)
{
    for (const char *p = strchr(text, PH_OPEN); p; p = strchr(p + 1, PH_OPEN)) {
        size_t idx;
        if (parse_ph(p, &idx) && idx != self)
            return true;
    }
    return false;
}

/* ---- the manual's classes --------------------------------------------------- */

static size_t find_class(const cm_pyiface_manual *m, const char *key)
{
    if (!m->key_cap)
        return SIZE_MAX;
    for (size_t i = hash_str(key) & (m->key_cap - 1); m->key_slots[i];
         i = (i + 1) & (m->key_cap - 1))
        if (!strcmp(m->classes[m->key_slots[i] - 1].key, key))
            return m->key_slots[i] - 1;
    return SIZE_MAX;
}

static void slot_key(cm_pyiface_manual *m, size_t idx)
{
    size_t i = hash_str(m->classes[idx].key) & (m->key_cap - 1);
    while (m->key_slots[i])
        i = (i + 1) & (m->key_cap - 1);
    m->key_slots[i] = idx + 1;
}

static size_t add_class(cm_pyiface_manual *m, char *name, char *key)
{
    m->classes = realloc(m->classes, (m->nclasses + 1) * sizeof *m->classes);
    if (!m->classes)
        abort();
    m->classes[m->nclasses] = (m_class){.name = name, .key = key};
    size_t idx = m->nclasses++;
    if (!key)
        return idx;
    size_t keyed = 0;
    for (size_t i = 0; i < m->nclasses; i++)
        keyed += m->classes[i].key != NULL;
    if (2 * keyed > m->key_cap) {
        free(m->key_slots);
        m->key_cap = m->key_cap ? m->key_cap * 2 : 64;
        m->key_slots = cm_xcalloc(m->key_cap, sizeof *m->key_slots);
        for (size_t i = 0; i < m->nclasses; i++)
            if (m->classes[i].key)
                slot_key(m, i);
    } else {
        slot_key(m, idx);
    }
    return idx;
}

/* The manual classes block text references (placeholders → class index). */
static void set_deps(m_class *c, const char *text, const size_t *cls_of, size_t nblocks,
                     size_t self)
{
    for (const char *p = strchr(text, PH_OPEN); p; p = strchr(p + 1, PH_OPEN)) {
        size_t idx;
        if (!parse_ph(p, &idx) || idx >= nblocks || idx == self)
            continue;
        c->deps = realloc(c->deps, (c->ndeps + 1) * sizeof *c->deps);
        if (!c->deps)
            abort();
        c->deps[c->ndeps++] = cls_of[idx];
    }
}

/* Marks class i and everything it uses in used[]. */
static void mark_used(const cm_pyiface_manual *m, size_t i, bool *used)
{
    if (used[i])
        return;
    used[i] = true;
    for (size_t k = 0; k < m->classes[i].ndeps; k++)
        mark_used(m, m->classes[i].deps[k], used);
}

/* The key of a block from its text with the names it uses final: its own
 * name "\x01". */
static char *block_key(const char *sub, size_t self)
{
    cm_buf b = {0};
    for (const char *p = sub; *p;) {
        size_t idx, len = *p == PH_OPEN ? parse_ph(p, &idx) : 0;
        if (len && idx == self) {
            pi_put(&b, "\x01");
            p += len;
        } else {
            pi_putn(&b, p, 1);
            p++;
        }
    }
    return b.data;
}

/* Decides block i: an existing class with the same text (names it uses
 * final), or a new class under a unique name. */
static void decide(cm_pyiface_manual *m, const pi_tool *t, size_t i, char **names, size_t *cls_of)
{
    const pi_block *b = &t->blocks[i];
    char *key = NULL;
    if (!b->root) {
        cm_autofree char *sub = pi_substitute(b->text, names, t->nblocks);
        if (!has_foreign_ph(sub, i))
            key = block_key(sub, i);
    }
    size_t found = key ? find_class(m, key) : SIZE_MAX;
    if (found != SIZE_MAX) {
        free(key);
        cls_of[i] = found;
        names[i] = cm_xstrdup(m->classes[found].name);
        return;
    }
    names[i] = reserve_name(m, b->stem);
    cls_of[i] = add_class(m, cm_xstrdup(names[i]), key);
    m->classes[cls_of[i]].named = b->named;
}

/* The next block that block i's text names after position *pos and that
 * is not decided or being decided, or SIZE_MAX. */
static size_t next_open_ref(const pi_tool *t, size_t i, size_t *pos, const char *state)
{
    const char *text = t->blocks[i].text;
    for (const char *p = strchr(text + *pos, PH_OPEN); p; p = strchr(p + 1, PH_OPEN)) {
        size_t idx;
        *pos = (size_t)(p - text) + 1;
        if (parse_ph(p, &idx) && idx < t->nblocks && !state[idx])
            return idx;
    }
    return SIZE_MAX;
}

/* Decides every block of t, each after the blocks it names (depth first,
 * with an explicit stack: a chain of definitions may be long), so a parent
 * sees its children's final names and can match an existing class; a block
 * in a cycle still names one being decided, and is never shared.
 * names[i] receives block i's final name, cls_of[i] its class. */
static void commit_blocks(cm_pyiface_manual *m, const pi_tool *t, char **names, size_t *cls_of)
{
    cm_autofree char *state = cm_xcalloc(t->nblocks + 1, 1); /* 1 open, 2 decided */
    cm_autofree size_t *stack = cm_xcalloc(t->nblocks + 1, sizeof *stack);
    cm_autofree size_t *pos = cm_xcalloc(t->nblocks + 1, sizeof *pos);
    for (size_t root = 0; root < t->nblocks; root++) {
        if (state[root])
            continue;
        size_t depth = 0;
        stack[depth++] = root;
        state[root] = 1;
        while (depth) {
            size_t i = stack[depth - 1];
            size_t next = next_open_ref(t, i, &pos[i], state);
            if (next != SIZE_MAX) {
                state[next] = 1;
                stack[depth++] = next;
                continue;
            }
            decide(m, t, i, names, cls_of);
            state[i] = 2;
            depth--;
        }
    }
    for (size_t i = 0; i < t->nblocks; i++) {
        m_class *c = &m->classes[cls_of[i]];
        if (c->text)
            continue; /* an existing class */
        c->text = pi_substitute(t->blocks[i].text, names, t->nblocks);
        set_deps(c, t->blocks[i].text, cls_of, t->nblocks, i);
    }
}

/* The classes a tool uses (and those they use), in the manual's order. */
static char *tool_classes(const cm_pyiface_manual *m, const size_t *cls_of, size_t n)
{
    cm_autofree bool *used = cm_xcalloc(m->nclasses ? m->nclasses : 1, sizeof *used);
    for (size_t i = 0; i < n; i++)
        mark_used(m, cls_of[i], used);
    cm_buf b = {0};
    for (size_t i = 0; i < m->nclasses; i++)
        if (used[i] && m->classes[i].text)
            pi_put(&b, m->classes[i].text);
    return b.data ? b.data : cm_xstrdup("");
}

static void generate(cm_pyiface_manual *m, const char *access_tool, const cJSON *def, bool full,
                     cm_pyiface_tool_text *out)
{
    pi_tool t;
    pi_render_tool(m->access, access_tool, def, full, &t);
    char **names = cm_xcalloc(t.nblocks + 1, sizeof *names);
    size_t *cls_of = cm_xcalloc(t.nblocks + 1, sizeof *cls_of);
    commit_blocks(m, &t, names, cls_of);
    out->classes = tool_classes(m, cls_of, t.nblocks);
    bool *named = cm_xcalloc(t.nblocks + 1, sizeof *named);
    for (size_t i = 0; i < t.nblocks; i++)
        named[i] = m->classes[cls_of[i]].named;
    pi_tool_texts(m->access, access_tool, def, &t, names, named, full, out);
    free(named);
    for (size_t i = 0; i < t.nblocks; i++)
        free(names[i]);
    free(names);
    free(cls_of);
    pi_tool_free(&t);
}

void cm_pyiface_tool(cm_pyiface_manual *m, const char *access_tool, const cJSON *def,
                     cm_pyiface_tool_text *out)
{
    generate(m, access_tool, def, false, out);
}

void cm_pyiface_tool_full(const char *access_manual, const char *access_tool, const cJSON *def,
                          cm_pyiface_tool_text *out)
{
    cm_pyiface_manual *m = cm_pyiface_manual_new(access_manual);
    generate(m, access_tool, def, true, out);
    cm_pyiface_manual_free(m);
}

void cm_pyiface_tool_text_free(cm_pyiface_tool_text *t)
{
    free(t->classes);
    free(t->method);
    free(t->signature);
    free(t->summary);
    memset(t, 0, sizeof *t);
}
