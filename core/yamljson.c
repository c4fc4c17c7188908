/* yamljson.c — YAML (and JSON) text → cJSON.  Configs, policies and manuals
 * may be written in YAML; the rest of the engine only handles cJSON, so this
 * is the one place that knows YAML.  It loads the document with libyaml's
 * document API and converts it with YAML 1.2 core-schema scalar rules,
 * expanding aliases by copy under a node cap (billion-laughs) and a depth cap. */
#include "yamljson.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

#define YJ_MAX_DEPTH 128
#define YJ_MAX_NODES 1000000

typedef struct yj_ctx {
    yaml_document_t *doc;
    size_t nodes; /* cJSON nodes created so far (aliases count every copy) */
    cm_error *err;
} yj_ctx;

static int node_error(yj_ctx *c, const yaml_node_t *n, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return cm_error_set(c->err, CM_ERR_CONFIG, "line %zu:%zu: %s", n->start_mark.line + 1,
                        n->start_mark.column + 1, msg);
}

static bool is_plain_null(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int plain_bool(const char *s)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return 0;
    return -1;
}

static bool all_digits_in(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* YAML 1.2 core schema: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ */
static bool parse_core_int(const char *s, double *out)
{
    int base = 10;
    const char *digits = s;
    if (s[0] == '0' && s[1] == 'o') {
        base = 8;
        digits = s + 2;
        if (!all_digits_in(digits, "01234567"))
            return false;
    } else if (s[0] == '0' && s[1] == 'x') {
        base = 16;
        digits = s + 2;
        if (!all_digits_in(digits, "0123456789abcdefABCDEF"))
            return false;
    } else {
        const char *p = (*s == '-' || *s == '+') ? s + 1 : s;
        if (!all_digits_in(p, "0123456789"))
            return false;
    }
    if (base == 10) {
        *out = strtod(s, NULL);
    } else {
        errno = 0;
        unsigned long long v = strtoull(digits, NULL, base);
        *out = errno == ERANGE ? HUGE_VAL : (double)v;
    }
    return isfinite(*out); /* out-of-range integers stay strings */
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
 * (.inf/.nan are left as strings: JSON cannot carry them.) */
static bool parse_core_float(const char *s, double *out)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t int_digits = 0, frac_digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        int_digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return false;
    *out = strtod(s, NULL);
    return isfinite(*out);
}

static int count_node(yj_ctx *c, const yaml_node_t *n)
{
    if (++c->nodes > YJ_MAX_NODES)
        return node_error(c, n, "document expands to more than %s nodes (alias bomb?)", "1000000");
    return 0;
}

static int scalar_to_json(yj_ctx *c, const yaml_node_t *n, cJSON **out)
{
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length)
        return node_error(c, n, "NUL character in scalar%s", NULL);
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        *out = cJSON_CreateString(s);
        return 0;
    }
    double d;
    int b;
    if (is_plain_null(s))
        *out = cJSON_CreateNull();
    else if ((b = plain_bool(s)) >= 0)
        *out = cJSON_CreateBool(b);
    else if (parse_core_int(s, &d) || parse_core_float(s, &d))
        *out = cJSON_CreateNumber(d);
    else
        *out = cJSON_CreateString(s);
    return 0;
}

static int node_to_json(yj_ctx *c, int index, int depth, cJSON **out);

static int sequence_to_json(yj_ctx *c, const yaml_node_t *n, int depth, cJSON **out)
{
    cm_autojson cJSON *arr = cJSON_CreateArray();
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        cJSON *child = NULL;
        if (node_to_json(c, *it, depth + 1, &child) < 0)
            return -1;
        cJSON_AddItemToArray(arr, child);
    }
    *out = cm_steal_ptr(&arr);
    return 0;
}

typedef struct yj_key {
    const char *key;
    const yaml_node_t *node;
} yj_key;

static int compare_keys(const void *a, const void *b)
{
    const yj_key *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    if (r)
        return r;
    /* later occurrence sorts last so the duplicate reported is the second one */
    return x->node->start_mark.index < y->node->start_mark.index ? -1 : 1;
}

/* Sorting the keys keeps duplicate detection O(n log n) for big mappings. */
static int check_duplicate_keys(yj_ctx *c, const yaml_node_t *n)
{
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count < 2)
        return 0;
    cm_autofree yj_key *keys = cm_xcalloc(count, sizeof *keys);
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, n->data.mapping.pairs.start[i].key);
        keys[i].node = k;
        keys[i].key = (const char *)k->data.scalar.value;
    }
    qsort(keys, count, sizeof *keys, compare_keys);
    for (size_t i = 1; i < count; i++)
        if (!strcmp(keys[i - 1].key, keys[i].key))
            return node_error(c, keys[i].node, "duplicate key '%s'", keys[i].key);
    return 0;
}

