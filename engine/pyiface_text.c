/* pyiface_text.c — the text an agent reads of a tool (see pyiface.h): its
 * stub method, the one-line signature search answers with, the summary
 * sentence, the assembled interface text (a class several tools share
 * written once) and the compact index `__interfaces` is. */
#include "pyiface_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define put pi_put
#define putn pi_putn

/* `*`: typing's __all__ holds every name the classes use (Any, Dict, List,
 * Literal, NotRequired, Optional, TypedDict, Union, Unpack) in 5 tokens. */
const char CM_PYIFACE_HEADER[] = "from typing import *\n";

/* A signature lists the required parameters, and optional ones while it
 * shows fewer than this many. */
#define SIG_PARAMS 2
/* A summary is the description's first sentence, at most this long. */
#define SUMMARY_MAX 120

/* ---- short types (signatures) ------------------------------------------------- */

/* Length of the bracketed group starting at s ('['), strings skipped. */
static size_t group_len(const char *s)
{
    int depth = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '"') {
            for (i++; s[i] && s[i] != '"'; i++)
                if (s[i] == '\\' && s[i + 1])
                    i++;
            if (!s[i])
                return i;
        } else if (s[i] == '[')
            depth++;
        else if (s[i] == ']' && --depth == 0)
            return i + 1;
    }
    return strlen(s);
}

/* The classes of one tool, for its signature: final names, and whether
 * each is a definition's. */
typedef struct sig_names {
    char *const *names;
    const bool *named;
    size_t n;
} sig_names;

/* Whether the class `name` (len bytes) is an inline object's. */
static bool inline_class(const sig_names *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->names[i] && strlen(c->names[i]) == len && !memcmp(c->names[i], name, len))
            return !c->named[i];
    return false;
}

/* A type expression as a signature shows it: class names without quotes
 * and manual prefix, Literal[...] as its base type, List/Dict lower-case;
 * an inline object's class (a request body, named after some tool) is
 * `dict`: its name says nothing more. */
static void put_short_type(cm_buf *b, const char *e, const char *manual, const sig_names *c)
{
    size_t plen = strlen(manual);
    while (*e) {
        if (!strncmp(e, "Literal[", 8)) {
            const char *v = e + 8;
            put(b, *v == '"' ? "str" : (*v == 'T' || *v == 'F') ? "bool" : "int");
            e += group_len(e + 7) + 7;
        } else if (!strncmp(e, "Dict[str, Any]", 14)) {
            put(b, "dict");
            e += 14;
        } else if (!strncmp(e, "List[", 5) || !strncmp(e, "Dict[", 5)) {
            put(b, *e == 'L' ? "list[" : "dict[");
            e += 5;
        } else if (*e == '"') {
            const char *end = strchr(e + 1, '"');
            if (!end)
                break;
            const char *n = e + 1;
            if (inline_class(c, n, (size_t)(end - n)))
                put(b, "dict");
            else {
                if (!strncmp(n, manual, plen) && n[plen] == '_')
                    n += plen + 1;
                putn(b, n, (size_t)(end - n));
            }
            e = end + 1;
        } else {
            putn(b, e++, 1);
        }
    }
}

/* A type expression with its class names unquoted: the stub methods come
 * after every class, so no forward reference is left (Literal strings
 * keep their quotes). */
static char *unquoted(const char *e)
{
    cm_buf b = {0};
    while (*e) {
        if (!strncmp(e, "Literal[", 8)) {
            size_t n = group_len(e + 7) + 7;
            putn(&b, e, n);
            e += n;
        } else if (*e == '"') {
            e++;
        } else {
            putn(&b, e++, 1);
        }
    }
    return b.data ? b.data : cm_xstrdup("Any");
}

static void put_sig_param(cm_buf *b, const pi_field *f, const char *manual, const sig_names *c)
{
    if (pi_plain_field_name(f->name))
        put(b, f->name);
    else
        pi_put_pystr(b, f->name);
    put(b, ": ");
    cm_autofree char *expr = pi_substitute(f->expr, c->names, c->n);
    put_short_type(b, expr, manual, c);
    if (!f->required)
        put(b, " = ...");
}

static char *signature(const char *manual, const char *tool, const pi_tool *t, const sig_names *c)
{
    cm_buf b = {0};
    put(&b, manual);
    put(&b, ".");
    put(&b, tool);
    put(&b, "(");
    size_t shown = 0;
    bool more = !(t->in_td && t->fields_known);
    for (int pass = 0; pass < 2; pass++) /* required first, then a few optional */
        for (size_t i = 0; i < t->nfields; i++) {
            if (t->fields[i].required != (pass == 0))
                continue;
            if (pass == 1 && shown >= SIG_PARAMS) {
                more = true;
                continue;
            }
            if (shown++)
                put(&b, ", ");
            put_sig_param(&b, &t->fields[i], manual, c);
        }
    if (more)
        put(&b, shown ? ", ..." : "...");
    put(&b, ") -> ");
    cm_autofree char *out = pi_substitute(t->out_expr, c->names, c->n);
    put_short_type(&b, out, manual, c);
    return b.data;
}

