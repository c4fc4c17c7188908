/* cli.c — the UTCP `cli` provider: runs a template's commands on the host.
 *
 * Why it exists (and differs from the reference SDKs): all steps run in ONE
 * /bin/sh so `cd` and shell variables carry over; argument values are never
 * spliced into the script (each becomes an environment variable and the
 * `UTCP_ARG_<name>_UTCP_END` placeholder becomes a quoting-aware reference to
 * it); the child gets an allow-listed environment, its own process group,
 * /dev/null as stdin, a capped output pipe and a hard deadline after which
 * the whole group is SIGKILLed.  The engine process never calls chdir or
 * setenv: posix_spawn does the chdir in the child, so this is thread-safe. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pctx.h"
#include "text_file.h"
#include "util.h"

extern char **environ;

#define CLI_CALL_TIMEOUT_S 120.0
#define CLI_DISCOVERY_TIMEOUT_S 60.0
#define CLI_DEFAULT_MAX_OUTPUT ((size_t)1 << 20)
#define CLI_ERROR_OUTPUT_BYTES 500
#define CLI_TICK_MS 100
#define CLI_DRAIN_GRACE_MS 200

/* One parsed, variable-substituted cli template. */
typedef struct cli_step {
    const char *command; /* borrowed from the substituted template */
    bool append;         /* append_to_final_output */
} cli_step;

typedef struct cli_job {
    cJSON *tmpl; /* substituted template, owned */
    cli_step *steps;
    size_t nsteps;
    char *working_dir; /* absolute or NULL (engine cwd) */
    double timeout_s;
    size_t max_output;
} cli_job;

/* What one run of the script produced. */
typedef struct cli_outcome {
    cm_buf out;       /* the script's stdout+stderr (final outputs) */
    int status;       /* waitpid status */
    size_t last_step; /* highest step whose output file exists */
} cli_outcome;

static void cli_job_free(cli_job *job)
{
    cJSON_Delete(job->tmpl);
    free(job->steps);
    free(job->working_dir);
}

static bool is_ident(const char *s, size_t len)
{
    if (len == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* "k=v" of a JSON scalar: strings raw, anything else JSON-encoded. */
static char *json_value_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return cm_xstrdup(v->valuestring);
    return cm_json_print(v);
}

/* ---- template --------------------------------------------------------- */

static int substitute_template(const cJSON *tmpl, const cm_call_ctx *ctx, cJSON **out,
                               cm_error *err)
{
    if (!ctx->vars) {
        *out = cJSON_Duplicate(tmpl, 1);
        return 0;
    }
    return cm_vars_substitute(ctx->vars, ctx->manual_name, tmpl, out, err);
}

static int parse_steps(cli_job *job, cm_error *err)
{
    const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(job->tmpl, "commands");
    if (!cJSON_IsArray(cmds) || cJSON_GetArraySize(cmds) == 0)
        return cm_error_set(err, CM_ERR_CONFIG, "commands: must be a non-empty array");
    job->nsteps = (size_t)cJSON_GetArraySize(cmds);
    job->steps = cm_xcalloc(job->nsteps, sizeof *job->steps);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cmds)
    {
        const char *command = cm_json_str(it, "command");
        if (!command)
            return cm_error_set(err, CM_ERR_CONFIG, "commands[%zu].command: must be a string", i);
        const cJSON *append = cJSON_GetObjectItemCaseSensitive(it, "append_to_final_output");
        if (append && !cJSON_IsNull(append) && !cJSON_IsBool(append))
            return cm_error_set(err, CM_ERR_CONFIG,
                                "commands[%zu].append_to_final_output: must be a boolean", i);
        job->steps[i].command = command;
        job->steps[i].append = cJSON_IsBool(append) ? cJSON_IsTrue(append) : i == job->nsteps - 1;
        i++;
    }
    return 0;
}

