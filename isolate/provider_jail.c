/* provider_jail.c — provider processes parse untrusted input (an MCP
 * server is third-party code, a CLI command gets the chain's arguments),
 * so they must not run as the engine: they used to run as root with the
 * whole host in reach.  In the `codemode __provider-exec` step, still as
 * the engine's uid, the process takes a private mount namespace (the host
 * read-only and nosuid, its own /tmp, the engine's config, policy, audit
 * log, manuals, runtime directory and socket covered), then the
 * unprivileged uid the engine took for it (root engine) or a user namespace
 * mapping the one user id (rootless engine), an empty bounding set, no
 * capabilities and no_new_privs, and only then execs the provider.
 *
 * The network stays the host's (the policy's egress rules are enforced by
 * the engine for the calls it makes; a provider's own connections are not
 * filtered — isolate/README.md says so).  This runs in a freshly spawned,
 * single-threaded process, so ordinary libc calls are fine here. */
#include "provider_jail.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x00000002
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

struct jail_mount_attr {
    unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

static int failf(char *why, size_t cap, const char *step, const char *path)
{
    int e = errno;
    snprintf(why, cap, "%s%s%s: %s", step, path ? " " : "", path ? path : "", strerror(e));
    errno = e;
    return -1;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Rootless: a user namespace in which this process keeps its own uid and
 * gid (the only ids it may map) and holds capabilities for the mounts. */
static int enter_userns(char *why, size_t cap)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER) < 0)
        return failf(why, cap, "unshare(CLONE_NEWUSER)", NULL);
    char map[64];
    if (write_file("/proc/self/setgroups", "deny") < 0)
        return failf(why, cap, "write", "/proc/self/setgroups");
    snprintf(map, sizeof map, "%u %u 1", (unsigned)uid, (unsigned)uid);
    if (write_file("/proc/self/uid_map", map) < 0)
        return failf(why, cap, "write", "/proc/self/uid_map");
    snprintf(map, sizeof map, "%u %u 1", (unsigned)gid, (unsigned)gid);
    if (write_file("/proc/self/gid_map", map) < 0)
        return failf(why, cap, "write", "/proc/self/gid_map");
    return 0;
}

static int mount_tmp(const char *dir, unsigned mb, char *why, size_t cap)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    char opts[64];
    snprintf(opts, sizeof opts, "size=%um,mode=1777", mb ? mb : 64);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return failf(why, cap, "tmpfs on", dir);
    return 0;
}

/* Covers one engine path: an empty tmpfs over a directory, the
 * empty /dev/null over a file or socket.  A path that is not there (or is
 * below something already covered) needs nothing. */
static int hide(const char *path, char *why, size_t cap)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        /* not read-only: a call's own directory may have to be made below
         * it (the engine's temp dir outside /tmp); root-owned 0755, so the
         * provider's uid cannot write it */
        if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755") <
            0)
            return failf(why, cap, "cover", path);
        return 0;
    }
    if (S_ISLNK(st.st_mode))
        return 0; /* its target is listed on its own when it matters */
    if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0)
        return failf(why, cap, "cover", path);
    return 0;
}