/* ---- the stub method ------------------------------------------------------------ */

/* "await m.t(a=..., b=...)", every parameter. */
static void put_access_form(cm_buf *b, const char *manual, const char *tool, const cJSON *inputs)
{
    put(b, "await ");
    put(b, manual);
    put(b, ".");
    put(b, tool);
    put(b, "(");
    const cJSON *p;
    bool first = true;
    cJSON_ArrayForEach(p, pi_props_of(inputs))
    {
        if (!first)
            put(b, ", ");
        if (pi_plain_field_name(p->string)) {
            put(b, p->string);
            put(b, "=...");
        } else {
            put(b, "**{");
            pi_put_pystr(b, p->string);
            put(b, ": ...}");
        }
        first = false;
    }
    put(b, ")");
}

static char *method(const char *manual, const char *tool, const cJSON *def, const char *in,
                    const char *out, bool in_td, bool full)
{
    const char *name = cm_json_str(def, "name"), *desc = cm_json_str(def, "description");
    cm_buf m = {0};
    put(&m, "    @staticmethod\n    async def ");
    put(&m, tool);
    put(&m, in_td ? "(**kwargs: Unpack[" : "(**kwargs: Any");
    if (in_td)
        put(&m, in);
    put(&m, in_td ? "]) -> " : ") -> ");
    put(&m, out);
    put(&m, ":\n        ");
    cm_buf doc = {0};
    if (full) { /* the whole description, the call with every parameter, the UTCP name */
        if (desc && desc[0]) {
            put(&doc, desc);
            put(&doc, "\n\n");
        }
        put(&doc, "Access: ");
        put_access_form(&doc, manual, tool, cJSON_GetObjectItemCaseSensitive(def, "inputs"));
        put(&doc, "\nUTCP name: ");
        put(&doc, name ? name : tool);
    } else { /* compact: the first sentence (the signature says the rest) */
        pi_put_sentence(&doc, desc && desc[0] ? desc : (name ? name : tool), SUMMARY_MAX);
    }
    pi_put_pystr(&m, doc.data ? doc.data : "");
    put(&m, "\n        ...\n");
    cm_buf_free(&doc);
    return m.data;
}

/* ---- the summary ---------------------------------------------------------------- */

static const char *const FILLER[] = {"a",  "an", "the", "for",  "of",  "to",
                                     "on", "in", "by",  "with", "and", "from"};

/* The lower-case alphanumeric word at *p (advanced past it), "" at the end. */
static bool next_word(const char **p, char *w, size_t cap)
{
    const unsigned char *s = (const unsigned char *)*p;
    while (*s &&
           !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
        s++;
    size_t n = 0;
    while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) {
        if (n + 1 < cap)
            w[n++] = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
        s++;
    }
    w[n] = '\0';
    *p = (const char *)s;
    return n > 0;
}

/* Whether word w (or w without / with a final s) is one of the name's words. */
static bool in_name(const char *name, const char *w)
{
    char x[64];
    size_t n = strlen(w);
    for (const char *p = name; next_word(&p, x, sizeof x);) {
        size_t k = strlen(x);
        if (!strcmp(x, w) || (k + 1 == n && w[k] == 's' && !strncmp(x, w, k)) ||
            (n + 1 == k && x[n] == 's' && !strncmp(x, w, n)))
            return true;
    }
    return false;
}

/* A summary that only says the tool's name again ("List branches" for
 * repos_list_branches): left out, since search answers and the index show
 * the name already (issue 20: a 10-result answer under 400 tokens). */
static bool says_only_name(const char *summary, const char *tool)
{
    char w[64];
    bool any = false;
    for (const char *p = summary; next_word(&p, w, sizeof w);) {
        bool filler = false;
        for (size_t i = 0; i < sizeof FILLER / sizeof *FILLER; i++)
            filler |= !strcmp(FILLER[i], w);
        if (!filler && !in_name(tool, w))
            return false;
        any = true;
    }
    return any;
}

