/* mcp_session.c — long-lived MCP client sessions: one per (manual, server),
 * over stdio (a child process speaking newline-delimited JSON-RPC, read by
 * one reader thread) or streamable HTTP (POST per message, JSON or SSE
 * answers, Mcp-Session-Id, re-initialize on 404).
 *
 * Why it exists: MCP servers are stateful and slow to start; a session is
 * initialized once, shared by every call (requests are matched to answers
 * by id, so calls overlap), failed calls never hang the engine (deadline
 * and cancel are polled), a crashed server fails its in-flight calls and is
 * restarted with backoff, and closing a manual or the engine leaves no
 * process behind. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http_client.h"
#include "mcp.h"
#include "util.h"

#define LINE_MAX_BYTES ((size_t)32 << 20)
#define MAX_BACKOFF_MS 5000
#define RETRY_EXPIRED 1 /* internal: HTTP session expired (404) */
#define DEFAULT_CALL_TIMEOUT_MS 30000

const char *const cm_mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

extern char **environ;

enum sess_state { S_NEW, S_STARTING, S_READY, S_DEAD };

typedef struct pending {
    int64_t id;
    cJSON *msg; /* the answer; NULL with done = server gone */
    bool done;
    struct pending *next;
    /* asynchronous requests (cm_mcp_request_async): heap-allocated, finished
     * by the session's reader thread, which calls fn outside the lock */
    cm_mcp_answer_fn fn;
    void *arg;
    const char *method; /* a string literal */
    int64_t deadline_ms, hung_at;
    const atomic_bool *cancel;
    bool failed; /* err holds why */
    cm_error err;
} pending;

struct cm_mcp_session {
    char *manual, *server, *base_dir;
    cJSON *cfg;
    bool http;
    cm_providers *p;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum sess_state state;
    int refs;
    bool closing;
    int64_t next_id;
    pending *pending;
    int crashes;
    int64_t restart_at_ms, started_ms;
    char last_exit[160];
    bool hung_killed; /* killed for not answering: keep that as last_exit */
    /* stdio */
    pid_t pid;
    bool pid_alive;
    int in_fd;
    pthread_t reader;
    bool reader_running; /* joinable */
    bool reader_done;
    int wake_fd;          /* eventfd: wakes the reader (cancel, failures) */
    bool reader_idle;     /* the reader sleeps without a timeout: wake it for async */
    int64_t async_linger; /* until then the reader polls every 100 ms anyway */
    /* http */
    char *session_id;
    char proto[16];
    cm_mcp_session *next;
};

typedef struct reader_arg {
    cm_mcp_session *s;
    int out_fd;
    pid_t pid;
} reader_arg;

/* ---- session table --------------------------------------------------- */

static cm_mcp_session *session_new(cm_providers *p, const char *manual, const char *server,
                                   const cJSON *cfg, const char *base_dir)
{
    cm_mcp_session *s = cm_xcalloc(1, sizeof *s);
    s->manual = cm_xstrdup(manual);
    s->server = cm_xstrdup(server);
    s->base_dir = cm_xstrdup(base_dir ? base_dir : ".");
    s->cfg = cJSON_Duplicate(cfg, 1);
    s->http = cm_json_str(cfg, "url") != NULL;
    s->p = p;
    s->in_fd = -1;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

static cm_mcp_session *session_get(cm_providers *p, const char *manual, const char *server,
                                   const cJSON *cfg, const char *base_dir)
{
    pthread_mutex_lock(&p->lock);
    cm_mcp_session *s = p->sessions;
    while (s && (strcmp(s->manual, manual) || strcmp(s->server, server)))
        s = s->next;
    if (!s) {
        s = session_new(p, manual, server, cfg, base_dir);
        s->next = p->sessions;
        p->sessions = s;
    }
    pthread_mutex_lock(&s->lock);
    s->refs++;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&p->lock);
    return s;
}

static void session_put(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    s->refs--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Waits on the session's condition for at most ms (lock held). */
static void wait_ms(cm_mcp_session *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

/* 0 while the caller may keep waiting; else an error (deadline/cancel). */
static int check_wait(const cm_mcp_session *s, const cm_call_ctx *ctx, cm_error *err)
{
    if (ctx->cancel && atomic_load(ctx->cancel))
        return cm_error_set(err, CM_ERR_TIMEOUT, "MCP server '%s': cancelled: the caller gave up",
                            s->server);
    if (ctx->deadline_ms && cm_now_ms() >= ctx->deadline_ms)
        return cm_error_set(err, CM_ERR_TIMEOUT, "MCP server '%s': timed out", s->server);
    return 0;
}

/* ---- stdio transport ----------------------------------------------- */

static int write_deadline(int fd, const char *data, size_t len, int64_t deadline_ms)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -1;
        int64_t left = deadline_ms - cm_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        poll(&pfd, 1, left > 100 ? 100 : (int)left);
    }
    return 0;
}

