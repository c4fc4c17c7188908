/* ready.c — times a sandbox from clone to "runner ready", split into
 *   spawn:       clone + namespaces + mounts + pivot_root + execve returned
 *   interpreter: execve -> python3.11 -I -S -B runs its first statement
 *   runner:      the runner's imports, fork of the chain process, `ready` sent
 * Usage: bench/ready ROOTFS [RUNS]  (root; prints medians in ms). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

static const char *const probe_argv[] = {"/usr/bin/python3.11",          "-I", "-S", "-B", "-c",
                                         "import os; os.write(3, b'r')", NULL};
static const char *const runner_argv[] = {
    "/usr/bin/python3.11", "-I", "-S", "-B", "-c", "import _codemode_runner as r; r.main(3)", NULL};
static const char *const envp[] = {"LANG=C.UTF-8", NULL};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Spawns argv in the rootfs, waits for `want` bytes on the control socket.
 * Fills spawn and total (ms since the clone started); 0 or -1. */
static int time_one(const char *rootfs, const char *const *argv, size_t want, double *spawn,
                    double *total)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    cm_sandbox_spec spec = {.rootfs = rootfs,
                            .host_uid = 100000,
                            .host_gid = 100000,
                            .argv = argv,
                            .envp = envp,
                            .control_fd = sv[1],
                            .output_fd = -1,
                            .tmp_size_bytes = 1 << 20};
    cm_sandbox sb;
    cm_error err;
    double t0 = now_ms();
    int rc = cm_sandbox_spawn(&spec, &sb, &err);
    *spawn = now_ms() - t0;
    close(sv[1]);
    if (rc < 0) {
        fprintf(stderr, "bench/ready: %s\n", err.message);
        close(sv[0]);
        return -1;
    }
    char buf[256];
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(sv[0], buf, sizeof buf);
        if (n <= 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    *total = now_ms() - t0;
    close(sv[0]);
    cm_sandbox_kill(&sb);
    cm_sandbox_reap(&sb, NULL, NULL, &err);
    return got >= want ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ROOTFS [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 20;
    if (runs < 1 || runs > 1000)
        runs = 20;
    double *sp = calloc((size_t)runs, sizeof *sp), *py = calloc((size_t)runs, sizeof *py);
    double *sr = calloc((size_t)runs, sizeof *sr), *rd = calloc((size_t)runs, sizeof *rd);
    if (!sp || !py || !sr || !rd)
        return 1;
    /* ready frame = 4-byte length + {"t":"ready"} (12 bytes) */
    for (int i = 0; i < runs; i++)
        if (time_one(argv[1], probe_argv, 1, &sp[i], &py[i]) < 0 ||
            time_one(argv[1], runner_argv, 16, &sr[i], &rd[i]) < 0)
            return 1;
    double spawn = median(sr, runs), interp = median(py, runs), ready = median(rd, runs);
    double probe_spawn = median(sp, runs);
    printf("  clone -> runner ready      %7.1f ms  (median of %d)\n", ready, runs);
    printf("    spawn (clone..execve)    %7.1f ms\n", spawn);
    printf("    interpreter start        %7.1f ms  (execve -> first statement)\n",
           interp - probe_spawn);
    printf("    runner imports + ready   %7.1f ms\n", ready - interp);
    free(sp);
    free(py);
    free(sr);
    free(rd);
    return 0;
}
