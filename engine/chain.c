/* chain.c — the life of one tool chain: start a sandbox running the rootfs
 * runner, send it the code, serve its tool calls (chain_calls.c: http ones
 * on the providers' curl multi loop, others each on its own thread, so
 * asyncio.gather overlaps them), collect logs and the result, enforce the
 * timeout and output bounds, then kill and reap the sandbox.  The sandbox is
 * untrusted: every frame is validated and any violation ends the chain, never
 * the engine. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "chain_tools.h"
#include "registry.h"
#include "chain_int.h"
#include "pool.h"
#include "jsonrpc.h"
#include "tools.h"

#define DIAG_MAX 65536
#define POLL_SLICE_MS 100

/* Kinds a chain's `done` keeps as they are (which kinds it may claim at all
 * is chain_check.c's to say); invalid_arguments is a tool call's (the
 * engine's schema check) kept so the agent sees what to fix. */
static const char *const runner_error_kinds[] = {
    "syntax",           "exception", "tool_error", "policy_denied", "result_not_serializable",
    "invalid_arguments"};

/* ---- results --------------------------------------------------------- */

/* ---- frames from the runner ------------------------------------------- */

static void take_log(chain *ch, const cJSON *msg)
{
    const char *line = cm_json_str(msg, "line");
    if (!line) {
        cm_chain_broke(ch, "log line is not a string");
        return;
    }
    size_t len = strlen(line) + 1;
    if (ch->log_bytes + len > (size_t)ch->lim->max_output_bytes) {
        cm_chain_errorf(ch, CM_ERR_OUTPUT_LIMIT, "printed output exceeded %ld bytes; chain stopped",
                        ch->lim->max_output_bytes);
        return;
    }
    ch->log_bytes += len;
    cJSON_AddItemToArray(ch->logs, cJSON_CreateString(line));
    cm_agent_stream_log(ch->conn, ch->progress_token, cJSON_GetArraySize(ch->logs), line);
}

void cm_chain_note(chain *ch, const char *line)
{
    size_t len = strlen(line) + 1;
    if (ch->log_bytes + len > (size_t)ch->lim->max_output_bytes)
        return; /* a chatty server never ends the chain: its lines stop */
    ch->log_bytes += len;
    cJSON_AddItemToArray(ch->logs, cJSON_CreateString(line));
    cm_agent_stream_log(ch->conn, ch->progress_token, cJSON_GetArraySize(ch->logs), line);
}

/* {"t":"search","id":I,"query":S,"limit":N}: search_tools inside the chain,
 * answered with a result frame (not a tool call: no budget, no provider). */
static void take_search(chain *ch, const cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const char *query = cm_json_str(msg, "query");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(msg, "limit");
    if (!cm_chain_take_id(ch, id, "search"))
        return;
    if (!query || !cJSON_IsNumber(limit) || !(limit->valuedouble >= 1) ||
        !(limit->valuedouble <= 1000) || limit->valuedouble != (double)limit->valueint) {
        cm_chain_broke(ch, "search frame needs a string query and an int limit 1..1000");
        return;
    }
    int n = limit->valueint;
    size_t qlen = strlen(query);
    if (qlen > CM_SEARCH_MAX_QUERY) {
        cm_error err;
        cm_error_set(&err, CM_ERR_TOOL_ERROR,
                     "search_tools: the query is %zu bytes, over the limit of %d; describe the "
                     "task in fewer words",
                     qlen, CM_SEARCH_MAX_QUERY);
        cm_chain_returned(ch, err.kind);
        cm_chain_queue(ch, cm_chain_result_frame(id->valuedouble, NULL, &err));
        return;
    }
    cm_chain_queue(
        ch, cm_chain_result_frame(
                id->valuedouble,
                cm_agent_search(ch->eng, cm_policy_chain_profile(ch->pc), query, n, false), NULL));
}

/* {"t":"interfaces","id":I[,"name":S]}: `interfaces` or get_tool_interface
 * inside the chain, answered with the text as the caller's
 * get_all_tools_python_interfaces with detail "index" (the compact index) /
 * get_tool_interface give it (null: the chain has no such tool).  Asked for on use, never sent
 * ahead. */
static void take_interfaces(chain *ch, const cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(msg, "name");
    if (!cm_chain_take_id(ch, id, "interfaces"))
        return;
    if (cJSON_IsNull(name))
        name = NULL;
    if (name && !cJSON_IsString(name)) {
        cm_chain_broke(ch, "interfaces frame with a name that is not a string");
        return;
    }
    const struct cm_policy_profile *prof = cm_policy_chain_profile(ch->pc);
    cm_autofree char *text = name ? cm_agent_interfaces(ch->eng, prof, name->valuestring)
                                  : cm_agent_index(ch->eng, prof);
    cJSON *value = text ? cJSON_CreateString(text) : cJSON_CreateNull();
    cm_chain_queue(ch, cm_chain_result_frame(id->valuedouble, value, NULL));
}