static int parse_working_dir(cli_job *job, const cm_call_ctx *ctx, cm_error *err)
{
    const cJSON *wd = cJSON_GetObjectItemCaseSensitive(job->tmpl, "working_dir");
    if (!wd || cJSON_IsNull(wd))
        return 0;
    if (!cJSON_IsString(wd) || !*wd->valuestring)
        return cm_error_set(err, CM_ERR_CONFIG, "working_dir: must be a non-empty string");
    if (wd->valuestring[0] == '/' || !ctx->base_dir || !*ctx->base_dir) {
        job->working_dir = cm_xstrdup(wd->valuestring);
    } else if (asprintf(&job->working_dir, "%s/%s", ctx->base_dir, wd->valuestring) < 0) {
        abort();
    }
    return 0;
}

static int parse_limits(cli_job *job, const cm_call_ctx *ctx, bool discovery, cm_error *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(job->tmpl, "timeout");
    job->timeout_s = discovery ? CLI_DISCOVERY_TIMEOUT_S : CLI_CALL_TIMEOUT_S;
    if (t && !cJSON_IsNull(t)) {
        if (!cJSON_IsNumber(t) || t->valuedouble <= 0)
            return cm_error_set(err, CM_ERR_CONFIG,
                                "timeout: must be a positive number of seconds");
        job->timeout_s = t->valuedouble;
    }
    job->max_output = ctx->max_output_bytes ? ctx->max_output_bytes : CLI_DEFAULT_MAX_OUTPUT;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(job->tmpl, "max_output_bytes");
    if (m && !cJSON_IsNull(m)) {
        if (!cJSON_IsNumber(m) || m->valuedouble < 1)
            return cm_error_set(err, CM_ERR_CONFIG, "max_output_bytes: must be a positive number");
        /* a template may lower the engine's cap, never raise it */
        if (m->valuedouble < (double)job->max_output)
            job->max_output = (size_t)m->valuedouble;
    }
    return 0;
}

static int cli_job_init(cli_job *job, const cJSON *tmpl, const cm_call_ctx *ctx, bool discovery,
                        cm_error *err)
{
    memset(job, 0, sizeof *job);
    if (!cJSON_IsObject(tmpl))
        return cm_error_set(err, CM_ERR_CONFIG, "call template must be an object");
    if (substitute_template(tmpl, ctx, &job->tmpl, err) < 0)
        return -1;
    if (parse_steps(job, err) < 0 || parse_working_dir(job, ctx, err) < 0 ||
        parse_limits(job, ctx, discovery, err) < 0)
        return -1;
    return 0;
}

/* ---- placeholders ----------------------------------------------------- */

enum quote_state { Q_NONE, Q_SINGLE, Q_DOUBLE };

static const char placeholder_prefix[] = "UTCP_ARG_";
static const char placeholder_suffix[] = "_UTCP_END";

/* Appends a reference to $UTCP_ARG_<name> that expands to exactly the value
 * in the current quoting context. */
static int append_arg_reference(cm_buf *out, enum quote_state q, const char *name, size_t len,
                                cm_error *err)
{
    switch (q) {
    case Q_NONE:
        return cm_buf_printf(out, err, "\"${UTCP_ARG_%.*s}\"", (int)len, name);
    case Q_DOUBLE:
        return cm_buf_printf(out, err, "${UTCP_ARG_%.*s}", (int)len, name);
    case Q_SINGLE:
        return cm_buf_printf(out, err, "'\"${UTCP_ARG_%.*s}\"'", (int)len, name);
    }
    return 0;
}

static void remember_name(cJSON *names, const char *name, size_t len)
{
    cm_autofree char *n = strndup(name, len);
    if (!n)
        abort();
    if (!cJSON_HasObjectItem(names, n))
        cJSON_AddTrueToObject(names, n);
}

static bool at_word_start(const char *cmd, size_t i)
{
    return i == 0 || strchr(" \t\n;&|()", cmd[i - 1]) != NULL;
}