/* Writes one message line (lock held). */
static int send_line_locked(cm_mcp_session *s, const cJSON *msg, int64_t deadline_ms, cm_error *err)
{
    if (s->in_fd < 0)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' is not running", s->server);
    cm_autofree char *text = cm_json_print(msg);
    size_t n = strlen(text);
    char *line = cm_xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    int rc = write_deadline(s->in_fd, line, n + 1, deadline_ms);
    free(line);
    if (rc < 0)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': cannot write request: %s",
                            s->server, strerror(errno));
    return 0;
}

static void answer_server_request(cm_mcp_session *s, const cJSON *msg)
{
    const char *method = cm_json_str(msg, "method");
    cm_autojson cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "jsonrpc", "2.0");
    cJSON_AddItemToObject(r, "id", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(msg, "id"), 1));
    if (!strcmp(method, "ping")) {
        cJSON_AddObjectToObject(r, "result");
    } else if (!strcmp(method, "roots/list")) {
        cJSON_AddArrayToObject(cJSON_AddObjectToObject(r, "result"), "roots");
    } else {
        cJSON *e = cJSON_AddObjectToObject(r, "error");
        cJSON_AddNumberToObject(e, "code", -32601);
        cJSON_AddStringToObject(e, "message", "method not supported by this client");
    }
    cm_error ignored;
    pthread_mutex_lock(&s->lock);
    send_line_locked(s, r, cm_now_ms() + 1000, &ignored);
    pthread_mutex_unlock(&s->lock);
}

static void deliver(cm_mcp_session *s, cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const char *method = cm_json_str(msg, "method");
    if (method) {
        if (id)
            answer_server_request(s, msg);
        cJSON_Delete(msg);
        return; /* notifications are ignored */
    }
    if (!cJSON_IsNumber(id)) {
        cJSON_Delete(msg);
        return;
    }
    pthread_mutex_lock(&s->lock);
    for (pending *p = s->pending; p; p = p->next)
        if (p->id == (int64_t)id->valuedouble && !p->done) {
            p->msg = msg;
            p->done = true;
            msg = NULL;
            break;
        }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(msg);
}

static int64_t backoff_ms(int crashes)
{
    if (crashes <= 1)
        return 0;
    int64_t b = (int64_t)250 << (crashes - 2 > 5 ? 5 : crashes - 2);
    return b > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : b;
}

static void wake_reader(cm_mcp_session *s)
{
    uint64_t one = 1;
    if (s->wake_fd >= 0)
        (void)!write(s->wake_fd, &one, sizeof one);
}

/* Marks the session dead and fails every in-flight call (lock held). */
static void fail_all_locked(cm_mcp_session *s, const char *why)
{
    if (s->state == S_READY || s->state == S_STARTING) {
        s->state = S_DEAD;
        if (!s->closing) {
            s->crashes++;
            s->restart_at_ms = cm_now_ms() + backoff_ms(s->crashes);
        }
    }
    snprintf(s->last_exit, sizeof s->last_exit, "%s", why);
    for (pending *p = s->pending; p; p = p->next) {
        if (p->fn && !p->done) { /* worded now, as a blocking caller would */
            cm_error_set(&p->err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s during the call",
                         s->server, why);
            p->failed = true;
        }
        p->done = true;
    }
    pthread_cond_broadcast(&s->cond);
    wake_reader(s);
}

/* Reaps the server: it already closed stdout; give it 300 ms, then SIGTERM,
 * then SIGKILL (the whole process group). */
