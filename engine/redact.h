/* redact.h — keeps substituted variable values (secrets) out of what a tool
 * call returns to its chain.
 *
 * A redactor holds the values cm_vars_substitute puts into one call's
 * template (URLs, headers, bodies, CLI arguments, MCP env), in the forms a
 * provider or a server may show them: as is, JSON-escaped, percent-encoded
 * (upper and lower case hex, `+` for space), base64 (standard and URL-safe,
 * at each byte alignment, and the exact Basic credential of an `auth_type:
 * basic` template).  Every occurrence becomes `[redacted:NAME]`.  Values
 * shorter than CM_REDACT_MIN_LEN bytes are not secrets worth the damage to
 * results and are left alone. */
#ifndef CM_REDACT_H
#define CM_REDACT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "vars.h"

#define CM_REDACT_MIN_LEN 4

typedef struct cm_redactor cm_redactor;

/* The redactor of one call of `tmpl` (a tool's tool_call_template) from
 * `manual`; NULL when the template substitutes no value (nothing to do).
 * Variables named in `public_names` (array of strings, may be NULL: the
 * config's `public_variables`) are settings, not secrets, and kept. */
cm_redactor *cm_redactor_for_call(const cm_vars *v, const char *manual, const cJSON *tmpl,
                                  const cJSON *public_names);
void cm_redactor_free(cm_redactor *r);

/* Replaces every occurrence in every string value and object key of the
 * tree, in place.  r may be NULL (no-op). */
void cm_redact_json(const cm_redactor *r, cJSON *item);

/* Replaces every occurrence in a NUL-terminated message of capacity cap (the
 * result is truncated to fit), and a value cut off by truncation at its end
 * (a prefix of CM_REDACT_MIN_LEN or more bytes ending the message). */
void cm_redact_message(const cm_redactor *r, char *msg, size_t cap);

/* A redacted copy of s (caller frees), or NULL when s holds no value. */
char *cm_redact_string(const cm_redactor *r, const char *s);

/* The tool-result frame the chain gets ({"t":"result",...,"value"|"error"}):
 * redacts its value and error message in place and returns it. */
cJSON *cm_redact_frame(const cm_redactor *r, cJSON *frame);

#endif
