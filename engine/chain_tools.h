/* chain_tools.h — a chain's tool table (the tools the caller may call, with
 * their access names), built once per registry generation and caller
 * profile instead of once per chain, and sent to warm sandboxes before the
 * request (issue 18.2; chain_tools.c). */
#ifndef CM_CHAIN_TOOLS_H
#define CM_CHAIN_TOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "engine.h"
#include "session.h"

#define CM_TOOLS_KEY_MAX 256

typedef struct cm_chain_tools cm_chain_tools;

cm_chain_tools *cm_chain_tools_new(void);
void cm_chain_tools_free(cm_chain_tools *t);

/* The table's key for this chain (registry generation, policy load, profile
 * name); false when none fits in CM_TOOLS_KEY_MAX (then nothing is cached).
 * Also records it as the key the next warm sandboxes are primed with. */
bool cm_chain_tools_key(cm_engine *eng, const cm_policy_chain *pc, char key[CM_TOOLS_KEY_MAX]);

/* The table as JSON array text ([{name, access_manual, access_tool[,
 * advertised: false]}...]), from the cache or built now; caller frees. */
char *cm_chain_tools_json(cm_engine *eng, const cm_policy_chain *pc, const char *key);

/* head (an object) as a control frame with "tools": json added: 4-byte
 * length + JSON text, *len bytes; caller frees. */
char *cm_chain_tools_frame(const cJSON *head, const char *json, size_t *len);

/* The pool's prime_data hook (cm_pool_metrics): the most recent chain's
 * table as a `tools` frame's JSON text, when its key is not have. */
int cm_chain_tools_prime_data(void *eng, const char *have, char *key, size_t cap, char **data,
                              size_t *len);

#endif