static bool known_runner_kind(const char *kind)
{
    for (size_t i = 0; i < sizeof runner_error_kinds / sizeof *runner_error_kinds; i++)
        if (strcmp(kind, runner_error_kinds[i]) == 0)
            return true;
    return false;
}

static void take_done(chain *ch, cJSON *msg)
{
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(msg, "ok");
    cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");
    if (cJSON_IsTrue(ok) && result) {
        cm_autofree char *text = result ? cm_json_print(result) : NULL;
        if (text && strlen(text) > (size_t)ch->lim->max_result_bytes) {
            cm_chain_errorf(ch, CM_ERR_OUTPUT_LIMIT, "result of %zu bytes exceeds the limit of %ld",
                            strlen(text), ch->lim->max_result_bytes);
            return;
        }
        /* taken from the frame, not copied */
        ch->result = result ? cJSON_DetachItemViaPointer(msg, result) : cJSON_CreateNull();
        ch->finished = true;
        return;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(msg, "error");
    if (!cJSON_IsFalse(ok) || !cJSON_IsObject(e)) {
        cm_chain_broke(ch, "done frame without ok/result or error");
        return;
    }
    const char *kind = cm_json_str(e, "kind");
    const char *message = cm_json_str(e, "message");
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(e, "traceback");
    if (!kind || !message || (tb && !cJSON_IsString(tb) && !cJSON_IsNull(tb))) {
        cm_chain_broke(ch, "done frame with a malformed error");
        return;
    }
    if (!cm_chain_may_claim(ch, kind)) {
        cm_chain_broke(ch, "the chain ended with error kind '%.60s', which no tool call returned",
                       kind);
        return;
    }
    /* Any other kind is a failed tool call's (timeout, io...) re-raised by
     * an uncaught ToolError (cm_chain_may_claim admits only kinds the engine
     * returned to this chain): a tool did fail, so the chain ends with
     * tool_error. */
    cm_chain_set_error(ch, known_runner_kind(kind) ? cm_errkind_from_name(kind) : CM_ERR_TOOL_ERROR,
                       message, cm_json_str(e, "traceback"));
}

static void take_frame(chain *ch, cJSON *msg, size_t frame_len)
{
    const char *t = cm_json_str(msg, "t");
    if (!t)
        cm_chain_broke(ch, "frame without a string 't'");
    else if (strcmp(t, "log") == 0)
        take_log(ch, msg);
    else if (strcmp(t, "call") == 0)
        cm_chain_start_call(ch, msg, frame_len);
    else if (strcmp(t, "done") == 0)
        take_done(ch, msg);
    else if (strcmp(t, "ready") == 0 && !ch->ready_us) { /* once, before anything else */
        ch->ready_us = cm_now_us();
        cm_metrics_sandbox_ready(ch->eng->metrics, (double)(ch->ready_us - ch->start_us) / 1000.0);
    } else if (strcmp(t, "search") == 0)
        take_search(ch, msg);
    else if (strcmp(t, "interfaces") == 0)
        take_interfaces(ch, msg);
    else
        cm_chain_broke(ch, "unexpected frame '%.40s'", t);
}

/* ---- I/O ---------------------------------------------------------------- */

/* Returns 0 on EOF, 1 when data (or nothing yet) was read. */
static int read_control(chain *ch)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(ch->ctl_fd, buf, sizeof buf);
        if (n == 0)
            return 0;
        if (n < 0)
            return (errno == EAGAIN || errno == EINTR) ? 1 : 0;
        cm_error err;
        if (cm_frame_feed(&ch->reader, buf, (size_t)n, &err) < 0) {
            cm_chain_errorf(ch, CM_ERR_INTERNAL, "%s", err.message);
            return 1;
        }
        cJSON *msg;
        int rc;
        while (!ch->finished && (rc = cm_frame_next(&ch->reader, &msg, &err)) != 0) {
            if (rc < 0) {
                /* the frame limit is the chain's output limit; bad bytes break the protocol */
                if (err.kind == CM_ERR_OUTPUT_LIMIT)
                    cm_chain_errorf(ch, err.kind, "protocol violation: %s", err.message);
                else
                    cm_chain_broke(ch, "%s", err.message);
                break;
            }
            if (rc == 2) { /* too big to read: dropped */
                cm_chain_oversized_frame(ch, ch->reader.head, ch->reader.last_len);
                continue;
            }
            take_frame(ch, msg, ch->reader.last_len);
            cJSON_Delete(msg);
        }
        if (ch->finished)
            return 1;
    }
}

/* The minimal init's last word (harden.c report_runner_end): how the
 * runner ended, kept even past DIAG_MAX. */
