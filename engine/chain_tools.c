/* chain_tools.c — the chain's tool table, once per registry generation and
 * caller profile (see chain_tools.h).  Why: every chain used to receive,
 * decode, re-encode and rebuild the whole table with every tool's interface
 * text (4.6 MB at 10,000 tools), so a trivial chain's cost grew with the
 * registry.  Now the table (names only; interface text is asked for on use,
 * chain.c `interfaces` frames) is built when the registry or the policy
 * changes, and a refill sends it to the warm sandbox ahead of the request
 * (`tools` frame), whose run frame then names it by key.  A sandbox primed
 * for another key (a different caller, a registry change since) gets the
 * table in its run frame, as before. */
#include "chain_tools.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "policy.h"
#include "registry.h"
#include "util.h"

#define CACHE_N 4

typedef struct entry {
    char key[CM_TOOLS_KEY_MAX];
    char *json;
} entry;

struct cm_chain_tools {
    pthread_mutex_t mu;
    entry e[CACHE_N];
    int next;                   /* round-robin eviction */
    char hot[CM_TOOLS_KEY_MAX]; /* the most recent chain's key: what refills prime */
};

cm_chain_tools *cm_chain_tools_new(void)
{
    cm_chain_tools *t = cm_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void cm_chain_tools_free(cm_chain_tools *t)
{
    if (!t)
        return;
    for (int i = 0; i < CACHE_N; i++)
        free(t->e[i].json);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static unsigned long key_generation(const char *key)
{
    return strtoul(key + 1, NULL, 10); /* "g<gen>.p<serial>.<profile>" */
}

bool cm_chain_tools_key(cm_engine *eng, const cm_policy_chain *pc, char key[CM_TOOLS_KEY_MAX])
{
    const struct cm_policy_profile *prof = cm_policy_chain_profile(pc);
    if (cm_policy_chain_serial(pc) == CM_POLICY_SERIAL_UNKNOWN) {
        key[0] = '\0';
        return false;
    }
    int n = snprintf(key, CM_TOOLS_KEY_MAX, "g%lu.p%lu.%s", cm_registry_generation(eng->registry),
                     cm_policy_chain_serial(pc), prof ? cm_profile_name(prof) : "-");
    if (n < 0 || n >= CM_TOOLS_KEY_MAX) {
        key[0] = '\0';
        return false;
    }
    cm_chain_tools *t = eng->chain_tools;
    pthread_mutex_lock(&t->mu);
    snprintf(t->hot, sizeof t->hot, "%s", key);
    pthread_mutex_unlock(&t->mu);
    return true;
}

/* Names and access names only: the interface parts stay in the engine. */
static char *build(cm_engine *eng, const cm_policy_chain *pc)
{
    cJSON *all = cm_agent_chain_tools(eng, cm_policy_chain_profile(pc));
    cJSON *t;
    cJSON_ArrayForEach(t, all)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(t, "iface_classes");
        cJSON_DeleteItemFromObjectCaseSensitive(t, "iface_method");
        cJSON_DeleteItemFromObjectCaseSensitive(t, "iface_signature");
        cJSON_DeleteItemFromObjectCaseSensitive(t, "iface_summary");
        cJSON_DeleteItemFromObjectCaseSensitive(t, "manual");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "advertised")))
            cJSON_DeleteItemFromObjectCaseSensitive(t, "advertised");
    }
    char *s = cJSON_PrintUnformatted(all);
    cJSON_Delete(all);
    return s ? s : cm_xstrdup("[]");
}

static char *cached_locked(cm_chain_tools *t, const char *key)
{
    for (int i = 0; key[0] && i < CACHE_N; i++)
        if (t->e[i].json && !strcmp(t->e[i].key, key))
            return cm_xstrdup(t->e[i].json);
    return NULL;
}

char *cm_chain_tools_json(cm_engine *eng, const cm_policy_chain *pc, const char *key)
{
    cm_chain_tools *t = eng->chain_tools;
    pthread_mutex_lock(&t->mu);
    char *s = cached_locked(t, key);
    pthread_mutex_unlock(&t->mu);
    if (s)
        return s;
    s = build(eng, pc);
    /* cached only when the registry did not change while it was built */
    if (!key[0] || key_generation(key) != cm_registry_generation(eng->registry))
        return s;
    pthread_mutex_lock(&t->mu);
    entry *e = &t->e[t->next];
    t->next = (t->next + 1) % CACHE_N;
    free(e->json);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->json = cm_xstrdup(s);
    pthread_mutex_unlock(&t->mu);
    return s;
}

char *cm_chain_tools_frame(const cJSON *head, const char *json, size_t *len)
{
    cm_autofree char *h = cJSON_PrintUnformatted(head);
    /* {...head} + ,"tools":[...]} : the table is spliced in as text */
    size_t hl = strlen(h) - 1, jl = strlen(json), n = hl + 9 + jl + 1;
    char *frame = cm_xmalloc(4 + n);
    frame[0] = (char)(n >> 24);
    frame[1] = (char)(n >> 16);
    frame[2] = (char)(n >> 8);
    frame[3] = (char)n;
    memcpy(frame + 4, h, hl);
    memcpy(frame + 4 + hl, ",\"tools\":", 9);
    memcpy(frame + 4 + hl + 9, json, jl);
    frame[4 + n - 1] = '}';
    *len = 4 + n;
    return frame;
}

int cm_chain_tools_prime_data(void *ctx, const char *have, char *key, size_t cap, char **data,
                              size_t *len)
{
    cm_engine *eng = ctx;
    cm_chain_tools *t = eng->chain_tools;
    char hot[CM_TOOLS_KEY_MAX];
    pthread_mutex_lock(&t->mu);
    snprintf(hot, sizeof hot, "%s", t->hot);
    cm_autofree char *json = strcmp(hot, have) ? cached_locked(t, hot) : NULL;
    pthread_mutex_unlock(&t->mu);
    if (!json || key_generation(hot) != cm_registry_generation(eng->registry) || strlen(hot) >= cap)
        return 0;
    cJSON *head = cJSON_CreateObject();
    cJSON_AddStringToObject(head, "t", "tools");
    cJSON_AddStringToObject(head, "key", hot);
    size_t n;
    char *frame = cm_chain_tools_frame(head, json, &n);
    cJSON_Delete(head);
    memmove(frame, frame + 4, n - 4); /* the JSON text without the length */
    *data = frame;
    *len = n - 4;
    snprintf(key, cap, "%s", hot);
    return 1;
}