static int reap_child(pid_t pid)
{
    int status = 0;
    for (int i = 0; i < 30; i++) {
        if (i == 12)
            kill(-pid, SIGTERM);
        if (waitpid(pid, &status, WNOHANG) == pid) {
            kill(-pid, SIGKILL);
            return status;
        }
        usleep(25000);
    }
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* ---- asynchronous requests (finished by the reader thread) ------------ */

static int64_t request_timeout_ms(const cm_mcp_session *s);
static int server_hung(cm_mcp_session *s, const char *method, cm_error *err);

/* Fails async requests whose caller gave up, whose deadline passed, or
 * whose server stopped answering (lock held). */
static void expire_async_locked(cm_mcp_session *s)
{
    int64_t now = cm_now_ms();
    for (pending *p = s->pending; p; p = p->next) {
        if (!p->fn || p->done)
            continue;
        if (p->cancel && atomic_load(p->cancel)) {
            cm_error_set(&p->err, CM_ERR_TIMEOUT, "MCP server '%s': cancelled: the caller gave up",
                         s->server);
        } else if (now >= p->hung_at) {
            server_hung(s, p->method, &p->err); /* fails every call, this one says why */
        } else if (now >= p->deadline_ms) {
            cm_error_set(&p->err, CM_ERR_TIMEOUT, "MCP server '%s': timed out", s->server);
        } else {
            continue;
        }
        p->failed = true;
        p->done = true;
    }
}

/* Milliseconds the reader may sleep: until the nearest async deadline,
 * at most 100 (cancel flags are also polled); -1 without async requests
 * for a while (lock held).  While async calls come and go it keeps a
 * 100 ms timeout, so a new request needs no wake-up (reader_idle). */
static int reader_timeout_locked(const cm_mcp_session *s)
{
    int64_t next = 100, now = cm_now_ms();
    bool any = false;
    for (const pending *p = s->pending; p; p = p->next) {
        if (!p->fn)
            continue;
        any = true;
        int64_t t = p->done ? 0 : (p->deadline_ms < p->hung_at ? p->deadline_ms : p->hung_at) - now;
        if (t < next)
            next = t;
    }
    if (!any)
        return now < s->async_linger ? 100 : -1;
    return next < 0 ? 0 : (int)next;
}

/* Unlinks the finished async requests (lock held). */
static pending *take_finished_async_locked(cm_mcp_session *s)
{
    pending *done = NULL;
    bool answered = false;
    for (pending **pp = &s->pending; *pp;) {
        pending *p = *pp;
        if (p->fn && p->done) {
            *pp = p->next;
            p->next = done;
            done = p;
            answered |= p->msg != NULL;
        } else {
            pp = &p->next;
        }
    }
    if (answered && cm_now_ms() - s->started_ms > 5000)
        s->crashes = 0;
    return done;
}

static int answer_to_result(cm_mcp_session *s, const char *method, cJSON *answer, cJSON **result,
                            cm_error *err);

/* Calls back every finished async request (lock NOT held). */
static void finish_async(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    pending *done = take_finished_async_locked(s);
    char last_exit[sizeof s->last_exit];
    memcpy(last_exit, s->last_exit, sizeof last_exit);
    pthread_mutex_unlock(&s->lock);
    while (done) {
        pending *p = done;
        done = p->next;
        cJSON *result = NULL;
        int rc = -1;
        if (p->failed)
            ; /* p->err says why */
        else if (!p->msg)
            cm_error_set(&p->err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s during the call",
                         s->server, last_exit[0] ? last_exit : "exited");
        else
            rc = answer_to_result(s, p->method, p->msg, &result, &p->err);
        if (rc == 0)
            p->fn(p->arg, result, NULL);
        else
            p->fn(p->arg, NULL, &p->err);
        cJSON_Delete(p->msg);
        free(p);
    }
}

static void drain_wake(cm_mcp_session *s)
{
    uint64_t v;
    while (s->wake_fd >= 0 && read(s->wake_fd, &v, sizeof v) > 0)
        ;
}

/* Reads lines from the server until it closes its output; between reads
 * it finishes async requests (answers, cancels, deadlines, hangs). */
static void read_lines(cm_mcp_session *s, int out_fd)
{
    cm_buf in = {0};
    char chunk[65536];
    for (;;) {
        pthread_mutex_lock(&s->lock);
        expire_async_locked(s);
        int timeout = reader_timeout_locked(s);
        s->reader_idle = timeout < 0;
        pthread_mutex_unlock(&s->lock);
        finish_async(s);
        struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN},
                                {.fd = s->wake_fd, .events = POLLIN}};
        int pr = poll(pfd, s->wake_fd >= 0 ? 2 : 1, timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (pfd[1].revents)
            drain_wake(s);
        if (!pfd[0].revents)
            continue;
        ssize_t n = read(out_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        cm_error e;
        if (cm_buf_append(&in, chunk, (size_t)n, &e) < 0)
            break;
        char *nl;
        while ((nl = memchr(in.data, '\n', in.len))) {
            size_t len = (size_t)(nl - in.data);
            cJSON *msg = cJSON_ParseWithLength(in.data, len);
            cm_buf_consume(&in, len + 1);
            if (msg)
                deliver(s, msg); /* non-JSON lines on stdout are ignored */
        }
        if (in.len > LINE_MAX_BYTES)
            break;
    }
    cm_buf_free(&in);
}

static void *reader_main(void *arg)
{
    reader_arg a = *(reader_arg *)arg;
    free(arg);
    cm_mcp_session *s = a.s;
    read_lines(s, a.out_fd);
    close(a.out_fd);
    pthread_mutex_lock(&s->lock);
    s->pid_alive = false;
    bool hung = s->hung_killed;
    if (!hung)
        fail_all_locked(s, "closed its output");
    pthread_mutex_unlock(&s->lock);
    int status = reap_child(a.pid);
    pthread_mutex_lock(&s->lock);
    if (hung)
        ; /* last_exit says why it was killed */
    else if (WIFEXITED(status))
        snprintf(s->last_exit, sizeof s->last_exit, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(s->last_exit, sizeof s->last_exit, "killed by signal %d", WTERMSIG(status));
    for (pending *p = s->pending; p; p = p->next)
        p->done = true; /* no async request outlives its reader */
    s->reader_done = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    finish_async(s);
    return NULL;
}

static const char *const env_allow[] = {"PATH",  "HOME", "LANG", "LC_ALL", "LOGNAME",
                                        "SHELL", "TERM", "USER", "TZ",     NULL};

static char **child_env(const cJSON *cfg)
{
    cJSON *env = cJSON_CreateObject();
    for (int i = 0; env_allow[i]; i++) {
        const char *v = getenv(env_allow[i]);
        if (v)
            cJSON_AddStringToObject(env, env_allow[i], v);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(cfg, "env"))
    {
        if (!e->string[0] || strchr(e->string, '='))
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(env, e->string);
        cm_autofree char *text = cJSON_IsString(e) ? cm_xstrdup(e->valuestring) : cm_json_print(e);
        cJSON_AddStringToObject(env, e->string, text);
    }
    int n = cJSON_GetArraySize(env);
    char **envp = cm_xcalloc((size_t)n + 1, sizeof *envp);
    int i = 0;
    cJSON_ArrayForEach(e, env)
    {
        if (asprintf(&envp[i++], "%s=%s", e->string, e->valuestring) < 0)
            abort();
    }
    cJSON_Delete(env);
    return envp;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static char **child_argv(const cJSON *cfg)
{
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(cfg, "args");
    int n = cJSON_GetArraySize(args);
    char **argv = cm_xcalloc((size_t)n + 2, sizeof *argv);
    argv[0] = cm_xstrdup(cm_json_str(cfg, "command"));
    int i = 1;
    const cJSON *a;
    cJSON_ArrayForEach(a, args) argv[i++] =
        cJSON_IsString(a) ? cm_xstrdup(a->valuestring) : cm_json_print(a);
    return argv;
}

static int spawn_server(cm_mcp_session *s, pid_t *pid, int *in_fd, int *out_fd, cm_error *err)
{
    const char *command = cm_json_str(s->cfg, "command");
    if (!command || !*command)
        return cm_error_set(err, CM_ERR_CONFIG, "MCP server '%s': command: missing", s->server);
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) < 0)
        return cm_error_sys(err, CM_ERR_IO, "pipe");
    if (pipe2(from_child, O_CLOEXEC) < 0) {
        close(to_child[0]);
        close(to_child[1]);
        return cm_error_sys(err, CM_ERR_IO, "pipe");
    }
    const char *cwd = cm_json_str(s->cfg, "cwd");
    cm_autofree char *cwd_full = NULL;
    if (cwd && cwd[0] != '/' && asprintf(&cwd_full, "%s/%s", s->base_dir, cwd) < 0)
        abort();
    char **argv = child_argv(s->cfg);
    char **envp = child_env(s->cfg);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd_full ? cwd_full : cwd);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    int rc = posix_spawnp(pid, command, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    strv_free(argv);
    strv_free(envp);
    close(to_child[0]);
    close(from_child[1]);
    if (rc != 0) {
        close(to_child[1]);
        close(from_child[0]);
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': cannot start '%s': %s",
                            s->server, command, strerror(rc));
    }
    cm_error ignored;
    cm_set_nonblock(to_child[1], true, &ignored);
    *in_fd = to_child[1];
    *out_fd = from_child[0];
    return 0;
}