static void note_init_line(chain *ch, const char *buf, size_t n)
{
    static const char tag[] = "codemode-init: runner ";
    const size_t tl = sizeof tag - 1;
    for (size_t i = 0; i + tl <= n; i++) {
        if (memcmp(buf + i, tag, tl) != 0)
            continue;
        char line[48];
        size_t j = 0, k = i + tl;
        while (k < n && buf[k] != '\n' && j + 1 < sizeof line)
            line[j++] = buf[k++];
        line[j] = '\0';
        int v;
        if (sscanf(line, "exit status %d", &v) == 1)
            snprintf(ch->runner_end, sizeof ch->runner_end, " (exit status %d)", v);
        else if (sscanf(line, "signal %d", &v) == 1)
            snprintf(ch->runner_end, sizeof ch->runner_end, " (signal %d)", v);
    }
}

static void read_diag(chain *ch)
{
    char buf[8192];
    ssize_t n = read(ch->out_fd, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(ch->out_fd);
            ch->out_fd = -1;
        }
        return;
    }
    note_init_line(ch, buf, (size_t)n);
    size_t room = ch->diag.len < DIAG_MAX ? DIAG_MAX - ch->diag.len : 0;
    cm_error err;
    cm_buf_append(&ch->diag, buf, (size_t)n < room ? (size_t)n : room, &err);
}

