/* rootfs_cmd.c — the `codemode rootfs` command.  `build` runs the Python
 * builder (it needs CPython anyway to compile the stdlib to .pyc) and then
 * verifies the result; `verify` is the C check the engine also runs at start.
 *
 * The builder is found at $CODEMODE_ROOTFS_BUILDER, else next to the binary in
 * share/codemode/build_rootfs.py or ../share/codemode/build_rootfs.py (the
 * Makefile copies it and runner.py to build/share/codemode/). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rootfs.h"
#include "util.h"

#define HOST_PYTHON "/usr/bin/python3.11"

static void rootfs_usage(FILE *f)
{
    fprintf(f, "usage: codemode rootfs build [--out DIR] [--profile minimal|full]\n"
               "       codemode rootfs verify DIR\n\n"
               "build   builds the sandbox rootfs from the host's python3.11 (default profile\n"
               "        minimal; default DIR <binary dir>/rootfs, or rootfs-full for full),\n"
               "        prints its id (SHA-256 of its MANIFEST) on stdout, then verifies it\n"
               "verify  checks DIR against DIR/MANIFEST: no extra, missing or changed file,\n"
               "        no setuid/setgid bit, device node or world-writable path\n");
}

static char *find_builder(void)
{
    const char *env = getenv("CODEMODE_ROOTFS_BUILDER");
    if (env && *env)
        return cm_xstrdup(env);
    cm_autofree char *dir = cm_exe_dir();
    static const char *const rel[] = {"share/codemode/build_rootfs.py",
                                      "../share/codemode/build_rootfs.py"};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, rel[i]);
        if (access(path, R_OK) == 0)
            return cm_xstrdup(path);
    }
    return NULL;
}

static int verify_and_print(const char *dir)
{
    cm_rootfs_report rep;
    cm_error err;
    if (cm_rootfs_verify(dir, &rep, &err) < 0) {
        fprintf(stderr, "codemode: rootfs verify failed: %s\n", err.message);
        return 1;
    }
    printf("rootfs %s: ok, id %s, %zu files, %zu directories, %" PRIu64 " bytes hashed in "
           "%.1f ms\n",
           dir, rep.id, rep.files, rep.dirs, rep.bytes, rep.elapsed_us / 1000.0);
    return 0;
}

static int run_builder(const char *builder, const char *out, const char *profile)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("codemode: fork");
        return -1;
    }
    if (pid == 0) {
        /* the engine blocks SIGTERM/SIGINT for its signalfd; the builder's
         * worker pool must be stoppable (Pool.terminate sends SIGTERM) */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(HOST_PYTHON, HOST_PYTHON, "-I", "-B", builder, "--out", out, "--profile", profile,
              (char *)NULL);
        fprintf(stderr, "codemode: cannot run %s: %m\n", HOST_PYTHON);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) { /* ECHILD: not ours to wait for any more */
            fprintf(stderr, "codemode: rootfs build: waiting for %s: %s\n", builder,
                    strerror(errno));
            return -1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "codemode: rootfs build failed (%s exited with status %d)\n", builder,
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return -1;
    }
    return 0;
}

int cm_rootfs_build_user(const char *dir, cm_error *err)
{
    cm_autofree char *builder = find_builder();
    if (!builder)
        return cm_error_set(err, CM_ERR_CONFIG,
                            "rootfs %s missing and build_rootfs.py not found next to the binary "
                            "(share/codemode/) to build it: set engine.rootfs",
                            dir);
    if (cm_mkdir_parents(dir, 0700, false) < 0)
        return cm_error_sys(err, CM_ERR_IO, "rootfs %s: cannot make its parent directories", dir);
    /* the builder prints its summary on stdout, which `codemode mcp`
     * reserves for MCP: send it to stderr */
    fflush(stdout);
    int saved = dup(1);
    if (saved < 0 || dup2(2, 1) < 0)
        return cm_error_sys(err, CM_ERR_IO, "rootfs build: stdout");
    int rc = run_builder(builder, dir, "minimal");
    dup2(saved, 1);
    close(saved);
    if (rc < 0)
        return cm_error_set(err, CM_ERR_CONFIG, "rootfs build into %s failed (see above)", dir);
    cm_rootfs_report rep;
    return cm_rootfs_verify(dir, &rep, err);
}

static int cmd_build(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"profile", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL, *profile = "minimal";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:p:h", opts, NULL)) != -1) {
        if (c == 'o') {
            out = optarg;
        } else if (c == 'p') {
            profile = optarg;
        } else if (c == 'h') {
            rootfs_usage(stdout);
            return 0;
        } else {
            rootfs_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (strcmp(profile, "minimal") && strcmp(profile, "full"))) {
        fprintf(stderr, "codemode: rootfs build: --profile must be minimal or full\n");
        return 2;
    }
    cm_autofree char *builder = find_builder();
    if (!builder) {
        fprintf(stderr, "codemode: rootfs build: build_rootfs.py not found next to the binary "
                        "(share/codemode/); set CODEMODE_ROOTFS_BUILDER\n");
        return 1;
    }
    cm_autofree char *dir = cm_exe_dir();
    char def[PATH_MAX];
    snprintf(def, sizeof def, "%s/%s", dir, strcmp(profile, "full") ? "rootfs" : "rootfs-full");
    if (!out)
        out = def;
    fflush(stdout);
    if (run_builder(builder, out, profile) < 0)
        return 1;
    cm_rootfs_report rep;
    cm_error err;
    if (cm_rootfs_verify(out, &rep, &err) < 0) {
        fprintf(stderr, "codemode: the new rootfs fails verification: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "codemode: rootfs %s (profile %s) verified: %zu files\n", out, profile,
            rep.files);
    return 0;
}

int cm_cmd_rootfs(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        rootfs_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "build"))
        return cmd_build(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify")) {
        if (argc != 3 || argv[2][0] == '-') {
            rootfs_usage(stderr);
            return 2;
        }
        return verify_and_print(argv[2]);
    }
    fprintf(stderr, "codemode: rootfs: unknown subcommand '%s'\n", argv[1]);
    rootfs_usage(stderr);
    return 2;
}