/* Joins a finished reader and closes the old stdin (lock NOT held). */
static void reap_old_reader(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    bool join = s->reader_running;
    pthread_t t = s->reader;
    s->reader_running = false;
    if (s->pid_alive)
        kill(-s->pid, SIGKILL);
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
    pthread_mutex_unlock(&s->lock);
    if (join)
        pthread_join(t, NULL);
}

static int start_stdio(cm_mcp_session *s, cm_error *err)
{
    reap_old_reader(s);
    pid_t pid;
    int in_fd, out_fd;
    if (spawn_server(s, &pid, &in_fd, &out_fd, err) < 0)
        return -1;
    reader_arg *a = cm_xmalloc(sizeof *a);
    *a = (reader_arg){.s = s, .out_fd = out_fd, .pid = pid};
    pthread_mutex_lock(&s->lock);
    s->pid = pid;
    s->pid_alive = true;
    s->hung_killed = false;
    s->in_fd = in_fd;
    s->reader_done = false;
    int rc = pthread_create(&s->reader, NULL, reader_main, a);
    s->reader_running = rc == 0;
    pthread_mutex_unlock(&s->lock);
    if (rc != 0) {
        free(a);
        close(out_fd);
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return cm_error_set(err, CM_ERR_INTERNAL, "cannot start MCP reader thread: %s",
                            strerror(rc));
    }
    return 0;
}