static void write_control(chain *ch)
{
    while (ch->to_sandbox.len > 0) {
        ssize_t n =
            send(ch->ctl_fd, ch->to_sandbox.data, ch->to_sandbox.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            cm_buf_consume(&ch->to_sandbox, (size_t)n);
            cm_chain_sent(ch, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        return; /* peer gone: the EOF path reports it */
    }
}

/* How the sandbox's pid 1 (the runner, without the init layer) ended,
 * when the engine is its parent (the direct path; a zygote's sandbox is
 * the zygote's child): " (exit status N)" or " (signal N)", or "" when
 * unknown.  WNOWAIT: the pool's reaper still reaps it. */
static void exit_status(const chain *ch, char *out, size_t cap)
{
    out[0] = '\0';
    if (ch->sb.pidfd < 0 || ch->sb.foreign)
        return;
    struct pollfd p = {.fd = ch->sb.pidfd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) /* the init exits right after its runner */
        return;
    siginfo_t si = {0};
    if (waitid(P_PIDFD, (id_t)ch->sb.pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || !si.si_pid)
        return;
    if (si.si_code == CLD_EXITED && si.si_status < 128)
        snprintf(out, cap, " (exit status %d)", si.si_status);
    else if (si.si_code == CLD_EXITED)
        snprintf(out, cap, " (signal %d)", si.si_status - 128);
    else
        snprintf(out, cap, " (signal %d)", si.si_status);
}

static void runner_died(chain *ch)
{
    /* the process is gone: take whatever it managed to send first */
    if (!ch->finished)
        read_control(ch);
    if (ch->finished)
        return;
    while (ch->out_fd >= 0) { /* to its end: the init's line comes last */
        struct pollfd p = {.fd = ch->out_fd, .events = POLLIN};
        int64_t left = ch->deadline_ms - cm_now_ms();
        if (poll(&p, 1, left > 0 ? (int)(left < 1000 ? left : 1000) : 0) == 0)
            break;
        read_diag(ch);
    }
    cm_error err;
    cm_buf_append(&ch->diag, "", 1, &err); /* NUL-terminated for strstr */
    char *init_line = strstr(ch->diag.data, "codemode-init: runner ");
    if (init_line) /* said in the message's own words */
        *init_line = '\0';
    size_t len = strlen(ch->diag.data);
    const char *tail = len > 2000 ? ch->diag.data + len - 2000 : ch->diag.data;
    bool said = len > 0;
    /* Who ended it.  The sandbox failed when the runner exited on its own
     * account (a malformed frame from the engine, a closed socket, a bug in
     * it: it says so on fd 2 first, runner_protocol.py _fatal) or when the
     * sandbox was killed from outside (the init did not report the runner's
     * end: nothing inside a pid namespace can kill its init).  Any other end
     * without `done` is the chain's doing (os._exit, a signal it sent
     * itself, a crash in code it loaded).  The chain process is the runner,
     * so it could write the runner's lines too: that gains it nothing but
     * the kind sandbox_failure (as killing its bridge did when there was
     * one), never a kind the engine alone gives. */
    static const char *const runner_fatal[] = {
        "codemode-runner: internal error", "codemode-runner: malformed frame",
        "codemode-runner: engine closed", "codemode-runner: control socket"};
    bool runner_failed = false;
    for (size_t i = 0; said && i < sizeof runner_fatal / sizeof *runner_fatal; i++)
        runner_failed = runner_failed || strstr(ch->diag.data, runner_fatal[i]);
    bool with_init = cm_isolation_active(&ch->eng->iso, CM_LAYER_INIT);
    char how[48];
    snprintf(how, sizeof how, "%s", ch->runner_end);
    if (!with_init)
        exit_status(ch, how, sizeof how);
    if (runner_failed || (with_init && !ch->runner_end[0])) {
        cm_chain_errorf(ch, CM_ERR_SANDBOX_FAILURE,
                        "the sandbox runner exited without a result%s%s", said ? ": " : "",
                        said ? tail : "");
        return;
    }
    cm_chain_errorf(ch, CM_ERR_EXCEPTION, "the chain process ended without a result%s%s%s", how,
                    said ? ": " : "", said ? tail : "");
}

static void serve(chain *ch)
{
    while (!ch->finished) {
        int64_t now = cm_now_ms();
        if (now >= ch->deadline_ms) {
            cm_chain_errorf(ch, CM_ERR_TIMEOUT,
                            "chain exceeded its timeout of %gs after %.1fs and was killed",
                            ch->timeout_s, (double)(cm_now_us() - ch->start_us) / 1e6);
            return;
        }
        if (ch->registered && atomic_load(&ch->run.cancelled)) {
            cm_chain_errorf(ch, CM_ERR_CANCELLED,
                            "cancelled by the client (notifications/cancelled) after %.1fs",
                            (double)(cm_now_us() - ch->start_us) / 1e6);
            return;
        }
        if (ch->conn && atomic_load(&ch->conn->closed)) {
            cm_chain_errorf(ch, CM_ERR_CANCELLED, "client disconnected; chain cancelled");
            return;
        }
        if (atomic_load(&ch->eng->abort_chains)) {
            cm_chain_errorf(ch, CM_ERR_SHUTDOWN,
                            "the engine is shutting down: chain stopped after the %ds drain "
                            "(engine.drain_timeout_s); retry on another engine",
                            ch->eng->cfg.drain_timeout_s);
            return;
        }
        struct pollfd p[4] = {
            {.fd = ch->ctl_fd, .events = POLLIN | (ch->to_sandbox.len ? POLLOUT : 0)},
            {.fd = ch->sb.pidfd, .events = POLLIN},
            {.fd = ch->wake_fd, .events = POLLIN},
            {.fd = ch->out_fd, .events = POLLIN},
        };
        int64_t wait = ch->deadline_ms - now;
        int n = poll(p, ch->out_fd >= 0 ? 4 : 3, wait < POLL_SLICE_MS ? (int)wait : POLL_SLICE_MS);
        if (n < 0 && errno != EINTR) {
            cm_chain_errorf(ch, CM_ERR_INTERNAL, "poll: %s", strerror(errno));
            return;
        }
        if (n <= 0)
            continue;
        if (p[2].revents & POLLIN)
            cm_chain_collect_calls(ch);
        if (p[3].revents)
            read_diag(ch);
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (read_control(ch) == 0 && !ch->finished) {
                runner_died(ch);
                return;
            }
        }
        if (ch->to_sandbox.len)
            write_control(ch);
        if ((p[1].revents & POLLIN) && !ch->finished) {
            runner_died(ch);
            return;
        }
    }
}

/* ---- set-up and tear-down --------------------------------------------- */

/* The default import allow-list lives in the minimal rootfs; anything wider
 * (imports: all, or a policy list with other modules) needs the full one. */
static const char *chain_rootfs(const chain *ch)
{
    static const char *const minimal[] = {
        "json",   "math",        "asyncio",     "datetime",  "time",      "re",
        "typing", "collections", "itertools",   "functools", "operator",  "uuid",
        "random", "string",      "textwrap",    "decimal",   "fractions", "statistics",
        "base64", "copy",        "dataclasses", "enum",      "heapq",     "bisect"};
    const cJSON *imports = cm_policy_chain_imports(ch->pc);
    bool wide = ch->eng->cfg.imports_all && !imports;
    if (cJSON_IsString(imports))
        wide = true;
    const cJSON *list = cJSON_IsArray(imports) ? imports : NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, list)
    {
        bool known = false;
        for (size_t i = 0; cJSON_IsString(m) && i < sizeof minimal / sizeof *minimal; i++)
            known = known || !strcmp(m->valuestring, minimal[i]);
        wide = wide || !known;
    }
    return wide ? ch->eng->cfg.rootfs_full : ch->eng->cfg.rootfs;
}

/* A warm sandbox of the chain's rootfs flavour with the chain's limits
 * written to its cgroups; 0 and pool_hit unset when the pool had none. */
static int take_warm_sandbox(chain *ch, const char *rootfs, cm_error *err)
{
    const cm_config *cfg = &ch->eng->cfg;
    bool full = rootfs != cfg->rootfs && cfg->rootfs_full && rootfs == cfg->rootfs_full;
    cm_pool_sandbox *s = cm_pool_take(ch->eng->pool, full);
    if (!s)
        return 0;
    ch->sb = s->sb;
    ch->jail = s->jail;
    ch->ctl_fd = s->ctl_fd;
    ch->out_fd = s->out_fd;
    ch->spawned = true;
    ch->pool_hit = true;
    snprintf(ch->primed, sizeof ch->primed, "%s", s->primed);
    int rc = cm_pool_apply_limits(s, &ch->limits, err);
    /* the usage files were opened while it was built: reads only from here */
    ch->usage_open = s->usage_open;
    ch->usage_fds = s->usage;
    free(s);
    double cpu_ms = ch->usage_open ? cm_cgroup_usage_cpu_ms(&ch->usage_fds)
                                   : cm_cgroup_read_cpu_ms(&ch->jail.cg);
    ch->pool_cpu_ms = cpu_ms > 0 ? cpu_ms : 0;
    ch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ch->wake_fd < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "eventfd");
    ch->ready_us = cm_now_us();
    return rc;
}

