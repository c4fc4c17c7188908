/* jsonschema.c — the JSON Schema subset tool `inputs` use, checked against
 * a call's arguments before policy and provider (see jsonschema.h for what
 * is checked and why; anything not understood is accepted, so a schema
 * this does not know never refuses a valid call). */
#include "jsonschema.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_DEPTH 64 /* deeper values are accepted unchecked */
#define MAX_REF_HOPS 16

typedef struct checker {
    const cJSON *root; /* "#/..." resolves against it */
    cm_error *err;
} checker;

/* ---- names ------------------------------------------------------------ */

int cm_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 255 || lb > 255)
        return 255;
    unsigned char row[256];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned char diag = row[0];
        row[0] = (unsigned char)(i > 255 ? 255 : i);
        for (size_t j = 1; j <= lb; j++) {
            unsigned char up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = (unsigned char)(best > 255 ? 255 : best);
            diag = up;
        }
    }
    return row[lb];
}

const char *cm_nearest_name(const char *word, const char *const *candidates)
{
    int limit = (int)strlen(word) / 3;
    if (limit < 2)
        limit = 2;
    const char *best = NULL;
    int best_d = limit + 1;
    for (size_t i = 0; candidates[i]; i++) {
        int d = cm_edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

/* ---- paths and messages ------------------------------------------------ */

static void path_key(char *out, size_t cap, const char *path, const char *key)
{
    snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

static const char *json_type(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsObject(v))
        return "object";
    if (cJSON_IsNumber(v))
        return v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15 ? "integer"
                                                                                      : "number";
    return "unknown";
}

/* "string", "string or null", "one of \"a\", \"b\"" — what the schema wants. */
static void expected(const cJSON *s, char *out, size_t cap)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    out[0] = 0;
    if (cJSON_IsArray(en)) {
        size_t n = (size_t)snprintf(out, cap, "one of ");
        const cJSON *e;
        cJSON_ArrayForEach(e, en)
        {
            cm_autofree char *txt = cm_json_print(e);
            if (n < cap)
                n += (size_t)snprintf(out + n, cap - n, "%s%.40s", e == en->child ? "" : ", ", txt);
        }
    } else if (cJSON_IsString(t)) {
        snprintf(out, cap, "%s", t->valuestring);
    } else if (cJSON_IsArray(t)) {
        size_t n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, t) if (cJSON_IsString(e) && n < cap) n +=
            (size_t)snprintf(out + n, cap - n, "%s%s", n ? " or " : "", e->valuestring);
    }
    if (!out[0])
        snprintf(out, cap, "a value matching the schema");
}

static int fail(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(checker *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->err->kind = CM_ERR_INVALID_ARGUMENTS;
    c->err->sys_errno = 0;
    vsnprintf(c->err->message, sizeof c->err->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_type(checker *c, const char *path, const cJSON *s, const cJSON *v)
{
    char want[256];
    expected(s, want, sizeof want);
    cm_autofree char *got = cm_json_print(v);
    if (!path[0])
        return fail(c, "arguments must be %s, got %s", want, json_type(v));
    return fail(c, "argument `%s` must be %s, got %s %.60s", path, want, json_type(v), got);
}

/* ---- $ref ------------------------------------------------------------- */

/* "#/$defs/A~1B" against the root; NULL when it does not resolve. */
static const cJSON *resolve_ref(const cJSON *root, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const cJSON *node = root;
    const char *p = ref + 1;
    while (*p == '/' && node) {
        p++;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                tok[n++] = *p++;
            }
        }
        tok[n] = 0;
        if (cJSON_IsArray(node)) {
            char *end;
            long i = strtol(tok, &end, 10);
            node = *end ? NULL : cJSON_GetArrayItem(node, (int)i);
        } else {
            node = cJSON_GetObjectItemCaseSensitive(node, tok);
        }
    }
    return *p ? NULL : node;
}

/* ---- the check -------------------------------------------------------- */

static bool type_matches(const char *t, const cJSON *v)
{
    if (!strcmp(t, "string"))
        return cJSON_IsString(v);
    if (!strcmp(t, "integer"))
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (!strcmp(t, "number"))
        return cJSON_IsNumber(v);
    if (!strcmp(t, "boolean"))
        return cJSON_IsBool(v);
    if (!strcmp(t, "object"))
        return cJSON_IsObject(v);
    if (!strcmp(t, "array"))
        return cJSON_IsArray(v);
    if (!strcmp(t, "null"))
        return cJSON_IsNull(v);
    return true; /* a type this does not know: not refused */
}

static bool type_ok(const cJSON *s, const cJSON *v)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(t))
        return type_matches(t->valuestring, v);
    if (cJSON_IsArray(t)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t) if (!cJSON_IsString(e) ||
                                     type_matches(e->valuestring, v)) return true;
        return false;
    }
    return true;
}

