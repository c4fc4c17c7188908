/* harden.c — capability drop, seccomp install, rlimits and the minimal init
 * (contract in harden.h).
 *
 * Why it exists: a sandbox child is made either by a raw clone from the
 * engine (sandbox.c) or by a fork of the zygote (zygote_ext.c); both must end
 * in exactly the same hardened state, so the steps live here once.  Raw
 * system calls only (see isolate/README.md, "Rules for code in this folder"):
 * libcap's cap_set_proc and libseccomp's seccomp_load allocate, and glibc's
 * set*id helpers broadcast to threads a clone child does not have. */
#include "harden.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define INIT_EXIT_FAILURE 127

static int fail(const char **step, const char *what)
{
    *step = what;
    return -1;
}

/* Second line behind the cgroup caps: no core dumps, file size, open files,
 * tasks and address space capped.  Raw prlimit64 on principle. */
int cm_harden_rlimits_apply(const cm_harden_rlimits *r, const char **step)
{
    struct rlimit core = {0, 0};
    struct rlimit fsize = {r->fsize, r->fsize};
    struct rlimit nofile = {r->nofile, r->nofile};
    struct rlimit nproc = {r->nproc, r->nproc};
    struct rlimit as = {r->as, r->as};
    if (syscall(SYS_prlimit64, 0, RLIMIT_CORE, &core, NULL) < 0)
        return fail(step, "setrlimit core");
    if (syscall(SYS_prlimit64, 0, RLIMIT_FSIZE, &fsize, NULL) < 0)
        return fail(step, "setrlimit fsize");
    if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &nofile, NULL) < 0)
        return fail(step, "setrlimit nofile");
    if (r->nproc && syscall(SYS_prlimit64, 0, RLIMIT_NPROC, &nproc, NULL) < 0)
        return fail(step, "setrlimit nproc");
    if (r->as && syscall(SYS_prlimit64, 0, RLIMIT_AS, &as, NULL) < 0)
        return fail(step, "setrlimit as");
    return 0;
}

/* Order matters: securebits and the bounding set need CAP_SETPCAP, so
 * capset comes last.  Locked securebits keep exec as uid 0, setuid fix-ups
 * and ambient raise from bringing a capability back. */
int cm_harden_drop_caps(int upto, const char **step)
{
    const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                               SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                               SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
        return fail(step, "prctl PR_SET_SECUREBITS");
    for (int cap = 0; cap <= upto; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return fail(step, "prctl PR_CAPBSET_DROP");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return fail(step, "prctl PR_CAP_AMBIENT_CLEAR_ALL");
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return fail(step, "capset");
    return 0;
}

int cm_harden_seccomp(const struct sock_filter *insns, unsigned short len, const char **step)
{
    struct sock_fprog prog = {.len = len, .filter = (struct sock_filter *)insns};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return fail(step, "seccomp");
    return 0;
}

/* "codemode-init: runner exit status N\n" / "...: runner signal N\n" on fd
 * 2 (the engine's diagnostics pipe), without stdio: this is a clone child. */
static void report_runner_end(int st)
{
    char line[64] = "codemode-init: runner ";
    size_t n = sizeof "codemode-init: runner " - 1;
    const char *what = WIFEXITED(st) ? "exit status " : "signal ";
    unsigned v = WIFEXITED(st) ? (unsigned)WEXITSTATUS(st) : (unsigned)WTERMSIG(st);
    while (*what)
        line[n++] = *what++;
    char digits[8];
    int d = 0;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && d < 8);
    while (d)
        line[n++] = digits[--d];
    line[n++] = '\n';
    (void)!syscall(SYS_write, 2, line, n);
}

/* The sandbox's pid 1: closes every fd but the diagnostics pipe (fd 2),
 * makes itself non-dumpable (its memory is a copy of the engine's or the
 * zygote's), reaps every child, says how the runner ended on fd 2 (the
 * engine tells a chain that ended itself from a sandbox killed from
 * outside by that line: a process in the pid namespace cannot kill its
 * init) and exits with the runner's status (128+signal when it was
 * killed).  When it exits the kernel kills whatever is left in the pid
 * namespace. */
static _Noreturn void run_init(pid_t runner)
{
    syscall(SYS_close_range, 0U, 1U, 0U);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (;;) {
        int st = 0;
        long pid = syscall(SYS_wait4, -1, &st, 0, NULL);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0)
            syscall(SYS_exit_group, INIT_EXIT_FAILURE);
        if (pid == runner) {
            report_runner_end(st);
            syscall(SYS_exit_group, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        }
    }
}

int cm_harden_fork_init(void (*after_fork_child)(void), const char **step)
{
    long pid = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
    if (pid < 0)
        return fail(step, "fork init");
    if (pid > 0)
        run_init((pid_t)pid);
    if (after_fork_child)
        after_fork_child();
    return 0;
}

int cm_harden_check_cwd(const char **step)
{
    char cwd[8];
    long n = syscall(SYS_getcwd, cwd, sizeof cwd);
    if (n < 0)
        return fail(step, "getcwd");
    if (n != 2 || cwd[0] != '/' || cwd[1] != '\0') {
        errno = EPERM;
        return fail(step, "getcwd is not /");
    }
    return 0;
}