static int start_sandbox(chain *ch, cm_error *err)
{
    int rc = take_warm_sandbox(ch, chain_rootfs(ch), err);
    if (rc < 0 || ch->pool_hit)
        return rc;
    int sv[2], pipefd[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "socketpair");
    cm_autofd int child_ctl = sv[1];
    ch->ctl_fd = sv[0];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "pipe2");
    cm_autofd int child_out = pipefd[1];
    ch->out_fd = pipefd[0];
    ch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ch->wake_fd < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "eventfd");
    if (cm_set_nonblock(ch->ctl_fd, true, err) < 0 || cm_set_nonblock(ch->out_fd, true, err) < 0)
        return -1;
    cm_sandbox_spec spec = {
        .rootfs = chain_rootfs(ch),
        .host_uid = ch->eng->cfg.sandbox_uid,
        .host_gid = ch->eng->cfg.sandbox_gid,
        .argv = cm_runner_argv,
        .envp = cm_runner_envp,
        .control_fd = child_ctl,
        .output_fd = child_out,
        .tmp_size_bytes = ch->eng->cfg.tmp_size_bytes,
    };
    const char *rootfs = spec.rootfs;
    bool full = rootfs != ch->eng->cfg.rootfs && rootfs == ch->eng->cfg.rootfs_full;
    if (cm_pool_spawn(ch->eng->pool, &ch->eng->iso, full, &ch->limits, ch->ctl_fd, &spec, &ch->sb,
                      &ch->jail, ch->primed, sizeof ch->primed, err) < 0)
        return -1;
    ch->spawned = true;
    return 0;
}

/* The run frame: the code, the imports, and the tool table — by key when
 * the warm sandbox was primed with this caller's table of this registry
 * generation (chain_tools.c), else in full.  Every tool is callable (a
 * denied call raises PolicyDenied naming the rule); only the advertised ones
 * appear in interfaces and search. */
static void send_run(chain *ch, const char *code)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "t", "run");
    cJSON_AddStringToObject(f, "code", code);
    const cJSON *imports = cm_policy_chain_imports(ch->pc);
    if (imports)
        cJSON_AddItemToObject(f, "allowed_imports", cJSON_Duplicate(imports, 1));
    else if (ch->eng->cfg.imports_all)
        cJSON_AddStringToObject(f, "allowed_imports", "all");
    char key[CM_TOOLS_KEY_MAX];
    bool keyed = cm_chain_tools_key(ch->eng, ch->pc, key);
    if (keyed && ch->primed[0] && !strcmp(ch->primed, key)) {
        cJSON_AddStringToObject(f, "tools_key", key);
        cm_chain_queue(ch, f);
    } else {
        cm_autofree char *tools = cm_chain_tools_json(ch->eng, ch->pc, keyed ? key : "");
        size_t n;
        cm_autofree char *frame = cm_chain_tools_frame(f, tools, &n);
        cJSON_Delete(f);
        cm_error err;
        if (cm_buf_append(&ch->to_sandbox, frame, n, &err) < 0)
            cm_chain_errorf(ch, CM_ERR_INTERNAL, "cannot queue the run frame: %s", err.message);
    }
    write_control(ch);
}