static int check(checker *c, const cJSON *s, const cJSON *v, const char *path, int depth);

static int check_object(checker *c, const cJSON *s, const cJSON *v, const char *path, int depth)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    bool patterned = cJSON_GetObjectItemCaseSensitive(s, "patternProperties") != NULL;
    char sub[512];
    const cJSON *r;
    cJSON_ArrayForEach(r, req)
    {
        if (!cJSON_IsString(r) || cJSON_GetObjectItemCaseSensitive(v, r->valuestring))
            continue;
        char want[256];
        expected(cJSON_GetObjectItemCaseSensitive(props, r->valuestring), want, sizeof want);
        path_key(sub, sizeof sub, path, r->valuestring);
        if (!strcmp(want, "a value matching the schema"))
            return fail(c, "missing required argument `%s`", sub);
        return fail(c, "missing required argument `%s` (%s)", sub, want);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, v)
    {
        path_key(sub, sizeof sub, path, item->string);
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, item->string);
        if (ps) {
            if (check(c, ps, item, sub, depth + 1) < 0)
                return -1;
        } else if (cJSON_IsFalse(addl) && !patterned) {
            const char *names[128];
            size_t n = 0;
            const cJSON *p;
            cJSON_ArrayForEach(p, props) if (n + 1 < sizeof names / sizeof *names) names[n++] =
                p->string;
            names[n] = NULL;
            const char *near = cm_nearest_name(item->string, names);
            if (near)
                return fail(c, "unexpected argument `%s` (did you mean `%s`?)", sub, near);
            return fail(c, "unexpected argument `%s`", sub);
        } else if (cJSON_IsObject(addl) && !patterned) {
            if (check(c, addl, item, sub, depth + 1) < 0)
                return -1;
        }
    }
    return 0;
}

static int check_array(checker *c, const cJSON *s, const cJSON *v, const char *path, int depth)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    if (cJSON_IsArray(items)) /* draft 4 tuple form */
        prefix = items, items = NULL;
    char sub[512];
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        const cJSON *es = cJSON_IsArray(prefix) ? cJSON_GetArrayItem(prefix, i) : NULL;
        if (!es)
            es = items;
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        if (es && check(c, es, e, sub, depth + 1) < 0)
            return -1;
        i++;
    }
    return 0;
}

/* anyOf / oneOf: the value matches at least one (oneOf's "exactly one" is
 * not enforced: overlapping alternatives are common in real schemas). */
static int check_any(checker *c, const cJSON *alts, const cJSON *v, const char *path, int depth)
{
    const cJSON *a;
    cm_error first = {0};
    cJSON_ArrayForEach(a, alts)
    {
        cm_error *saved = c->err;
        cm_error tmp;
        c->err = &tmp;
        int rc = check(c, a, v, path, depth + 1);
        c->err = saved;
        if (rc == 0)
            return 0;
        if (!first.message[0])
            first = tmp;
    }
    if (!alts->child)
        return 0;
    char want[256] = "";
    size_t n = 0;
    cJSON_ArrayForEach(a, alts)
    {
        char one[128];
        expected(a, one, sizeof one);
        if (n < sizeof want)
            n += (size_t)snprintf(want + n, sizeof want - n, "%s%s", n ? " | " : "", one);
    }
    if (!path[0])
        return fail(c, "arguments match none of: %s (%s)", want, first.message);
    return fail(c, "argument `%s` matches none of: %s, got %s", path, want, json_type(v));
}

