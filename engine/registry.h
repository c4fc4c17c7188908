/* registry.h — registered manuals and their tools, shared by every client
 * (guarded by a rwlock inside).  Owns access-name computation: each UTCP name
 * `manual.tool` gets a Python access form `m.t` where both parts are
 * sanitized ([^A-Za-z0-9_] → '_', leading digit → '_' prefix), keywords get a
 * '_' suffix and collisions a numeric suffix; every rename is reported. */
#ifndef CM_REGISTRY_H
#define CM_REGISTRY_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

typedef struct cm_registry cm_registry;

int cm_registry_new(cm_registry **out, cm_error *err);
void cm_registry_free(cm_registry *r);

/* Sanitizes a manual name the UTCP way ([^A-Za-z0-9_] → '_'); caller frees. */
char *cm_manual_name_sanitize(const char *name);
/* Python access identifier for one name part (see above, without collision
 * handling); caller frees. *renamed set to a static reason or NULL. */
char *cm_access_ident(const char *part, const char **renamed);

/* Adds a manual.  `call_template` is the manual call template (its `name`
 * already sanitized, stored as given), `manual` the discovered UTCP manual.
 * Validates every tool (name, tool_call_template with call_template_type,
 * protocol allowed by allowed_communication_protocols, default the manual's
 * own type), qualifies names `manual.tool`, computes access names.  All or
 * nothing: a bad tool fails the whole manual with an error naming the JSON
 * path (e.g. `tools[3].tool_call_template`).  Duplicate manual name →
 * CM_ERR_CONFIG.  *report (may be NULL) receives
 * {manual_name, tools:[names], renamed:[{name, access, reason}]}. */
int cm_registry_add(cm_registry *r, const cJSON *call_template, const cJSON *manual, cJSON **report,
                    cm_error *err);
int cm_registry_has(cm_registry *r, const char *manual_name);
/* CM_ERR_NOT_FOUND when absent. */
int cm_registry_remove(cm_registry *r, const char *manual_name, cm_error *err);

/* [{name, manual, access_manual, access_tool, iface_classes, iface_method}]
 * for every tool (the iface_ parts: see pyiface.h).  Caller frees. */
cJSON *cm_registry_chain_tools(cm_registry *r);
/* Access names ("m.t") of all tools, sorted.  Caller frees. */
cJSON *cm_registry_access_names(cm_registry *r);
/* Finds a tool by UTCP name or access name; *tool receives a deep copy of
 * its definition (name, description, inputs, outputs, tags,
 * tool_call_template, plus "access_name"), *manual_name a copy of the owning
 * manual's name.  CM_ERR_NOT_FOUND when unknown. */
int cm_registry_lookup(cm_registry *r, const char *name, cJSON **tool, char **manual_name,
                       cm_error *err);
/* Ranked tools for a task description: array of {name, access_name,
 * description, tags, inputs, outputs, score}, at most `limit`. */
cJSON *cm_registry_search(cm_registry *r, const char *query, int limit);
/* The same, skipping tools for which visible(utcp_name, ctx) is false (the
 * tools a chain or client may not see). */
typedef bool (*cm_tool_filter)(const char *utcp_name, void *ctx);
cJSON *cm_registry_search_filtered(cm_registry *r, const char *query, int limit,
                                   cm_tool_filter visible, void *ctx);

#endif
