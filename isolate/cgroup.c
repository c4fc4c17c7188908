/* cgroup.c — per-sandbox resource limits: memory (no swap), CPU quota and
 * a pids cap, on cgroup v2 when its controllers are available, else on the
 * v1 controllers (this machine).  The cgroup2 hierarchy, when mounted (also
 * in v1 "hybrid" mode at /sys/fs/cgroup/unified), additionally gets one
 * directory per sandbox for the eBPF guard and cgroup.kill.
 *
 * Layout: <hierarchy>[/<the engine's own cgroup>]/codemode/<instance>/<seq>, instance =
 * "e<engine pid>"; <instance>/providers (v1) and the cgroup2 sibling
 * p<engine pid> hold the engine's provider processes.
 * Every sandbox cgroup is removed after its sandbox is reaped; the instance
 * directories at engine shutdown; and at start-up the engine removes the
 * instance directories of engines that died (SIGKILL leaves them behind),
 * killing anything still in them first.
 *
 * OOM: memory_limit is reported from the kernel's own counter (v2
 * memory.events "oom_kill", v1 memory.oom_control "oom_kill"), not guessed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "log.h"
#include "util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CG_MOUNT "/sys/fs/cgroup"
#define CG_UNIFIED "/sys/fs/cgroup/unified"
#define CG_DIRNAME "codemode"
#define CPU_PERIOD_US 100000

static const char *const v1_ctrls[4] = {"memory", "cpu", "pids", "cpuacct"};

static int write_text(const char *dir, const char *file, const char *text, cm_error *err)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cm_autofd int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "open %s", path);
    ssize_t n = write(fd, text, strlen(text));
    if (n < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "write '%s' to %s", text, path);
    return 0;
}

/* Reads a small control file; returns bytes read or -1. */
static ssize_t read_text(const char *dir, const char *file, char *buf, size_t cap)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cm_autofd int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* Value of "key N" in a flat-keyed file (memory.events, cpu.stat...). */
static long read_keyed(const char *dir, const char *file, const char *key)
{
    char buf[4096];
    if (read_text(dir, file, buf, sizeof buf) <= 0)
        return -1;
    size_t klen = strlen(key);
    for (char *line = buf; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, key, klen) && line[klen] == ' ')
            return strtol(line + klen + 1, NULL, 10);
    }
    return -1;
}

static int make_dir(const char *path, cm_error *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "mkdir %s", path);
    return 0;
}

static bool is_cgroup2(const char *path)
{
    struct statfs st;
    return statfs(path, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

/* Which of memory, cpu, pids dir/cgroup.controllers lacks ("" = none), as
 * whole words: "cpu" must not be found inside "cpuset". */
static void missing_controllers(const char *dir, char *out, size_t cap)
{
    static const char *const want[3] = {"memory", "cpu", "pids"};
    char buf[512];
    if (read_text(dir, "cgroup.controllers", buf, sizeof buf) < 0)
        buf[0] = '\0';
    out[0] = '\0';
    for (int i = 0; i < 3; i++) {
        bool found = false;
        char copy[512], *save = NULL;
        snprintf(copy, sizeof copy, "%s", buf);
        for (char *t = strtok_r(copy, " \n", &save); t && !found; t = strtok_r(NULL, " \n", &save))
            found = !strcmp(t, want[i]);
        if (!found) {
            size_t len = strlen(out);
            snprintf(out + len, cap - len, "%s%s", len ? ", " : "", want[i]);
        }
    }
}

/* The engine's own cgroup directory on the unified hierarchy mounted at
 * mount (from the "0::<path>" line of /proc/self/cgroup; "/" is the root, or
 * the root of the engine's cgroup namespace). */
static int own_cgroup_dir(const char *mount, char *out, size_t cap)
{
    char buf[4096];
    if (read_text("/proc/self", "cgroup", buf, sizeof buf) <= 0)
        return -1;
    for (char *line = buf; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "0::/", 4))
            continue;
        size_t len = strcspn(line + 3, "\n");
        snprintf(out, cap, "%s%.*s", mount, (int)(len == 1 ? 0 : len), line + 3);
        return 0;
    }
    return -1;
}

