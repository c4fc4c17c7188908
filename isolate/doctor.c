/* doctor.c — `codemode doctor` and the engine's start-up isolation report.
 *
 * Doctor prepares every layer exactly as `serve` does, then starts one real
 * sandbox (the rootfs interpreter sleeping) and reads the host's view of
 * its pid 1 (/proc/PID/status: capability sets, seccomp mode,
 * no_new_privs, uid map) to confirm the layers really took.  It prints one
 * line per layer, active/unavailable/disabled with the reason, and exits 1
 * when a layer the config requires (engine.require_layers; default: all) is
 * not active, 2 on usage or config errors.  The command line and the
 * config file are the engine's (engine/cmd_doctor.c): this file gets the
 * isolation settings only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "isolation.h"
#include "privsep.h"
#include "provider_exec.h"
#include "provider_jail.h"
#include "util.h"

/* 1 when every layer named in require (NULL = all) is active; the missing
 * names go to missing. */
static bool required_layers_active(const cm_isolation *iso, const cJSON *require, char *missing,
                                   size_t cap, cm_error *err, bool *bad_name)
{
    bool ok = true;
    *bad_name = false;
    missing[0] = '\0';
    for (int l = 0; l < CM_LAYER_COUNT; l++) {
        /* no explicit list: all, except rootless, where cgroup and bpf need
         * a cgroup this user does not get (the fallback line says what
         * stands in) */
        bool needed =
            require == NULL && (geteuid() == 0 || (l != CM_LAYER_CGROUP && l != CM_LAYER_BPF));
        const cJSON *it;
        cJSON_ArrayForEach(it, require)
        {
            if (cm_layer_from_name(it->valuestring) < 0) {
                *bad_name = true;
                cm_error_set(err, CM_ERR_CONFIG, "engine.require_layers: unknown layer '%s'",
                             it->valuestring);
                return false;
            }
            if (!strcmp(it->valuestring, cm_layer_name((cm_layer)l)))
                needed = true;
        }
        if (needed && !cm_isolation_active(iso, (cm_layer)l)) {
            ok = false;
            size_t len = strlen(missing);
            snprintf(missing + len, cap - len, "%s%s", len ? ", " : "", cm_layer_name((cm_layer)l));
        }
    }
    return ok;
}

/* The engine's start: prepare the layers, report them, refuse to serve when
 * the config explicitly requires a layer that is not active. */
int cm_isolation_start(cm_isolation *iso, const cm_iso_config *cfg, cm_error *err)
{
    /* a range of sandbox uids no other engine on this host uses; rootless:
     * the one uid this user has, shared by all its sandboxes */
    cm_uid_slot slot = {.fd = -1};
    if (geteuid() == 0 && cm_uid_slot_claim(cfg->runtime_dir, cfg->sandbox_uid, cfg->sandbox_gid,
                                            cfg->sandbox_uid_range, &slot, err) < 0)
        return -1;
    if (cm_isolation_init(iso, slot.uid_base, slot.gid_base, cfg->sandbox_uid_range, cfg->test_mode,
                          err) < 0) {
        cm_uid_slot_release(&slot);
        return -1;
    }
    iso->uid_slot = slot;
    cm_isolation_log(iso);
    if (!cfg->require_layers)
        return 0;
    char missing[256];
    bool bad;
    if (!required_layers_active(iso, cfg->require_layers, missing, sizeof missing, err, &bad)) {
        if (!bad)
            cm_error_set(err, CM_ERR_CONFIG,
                         "required isolation layers not active: %s (see `codemode doctor`)",
                         missing);
        return -1;
    }
    return 0;
}

static bool status_field_is(const char *status, const char *key, const char *want)
{
    const char *p = strstr(status, key);
    if (!p)
        return false;
    p += strlen(key);
    while (*p == ' ' || *p == '\t')
        p++;
    return !strncmp(p, want, strlen(want));
}

