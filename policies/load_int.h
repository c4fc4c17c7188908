/* load_int.h — the validation context the policy loader threads through
 * every key (file text, key path, error), shared by load.c and the files
 * that load one section each (grants.c), so every section reports errors
 * the same way: FILE:LINE:COL: key.path: message. */
#ifndef CM_POLICY_LOAD_INT_H
#define CM_POLICY_LOAD_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define MAX_DEPTH 16

typedef struct vctx {
    const char *text;
    size_t len;
    const char *name;
    const char *segs[MAX_DEPTH];
    int idx[MAX_DEPTH];
    int depth;
    cm_error *err;
} vctx;

void pv_push_key(vctx *v, const char *key);
void pv_push_idx(vctx *v, int i);
void pv_pop(vctx *v);
/* Sets v->err to "FILE:LINE:COL: path: message" (kind config); returns -1. */
int pv_err(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fails on the first key of obj not in the NULL-terminated list. */
int pv_check_keys(vctx *v, const cJSON *obj, const char *const *allowed);
bool pv_is_int(const cJSON *j);
int pv_bool(vctx *v, const cJSON *j, bool *out);
/* A list of non-empty strings (Python identifiers when `identifiers`). */
int pv_string_list(vctx *v, const cJSON *j, bool identifiers, const char *what);

#endif