/* True when this engine is the only process in dir: a subtree delegated to
 * it (systemd Delegate=yes, a container's cgroup namespace root). */
static bool alone_in(const char *dir)
{
    char buf[64];
    if (read_text(dir, "cgroup.procs", buf, sizeof buf) <= 0)
        return false;
    char *end;
    return strtol(buf, &end, 10) == (long)getpid() && (!*end || !strcmp(end, "\n"));
}

/* Kills every process listed in dir/cgroup.procs (v1 has no cgroup.kill). */
static void kill_listed(const char *dir)
{
    char buf[8192];
    if (read_text(dir, "cgroup.procs", buf, sizeof buf) <= 0)
        return;
    for (char *p = buf; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 1)
            kill((pid_t)pid, SIGKILL);
        p = end;
        while (*p == '\n')
            p++;
    }
}

/* Kills what is inside and removes the directory; brief retries while the
 * kernel finishes tearing down exiting tasks. */
static void remove_cgroup_dir(const char *dir, bool v2)
{
    cm_error ignored;
    if (v2 && access(dir, F_OK) == 0)
        write_text(dir, "cgroup.kill", "1", &ignored);
    for (int i = 0; i < 200; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        if (errno != EBUSY)
            break;
        if (!v2)
            kill_listed(dir);
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cm_log("warn", "cgroup: cannot remove %s: %s", dir, strerror(errno));
}

/* Removes an instance directory and every sandbox cgroup below it. */
static void remove_instance(const char *dir, bool v2)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_type != DT_DIR || e->d_name[0] == '.')
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
            remove_cgroup_dir(sub, v2);
        }
        closedir(d);
    }
    remove_cgroup_dir(dir, v2);
}

void cm_cgroup_remove_instance(const char *dir, bool v2)
{
    remove_instance(dir, v2);
}

static void reap_dead_under(const char *root, bool v2, pid_t self)
{
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* e<pid>: an instance; p<pid>: its providers (cgroup2) */
        if (e->d_type != DT_DIR || (e->d_name[0] != 'e' && e->d_name[0] != 'p'))
            continue;
        char *end;
        long pid = strtol(e->d_name + 1, &end, 10);
        if (*end || pid <= 0 || pid == self || cm_engine_pid_alive(pid))
            continue;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        cm_log("info", "cgroup: removing %s left by dead engine %ld", dir, pid);
        remove_instance(dir, v2);
    }
    closedir(d);
}

void cm_cgroup_reap_dead_instances(cm_cgroup_root *root)
{
    pid_t self = getpid();
    if (root->mode == CM_CGROUP_V1)
        for (int i = 0; i < 4; i++)
            if (root->v1_roots[i][0])
                reap_dead_under(root->v1_roots[i], false, self);
    if (root->v2_root[0])
        reap_dead_under(root->v2_root, true, self);
}

static int setup_v2_root(cm_cgroup_root *root, const char *mount, bool controllers, cm_error *err)
{
    snprintf(root->v2_root, sizeof root->v2_root, "%s/%s", mount, CG_DIRNAME);
    if (make_dir(root->v2_root, err) < 0)
        return -1;
    snprintf(root->unified_instance, sizeof root->unified_instance, "%s/%s", root->v2_root,
             root->instance);
    if (make_dir(root->unified_instance, err) < 0)
        return -1;
    if (controllers) {
        if (write_text(mount, "cgroup.subtree_control", "+memory +pids +cpu", err) < 0 ||
            write_text(root->v2_root, "cgroup.subtree_control", "+memory +pids +cpu", err) < 0 ||
            write_text(root->unified_instance, "cgroup.subtree_control", "+memory +pids +cpu",
                       err) < 0)
            return -1;
    }
    root->have_unified = true;
    return 0;
}

