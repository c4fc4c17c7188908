/* test_cli.c — unit tests for the cli provider (providers/cli.c) through
 * the public dispatcher.  Everything runs real /bin/sh processes: step
 * chaining, injection-safe placeholders with hostile values, the environment
 * allow-list, timeouts and cancellation (no process left), output caps,
 * temp-dir cleanup and fd hygiene. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provider.h"
#include "util.h"
#include "vars.h"

static char tmpdir[] = "/tmp/test_cli.XXXXXX";

static cm_call_ctx base_ctx(void)
{
    return (cm_call_ctx){.manual_name = "my_cli", .base_dir = tmpdir, .max_output_bytes = 1 << 20};
}

/* Runs a cli template (JSON text) with args (JSON text or NULL). */
static int run_ctx(const cm_call_ctx *ctx, const char *tmpl_json, const char *args_json,
                   cJSON **result, cm_error *err)
{
    cm_autojson cJSON *tmpl = cJSON_Parse(tmpl_json);
    cm_autojson cJSON *args = args_json ? cJSON_Parse(args_json) : NULL;
    if (!tmpl)
        fail_msg("bad test template: %s", tmpl_json);
    *result = NULL;
    cm_error_clear(err);
    return cm_provider_call(tmpl, args, ctx, result, err);
}

static int run(const char *tmpl_json, const char *args_json, cJSON **result, cm_error *err)
{
    cm_call_ctx ctx = base_ctx();
    return run_ctx(&ctx, tmpl_json, args_json, result, err);
}

/* Runs and expects success with a string result equal to `want`. */
static void expect_str(const char *tmpl_json, const char *args_json, const char *want)
{
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    if (run(tmpl_json, args_json, &res, &err) != 0)
        fail_msg("call failed: %s", err.message);
    if (!cJSON_IsString(res)) {
        cm_autofree char *s = cm_json_print(res);
        fail_msg("expected string, got %s", s);
    }
    assert_string_equal(res->valuestring, want);
}

static char *marker_path(void)
{
    char *p = NULL;
    if (asprintf(&p, "%s/pwned", tmpdir) < 0)
        abort();
    return p;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static size_t count_cli_tmpdirs(void)
{
    glob_t g;
    size_t n = 0;
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/codemode-cli.*", getenv("TMPDIR"));
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0)
        n = g.gl_pathc;
    globfree(&g);
    return n;
}

/* ---- steps ------------------------------------------------------------ */

static void test_single_command(void **state)
{
    (void)state;
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"echo hello\"}]}", NULL,
               "hello");
}

static void test_cd_carries_over(void **state)
{
    (void)state;
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"cd /tmp\"},"
               "{\"command\":\"pwd\"}]}",
               NULL, "/tmp");
    /* shell variables carry over too */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"X=kept\"},"
               "{\"command\":\"echo \\\"$X\\\"\"}]}",
               NULL, "kept");
}

static void test_cmd_output_chaining(void **state)
{
    (void)state;
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"echo first\"},"
               "{\"command\":\"echo \\\"got $CMD_0_OUTPUT\\\"\"}]}",
               NULL, "got first");
}

static void test_append_to_final_output(void **state)
{
    (void)state;
    /* default: only the last step */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"echo a\"},"
               "{\"command\":\"echo b\"}]}",
               NULL, "b");
    expect_str("{\"call_template_type\":\"cli\",\"commands\":["
               "{\"command\":\"echo a\",\"append_to_final_output\":true},"
               "{\"command\":\"echo b\"}]}",
               NULL, "a\nb");
    expect_str("{\"call_template_type\":\"cli\",\"commands\":["
               "{\"command\":\"echo a\",\"append_to_final_output\":true},"
               "{\"command\":\"echo b\",\"append_to_final_output\":false}]}",
               NULL, "a");
}

static void test_json_output_parsed(void **state)
{
    (void)state;
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    assert_int_equal(run("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
                         "\"printf '{\\\"x\\\": [1, 2]}\\\\n\\\\n'\"}]}",
                         NULL, &res, &err),
                     0);
    cm_autofree char *s = cm_json_print(res);
    assert_string_equal(s, "{\"x\":[1,2]}");
    /* starts with [ but is not JSON: stays a string */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"echo '[oops'\"}]}",
               NULL, "[oops");
}

/* ---- arguments -------------------------------------------------------- */

