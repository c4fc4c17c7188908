/* workdir.c — how the engine's provider processes run (jailed: own uid and
 * mount view, isolate/provider_jail.c) and what they leave on the host is
 * the engine's to remove: their temp directories live in one directory of
 * this engine (codemode-e<pid> under $TMPDIR or /tmp), and the processes in
 * one cgroup below the engine's instance (isolate/provider_exec.c).  Both go
 * at stop; if the engine was killed, the next engine to start removes the
 * directories of engines that are gone (and isolate reaps their cgroups). */
#include "workdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "pctx.h"
#include "provider_exec.h"
#include "util.h"

static const char *tmp_base(void)
{
    const char *t = getenv("TMPDIR");
    return t && t[0] == '/' && strlen(t) < 200 ? t : "/tmp";
}

static void remove_gone_engines(const char *base)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "codemode-e", 10))
            continue;
        char *end;
        long pid = strtol(e->d_name + 10, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || cm_engine_pid_alive(pid))
            continue;
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
        cm_log("info", "removing %s left by engine %ld, which is gone", dir, pid);
        cm_remove_tree(dir);
    }
    closedir(d);
}

/* path resolved against the config's directory, appended to hide. */
static void hide_add(cm_engine *eng, char ***hide, size_t *n, const char *path)
{
    if (!path || !*path)
        return;
    if (*n + 1 >= CM_JAIL_MAX_HIDE) {
        cm_log("warn",
               "providers: more than %d engine files to cover; %s stays visible to "
               "provider processes (keep manuals and secrets in fewer files)",
               CM_JAIL_MAX_HIDE - 1, path);
        return;
    }
    char *full = NULL;
    if (path[0] == '/')
        full = cm_xstrdup(path);
    else if (asprintf(&full, "%s/%s", eng->cfg.base_dir ? eng->cfg.base_dir : ".", path) < 0)
        abort();
    *hide = realloc(*hide, (*n + 2) * sizeof **hide);
    if (!*hide)
        abort();
    (*hide)[(*n)++] = full;
    (*hide)[*n] = NULL;
}

/* What a provider must not see: the engine's config, policy file, audit
 * log, variable files, manual files, metrics file, socket, runtime
 * directory and its own temp directory (other calls' directories). */
static char **hidden_paths(cm_engine *eng, const char *socket_path)
{
    char **hide = NULL;
    size_t n = 0;
    const cm_config *c = &eng->cfg;
    hide_add(eng, &hide, &n, c->path);
    hide_add(eng, &hide, &n, cm_json_str(c->policy, "file"));
    hide_add(eng, &hide, &n, cm_json_str(c->policy, "audit_log"));
    hide_add(eng, &hide, &n, c->metrics_file);
    hide_add(eng, &hide, &n, socket_path);
    hide_add(eng, &hide, &n, c->runtime_dir);
    hide_add(eng, &hide, &n, eng->work_dir);
    const cJSON *it;
    cJSON_ArrayForEach(it, c->load_variables_from)
        hide_add(eng, &hide, &n, cm_json_str(it, "env_file_path"));
    cJSON_ArrayForEach(it, c->manual_call_templates)
        hide_add(eng, &hide, &n, cm_json_str(it, "file_path"));
    return hide;
}

static int take_ids(void *ctx, unsigned *uid, unsigned *gid, cm_error *err)
{
    uid_t u;
    gid_t g;
    if (cm_isolation_take_ids(ctx, &u, &g, err) < 0)
        return -1;
    *uid = (unsigned)u;
    *gid = (unsigned)g;
    return 0;
}

static void release_ids(void *ctx, unsigned uid, const char *dir)
{
    (void)dir;                        /* the caller removes it: still the engine's to remove */
    cm_provider_uid_kill((uid_t)uid); /* what the process left running */
    cm_isolation_release_ids(ctx, (uid_t)uid);
}