static int mount_view(const cm_provider_jail *j, char *why, size_t cap)
{
    if (unshare(CLONE_NEWNS) < 0)
        return failf(why, cap, "unshare(CLONE_NEWNS)", NULL);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return failf(why, cap, "make / private", NULL);
    int rw_fd[CM_JAIL_MAX_RW];
    for (int i = 0; i < j->nrw; i++) {
        rw_fd[i] = (int)syscall(SYS_open_tree, AT_FDCWD, j->rw[i], OPEN_TREE_CLONE | O_CLOEXEC);
        if (rw_fd[i] < 0)
            return failf(why, cap, "open_tree", j->rw[i]);
    }
    struct jail_mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) < 0)
        return failf(why, cap, "read-only host", NULL);
    static const char *const tmps[] = {"/tmp", "/var/tmp", "/dev/shm"};
    for (size_t i = 0; i < sizeof tmps / sizeof *tmps; i++)
        if (mount_tmp(tmps[i], j->tmp_mb, why, cap) < 0)
            return -1;
    for (int i = 0; i < j->nhide; i++)
        if (hide(j->hide[i], why, cap) < 0)
            return -1;
    for (int i = 0; i < j->nrw; i++) {
        if (cm_mkdir_parents(j->rw[i], 0755, true) < 0)
            return failf(why, cap, "mkdir", j->rw[i]);
        if (syscall(SYS_move_mount, rw_fd[i], "", AT_FDCWD, j->rw[i], MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return failf(why, cap, "move_mount", j->rw[i]);
        close(rw_fd[i]);
    }
    return 0;
}

/* Securebits first (no root semantics after exec, no ambient raise, all
 * locked), the bounding set emptied while CAP_SETPCAP is still held; the
 * uid change then clears the permitted and effective sets. */
static int drop(const cm_provider_jail *j, char *why, size_t cap)
{
    const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
                               SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                               SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
        return failf(why, cap, "prctl PR_SET_SECUREBITS", NULL);
    for (int c = 0; c <= 63; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            return failf(why, cap, "prctl PR_CAPBSET_DROP", NULL);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return failf(why, cap, "prctl PR_CAP_AMBIENT_CLEAR_ALL", NULL);
    if (j->ids) {
        if (setgroups(0, NULL) < 0 || setresgid(j->gid, j->gid, j->gid) < 0)
            return failf(why, cap, "setresgid", NULL);
        if (setresuid(j->uid, j->uid, j->uid) < 0)
            return failf(why, cap, "setresuid", NULL);
    }
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return failf(why, cap, "capset", NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return failf(why, cap, "prctl PR_SET_NO_NEW_PRIVS", NULL);
    return 0;
}

/* True when this process may make a mount namespace of its own (CAP_SYS_ADMIN
 * in its user namespace). */
static bool have_sys_admin(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return false;
    return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

/* A root engine without CAP_SYS_ADMIN (a container given only what the
 * sandboxes need, deploy/README.md): the provider's uid first (CAP_SETUID
 * and CAP_SETGID suffice), then, as that uid, a user namespace mapping it,
 * in which the mount view can be made.  The ids are then in place, so
 * drop() does not change them again (setgroups is denied in there). */
static int switch_ids_then_userns(cm_provider_jail *j, char *why, size_t cap)
{
    if (setgroups(0, NULL) < 0 || setresgid(j->gid, j->gid, j->gid) < 0)
        return failf(why, cap, "setresgid", NULL);
    if (setresuid(j->uid, j->uid, j->uid) < 0)
        return failf(why, cap, "setresuid", NULL);
    j->ids = false;
    /* the uid change made this process non-dumpable, which gives its /proc
     * files to root: the maps below could not be written */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        return failf(why, cap, "prctl PR_SET_DUMPABLE", NULL);
    return enter_userns(why, cap);
}

int cm_provider_jail_enter(const cm_provider_jail *jail, char *why, size_t cap)
{
    if (!jail->on)
        return 0;
    cm_provider_jail j = *jail;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "/");
    if (j.userns && enter_userns(why, cap) < 0)
        return -1;
    if (!j.userns && j.ids && !have_sys_admin() && switch_ids_then_userns(&j, why, cap) < 0)
        return -1;
    if (mount_view(&j, why, cap) < 0)
        return -1;
    /* the working directory again through the new view: the old reference
     * would still reach what the view covers */
    if (chdir(cwd) < 0 && chdir("/") < 0)
        return failf(why, cap, "chdir", cwd);
    return drop(&j, why, cap);
}

void cm_provider_uid_kill(uid_t uid)
{
    if (uid == 0 || uid == geteuid())
        return;
    pid_t pid = fork();
    if (pid == 0) {
        /* as uid, kill(-1) reaches exactly that uid's processes; repeated
         * while it finds any (one may fork while the signal goes round) */
        if (syscall(SYS_setresuid, uid, uid, uid) < 0)
            _exit(1);
        for (int i = 0; i < 100 && kill(-1, SIGKILL) == 0; i++)
            ;
        _exit(0);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

bool cm_userns_works(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        char why[256];
        _exit(enter_userns(why, sizeof why) == 0 && unshare(CLONE_NEWNS) == 0 ? 0 : 1);
    }
    int st = 0;
    if (pid < 0)
        return false;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