/* The engine's own cgroup in the v1 hierarchy of controller ctrl (from the
 * "N:ctrl,...:/path" line of /proc/self/cgroup), "" for the root: the
 * engine's tree nests below it, so the service's own limits (a systemd
 * unit's MemoryMax, a pod's) bound every sandbox and provider it starts. */
static void own_v1_path(const char *ctrl, char *out, size_t cap)
{
    char buf[4096];
    out[0] = '\0';
    if (read_text("/proc/self", "cgroup", buf, sizeof buf) <= 0)
        return;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        char *tsave = NULL;
        for (char *t = strtok_r(c1 + 1, ",", &tsave); t; t = strtok_r(NULL, ",", &tsave))
            if (!strcmp(t, ctrl)) {
                snprintf(out, cap, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
                return;
            }
    }
}

static int setup_v1_roots(cm_cgroup_root *root, cm_error *err)
{
    for (int i = 0; i < 4; i++) {
        char ctrl[128];
        snprintf(ctrl, sizeof ctrl, "%s/%s", CG_MOUNT, v1_ctrls[i]);
        if (access(ctrl, F_OK) != 0) {
            if (i == 3)
                continue; /* cpuacct is optional (statistics only) */
            return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "cgroup v1 controller %s not mounted",
                                v1_ctrls[i]);
        }
        char own[200];
        own_v1_path(v1_ctrls[i], own, sizeof own);
        snprintf(root->v1_roots[i], sizeof root->v1_roots[i], "%s%s/%s", ctrl, own, CG_DIRNAME);
        if (make_dir(root->v1_roots[i], err) < 0)
            return -1;
        char inst[512];
        snprintf(inst, sizeof inst, "%s/%s", root->v1_roots[i], root->instance);
        if (make_dir(inst, err) < 0)
            return -1;
    }
    char probe[600];
    snprintf(probe, sizeof probe, "%s/%s/memory.memsw.limit_in_bytes", root->v1_roots[0],
             root->instance);
    root->have_memsw = access(probe, F_OK) == 0;
    return 0;
}

/* Pure cgroup v2.  The engine's tree goes below the root, or, when the
 * engine is alone in its own cgroup (a delegated subtree), below that: the
 * engine first moves itself into <base>/codemode/supervisor, because a
 * non-root cgroup with processes cannot enable controllers for its children
 * ("no internal processes"; writing subtree_control would fail EBUSY). */
static int setup_v2(cm_cgroup_root *root, cm_error *err)
{
    char base[200] = CG_MOUNT, missing[64];
    bool delegated = own_cgroup_dir(CG_MOUNT, base, sizeof base) == 0 && alone_in(base);
    if (!delegated)
        snprintf(base, sizeof base, "%s", CG_MOUNT);
    missing_controllers(base, missing, sizeof missing);
    if (missing[0])
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE,
                            "cgroup v2 controller %s not available in %s (not enabled in the "
                            "parent's cgroup.subtree_control; systemd: Delegate=yes)",
                            missing, base);
    if (delegated) {
        char dir[300], pid[32];
        snprintf(dir, sizeof dir, "%s/%s", base, CG_DIRNAME);
        if (make_dir(dir, err) < 0)
            return -1;
        snprintf(dir, sizeof dir, "%s/%s/supervisor", base, CG_DIRNAME);
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if (make_dir(dir, err) < 0 || write_text(dir, "cgroup.procs", pid, err) < 0)
            return -1;
    }
    root->mode = CM_CGROUP_V2;
    if (setup_v2_root(root, base, true, err) < 0)
        return -1;
    cm_cgroup_reap_dead_instances(root);
    return 0;
}

