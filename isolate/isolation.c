/* isolation.c — the engine-wide isolation context (see isolation.h):
 * probes and prepares each layer once at start, records what is active and
 * why a layer is not, hands out sandbox uids/gids, and honours the
 * test-only layer switch. */
#include "isolation.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "privsep.h"
#include "provider_jail.h"
#include "ucounts.h"
#include "util.h"

static const char *const layer_names[CM_LAYER_COUNT] = {
    "namespaces", "cgroup", "seccomp", "caps", "rlimits", "userns_limit", "bpf", "init",
};

const char *cm_layer_name(cm_layer l)
{
    return (unsigned)l < CM_LAYER_COUNT ? layer_names[l] : "?";
}

int cm_layer_from_name(const char *name)
{
    for (int i = 0; i < CM_LAYER_COUNT; i++)
        if (!strcmp(name, layer_names[i]))
            return i;
    return -1;
}

const char *cm_layer_state_name(cm_layer_state s)
{
    return s == CM_LAYER_ACTIVE ? "active" : s == CM_LAYER_DISABLED ? "disabled" : "unavailable";
}

bool cm_isolation_active(const cm_isolation *iso, cm_layer l)
{
    return iso->layers[l].state == CM_LAYER_ACTIVE;
}

static void set_layer(cm_isolation *iso, cm_layer l, cm_layer_state st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_layer(cm_isolation *iso, cm_layer l, cm_layer_state st, const char *fmt, ...)
{
    if (iso->disabled[l])
        st = CM_LAYER_DISABLED;
    iso->layers[l].state = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(iso->layers[l].detail, sizeof iso->layers[l].detail, fmt, ap);
    va_end(ap);
}

/* CODEMODE_TEST_DISABLE_LAYER=a,b (only with engine.test_mode). */
static int read_disabled_layers(cm_isolation *iso, cm_error *err)
{
    const char *env = getenv("CODEMODE_TEST_DISABLE_LAYER");
    if (!env || !*env)
        return 0;
    cm_autofree char *copy = cm_xstrdup(env);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int l = cm_layer_from_name(tok);
        if (l < 0 || l == CM_LAYER_NAMESPACES)
            return cm_error_set(err, CM_ERR_CONFIG,
                                "CODEMODE_TEST_DISABLE_LAYER: unknown or mandatory layer '%s'",
                                tok);
        iso->disabled[l] = true;
    }
    return 0;
}

static void probe_namespaces(cm_isolation *iso)
{
    if (geteuid() != 0) {
        if (!cm_userns_works())
            set_layer(iso, CM_LAYER_NAMESPACES, CM_LAYER_UNAVAILABLE,
                      "rootless: this user may not create user namespaces (kernel.unprivileged_"
                      "userns_clone, user.max_user_namespaces); run as root or enable them");
        else
            set_layer(iso, CM_LAYER_NAMESPACES, CM_LAYER_ACTIVE,
                      "rootless: user (sandbox root = this uid %u, the only id mapped; setgroups "
                      "deny), pid (+init), mount, net (empty), ipc, uts, cgroup; pivot_root, "
                      "read-only root",
                      (unsigned)iso->uid_base);
        return;
    }
    set_layer(iso, CM_LAYER_NAMESPACES, CM_LAYER_ACTIVE,
              "user (uids %u..%u, setgroups deny), pid (+init), mount, net (empty), ipc, uts, "
              "cgroup; pivot_root, read-only root",
              (unsigned)iso->uid_base, (unsigned)(iso->uid_base + iso->uid_count - 1));
}

