/* privdrop.c — the root engine's split (isolate/README.md "Privilege
 * separation"): who the service user is (engine.user: a name, uid:gid,
 * or else the claimed sandbox range's last uid), what it must own before
 * the drop (the instance cgroups, the work dir), the start of the
 * privileged part `codemode __sandboxd` with the facts decided here, the
 * provider hooks that turn spawns, signals and uid clean-ups into its
 * requests, and the drop itself.  Why here and not in main.c: it is the
 * one place that knows both isolate's broker and the providers' seam, and
 * it must run at one exact point, after the root start and before the
 * engine's first thread (capabilities are per thread). */
#include "privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pctx.h"
#include "privsep.h"
#include "provider_jail.h"
#include "server.h"

/* The service user (cm_privsep_service_user); 1: not separated (root). */
static int service_user(cm_engine *eng, cm_error *err)
{
    bool from_range;
    int rc = cm_privsep_service_user(eng->cfg.user, eng->iso.uid_base, eng->iso.gid_base,
                                     eng->iso.uid_count, &eng->svc_uid, &eng->svc_gid, &from_range,
                                     eng->svc_from, sizeof eng->svc_from, err);
    if (rc == 0 && from_range)
        rc = cm_isolation_reserve_last(&eng->iso, &eng->svc_uid, &eng->svc_gid, err);
    return rc;
}

/* ---- the providers' hooks (pctx.h) ------------------------------------ */