/* Length of the placeholder at s (0 if none); name and len receive its name. */
static size_t match_placeholder(const char *s, const char **name, size_t *len)
{
    size_t pl = sizeof placeholder_prefix - 1;
    if (strncmp(s, placeholder_prefix, pl) != 0)
        return 0;
    const char *end = strstr(s + pl, placeholder_suffix);
    if (!end)
        return 0;
    *name = s + pl;
    *len = (size_t)(end - *name);
    return (size_t)(end - s) + sizeof placeholder_suffix - 1;
}

/* Rewrites one command, replacing every placeholder by a reference to its
 * environment variable; names used go into `names` (object used as a set). */
static int rewrite_placeholders(const char *cmd, cm_buf *out, cJSON *names, cm_error *err)
{
    enum quote_state q = Q_NONE;
    for (size_t i = 0; cmd[i];) {
        const char *name;
        size_t len, plen = match_placeholder(cmd + i, &name, &len);
        if (plen) {
            if (!is_ident(name, len))
                return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                    "invalid argument placeholder name '%.*s'", (int)len, name);
            if (append_arg_reference(out, q, name, len, err) < 0)
                return -1;
            remember_name(names, name, len);
            i += plen;
            continue;
        }
        char c = cmd[i];
        size_t n = 1;
        if (q == Q_NONE && c == '#' && at_word_start(cmd, i)) {
            n = strcspn(cmd + i, "\n"); /* comment: copied verbatim */
        } else if (c == '\\' && q != Q_SINGLE && cmd[i + 1]) {
            n = 2;
        } else if (c == '\'' && q != Q_DOUBLE) {
            q = q == Q_SINGLE ? Q_NONE : Q_SINGLE;
        } else if (c == '"' && q != Q_SINGLE) {
            q = q == Q_DOUBLE ? Q_NONE : Q_DOUBLE;
        }
        if (cm_buf_append(out, cmd + i, n, err) < 0)
            return -1;
        i += n;
    }
    return 0;
}

/* ---- script ----------------------------------------------------------- */

/* One sh script for all steps: step i's output goes to <dir>/<i> and is
 * then available as $CMD_<i>_OUTPUT; the appended outputs are printed at
 * the end; the exit status is the last step's. */
static int build_script(const cli_job *job, const char *dir, cJSON *names, cm_buf *script,
                        cm_error *err)
{
    if (cm_buf_printf(script, err, "__cm_d='%s'\n__cm_s=0\n", dir) < 0)
        return -1;
    for (size_t i = 0; i < job->nsteps; i++) {
        if (cm_buf_printf(script, err, "{\n") < 0 ||
            rewrite_placeholders(job->steps[i].command, script, names, err) < 0 ||
            cm_buf_printf(script, err,
                          "\n} >\"$__cm_d/%zu\" 2>&1 </dev/null\n__cm_s=$?\n"
                          "CMD_%zu_OUTPUT=$(cat \"$__cm_d/%zu\")\n",
                          i, i, i) < 0)
            return -1;
    }
    for (size_t i = 0; i < job->nsteps; i++)
        if (job->steps[i].append &&
            cm_buf_printf(script, err, "printf '%%s\\n' \"$CMD_%zu_OUTPUT\"\n", i) < 0)
            return -1;
    return cm_buf_printf(script, err, "exit $__cm_s\n");
}

static int write_script(const char *dir, const cm_buf *script, char **path, cm_error *err)
{
    if (asprintf(path, "%s/script.sh", dir) < 0)
        abort();
    cm_autofd int fd = open(*path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "cannot create %s", *path);
    return cm_write_all(fd, script->data, script->len, err);
}

/* The call's directory belongs to the uid its script runs as (it writes
 * each step's output there); nobody else's. */
