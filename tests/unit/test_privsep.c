/* test_privsep.c — the engine's end of the privileged part (privsep.c)
 * against the real broker (`codemode __sandboxd`, CODEMODE_BIN or
 * build/codemode): each request through the C client with a throw-away
 * service uid, its own cgroups and work dir; a refused request loses the
 * channel for good; stop waits for the broker's clean-up; the engine's
 * drop leaves no capability, no root id, no group.  Root only
 * (skipped otherwise); tests/security/test_sandboxd.py fuzzes the broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/capability.h>

#include "privsep.h"
#include "util.h"

typedef struct fixture {
    uid_t svc, u;
    char workdir[64], v1[128], v2[128];
    char exe[PATH_MAX];
    cm_privsep ps;
    pid_t target;
    int pidfd, hold;
} fixture;

static char *const exec_opts[] = {"--jail", "--tmp-mb", "8", NULL};

static void make_cgroup(const char *dir)
{
    char sub[256];
    snprintf(sub, sizeof sub, "%s/c1", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
}

static int setup(void **state)
{
    if (geteuid() != 0)
        return 0;
    fixture *f = cm_xcalloc(1, sizeof *f);
    f->svc = 3960000 + (uid_t)(getpid() % 500) * 40;
    f->u = f->svc + 2;
    snprintf(f->workdir, sizeof f->workdir, "/tmp/privsep-XXXXXX");
    assert_non_null(mkdtemp(f->workdir));
    assert_int_equal(chown(f->workdir, f->svc, f->svc), 0);
    assert_int_equal(chmod(f->workdir, 0711), 0);
    /* v1 pids beside cgroup2 at unified/, or cgroup2 alone (the v2 test VM) */
    bool pure_v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    if (!pure_v2) {
        snprintf(f->v1, sizeof f->v1, "/sys/fs/cgroup/pids/privsep-%d", (int)getpid());
        make_cgroup(f->v1);
    }
    snprintf(f->v2, sizeof f->v2, "/sys/fs/cgroup%s/privsep-%d", pure_v2 ? "" : "/unified",
             (int)getpid());
    make_cgroup(f->v2);
    const char *bin = getenv("CODEMODE_BIN");
    assert_non_null(realpath(bin ? bin : "build/codemode", f->exe));
    cm_privsep_facts facts = {.exe = f->exe,
                              .svc_uid = f->svc,
                              .svc_gid = f->svc,
                              .uid_base = f->svc + 1,
                              .gid_base = f->svc + 1,
                              .count = 16,
                              .workdir = f->workdir,
                              .instance = {pure_v2 ? f->v2 : f->v1, f->v2},
                              .instance_v2 = {pure_v2, true},
                              .ninstance = pure_v2 ? 1 : 2,
                              .exec_opts = exec_opts};
    cm_error err;
    assert_int_equal(cm_privsep_start(&facts, &f->ps, &err), 0);
    /* a process of the service user with a user namespace of its own */
    int ready[2], hold[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
    f->target = fork();
    if (f->target == 0) {
        char c;
        close(f->ps.fd); /* the channel is the engine's alone */
        /* dumpable, as the engine is after its drop: its children's /proc
         * files are then the service user's, not root's */
        if (setresgid(f->svc, f->svc, f->svc) || setresuid(f->svc, f->svc, f->svc) ||
            prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) || unshare(CLONE_NEWUSER))
            _exit(2);
        if (write(ready[1], "r", 1) != 1 || read(hold[0], &c, 1) < 0)
            _exit(3);
        _exit(0);
    }
    char c;
    close(ready[1]);
    close(hold[0]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    f->hold = hold[1];
    f->pidfd = (int)syscall(SYS_pidfd_open, f->target, 0);
    assert_true(f->pidfd >= 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f)
        return 0;
    cm_privsep_stop(&f->ps);
    if (f->target > 0) { /* never kill(-1) */
        kill(f->target, SIGKILL);
        waitpid(f->target, NULL, 0);
    }
    close(f->pidfd);
    close(f->hold);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/c1", f->v1);
    rmdir(sub);
    rmdir(f->v1);
    snprintf(sub, sizeof sub, "%s/c1", f->v2);
    rmdir(sub);
    rmdir(f->v2);
    cm_remove_tree(f->workdir);
    free(f);
    return 0;
}