static void check_hostile_value(const char *value)
{
    cm_autofree char *marker = marker_path();
    /* unquoted, in double quotes, in single quotes */
    const char *commands[] = {
        "printf '%s' UTCP_ARG_v_UTCP_END",
        "printf '%s' \\\"<UTCP_ARG_v_UTCP_END>\\\"",
        "printf '%s' '<UTCP_ARG_v_UTCP_END>'",
    };
    const char *prefixes[] = {"", "<", "<"};
    const char *suffixes[] = {"", ">", ">"};
    for (size_t i = 0; i < 3; i++) {
        cm_autojson cJSON *args = cJSON_CreateObject();
        cJSON_AddStringToObject(args, "v", value);
        cm_autofree char *args_json = cm_json_print(args);
        char tmpl[512];
        snprintf(tmpl, sizeof tmpl,
                 "{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"%s\"}]}",
                 commands[i]);
        char want[2048];
        snprintf(want, sizeof want, "%s%s%s", prefixes[i], value, suffixes[i]);
        cm_autojson cJSON *res = NULL;
        cm_error err = {0};
        if (run(tmpl, args_json, &res, &err) != 0)
            fail_msg("%s with %s: %s", commands[i], value, err.message);
        assert_true(cJSON_IsString(res));
        assert_string_equal(res->valuestring, want);
        assert_false(file_exists(marker));
    }
}

static void test_hostile_arguments(void **state)
{
    (void)state;
    char buf[6][256];
    cm_autofree char *marker = marker_path();
    snprintf(buf[0], sizeof buf[0], "$(touch %s)", marker);
    snprintf(buf[1], sizeof buf[1], "`touch %s`", marker);
    snprintf(buf[2], sizeof buf[2], "'; touch %s; '", marker);
    snprintf(buf[3], sizeof buf[3], "\"; touch %s; \"", marker);
    snprintf(buf[4], sizeof buf[4], "a\ntouch %s\nb", marker);
    snprintf(buf[5], sizeof buf[5], "* ${HOME} $((1+1)) \\ %s", marker);
    for (size_t i = 0; i < 6; i++)
        check_hostile_value(buf[i]);
}

static void test_placeholder_contexts(void **state)
{
    (void)state;
    const char *args = "{\"name\":\"two words\",\"n\":5,\"o\":{\"a\":1}}";
    /* unquoted: one word, no splitting */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
               "\"set -- UTCP_ARG_name_UTCP_END; echo $#\"}]}",
               args, "1");
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
               "\"echo \\\"hi UTCP_ARG_name_UTCP_END!\\\"\"}]}",
               args, "hi two words!");
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
               "\"echo 'n=UTCP_ARG_n_UTCP_END' --x=UTCP_ARG_name_UTCP_END\"}]}",
               args, "n=5 --x=two words");
    /* missing argument: empty */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
               "\"echo \\\"[UTCP_ARG_absent_UTCP_END]\\\" x\"}]}",
               args, "[] x");
    /* escaped quote does not flip the quoting state */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
               "\"echo \\\\' UTCP_ARG_name_UTCP_END\"}]}",
               args, "' two words");
    /* object argument JSON-encoded → JSON result */
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    assert_int_equal(run("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
                         "\"echo UTCP_ARG_o_UTCP_END\"}]}",
                         args, &res, &err),
                     0);
    cm_autofree char *s = cm_json_print(res);
    assert_string_equal(s, "{\"a\":1}");
}

static void test_bad_argument_name(void **state)
{
    (void)state;
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    assert_int_equal(run("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"echo\"}]}",
                         "{\"bad-name\":\"x\"}", &res, &err),
                     -1);
    assert_int_equal(err.kind, CM_ERR_TOOL_ERROR);
    assert_non_null(strstr(err.message, "bad-name"));
}

/* ---- environment ------------------------------------------------------ */

static void test_env_allow_list(void **state)
{
    (void)state;
    setenv("CM_TEST_FOO", "bar", 1);
    const char *cmd = "\"commands\":[{\"command\":\"printenv CM_TEST_FOO || echo unset\"}]";
    char t[512];
    snprintf(t, sizeof t, "{\"call_template_type\":\"cli\",%s}", cmd);
    expect_str(t, NULL, "unset");
    snprintf(t, sizeof t, "{\"call_template_type\":\"cli\",\"inherit_env_vars\":true,%s}", cmd);
    expect_str(t, NULL, "bar");
    snprintf(t, sizeof t,
             "{\"call_template_type\":\"cli\",\"inherit_env_vars\":[\"CM_TEST_FOO\"],%s}", cmd);
    expect_str(t, NULL, "bar");
    /* PATH is on the allow-list */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
               "\"test -n \\\"$(printenv PATH)\\\" && echo has-path\"}]}",
               NULL, "has-path");
}

