/* cgroup.c — per-sandbox resource limits: memory (no swap), CPU quota and
 * a pids cap, on cgroup v2 when its controllers are available, else on the
 * v1 controllers (this machine).  The cgroup2 hierarchy, when mounted (also
 * in v1 "hybrid" mode at /sys/fs/cgroup/unified), additionally gets one
 * directory per sandbox for the eBPF guard and cgroup.kill.
 *
 * Layout: <hierarchy>/codemode/<instance>/<seq>, instance = "e<engine pid>".
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

#include "isolation.h"
#include "engine.h"
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

/* The engine's own cgroup directory on the unified hierarchy (from the
 * "0::<path>" line of /proc/self/cgroup; "/" is the root, or the root of
 * the engine's cgroup namespace). */
static int own_cgroup_dir(char *out, size_t cap)
{
    char buf[4096];
    if (read_text("/proc/self", "cgroup", buf, sizeof buf) <= 0)
        return -1;
    for (char *line = buf; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "0::/", 4))
            continue;
        size_t len = strcspn(line + 3, "\n");
        snprintf(out, cap, "%s%.*s", CG_MOUNT, (int)(len == 1 ? 0 : len), line + 3);
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

static bool engine_alive(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return false;
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(comm, sizeof comm, f) && !strncmp(comm, "codemode", 8);
    fclose(f);
    return ok;
}

static void reap_dead_under(const char *root, bool v2, pid_t self)
{
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_type != DT_DIR || e->d_name[0] != 'e')
            continue;
        char *end;
        long pid = strtol(e->d_name + 1, &end, 10);
        if (*end || pid <= 0 || pid == self || engine_alive((pid_t)pid))
            continue;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        cm_log("info", "cgroup: removing %s left by dead engine %ld", dir, pid);
        remove_instance(dir, v2);
    }
    closedir(d);
}

void cm_cgroup_reap_dead_instances(cm_isolation *iso)
{
    pid_t self = getpid();
    if (iso->cgroup_mode == CM_CGROUP_V1)
        for (int i = 0; i < 4; i++)
            if (iso->v1_roots[i][0])
                reap_dead_under(iso->v1_roots[i], false, self);
    if (iso->v2_root[0])
        reap_dead_under(iso->v2_root, true, self);
}

static int setup_v2_root(cm_isolation *iso, const char *mount, bool controllers, cm_error *err)
{
    snprintf(iso->v2_root, sizeof iso->v2_root, "%s/%s", mount, CG_DIRNAME);
    if (make_dir(iso->v2_root, err) < 0)
        return -1;
    snprintf(iso->unified_instance, sizeof iso->unified_instance, "%s/%s", iso->v2_root,
             iso->instance);
    if (make_dir(iso->unified_instance, err) < 0)
        return -1;
    if (controllers) {
        if (write_text(mount, "cgroup.subtree_control", "+memory +pids +cpu", err) < 0 ||
            write_text(iso->v2_root, "cgroup.subtree_control", "+memory +pids +cpu", err) < 0 ||
            write_text(iso->unified_instance, "cgroup.subtree_control", "+memory +pids +cpu", err) <
                0)
            return -1;
    }
    iso->have_unified = true;
    return 0;
}

static int setup_v1_roots(cm_isolation *iso, cm_error *err)
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
        snprintf(iso->v1_roots[i], sizeof iso->v1_roots[i], "%s/%s", ctrl, CG_DIRNAME);
        if (make_dir(iso->v1_roots[i], err) < 0)
            return -1;
        char inst[512];
        snprintf(inst, sizeof inst, "%s/%s", iso->v1_roots[i], iso->instance);
        if (make_dir(inst, err) < 0)
            return -1;
    }
    char probe[600];
    snprintf(probe, sizeof probe, "%s/%s/memory.memsw.limit_in_bytes", iso->v1_roots[0],
             iso->instance);
    iso->have_memsw = access(probe, F_OK) == 0;
    return 0;
}

/* Pure cgroup v2.  The engine's tree goes below the root, or, when the
 * engine is alone in its own cgroup (a delegated subtree), below that: the
 * engine first moves itself into <base>/codemode/supervisor, because a
 * non-root cgroup with processes cannot enable controllers for its children
 * ("no internal processes"; writing subtree_control would fail EBUSY). */
static int setup_v2(cm_isolation *iso, cm_error *err)
{
    char base[200] = CG_MOUNT, missing[64];
    bool delegated = own_cgroup_dir(base, sizeof base) == 0 && alone_in(base);
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
    iso->cgroup_mode = CM_CGROUP_V2;
    if (setup_v2_root(iso, base, true, err) < 0)
        return -1;
    cm_cgroup_reap_dead_instances(iso);
    return 0;
}

int cm_cgroup_setup(cm_isolation *iso, cm_error *err)
{
    snprintf(iso->instance, sizeof iso->instance, "e%d", (int)getpid());
    if (is_cgroup2(CG_MOUNT))
        return setup_v2(iso, err);
    iso->cgroup_mode = CM_CGROUP_V1;
    if (is_cgroup2(CG_UNIFIED) &&
        setup_v2_root(iso, CG_UNIFIED, false, err) < 0) /* guard + cgroup.kill only */
        return -1;
    if (setup_v1_roots(iso, err) < 0) {
        iso->cgroup_mode = CM_CGROUP_NONE;
        return -1;
    }
    cm_cgroup_reap_dead_instances(iso);
    return 0;
}