static void read_proc(pid_t pid, const char *name, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    FILE *fp = fopen(path, "re");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

static void test_requests(void **state)
{
    fixture *f = *state;
    if (!f)
        skip();
    cm_error err;
    char buf[4096], want[128];
    assert_int_equal(cm_privsep_ids(&f->ps, f->pidfd, f->u, &err), 0);
    read_proc(f->target, "uid_map", buf, sizeof buf);
    unsigned in, out, cnt;
    assert_int_equal(sscanf(buf, "%u %u %u", &in, &out, &cnt), 3);
    assert_int_equal(in, 0);
    assert_int_equal(out, f->u);
    assert_int_equal(cm_privsep_attach(&f->ps, f->pidfd, "c1", &err), 0);
    read_proc(f->target, "cgroup", buf, sizeof buf);
    snprintf(want, sizeof want, "/privsep-%d/c1", (int)getpid());
    assert_non_null(strstr(buf, want));

    /* a provider of uid u, this process's child, signalled through its group */
    int out_pipe[2];
    assert_int_equal(pipe2(out_pipe, O_CLOEXEC), 0);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char *argv[] = {"sh", "-c", "id -u; exec sleep 30", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    cm_privsep_spawn sp = {.fds = {nul, out_pipe[1], out_pipe[1]},
                           .uid = f->u,
                           .prog = "/bin/sh",
                           .argv = argv,
                           .envp = envp};
    pid_t pid = -1;
    assert_int_equal(cm_privsep_provider(&f->ps, &sp, &pid, &err), 0);
    close(nul);
    close(out_pipe[1]);
    ssize_t n = read(out_pipe[0], buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_int_equal(strtoul(buf, NULL, 10), f->u);
    assert_int_equal(cm_privsep_signal(&f->ps, pid, SIGKILL, &err), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    close(out_pipe[0]);

    /* the uid's call directory goes with UIDKILL */
    char call[128];
    snprintf(call, sizeof call, "%s/call", f->workdir);
    assert_int_equal(mkdir(call, 0700), 0);
    assert_int_equal(chown(call, f->u, f->u), 0);
    assert_int_equal(cm_privsep_uidkill(&f->ps, f->u, call, &err), 0);
    assert_int_equal(access(call, F_OK), -1);

    /* stop: the broker kills what is in the instance, removes it all */
    assert_int_equal(cm_privsep_stop(&f->ps), 0);
    assert_int_equal(waitpid(f->target, &st, 0), f->target);
    assert_true(WIFSIGNALED(st));
    f->target = -1;
    assert_int_equal(access(f->v1, F_OK), -1);
    assert_int_equal(access(f->v2, F_OK), -1);
    assert_int_equal(access(f->workdir, F_OK), -1);
}

static void test_refused_request_loses_the_channel(void **state)
{
    fixture *f = *state;
    if (!f)
        skip();
    cm_error err;
    /* the service uid is never a sandbox uid */
    assert_int_equal(cm_privsep_uidkill(&f->ps, f->svc, NULL, &err), -1);
    assert_non_null(strstr(err.message, "closed its channel"));
    assert_int_equal(cm_privsep_ids(&f->ps, f->pidfd, f->u, &err), -1);
    assert_int_equal(cm_privsep_stop(&f->ps), 3);
    char buf[256];
    read_proc(f->target, "uid_map", buf, sizeof buf);
    assert_string_equal(buf, "");
}

/* /proc/self/status field name's value, "" when absent. */
static void status_field(const char *name, char *out, size_t cap)
{
    char buf[8192];
    read_proc(getpid(), "status", buf, sizeof buf);
    out[0] = '\0';
    char *p = strstr(buf, name);
    if (!p)
        return;
    p += strlen(name);
    p += strspn(p, " \t");
    size_t n = strcspn(p, "\n");
    snprintf(out, cap, "%.*s", (int)n, p);
    for (char *t = out + strlen(out); t > out && (t[-1] == ' ' || t[-1] == '\t');)
        *--t = '\0';
}

static void assert_child_ok(pid_t pid)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_drop(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    pid_t pid = fork();
    if (pid == 0) {
        uid_t svc = 3961000 + (uid_t)(getpid() % 500);
        cm_error err;
        bool kept = true;
        if (cm_privsep_drop(svc, svc, &kept, &err) < 0 || kept)
            _exit(10);
        char v[256], want[64];
        snprintf(want, sizeof want, "%u\t%u\t%u\t%u", svc, svc, svc, svc);
        const char *zero[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
        for (int i = 0; i < 5; i++) {
            status_field(zero[i], v, sizeof v);
            if (strcmp(v, "0000000000000000"))
                _exit(20 + i);
        }
        status_field("Uid:", v, sizeof v);
        if (strcmp(v, want))
            _exit(30);
        status_field("Gid:", v, sizeof v);
        if (strcmp(v, want))
            _exit(31);
        status_field("Groups:", v, sizeof v);
        if (v[0])
            _exit(32);
        status_field("NoNewPrivs:", v, sizeof v);
        if (strcmp(v, "1") || prctl(PR_GET_DUMPABLE) != 1)
            _exit(33);
        /* and nothing comes back: not root again, no capability */
        if (setuid(0) == 0 || cm_privsep_drop(0, 0, &kept, &err) == 0)
            _exit(34);
        _exit(0);
    }
    assert_child_ok(pid);
}

/* With only the engine container's capabilities (no CAP_SETPCAP): the
 * bounding set stays the runtime's, everything else is dropped. */
static void test_drop_container_caps(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    pid_t pid = fork();
    if (pid == 0) {
        cap_value_t keep[] = {CAP_CHOWN, CAP_SETUID, CAP_SETGID, CAP_BPF, CAP_NET_ADMIN};
        for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++) {
            bool k = false;
            for (int i = 0; i < 5; i++)
                k = k || keep[i] == c;
            if (!k && cap_drop_bound(c) < 0)
                _exit(2);
        }
        cap_t caps = cap_init();
        cap_set_flag(caps, CAP_PERMITTED, 5, keep, CAP_SET);
        cap_set_flag(caps, CAP_EFFECTIVE, 5, keep, CAP_SET);
        if (cap_set_proc(caps) < 0)
            _exit(3);
        cap_free(caps);
        uid_t svc = 3961600 + (uid_t)(getpid() % 300);
        cm_error err;
        bool kept = false;
        if (cm_privsep_drop(svc, svc, &kept, &err) < 0 || !kept)
            _exit(10);
        char v[256];
        status_field("CapEff:", v, sizeof v);
        if (strcmp(v, "0000000000000000"))
            _exit(11);
        status_field("CapPrm:", v, sizeof v);
        if (strcmp(v, "0000000000000000"))
            _exit(12);
        _exit(getuid() == svc && getegid() == svc ? 0 : 13);
    }
    assert_child_ok(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_request_loses_the_channel, setup, teardown),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_drop_container_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
