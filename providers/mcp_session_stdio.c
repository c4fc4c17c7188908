/* mcp_session_stdio.c — the stdio transport of an MCP session: the server
 * as a child process (its own process group, an allow-listed environment)
 * speaking newline-delimited JSON-RPC, one reader thread per server that
 * delivers answers, answers the server's own requests (ping, roots/list) and
 * reaps it when it closes its output, and the blocking request/answer
 * exchange.
 *
 * Why its own file: processes, pipes and the reader thread are this
 * transport's alone; the streamable HTTP transport (mcp_session_http.c)
 * shares none of it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mcp_int.h"
#include "util.h"

extern char **environ;

typedef struct reader_arg {
    cm_mcp_session *s;
    int out_fd;
    pid_t pid;
} reader_arg;

static void answer_server_request(cm_mcp_session *s, const cJSON *msg)
{
    cm_autojson cJSON *r = cm_mcp_client_reply(s, msg);
    cm_error ignored;
    pthread_mutex_lock(&s->lock);
    cm_mcp_send_line_locked(s, r, cm_now_ms() + 1000, &ignored);
    pthread_mutex_unlock(&s->lock);
}

static void deliver(cm_mcp_session *s, cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const char *method = cm_json_str(msg, "method");
    if (method) {
        if (id) {
            answer_server_request(s, msg);
        } else {
            pthread_mutex_lock(&s->lock);
            cm_mcp_forward_notification_locked(s, msg);
            pthread_mutex_unlock(&s->lock);
        }
        cJSON_Delete(msg);
        return;
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

/* Reaps the server: it already closed stdout; give it 300 ms, then SIGTERM,
 * then SIGKILL (the whole process group). */
static int reap_child(const cm_providers *p, pid_t pid)
{
    int status = 0;
    for (int i = 0; i < 30; i++) {
        if (i == 12)
            cm_providers_signal(p, pid, SIGTERM);
        if (waitpid(pid, &status, WNOHANG) == pid) {
            cm_providers_signal(p, pid, SIGKILL);
            return status;
        }
        usleep(25000);
    }
    cm_providers_signal(p, pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
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
        cm_mcp_expire_async_locked(s);
        int timeout = cm_mcp_reader_timeout_locked(s);
        s->reader_idle = timeout < 0;
        pthread_mutex_unlock(&s->lock);
        cm_mcp_finish_async(s);
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
        cm_mcp_fail_all_locked(s, "closed its output");
    pthread_mutex_unlock(&s->lock);
    int status = reap_child(s->p, a.pid);
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
    cm_mcp_finish_async(s);
    return NULL;
}

static char **child_env(const cm_providers *p, const cJSON *cfg)
{
    cJSON *env = cJSON_CreateObject();
    cm_providers_base_env(p, env);
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

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The server's `writable_dirs` (absolute, or relative to the manual's
 * directory): where a jailed server may write (the host is read-only). */
static char **writable_dirs(const cm_mcp_session *s, cm_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(s->cfg, "writable_dirs");
    if (list && (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > 4)) {
        cm_error_set(err, CM_ERR_CONFIG,
                     "MCP server '%s': writable_dirs: must be a list of at "
                     "most 4 directories",
                     s->server);
        return NULL;
    }
    char **out = cm_xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *out);
    int n = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, list)
    {
        if (!cJSON_IsString(d) || !d->valuestring[0]) {
            strv_free(out);
            cm_error_set(err, CM_ERR_CONFIG,
                         "MCP server '%s': writable_dirs: entries must be "
                         "directory paths",
                         s->server);
            return NULL;
        }
        if (d->valuestring[0] == '/')
            out[n++] = cm_xstrdup(d->valuestring);
        else if (asprintf(&out[n++], "%s/%s", s->base_dir, d->valuestring) < 0)
            abort();
    }
    return out;
}

