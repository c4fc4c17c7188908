/* test_sandbox.c — cmocka tests of isolate/sandbox.c against a tiny rootfs
 * built here: a statically linked probe (tests/unit/sandbox_probe.c), empty
 * /tmp and /dev mount targets, nothing else.  The probe reports what it sees
 * from inside; the test checks the host's view through /proc/<pid>.
 * Must run as root (skips otherwise).  Leaves no process behind: every test
 * registers its sandbox in the shared state and the teardown kills+reaps. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox.h"
#include "util.h"

#define HOST_UID 4242
#define HOST_GID 4243
#define TMP_SIZE (1024 * 1024)
#define TIMING_RUNS 50
#define OUTPUT_MAX 8192

typedef struct test_state {
    char dir[64];          /* 0700 temp dir holding the rootfs */
    char rootfs[PATH_MAX]; /* dir/rootfs, 0755 */
    cm_sandbox sb;         /* the current test's sandbox, reaped in teardown */
} test_state;

static const char *const probe_env[] = {"PATH=/", NULL};

/* ------------------------------------------------------------ helpers -- */

static int run_command(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int make_file(const char *root, const char *rel, mode_t mode)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int make_dir(const char *root, const char *rel, mode_t mode)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (mkdir(path, mode) < 0)
        return -1;
    return chmod(path, mode);
}

/* The probe source sits next to this file; __FILE__ is relative to the
 * repository root when built by the Makefile. */
static void probe_source_path(char *out, size_t cap)
{
    const char *env = getenv("CM_PROBE_SRC");
    if (env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) : 1;
    snprintf(out, cap, "%.*s/sandbox_probe.c", dirlen, slash ? file : ".");
}

static int build_probe(const char *rootfs)
{
    char src[PATH_MAX], dst[PATH_MAX];
    probe_source_path(src, sizeof src);
    snprintf(dst, sizeof dst, "%s/probe", rootfs);
    char *argv[] = {"cc", "-static", "-O1", "-o", dst, src, NULL};
    if (run_command(argv) < 0) {
        fprintf(stderr, "could not build the probe from %s (cc -static)\n", src);
        return -1;
    }
    return chmod(dst, 0755);
}

static int group_setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_sandbox: needs root, skipping\n");
        return -1;
    }
    test_state *st = cm_xcalloc(1, sizeof *st);
    snprintf(st->dir, sizeof st->dir, "/tmp/cm-sandbox-test-XXXXXX");
    if (!mkdtemp(st->dir)) /* 0700: the rootfs path is not traversable by HOST_UID */
        return -1;
    snprintf(st->rootfs, sizeof st->rootfs, "%s/rootfs", st->dir);
    if (make_dir(st->dir, "rootfs", 0755) < 0 || make_dir(st->rootfs, "tmp", 0755) < 0 ||
        make_dir(st->rootfs, "dev", 0755) < 0 || make_file(st->rootfs, "dev/null", 0644) < 0 ||
        make_file(st->rootfs, "dev/zero", 0644) < 0 ||
        make_file(st->rootfs, "dev/urandom", 0644) < 0 || build_probe(st->rootfs) < 0)
        return -1;
    st->sb.pid = -1;
    st->sb.pidfd = -1;
    *state = st;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    test_state *st = *state;
    if (st) {
        nftw(st->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(st);
    }
    return 0;
}

/* Per-test: whatever happened, nothing stays running. */
static int test_teardown(void **state)
{
    test_state *st = *state;
    if (st->sb.pid >= 0) {
        cm_error err;
        cm_sandbox_kill(&st->sb);
        cm_sandbox_reap(&st->sb, NULL, NULL, &err);
    }
    return 0;
}

static bool no_children_left(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static cm_sandbox_spec probe_spec(const test_state *st, const char *const *argv, int output_fd,
                                  int control_fd)
{
    return (cm_sandbox_spec){
        .rootfs = st->rootfs,
        .host_uid = HOST_UID,
        .host_gid = HOST_GID,
        .argv = argv,
        .envp = probe_env,
        .control_fd = control_fd,
        .output_fd = output_fd,
        .tmp_size_bytes = TMP_SIZE,
    };
}

/* Reads fd into buf until `marker` is seen, EOF, or 5 s pass. */
static size_t read_until(int fd, char *buf, size_t cap, size_t len, const char *marker)
{
    int64_t deadline = cm_now_ms() + 5000;
    while (len < cap - 1 && !strstr(buf, marker)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - cm_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return len;
}

/* Value of the "key=value" line in text, copied into out ("" if absent). */
static const char *fact(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line += !!line) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            const char *v = line + klen + 1;
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\n"), v);
            break;
        }
    }
    return out;
}