static void test_env_vars_with_variable(void **state)
{
    (void)state;
    cm_autojson cJSON *variables = cJSON_Parse("{\"my__cli_SECRET\":\"s3cr3t\"}");
    cm_vars *vars = NULL;
    cm_error err = {0};
    assert_int_equal(cm_vars_new(&vars, variables, NULL, tmpdir, &err), 0);
    cm_call_ctx ctx = base_ctx();
    ctx.vars = vars;
    cm_autojson cJSON *res = NULL;
    assert_int_equal(run_ctx(&ctx,
                             "{\"call_template_type\":\"cli\",\"env_vars\":{\"TOK\":\"${SECRET}\"},"
                             "\"commands\":[{\"command\":\"echo one\"},"
                             "{\"command\":\"echo \\\"$(printenv TOK) $CMD_0_OUTPUT\\\"\"}]}",
                             NULL, &res, &err),
                     0);
    assert_string_equal(res->valuestring, "s3cr3t one");
    /* unresolved ${VAR} is an error naming it */
    cJSON_Delete(res);
    res = NULL;
    assert_int_equal(run_ctx(&ctx,
                             "{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
                             "\"echo ${NOT_SET_ANYWHERE_X}\"}]}",
                             NULL, &res, &err),
                     -1);
    assert_non_null(strstr(err.message, "NOT_SET_ANYWHERE_X"));
    cm_vars_free(vars);
}

static void test_working_dir(void **state)
{
    (void)state;
    char sub[512], want[600];
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    mkdir(sub, 0700);
    snprintf(want, sizeof want, "%s/sub", tmpdir);
    expect_str("{\"call_template_type\":\"cli\",\"working_dir\":\"sub\","
               "\"commands\":[{\"command\":\"pwd\"}]}",
               NULL, want);
    expect_str("{\"call_template_type\":\"cli\",\"working_dir\":\"/\","
               "\"commands\":[{\"command\":\"pwd\"}]}",
               NULL, "/");
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    assert_int_equal(run("{\"call_template_type\":\"cli\",\"working_dir\":\"no/such\","
                         "\"commands\":[{\"command\":\"pwd\"}]}",
                         NULL, &res, &err),
                     -1);
    assert_int_equal(err.kind, CM_ERR_TOOL_ERROR);
    assert_non_null(strstr(err.message, "no/such"));
}

/* ---- limits ----------------------------------------------------------- */

static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

/* Live (non-zombie) processes in a process group, from /proc/<pid>/stat.
 * Zombies are ignored: reaping orphans is init's job, and slow here. */
static int live_in_group(pid_t pgid)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *rp = strrchr(buf, ')');
        char st;
        int ppid, pgrp;
        if (rp && sscanf(rp + 1, " %c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid && st != 'Z')
            n++;
    }
    closedir(d);
    return n;
}

static bool group_gone(pid_t pgid)
{
    for (int i = 0; i < 50; i++) {
        if (live_in_group(pgid) == 0)
            return true;
        usleep(10000);
    }
    return false;
}

static void test_timeout_kills_group(void **state)
{
    (void)state;
    char tmpl[1024];
    snprintf(tmpl, sizeof tmpl,
             "{\"call_template_type\":\"cli\",\"timeout\":1,\"commands\":[{\"command\":"
             "\"echo $$ > %s/pid; sleep 30 & sleep 30\"}]}",
             tmpdir);
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    int64_t t0 = cm_now_ms();
    assert_int_equal(run(tmpl, NULL, &res, &err), -1);
    int64_t took = cm_now_ms() - t0;
    assert_int_equal(err.kind, CM_ERR_TIMEOUT);
    assert_non_null(strstr(err.message, "timed out after 1s"));
    assert_true(took >= 900 && took < 2000);
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/pid", tmpdir);
    assert_true(group_gone(read_pid(pidfile)));

    /* the caller's deadline bounds it too */
    cm_call_ctx ctx = base_ctx();
    ctx.deadline_ms = cm_now_ms() + 500;
    t0 = cm_now_ms();
    assert_int_equal(run_ctx(&ctx,
                             "{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
                             "\"sleep 30\"}]}",
                             NULL, &res, &err),
                     -1);
    assert_int_equal(err.kind, CM_ERR_TIMEOUT);
    assert_true(cm_now_ms() - t0 < 1500);
}