/* The server's per-request timeout: `timeout` (seconds) in its config,
 * default 30 s. */
static int64_t request_timeout_ms(const cm_mcp_session *s)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s->cfg, "timeout");
    if (cJSON_IsNumber(t) && t->valuedouble > 0 && t->valuedouble < 86400)
        return (int64_t)(t->valuedouble * 1000.0);
    return DEFAULT_CALL_TIMEOUT_MS;
}

/* The earlier of the caller's deadline and now + the server's timeout. */
static int64_t request_deadline(const cm_mcp_session *s, const cm_call_ctx *ctx)
{
    int64_t own = cm_now_ms() + request_timeout_ms(s);
    return ctx->deadline_ms && ctx->deadline_ms < own ? ctx->deadline_ms : own;
}

/* A stdio server alive but not answering (lock held): kill its process
 * group (the reader reaps it), fail every in-flight call and schedule the
 * restart with backoff, as for a crash. */
static int server_hung(cm_mcp_session *s, const char *method, cm_error *err)
{
    char why[128];
    snprintf(why, sizeof why, "did not answer %.40s within %gs and was killed", method,
             (double)request_timeout_ms(s) / 1000.0);
    if (s->pid_alive) {
        kill(-s->pid, SIGKILL);
        s->hung_killed = true;
    }
    fail_all_locked(s, why);
    return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s", s->server, why);
}

static int stdio_exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                          const cm_call_ctx *ctx, cJSON **answer, cm_error *err)
{
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    pending pd = {0};
    int64_t hung_at = cm_now_ms() + request_timeout_ms(s);
    int64_t deadline = request_deadline(s, ctx);
    pthread_mutex_lock(&s->lock);
    if (!notify) {
        pd.id = ++s->next_id;
        cJSON_AddNumberToObject(msg, "id", (double)pd.id);
    }
    cJSON_AddStringToObject(msg, "method", method);
    if (params)
        cJSON_AddItemReferenceToObject(msg, "params", params);
    int rc = send_line_locked(s, msg, deadline, err);
    if (rc < 0 || notify) {
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    pd.next = s->pending;
    s->pending = &pd;
    while (!pd.done && (rc = check_wait(s, ctx, err)) == 0) {
        if (cm_now_ms() >= hung_at) {
            rc = server_hung(s, method, err);
            break;
        }
        wait_ms(s, 100);
    }
    for (pending **pp = &s->pending; *pp; pp = &(*pp)->next)
        if (*pp == &pd) {
            *pp = pd.next;
            break;
        }
    pthread_mutex_unlock(&s->lock);
    if (rc == 0 && pd.done && !pd.msg)
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s during the call", s->server,
                          s->last_exit[0] ? s->last_exit : "exited");
    if (rc < 0) {
        cJSON_Delete(pd.msg);
        return -1;
    }
    *answer = pd.msg;
    return 0;
}

/* ---- streamable HTTP transport ---------------------------------------- */

static int header_lines(const cJSON *cfg, struct curl_slist **h, cm_error *err)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cfg, "headers"))
    {
        if (!cJSON_IsString(v) || strpbrk(v->string, "\r\n:") || strpbrk(v->valuestring, "\r\n"))
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "headers.%.60s: invalid header", v->string);
        cm_autofree char *line = NULL;
        if (asprintf(&line, "%s: %s", v->string, v->valuestring) < 0)
            abort();
        *h = curl_slist_append(*h, line);
    }
    return 0;
}