static cJSON *build_response(chain *ch, struct rusage *ru)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(
        r, "result", ch->result && !ch->error ? cm_steal_ptr(&ch->result) : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "logs", cm_steal_ptr(&ch->logs));
    cJSON_AddItemToObject(r, "error", ch->error ? cm_steal_ptr(&ch->error) : cJSON_CreateNull());
    cJSON *s = cJSON_AddObjectToObject(r, "stats");
    int64_t end = cm_now_us();
    cJSON_AddNumberToObject(s, "wall_ms", (double)(end - ch->start_us) / 1000.0);
    double cpu = ru ? (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000.0 +
                          (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000.0
                    : 0;
    cJSON_AddNumberToObject(s, "cpu_ms", cpu);
    cJSON_AddNumberToObject(s, "peak_memory_bytes", ru ? (double)ru->ru_maxrss * 1024.0 : 0);
    cJSON_AddNumberToObject(s, "tool_calls", ch->ncalls);
    cJSON_AddNumberToObject(s, "timeout_s", ch->timeout_s);
    if (ch->ready_us)
        cJSON_AddNumberToObject(s, "startup_ms", (double)(ch->ready_us - ch->start_us) / 1000.0);
    cJSON_AddBoolToObject(s, "pool_hit", ch->pool_hit);
    return r;
}

static void chain_close(chain *ch)
{
    cm_autofd int a = ch->ctl_fd, b = ch->out_fd, c = ch->wake_fd;
    if (ch->usage_open)
        cm_cgroup_usage_close(&ch->usage_fds);
    cm_frame_reader_free(&ch->reader);
    cm_buf_free(&ch->to_sandbox);
    cm_buf_free(&ch->diag);
    cm_buf_free(&ch->finished_calls);
    pthread_mutex_destroy(&ch->lock);
    pthread_cond_destroy(&ch->calls_done);
    cJSON_Delete(ch->logs);
    cJSON_Delete(ch->result);
    cJSON_Delete(ch->error);
    cm_budget_end(ch->eng, &ch->budget); /* last: it may give memory back */
}

/* Isolation: the kernel's OOM counter decides memory_limit (the runner was
 * killed, so the chain otherwise looks like a crash), also when the deadline
 * passed first: the kill and the exit of a process holding its whole cap
 * take long on a loaded machine, and memory is what the chain must change
 * (the soak saw a 300 MB `return` answered `timeout`).  A chain stopped at
 * its deadline while at its memory cap (peak = limit: allocating there
 * stalls in reclaim, no swap) ran out of memory too.  Stats come from the
 * cgroup when it has them (they include every process of the sandbox). */
static void apply_cgroup_usage(chain *ch, const cm_cgroup_usage *u)
{
    const char *kind = ch->error ? cm_json_str(ch->error, "kind") : NULL;
    bool timed_out = kind && !strcmp(kind, "timeout");
    bool at_cap = u->peak_memory_bytes >= 0 && ch->limits.memory_bytes > 0 &&
                  u->peak_memory_bytes >= (double)ch->limits.memory_bytes;
    if (u->oom_kills <= 0 && !(timed_out && at_cap))
        return;
    cJSON_Delete(ch->error);
    ch->error = NULL;
    if (u->oom_kills > 0)
        cm_chain_errorf(ch, CM_ERR_MEMORY_LIMIT,
                        "the chain exceeded its memory limit of %llu MiB and was killed%s",
                        (unsigned long long)(ch->limits.memory_bytes >> 20),
                        timed_out ? " (its timeout passed while it was killed)" : "");
    else
        cm_chain_errorf(
            ch, CM_ERR_MEMORY_LIMIT,
            "the chain reached its memory limit of %llu MiB and stalled there until "
            "its timeout of %gs stopped it; use less memory or ask for more (memory_mb)",
            (unsigned long long)(ch->limits.memory_bytes >> 20), ch->timeout_s);
}

static void add_cgroup_stats(cJSON *response, const cm_cgroup_usage *u)
{
    cJSON *s = cJSON_GetObjectItemCaseSensitive(response, "stats");
    if (u->cpu_ms >= 0)
        cJSON_ReplaceItemInObjectCaseSensitive(s, "cpu_ms", cJSON_CreateNumber(u->cpu_ms));
    if (u->peak_memory_bytes >= 0)
        cJSON_ReplaceItemInObjectCaseSensitive(s, "peak_memory_bytes",
                                               cJSON_CreateNumber(u->peak_memory_bytes));
    if (u->throttled_periods >= 0)
        cJSON_AddNumberToObject(s, "cpu_throttled_periods", (double)u->throttled_periods);
}

static cJSON *invalid_chain_request(const char *message);

/* Kill, reap and cgroup removal: on the pool's reaper when the sandbox ran. */
static void dispose_sandbox(chain *ch)
{
    if (ch->spawned)
        cm_pool_dispose(ch->eng->pool, &ch->sb, &ch->jail);
    else
        cm_jail_finish(&ch->jail, NULL);
}

/* The chain's policy session: profile and limits (engine ∩ profile ∩
 * request; requested is the request's `limits` plus its `timeout`). */
static int begin_policy(chain *ch, const cJSON *requested, bool timeout_requested, cm_error *err)
{
    const cm_config *cfg = &ch->eng->cfg;
    cm_limits base = cm_config_limits(cfg);
    /* conn NULL: the engine's own start-up self check, which runs under the
     * engine's limits and no caller profile */
    const struct ucred *peer = ch->conn ? &ch->conn->peer : NULL;
    struct cm_policy_store *store = ch->conn ? ch->eng->policy : NULL;
    if (cm_policy_chain_begin(store, peer, &base, requested, &ch->pc, err) < 0)
        return -1;
    if (cm_policy_chain_profile(ch->pc))
        ch->egress = cm_policy_egress(cm_policy_chain_profile(ch->pc));
    cm_limits *lim = cm_policy_chain_limits(ch->pc);
    if (!timeout_requested && ch->timeout_s < lim->timeout_s)
        lim->timeout_s = ch->timeout_s;
    ch->timeout_s = lim->timeout_s;
    ch->lim = lim;
    /* the sandbox's cgroup limits: engine ∩ profile ∩ request (every field
     * set: the engine's is), with floors a Python runner needs to start */
    ch->limits = *lim;
    cm_limits_apply_floors(&ch->limits);
    return 0;
}

/* reply_id set: the answer goes to conn as soon as it is complete, before the
 * sandbox is handed to the reaper, and NULL is returned. */
static cJSON *chain_run(cm_engine *eng, cm_conn *conn, const char *code, double timeout_s,
                        const cJSON *requested, bool timeout_requested, const cJSON *progress_token,
                        const cJSON *reply_id)
{
    chain ch = {.eng = eng,
                .conn = conn,
                .ctl_fd = -1,
                .out_fd = -1,
                .wake_fd = -1,
                .progress_token = progress_token};
    ch.timeout_s = timeout_s;
    cm_cgroup_usage usage = {.cpu_ms = -1, .peak_memory_bytes = -1, .throttled_periods = -1};
    cm_error err;
    if (begin_policy(&ch, requested, timeout_requested, &err) < 0) {
        cJSON *r = invalid_chain_request(err.message);
        cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
        cJSON_ReplaceItemInObjectCaseSensitive(e, "kind",
                                               cJSON_CreateString(cm_errkind_name(err.kind)));
        atomic_fetch_add(&eng->stats.chains_failed, 1);
        return r;
    }
    pthread_mutex_init(&ch.lock, NULL);
    pthread_cond_init(&ch.calls_done, NULL);
    if (reply_id && conn) {
        cm_conn_running_add(conn, &ch.run, reply_id);
        ch.registered = true;
    }
    /* a done frame holds the result and maybe logs; a call frame its args
     * (a bigger one is read, then refused by the call's budget) */
    ch.reader.max_frame =
        (size_t)ch.lim->max_result_bytes + (size_t)ch.lim->max_output_bytes + 65536;
    if (ch.reader.max_frame < eng->cfg.max_call_bytes + 65536)
        ch.reader.max_frame = eng->cfg.max_call_bytes + 65536;
    ch.reader.drop_oversized = true;
    ch.logs = cJSON_CreateArray();
    ch.next_id = 1;
    ch.registry_gen = cm_registry_generation(eng->registry);
    ch.start_us = cm_now_us();
    ch.deadline_ms = ch.start_us / 1000 + (int64_t)(ch.timeout_s * 1000.0);
    if (start_sandbox(&ch, &err) < 0) {
        cm_chain_set_error(&ch, CM_ERR_SANDBOX_FAILURE, err.message, NULL);
    } else {
        send_run(&ch, code);
        /* while the sandbox runs: the usage files are opened now (a warm
         * sandbox's were opened while it was built), read after */
        if (!ch.usage_open && ch.jail.iso) {
            cm_cgroup_usage_open(&ch.jail.cg, &ch.usage_fds);
            ch.usage_open = true;
        }
        serve(&ch);
    }
    /* stats from the cgroup before the kill; kill, reap and cgroup removal
     * happen on the pool's reaper, after the client has its answer */
    if (ch.usage_open) {
        cm_cgroup_usage_read(&ch.usage_fds, &usage);
        cm_cgroup_usage_close(&ch.usage_fds);
        ch.usage_open = false;
    } else if (ch.jail.iso) {
        cm_cgroup_read_usage(&ch.jail.cg, &usage);
    }
    if (usage.cpu_ms >= ch.pool_cpu_ms)
        usage.cpu_ms -= ch.pool_cpu_ms; /* this chain's CPU, not the warm-up's */
    apply_cgroup_usage(&ch, &usage);
    /* a sandbox that answered `done` is idle (its runner is exiting) and goes
     * to the reaper after the answer; any other one (timeout, crash, ...) now */
    bool dispose_late = reply_id && ch.finished && !ch.error;
    if (!dispose_late)
        dispose_sandbox(&ch);
    cm_chain_join_calls(&ch);
    if (ch.error)
        atomic_fetch_add(&eng->stats.chains_failed, 1);
    else
        atomic_fetch_add(&eng->stats.chains_ok, 1);
    cJSON *response = build_response(&ch, NULL);
    add_cgroup_stats(response, &usage);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(response, "error"), "kind");
    cm_metrics_chain_done(eng->metrics, cJSON_IsString(kind) ? kind->valuestring : "ok",
                          (double)(cm_now_us() - ch.start_us) / 1000.0);
    cm_policy_chain_end(ch.pc, response);
    bool cancelled = ch.registered && atomic_load(&ch.run.cancelled);
    if (ch.registered)
        cm_conn_running_remove(conn, &ch.run);
    if (reply_id && cancelled) { /* a cancelled request gets no answer (MCP) */
        cJSON_Delete(response);
        response = NULL;
    } else if (reply_id) {
        bool failed = !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(response, "error"));
        cm_conn_answer(conn, reply_id, cm_tool_result(response, failed));
        response = NULL;
    }
    if (dispose_late)
        dispose_sandbox(&ch);
    chain_close(&ch);
    return response;
}