/* Decides how provider processes are jailed, and says so once. */
static void jail_config(cm_engine *eng, cm_provider_exec_cfg *jc, char **hide)
{
    *jc = (cm_provider_exec_cfg){.jail = eng->cfg.provider_jail,
                                 .tmp_mb = (unsigned)(eng->cfg.tmp_size_bytes >> 20),
                                 .hide = (const char *const *)hide};
    if (!jc->jail) {
        cm_log("warn",
               "providers: engine.provider_jail is false: provider processes run as the "
               "engine's uid %u with its view of the host",
               (unsigned)geteuid());
        return;
    }
    if (geteuid() == 0) {
        eng->providers->take_ids = take_ids;
        eng->providers->release_ids = release_ids;
        eng->providers->ids_ctx = &eng->iso;
        cm_log("info", "providers: jailed, each process its own uid from %u..%u, own mount view",
               (unsigned)eng->iso.uid_base, (unsigned)(eng->iso.uid_base + eng->iso.uid_count - 1));
    } else if (cm_userns_works()) {
        jc->userns = true;
        cm_log("info", "providers: jailed in a user namespace as uid %u, own mount view",
               (unsigned)geteuid());
    } else {
        jc->jail = false;
        cm_log("warn",
               "providers: no user namespace for this user: provider processes run as "
               "uid %u with its view of the host",
               (unsigned)geteuid());
    }
    eng->providers->jailed = jc->jail;
}

/* One command through the jail at start: a kernel or unit that refuses a
 * step (mount_setattr, a user namespace) is named now, not at the first
 * tool call. */
static int check_jail(cm_engine *eng, cm_error *err)
{
    cm_provider_ids ids;
    if (cm_providers_take_ids(eng->providers, &ids, err) < 0)
        return -1;
    char why[512];
    if (cm_provider_exec_check(eng->provider_exec, ids.set ? ids.arg : NULL, why, sizeof why) < 0)
        cm_log("error",
               "providers: the provider jail fails here (%s): every CLI command and MCP stdio "
               "server will fail to start; `codemode doctor` shows the same (engine.provider_jail: "
               "false runs them unjailed as the engine's uid)",
               why);
    cm_providers_release_ids(eng->providers, &ids, NULL);
    return 0;
}

int cm_workdir_start(cm_engine *eng, const char *socket_path, cm_error *err)
{
    const char *base = tmp_base();
    remove_gone_engines(base);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/codemode-e%d", base, (int)getpid());
    cm_remove_tree(dir); /* a directory of an earlier engine with this pid */
    /* 0711: not listable, but a provider that takes its uid before its
     * mount view (a root engine without CAP_SYS_ADMIN, the container) must
     * reach its own call directory below (random names, 0700, its uid) */
    if (mkdir(dir, 0700) < 0 || chmod(dir, 0711) < 0)
        return cm_error_sys(err, CM_ERR_IO, "engine temp directory %s", dir);
    eng->work_dir = cm_xstrdup(dir);
    eng->providers->work_dir = eng->work_dir;
    char **hide = hidden_paths(eng, socket_path);
    cm_provider_exec_cfg jc;
    jail_config(eng, &jc, hide);
    int rc = cm_provider_exec_prepare(&eng->iso.cgroups, &eng->provider_cg, &jc,
                                      &eng->provider_exec, err);
    cm_provider_exec_free(hide);
    if (rc < 0)
        return cm_error_prefix(err, "provider cgroup");
    eng->providers->exec_prefix = eng->provider_exec;
    return jc.jail ? check_jail(eng, err) : 0;
}

void cm_workdir_stop(cm_engine *eng)
{
    if (eng->separated) { /* the privileged part removes both, at its end */
        cm_provider_exec_free(eng->provider_exec);
        eng->provider_exec = NULL;
        free(eng->work_dir);
        eng->work_dir = NULL;
        return;
    }
    if (eng->provider_cg.created)
        cm_cgroup_destroy(&eng->provider_cg);
    cm_provider_exec_free(eng->provider_exec);
    eng->provider_exec = NULL;
    if (eng->work_dir)
        cm_remove_tree(eng->work_dir);
    free(eng->work_dir);
    eng->work_dir = NULL;
}
