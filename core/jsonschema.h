/* jsonschema.h — checks a tool call's arguments against the tool's `inputs`
 * JSON Schema, and renders the tool's signature for error messages.
 *
 * Why it exists: without it a misspelled or missing argument reaches the
 * provider, which substitutes an empty value and returns a wrong answer with
 * no error.  Debian ships no maintained C JSON Schema validator (valijson is
 * C++), so this is the subset tool schemas use, lenient where a check could
 * refuse a valid call: type (and type lists), enum, const, required,
 * properties, additionalProperties (false or a schema), items / prefixItems,
 * allOf, anyOf, oneOf (as anyOf), nullable, local `$ref` ("#/..."); other
 * keywords (format, pattern, minimum, ...) are not checked. */
#ifndef CM_JSONSCHEMA_H
#define CM_JSONSCHEMA_H

#include <cjson/cJSON.h>

#include "error.h"

/* 0 when `value` satisfies `schema` (NULL, true or {} accept anything);
 * else -1 with err kind CM_ERR_INVALID_ARGUMENTS and a message naming the
 * first failing argument (`text`, `filter.name`, `items[2]`), what was
 * expected and what was given, e.g. "missing required argument `text`
 * (string)" or "unexpected argument `txt` (did you mean `text`?)". */
int cm_schema_check_args(const cJSON *schema, const cJSON *value, cm_error *err);

/* "name(text: str, limit: int = ...)" from an object schema, in the Python
 * form the chain calls it (keyword arguments); malloc'd. */
char *cm_schema_signature(const char *name, const cJSON *schema);

/* Levenshtein distance of two strings, capped at 255 (for "did you mean"). */
int cm_edit_distance(const char *a, const char *b);

/* The candidate nearest to `word` (edit distance at most max(2, len/3)),
 * or NULL; candidates is a NULL-terminated array. */
const char *cm_nearest_name(const char *word, const char *const *candidates);

#endif