static void probe_cgroup(cm_isolation *iso)
{
    cm_error err;
    if (cm_cgroup_setup(&iso->cgroups, &err) < 0) {
        set_layer(iso, CM_LAYER_CGROUP, CM_LAYER_UNAVAILABLE, "%s", err.message);
        return;
    }
    if (iso->cgroups.mode == CM_CGROUP_V2)
        set_layer(iso, CM_LAYER_CGROUP, CM_LAYER_ACTIVE,
                  "cgroup v2 (memory.max, memory.swap.max=0, cpu.max, pids.max) under %s",
                  iso->cgroups.v2_root);
    else
        set_layer(iso, CM_LAYER_CGROUP, CM_LAYER_ACTIVE,
                  "cgroup v1 fallback (memory%s, cpu cfs quota, pids%s) under "
                  "/sys/fs/cgroup/<ctrl>/codemode",
                  iso->cgroups.have_memsw ? " + memsw (no swap)" : ", swappiness 0",
                  iso->cgroups.v1_roots[3][0] ? ", cpuacct" : "");
}

static void probe_seccomp(cm_isolation *iso)
{
    cm_error err;
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
        set_layer(iso, CM_LAYER_SECCOMP, CM_LAYER_UNAVAILABLE, "kernel without seccomp: %s",
                  strerror(errno));
        return;
    }
    if (cm_seccomp_compile(iso, &err) < 0) {
        set_layer(iso, CM_LAYER_SECCOMP, CM_LAYER_UNAVAILABLE, "%s", err.message);
        return;
    }
    set_layer(iso, CM_LAYER_SECCOMP, CM_LAYER_ACTIVE,
              "allow-list, default EPERM, %u BPF instructions, clone3 ENOSYS, installed last",
              (unsigned)iso->seccomp_len);
}

static void probe_caps(cm_isolation *iso)
{
    iso->last_cap = cap_max_bits() - 1;
    if (iso->last_cap < CAP_SETPCAP || !CAP_IS_SUPPORTED(CAP_SETPCAP)) {
        set_layer(iso, CM_LAYER_CAPS, CM_LAYER_UNAVAILABLE, "cannot determine capabilities");
        return;
    }
    char *last = cap_to_name((cap_value_t)iso->last_cap);
    set_layer(iso, CM_LAYER_CAPS, CM_LAYER_ACTIVE,
              "bounding (0..%s), ambient, inheritable, permitted, effective emptied; "
              "securebits locked; no_new_privs",
              last ? last : "?");
    cap_free(last);
}

static void probe_userns_limit(cm_isolation *iso)
{
    /* written from inside each new user namespace (the host value stays) */
    if (access("/proc/sys/user/max_user_namespaces", R_OK) != 0) {
        set_layer(iso, CM_LAYER_USERNS_LIMIT, CM_LAYER_UNAVAILABLE,
                  "/proc/sys/user/max_user_namespaces: %s", strerror(errno));
        return;
    }
    cm_ucounts_plan plan;
    cm_ucounts_plan_make(&plan, 0);
    char limits[200];
    cm_ucounts_describe(&plan, limits, sizeof limits);
    set_layer(iso, CM_LAYER_USERNS_LIMIT, CM_LAYER_ACTIVE,
              "in each sandbox's user namespace (max_*): %s", limits);
}

static void probe_bpf(cm_isolation *iso)
{
    cm_error err;
    if (iso->disabled[CM_LAYER_BPF]) {
        set_layer(iso, CM_LAYER_BPF, CM_LAYER_DISABLED, "switched off for tests");
        return;
    }
    if (cm_guard_attach(iso, &err) < 0) {
        set_layer(iso, CM_LAYER_BPF, CM_LAYER_UNAVAILABLE, "%s", err.message);
        return;
    }
    set_layer(iso, CM_LAYER_BPF, CM_LAYER_ACTIVE,
              "cgroup/sock_create (no IPv4/IPv6 sockets) + cgroup/dev (null, zero, urandom "
              "only) on %s",
              iso->cgroups.unified_instance);
}