void cm_cgroup_teardown(cm_isolation *iso)
{
    for (int i = 0; i < 4; i++) {
        if (!iso->v1_roots[i][0])
            continue;
        char inst[512];
        snprintf(inst, sizeof inst, "%s/%s", iso->v1_roots[i], iso->instance);
        remove_instance(inst, false);
    }
    if (iso->unified_instance[0])
        remove_instance(iso->unified_instance, true);
}

static int add_path(cm_cgroup *cg, const char *root, const char *instance, unsigned long seq,
                    cm_error *err)
{
    int i = cg->npaths++;
    snprintf(cg->paths[i], sizeof cg->paths[i], "%s/%s/%lu", root, instance, seq);
    if (mkdir(cg->paths[i], 0755) < 0) {
        cg->npaths--;
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "mkdir %s", cg->paths[i]);
    }
    return i;
}

static int set_v1_limits(const cm_isolation *iso, const cm_cgroup *cg, const cm_limits *lim,
                         cm_error *err)
{
    char v[64];
    const char *mem = cg->paths[cg->mem_idx];
    snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
    if (write_text(mem, "memory.limit_in_bytes", v, err) < 0)
        return -1;
    if (iso->have_memsw && write_text(mem, "memory.memsw.limit_in_bytes", v, err) < 0)
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

int cm_cgroup_create(cm_isolation *iso, const cm_limits *lim, cm_cgroup *cg, cm_error *err)
{
    memset(cg, 0, sizeof *cg);
    cg->mem_idx = cg->cpu_idx = cg->acct_idx = cg->unified_idx = -1;
    unsigned long seq = atomic_fetch_add(&iso->seq, 1);
    bool limits = cm_isolation_active(iso, CM_LAYER_CGROUP);
    int rc = 0;
    if (limits && iso->cgroup_mode == CM_CGROUP_V2) {
        rc = add_path(cg, iso->v2_root, iso->instance, seq, err);
        cg->mem_idx = cg->cpu_idx = cg->acct_idx = cg->unified_idx = rc;
        if (rc >= 0)
            rc = set_v2_limits(cg, lim, err);
    } else {
        if (limits && iso->cgroup_mode == CM_CGROUP_V1) {
            for (int i = 0; i < 4 && rc >= 0; i++)
                if (iso->v1_roots[i][0])
                    rc = add_path(cg, iso->v1_roots[i], iso->instance, seq, err);
            if (rc >= 0) {
                cg->mem_idx = 0;
                cg->cpu_idx = 1;
                cg->acct_idx = iso->v1_roots[3][0] ? 3 : -1;
                rc = set_v1_limits(iso, cg, lim, err);
            }
        }
        if (rc >= 0 && iso->have_unified) {
            rc = add_path(cg, iso->v2_root, iso->instance, seq, err);
            cg->unified_idx = rc;
        }
    }
    cg->created = true;
    if (rc < 0) {
        cm_cgroup_destroy(iso, cg);
        return -1;
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

void cm_cgroup_destroy(cm_isolation *iso, cm_cgroup *cg)
{
    (void)iso;
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
int cm_cgroup_update_limits(const cm_isolation *iso, const cm_cgroup *cg, const cm_limits *from,
                            const cm_limits *to, cm_error *err)
{
    if (cg->mem_idx < 0)
        return 0;
    if (iso->cgroup_mode == CM_CGROUP_V2)
        return set_v2_limits(cg, to, err);
    char v[64];
    const char *mem = cg->paths[cg->mem_idx];
    snprintf(v, sizeof v, "%llu", (unsigned long long)to->memory_bytes);
    bool lower = to->memory_bytes < from->memory_bytes;
    if (iso->have_memsw && !lower && write_text(mem, "memory.memsw.limit_in_bytes", v, err) < 0)
        return -1;
    if (write_text(mem, "memory.limit_in_bytes", v, err) < 0)
        return -1;
    if (iso->have_memsw && lower && write_text(mem, "memory.memsw.limit_in_bytes", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", to->cpu_quota_pct * (CPU_PERIOD_US / 100));
    if (write_text(cg->paths[cg->cpu_idx], "cpu.cfs_quota_us", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", to->pids_max);
    return write_text(cg->paths[2], "pids.max", v, err);
}

double cm_cgroup_read_cpu_ms(const cm_isolation *iso, const cm_cgroup *cg)
{
    char buf[128];
    if (iso->cgroup_mode == CM_CGROUP_V2 && cg->mem_idx >= 0) {
        long usec = read_keyed(cg->paths[cg->mem_idx], "cpu.stat", "usage_usec");
        return usec >= 0 ? (double)usec / 1000.0 : -1;
    }
    if (cg->acct_idx >= 0 &&
        read_text(cg->paths[cg->acct_idx], "cpuacct.usage", buf, sizeof buf) > 0)
        return strtod(buf, NULL) / 1e6;
    return -1;
}