static int give_dir(const cm_providers *p, const char *dir, const char *script_path,
                    const cm_provider_ids *ids, cm_error *err)
{
    if (!ids->set || (p && p->spawn_hook))
        return 0; /* none, or the privileged part's exec step does it (--own) */
    /* the script first: once the 0700 directory is the provider's, an
     * engine without CAP_DAC_OVERRIDE (the container) cannot reach into it */
    if (chown(script_path, ids->uid, ids->gid) < 0 || chown(dir, ids->uid, ids->gid) < 0)
        return cm_error_sys(err, CM_ERR_IO, "chown %s to the provider uid", dir);
    return 0;
}

/* ---- environment ------------------------------------------------------ */

static void env_put(cJSON *env, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(env, key);
    cJSON_AddStringToObject(env, key, value);
}

static void env_inherit_name(cJSON *env, const char *name)
{
    const char *v = getenv(name);
    if (v)
        env_put(env, name, v);
}

static void env_inherit_all(cJSON *env)
{
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e || strncmp(*e, placeholder_prefix, sizeof placeholder_prefix - 1) == 0)
            continue;
        cm_autofree char *key = strndup(*e, (size_t)(eq - *e));
        if (!key)
            abort();
        env_put(env, key, eq + 1);
    }
}

static bool valid_env_name(const char *k)
{
    return *k && !strchr(k, '=');
}

static int env_add_inherited(const cm_providers *p, cJSON *env, const cJSON *tmpl, cm_error *err)
{
    cm_providers_base_env(p, env);
    const cJSON *inh = cJSON_GetObjectItemCaseSensitive(tmpl, "inherit_env_vars");
    if (!inh || cJSON_IsNull(inh) || cJSON_IsFalse(inh))
        return 0;
    if (cJSON_IsTrue(inh)) {
        env_inherit_all(env);
        return 0;
    }
    if (!cJSON_IsArray(inh))
        return cm_error_set(err, CM_ERR_CONFIG,
                            "inherit_env_vars: must be a boolean or a list of names");
    const cJSON *it;
    cJSON_ArrayForEach(it, inh)
    {
        if (!cJSON_IsString(it) || !valid_env_name(it->valuestring))
            return cm_error_set(err, CM_ERR_CONFIG, "inherit_env_vars: entries must be names");
        env_inherit_name(env, it->valuestring);
    }
    return 0;
}

static int env_add_template_vars(cJSON *env, const cJSON *tmpl, cm_error *err)
{
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(tmpl, "env_vars");
    if (!vars || cJSON_IsNull(vars))
        return 0;
    if (!cJSON_IsObject(vars))
        return cm_error_set(err, CM_ERR_CONFIG, "env_vars: must be an object");
    const cJSON *it;
    cJSON_ArrayForEach(it, vars)
    {
        if (!valid_env_name(it->string))
            return cm_error_set(err, CM_ERR_CONFIG, "env_vars: invalid name '%s'", it->string);
        if (cJSON_IsObject(it) || cJSON_IsArray(it))
            return cm_error_set(err, CM_ERR_CONFIG, "env_vars.%s: must be a scalar", it->string);
        cm_autofree char *v = json_value_text(it);
        env_put(env, it->string, v);
    }
    return 0;
}

/* UTCP_ARG_<name> for every argument, and "" for placeholders without one. */
static int env_add_args(cJSON *env, const cJSON *args, const cJSON *names, cm_error *err)
{
    const cJSON *it;
    if (args && !cJSON_IsNull(args) && !cJSON_IsObject(args))
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "arguments must be an object");
    cJSON_ArrayForEach(it, names)
    {
        cm_autofree char *key = NULL;
        if (asprintf(&key, "UTCP_ARG_%s", it->string) < 0)
            abort();
        env_put(env, key, "");
    }
    if (!cJSON_IsObject(args))
        return 0;
    cJSON_ArrayForEach(it, args)
    {
        if (!is_ident(it->string, strlen(it->string)))
            return cm_error_set(err, CM_ERR_TOOL_ERROR,
                                "invalid argument name '%s' (must match [A-Za-z_][A-Za-z0-9_]*)",
                                it->string);
        cm_autofree char *key = NULL;
        cm_autofree char *v = json_value_text(it);
        if (asprintf(&key, "UTCP_ARG_%s", it->string) < 0)
            abort();
        env_put(env, key, v);
    }
    return 0;
}