/* Finds the answer to `id` in a JSON or SSE body. */
static cJSON *find_answer(const cm_http_resp *r, int64_t id)
{
    const char *body = r->body.data ? r->body.data : "";
    bool sse = r->content_type && strstr(r->content_type, "text/event-stream");
    if (!sse) {
        cJSON *j = cJSON_Parse(body);
        if (cJSON_IsArray(j)) {
            cJSON *e;
            cJSON_ArrayForEach(e, j)
            {
                const cJSON *eid = cJSON_GetObjectItemCaseSensitive(e, "id");
                if (cJSON_IsNumber(eid) && (int64_t)eid->valuedouble == id) {
                    cJSON *out = cJSON_DetachItemViaPointer(j, e);
                    cJSON_Delete(j);
                    return out;
                }
            }
            cJSON_Delete(j);
            return NULL;
        }
        return j;
    }
    /* SSE: events separated by blank lines; data lines joined by \n */
    cm_buf data = {0};
    cm_error ignored;
    cJSON *found = NULL;
    const char *p = body;
    while (!found) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        size_t l = len && p[len - 1] == '\r' ? len - 1 : len;
        if (l == 0 || !eol) {
            if (!eol && l > 5 && !strncmp(p, "data:", 5))
                cm_buf_append(&data, p + 5 + (p[5] == ' '), l - 5 - (p[5] == ' '), &ignored);
            if (data.len) {
                cJSON *j = cJSON_ParseWithLength(data.data, data.len);
                const cJSON *eid = cJSON_GetObjectItemCaseSensitive(j, "id");
                if (cJSON_IsNumber(eid) && (int64_t)eid->valuedouble == id &&
                    !cJSON_GetObjectItemCaseSensitive(j, "method"))
                    found = j;
                else
                    cJSON_Delete(j);
            }
            cm_buf_free(&data);
            data = (cm_buf){0};
        } else if (l >= 5 && !strncmp(p, "data:", 5)) {
            if (data.len)
                cm_buf_append(&data, "\n", 1, &ignored);
            size_t skip = 5 + (l > 5 && p[5] == ' ');
            cm_buf_append(&data, p + skip, l - skip, &ignored);
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    cm_buf_free(&data);
    return found;
}

static int http_exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                         const cm_call_ctx *ctx, cJSON **answer, cm_error *err)
{
    const char *url = cm_json_str(s->cfg, "url");
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    pthread_mutex_lock(&s->lock);
    int64_t id = notify ? 0 : ++s->next_id;
    cm_autofree char *sid = s->session_id ? cm_xstrdup(s->session_id) : NULL;
    char proto[sizeof s->proto];
    memcpy(proto, s->proto, sizeof proto);
    pthread_mutex_unlock(&s->lock);
    if (!notify)
        cJSON_AddNumberToObject(msg, "id", (double)id);
    cJSON_AddStringToObject(msg, "method", method);
    if (params)
        cJSON_AddItemReferenceToObject(msg, "params", params);
    cm_autofree char *body = cm_json_print(msg);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json, text/event-stream");
    char line[256];
    if (sid) {
        snprintf(line, sizeof line, "Mcp-Session-Id: %.200s", sid);
        h = curl_slist_append(h, line);
    }
    if (proto[0]) {
        snprintf(line, sizeof line, "MCP-Protocol-Version: %s", proto);
        h = curl_slist_append(h, line);
    }
    int rc = header_lines(s->cfg, &h, err);
    cm_http_resp resp = {0};
    if (rc == 0) {
        cm_http_req req = {.method = "POST",
                           .url = url,
                           .headers = h,
                           .body = body,
                           .body_len = strlen(body),
                           .max_bytes = LINE_MAX_BYTES,
                           .deadline_ms = request_deadline(s, ctx),
                           .cancel = ctx->cancel,
                           .capture_header = "Mcp-Session-Id",
                           .egress = ctx->egress};
        rc = cm_http_perform(s->p, &req, &resp, err);
    }
    curl_slist_free_all(h);
    if (rc < 0) {
        cm_http_resp_free(&resp);
        return cm_error_prefix(err, "MCP server '%s'", s->server);
    }
    if (resp.status == 404 && sid) {
        cm_http_resp_free(&resp);
        return RETRY_EXPIRED;
    }
    if (resp.status >= 400) {
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': HTTP status %ld: %.300s",
                          s->server, resp.status, resp.body.data ? resp.body.data : "");
        cm_http_resp_free(&resp);
        return rc;
    }
    if (!strcmp(method, "initialize") && resp.captured) {
        pthread_mutex_lock(&s->lock);
        free(s->session_id);
        s->session_id = cm_steal_ptr(&resp.captured);
        pthread_mutex_unlock(&s->lock);
    }
    if (!notify && !(*answer = find_answer(&resp, id)))
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': no answer to request %lld",
                          s->server, (long long)id);
    cm_http_resp_free(&resp);
    return rc;
}

/* ---- session life ------------------------------------------------------ */

static int exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                    const cm_call_ctx *ctx, cJSON **answer, cm_error *err)
{
    if (s->http)
        return http_exchange(s, method, params, notify, ctx, answer, err);
    return stdio_exchange(s, method, params, notify, ctx, answer, err);
}

/* A JSON-RPC answer → its result; an `error` member → CM_ERR_TOOL_ERROR. */
static int answer_to_result(cm_mcp_session *s, const char *method, cJSON *answer, cJSON **result,
                            cm_error *err)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(answer, "error");
    if (e) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const char *m = cm_json_str(e, "message");
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': %s failed: %s (code %d)",
                            s->server, method, m ? m : "error",
                            cJSON_IsNumber(code) ? code->valueint : 0);
    }
    cJSON *r = cJSON_DetachItemFromObjectCaseSensitive(answer, "result");
    *result = r ? r : cJSON_CreateObject();
    return 0;
}

/* Request → result, JSON-RPC errors mapped. */
static int rpc(cm_mcp_session *s, const char *method, cJSON *params, const cm_call_ctx *ctx,
               cJSON **result, cm_error *err)
{
    cm_autojson cJSON *answer = NULL;
    int rc = exchange(s, method, params, false, ctx, &answer, err);
    if (rc != 0)
        return rc;
    return answer_to_result(s, method, answer, result, err);
}