int cm_cgroup_setup(cm_cgroup_root *root, cm_error *err)
{
    snprintf(root->instance, sizeof root->instance, "e%d", (int)getpid());
    if (is_cgroup2(CG_MOUNT))
        return setup_v2(root, err);
    root->mode = CM_CGROUP_V1;
    /* guard + cgroup.kill only, nested below the engine's own cgroup as on
     * the v1 hierarchies: an engine in a container (its own pid namespace,
     * so its instance name e<pid> is not unique on the host) must neither
     * collide with nor reap the instances of engines in other containers or
     * on the host. */
    char unified[240] = CG_UNIFIED;
    if (is_cgroup2(CG_UNIFIED) &&
        (own_cgroup_dir(CG_UNIFIED, unified, sizeof unified) < 0 || access(unified, W_OK) < 0))
        snprintf(unified, sizeof unified, "%s", CG_UNIFIED);
    if (is_cgroup2(CG_UNIFIED) && setup_v2_root(root, unified, false, err) < 0)
        return -1;
    if (setup_v1_roots(root, err) < 0) {
        root->mode = CM_CGROUP_NONE;
        return -1;
    }
    cm_cgroup_reap_dead_instances(root);
    return 0;
}

int cm_cgroup_instance_dirs(const cm_cgroup_root *root, char (*dirs)[512], bool *v2, int cap)
{
    int n = 0;
    for (int i = 0; i < 4 && n < cap; i++) {
        if (!root->v1_roots[i][0])
            continue;
        snprintf(dirs[n], 512, "%s/%s", root->v1_roots[i], root->instance);
        v2[n++] = false;
    }
    if (root->unified_instance[0] && n < cap) {
        snprintf(dirs[n], 512, "%s", root->unified_instance);
        v2[n++] = true;
    }
    return n;
}

int cm_cgroup_chown_instance(const cm_cgroup_root *root, uid_t uid, gid_t gid, cm_error *err)
{
    static const char *const files[] = {"", "/cgroup.procs", "/tasks", "/cgroup.subtree_control",
                                        "/cgroup.threads"};
    char dirs[5][512];
    bool v2[5];
    int n = cm_cgroup_instance_dirs(root, dirs, v2, 5);
    for (int i = 0; i < n; i++)
        for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
            char path[600];
            if (snprintf(path, sizeof path, "%.511s%s", dirs[i], files[f]) >= (int)sizeof path)
                continue;
            if (lchown(path, uid, gid) < 0 && (f == 0 || errno != ENOENT))
                return cm_error_sys(err, CM_ERR_IO, "chown %s to the service user", path);
        }
    return 0;
}

void cm_cgroup_teardown(cm_cgroup_root *root)
{
    for (int i = 0; i < 4; i++) {
        if (!root->v1_roots[i][0])
            continue;
        char inst[512];
        snprintf(inst, sizeof inst, "%s/%s", root->v1_roots[i], root->instance);
        remove_instance(inst, false);
    }
    if (root->unified_instance[0])
        remove_instance(root->unified_instance, true);
}

static int add_path(cm_cgroup *cg, const char *root, const char *instance, const char *name,
                    cm_error *err)
{
    int i = cg->npaths++;
    snprintf(cg->paths[i], sizeof cg->paths[i], "%s/%s/%s", root, instance, name);
    if (mkdir(cg->paths[i], 0755) < 0) {
        cg->npaths--;
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "mkdir %s", cg->paths[i]);
    }
    return i;
}

