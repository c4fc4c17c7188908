/* mcp.c — `codemode mcp`: a stdio MCP server.  The engine already speaks
 * MCP's JSON-RPC (one message per line) on its socket, so this is a byte
 * bridge: stdin → engine socket, engine socket → stdout.  With --socket it
 * joins a running engine; otherwise it starts an embedded engine (a child
 * `codemode serve` on a private socket, its output on stderr so stdout
 * carries only MCP) from --config, $UTCP_CONFIG_FILE or ./.utcp_config.json,
 * and stops it on exit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "util.h"

#define START_TIMEOUT_MS 20000

typedef struct embedded {
    pid_t pid;
    char dir[64];
    char socket_path[128];
} embedded;

static void mcp_usage(FILE *f)
{
    fprintf(f, "usage: codemode mcp [--socket PATH | --config FILE]\n"
               "Stdio MCP server. --socket bridges to a running engine; otherwise an embedded\n"
               "engine starts from --config, $UTCP_CONFIG_FILE or ./.utcp_config.json.\n");
}

static const char *pick_config(const char *given)
{
    if (given)
        return given;
    const char *env = getenv("UTCP_CONFIG_FILE");
    if (env && *env)
        return env;
    return access(".utcp_config.json", R_OK) == 0 ? ".utcp_config.json" : NULL;
}

static int wait_for_engine(embedded *e, cm_error *err)
{
    int64_t deadline = cm_now_ms() + START_TIMEOUT_MS;
    while (cm_now_ms() < deadline) {
        int status;
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            e->pid = -1;
            return cm_error_set(err, CM_ERR_CONFIG,
                                "embedded engine exited during start-up (status %d); see its "
                                "log above",
                                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
        cm_error ignored;
        int fd = cm_client_connect(e->socket_path, &ignored);
        if (fd >= 0)
            return fd;
        usleep(20000);
    }
    return cm_error_set(err, CM_ERR_TIMEOUT, "embedded engine did not start in %d ms",
                        START_TIMEOUT_MS);
}

static int start_embedded(embedded *e, const char *config, cm_error *err)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/codemode-mcp-XXXXXX");
    if (!mkdtemp(e->dir))
        return cm_error_sys(err, CM_ERR_IO, "mkdtemp");
    snprintf(e->socket_path, sizeof e->socket_path, "%s/engine.sock", e->dir);
    const char *argv[] = {"codemode", "serve", "--socket", e->socket_path, NULL, NULL, NULL};
    if (config) {
        argv[4] = "--config";
        argv[5] = config;
    }
    /* exec'd by its real path, not /proc/self/exe: the process name (comm)
       is then "codemode", which is how other engines tell a live engine's
       cgroups from a dead one's (cm_engine_pid_alive); as "exe"
       the embedded engine's sandbox cgroups were reaped under it */
    cm_autofree char *self = realpath("/proc/self/exe", NULL);
    if (!self)
        return cm_error_sys(err, CM_ERR_IO, "cannot resolve /proc/self/exe");
    e->pid = fork();
    if (e->pid < 0)
        return cm_error_sys(err, CM_ERR_IO, "fork");
    if (e->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(self, (char *const *)argv);
        _exit(127);
    }
    return wait_for_engine(e, err);
}

static void stop_embedded(embedded *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        int64_t deadline = cm_now_ms() + 5000;
        while (waitpid(e->pid, NULL, WNOHANG) == 0) {
            if (cm_now_ms() > deadline) {
                kill(e->pid, SIGKILL);
                waitpid(e->pid, NULL, 0);
                break;
            }
            usleep(10000);
        }
        e->pid = -1;
    }
    if (e->dir[0]) {
        unlink(e->socket_path);
        rmdir(e->dir);
    }
}

/* Copies what is readable on `from` to `to`; 0 on EOF/error. */
static int pump(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    if (n <= 0)
        return 0;
    cm_error err;
    return cm_write_all(to, buf, (size_t)n, &err) == 0;
}

/* Stdin → engine, engine → stdout until the engine closes or a signal.
 * Stdin EOF half-closes the engine socket: answers still pending arrive. */
static int bridge(int sock, int sigfd)
{
    bool stdin_open = true;
    for (;;) {
        struct pollfd p[3] = {{.fd = sock, .events = POLLIN},
                              {.fd = sigfd, .events = POLLIN},
                              {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (p[1].revents)
            return 0;
        if (p[0].revents && !pump(sock, STDOUT_FILENO))
            return stdin_open ? 1 : 0;
        if (p[2].revents && !pump(STDIN_FILENO, sock)) {
            stdin_open = false;
            shutdown(sock, SHUT_WR);
        }
    }
}

int cm_cmd_mcp(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *socket_path = NULL, *config = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:c:h", opts, NULL)) != -1) {
        if (c == 's')
            socket_path = optarg;
        else if (c == 'c')
            config = optarg;
        else if (c == 'h') {
            mcp_usage(stdout);
            return 0;
        } else {
            mcp_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (socket_path && config)) {
        mcp_usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    cm_autofd int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    embedded e = {.pid = -1};
    cm_error err;
    cm_autofd int sock = -1;
    if (socket_path)
        sock = cm_client_connect(socket_path, &err);
    else
        sock = start_embedded(&e, pick_config(config), &err);
    if (sock < 0) {
        fprintf(stderr, "codemode mcp: %s\n", err.message);
        stop_embedded(&e);
        return 2;
    }
    int rc = bridge(sock, sigfd);
    stop_embedded(&e);
    return rc;
}