cJSON *cm_chain_run(cm_engine *eng, cm_conn *conn, const char *code, double timeout_s)
{
    return chain_run(eng, conn, code, timeout_s, NULL, false, NULL, NULL);
}

cJSON *cm_chain_run_progress(cm_engine *eng, cm_conn *conn, const char *code, double timeout_s,
                             const cJSON *progress_token)
{
    return chain_run(eng, conn, code, timeout_s, NULL, false, progress_token, NULL);
}

static cJSON *invalid_chain_request(const char *message)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNullToObject(r, "result");
    cJSON_AddArrayToObject(r, "logs");
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    cJSON_AddStringToObject(e, "kind", "invalid_request");
    cJSON_AddStringToObject(e, "message", message);
    cJSON *s = cJSON_AddObjectToObject(r, "stats");
    cJSON_AddNumberToObject(s, "wall_ms", 0);
    cJSON_AddNumberToObject(s, "cpu_ms", 0);
    cJSON_AddNumberToObject(s, "peak_memory_bytes", 0);
    cJSON_AddNumberToObject(s, "tool_calls", 0);
    return r;
}

/* Optional per-request limits memory_mb, cpu_quota_pct, pids_max: a request
 * may lower the configured limits, never raise them (values above are
 * clamped to the config's). */
/* The top-level memory_mb / cpu_quota_pct / pids_max arguments are the
 * same request as limits.memory_mb / limits.cpu / limits.pids: copied into
 * the request object (unless it sets them), so one resolution (engine ∩
 * profile ∩ request, never more) applies to both spellings. */