static int check(checker *c, const cJSON *s, const cJSON *v, const char *path, int depth)
{
    for (int hops = 0; cJSON_IsObject(s) && hops < MAX_REF_HOPS; hops++) {
        const char *ref = cm_json_str(s, "$ref");
        const cJSON *target = ref ? resolve_ref(c->root, ref) : NULL;
        if (!target)
            break;
        s = target;
    }
    if (cJSON_IsFalse(s))
        return path[0] ? fail(c, "argument `%s` is not allowed", path)
                       : fail(c, "no arguments are allowed");
    if (!cJSON_IsObject(s) || depth > MAX_DEPTH || cm_json_str(s, "$ref"))
        return 0; /* true, {} or what this does not resolve: anything */
    if (cJSON_IsNull(v) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "nullable")))
        return 0;
    if (!type_ok(s, v))
        return fail_type(c, path, s, v);
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    if (cJSON_IsArray(en)) {
        bool found = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, en) if (cJSON_Compare(e, v, true)) found = true;
        if (!found)
            return fail_type(c, path, s, v);
    }
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (cn && !cJSON_Compare(cn, v, true)) {
        cm_autofree char *want = cm_json_print(cn);
        return fail(c, "argument `%s` must be %.60s", path[0] ? path : "(all)", want);
    }
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf"), *a;
    cJSON_ArrayForEach(a, all) if (check(c, a, v, path, depth + 1) < 0) return -1;
    const char *alt_keys[] = {"anyOf", "oneOf"};
    for (size_t k = 0; k < 2; k++) {
        const cJSON *alts = cJSON_GetObjectItemCaseSensitive(s, alt_keys[k]);
        if (cJSON_IsArray(alts) && check_any(c, alts, v, path, depth) < 0)
            return -1;
    }
    if (cJSON_IsObject(v))
        return check_object(c, s, v, path, depth);
    if (cJSON_IsArray(v))
        return check_array(c, s, v, path, depth);
    return 0;
}

int cm_schema_check_args(const cJSON *schema, const cJSON *value, cm_error *err)
{
    checker c = {.root = schema, .err = err};
    return check(&c, schema, value, "", 0);
}

/* ---- signature -------------------------------------------------------- */

static const char *py_type(const cJSON *root, const cJSON *s)
{
    const char *ref = cm_json_str(s, "$ref");
    if (ref) {
        const cJSON *t = resolve_ref(root, ref);
        if (!t || cm_json_str(t, "$ref"))
            return "Any";
        s = t;
    }
    const char *t = cm_json_str(s, "type");
    if (!t)
        return cJSON_GetObjectItemCaseSensitive(s, "enum") ? "Literal[...]" : "Any";
    static const char *const map[][2] = {
        {"string", "str"},  {"integer", "int"}, {"number", "float"}, {"boolean", "bool"},
        {"object", "dict"}, {"array", "list"},  {"null", "None"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(t, map[i][0]))
            return map[i][1];
    return "Any";
}

char *cm_schema_signature(const char *name, const cJSON *schema)
{
    cm_buf b = {0};
    cm_error err;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    cm_buf_printf(&b, &err, "%s(", name);
    const cJSON *p;
    int n = 0;
    for (int pass = 0; pass < 2; pass++) /* required first, as Python wants */
        cJSON_ArrayForEach(p, props)
        {
            bool required = false;
            const cJSON *r;
            cJSON_ArrayForEach(r, req) if (cJSON_IsString(r) && !strcmp(r->valuestring, p->string))
                required = true;
            if (required != (pass == 0))
                continue;
            if (b.len > 900) {
                cm_buf_printf(&b, &err, ", ...");
                goto done;
            }
            cm_buf_printf(&b, &err, "%s%s: %s%s", n++ ? ", " : "", p->string, py_type(schema, p),
                          required ? "" : " = None");
        }
done:
    cm_buf_printf(&b, &err, ")");
    return b.data ? b.data : cm_xstrdup(name);
}