int cm_isolation_init(cm_isolation *iso, uid_t uid_base, gid_t gid_base, unsigned uid_count,
                      bool test_mode, cm_error *err)
{
    memset(iso, 0, sizeof *iso);
    iso->uid_slot.fd = -1;
    pthread_mutex_init(&iso->uid_lock, NULL);
    if (geteuid() != 0) {
        /* rootless: an unprivileged user namespace may map only the
         * creator's own ids, so every sandbox's root is this user */
        uid_base = geteuid();
        gid_base = getegid();
        uid_count = 1;
    }
    iso->uid_base = uid_base;
    iso->gid_base = gid_base;
    iso->uid_count = uid_count ? uid_count : 1;
    iso->uid_used = cm_xcalloc(iso->uid_count, 1);
    if (test_mode && read_disabled_layers(iso, err) < 0)
        return -1;
    probe_namespaces(iso);
    probe_cgroup(iso);
    probe_seccomp(iso);
    probe_caps(iso);
    set_layer(iso, CM_LAYER_RLIMITS, CM_LAYER_ACTIVE,
              "core 0, file size = /tmp size, open files 256, nproc = pids cap, address "
              "space = 4 x memory cap (min 1 GiB)");
    probe_userns_limit(iso);
    probe_bpf(iso);
    set_layer(iso, CM_LAYER_INIT, CM_LAYER_ACTIVE,
              "pid 1 is a minimal reaper; the runner, the chain's one process, is its child");
    return 0;
}

void cm_isolation_free(cm_isolation *iso)
{
    cm_guard_detach(iso);
    /* separated: the privileged part removes the instance at its end */
    if (!iso->privsep && (iso->cgroups.mode != CM_CGROUP_NONE || iso->cgroups.have_unified))
        cm_cgroup_teardown(&iso->cgroups);
    free(iso->seccomp_insns);
    free(iso->uid_used);
    pthread_mutex_destroy(&iso->uid_lock);
    cm_uid_slot_release(&iso->uid_slot);
    memset(iso, 0, sizeof *iso);
    iso->uid_slot.fd = -1;
}

void cm_isolation_log(const cm_isolation *iso)
{
    for (int i = 0; i < CM_LAYER_COUNT; i++) {
        const cm_layer_status *s = &iso->layers[i];
        cm_log(s->state == CM_LAYER_ACTIVE ? "info" : "warn", "isolation layer %s: %s (%s)",
               cm_layer_name((cm_layer)i), cm_layer_state_name(s->state), s->detail);
    }
}

int cm_isolation_take_ids(cm_isolation *iso, uid_t *uid, gid_t *gid, cm_error *err)
{
    pthread_mutex_lock(&iso->uid_lock);
    for (unsigned n = 0; n < iso->uid_count; n++) {
        unsigned i = (iso->uid_next + n) % iso->uid_count;
        if (!iso->uid_used[i] || iso->uid_count == 1) {
            iso->uid_used[i] = 1;
            iso->uid_next = i + 1;
            pthread_mutex_unlock(&iso->uid_lock);
            *uid = iso->uid_base + i;
            *gid = iso->gid_base + i;
            return 0;
        }
    }
    pthread_mutex_unlock(&iso->uid_lock);
    return cm_error_set(err, CM_ERR_BUSY, "all %u sandbox uids of engine.sandbox_uid_range in use",
                        iso->uid_count);
}

void cm_isolation_release_ids(cm_isolation *iso, uid_t uid)
{
    if (uid < iso->uid_base || uid - iso->uid_base >= iso->uid_count)
        return;
    pthread_mutex_lock(&iso->uid_lock);
    iso->uid_used[uid - iso->uid_base] = 0;
    pthread_mutex_unlock(&iso->uid_lock);
}

int cm_isolation_reserve_last(cm_isolation *iso, uid_t *uid, gid_t *gid, cm_error *err)
{
    pthread_mutex_lock(&iso->uid_lock);
    unsigned last = iso->uid_count - 1;
    bool ok = iso->uid_count >= 2 && !iso->uid_used[last];
    if (ok)
        iso->uid_count = last; /* the allocator no longer reaches it */
    pthread_mutex_unlock(&iso->uid_lock);
    if (!ok)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "engine.user: the sandbox uid range %u..%u cannot spare its last uid "
                            "for the service user",
                            (unsigned)iso->uid_base,
                            (unsigned)(iso->uid_base + iso->uid_count - 1));
    *uid = iso->uid_base + last;
    *gid = iso->gid_base + last;
    return 0;
}

