/* vars.h — UTCP variable resolution: `${VAR}` and `$VAR` in template strings,
 * looked up (namespaced key `<manual with _ doubled>_<VAR>` first, then VAR)
 * in config `variables`, then dotenv files from `load_variables_from`, then
 * the process environment.  Values stay on the host. */
#ifndef CM_VARS_H
#define CM_VARS_H

#include <cjson/cJSON.h>

#include "error.h"

typedef struct cm_vars cm_vars;

/* variables: object of string values (may be NULL); loaders: array of
 * {variable_loader_type: "dotenv", env_file_path} (may be NULL), paths
 * relative to base_dir. */
int cm_vars_new(cm_vars **out, const cJSON *variables, const cJSON *loaders, const char *base_dir,
                cm_error *err);
void cm_vars_free(cm_vars *v);

/* Value or NULL when missing or empty.  manual_name may be NULL. */
const char *cm_vars_lookup(const cm_vars *v, const char *manual_name, const char *name);

/* Deep copy of `in` with every string substituted.  `${VAR}` must resolve
 * (else CM_ERR_CONFIG naming VAR); bare `$VAR` is replaced only when it
 * resolves, and `$CMD_<n>_OUTPUT` is never touched.  Strings containing
 * "$ref" are left alone. */
int cm_vars_substitute(const cm_vars *v, const char *manual_name, const cJSON *in, cJSON **out,
                       cm_error *err);

/* Appends to `names` (a cJSON array) the distinct `${VAR}` names used in
 * `tmpl` (recursively), in order of first use. */
void cm_vars_required(const cJSON *tmpl, cJSON *names);

/* Calls fn(arg, NAME, value) for every variable cm_vars_substitute would
 * substitute into `tmpl` (same rules: `${VAR}` and bare `$VAR` that
 * resolve), once per occurrence.  For redaction (engine/redact.h). */
typedef void (*cm_vars_used_fn)(void *arg, const char *name, const char *value);
void cm_vars_used(const cm_vars *v, const char *manual_name, const cJSON *tmpl, cm_vars_used_fn fn,
                  void *arg);

#endif
