/* jsonscan.h — looking at a JSON request's raw text where the parsed tree
 * loses information: cJSON keeps numbers as doubles (a JSON-RPC id such as
 * 12345678901234567890, -0 or 1e3 would come back changed) and strings as C
 * strings (a \u0000 escape would silently cut them).  Both functions expect
 * text that already parsed as JSON. */
#ifndef CM_JSONSCAN_H
#define CM_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

/* The raw text of the first top-level member `key` (written without
 * escapes) of the object in text[0..len): *start, *n.  false if absent. */
bool cm_json_member_span(const char *text, size_t len, const char *key, const char **start,
                         size_t *n);
/* true when any string in the text holds a \u0000 escape. */
bool cm_json_has_nul_escape(const char *text, size_t len);

#endif
