/* main.c — the `codemode` command: subcommand dispatch and `serve`, which
 * assembles the engine context (config, variables, registry, worker pool,
 * socket) and runs the event loop until SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <libgen.h>
#include <malloc.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chain_tools.h"
#include "client.h"
#include "cmd_doctor.h"
#include "engine.h"
#include "http_transport.h"
#include "jobs.h"
#include "rootfs.h"
#include "rpc.h"
#include "workdir.h"
#include "privdrop.h"
#include "provider_exec.h"
#include "sandboxd.h"
#include "pctx.h"
#include "server.h"
#include "tools.h"
#include "session.h"
#include "policy_cli.h"
#include "pool.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: codemode COMMAND [OPTIONS]\n\n"
        "Commands:\n"
        "  serve [--socket P] [--config F] [--http ADDR]  run the engine (--http: MCP over HTTP)\n"
        "  run [--socket PATH] [--timeout S] [--follow] FILE|-  run one tool chain\n"
        "  mcp [--socket PATH | --config FILE]    stdio MCP server (bridge or embedded)\n"
        "  tools interfaces|interface|search ...  Python interfaces, tool search\n"
        "  prompt                                 print the agent prompt template\n"
        "  policy check|explain|test|bench ...    validate, explain and test policies\n"
        "  rootfs build|verify ...                build or check the sandbox rootfs\n"
        "  doctor [--config FILE]                 report each isolation layer\n"
        "  stats [--socket PATH] [--prometheus]   print the engine's counters or metrics\n"
        "  health [--socket PATH] [--quiet]       exit 0 when the engine is ready\n"
        "  version                                print the version\n\n"
        "Run `codemode COMMAND --help` for a command's options; `man codemode` for all.\n");
}

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: codemode serve [--socket PATH] [--config FILE] [--http HOST:PORT]\n"
               "Serves newline-delimited JSON-RPC 2.0 (MCP methods) on a Unix socket;\n"
               "--http (or engine.http.listen) also serves them as MCP streamable HTTP\n"
               "at http://HOST:PORT/mcp (loopback only unless engine.http.allow_remote).\n"
               "Default socket: $CODEMODE_SOCKET, /run/codemode/codemode.sock as root.\n");
}

static int check_one_rootfs(char **rootfs, cm_error *err);

/* Both rootfs trees: the default (minimal) and the one for widened imports. */
static int check_rootfs(cm_config *cfg, cm_error *err)
{
    if (cfg->rootfs_build_on_use && access(cfg->rootfs, F_OK) != 0) {
        cm_log("info", "rootless: building the sandbox rootfs into %s (first use)", cfg->rootfs);
        if (cm_rootfs_build_user(cfg->rootfs, err) < 0)
            return -1;
    }
    if (check_one_rootfs(&cfg->rootfs, err) < 0)
        return -1;
    if (!cfg->rootfs_full) {
        size_t n = strlen(cfg->rootfs) + sizeof "-full";
        cfg->rootfs_full = cm_xmalloc(n);
        snprintf(cfg->rootfs_full, n, "%s-full", cfg->rootfs);
        if (access(cfg->rootfs_full, F_OK) != 0) {
            free(cfg->rootfs_full);
            cfg->rootfs_full = cm_xstrdup(cfg->rootfs);
        }
    }
    return check_one_rootfs(&cfg->rootfs_full, err);
}

static int check_one_rootfs(char **rootfs, cm_error *err)
{
    cm_config one = {.rootfs = *rootfs};
    cm_config *cfg = &one;
    char *real = realpath(cfg->rootfs, NULL);
    if (!real)
        return cm_error_sys(err, CM_ERR_CONFIG,
                            "rootfs %s (build it with `make rootfs` or set engine.rootfs)",
                            cfg->rootfs);
    free(cfg->rootfs);
    cfg->rootfs = real;
    *rootfs = real; /* the caller owns it from here, error or not (no double free) */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/usr/bin/python3.11", cfg->rootfs);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "rootfs at %s has no usr/bin/python3.11 (build it with `make rootfs` "
                            "or set engine.rootfs)",
                            cfg->rootfs);
    *rootfs = cfg->rootfs;
    return 0;
}

/* The engine refuses a rootfs that differs from its MANIFEST (rootfs_verify.c). */
static int verify_rootfs_at_start(const cm_config *cfg, cm_error *err)
{
    const char *trees[] = {cfg->rootfs, cfg->rootfs_full};
    for (size_t i = 0; i < 2; i++) {
        if (i == 1 && !strcmp(trees[0], trees[1]))
            break;
        cm_rootfs_report rep;
        if (cm_rootfs_verify(trees[i], &rep, err) < 0)
            return cm_error_prefix(err, "refusing to start: rootfs fails verification");
        cm_log("info", "rootfs %s verified: id %s, %zu files, %.1f ms", trees[i], rep.id, rep.files,
               rep.elapsed_us / 1000.0);
    }
    return 0;
}

/* Privileged engines drop supplementary groups: sandboxes inherit them
 * otherwise (setgroups is denied inside). */