static int mapping_to_json(yj_ctx *c, const yaml_node_t *n, int depth, cJSON **out)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (!k)
            return node_error(c, n, "mapping key missing%s", NULL);
        if (k->type != YAML_SCALAR_NODE)
            return node_error(c, k, "mapping keys must be scalars%s", NULL);
        if (strlen((const char *)k->data.scalar.value) != k->data.scalar.length)
            return node_error(c, k, "NUL character in key%s", NULL);
    }
    if (check_duplicate_keys(c, n) < 0)
        return -1;
    cm_autojson cJSON *obj = cJSON_CreateObject();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        cJSON *child = NULL;
        if (count_node(c, k) < 0 || node_to_json(c, p->value, depth + 1, &child) < 0)
            return -1;
        cJSON_AddItemToObject(obj, (const char *)k->data.scalar.value, child);
    }
    *out = cm_steal_ptr(&obj);
    return 0;
}

/* Aliases in libyaml's document model point at the anchored node's index, so
 * converting that index again is the deep copy; the caps bound the cost. */
static int node_to_json(yj_ctx *c, int index, int depth, cJSON **out)
{
    const yaml_node_t *n = yaml_document_get_node(c->doc, index);
    if (!n)
        return cm_error_set(c->err, CM_ERR_CONFIG, "YAML: dangling node reference");
    if (depth > YJ_MAX_DEPTH)
        return node_error(c, n, "nesting deeper than %s levels", "128");
    if (count_node(c, n) < 0)
        return -1;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return scalar_to_json(c, n, out);
    case YAML_SEQUENCE_NODE:
        return sequence_to_json(c, n, depth, out);
    case YAML_MAPPING_NODE:
        return mapping_to_json(c, n, depth, out);
    default:
        return node_error(c, n, "empty node%s", NULL);
    }
}

static int parser_error(const yaml_parser_t *p, cm_error *err)
{
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->context)
        return cm_error_set(err, CM_ERR_CONFIG, "line %zu:%zu: %s %s", p->problem_mark.line + 1,
                            p->problem_mark.column + 1, problem, p->context);
    return cm_error_set(err, CM_ERR_CONFIG, "line %zu:%zu: %s", p->problem_mark.line + 1,
                        p->problem_mark.column + 1, problem);
}

/* Fails when another non-empty document follows the first. */
static int ensure_single_document(yaml_parser_t *p, cm_error *err)
{
    yaml_document_t next;
    if (!yaml_parser_load(p, &next))
        return parser_error(p, err);
    const yaml_node_t *root = yaml_document_get_root_node(&next);
    size_t line = root ? root->start_mark.line + 1 : 0;
    yaml_document_delete(&next);
    if (root)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "line %zu: more than one YAML document (only one is allowed)", line);
    return 0;
}

int cm_yaml_to_json(const char *text, size_t len, cJSON **out, cm_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    *out = NULL;
    if (!yaml_parser_initialize(&parser))
        return cm_error_set(err, CM_ERR_INTERNAL, "cannot initialise YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        parser_error(&parser, err);
        yaml_parser_delete(&parser);
        return -1;
    }
    int rc = 0;
    cJSON *result = NULL;
    if (!yaml_document_get_root_node(&doc)) {
        result = cJSON_CreateNull();
    } else {
        yj_ctx ctx = {.doc = &doc, .nodes = 0, .err = err};
        rc = node_to_json(&ctx, 1, 0, &result);
    }
    yaml_document_delete(&doc);
    if (rc == 0)
        rc = ensure_single_document(&parser, err);
    yaml_parser_delete(&parser);
    if (rc < 0) {
        cJSON_Delete(result);
        return -1;
    }
    *out = result;
    return 0;
}

/* JSON only when the whole input (bar trailing whitespace) is one value. */
static cJSON *parse_whole_json(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j)
        return NULL;
    size_t used = (size_t)(end - text);
    while (used < len && isspace((unsigned char)text[used]))
        used++;
    if (used != len) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

int cm_parse_json_or_yaml(const char *text, size_t len, const char *what, cJSON **out,
                          cm_error *err)
{
    cJSON *j = parse_whole_json(text, len);
    if (j) {
        *out = j;
        return 0;
    }
    if (cm_yaml_to_json(text, len, out, err) < 0)
        return cm_error_prefix(err, "%s: neither JSON nor valid YAML", what ? what : "input");
    return 0;
}
