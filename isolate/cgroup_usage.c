/* cgroup_usage.c — a chain's cgroup usage read with its files opened ahead.
 *
 * The stats a chain's answer carries (CPU, peak memory, throttling, OOM kills)
 * come from four cgroup files.  Opening them is the costly part (a kernfs path
 * walk each); the chain opens them while its sandbox runs, and after `done`
 * only reads them (a cgroup file's content is made at read time), so the answer
 * waits for four preads instead of four open/read/close.  cm_cgroup_read_usage
 * (a read at one moment: a failed start, a jail's last stats) is the same
 * open, read and close in one go, so the files and fall-backs live here once. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

#define NOT_KEPT (-2)

static int open_in(const char *dir, const char *file)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* The file's whole (small) content from offset 0; bytes read or -1. */
static ssize_t read_fd(int fd, char *buf, size_t cap)
{
    if (fd < 0) {
        buf[0] = '\0';
        return -1;
    }
    ssize_t n = pread(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* Value of "key N" in a flat-keyed file's content, or -1. */
static long keyed_value(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, key, klen) && line[klen] == ' ')
            return strtol(line + klen + 1, NULL, 10);
    return -1;
}

void cm_cgroup_usage_open(const cm_cgroup *cg, cm_cgroup_usage_fds *f)
{
    /* NOT_KEPT: this hierarchy has no such file (reads as 0, not unknown) */
    *f = (cm_cgroup_usage_fds){.oom = NOT_KEPT, .peak = -1, .cpu_stat = NOT_KEPT, .cpu = -1};
    if (cg->v2 && cg->mem_idx >= 0) {
        const char *dir = cg->paths[cg->mem_idx];
        f->v2 = true;
        f->oom = open_in(dir, "memory.events");
        f->cpu_stat = open_in(dir, "cpu.stat");
        f->peak = open_in(dir, "memory.peak");
        return;
    }
    if (cg->mem_idx >= 0) {
        f->oom = open_in(cg->paths[cg->mem_idx], "memory.oom_control");
        f->peak = open_in(cg->paths[cg->mem_idx], "memory.max_usage_in_bytes");
    }
    if (cg->cpu_idx >= 0)
        f->cpu_stat = open_in(cg->paths[cg->cpu_idx], "cpu.stat");
    if (cg->acct_idx >= 0)
        f->cpu = open_in(cg->paths[cg->acct_idx], "cpuacct.usage");
}

void cm_cgroup_usage_read(const cm_cgroup_usage_fds *f, cm_cgroup_usage *u)
{
    memset(u, 0, sizeof *u);
    u->cpu_ms = u->peak_memory_bytes = -1;
    char buf[4096];
    if (f->oom != NOT_KEPT)
        u->oom_kills = read_fd(f->oom, buf, sizeof buf) > 0 ? keyed_value(buf, "oom_kill") : -1;
    if (f->cpu_stat != NOT_KEPT) {
        bool ok = read_fd(f->cpu_stat, buf, sizeof buf) > 0;
        u->throttled_periods = ok ? keyed_value(buf, "nr_throttled") : -1;
        long usec = ok && f->v2 ? keyed_value(buf, "usage_usec") : -1;
        if (f->v2)
            u->cpu_ms = usec >= 0 ? (double)usec / 1000.0 : -1;
    }
    if (read_fd(f->peak, buf, sizeof buf) > 0)
        u->peak_memory_bytes = strtod(buf, NULL);
    if (!f->v2 && read_fd(f->cpu, buf, sizeof buf) > 0)
        u->cpu_ms = strtod(buf, NULL) / 1e6;
}

double cm_cgroup_usage_cpu_ms(const cm_cgroup_usage_fds *f)
{
    char buf[4096];
    if (f->v2) {
        long usec = read_fd(f->cpu_stat, buf, sizeof buf) > 0 ? keyed_value(buf, "usage_usec") : -1;
        return usec >= 0 ? (double)usec / 1000.0 : -1;
    }
    return read_fd(f->cpu, buf, sizeof buf) > 0 ? strtod(buf, NULL) / 1e6 : -1;
}

void cm_cgroup_usage_close(cm_cgroup_usage_fds *f)
{
    int *fds[] = {&f->oom, &f->peak, &f->cpu_stat, &f->cpu};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

void cm_cgroup_read_usage(const cm_cgroup *cg, cm_cgroup_usage *u)
{
    cm_cgroup_usage_fds f;
    cm_cgroup_usage_open(cg, &f);
    cm_cgroup_usage_read(&f, u);
    cm_cgroup_usage_close(&f);
}
