/* pctx.c — lifecycle of the providers' shared state (see pctx.h): the curl
 * share with its locks, and teardown of MCP sessions and cached tokens. */
#include "pctx.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "util.h"

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
    (void)h;
    (void)access;
    cm_providers *p = userp;
    pthread_mutex_lock(&p->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
    (void)h;
    cm_providers *p = userp;
    pthread_mutex_unlock(&p->share_locks[data]);
}

int cm_providers_new(cm_providers **out, cm_error *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cm_error_set(err, CM_ERR_INTERNAL, "curl_global_init failed");
    cm_providers *p = cm_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&p->share_locks[i], NULL);
    p->share = curl_share_init();
    if (!p->share) {
        free(p);
        return cm_error_set(err, CM_ERR_INTERNAL, "curl_share_init failed");
    }
    curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    *out = p;
    return 0;
}

void cm_providers_release_manual(cm_providers *p, const char *manual_name)
{
    if (p && manual_name)
        cm_mcp_sessions_close(p, manual_name);
    /* called once the manual's tools are freed (deregistration, failed
     * registration): glibc keeps freed arenas otherwise, and a large manual
     * registered and removed again would stay resident (issue 14) */
    malloc_trim(0);
}

void cm_providers_free(cm_providers *p)
{
    if (!p)
        return;
    cm_http_loop_free(p);
    cm_mcp_sessions_close(p, NULL);
    cm_oauth_tokens_free(p);
    curl_share_cleanup(p->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&p->share_locks[i]);
    pthread_mutex_destroy(&p->lock);
    free(p);
    curl_global_cleanup();
}

int cm_providers_take_ids(const cm_providers *p, cm_provider_ids *ids, cm_error *err)
{
    *ids = (cm_provider_ids){0};
    if (!p || !p->take_ids)
        return 0;
    if (p->take_ids(p->ids_ctx, &ids->uid, &ids->gid, err) < 0)
        return cm_error_prefix(err, "no uid for the provider process");
    ids->set = true;
    snprintf(ids->arg, sizeof ids->arg, "%u:%u", ids->uid, ids->gid);
    return 0;
}

void cm_providers_release_ids(const cm_providers *p, cm_provider_ids *ids, const char *dir)
{
    if (p && p->release_ids && ids->set)
        p->release_ids(p->ids_ctx, ids->uid, dir);
    ids->set = false;
}

char **cm_providers_exec_argv(const cm_providers *p, const char *prog, char *const *argv,
                              const cm_provider_ids *ids, char *const *rw, const char **path)
{
    size_t np = 0, na = 0, nrw = 0;
    while (p && p->exec_prefix && p->exec_prefix[np])
        np++;
    while (argv[na])
        na++;
    while (rw && rw[nrw])
        nrw++;
    char **out = cm_xcalloc(np + na + 2 * nrw + 8, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < np; i++)
        out[k++] = p->exec_prefix[i];
    if (np) {
        if (ids && ids->set) {
            out[k++] = "--ids";
            out[k++] = (char *)ids->arg;
        }
        for (size_t i = 0; i < nrw; i++) {
            out[k++] = "--rw";
            out[k++] = rw[i];
        }
        out[k++] = "--";
        out[k++] = (char *)prog;
    }
    for (size_t i = 0; i < na; i++)
        out[k++] = argv[i];
    *path = np ? p->exec_prefix[0] : prog;
    return out;
}

static const char *const env_allow_list[] = {
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "USER", "LOGNAME", "SHELL", "TZ", "TERM", NULL,
};

void cm_providers_base_env(const cm_providers *p, cJSON *env)
{
    for (int i = 0; env_allow_list[i]; i++) {
        const char *v = getenv(env_allow_list[i]);
        if (p && p->jailed && !strcmp(env_allow_list[i], "HOME"))
            v = "/tmp"; /* the engine's home is not the provider's (nor readable) */
        if (!v)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(env, env_allow_list[i]);
        cJSON_AddStringToObject(env, env_allow_list[i], v);
    }
}