/* The per-sandbox cgroup's name below the instance (cgroup.c `<seq>`). */
static const char *cg_name(const cm_cgroup *cg)
{
    const char *slash = strrchr(cg->paths[0], '/');
    return slash ? slash + 1 : cg->paths[0];
}

int cm_jail_attach(cm_jail *j, pid_t pid, int pidfd, cm_error *err)
{
    if (j->cg.npaths == 0)
        return 0;
    if (!j->iso->privsep)
        return cm_cgroup_attach(&j->cg, pid, err);
    int fd = pidfd >= 0 ? pidfd : (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "pidfd_open %d", (int)pid);
    int rc = cm_privsep_attach(j->iso->privsep, fd, cg_name(&j->cg), err);
    if (fd != pidfd)
        close(fd);
    return rc;
}

static int jail_attach(void *ctx, pid_t pid, cm_error *err)
{
    return cm_jail_attach(ctx, pid, -1, err);
}

static int jail_id_maps(void *ctx, int pidfd, cm_error *err)
{
    cm_jail *j = ctx;
    return cm_privsep_ids(j->iso->privsep, pidfd, j->uid, err);
}

int cm_jail_prepare(cm_isolation *iso, const cm_limits *lim, cm_jail *j, cm_sandbox_spec *spec,
                    cm_error *err)
{
    memset(j, 0, sizeof *j);
    j->iso = iso;
    if (cm_isolation_take_ids(iso, &j->uid, &j->gid, err) < 0)
        return -1;
    j->have_ids = true;
    spec->host_uid = j->uid;
    spec->host_gid = j->gid;
    if (cm_cgroup_create(&iso->cgroups, cm_isolation_active(iso, CM_LAYER_CGROUP), lim, &j->cg,
                         err) < 0) {
        cm_jail_finish(j, NULL);
        return cm_error_prefix(err, "sandbox cgroup");
    }
    if (j->cg.npaths > 0) {
        spec->attach = jail_attach;
        spec->attach_ctx = j;
    }
    if (iso->privsep) {
        spec->id_maps = jail_id_maps;
        spec->id_maps_ctx = j;
    }
    if (cm_isolation_active(iso, CM_LAYER_SECCOMP)) {
        spec->seccomp_insns = iso->seccomp_insns;
        spec->seccomp_len = iso->seccomp_len;
    }
    if (cm_isolation_active(iso, CM_LAYER_CAPS))
        spec->drop_caps_upto = iso->last_cap;
    spec->limit_userns = cm_isolation_active(iso, CM_LAYER_USERNS_LIMIT);
    if (cm_isolation_active(iso, CM_LAYER_RLIMITS)) {
        spec->rlimits = true;
        spec->rlimit_fsize = spec->tmp_size_bytes;
        spec->rlimit_nofile = 256;
        spec->rlimit_nproc = (unsigned long)lim->pids_max;
        /* virtual, so generous: a backstop if the cgroup cap is missing */
        uint64_t as = lim->memory_bytes * 4;
        spec->rlimit_as = as < (1ULL << 30) ? (1ULL << 30) : as;
    }
    spec->use_init = cm_isolation_active(iso, CM_LAYER_INIT);
    return 0;
}

void cm_jail_finish(cm_jail *j, cm_cgroup_usage *u)
{
    if (!j->iso)
        return;
    if (u)
        cm_cgroup_read_usage(&j->cg, u);
    cm_cgroup_destroy(&j->cg);
    if (j->have_ids)
        cm_isolation_release_ids(j->iso, j->uid);
    j->have_ids = false;
    j->iso = NULL;
}