/* Starts one hardened sandbox and checks its pid 1 from the host. */
static int live_check(cm_isolation *iso, const cm_iso_config *cfg, char *report, size_t cap)
{
    static const char *const argv[] = {"/usr/bin/python3.11",         "-I", "-S", "-c",
                                       "import time; time.sleep(10)", NULL};
    static const char *const envp[] = {"LANG=C.UTF-8", NULL};
    cm_sandbox_spec spec = {.rootfs = cfg->rootfs,
                            .argv = argv,
                            .envp = envp,
                            .control_fd = -1,
                            .output_fd = -1,
                            .tmp_size_bytes = cfg->tmp_size_bytes};
    cm_limits lim = cfg->limits;
    cm_jail jail;
    cm_error err;
    cm_sandbox sb;
    if (cm_jail_prepare(iso, &lim, &jail, &spec, &err) < 0 ||
        cm_sandbox_spawn(&spec, &sb, &err) < 0) {
        cm_jail_finish(&jail, NULL);
        snprintf(report, cap, "FAILED to start a sandbox: %s", err.message);
        return -1;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)sb.pid);
    cm_autofree char *status = NULL;
    size_t len;
    int rc = cm_read_file(path, 1 << 16, &status, &len, &err);
    const char *z = "0000000000000000";
    bool caps = rc == 0 && status_field_is(status, "CapInh:", z) &&
                status_field_is(status, "CapPrm:", z) && status_field_is(status, "CapEff:", z) &&
                status_field_is(status, "CapBnd:", z) && status_field_is(status, "CapAmb:", z);
    bool filt = rc == 0 && status_field_is(status, "Seccomp:", "2");
    bool nnp = rc == 0 && status_field_is(status, "NoNewPrivs:", "1");
    char uid[32];
    snprintf(uid, sizeof uid, "%u", (unsigned)spec.host_uid);
    bool uidok = rc == 0 && status_field_is(status, "Uid:", uid);
    cm_sandbox_kill(&sb);
    int st;
    cm_sandbox_reap(&sb, &st, NULL, &err);
    cm_jail_finish(&jail, NULL);
    snprintf(report, cap,
             "sandbox pid 1 seen from the host: host uid %s (%s), capabilities %s, seccomp "
             "filter %s, no_new_privs %s",
             uid, uidok ? "ok" : "WRONG", caps ? "all empty" : "NOT empty", filt ? "on" : "off",
             nnp ? "on" : "off");
    bool want_caps = cm_isolation_active(iso, CM_LAYER_CAPS);
    bool want_filt = cm_isolation_active(iso, CM_LAYER_SECCOMP);
    return uidok && nnp && caps == want_caps && filt == want_filt ? 0 : -1;
}

/* A command through the provider exec step and jail, as serve runs it. */
static int provider_check(cm_isolation *iso, const cm_iso_config *cfg)
{
    if (!cfg->provider_jail)
        return 0;
    cm_provider_exec_cfg pc = {.jail = true, .userns = geteuid() != 0, .tmp_mb = 16};
    cm_cgroup cg;
    char **prefix = NULL, why[1100] = "", ids[32];
    cm_error err;
    uid_t u = 0;
    gid_t g = 0;
    int rc = cm_provider_exec_prepare(&iso->cgroups, &cg, &pc, &prefix, &err);
    if (rc < 0)
        snprintf(why, sizeof why, "%s", err.message);
    bool root = geteuid() == 0;
    if (rc == 0 && root && (rc = cm_isolation_take_ids(iso, &u, &g, &err)) < 0)
        snprintf(why, sizeof why, "%s", err.message);
    snprintf(ids, sizeof ids, "%u:%u", (unsigned)u, (unsigned)g);
    if (rc == 0)
        rc = cm_provider_exec_check(prefix, root ? ids : NULL, why, sizeof why);
    if (root && u)
        cm_isolation_release_ids(iso, u);
    cm_provider_exec_free(prefix);
    if (cg.created)
        cm_cgroup_destroy(&cg);
    printf("provider check %-11s %s\n", rc == 0 ? "ok" : "FAILED",
           rc == 0 ? "/bin/true ran through the provider exec step and jail" : why);
    return rc;
}