static bool version_supported(const char *v)
{
    for (int i = 0; v && cm_mcp_versions[i]; i++)
        if (!strcmp(v, cm_mcp_versions[i]))
            return true;
    return false;
}

static int handshake(cm_mcp_session *s, const cm_call_ctx *ctx, cm_error *err)
{
    cm_autojson cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "protocolVersion", cm_mcp_versions[0]);
    cJSON_AddObjectToObject(params, "capabilities");
    cJSON *ci = cJSON_AddObjectToObject(params, "clientInfo");
    cJSON_AddStringToObject(ci, "name", "codemode");
    cJSON_AddStringToObject(ci, "version", "0.1.0");
    cm_autojson cJSON *res = NULL;
    int rc = rpc(s, "initialize", params, ctx, &res, err);
    if (rc != 0)
        return rc < 0 ? -1 : cm_error_set(err, CM_ERR_TOOL_ERROR, "initialize: session expired");
    const char *v = cm_json_str(res, "protocolVersion");
    if (!version_supported(v))
        return cm_error_set(err, CM_ERR_TOOL_ERROR,
                            "MCP server '%s' speaks protocol '%s'; this client speaks 2025-11-25, "
                            "2025-06-18, 2025-03-26",
                            s->server, v ? v : "(none)");
    pthread_mutex_lock(&s->lock);
    snprintf(s->proto, sizeof s->proto, "%s", v);
    pthread_mutex_unlock(&s->lock);
    cJSON *none = NULL;
    return exchange(s, "notifications/initialized", NULL, true, ctx, &none, err) < 0 ? -1 : 0;
}

static int ensure_ready(cm_mcp_session *s, const cm_call_ctx *ctx, cm_error *err)
{
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (s->closing) {
            pthread_mutex_unlock(&s->lock);
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': manual was removed",
                                s->server);
        }
        if (s->state == S_READY) {
            pthread_mutex_unlock(&s->lock);
            return 0;
        }
        if (s->state == S_STARTING) {
            if (check_wait(s, ctx, err) < 0) {
                pthread_mutex_unlock(&s->lock);
                return -1;
            }
            wait_ms(s, 100);
            continue;
        }
        int64_t wait = s->restart_at_ms - cm_now_ms();
        if (wait > 0) {
            pthread_mutex_unlock(&s->lock);
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s; restarting in %lld ms",
                                s->server, s->last_exit[0] ? s->last_exit : "failed",
                                (long long)wait);
        }
        s->state = S_STARTING;
        s->proto[0] = '\0';
        free(s->session_id);
        s->session_id = NULL;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    int rc = s->http ? 0 : start_stdio(s, err);
    if (rc == 0)
        rc = handshake(s, ctx, err);
    pthread_mutex_lock(&s->lock);
    if (rc == 0 && !s->closing && s->state == S_STARTING) {
        s->state = S_READY;
        s->started_ms = cm_now_ms();
    } else {
        if (rc == 0)
            rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s' %s during start-up",
                              s->server, s->last_exit[0] ? s->last_exit : "exited");
        if (s->state == S_STARTING)
            fail_all_locked(s, err->message);
        if (!s->http && s->pid_alive)
            kill(-s->pid, SIGKILL); /* the reader reaps it */
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return rc < 0 ? cm_error_prefix(err, "starting MCP server '%s'", s->server) : 0;
}

/* HTTP session gone (404): forget it so the next ensure_ready
 * re-initializes (not a crash: no backoff). */
static void expire_session(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->state == S_READY)
        s->state = S_NEW;
    pthread_mutex_unlock(&s->lock);
}

int cm_mcp_request(cm_providers *p, const char *manual, const char *server, const cJSON *server_cfg,
                   const char *base_dir, const char *method, cJSON *params, const cm_call_ctx *ctx,
                   cJSON **result, cm_error *err)
{
    if (!p)
        return cm_error_set(err, CM_ERR_INTERNAL, "mcp: no provider context");
    cm_mcp_session *s = session_get(p, manual, server, server_cfg, base_dir);
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure_ready(s, ctx, err) < 0) {
            rc = -1;
            break;
        }
        rc = rpc(s, method, params, ctx, result, err);
        if (rc != RETRY_EXPIRED)
            break;
        expire_session(s);
        rc = cm_error_set(err, CM_ERR_TOOL_ERROR, "MCP server '%s': session expired twice", server);
    }
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        if (cm_now_ms() - s->started_ms > 5000)
            s->crashes = 0;
        pthread_mutex_unlock(&s->lock);
    }
    session_put(s);
    return rc;
}

/* Sends the request on a ready stdio session and leaves the answer to the
 * reader thread (lock held).  0 when the session cannot take it now. */
