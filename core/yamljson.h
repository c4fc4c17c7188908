/* yamljson.h — YAML text → cJSON (libyaml), for the engine config and
 * policy files, with errors that name line and column (yamljson.c). */
#ifndef CM_YAMLJSON_H
#define CM_YAMLJSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "error.h"

/* Parses a YAML (or JSON) document into cJSON.  Quoted scalars stay strings;
 * plain scalars become null/bool/number when they look like one. */
int cm_yaml_to_json(const char *text, size_t len, cJSON **out, cm_error *err);
/* JSON when the text parses as JSON, else YAML. */
int cm_parse_json_or_yaml(const char *text, size_t len, const char *what, cJSON **out,
                          cm_error *err);

#endif