#define assert_fact(text, key, expected)                                                           \
    do {                                                                                           \
        char v_[256];                                                                              \
        assert_string_equal(fact(text, key, v_, sizeof v_), expected);                             \
    } while (0)

/* A host line of /proc/<pid>/status, e.g. "Uid:" -> "4242\t4242\t4242\t4242". */
static void proc_status_line(pid_t pid, const char *key, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = NULL;
    size_t len;
    cm_error err;
    out[0] = '\0';
    if (cm_read_file(path, 65536, &text, &len, &err) < 0)
        return;
    char pat[32];
    snprintf(pat, sizeof pat, "\n%s\t", key);
    const char *p = strstr(text, pat);
    if (p) {
        p += strlen(pat);
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\n"), p);
    }
    free(text);
}

static bool same_namespace(pid_t pid, const char *ns)
{
    char a[PATH_MAX], b[PATH_MAX], la[128] = "", lb[128] = "";
    snprintf(a, sizeof a, "/proc/self/ns/%s", ns);
    snprintf(b, sizeof b, "/proc/%d/ns/%s", (int)pid, ns);
    if (readlink(a, la, sizeof la - 1) < 0 || readlink(b, lb, sizeof lb - 1) < 0)
        return true;
    return strcmp(la, lb) == 0;
}

/* A host TCP listener on 127.0.0.1; returns its fd, port in *port. */
static int open_loopback_listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 4), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return s;
}

/* -------------------------------------------------------------- tests -- */

static void test_probe_sees_isolated_world(void **state)
{
    test_state *st = *state;
    int port;
    cm_autofd int listener = open_loopback_listener(&port);
    char port_arg[16];
    snprintf(port_arg, sizeof port_arg, "%d", port);

    int out[2], ctl[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl), 0);
    cm_autofd int out_r = out[0], out_w = out[1], ctl_host = ctl[0], ctl_sb = ctl[1];

    const char *argv[] = {"/probe", "facts", port_arg, NULL};
    cm_sandbox_spec spec = probe_spec(st, argv, out_w, ctl_sb);
    cm_error err = {0};
    int rc = cm_sandbox_spawn(&spec, &st->sb, &err);
    if (rc < 0)
        fail_msg("spawn: %s", err.message);
    cm_cleanup_fd(&out_w);
    cm_cleanup_fd(&ctl_sb);

    char buf[OUTPUT_MAX] = "";
    size_t len = read_until(out_r, buf, sizeof buf, 0, "\nready\n");
    print_message("probe output:\n%s", buf);
    assert_non_null(strstr(buf, "\nready\n"));

    /* inside view */
    assert_fact(buf, "uid", "0");
    assert_fact(buf, "euid", "0");
    assert_fact(buf, "gid", "0");
    assert_fact(buf, "pid", "1");
    assert_fact(buf, "ppid", "0");
    assert_fact(buf, "hostname", "codemode");
    assert_fact(buf, "cwd", "/");
    assert_fact(buf, "open_etc_passwd", "ENOENT");
    assert_fact(buf, "stat_proc", "ENOENT");
    assert_fact(buf, "write_root", "EROFS");
    assert_fact(buf, "write_tmp", "OK");
    assert_fact(buf, "dev_null", "OK");
    assert_fact(buf, "dev_zero", "OK");
    assert_fact(buf, "dev_urandom", "OK");
    assert_fact(buf, "connect_loopback", "ENETUNREACH");
    assert_fact(buf, "open_fds", "0,1,2,3,");
    char entries[256];
    fact(buf, "root_entries", entries, sizeof entries);
    assert_non_null(strstr(entries, "probe,"));
    assert_non_null(strstr(entries, "tmp,"));
    assert_non_null(strstr(entries, "dev,"));
    assert_int_equal(strlen(entries), strlen("probe,tmp,dev,"));

    /* host view while the probe is alive */
    char line[128];
    proc_status_line(st->sb.pid, "Uid:", line, sizeof line);
    assert_string_equal(line, "4242\t4242\t4242\t4242");
    proc_status_line(st->sb.pid, "Gid:", line, sizeof line);
    assert_string_equal(line, "4243\t4243\t4243\t4243");
    proc_status_line(st->sb.pid, "NoNewPrivs:", line, sizeof line);
    assert_string_equal(line, "1");
    const char *namespaces[] = {"user", "pid", "mnt", "net", "ipc", "uts", "cgroup"};
    for (size_t i = 0; i < sizeof namespaces / sizeof namespaces[0]; i++) {
        if (same_namespace(st->sb.pid, namespaces[i]))
            fail_msg("sandbox shares the host %s namespace", namespaces[i]);
    }
    /* the host listener never saw a connection */
    assert_true(accept(listener, NULL, NULL) < 0 && errno == EAGAIN);

    /* closing the control socket lets the probe finish on its own */
    cm_cleanup_fd(&ctl_host);
    read_until(out_r, buf, sizeof buf, len, "\ndone\n");
    assert_non_null(strstr(buf, "\ndone\n"));
    int status = -1;
    assert_int_equal(cm_sandbox_reap(&st->sb, &status, NULL, &err), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(st->sb.pid, -1);
    assert_int_equal(st->sb.pidfd, -1);
    assert_true(no_children_left());
}

