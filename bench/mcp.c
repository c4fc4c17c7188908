/* bench/mcp.c — MCP stdio tool-call overhead of the `mcp` provider, without
 * sandboxes: 10 sequential and 10 concurrent `echo` calls to one stdio
 * server (the reference `everything` server) through
 *   raw   — newline-delimited JSON-RPC written/read by hand on the server's
 *           pipes (the server's own time: the floor),
 *   async — cm_provider_call_async, the path chains take (the session's
 *           reader thread answers; requests pipelined by id),
 *   sync  — cm_provider_call on one thread per call (the blocking path).
 * Prints medians over ROUNDS rounds.
 * Usage: build/bench/mcp NODE SERVER_JS [ROUNDS] */
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pctx.h"
#include "provider.h"
#include "util.h"

#define CALLS 10

extern char **environ;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *xs, int n)
{
    qsort(xs, (size_t)n, sizeof *xs, cmp_double);
    return xs[n / 2];
}

/* ---- raw pipes ----------------------------------------------------------- */

typedef struct raw {
    pid_t pid;
    FILE *in, *out;
} raw;

static void raw_send(raw *r, int id, const char *method, const char *params)
{
    fprintf(r->in, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}\n", id, method,
            params);
}

static void raw_wait(raw *r, int id)
{
    char needle[32], *line = NULL;
    size_t cap = 0;
    snprintf(needle, sizeof needle, "\"id\":%d}", id);
    while (getline(&line, &cap, r->out) > 0)
        if (strstr(line, needle))
            break;
    free(line);
}

static int raw_start(raw *r, char *node, char *script)
{
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    char *argv[] = {node, script, "stdio", NULL};
    int rc = posix_spawn(&r->pid, node, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(to[0]);
    close(from[1]);
    if (rc != 0)
        return -1;
    r->in = fdopen(to[1], "w");
    r->out = fdopen(from[0], "r");
    setvbuf(r->in, NULL, _IOFBF, 1 << 16);
    raw_send(r, 1, "initialize",
             "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
             "\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}");
    fflush(r->in);
    raw_wait(r, 1);
    fputs("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n", r->in);
    fflush(r->in);
    return 0;
}

static double raw_round(raw *r, int *id, int concurrent)
{
    int64_t t0 = cm_now_us();
    int first = *id + 1;
    for (int i = 0; i < CALLS; i++) {
        raw_send(r, ++*id, "tools/call", "{\"name\":\"echo\",\"arguments\":{\"message\":\"x\"}}");
        if (!concurrent) {
            fflush(r->in);
            raw_wait(r, *id);
        }
    }
    if (concurrent) {
        fflush(r->in);
        for (int i = first; i <= *id; i++)
            raw_wait(r, i);
    }
    return (double)(cm_now_us() - t0) / 1000.0;
}

/* ---- through the provider ------------------------------------------------ */

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int left, failed;
} waiter;