static int send_async_locked(cm_mcp_session *s, const char *method, cJSON *params,
                             const cm_call_ctx *ctx, cm_mcp_answer_fn fn, void *arg)
{
    if (s->http || s->closing || s->state != S_READY || !s->reader_running || s->reader_done ||
        s->in_fd < 0 || s->wake_fd < 0)
        return 0;
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    pending *pd = cm_xcalloc(1, sizeof *pd);
    pd->id = ++s->next_id;
    pd->fn = fn;
    pd->arg = arg;
    pd->method = method;
    pd->cancel = ctx->cancel;
    pd->hung_at = cm_now_ms() + request_timeout_ms(s);
    pd->deadline_ms = request_deadline(s, ctx);
    cJSON_AddNumberToObject(msg, "id", (double)pd->id);
    cJSON_AddStringToObject(msg, "method", method);
    if (params)
        cJSON_AddItemReferenceToObject(msg, "params", params);
    pd->next = s->pending;
    s->pending = pd; /* before the write: the answer may come at once */
    s->async_linger = cm_now_ms() + 1000;
    if (send_line_locked(s, msg, pd->deadline_ms, &pd->err) < 0)
        pd->failed = pd->done = true;
    if (pd->failed || s->reader_idle) {
        s->reader_idle = false;
        wake_reader(s); /* it takes a timeout now; finishes a failed send */
    }
    return 1;
}

int cm_mcp_request_async(cm_providers *p, const char *manual, const char *server,
                         const cJSON *server_cfg, const char *base_dir, const char *method,
                         cJSON *params, const cm_call_ctx *ctx, cm_mcp_answer_fn fn, void *arg)
{
    if (!p || cm_json_str(server_cfg, "url"))
        return 0;
    cm_mcp_session *s = session_get(p, manual, server, server_cfg, base_dir);
    pthread_mutex_lock(&s->lock);
    int started = send_async_locked(s, method, params, ctx, fn, arg);
    pthread_mutex_unlock(&s->lock);
    session_put(s);
    return started;
}

void cm_mcp_sessions_wakeup(cm_providers *p)
{
    pthread_mutex_lock(&p->lock);
    for (cm_mcp_session *s = p->sessions; s; s = s->next)
        wake_reader(s);
    pthread_mutex_unlock(&p->lock);
}

/* ---- closing ------------------------------------------------------------- */

static void stop_stdio(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->in_fd >= 0)
        close(s->in_fd); /* EOF on stdin: the polite way to end an MCP server */
    s->in_fd = -1;
    int64_t start = cm_now_ms();
    bool termed = false;
    while (s->reader_running && !s->reader_done && s->pid_alive) {
        int64_t elapsed = cm_now_ms() - start;
        if (elapsed >= 2000) {
            kill(-s->pid, SIGKILL);
            break;
        }
        if (elapsed >= 1000 && !termed) {
            kill(-s->pid, SIGTERM);
            termed = true;
        }
        wait_ms(s, 50);
    }
    bool join = s->reader_running;
    s->reader_running = false;
    pthread_mutex_unlock(&s->lock);
    if (join)
        pthread_join(s->reader, NULL);
}

static void delete_http_session(cm_mcp_session *s)
{
    if (!s->session_id)
        return;
    char line[256];
    snprintf(line, sizeof line, "Mcp-Session-Id: %.200s", s->session_id);
    struct curl_slist *h = curl_slist_append(NULL, line);
    cm_http_req req = {.method = "DELETE",
                       .url = cm_json_str(s->cfg, "url"),
                       .headers = h,
                       .deadline_ms = cm_now_ms() + 2000};
    cm_http_resp resp;
    cm_error ignored;
    if (cm_http_perform(s->p, &req, &resp, &ignored) == 0)
        cm_http_resp_free(&resp);
    curl_slist_free_all(h);
}

static void session_close(cm_mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    fail_all_locked(s, "was closed");
    pthread_mutex_unlock(&s->lock);
    if (s->http)
        delete_http_session(s);
    else
        stop_stdio(s);
    pthread_mutex_lock(&s->lock);
    while (s->refs > 0)
        wait_ms(s, 50);
    pthread_mutex_unlock(&s->lock);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->manual);
    free(s->server);
    free(s->base_dir);
    free(s->session_id);
    cJSON_Delete(s->cfg);
    free(s);
}

void cm_mcp_sessions_close(cm_providers *p, const char *manual_name)
{
    cm_mcp_session *doomed = NULL;
    pthread_mutex_lock(&p->lock);
    for (cm_mcp_session **pp = &p->sessions; *pp;) {
        cm_mcp_session *s = *pp;
        if (!manual_name || !strcmp(s->manual, manual_name)) {
            *pp = s->next;
            s->next = doomed;
            doomed = s;
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&p->lock);
    while (doomed) {
        cm_mcp_session *s = doomed;
        doomed = s->next;
        session_close(s);
    }
}