static int request_isolation_limits(const cJSON *args, cJSON *requested, char *msg, size_t cap)
{
    static const char *const keys[] = {"memory_mb", "cpu_quota_pct", "pids_max"};
    static const char *const as[] = {"memory_mb", "cpu", "pids"};
    for (size_t i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, keys[i]);
        if (!v || cJSON_IsNull(v))
            continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e9) {
            snprintf(msg, cap, "call_tool_chain: %s must be a positive number", keys[i]);
            return -1;
        }
        if (i == 0 && v->valuedouble < 16) {
            snprintf(msg, cap, "call_tool_chain: memory_mb must be at least 16");
            return -1;
        }
        if (!cJSON_GetObjectItemCaseSensitive(requested, as[i]))
            cJSON_AddNumberToObject(requested, as[i],
                                    i == 1 ? v->valuedouble / 100.0 : v->valuedouble);
    }
    return 0;
}

cJSON *cm_tool_call_tool_chain(cm_engine *eng, cm_conn *conn, const cJSON *id, const cJSON *params)
{
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
    const char *code = cm_json_str(args, "code");
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(args, "timeout");
    char msg[256];
    if (!code) {
        return cm_tool_result(invalid_chain_request("call_tool_chain: code must be a "
                                                    "string"),
                              true);
    }
    double t = eng->cfg.default_timeout_s;
    if (timeout && !cJSON_IsNull(timeout)) {
        if (!cJSON_IsNumber(timeout) || !(timeout->valuedouble > 0)) {
            return cm_tool_result(invalid_chain_request("call_tool_chain: timeout must be "
                                                        "a positive number of seconds"),
                                  true);
        }
        t = timeout->valuedouble;
    }
    /* above engine.max_timeout_s: clamped (and reported in stats.clamped)
     * with the other limits, by cm_policy_resolve_limits */
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(args, "limits");
    cm_autojson cJSON *requested =
        cJSON_IsObject(limits) ? cJSON_Duplicate(limits, 1) : cJSON_CreateObject();
    if (limits && !cJSON_IsObject(limits) && !cJSON_IsNull(limits)) {
        return cm_tool_result(invalid_chain_request("call_tool_chain: limits must be an "
                                                    "object"),
                              true);
    }
    if (request_isolation_limits(args, requested, msg, sizeof msg) < 0) {
        return cm_tool_result(invalid_chain_request(msg), true);
    }
    bool timeout_requested = timeout && !cJSON_IsNull(timeout);
    if (timeout_requested && !cJSON_GetObjectItemCaseSensitive(requested, "timeout_s"))
        cJSON_AddNumberToObject(requested, "timeout_s", timeout->valuedouble);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
    if (!id) { /* a notification: run it, nobody gets an answer */
        cJSON_Delete(chain_run(eng, conn, code, t, requested, timeout_requested,
                               cJSON_GetObjectItemCaseSensitive(meta, "progressToken"), NULL));
        return NULL;
    }
    /* answered as soon as complete, before the sandbox is torn down */
    return chain_run(eng, conn, code, t, requested, timeout_requested,
                     cJSON_GetObjectItemCaseSensitive(meta, "progressToken"), id);
}