static int drop_supplementary_groups(uid_t cfg_uid_hint, cm_error *err)
{
    if (geteuid() != 0) {
        cm_log("info",
               "rootless (uid %u): sandboxes map their root to this uid in unprivileged user "
               "namespaces (engine.sandbox_uid %u is not used); `codemode doctor` shows which "
               "layers are active",
               (unsigned)geteuid(), (unsigned)cfg_uid_hint);
        return 0;
    }
    if (setgroups(0, NULL) < 0)
        return cm_error_sys(err, CM_ERR_IO, "setgroups");
    return 0;
}

static bool requests_busy(cm_engine *eng)
{
    return cm_jobs_queued(eng->jobs) + cm_jobs_running(eng->jobs) > 0;
}

/* The process-wide allocator settings, made once before any thread starts
 * (issue 14: memory a big chain or registration used must go back). */
static void tune_malloc(void)
{
    /* Allocations from 256 KiB on are mmap'd and unmapped when freed (fixed:
     * glibc's dynamic threshold would rise to 32 MiB after the first big
     * free and keep tool-call arguments and results in the arenas). */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    /* Few malloc arenas: a registration (a parsed 13 MB description is ~100
     * MB of cJSON, freed again) runs on whichever worker thread is free, and
     * with glibc's default of 8 arenas per core each arena keeps its own
     * fragments (10-15 MB each): 20 register/deregister cycles of GitHub's
     * description left the engine 57 MB larger with the default, 10-17 MB
     * with two arenas, growing no more after the first cycles (issue 14,
     * tests/security/test_registration_bounds.py).  MALLOC_ARENA_MAX in the
     * environment still wins. */
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 2);
}

/* The pool's counters, in the engine's metrics (isolate/pool.h). */
static void pool_refill_metric(void *ctx, double build_ms)
{
    cm_engine *eng = ctx;
    cm_metrics_pool_refill(eng->metrics, build_ms);
}

static void pool_miss_metric(void *ctx)
{
    cm_engine *eng = ctx;
    cm_metrics_pool_miss(eng->metrics);
}

static int engine_open(cm_engine *eng, const char *config, const char *socket_path,
                       const char *http_addr, cm_error *err)
{
    tune_malloc();
    eng->on_line = cm_rpc_handle_line;
    eng->requests_busy = requests_busy;
    eng->tick = cm_engine_tick;
    cm_autofree char *dir = cm_exe_dir();
    if (cm_config_load(config, dir, &eng->cfg, err) < 0 ||
        cm_http_new(eng, http_addr, &eng->http, err) < 0)
        return -1;
    if (check_rootfs(&eng->cfg, err) < 0 ||
        drop_supplementary_groups(eng->cfg.sandbox_uid, err) < 0)
        return -1;
    if (verify_rootfs_at_start(&eng->cfg, err) < 0)
        return -1;
    cm_iso_config iso_cfg;
    cm_config_iso(&eng->cfg, &iso_cfg);
    if (cm_isolation_start(&eng->iso, &iso_cfg, err) < 0)
        return -1;
    if (cm_vars_new(&eng->vars, eng->cfg.variables, eng->cfg.load_variables_from, eng->cfg.base_dir,
                    err) < 0)
        return cm_error_prefix(err, "variables");
    if (cm_policy_store_open(eng->cfg.policy, eng->cfg.base_dir, &eng->policy, err) < 0)
        return -1;
    if (cm_registry_new(&eng->registry, err) < 0)
        return -1;
    if (cm_providers_new(&eng->providers, err) < 0 || cm_workdir_start(eng, socket_path, err) < 0)
        return -1;
    /* the root start ends here: the privileged part is started and the
     * engine drops to its service user before its first thread */
    if (cm_privdrop_start(eng, socket_path, err) < 0)
        return -1;
    if (cm_jobs_start(eng, eng->cfg.workers, eng->cfg.queue_max, &eng->jobs, err) < 0)
        return -1;
    cm_engine_load_manuals(eng);
    eng->chain_tools = cm_chain_tools_new();
    const cm_pool_metrics pool_metrics = {.ctx = eng,
                                          .refill = pool_refill_metric,
                                          .miss = pool_miss_metric,
                                          .prime_data = cm_chain_tools_prime_data};
    if (cm_pool_start(&iso_cfg, &eng->iso, &pool_metrics, &eng->pool, err) < 0)
        return -1;
    cm_engine_self_check(eng);
    /* wait for a warm sandbox, unless none can be built here at all (the
     * self check failed: health says why; waiting would only delay that) */
    if (!eng->sandbox_check && cm_pool_wait_warm(eng->pool, 30000) < 0)
        cm_log("warn", "pool: no warm sandbox after 30 s; chains build on the request path");
    if (cm_metrics_http_start(eng, err) < 0 || (eng->http && cm_http_start(eng->http, err) < 0))
        return -1;
    /* separated: bound before the drop (privdrop.c) */
    return eng->listen_fd >= 0 ? 0 : cm_server_listen(eng, socket_path, err);
}