static void test_background_job_killed_after_exit(void **state)
{
    (void)state;
    char tmpl[1024];
    snprintf(tmpl, sizeof tmpl,
             "{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
             "\"sleep 30 & echo $$ > %s/bg; echo done\"}]}",
             tmpdir);
    int64_t t0 = cm_now_ms();
    expect_str(tmpl, NULL, "done");
    assert_true(cm_now_ms() - t0 < 2000);
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/bg", tmpdir);
    pid_t bg = read_pid(pidfile);
    bool gone = group_gone(bg); /* bg is the shell: the group id */
    assert_true(gone);
}

static void *set_cancel_later(void *arg)
{
    usleep(300000);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static void test_cancel(void **state)
{
    (void)state;
    atomic_bool cancel = false;
    cm_call_ctx ctx = base_ctx();
    ctx.cancel = &cancel;
    pthread_t th;
    pthread_create(&th, NULL, set_cancel_later, &cancel);
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    int64_t t0 = cm_now_ms();
    assert_int_equal(
        run_ctx(&ctx, "{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"sleep 30\"}]}",
                NULL, &res, &err),
        -1);
    pthread_join(th, NULL);
    assert_int_equal(err.kind, CM_ERR_TIMEOUT);
    assert_true(cm_now_ms() - t0 < 1000);
}

static void test_output_cap(void **state)
{
    (void)state;
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    assert_int_equal(run("{\"call_template_type\":\"cli\",\"max_output_bytes\":1000,"
                         "\"commands\":[{\"command\":\"head -c 5000 /dev/zero | tr '\\\\0' x\"}]}",
                         NULL, &res, &err),
                     -1);
    assert_int_equal(err.kind, CM_ERR_TOOL_ERROR);
    assert_non_null(strstr(err.message, "output exceeded 1000 bytes"));
    /* endless output is stopped quickly */
    cm_call_ctx ctx = base_ctx();
    ctx.max_output_bytes = 4096;
    int64_t t0 = cm_now_ms();
    assert_int_equal(
        run_ctx(&ctx, "{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"yes\"}]}", NULL,
                &res, &err),
        -1);
    assert_non_null(strstr(err.message, "output exceeded 4096 bytes"));
    assert_true(cm_now_ms() - t0 < 2000);
    /* under the cap: fine */
    expect_str("{\"call_template_type\":\"cli\",\"max_output_bytes\":1000,"
               "\"commands\":[{\"command\":\"echo small\"}]}",
               NULL, "small");
}

static void test_nonzero_exit(void **state)
{
    (void)state;
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    assert_int_equal(run("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
                         "\"echo oops >&2; exit 3\"}]}",
                         NULL, &res, &err),
                     -1);
    assert_int_equal(err.kind, CM_ERR_TOOL_ERROR);
    assert_non_null(strstr(err.message, "command exited with status 3: oops"));
    assert_non_null(strstr(err.message, "echo oops"));
    /* an earlier failing step does not fail the call; the last one decides */
    expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"false\"},"
               "{\"command\":\"echo ok\"}]}",
               NULL, "ok");
}

static void test_no_leaks(void **state)
{
    (void)state;
    size_t dirs = count_cli_tmpdirs();
    int fds = count_fds();
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    for (int i = 0; i < 3; i++) {
        expect_str("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"echo x\"}]}", NULL,
                   "x");
        run("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"exit 1\"}]}", NULL, &res,
            &err);
        run("{\"call_template_type\":\"cli\",\"timeout\":0.2,"
            "\"commands\":[{\"command\":\"sleep 5\"}]}",
            NULL, &res, &err);
        assert_int_equal(err.kind, CM_ERR_TIMEOUT);
        run("{\"call_template_type\":\"cli\",\"working_dir\":\"/nonexistent\","
            "\"commands\":[{\"command\":\"true\"}]}",
            NULL, &res, &err);
    }
    assert_int_equal(count_cli_tmpdirs(), dirs);
    assert_int_equal(count_fds(), fds);
}

typedef struct thread_job {
    int index;
    int ok;
} thread_job;