static int set_v1_limits(const cm_cgroup *cg, const cm_limits *lim, cm_error *err)
{
    char v[64];
    const char *mem = cg->paths[cg->mem_idx];
    snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
    if (write_text(mem, "memory.limit_in_bytes", v, err) < 0)
        return -1;
    if (cg->memsw && write_text(mem, "memory.memsw.limit_in_bytes", v, err) < 0)
        return -1;
    cm_error ignored; /* swappiness is best effort: memsw above already forbids swap */
    write_text(mem, "memory.swappiness", "0", &ignored);
    const char *cpu = cg->paths[cg->cpu_idx];
    snprintf(v, sizeof v, "%d", CPU_PERIOD_US);
    if (write_text(cpu, "cpu.cfs_period_us", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", lim->cpu_quota_pct * (CPU_PERIOD_US / 100));
    if (write_text(cpu, "cpu.cfs_quota_us", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", lim->pids_max);
    return write_text(cg->paths[2], "pids.max", v, err);
}

static int set_v2_limits(const cm_cgroup *cg, const cm_limits *lim, cm_error *err)
{
    char v[64];
    const char *dir = cg->paths[0];
    snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
    if (write_text(dir, "memory.max", v, err) < 0)
        return -1;
    cm_error ignored; /* absent without swap accounting: then there is no swap to use */
    write_text(dir, "memory.swap.max", "0", &ignored);
    snprintf(v, sizeof v, "%d %d", lim->cpu_quota_pct * (CPU_PERIOD_US / 100), CPU_PERIOD_US);
    if (write_text(dir, "cpu.max", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", lim->pids_max);
    return write_text(dir, "pids.max", v, err);
}

static int create_named(cm_cgroup_root *root, const char *name, bool limits, const cm_limits *lim,
                        bool unified, cm_cgroup *cg, cm_error *err)
{
    memset(cg, 0, sizeof *cg);
    cg->mem_idx = cg->cpu_idx = cg->acct_idx = cg->unified_idx = -1;
    cg->v2 = root->mode == CM_CGROUP_V2;
    cg->memsw = root->have_memsw;
    int rc = 0;
    if (limits && root->mode == CM_CGROUP_V2) {
        rc = add_path(cg, root->v2_root, root->instance, name, err);
        cg->mem_idx = cg->cpu_idx = cg->acct_idx = cg->unified_idx = rc;
        if (rc >= 0 && lim)
            rc = set_v2_limits(cg, lim, err);
    } else {
        if (limits && root->mode == CM_CGROUP_V1) {
            for (int i = 0; i < 4 && rc >= 0; i++)
                if (root->v1_roots[i][0])
                    rc = add_path(cg, root->v1_roots[i], root->instance, name, err);
            if (rc >= 0) {
                cg->mem_idx = 0;
                cg->cpu_idx = 1;
                cg->acct_idx = root->v1_roots[3][0] ? 3 : -1;
                if (lim)
                    rc = set_v1_limits(cg, lim, err);
            }
        }
        if (rc >= 0 && unified && root->have_unified) {
            rc = add_path(cg, root->v2_root, root->instance, name, err);
            cg->unified_idx = rc;
        }
    }
    cg->created = true;
    if (rc < 0) {
        cm_cgroup_destroy(cg);
        return -1;
    }
    return 0;
}

int cm_cgroup_create(cm_cgroup_root *root, bool limits, const cm_limits *lim, cm_cgroup *cg,
                     cm_error *err)
{
    char name[32];
    snprintf(name, sizeof name, "%lu", atomic_fetch_add(&root->seq, 1));
    return create_named(root, name, limits, lim, true, cg, err);
}

/* The cgroup2 directory of this engine's providers: p<pid>, a sibling of
 * the instance (whose eBPF guard denies sockets to everything below it). */
static int add_providers_v2(cm_cgroup_root *root, cm_cgroup *cg, cm_error *err)
{
    int i = cg->npaths++;
    snprintf(cg->paths[i], sizeof cg->paths[i], "%s/p%s", root->v2_root, root->instance + 1);
    if (mkdir(cg->paths[i], 0755) < 0 && errno != EEXIST) {
        cg->npaths--;
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "mkdir %s", cg->paths[i]);
    }
    cg->unified_idx = i;
    return 0;
}

int cm_cgroup_create_providers(cm_cgroup_root *root, cm_cgroup *cg, cm_error *err)
{
    memset(cg, 0, sizeof *cg);
    cg->mem_idx = cg->cpu_idx = cg->acct_idx = cg->unified_idx = -1;
    if (root->mode == CM_CGROUP_V1 &&
        create_named(root, "providers", true, NULL, false, cg, err) < 0)
        return -1;
    /* never below the cgroup2 instance: it carries the eBPF guard (no
     * sockets), which a child cgroup inherits, and providers need the
     * network; the sibling p<pid> holds them instead (on v1 hosts too,
     * where the cgroup2 mount has no controllers: for cgroup.kill) */
    if (root->have_unified) {
        cg->v2 = root->mode == CM_CGROUP_V2;
        if (add_providers_v2(root, cg, err) < 0) {
            cm_cgroup_destroy(cg);
            return -1;
        }
        cg->created = true;
    }
    return 0;
}

int cm_cgroup_attach(const cm_cgroup *cg, pid_t pid, cm_error *err)
{
    char v[32];
    snprintf(v, sizeof v, "%d", (int)pid);
    for (int i = 0; i < cg->npaths; i++)
        if (write_text(cg->paths[i], "cgroup.procs", v, err) < 0)
            return -1;
    return 0;
}

void cm_cgroup_destroy(cm_cgroup *cg)
{
    if (!cg->created)
        return;
    /* the cgroup2 directory first: cgroup.kill takes everything down at once */
    if (cg->unified_idx >= 0)
        remove_cgroup_dir(cg->paths[cg->unified_idx], true);
    for (int i = 0; i < cg->npaths; i++)
        if (i != cg->unified_idx)
            remove_cgroup_dir(cg->paths[i], false);
    cg->created = false;
    cg->npaths = 0;
}

/* Changes the limits of a live sandbox's cgroups (a warm-pool sandbox taken
 * by a chain whose limits are lower than the pool's defaults).  v1 needs
 * memsw >= memory at every step: lower memory first, raise memsw first. */
int cm_cgroup_update_limits(const cm_cgroup *cg, const cm_limits *from, const cm_limits *to,
                            cm_error *err)
{
    if (cg->mem_idx < 0)
        return 0;
    if (cg->v2)
        return set_v2_limits(cg, to, err);
    char v[64];
    const char *mem = cg->paths[cg->mem_idx];
    snprintf(v, sizeof v, "%llu", (unsigned long long)to->memory_bytes);
    bool lower = to->memory_bytes < from->memory_bytes;
    if (cg->memsw && !lower && write_text(mem, "memory.memsw.limit_in_bytes", v, err) < 0)
        return -1;
    if (write_text(mem, "memory.limit_in_bytes", v, err) < 0)
        return -1;
    if (cg->memsw && lower && write_text(mem, "memory.memsw.limit_in_bytes", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", to->cpu_quota_pct * (CPU_PERIOD_US / 100));
    if (write_text(cg->paths[cg->cpu_idx], "cpu.cfs_quota_us", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", to->pids_max);
    return write_text(cg->paths[2], "pids.max", v, err);
}

double cm_cgroup_read_cpu_ms(const cm_cgroup *cg)
{
    char buf[128];
    if (cg->v2 && cg->mem_idx >= 0) {
        long usec = read_keyed(cg->paths[cg->mem_idx], "cpu.stat", "usage_usec");
        return usec >= 0 ? (double)usec / 1000.0 : -1;
    }
    if (cg->acct_idx >= 0 &&
        read_text(cg->paths[cg->acct_idx], "cpuacct.usage", buf, sizeof buf) > 0)
        return strtod(buf, NULL) / 1e6;
    return -1;
}

int cm_cgroup_procs_list(const cm_cgroup *cg, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < cg->npaths; i++) {
        int n =
            snprintf(out + used, cap - used, "%s%s/cgroup.procs", used ? ":" : "", cg->paths[i]);
        if (n < 0 || (size_t)n >= cap - used)
            return -1;
        used += (size_t)n;
    }
    return 0;
}