static void engine_close(cm_engine *eng)
{
    cm_http_free(eng->http); /* its sessions end: their chains stop */
    cm_metrics_http_stop(eng);
    cm_jobs_stop(eng->jobs);
    cm_pool_stop(eng->pool);
    cm_providers_free(eng->providers); /* MCP servers stopped gracefully first */
    cm_workdir_stop(eng);
    cm_isolation_free(&eng->iso);
    cm_server_close(eng);
    cm_registry_free(eng->registry);
    cm_chain_tools_free(eng->chain_tools);
    cm_policy_store_free(eng->policy);
    cm_vars_free(eng->vars);
    cm_config_free(&eng->cfg);
    cm_metrics_free(eng->metrics);
    free(eng->sandbox_check);
    cm_privdrop_stop(eng); /* last: the broker removes what is left */
}

/* Thousands of clients, sandboxes and tool processes each hold fds: take the
 * hard limit as the soft one (sandboxes lower their own). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            cm_log("warn", "cannot raise the open-files limit: %s", strerror(errno));
    }
}

/* Before anything is built (rootfs check, sandboxes, manuals): the socket's
 * directory must exist and be writable, so a bad --socket fails at once
 * with what to do, not after seconds of start-up. */
static int check_socket_dir(const char *path, cm_error *err)
{
    if (getenv("LISTEN_FDS"))
        return 0; /* systemd made the socket */
    if (strlen(path) + 16 >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return cm_error_set(err, CM_ERR_CONFIG, "socket path too long (max %zu bytes): %s",
                            sizeof(((struct sockaddr_un *)0)->sun_path) - 17, path);
    cm_autofree char *copy = cm_xstrdup(path);
    const char *dir = dirname(copy);
    struct stat st;
    if (stat(dir, &st) < 0)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "socket directory %s of %s does not exist (create it, or pass "
                            "--socket PATH in a directory that does)",
                            dir, path);
    if (!S_ISDIR(st.st_mode))
        return cm_error_set(err, CM_ERR_CONFIG, "socket directory %s of %s is not a directory", dir,
                            path);
    if (access(dir, W_OK | X_OK) < 0)
        return cm_error_sys(err, CM_ERR_CONFIG,
                            "cannot create the socket %s in %s (pass --socket PATH in a "
                            "directory you may write)",
                            path, dir);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"http", required_argument, NULL, 'H'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *http_addr = NULL;
    cm_autofree char *socket_path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:c:H:h", opts, NULL)) != -1) {
        if (c == 's') {
            free(socket_path);
            socket_path = cm_xstrdup(optarg);
        } else if (c == 'H') {
            http_addr = optarg;
        } else if (c == 'c') {
            config = optarg;
        } else if (c == 'h') {
            serve_usage(stdout);
            return 0;
        } else {
            serve_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        serve_usage(stderr);
        return 2;
    }
    if (!socket_path)
        socket_path = cm_default_socket_path();
    cm_error dir_err;
    if (check_socket_dir(socket_path, &dir_err) < 0) {
        fprintf(stderr, "codemode serve: %s\n", dir_err.message);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* every engine's start-up reaps the cgroups and temp dirs of engines
     * whose /proc/PID/comm is not "codemode": an engine exec'd as
     * /proc/self/exe (`codemode mcp`'s embedded one) would be "exe", and a
     * concurrently starting engine took its cgroups away */
    prctl(PR_SET_NAME, "codemode", 0, 0, 0);
    raise_fd_limit();
    sigset_t mask;
    cm_server_block_signals(&mask);
    cm_engine eng = {.listen_fd = -1,
                     .epoll_fd = -1,
                     .wake_fd = -1,
                     .signal_fd = -1,
                     .metrics_fd = -1,
                     .privsep = {.fd = -1, .pid = -1},
                     .metrics = cm_metrics_new()};
    cm_error err;
    int rc = 0;
    if (engine_open(&eng, config, socket_path, http_addr, &err) < 0 ||
        cm_server_run(&eng, &err) < 0) {
        cm_log("error", "%s", err.message);
        rc = 1;
    }
    engine_close(&eng);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, CM_PROVIDER_EXEC_CMD) == 0)
        return cm_provider_exec_main(argc - 1, argv + 1);
    if (strcmp(cmd, CM_SANDBOXD_CMD) == 0)
        return cm_sandboxd_main(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cm_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0)
        return cm_cmd_stats(argc - 1, argv + 1);
    if (strcmp(cmd, "health") == 0)
        return cm_cmd_health(argc - 1, argv + 1);
    if (strcmp(cmd, "policy") == 0)
        return cm_cmd_policy(argc - 1, argv + 1);
    if (strcmp(cmd, "rootfs") == 0)
        return cm_cmd_rootfs(argc - 1, argv + 1);
    if (strcmp(cmd, "prompt") == 0)
        return cm_cmd_prompt(argc - 1, argv + 1);
    if (strcmp(cmd, "tools") == 0)
        return cm_cmd_tools(argc - 1, argv + 1);
    if (strcmp(cmd, "mcp") == 0)
        return cm_cmd_mcp(argc - 1, argv + 1);
    if (strcmp(cmd, "doctor") == 0) {
        cm_autofree char *dir = cm_exe_dir();
        return cm_cmd_doctor(argc - 1, argv + 1, dir);
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("codemode %s\n", CM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "codemode: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
