/* workdir.c — what the engine's provider processes leave on the host is
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

#include "pctx.h"
#include "provider_exec.h"

static const char *tmp_base(void)
{
    const char *t = getenv("TMPDIR");
    return t && t[0] == '/' && strlen(t) < 200 ? t : "/tmp";
}

/* A codemode engine with that pid is running (the pid was not reused). */
static bool engine_running(long pid)
{
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(comm, sizeof comm, f) && !strncmp(comm, "codemode", 8);
    fclose(f);
    return ok;
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
        if (*end || pid <= 0 || pid == (long)getpid() || engine_running(pid))
            continue;
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
        cm_log("info", "removing %s left by engine %ld, which is gone", dir, pid);
        cm_remove_tree(dir);
    }
    closedir(d);
}

int cm_workdir_start(cm_engine *eng, cm_error *err)
{
    const char *base = tmp_base();
    remove_gone_engines(base);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/codemode-e%d", base, (int)getpid());
    cm_remove_tree(dir); /* a directory of an earlier engine with this pid */
    if (mkdir(dir, 0700) < 0)
        return cm_error_sys(err, CM_ERR_IO, "engine temp directory %s", dir);
    eng->work_dir = cm_xstrdup(dir);
    eng->providers->work_dir = eng->work_dir;
    if (cm_provider_exec_prepare(&eng->iso.cgroups, &eng->provider_cg, &eng->provider_exec, err) <
        0)
        return cm_error_prefix(err, "provider cgroup");
    eng->providers->exec_prefix = eng->provider_exec;
    return 0;
}

void cm_workdir_stop(cm_engine *eng)
{
    if (eng->provider_cg.created)
        cm_cgroup_destroy(&eng->provider_cg);
    cm_provider_exec_free(eng->provider_exec);
    eng->provider_exec = NULL;
    if (eng->work_dir)
        cm_remove_tree(eng->work_dir);
    free(eng->work_dir);
    eng->work_dir = NULL;
}
