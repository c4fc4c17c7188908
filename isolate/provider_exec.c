/* provider_exec.c — provider processes (CLI commands, MCP stdio servers)
 * are the engine's children on the host, and must not outlive it: after a
 * `kill -9` of the engine under load, CLI scripts, their `sleep`s and hung
 * MCP servers used to survive, even the next engine's stop.  Every provider
 * spawn therefore runs through this small step first: the engine's own
 * binary, started as `codemode __provider-exec`, moves itself into the
 * engine's provider cgroup (before the real command can fork, so nothing
 * it starts escapes) and execs the command.  The cgroup sits below the
 * engine's instance directory, which the engine removes at stop, killing
 * everything in it, and which a later engine reaps at start-up when this
 * one died. */
#include "provider_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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

int cm_provider_exec_main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "codemode %s: usage: PROCS PROGRAM ARGV0 [ARGS...] (internal)\n",
                CM_PROVIDER_EXEC_CMD);
        return 126;
    }
    char list[8192];
    snprintf(list, sizeof list, "%s", argv[1]);
    char *save = NULL;
    for (char *f = strtok_r(list, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
        if (join(f) < 0) {
            fprintf(stderr, "codemode: provider process cannot join its cgroup %s: %s\n", f,
                    strerror(errno));
            return 126;
        }
    }
    execvp(argv[2], &argv[3]);
    fprintf(stderr, "codemode: cannot run %s: %s\n", argv[2], strerror(errno));
    return 127;
}

int cm_provider_exec_prepare(cm_cgroup_root *root, cm_cgroup *cg, char ***prefix, cm_error *err)
{
    *prefix = NULL;
    if (cm_cgroup_create_providers(root, cg, err) < 0)
        return -1;
    char procs[8192];
    if (cm_cgroup_procs_list(cg, procs, sizeof procs) < 0)
        return cm_error_set(err, CM_ERR_INTERNAL, "provider cgroup paths too long");
    if (!procs[0])
        return 0; /* no cgroup here: providers are spawned directly */
    char **p = cm_xcalloc(4, sizeof *p);
    p[0] = cm_xstrdup("/proc/self/exe");
    p[1] = cm_xstrdup(CM_PROVIDER_EXEC_CMD);
    p[2] = cm_xstrdup(procs);
    *prefix = p;
    return 0;
}

void cm_provider_exec_free(char **prefix)
{
    for (char **p = prefix; p && *p; p++)
        free(*p);
    free(prefix);
}