static void *concurrent_call(void *arg)
{
    thread_job *job = arg;
    char args[64], want[64];
    snprintf(args, sizeof args, "{\"i\":\"%d\"}", job->index);
    snprintf(want, sizeof want, "/tmp %d", job->index);
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    int rc = run("{\"call_template_type\":\"cli\",\"commands\":[{\"command\":\"cd /tmp\"},"
                 "{\"command\":\"echo \\\"$(pwd) UTCP_ARG_i_UTCP_END\\\"\"}]}",
                 args, &res, &err);
    job->ok = rc == 0 && cJSON_IsString(res) && strcmp(res->valuestring, want) == 0;
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    (void)state;
    char cwd_before[4096];
    assert_non_null(getcwd(cwd_before, sizeof cwd_before));
    pthread_t th[8];
    thread_job jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (thread_job){.index = i};
        pthread_create(&th[i], NULL, concurrent_call, &jobs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
    }
    char cwd_after[4096];
    assert_non_null(getcwd(cwd_after, sizeof cwd_after));
    assert_string_equal(cwd_before, cwd_after);
}

/* ---- dispatch and discovery ------------------------------------------- */

static void test_dispatch(void **state)
{
    (void)state;
    cm_autojson cJSON *res = NULL;
    cm_error err = {0};
    assert_int_equal(
        run("{\"call_template_type\":\"graphql\",\"url\":\"https://x\"}", NULL, &res, &err), -1);
    assert_string_equal(err.message,
                        "call_template_type 'graphql' is not supported by this engine yet");
    assert_true(cm_provider_supported("cli"));
    assert_true(cm_provider_supported("text"));
    assert_true(cm_provider_supported("file"));
    assert_true(cm_provider_supported("http"));
    assert_true(cm_provider_supported("mcp"));
    assert_false(cm_provider_supported("graphql"));
    assert_false(cm_provider_supported(NULL));
    assert_int_equal(run("{\"call_template_type\":\"cli\",\"commands\":[]}", NULL, &res, &err), -1);
    assert_non_null(strstr(err.message, "commands"));
}

static void test_cli_discovery(void **state)
{
    (void)state;
    cm_autojson cJSON *tmpl = cJSON_Parse(
        "{\"name\":\"m\",\"call_template_type\":\"cli\",\"commands\":[{\"command\":"
        "\"cat <<'EOF'\\nutcp_version: 1.0.0\\ntools:\\n  - name: t\\n    "
        "tool_call_template: {call_template_type: cli, commands: [{command: echo}]}\\nEOF\"}]}");
    assert_non_null(tmpl);
    cm_call_ctx ctx = base_ctx();
    cm_autojson cJSON *manual = NULL;
    cm_error err = {0};
    if (cm_provider_discover(tmpl, &ctx, &manual, &err) != 0)
        fail_msg("discover: %s", err.message);
    const cJSON *tools = cJSON_GetObjectItem(manual, "tools");
    assert_int_equal(cJSON_GetArraySize(tools), 1);
    assert_string_equal(cm_json_str(cJSON_GetArrayItem(tools, 0), "name"), "t");

    cm_autojson cJSON *bad = cJSON_Parse("{\"name\":\"m\",\"call_template_type\":\"cli\","
                                         "\"commands\":[{\"command\":\"exit 2\"}]}");
    cm_autojson cJSON *m2 = NULL;
    assert_int_equal(cm_provider_discover(bad, &ctx, &m2, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "cli manual 'm'"));
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* like the engine */
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    /* a private TMPDIR, so the temp-dir leak check ignores other processes */
    static char tmpdir[] = "/tmp/test_cli.XXXXXX";
    if (!mkdtemp(tmpdir) || setenv("TMPDIR", tmpdir, 1) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_command),
        cmocka_unit_test(test_cd_carries_over),
        cmocka_unit_test(test_cmd_output_chaining),
        cmocka_unit_test(test_append_to_final_output),
        cmocka_unit_test(test_json_output_parsed),
        cmocka_unit_test(test_hostile_arguments),
        cmocka_unit_test(test_placeholder_contexts),
        cmocka_unit_test(test_bad_argument_name),
        cmocka_unit_test(test_env_allow_list),
        cmocka_unit_test(test_env_vars_with_variable),
        cmocka_unit_test(test_working_dir),
        cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_background_job_killed_after_exit),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_nonzero_exit),
        cmocka_unit_test(test_no_leaks),
        cmocka_unit_test(test_concurrent_calls),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_cli_discovery),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    rmdir(tmpdir);
    return failed;
}