static void on_done(void *arg, cJSON *result, const cm_error *err)
{
    waiter *w = arg;
    if (err)
        fprintf(stderr, "mcp bench: %s\n", err->message);
    cJSON_Delete(result);
    pthread_mutex_lock(&w->lock);
    w->failed += err != NULL;
    w->left--;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void wait_all(waiter *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->left > 0)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

typedef struct job {
    const cJSON *tmpl, *args;
    const cm_call_ctx *ctx;
} job;

static void *sync_call_main(void *arg)
{
    job *j = arg;
    cJSON *out = NULL;
    cm_error err;
    if (cm_provider_call(j->tmpl, j->args, j->ctx, &out, &err) < 0)
        fprintf(stderr, "mcp bench: %s\n", err.message);
    cJSON_Delete(out);
    return NULL;
}

static double provider_round(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx,
                             int async, int concurrent, int *failed)
{
    int64_t t0 = cm_now_us();
    if (async) {
        waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, concurrent ? CALLS : 0, 0};
        for (int i = 0; i < CALLS; i++) {
            if (!concurrent) {
                w.left = 1;
                cm_provider_call_async(tmpl, args, ctx, on_done, &w);
                wait_all(&w);
            } else {
                cm_provider_call_async(tmpl, args, ctx, on_done, &w);
            }
        }
        wait_all(&w);
        *failed += w.failed;
    } else {
        job j = {tmpl, args, ctx};
        pthread_t t[CALLS];
        for (int i = 0; i < CALLS; i++) {
            pthread_create(&t[i], NULL, sync_call_main, &j);
            if (!concurrent)
                pthread_join(t[i], NULL);
        }
        for (int i = 0; concurrent && i < CALLS; i++)
            pthread_join(t[i], NULL);
    }
    return (double)(cm_now_us() - t0) / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s NODE SERVER_JS [ROUNDS]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 200;
    if (rounds < 1)
        rounds = 1;
    cm_error err;
    cm_providers *p = NULL;
    if (cm_providers_new(&p, &err) < 0) {
        fprintf(stderr, "mcp bench: %s\n", err.message);
        return 1;
    }
    cJSON *tmpl = cJSON_CreateObject();
    cJSON_AddStringToObject(tmpl, "call_template_type", "mcp");
    cJSON_AddStringToObject(tmpl, "manual", "ev");
    cJSON_AddStringToObject(tmpl, "mcp_server", "srv");
    cJSON_AddStringToObject(tmpl, "mcp_tool", "echo");
    cJSON *srv = cJSON_AddObjectToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(tmpl, "config"), "mcpServers"), "srv");
    cJSON_AddStringToObject(srv, "command", argv[1]);
    cJSON *a = cJSON_AddArrayToObject(srv, "args");
    cJSON_AddItemToArray(a, cJSON_CreateString(argv[2]));
    cJSON_AddItemToArray(a, cJSON_CreateString("stdio"));
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "message", "x");
    atomic_bool cancel = false;
    cm_call_ctx ctx = {.manual_name = "ev", .base_dir = ".", .cancel = &cancel, .providers = p};
    int failed = 0;
    provider_round(tmpl, args, &ctx, 0, 0, &failed); /* starts the session */

    raw r;
    if (raw_start(&r, argv[1], argv[2]) < 0) {
        fprintf(stderr, "mcp bench: cannot start %s\n", argv[1]);
        return 1;
    }
    int id = 1;
    double *xs[6];
    for (int k = 0; k < 6; k++)
        xs[k] = cm_xcalloc((size_t)rounds, sizeof(double));
    for (int i = 0; i < rounds; i++) {
        for (int c = 0; c < 2; c++) {
            xs[0 + c][i] = raw_round(&r, &id, c);
            xs[2 + c][i] = provider_round(tmpl, args, &ctx, 1, c, &failed);
            xs[4 + c][i] = provider_round(tmpl, args, &ctx, 0, c, &failed);
        }
    }
    static const char *const names[] = {"raw pipes (server's own time)", "async provider path",
                                        "sync path, thread per call"};
    printf("MCP stdio echo, %d calls, median of %d rounds (ms): sequential / concurrent\n", CALLS,
           rounds);
    for (int k = 0; k < 3; k++)
        printf("  %-32s %7.2f / %7.2f\n", names[k], median(xs[2 * k], rounds),
               median(xs[2 * k + 1], rounds));
    double over = (median(xs[2], rounds) - median(xs[0], rounds)) / CALLS;
    printf("  async overhead per sequential call over raw: %.3f ms\n", over);
    fclose(r.in);
    fclose(r.out);
    waitpid(r.pid, NULL, 0);
    for (int k = 0; k < 6; k++)
        free(xs[k]);
    cJSON_Delete(tmpl);
    cJSON_Delete(args);
    cm_providers_free(p);
    return failed ? 1 : 0;
}