static int spawn_server(cm_mcp_session *s, const cm_provider_ids *ids, pid_t *pid, int *in_fd,
                        int *out_fd, cm_error *err)
{
    const char *command = cm_json_str(s->cfg, "command");
    if (!command || !*command)
        return cm_error_set(err, CM_ERR_CONFIG, "MCP server '%s': command: missing", s->server);
    char **rw = writable_dirs(s, err);
    if (!rw)
        return -1;
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) < 0) {
        strv_free(rw);
        return cm_error_sys(err, CM_ERR_IO, "pipe");
    }
    if (pipe2(from_child, O_CLOEXEC) < 0) {
        close(to_child[0]);
        close(to_child[1]);
        strv_free(rw);
        return cm_error_sys(err, CM_ERR_IO, "pipe");
    }
    const char *cwd = cm_json_str(s->cfg, "cwd");
    cm_autofree char *cwd_full = NULL;
    if (cwd && cwd[0] != '/' && asprintf(&cwd_full, "%s/%s", s->base_dir, cwd) < 0)
        abort();
    char **argv = child_argv(s->cfg);
    char **envp = child_env(s->p, s->cfg);
    const cm_provider_spawn req = {.prog = command,
                                   .argv = argv,
                                   .envp = envp,
                                   .cwd = cwd ? (cwd_full ? cwd_full : cwd) : NULL,
                                   .in_fd = to_child[0],
                                   .out_fd = from_child[1],
                                   .err_fd = -1,
                                   .ids = ids,
                                   .rw = rw};
    int rc = cm_providers_spawn(s->p, &req, pid);
    strv_free(argv);
    strv_free(envp);
    strv_free(rw);
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
        cm_providers_signal(s->p, s->pid, SIGKILL);
    if (s->in_fd >= 0)
        close(s->in_fd);
    s->in_fd = -1;
    pthread_mutex_unlock(&s->lock);
    if (join)
        pthread_join(t, NULL);
}

int cm_mcp_start_stdio(cm_mcp_session *s, cm_error *err)
{
    reap_old_reader(s);
    pid_t pid;
    int in_fd, out_fd;
    /* one uid for the session's life, restarts included (a server's own
     * files stay its own); released, with anything left, at session close */
    if (!s->ids.set && cm_providers_take_ids(s->p, &s->ids, err) < 0)
        return cm_error_prefix(err, "MCP server '%s'", s->server);
    if (spawn_server(s, &s->ids, &pid, &in_fd, &out_fd, err) < 0)
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
        cm_providers_signal(s->p, pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return cm_error_set(err, CM_ERR_INTERNAL, "cannot start MCP reader thread: %s",
                            strerror(rc));
    }
    return 0;
}

int cm_mcp_stdio_exchange(cm_mcp_session *s, const char *method, cJSON *params, bool notify,
                          const cm_call_ctx *ctx, cJSON **answer, cm_error *err)
{
    cm_autojson cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
    pending pd = {0};
    int64_t hung_at = cm_now_ms() + cm_mcp_request_timeout_ms(s);
    int64_t deadline = cm_mcp_request_deadline(s, ctx);
    pthread_mutex_lock(&s->lock);
    if (!notify) {
        pd.id = ++s->next_id;
        cJSON_AddNumberToObject(msg, "id", (double)pd.id);
        cm_mcp_progress_token(method, params, pd.id);
        cm_mcp_pending_notes(&pd, ctx);
    }
    cJSON_AddStringToObject(msg, "method", method);
    if (params)
        cJSON_AddItemReferenceToObject(msg, "params", params);
    int rc = cm_mcp_send_line_locked(s, msg, deadline, err);
    if (rc < 0 || notify) {
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    pd.next = s->pending;
    s->pending = &pd;
    while (!pd.done && (rc = cm_mcp_check_wait(s, ctx, err)) == 0) {
        if (cm_now_ms() >= hung_at) {
            rc = cm_mcp_server_hung(s, method, err);
            break;
        }
        cm_mcp_wait_ms(s, 100);
    }
    if (rc < 0 && !pd.done && err->kind == CM_ERR_TIMEOUT) /* given up, the server alive */
        cm_mcp_send_cancelled_locked(s, pd.id, "the caller gave up or its deadline passed");
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

void cm_mcp_stop_stdio(cm_mcp_session *s)
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
            cm_providers_signal(s->p, s->pid, SIGKILL);
            break;
        }
        if (elapsed >= 1000 && !termed) {
            cm_providers_signal(s->p, s->pid, SIGTERM);
            termed = true;
        }
        cm_mcp_wait_ms(s, 50);
    }
    bool join = s->reader_running;
    s->reader_running = false;
    pthread_mutex_unlock(&s->lock);
    if (join)
        pthread_join(s->reader, NULL);
}