static void test_tmp_is_size_capped(void **state)
{
    test_state *st = *state;
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    cm_autofd int out_r = out[0], out_w = out[1];
    const char *argv[] = {"/probe", "fill", "4194304", NULL}; /* 4 MiB into a 1 MiB tmpfs */
    cm_sandbox_spec spec = probe_spec(st, argv, out_w, -1);
    cm_error err = {0};
    if (cm_sandbox_spawn(&spec, &st->sb, &err) < 0)
        fail_msg("spawn: %s", err.message);
    cm_cleanup_fd(&out_w);
    char buf[OUTPUT_MAX] = "";
    read_until(out_r, buf, sizeof buf, 0, "\nfilled=");
    int status;
    assert_int_equal(cm_sandbox_reap(&st->sb, &status, NULL, &err), 0);
    assert_true(strncmp(buf, "fill=ENOSPC\n", 12) == 0);
    char filled[32];
    assert_true(atol(fact(buf, "filled", filled, sizeof filled)) <= TMP_SIZE);
}

static void test_missing_argv0_fails_cleanly(void **state)
{
    test_state *st = *state;
    const char *argv[] = {"/no-such-binary", NULL};
    cm_sandbox_spec spec = probe_spec(st, argv, -1, -1);
    cm_error err = {0};
    assert_int_equal(cm_sandbox_spawn(&spec, &st->sb, &err), -1);
    print_message("error: %s\n", err.message);
    assert_int_equal(err.kind, CM_ERR_SANDBOX_FAILURE);
    assert_non_null(strstr(err.message, "execve /no-such-binary: No such file or directory"));
    assert_int_equal(st->sb.pid, -1);
    assert_int_equal(st->sb.pidfd, -1);
    assert_true(no_children_left());
}

static void test_missing_rootfs_fails_cleanly(void **state)
{
    test_state *st = *state;
    const char *argv[] = {"/probe", "sleep", NULL};
    cm_sandbox_spec spec = probe_spec(st, argv, -1, -1);
    spec.rootfs = "/nonexistent-cm-rootfs";
    cm_error err = {0};
    assert_int_equal(cm_sandbox_spawn(&spec, &st->sb, &err), -1);
    print_message("error: %s\n", err.message);
    assert_int_equal(err.kind, CM_ERR_SANDBOX_FAILURE);
    assert_non_null(strstr(err.message, "bind rootfs /nonexistent-cm-rootfs: No such file"));
    assert_true(no_children_left());
}

static void test_host_root_refused(void **state)
{
    test_state *st = *state;
    const char *argv[] = {"/probe", "sleep", NULL};
    cm_sandbox_spec spec = probe_spec(st, argv, -1, -1);
    cm_error err = {0};
    spec.host_uid = 0;
    assert_int_equal(cm_sandbox_spawn(&spec, &st->sb, &err), -1);
    assert_int_equal(err.kind, CM_ERR_INVALID_REQUEST);
    assert_non_null(strstr(err.message, "must not be 0"));
    spec.host_uid = HOST_UID;
    spec.host_gid = 0;
    assert_int_equal(cm_sandbox_spawn(&spec, &st->sb, &err), -1);
    assert_int_equal(err.kind, CM_ERR_INVALID_REQUEST);
    assert_int_equal(st->sb.pid, -1);
    assert_true(no_children_left());
}