static int spawn_hook(void *ctx, const struct cm_provider_spawn *req, pid_t *pid)
{
    cm_engine *eng = ctx;
    int in = req->in_fd;
    if (in < 0 && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        return errno;
    cm_privsep_spawn sp = {.fds = {in, req->out_fd, req->err_fd >= 0 ? req->err_fd : 2},
                           .uid = req->ids->uid,
                           .prog = req->prog,
                           .argv = req->argv,
                           .envp = req->envp,
                           .cwd = req->cwd,
                           .rw = (const char *const *)req->rw,
                           .own = req->own};
    cm_error err;
    int rc = cm_privsep_provider(&eng->privsep, &sp, pid, &err);
    if (in != req->in_fd)
        close(in);
    if (rc == 0)
        return 0;
    cm_log("warn", "providers: %s", err.message);
    return err.sys_errno ? err.sys_errno : EPERM;
}

static void signal_hook(void *ctx, pid_t pgid, int sig)
{
    cm_engine *eng = ctx;
    cm_error err;
    /* ESRCH (gone already) and EPERM (still in its root exec step) are
     * expected; the uid's UIDKILL at release gets what is left */
    if (cm_privsep_signal(&eng->privsep, pgid, sig, &err) < 0 && err.sys_errno != ESRCH &&
        err.sys_errno != EPERM)
        cm_log("warn", "providers: %s", err.message);
}

/* ctx: the isolation context, as for workdir.c's take_ids */
static void release_ids(void *ctx, unsigned uid, const char *dir)
{
    cm_isolation *iso = ctx;
    cm_error err;
    if (cm_privsep_uidkill(iso->privsep, (uid_t)uid, dir, &err) < 0 && err.sys_errno != ENOENT)
        cm_log("warn", "providers: %s", err.message);
    cm_isolation_release_ids(iso, (uid_t)uid);
}

/* ---- the broker's facts, the drop ------------------------------------- */

static int start_broker(cm_engine *eng, cm_error *err)
{
    char inst[CM_PRIVSEP_MAX_DIRS][512];
    bool inst_v2[CM_PRIVSEP_MAX_DIRS];
    int ninst = 0;
    if (eng->iso.cgroups.mode != CM_CGROUP_NONE || eng->iso.cgroups.have_unified)
        ninst = cm_cgroup_instance_dirs(&eng->iso.cgroups, inst, inst_v2, CM_PRIVSEP_MAX_DIRS);
    cm_privsep_facts f = {.exe = "/proc/self/exe",
                          .svc_uid = eng->svc_uid,
                          .svc_gid = eng->svc_gid,
                          .uid_base = eng->iso.uid_base,
                          .gid_base = eng->iso.gid_base,
                          .count = eng->iso.uid_count,
                          .workdir = eng->work_dir,
                          .ninstance = ninst,
                          .exec_opts = eng->provider_exec ? eng->provider_exec + 2 : NULL};
    for (int i = 0; i < ninst; i++) {
        f.instance[i] = inst[i];
        f.instance_v2[i] = inst_v2[i];
    }
    const cm_cgroup *pcg = &eng->provider_cg;
    for (int i = 0; pcg->created && i < pcg->npaths && f.ncgroup < CM_PRIVSEP_MAX_DIRS; i++) {
        f.cgroup[f.ncgroup] = pcg->paths[i];
        f.cgroup_v2[f.ncgroup++] = pcg->v2 || i == pcg->unified_idx;
    }
    return cm_privsep_start(&f, &eng->privsep, err);
}

int cm_privdrop_start(cm_engine *eng, const char *socket_path, cm_error *err)
{
    eng->privsep = (cm_privsep){.fd = -1, .pid = -1};
    if (geteuid() != 0)
        return 0; /* rootless: nothing to split */
    int rc = service_user(eng, err);
    char why[512];
    if (rc == 0 && !cm_privsep_possible(why, sizeof why)) {
        cm_log("warn",
               "privilege separation: %s; the engine stays one root process here "
               "(`codemode doctor` says so)",
               why);
        return 0;
    }
    if (rc != 0) {
        if (rc > 0)
            cm_log("warn", "engine.user: root: the engine stays one root process (not "
                           "separated; `codemode doctor` says so)");
        return rc < 0 ? -1 : 0;
    }
    if (!eng->cfg.provider_jail)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.provider_jail: false runs providers as the engine's uid, which "
                            "a separated engine cannot start them as (its privileged part starts "
                            "every provider as a uid of its own); set engine.user: root for it");
    /* the rootfs must be reachable by the service user: with engine.user
     * set that is the operator's promise (refused otherwise); by default a
     * rootfs below a private directory (a checkout under /root) keeps one
     * root process, said loudly, as doctor says */
    if (!cm_privsep_path_reachable(eng->cfg.rootfs, eng->svc_uid, eng->svc_gid, why, sizeof why) ||
        !cm_privsep_path_reachable(eng->cfg.rootfs_full, eng->svc_uid, eng->svc_gid, why,
                                   sizeof why)) {
        if (eng->cfg.user)
            return cm_error_set(err, CM_ERR_CONFIG, "%s; engine.user: root keeps one root process",
                                why);
        cm_log("warn",
               "privilege separation: %s; the engine stays one root process here "
               "(`codemode doctor` says so)",
               why);
        return 0;
    }
    if (cm_cgroup_chown_instance(&eng->iso.cgroups, eng->svc_uid, eng->svc_gid, err) < 0 ||
        (eng->work_dir && chown(eng->work_dir, eng->svc_uid, eng->svc_gid) < 0 &&
         cm_error_sys(err, CM_ERR_IO, "chown %s to the service user", eng->work_dir) < 0))
        return -1;
    /* the socket's directory stays root's (/run/codemode, a 0700 test
     * dir): bound now, served once the engine is up (connections wait in
     * the backlog until then) */
    if (cm_server_listen(eng, socket_path, err) < 0 || start_broker(eng, err) < 0)
        return -1;
    /* the socket file the engine's own (its group kept), so it can remove
     * it at stop where the directory lets it (a sticky or its own one) */
    if (eng->socket_path && lchown(eng->socket_path, eng->svc_uid, (gid_t)-1) < 0)
        cm_log("warn", "cannot give the socket %s to the service user: %s", eng->socket_path,
               strerror(errno));
    eng->separated = true; /* the broker cleans up from here, also on failure */
    eng->iso.privsep = &eng->privsep;
    cm_providers *p = eng->providers;
    if (p->take_ids) {
        p->release_ids = release_ids;
        p->spawn_hook = spawn_hook;
        p->signal_hook = signal_hook;
        p->hook_ctx = eng;
    }
    bool kept = false;
    if (cm_privsep_drop(eng->svc_uid, eng->svc_gid, &kept, err) < 0)
        return -1;
    cm_log("info",
           "privilege separation: the engine runs as uid %u gid %u (%s), no capabilities; "
           "the privileged part is `codemode __sandboxd`, pid %d%s",
           (unsigned)eng->svc_uid, (unsigned)eng->svc_gid, eng->svc_from, (int)eng->privsep.pid,
           kept ? " (no CAP_SETPCAP here: the bounding set stays the runtime's; no_new_privs "
                  "keeps exec from using it)"
                : "");
    return 0;
}

void cm_privdrop_stop(cm_engine *eng)
{
    if (!eng->separated)
        return;
    int st = cm_privsep_stop(&eng->privsep);
    if (st != 0)
        cm_log("warn", "privilege separation: the privileged part exited with status %d", st);
}