void pi_tool_texts(const char *access_manual, const char *access_tool, const cJSON *def,
                   const pi_tool *t, char *const *names, const bool *named, bool full,
                   cm_pyiface_tool_text *out)
{
    sig_names c = {.names = names, .named = named, .n = t->nblocks};
    cm_autofree char *in0 = pi_substitute(t->in_expr, names, t->nblocks);
    cm_autofree char *res0 = pi_substitute(t->out_expr, names, t->nblocks);
    cm_autofree char *in = unquoted(in0);
    cm_autofree char *res = unquoted(res0);
    out->method = method(access_manual, access_tool, def, in, res, t->in_td, full);
    out->signature = signature(access_manual, access_tool, t, &c);
    cm_buf s = {0};
    const char *desc = cm_json_str(def, "description");
    pi_put_sentence(&s, desc ? desc : "", SUMMARY_MAX);
    if (s.data && says_only_name(s.data, access_tool))
        s.data[0] = '\0';
    out->summary = s.data ? s.data : cm_xstrdup("");
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
    const char *manual, *classes, *method, *signature, *summary;
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

/* Each class block (a class ends with a blank line) once. */
static void put_classes_once(cm_buf *b, const char *classes, pi_strset *seen)
{
    const char *p = classes;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        size_t n = end ? (size_t)(end - p) + 2 : strlen(p);
        cm_buf one = {0};
        putn(&one, p, n);
        if (!pi_strset_has(seen, one.data)) {
            pi_strset_add(seen, one.data);
            putn(b, p, n);
        }
        cm_buf_free(&one);
        p += n;
    }
}

/* One manual's classes and namespace class; `# namespace` heads it when
 * several tools are written (one tool's text is short enough without). */
static void put_manual(cm_buf *b, const iface_entry *e, size_t n, size_t group, pi_strset *seen,
                       bool heading)
{
    const char *manual = e[group].manual;
    put(b, "\n");
    if (heading) {
        put(b, "# namespace ");
        put(b, manual);
        put(b, "\n");
    }
    for (size_t i = group; i < n; i++)
        if (e[i].group == group)
            put_classes_once(b, e[i].classes, seen);
    put(b, "class ");
    put_namespace_class(b, manual);
    put(b, ":\n");
    for (size_t i = group; i < n; i++)
        if (e[i].group == group)
            put(b, e[i].method);
}

static const char *str_or_empty(const cJSON *t, const char *key)
{
    const char *s = cm_json_str(t, key);
    return s ? s : "";
}

/* The entries to write, grouped by manual; n = 0 when none match. */
static iface_entry *collect(const cJSON *tools, const char *only, size_t *count)
{
    size_t cap = (size_t)cJSON_GetArraySize(tools) + 1, n = 0;
    iface_entry *e = cm_xcalloc(cap, sizeof *e);
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const char *am = cm_json_str(t, "access_manual");
        if (!am || (only && !tool_matches(t, only)))
            continue;
        e[n] = (iface_entry){.manual = am,
                             .classes = str_or_empty(t, "iface_classes"),
                             .method = str_or_empty(t, "iface_method"),
                             .signature = str_or_empty(t, "iface_signature"),
                             .summary = str_or_empty(t, "iface_summary")};
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
    *count = n;
    return e;
}

char *cm_pyiface_assemble(const cJSON *tools, const char *only)
{
    size_t n;
    iface_entry *e = collect(tools, only, &n);
    if (only && n == 0) {
        free(e);
        return NULL;
    }
    cm_buf b = {0};
    pi_strset seen;
    pi_strset_init(&seen);
    put(&b, CM_PYIFACE_HEADER);
    for (size_t i = 0; i < n; i++)
        if (e[i].group == i)
            put_manual(&b, e, n, i, &seen, !only);
    pi_strset_free(&seen);
    free(e);
    return b.data;
}

/* s on one line: control characters become spaces. */
static void put_line_text(cm_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        putn(b, (*p < 0x20 || *p == 0x7f) ? " " : (const char *)p, 1);
}

/* rootfs/runner_chain.py (_index) writes the same index from the same entries. */
char *cm_pyiface_index(const cJSON *tools)
{
    size_t n;
    iface_entry *e = collect(tools, NULL, &n);
    cm_buf b = {0};
    put(&b, "# Tools: await <manual>.<tool>(name=value, ...). One tool's types: "
            "get_tool_interface(\"<manual>.<tool>\").\n");
    for (size_t g = 0; g < n; g++) {
        if (e[g].group != g)
            continue;
        put(&b, "# namespace ");
        put(&b, e[g].manual);
        put(&b, "\n");
        for (size_t i = g; i < n; i++) {
            if (e[i].group != g)
                continue;
            put(&b, "#   ");
            put_line_text(&b, e[i].signature);
            if (e[i].summary[0]) {
                put(&b, "  # ");
                put_line_text(&b, e[i].summary);
            }
            put(&b, "\n");
        }
    }
    free(e);
    return b.data;
}