static void test_kill_and_reap(void **state)
{
    test_state *st = *state;
    const char *argv[] = {"/probe", "sleep", NULL};
    cm_sandbox_spec spec = probe_spec(st, argv, -1, -1);
    cm_error err = {0};
    if (cm_sandbox_spawn(&spec, &st->sb, &err) < 0)
        fail_msg("spawn: %s", err.message);
    pid_t pid = st->sb.pid;
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), 0);
    cm_sandbox_kill(&st->sb);
    cm_sandbox_kill(&st->sb); /* idempotent */
    int status = 0;
    struct rusage ru;
    assert_int_equal(cm_sandbox_reap(&st->sb, &status, &ru, &err), 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(st->sb.pid, -1);
    assert_int_equal(st->sb.pidfd, -1);
    cm_sandbox_kill(&st->sb); /* safe after reap */
    assert_int_equal(cm_sandbox_reap(&st->sb, &status, NULL, &err), -1);
    assert_true(kill(pid, 0) < 0 && errno == ESRCH);
    assert_true(no_children_left());
}

typedef struct thread_arg {
    const test_state *st;
    int failures;
    char message[sizeof(cm_error){0}.message];
} thread_arg;

static void *spawn_loop(void *p)
{
    thread_arg *a = p;
    const char *argv[] = {"/probe", "sleep", NULL};
    cm_sandbox_spec spec = probe_spec(a->st, argv, -1, -1);
    for (int i = 0; i < 20; i++) {
        cm_sandbox sb;
        cm_error err = {0};
        int status;
        if (cm_sandbox_spawn(&spec, &sb, &err) < 0) {
            a->failures++;
            snprintf(a->message, sizeof a->message, "%s", err.message);
            continue;
        }
        cm_sandbox_kill(&sb);
        if (cm_sandbox_reap(&sb, &status, NULL, &err) < 0 || !WIFSIGNALED(status))
            a->failures++;
    }
    return NULL;
}

static void test_concurrent_spawns_from_threads(void **state)
{
    enum { THREADS = 6 };
    pthread_t t[THREADS];
    thread_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (thread_arg){.st = *state};
        assert_int_equal(pthread_create(&t[i], NULL, spawn_loop, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        if (args[i].failures)
            fail_msg("thread %d: %d failures (%s)", i, args[i].failures, args[i].message);
    }
    assert_true(no_children_left());
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_spawn_kill_reap_timing(void **state)
{
    test_state *st = *state;
    const char *argv[] = {"/probe", "sleep", NULL};
    cm_sandbox_spec spec = probe_spec(st, argv, -1, -1);
    int64_t total[TIMING_RUNS], spawn[TIMING_RUNS];
    for (int i = 0; i < TIMING_RUNS; i++) {
        cm_error err = {0};
        int status;
        int64_t t0 = cm_now_us();
        if (cm_sandbox_spawn(&spec, &st->sb, &err) < 0)
            fail_msg("spawn: %s", err.message);
        int64_t t1 = cm_now_us();
        cm_sandbox_kill(&st->sb);
        assert_int_equal(cm_sandbox_reap(&st->sb, &status, NULL, &err), 0);
        int64_t t2 = cm_now_us();
        spawn[i] = t1 - t0;
        total[i] = t2 - t0;
    }
    qsort(total, TIMING_RUNS, sizeof total[0], cmp_i64);
    qsort(spawn, TIMING_RUNS, sizeof spawn[0], cmp_i64);
    print_message("sandbox timing over %d runs: spawn median %.3f ms (p90 %.3f); "
                  "spawn+kill+reap median %.3f ms (p90 %.3f, min %.3f, max %.3f)\n",
                  TIMING_RUNS, spawn[TIMING_RUNS / 2] / 1000.0,
                  spawn[TIMING_RUNS * 9 / 10] / 1000.0, total[TIMING_RUNS / 2] / 1000.0,
                  total[TIMING_RUNS * 9 / 10] / 1000.0, total[0] / 1000.0,
                  total[TIMING_RUNS - 1] / 1000.0);
    assert_true(no_children_left());
}

int main(void)
{
    alarm(180); /* a hung spawn fails the run; pdeathsig takes the sandboxes down */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_probe_sees_isolated_world, test_teardown),
        cmocka_unit_test_teardown(test_tmp_is_size_capped, test_teardown),
        cmocka_unit_test_teardown(test_missing_argv0_fails_cleanly, test_teardown),
        cmocka_unit_test_teardown(test_missing_rootfs_fails_cleanly, test_teardown),
        cmocka_unit_test_teardown(test_host_root_refused, test_teardown),
        cmocka_unit_test_teardown(test_kill_and_reap, test_teardown),
        cmocka_unit_test_teardown(test_concurrent_spawns_from_threads, test_teardown),
        cmocka_unit_test_teardown(test_spawn_kill_reap_timing, test_teardown),
    };
    return cmocka_run_group_tests_name("sandbox", tests, group_setup, group_teardown);
}