static void envp_free(char **envp)
{
    if (!envp)
        return;
    for (char **e = envp; *e; e++)
        free(*e);
    free(envp);
}

static char **envp_from_object(const cJSON *env)
{
    char **envp = cm_xcalloc((size_t)cJSON_GetArraySize(env) + 1, sizeof *envp);
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, env)
    {
        if (asprintf(&envp[n++], "%s=%s", it->string, it->valuestring) < 0)
            abort();
    }
    return envp;
}

static int build_envp(const cli_job *job, const cm_providers *p, const cJSON *args,
                      const cJSON *names, char ***envp, cm_error *err)
{
    cm_autojson cJSON *env = cJSON_CreateObject();
    if (env_add_inherited(p, env, job->tmpl, err) < 0 ||
        env_add_template_vars(env, job->tmpl, err) < 0 || env_add_args(env, args, names, err) < 0)
        return -1;
    *envp = envp_from_object(env);
    return 0;
}

/* ---- running ---------------------------------------------------------- */

/* The script runs as ids (when set) and may write only dir (jailed). */
static int spawn_shell(const cm_call_ctx *ctx, const char *dir, const cm_provider_ids *ids,
                       const char *script_path, char **envp, const char *cwd, int out_fd,
                       pid_t *pid, cm_error *err)
{
    char *argv[] = {"/bin/sh", (char *)script_path, NULL};
    char *rw[] = {(char *)dir, NULL};
    const cm_provider_spawn req = {.prog = "/bin/sh",
                                   .argv = argv,
                                   .envp = envp,
                                   .cwd = cwd,
                                   .in_fd = -1,
                                   .out_fd = out_fd,
                                   .err_fd = out_fd,
                                   .ids = ids,
                                   .rw = rw,
                                   .own = dir};
    int rc = cm_providers_spawn(ctx->providers, &req, pid);
    if (rc == 0)
        return 0;
    errno = rc;
    if (rc == E2BIG)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "arguments too large for the environment");
    if (cwd && (rc == ENOENT || rc == ENOTDIR || rc == EACCES))
        return cm_error_sys(err, CM_ERR_TOOL_ERROR, "working_dir '%s'", cwd);
    return cm_error_sys(err, CM_ERR_TOOL_ERROR, "cannot start /bin/sh");
}

static void reap(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
}

/* State of one running script, watched by the poll loop. */
typedef struct cli_watch {
    const cm_providers *p; /* signals go through it (cm_providers_signal) */
    pid_t pid;
    int pidfd; /* the shell's pidfd (readable when it exits), -1 if unavailable */
    int fd;    /* read end of the output pipe, -1 at EOF */
    bool exited;
    const char *dir;
    size_t nsteps;
    size_t cap;
    int64_t start_ms, deadline_ms, next_stat_ms;
    const atomic_bool *cancel;
} cli_watch;

/* Kills the whole process group and reaps the shell if still needed. */
static void watch_kill(cli_watch *w, int *status)
{
    cm_providers_signal(w->p, w->pid, SIGKILL);
    if (!w->exited) {
        reap(w->pid, status);
        w->exited = true;
    }
}

/* Appends what the pipe holds; sets fd to -1 at EOF. */
static int watch_read(cli_watch *w, cm_buf *out, cm_error *err)
{
    char chunk[16384];
    ssize_t n = read(w->fd, chunk, sizeof chunk);
    if (n < 0)
        return (errno == EINTR || errno == EAGAIN) ? 0 : cm_error_sys(err, CM_ERR_IO, "read");
    if (n == 0) {
        close(w->fd);
        w->fd = -1;
        return 0;
    }
    if (out->len + (size_t)n > w->cap)
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "output exceeded %zu bytes", w->cap);
    return cm_buf_append(out, chunk, (size_t)n, err);
}

