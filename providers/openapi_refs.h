/* openapi_refs.h — bounded `$ref` handling for the OpenAPI converter
 * (providers/openapi_refs.c). */
#ifndef CM_PROVIDERS_OPENAPI_REFS_H
#define CM_PROVIDERS_OPENAPI_REFS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* What the schemas of one manual may still take (approximate bytes of the
 * cJSON trees built: nodes, keys and strings).  `over` is set, and no more
 * is copied, once a conversion would go past it. */
typedef struct cm_oa_budget {
    size_t left;
    bool over;
} cm_oa_budget;

/* One schema root being built (a tool's inputs or its outputs): every local
 * `$ref` met while copying is rewritten to "#/$defs/<Name>", and the schema
 * it names is copied once into the root's "$defs" by cm_oa_finish. */
typedef struct cm_oa_schema cm_oa_schema;

cm_oa_schema *cm_oa_schema_new(const cJSON *doc, cm_oa_budget *budget);
void cm_oa_schema_free(cm_oa_schema *s);
/* Copy of `node` with local `$ref`s rewritten (recorded for cm_oa_finish);
 * a reference that does not resolve in the document (external, missing)
 * becomes {"type":"object","description":"unresolved reference","x-ref":...}
 * and is never followed. */
cJSON *cm_oa_convert(cm_oa_schema *s, const cJSON *node);
/* Copies every recorded definition (and those they reference, each once)
 * into root["$defs"].  No-op without references or when root is not an
 * object. */
void cm_oa_finish(cm_oa_schema *s, cJSON *root);

/* The object `node` stands for after following `$ref`s at its top (a
 * parameter, request body, response or path item given by reference);
 * NULL when a reference does not resolve or loops. */
const cJSON *cm_oa_deref(const cJSON *doc, const cJSON *node);
/* A local JSON pointer ("#/a/b", ~0 ~1 unescaped) in doc; NULL otherwise. */
const cJSON *cm_oa_follow_pointer(const cJSON *doc, const char *ref);

#endif