/* Which uid each part runs as, and what stands in for missing cgroups. */
static void who_runs_as_what(const cm_isolation *iso, const cm_iso_config *cfg)
{
    bool root = geteuid() == 0;
    unsigned first = (unsigned)iso->uid_base, last = (unsigned)(iso->uid_base + iso->uid_count - 1);
    if (root) {
        uid_t su = 0;
        gid_t sg = 0;
        bool from_range = false;
        char from[64] = "", svc[1100];
        cm_error err;
        int rc = cm_privsep_service_user(cfg->user, iso->uid_base, iso->gid_base, iso->uid_count,
                                         &su, &sg, &from_range, from, sizeof from, &err);
        char why[512] = "";
        if (rc == 0 && !cm_privsep_possible(why, sizeof why))
            rc = 2;
        if (rc == 0 && !cfg->user &&
            (!cm_privsep_path_reachable(cfg->rootfs, su, sg, why, sizeof why) ||
             !cm_privsep_path_reachable(cfg->rootfs_full, su, sg, why, sizeof why)))
            rc = 2;
        if (rc == 0 && from_range && cm_privsep_possible(svc, sizeof svc))
            last--; /* the service user's, out of the sandboxes' range */
        if (rc < 0)
            snprintf(svc, sizeof svc, "(%s)", err.message);
        else
            snprintf(svc, sizeof svc, "%u", (unsigned)su);
        if (rc == 1 || rc == 2)
            printf("%-13s uid 0 (%s: socket server, RPC, registry, policy, libcurl and the "
                   "sandbox set-up in one root process; NOT separated)\n",
                   "engine", rc == 1 ? "engine.user: root" : why);
        else
            printf("%-13s uid %s gid %u (%s): socket server, RPC, registry, policy, libcurl, "
                   "sandbox set-up; no capabilities, no_new_privs (dropped after its root "
                   "start)\n",
                   "engine", svc, (unsigned)sg, rc < 0 ? "engine.user" : from);
        if (rc != 1 && rc != 2)
            printf("%-13s uid 0: codemode __sandboxd (isolate/sandboxd.c), the engine's child; "
                   "requests IDS, ATTACH, PROVIDER, SIGNAL, UIDKILL, each checked\n",
                   "privileged");
    } else {
        printf("%-13s uid %u (rootless: no privileges beyond this user's; nothing runs as "
               "root)\n",
               "engine", (unsigned)geteuid());
    }
    if (root)
        printf("%-13s host uids %u..%u, one per live sandbox (root inside its user namespace)\n",
               "sandboxes", first, last);
    else
        printf("%-13s host uid %u, the one id mapped (root inside each sandbox's user "
               "namespace)\n",
               "sandboxes", first);
    if (!cfg->provider_jail)
        printf("%-13s NOT jailed (engine.provider_jail: false): the engine's uid %u and view of "
               "the host\n",
               "providers", (unsigned)geteuid());
    else if (root)
        printf("%-13s jailed: a uid of its own per process from %u..%u, own mount view (host "
               "read-only, own /tmp, engine files covered), no capabilities, no_new_privs\n",
               "providers", first, last);
    else if (cm_userns_works())
        printf("%-13s jailed in a user namespace as uid %u: own mount view (host read-only, own "
               "/tmp, engine files covered), no capabilities, no_new_privs\n",
               "providers", (unsigned)geteuid());
    else
        printf("%-13s NOT jailed (no user namespace for this user): uid %u with its view of the "
               "host\n",
               "providers", (unsigned)geteuid());
    if (!cm_isolation_active(iso, CM_LAYER_CGROUP))
        printf("%-13s no cgroup: memory = RLIMIT_AS (4 x memory cap), tasks = RLIMIT_NPROC (pids "
               "cap, per sandbox), time = the chain timeout; no CPU quota, no memory or CPU "
               "statistics, no eBPF guard (the empty network namespace still holds)\n",
               "fallback");
}

int cm_doctor_report(const cm_iso_config *cfg, const char *version, cm_error *err)
{
    cm_isolation iso;
    if (cm_isolation_init(&iso, cfg->sandbox_uid, cfg->sandbox_gid, cfg->sandbox_uid_range,
                          cfg->test_mode, err) < 0)
        return -1;
    printf("codemode %s isolation report (rootfs %s)\n", version, cfg->rootfs);
    printf("cgroup mode: %s\n", iso.cgroups.mode == CM_CGROUP_V2   ? "v2"
                                : iso.cgroups.mode == CM_CGROUP_V1 ? "v1 (fallback)"
                                                                   : "none");
    for (int l = 0; l < CM_LAYER_COUNT; l++)
        printf("%-13s %-12s %s\n", cm_layer_name((cm_layer)l),
               cm_layer_state_name(iso.layers[l].state), iso.layers[l].detail);
    who_runs_as_what(&iso, cfg);
    char report[1200], missing[256];
    int live = live_check(&iso, cfg, report, sizeof report);
    printf("live check    %-12s %s\n", live == 0 ? "ok" : "FAILED", report);
    int pcheck = provider_check(&iso, cfg);
    bool bad;
    cm_error lerr;
    bool ok =
        required_layers_active(&iso, cfg->require_layers, missing, sizeof missing, &lerr, &bad);
    if (bad)
        printf("config error: %s\n", lerr.message);
    else if (!ok)
        printf("required layers missing: %s\n", missing);
    else
        printf("all required layers active\n");
    cm_isolation_free(&iso);
    return ok && live == 0 && pcheck == 0 ? 0 : 1;
}