/* Step outputs go to files, so their size is checked every tick too. */
static int watch_step_files(cli_watch *w, cm_error *err)
{
    int64_t now = cm_now_ms();
    if (now < w->next_stat_ms)
        return 0;
    w->next_stat_ms = now + CLI_TICK_MS / 2;
    for (size_t i = 0; i < w->nsteps; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%zu", w->dir, i);
        if (stat(path, &st) == 0 && (size_t)st.st_size > w->cap)
            return cm_error_set(err, CM_ERR_TOOL_ERROR, "output exceeded %zu bytes", w->cap);
    }
    return 0;
}

static int watch_limits(cli_watch *w, int64_t now, cm_error *err)
{
    if (w->cancel && atomic_load(w->cancel))
        return cm_error_set(err, CM_ERR_TIMEOUT, "command cancelled: the caller gave up");
    if (w->deadline_ms && now >= w->deadline_ms)
        return cm_error_set(err, CM_ERR_TIMEOUT, "command timed out after %.3gs",
                            (double)(w->deadline_ms - w->start_ms) / 1000.0);
    return 0;
}

/* Waits for output, the shell's exit (its pidfd: without it, a shell whose
 * output already reached end-of-file would only be noticed at the next
 * tick), the deadline or the tick.  Returns > 0 when the pipe is readable. */
static int watch_wait(cli_watch *w, int64_t now, cm_error *err)
{
    int wait_ms = CLI_TICK_MS;
    if (w->deadline_ms && w->deadline_ms - now < wait_ms)
        wait_ms = (int)(w->deadline_ms - now);
    struct pollfd pfd[2];
    nfds_t n = 0;
    if (w->fd >= 0)
        pfd[n++] = (struct pollfd){.fd = w->fd, .events = POLLIN};
    if (!w->exited && w->pidfd >= 0)
        pfd[n++] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
    int rc = poll(pfd, n, wait_ms < 0 ? 0 : wait_ms);
    if (rc < 0 && errno != EINTR)
        return cm_error_sys(err, CM_ERR_IO, "poll");
    return rc > 0 && w->fd >= 0 && pfd[0].revents ? 1 : 0;
}

/* Poll loop: output, step-file sizes, shell exit, deadline and cancel. */
static int watch_run(cli_watch *w, cm_buf *out, int *status, cm_error *err)
{
    int64_t drain_until = 0;
    for (;;) {
        int64_t now = cm_now_ms();
        if (!w->exited && watch_limits(w, now, err) < 0)
            goto kill;
        int ready = watch_wait(w, now, err);
        if (ready < 0)
            goto kill;
        if (ready > 0 && watch_read(w, out, err) < 0)
            goto kill;
        if (watch_step_files(w, err) < 0)
            goto kill;
        if (!w->exited && waitpid(w->pid, status, WNOHANG) == w->pid) {
            w->exited = true;
            /* leftover background jobs of the group */
            cm_providers_signal(w->p, w->pid, SIGKILL);
            drain_until = cm_now_ms() + CLI_DRAIN_GRACE_MS;
        }
        if (w->exited && (w->fd < 0 || cm_now_ms() >= drain_until))
            return 0;
    }
kill:
    watch_kill(w, status);
    return -1;
}

