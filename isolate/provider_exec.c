/* provider_exec.c — provider processes (CLI commands, MCP stdio servers)
 * are the engine's children on the host, and must neither outlive it nor
 * hold its privileges: after a `kill -9` of the engine under load, CLI
 * scripts, their `sleep`s and hung MCP servers used to survive, and all of
 * them ran as root.  Every provider spawn therefore runs through this small
 * step first: the engine's own binary, started as `codemode
 * __provider-exec`, moves itself into the engine's provider cgroup (before
 * the real command can fork, so nothing it starts escapes), enters the
 * provider jail (provider_jail.c: own mount view, unprivileged uid, no
 * capabilities) and execs the command.  The cgroup belongs to the engine's
 * instance, which the engine removes at stop, killing everything in it, and
 * which a later engine reaps at start-up when this one died. */
#include "provider_exec.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static int join(const char *procs_file)
{
    int fd = open(procs_file, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
    ssize_t w = write(fd, pid, (size_t)n);
    int e = errno;
    close(fd);
    errno = e;
    return w == n ? 0 : -1;
}

static int join_all(const char *list_arg)
{
    char list[8192];
    snprintf(list, sizeof list, "%s", list_arg);
    char *save = NULL;
    for (char *f = strtok_r(list, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
        if (join(f) < 0) {
            fprintf(stderr, "codemode: provider process cannot join its cgroup %s: %s\n", f,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int parse_ids(const char *s, cm_provider_jail *j)
{
    unsigned u, g;
    char tail;
    if (sscanf(s, "%u:%u%c", &u, &g, &tail) != 2 || u == 0 || g == 0)
        return -1;
    j->ids = true;
    j->uid = (uid_t)u;
    j->gid = (gid_t)g;
    return 0;
}

#define OWN_MAX_FILES 64

/* The entries of the call directory dfd, each opened (nothing followed) and
 * checked: a regular file of the directory's owner with one link (a hard
 * link the engine planted to a file not its own is never given away).
 * Their count, or -1. */
static int open_entries(int dfd, uid_t owner, int *fds, const char *dir)
{
    int lfd = dup(dfd), n = 0;
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat es;
        int fd =
            n < OWN_MAX_FILES
                ? openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
                : -1;
        if (fd < 0 || fstat(fd, &es) < 0 || !S_ISREG(es.st_mode) || es.st_nlink != 1 ||
            es.st_uid != owner) {
            fprintf(stderr, "codemode: provider call directory %s: %s is not a file of its own\n",
                    dir, e->d_name);
            if (fd >= 0)
                close(fd);
            n = -1 - n; /* close what was opened */
            break;
        }
        fds[n++] = fd;
    }
    closedir(d);
    if (n < 0)
        for (int i = 0; i < -1 - n; i++)
            close(fds[i]);
    return n < 0 ? -1 : n;
}

/* --own DIR, still as root: the call directory the unprivileged engine
 * made (its uid and group) becomes the provider uid's, keeping the
 * engine's group with read and search (02750: what the uid creates in it
 * keeps that group, so the engine can stat and read the step files), and
 * so does every file in it (open_entries).  Opened and read with the
 * engine's fs ids (the owner of the work dir above it: a container's root
 * has no CAP_DAC_OVERRIDE for the engine's 0700 directory), changed
 * through the fds as root again (CAP_CHOWN). */
static int own_dir(const char *dir, const cm_provider_jail *j)
{
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    struct stat ps, st;
    if (!j->ids || !slash || slash == parent || (*slash = '\0', stat(parent, &ps)) < 0) {
        fprintf(stderr, "codemode: provider call directory %s: no --ids or no parent\n", dir);
        return -1;
    }
    setfsgid(ps.st_gid);
    setfsuid(ps.st_uid);
    int fds[OWN_MAX_FILES], n = 0, rc = -1, e = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0 || fstat(dfd, &st) < 0)
        e = errno;
    else if (st.st_uid != ps.st_uid)
        e = EPERM; /* not the engine's */
    else if ((n = open_entries(dfd, st.st_uid, fds, dir)) < 0)
        n = 0; /* it said why */
    /* the mode as its owner (root without CAP_FOWNER may not), before the
     * chown: chown keeps a directory's setgid bit */
    else if (fchmod(dfd, 02750) < 0)
        e = errno;
    else
        rc = 0;
    setfsuid(0);
    setfsgid(0);
    for (int i = 0; i < n; i++) {
        if (rc == 0 && fchown(fds[i], j->uid, st.st_gid) < 0)
            rc = -1, e = errno;
        close(fds[i]);
    }
    if (rc == 0 && fchown(dfd, j->uid, st.st_gid) < 0)
        rc = -1, e = errno;
    if (e)
        fprintf(stderr, "codemode: provider call directory %s: %s\n", dir, strerror(e));
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* One option at argv[*i] (its value, if any, at argv[*i + 1]). */
static int parse_option(int argc, char **argv, int *i, cm_provider_jail *j, const char **procs,
                        const char **own)
{
    const char *o = argv[*i];
    if (!strcmp(o, "--jail"))
        return j->on = true, 0;
    if (!strcmp(o, "--userns"))
        return j->userns = true, 0;
    if (*i + 1 >= argc)
        return -1;
    const char *v = argv[++*i];
    if (!strcmp(o, "--procs"))
        return *procs = v, 0;
    if (!strcmp(o, "--tmp-mb"))
        return j->tmp_mb = (unsigned)strtoul(v, NULL, 10), 0;
    if (!strcmp(o, "--ids"))
        return parse_ids(v, j);
    if (!strcmp(o, "--hide") && j->nhide < CM_JAIL_MAX_HIDE && v[0] == '/')
        return j->hide[j->nhide++] = v, 0;
    if (!strcmp(o, "--rw") && j->nrw < CM_JAIL_MAX_RW && v[0] == '/')
        return j->rw[j->nrw++] = v, 0;
    if (!strcmp(o, "--own") && !*own && v[0] == '/')
        return *own = v, 0;
    return -1;
}

int cm_provider_exec_main(int argc, char **argv)
{
    cm_provider_jail j = {0};
    const char *procs = NULL, *own = NULL;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (parse_option(argc, argv, &i, &j, &procs, &own) < 0) {
            fprintf(stderr, "codemode %s: bad option '%s' (internal)\n", CM_PROVIDER_EXEC_CMD,
                    argv[i]);
            return 126;
        }
    }
    if (i + 2 >= argc) {
        fprintf(stderr, "codemode %s: usage: [OPTIONS] -- PROGRAM ARGV0 [ARGS...] (internal)\n",
                CM_PROVIDER_EXEC_CMD);
        return 126;
    }
    if ((procs && join_all(procs) < 0) || (own && own_dir(own, &j) < 0))
        return 126;
    char why[512];
    if (cm_provider_jail_enter(&j, why, sizeof why) < 0) {
        fprintf(stderr, "codemode: provider sandbox: %s\n", why);
        return 126;
    }
    execvp(argv[i + 1], &argv[i + 2]);
    fprintf(stderr, "codemode: cannot run %s: %s\n", argv[i + 1], strerror(errno));
    return 127;
}

static void push(char ***v, size_t *n, const char *s)
{
    *v = realloc(*v, (*n + 2) * sizeof **v);
    if (!*v)
        abort();
    (*v)[(*n)++] = cm_xstrdup(s);
    (*v)[*n] = NULL;
}

int cm_provider_exec_prepare(cm_cgroup_root *root, cm_cgroup *cg, const cm_provider_exec_cfg *cfg,
                             char ***prefix, cm_error *err)
{
    *prefix = NULL;
    if (cm_cgroup_create_providers(root, cg, err) < 0)
        return -1;
    char procs[8192];
    if (cm_cgroup_procs_list(cg, procs, sizeof procs) < 0)
        return cm_error_set(err, CM_ERR_INTERNAL, "provider cgroup paths too long");
    if (!procs[0] && !cfg->jail)
        return 0; /* nothing to do: providers are spawned directly */
    char **p = NULL;
    size_t n = 0;
    push(&p, &n, "/proc/self/exe");
    push(&p, &n, CM_PROVIDER_EXEC_CMD);
    if (procs[0]) {
        push(&p, &n, "--procs");
        push(&p, &n, procs);
    }
    if (cfg->jail) {
        char mb[32];
        snprintf(mb, sizeof mb, "%u", cfg->tmp_mb);
        push(&p, &n, "--jail");
        push(&p, &n, "--tmp-mb");
        push(&p, &n, mb);
        if (cfg->userns)
            push(&p, &n, "--userns");
        for (int k = 0; cfg->hide && cfg->hide[k] && k < CM_JAIL_MAX_HIDE; k++) {
            push(&p, &n, "--hide");
            push(&p, &n, cfg->hide[k]);
        }
    }
    *prefix = p;
    return 0;
}

void cm_provider_exec_free(char **prefix)
{
    for (char **p = prefix; p && *p; p++)
        free(*p);
    free(prefix);
}

int cm_provider_exec_check(char *const *prefix, const char *ids, char *why, size_t cap)
{
    size_t n = 0;
    while (prefix && prefix[n])
        n++;
    if (!n)
        return 0;
    char **argv = cm_xcalloc(n + 6, sizeof *argv);
    memcpy(argv, prefix, n * sizeof *argv);
    if (ids) {
        argv[n++] = "--ids";
        argv[n++] = (char *)ids;
    }
    argv[n++] = "--";
    argv[n++] = "/bin/true";
    argv[n++] = "/bin/true";
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        free(argv);
        snprintf(why, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        snprintf(why, cap, "cannot start the exec step: %s", strerror(rc));
        return -1;
    }
    char buf[512];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 &&
           ((r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0 || (r < 0 && errno == EINTR)))
        got += r > 0 ? (size_t)r : 0;
    close(pfd[0]);
    buf[got] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    snprintf(why, cap, "%s", got ? buf : "the exec step failed");
    return -1;
}
