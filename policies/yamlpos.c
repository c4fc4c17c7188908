/* yamlpos.c — finds where a key or item sits in a YAML text.  The loader
 * validates the cJSON form (engine/yamljson.c), which has no positions; when
 * validation fails this re-reads the text with libyaml's document API and
 * walks the same path so the error can say "line L:C" (unknown keys, bad
 * values), like syntax errors do. */
#include <string.h>
#include <yaml.h>

#include "policy_int.h"

static yaml_node_t *child_by_key(yaml_document_t *doc, yaml_node_t *n, const char *key,
                                 yaml_node_t **key_node)
{
    if (n->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key)) {
            *key_node = k;
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

static yaml_node_t *child_by_index(yaml_document_t *doc, yaml_node_t *n, int idx)
{
    if (n->type != YAML_SEQUENCE_NODE || idx < 0 ||
        idx >= n->data.sequence.items.top - n->data.sequence.items.start)
        return NULL;
    return yaml_document_get_node(doc, n->data.sequence.items.start[idx]);
}

/* Walks as far as the path goes; reports the deepest node reached (a
 * mapping key's own position for the last key). */
static void walk(yaml_document_t *doc, const char *const *segs, const int *idx, int depth,
                 size_t *line, size_t *col)
{
    yaml_node_t *n = yaml_document_get_root_node(doc);
    yaml_mark_t mark = n->start_mark;
    for (int i = 0; i < depth && n; i++) {
        yaml_node_t *key = NULL;
        yaml_node_t *next =
            segs[i] ? child_by_key(doc, n, segs[i], &key) : child_by_index(doc, n, idx[i]);
        if (!next)
            break;
        mark = (segs[i] && i == depth - 1) ? key->start_mark : next->start_mark;
        n = next;
    }
    *line = mark.line + 1;
    *col = mark.column + 1;
}

int cm_yaml_locate(const char *text, size_t len, const char *const *segs, const int *idx, int depth,
                   size_t *line, size_t *col)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return -1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = -1;
    if (yaml_parser_load(&parser, &doc)) {
        if (yaml_document_get_root_node(&doc)) {
            walk(&doc, segs, idx, depth, line, col);
            rc = 0;
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return rc;
}