static int run_script(const cli_job *job, const char *dir, const cm_provider_ids *ids,
                      const char *script_path, char **envp, const cm_call_ctx *ctx,
                      cli_outcome *res, cm_error *err)
{
    cli_watch w = {.p = ctx->providers,
                   .dir = dir,
                   .nsteps = job->nsteps,
                   .cap = job->max_output,
                   .cancel = ctx->cancel,
                   .start_ms = cm_now_ms(),
                   .pidfd = -1,
                   .fd = -1};
    w.deadline_ms = w.start_ms + (int64_t)(job->timeout_s * 1000.0);
    if (ctx->deadline_ms && ctx->deadline_ms < w.deadline_ms)
        w.deadline_ms = ctx->deadline_ms;
    if (w.deadline_ms <= w.start_ms)
        return cm_error_set(err, CM_ERR_TIMEOUT, "command timed out after 0s (deadline passed)");
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return cm_error_sys(err, CM_ERR_IO, "pipe2");
    cm_autofd int wr = pfd[1];
    w.fd = pfd[0];
    if (spawn_shell(ctx, dir, ids, script_path, envp, job->working_dir, wr, &w.pid, err) < 0) {
        close(w.fd);
        return -1;
    }
    close(cm_steal_fd(&wr));
    w.pidfd = (int)syscall(SYS_pidfd_open, w.pid, 0); /* close-on-exec; -1: tick only */
    int rc = watch_run(&w, &res->out, &res->status, err);
    if (w.fd >= 0)
        close(w.fd);
    if (w.pidfd >= 0)
        close(w.pidfd);
    return rc;
}

/* ---- results ---------------------------------------------------------- */

/* Copy of s with invalid UTF-8 bytes replaced by U+FFFD. */
static char *utf8_sanitize(const char *s, size_t len)
{
    if (cm_utf8_valid(s, len))
        return strndup(s, len);
    cm_buf b = {0};
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (i + n <= len && cm_utf8_valid(s + i, n)) {
            cm_buf_append(&b, s + i, n, NULL);
            i += n;
        } else {
            cm_buf_append(&b, "\xEF\xBF\xBD", 3, NULL);
            i++;
        }
    }
    return b.data ? b.data : cm_xstrdup("");
}

static cJSON *output_to_json(const char *data, size_t len)
{
    while (len > 0 && strchr(" \t\r\n\f\v", data[len - 1]))
        len--;
    size_t lead = 0;
    while (lead < len && strchr(" \t\r\n\f\v", data[lead]))
        lead++;
    cm_autofree char *text = utf8_sanitize(data, len);
    if (!text)
        abort();
    if (lead < len && (data[lead] == '{' || data[lead] == '[')) {
        cJSON *j = cJSON_ParseWithOpts(text, NULL, 1);
        if (j)
            return j;
    }
    return cJSON_CreateString(text);
}

/* First bytes of the most recent step's output (for error messages). */
static char *step_output_excerpt(const char *dir, size_t nsteps, const cm_buf *fallback)
{
    for (size_t i = nsteps; i-- > 0;) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%zu", dir, i);
        cm_autofd int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        char buf[CLI_ERROR_OUTPUT_BYTES];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0)
            return utf8_sanitize(buf, (size_t)n);
        if (n == 0)
            break;
    }
    size_t n = fallback->len < CLI_ERROR_OUTPUT_BYTES ? fallback->len : CLI_ERROR_OUTPUT_BYTES;
    return utf8_sanitize(fallback->data ? fallback->data : "", n);
}

static int status_error(int status, const char *excerpt, cm_error *err)
{
    if (WIFSIGNALED(status))
        return cm_error_set(err, CM_ERR_TOOL_ERROR, "command killed by signal %d: %s",
                            WTERMSIG(status), excerpt);
    return cm_error_set(err, CM_ERR_TOOL_ERROR, "command exited with status %d: %s",
                        WEXITSTATUS(status), excerpt);
}

/* ---- one execution ---------------------------------------------------- */

/* Runs the job in a fresh temp dir (always removed); *output gets the
 * final output text on success (exit status 0). */
