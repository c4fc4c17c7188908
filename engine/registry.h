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

/* The longest task description a search takes (in a chain and over MCP):
 * ranking reads every term, and no real task needs more. */
#define CM_SEARCH_MAX_QUERY 4096

/* Who is looking (ownership, issue 14): every manual has an owner — NULL for
 * the engine's own (config) manuals, else the policy profile that registered
 * it over the socket.  A view sees the engine's manuals and those of
 * `owner`; `all` (a manage_all profile, or no policy) sees every manual.  A
 * NULL view pointer sees everything (engine-internal use). */
typedef struct cm_registry_view {
    const char *owner;
    bool all;
} cm_registry_view;

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
int cm_registry_add(cm_registry *r, const cJSON *call_template, const cJSON *manual,
                    const char *owner, cJSON **report, cm_error *err);
/* 1 when a manual of that name exists (whoever owns it; *owner, may be NULL,
 * receives a copy of its owner or NULL for the engine), else 0. */
int cm_registry_owner(cm_registry *r, const char *manual_name, char **owner);
/* CM_ERR_NOT_FOUND when absent or not visible to the view. */
int cm_registry_remove(cm_registry *r, const cm_registry_view *view, const char *manual_name,
                       cm_error *err);

/* [{name, manual, access_manual, access_tool, iface_classes, iface_method,
 * iface_signature, iface_summary}] for every tool the view sees (the iface_
 * parts: see pyiface.h).  Caller frees. */
cJSON *cm_registry_chain_tools(cm_registry *r, const cm_registry_view *view);

/* A number that changes with every registration and removal. */
unsigned long cm_registry_generation(cm_registry *r);
/* Access names ("m.t") of the tools the view sees, sorted.  Caller frees. */
cJSON *cm_registry_access_names(cm_registry *r, const cm_registry_view *view);
/* Finds a tool the view sees by UTCP name or access name; *tool receives a
 * deep copy of its definition (name, description, inputs, outputs, tags,
 * tool_call_template, plus "access_name"), *manual_name a copy of the
 * owning manual's name, *owner a copy of its owner (NULL: the engine); each
 * out pointer may be NULL.  CM_ERR_NOT_FOUND when unknown or not visible. */
int cm_registry_lookup(cm_registry *r, const cm_registry_view *view, const char *name, cJSON **tool,
                       char **manual_name, char **owner, cm_error *err);
/* Ranked tools for a task description: array of {name, access_name,
 * description, tags, inputs, outputs, score}, at most `limit`. */
cJSON *cm_registry_search(cm_registry *r, const char *query, int limit);
/* The same over the tools the view sees, skipping those for which
 * advertised(utcp_name, ctx) is false (the tools the caller's policy
 * rules hide).  full false: each entry is {access_name, signature,
 * summary} (pyiface.h), what an agent needs to choose a tool. */
typedef bool (*cm_tool_filter)(const char *utcp_name, void *ctx);
cJSON *cm_registry_search_filtered(cm_registry *r, const cm_registry_view *view, const char *query,
                                   int limit, bool full, cm_tool_filter advertised, void *ctx);

#endif
