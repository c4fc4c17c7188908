/* pspawn.c — the one place provider processes (CLI scripts, MCP stdio
 * servers) are started and signalled (pctx.h cm_providers_spawn,
 * cm_providers_signal).  Why one place: each was written out twice before
 * (cli.c, mcp_session_stdio.c) with kill(-pid) calls in four files, and
 * it is where privilege separation puts its seam: an unprivileged engine
 * can neither switch a provider to its uid nor signal it afterwards, so
 * both become requests to the privileged part here and nowhere else
 * (isolate/README.md, "Privilege separation"): the hooks in pctx.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>

#include "pctx.h"

int cm_providers_spawn(const cm_providers *p, const cm_provider_spawn *req, pid_t *pid)
{
    if (p && p->spawn_hook && req->ids && req->ids->set)
        return p->spawn_hook(p->hook_ctx, req, pid);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (req->in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, req->in_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, req->out_fd, 1);
    if (req->err_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, req->err_fd, 2);
    if (req->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, req->cwd);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    const char *path;
    char **full = cm_providers_exec_argv(p, req->prog, req->argv, req->ids, req->rw, &path);
    /* direct: a command without '/' is looked up in PATH; through the
     * prefix, path is the exec step (absolute) and it looks the command up */
    int rc = posix_spawnp(pid, path, &fa, &attr, full, req->envp);
    free(full);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

void cm_providers_signal(const cm_providers *p, pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    if (p && p->signal_hook)
        p->signal_hook(p->hook_ctx, pid, sig);
    else
        kill(-pid, sig);
}