static int execute(const cli_job *job, const cJSON *args, const cm_call_ctx *ctx, cm_buf *output,
                   cm_error *err)
{
    /* the engine's own temp dir (removed with the engine, or by its
     * successor); else $TMPDIR when set (PrivateTmp, tests), else /tmp */
    const char *tmp = ctx->providers ? ctx->providers->work_dir : NULL;
    if (!tmp)
        tmp = getenv("TMPDIR");
    if (!tmp || tmp[0] != '/' || strlen(tmp) > 200)
        tmp = "/tmp";
    char dir[256];
    snprintf(dir, sizeof dir, "%s/codemode-cli.XXXXXX", tmp);
    cm_autojson cJSON *names = cJSON_CreateObject();
    cm_buf script = {0};
    char **envp = NULL;
    cm_autofree char *script_path = NULL;
    cli_outcome res = {0};
    cm_provider_ids ids;
    int rc = -1;
    if (cm_providers_take_ids(ctx->providers, &ids, err) < 0)
        return -1;
    if (!mkdtemp(dir)) {
        cm_providers_release_ids(ctx->providers, &ids, NULL);
        return cm_error_sys(err, CM_ERR_IO, "mkdtemp");
    }
    if (build_script(job, dir, names, &script, err) < 0 ||
        build_envp(job, ctx->providers, args, names, &envp, err) < 0 ||
        write_script(dir, &script, &script_path, err) < 0 ||
        give_dir(ctx->providers, dir, script_path, &ids, err) < 0 ||
        run_script(job, dir, &ids, script_path, envp, ctx, &res, err) < 0)
        goto out;
    if (!WIFEXITED(res.status) || WEXITSTATUS(res.status) != 0) {
        cm_autofree char *excerpt = step_output_excerpt(dir, job->nsteps, &res.out);
        status_error(res.status, excerpt, err);
        goto out;
    }
    *output = res.out;
    res.out = (cm_buf){0};
    rc = 0;
out:
    /* kills what it left running; the privileged part also removes the
     * directory it gave the uid (an unprivileged engine cannot) */
    cm_providers_release_ids(ctx->providers, &ids, dir);
    cm_remove_tree(dir);
    cm_buf_free(&res.out);
    cm_buf_free(&script);
    envp_free(envp);
    return rc;
}

/* Names the command (as written, before substitution: no secrets) in errors. */
static int prefix_with_command(const cJSON *tmpl, cm_error *err)
{
    const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(tmpl, "commands");
    const char *first = cm_json_str(cJSON_GetArrayItem(cmds, 0), "command");
    if (!first)
        return cm_error_prefix(err, "cli");
    int n = (int)strcspn(first, "\n");
    if (n > 80)
        return cm_error_prefix(err, "cli command '%.80s...'", first);
    return cm_error_prefix(err, "cli command '%.*s'", n, first);
}

int cm_cli_call(const cJSON *tmpl, const cJSON *args, const cm_call_ctx *ctx, cJSON **result,
                cm_error *err)
{
    cli_job job;
    cm_buf output = {0};
    int rc = cli_job_init(&job, tmpl, ctx, false, err);
    if (rc == 0)
        rc = execute(&job, args, ctx, &output, err);
    cli_job_free(&job);
    if (rc < 0) {
        if (err && err->kind == CM_ERR_CONFIG)
            err->kind = CM_ERR_TOOL_ERROR;
        return prefix_with_command(tmpl, err);
    }
    *result = output_to_json(output.data ? output.data : "", output.len);
    cm_buf_free(&output);
    return 0;
}

int cm_cli_discover(const cJSON *manual_tmpl, const cm_call_ctx *ctx, cJSON **manual, cm_error *err)
{
    cli_job job;
    cm_buf output = {0};
    int rc = cli_job_init(&job, manual_tmpl, ctx, true, err);
    if (rc == 0)
        rc = execute(&job, NULL, ctx, &output, err);
    cli_job_free(&job);
    if (rc == 0) {
        rc = cm_parse_manual_text(output.data ? output.data : "", output.len, "command output", ctx,
                                  manual, err);
    }
    cm_buf_free(&output);
    if (rc < 0) {
        if (err)
            err->kind = CM_ERR_CONFIG;
        const char *name = cm_json_str(manual_tmpl, "name");
        prefix_with_command(manual_tmpl, err);
        return cm_error_prefix(err, "cli manual '%s'", name ? name : "?");
    }
    return 0;
}
