/* policy_cli.c — `codemode policy`: check (validate files, line/column
 * errors), explain (which rule decides a call and why), test (YAML test
 * cases → pass/fail, exit 1 on any failure, optional JUnit XML for CI) and
 * bench (cost of one decision).  Runs without an engine: it loads the
 * policy files itself, so CI can gate policy changes. */
#include "policy_cli.h"

#include <dirent.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "yamljson.h"
#include "policy.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  codemode policy check FILE...\n"
               "  codemode policy explain --policy FILE [--profile P] --tool NAME [--args JSON]\n"
               "  codemode policy explain --policy FILE [--profile P] --url URL\n"
               "  codemode policy test [--junit FILE] PATH...   (files or directories of "
               "*.yaml)\n"
               "  codemode policy bench --policy FILE [--profile P] --tool NAME [--args JSON] "
               "[-n N]\n");
}

/* ---- check ----------------------------------------------------------------- */

static int cmd_check(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        cm_policy *p = NULL;
        cm_error err;
        if (cm_policy_load(argv[i], &p, &err) < 0) {
            fprintf(stderr, "%s\n", err.message);
            failed++;
            continue;
        }
        printf("%s: ok\n", argv[i]);
        cm_policy_unref(p);
    }
    return failed ? 1 : 0;
}

/* ---- shared option parsing ------------------------------------------------- */

typedef struct opts {
    const char *policy, *profile, *tool, *args, *url, *junit;
    long n;
} opts;

static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'}, {"profile", required_argument, NULL, 'P'},
        {"tool", required_argument, NULL, 't'},   {"args", required_argument, NULL, 'a'},
        {"url", required_argument, NULL, 'u'},    {"junit", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:P:t:a:u:j:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            o->policy = optarg;
            break;
        case 'P':
            o->profile = optarg;
            break;
        case 't':
            o->tool = optarg;
            break;
        case 'a':
            o->args = optarg;
            break;
        case 'u':
            o->url = optarg;
            break;
        case 'j':
            o->junit = optarg;
            break;
        case 'n':
            o->n = strtol(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* The named profile; without a name "default", else the only profile. */
static const cm_policy_profile *pick_profile(const cm_policy *p, const char *name, cm_error *err)
{
    const cm_policy_profile *prof = cm_policy_find_profile(p, name ? name : "default");
    if (!prof)
        cm_error_set(err, CM_ERR_CONFIG, "%s: no profile '%s'", cm_policy_path(p),
                     name ? name : "default");
    return prof;
}

static int load_for(const opts *o, cm_policy **p, const cm_policy_profile **prof, cJSON **args)
{
    cm_error err;
    if (!o->policy || (!o->tool && !o->url)) {
        usage(stderr);
        return 2;
    }
    if (cm_policy_load(o->policy, p, &err) < 0) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    *prof = pick_profile(*p, o->profile, &err);
    if (!*prof) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    *args = o->args ? cJSON_Parse(o->args) : cJSON_CreateObject();
    if (!cJSON_IsObject(*args)) {
        fprintf(stderr, "--args: must be a JSON object\n");
        return 2;
    }
    return 0;
}

/* ---- explain ----------------------------------------------------------------- */

static int explain_url(const cm_policy_profile *prof, const char *url)
{
    cm_error err;
    if (cm_policy_check_egress(prof, url, &err) < 0) {
        printf("deny: %s\n", err.message);
        return 1;
    }
    printf("allow: %s is allowed by profile '%s' http rules\n", url, cm_profile_name(prof));
    return 0;
}

static int cmd_explain(int argc, char **argv)
{
    opts o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    cm_policy *p = NULL;
    const cm_policy_profile *prof = NULL;
    cm_autojson cJSON *args = NULL;
    rc = load_for(&o, &p, &prof, &args);
    if (rc) {
        cm_policy_unref(p);
        return rc;
    }
    printf("policy %s, profile %s\n", cm_policy_path(p), cm_profile_name(prof));
    if (o.url) {
        rc = explain_url(prof, o.url);
        cm_policy_unref(p);
        return rc;
    }
    cm_autojson cJSON *trace = cJSON_CreateArray();
    cm_decision d;
    cm_policy_decide(p, prof, NULL, o.tool, args, &d, trace);
    const cJSON *line;
    cJSON_ArrayForEach(line, trace) printf("  %s\n", line->valuestring);
    printf("%s by rule '%s': %s\n", d.allow ? "allow" : "deny", d.rule, d.reason);
    cm_policy_unref(p);
    return d.allow ? 0 : 1;
}

/* ---- bench --------------------------------------------------------------------- */

/* One path of the benchmark (allow or deny): how many decisions took it,
 * their time, and the first one's rule and reason. */
typedef struct bench_path {
    long n;
    int64_t ns;
    cm_decision first;
} bench_path;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void bench_report(const char *what, const bench_path *b, int64_t overhead_ns)
{
    if (!b->n) {
        printf("  %-5s %9ld decisions\n", what, 0L);
        return;
    }
    double per = (double)b->ns / (double)b->n - (double)overhead_ns;
    printf("  %-5s %9ld decisions %8.0f ns each  rule '%s': %s\n", what, b->n, per < 0 ? 0 : per,
           b->first.rule, b->first.reason);
}

/* Times each decision and reports the allowed and the denied ones apart: a
 * rule with a rate or budget allows the first calls and denies the rest, and
 * one number for both would time whichever path happened to dominate. */
static int cmd_bench(int argc, char **argv)
{
    opts o = {.n = 1000000};
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    cm_policy *p = NULL;
    const cm_policy_profile *prof = NULL;
    cm_autojson cJSON *args = NULL;
    if (!o.tool || (rc = load_for(&o, &p, &prof, &args)) != 0) {
        cm_policy_unref(p);
        return rc ? rc : 2;
    }
    int64_t overhead = now_ns();
    for (int i = 0; i < 1000; i++)
        (void)now_ns();
    overhead = (now_ns() - overhead) / 1001; /* one clock read, subtracted from each */
    bench_path allow = {0}, deny = {0};
    cm_decision d;
    for (long i = 0; i < o.n; i++) {
        int64_t t0 = now_ns();
        cm_policy_decide(p, prof, NULL, o.tool, args, &d, NULL);
        int64_t t = now_ns() - t0;
        bench_path *b = d.allow ? &allow : &deny;
        if (!b->n++)
            b->first = d;
        b->ns += t;
    }
    printf("%ld decisions of %s for profile '%s', each timed alone:\n", o.n, o.tool,
           o.profile ? o.profile : "default");
    bench_report("allow", &allow, overhead);
    bench_report("deny", &deny, overhead);
    if (allow.n && deny.n)
        printf("  (the rule allowed %ld calls, then its rate or budget ran out: the deny line "
               "times the refusals that followed)\n",
               allow.n);
    cm_policy_unref(p);
    return 0;
}

/* ---- test ------------------------------------------------------------------------ */

typedef struct results {
    int files, cases, failed;
    cm_buf junit;
} results;

static void xml_escaped(cm_buf *b, const char *s)
{
    cm_error err;
    for (; *s; s++) {
        const char *rep = *s == '<'   ? "&lt;"
                          : *s == '>' ? "&gt;"
                          : *s == '&' ? "&amp;"
                          : *s == '"' ? "&quot;"
                                      : NULL;
        if (rep)
            cm_buf_append(b, rep, strlen(rep), &err);
        else
            cm_buf_append(b, s, 1, &err);
    }
}

static void junit_case(results *r, const char *file, const char *name, const char *failure)
{
    cm_error err;
    cm_buf_printf(&r->junit, &err, "    <testcase classname=\"");
    xml_escaped(&r->junit, file);
    cm_buf_printf(&r->junit, &err, "\" name=\"");
    xml_escaped(&r->junit, name);
    if (!failure) {
        cm_buf_printf(&r->junit, &err, "\"/>\n");
        return;
    }
    cm_buf_printf(&r->junit, &err, "\">\n      <failure message=\"");
    xml_escaped(&r->junit, failure);
    cm_buf_printf(&r->junit, &err, "\"/>\n    </testcase>\n");
}

static void record(results *r, const char *file, const char *name, const char *failure)
{
    r->cases++;
    if (failure) {
        r->failed++;
        printf("  FAIL  %s: %s\n", name, failure);
    } else {
        printf("  ok    %s\n", name);
    }
    junit_case(r, file, name, failure);
}

/* A method-level case: `action: reload` (may the profile?) or
 * `register: {call template}` (may it register that template?). */
static const char *decide_action(const cm_policy_profile *prof, const cJSON *c, cm_decision *got)
{
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(c, "register");
    cm_error err;
    if (tmpl) {
        got->allow = cm_policy_check_template(prof, tmpl, &err) == 0;
        snprintf(got->rule, sizeof got->rule, "profiles.%.80s.grants", cm_profile_name(prof));
        snprintf(got->reason, sizeof got->reason, "%.500s", got->allow ? "allowed" : err.message);
        return NULL;
    }
    int a = cm_action_from_name(cm_json_str(c, "action"));
    if (a < 0)
        return "action must be one of register, deregister, manage_all, reload, stats, health, "
               "metrics";
    got->allow = cm_profile_may(prof, (cm_action)a);
    snprintf(got->rule, sizeof got->rule, "profiles.%.80s.grants.%s", cm_profile_name(prof),
             a == CM_ACT_DEREGISTER ? "deregister" : cm_action_name((cm_action)a));
    snprintf(got->reason, sizeof got->reason, "%s", got->allow ? "granted" : "not granted");
    return NULL;
}

/* Decides one case; fills got (allow/deny, rule, reason) or returns why the
 * case itself is malformed. */
static const char *run_case(const char *policy_path, const char *profile_name, const cJSON *c,
                            cm_decision *got, char *buf, size_t size)
{
    cm_policy *p = NULL; /* fresh per case: rate buckets start full */
    cm_error err;
    if (cm_policy_load(policy_path, &p, &err) < 0) {
        snprintf(buf, size, "%s", err.message);
        return buf;
    }
    const char *why = NULL;
    const cm_policy_profile *prof = cm_policy_find_profile(p, profile_name);
    const char *tool = cm_json_str(c, "tool"), *url = cm_json_str(c, "url");
    const char *manual = cm_json_str(c, "manual");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(c, "args");
    const cJSON *repeat = cJSON_GetObjectItemCaseSensitive(c, "repeat");
    long n = cJSON_IsNumber(repeat) ? (long)repeat->valuedouble : 1;
    memset(got, 0, sizeof *got);
    if (!prof) {
        snprintf(buf, size, "no profile '%s' in %s", profile_name, policy_path);
        why = buf;
    } else if (args && !cJSON_IsObject(args)) {
        why = "args must be a mapping";
    } else if (tool) {
        cm_policy_calls calls = {.nrules = cm_profile_rule_count(prof)};
        calls.per_rule = cm_xcalloc(calls.nrules + 1, sizeof(int));
        for (long i = 0; i < (n < 1 ? 1 : n); i++)
            cm_policy_decide(p, prof, &calls, tool, args, got, NULL);
        free(calls.per_rule);
    } else if (url) {
        got->allow = cm_policy_check_egress(prof, url, &err) == 0;
        snprintf(got->rule, sizeof got->rule, "http");
        snprintf(got->reason, sizeof got->reason, "%.500s", got->allow ? "allowed" : err.message);
    } else if (manual) {
        cm_policy_check_variables(p, manual, cm_json_str(c, "owner"),
                                  cJSON_GetObjectItemCaseSensitive(c, "variables"), got);
    } else if (cm_json_str(c, "action") || cJSON_GetObjectItemCaseSensitive(c, "register")) {
        why = decide_action(prof, c, got);
    } else {
        why = "a case needs tool (with args), url, manual (with variables), action, or register "
              "(a call template)";
    }
    cm_policy_unref(p);
    return why;
}

static const char *check_case(const char *policy_path, const char *profile, const cJSON *c,
                              char *buf, size_t size)
{
    const char *expect = cm_json_str(c, "expect");
    if (!expect || (strcmp(expect, "allow") && strcmp(expect, "deny")))
        return "expect must be allow or deny";
    cm_decision got;
    const char *why = run_case(policy_path, profile, c, &got, buf, size);
    if (why)
        return why;
    const char *rule = cm_json_str(c, "rule"), *reason = cm_json_str(c, "reason");
    bool want_allow = !strcmp(expect, "allow");
    if (got.allow != want_allow || (rule && strcmp(rule, got.rule)) ||
        (reason && !strstr(got.reason, reason))) {
        snprintf(buf, size, "expected %s%s%s%s%s, got %s by rule '%s': %s", expect,
                 rule ? " by rule '" : "", rule ? rule : "", rule ? "'" : "",
                 reason ? " (reason mentioning the expected text)" : "",
                 got.allow ? "allow" : "deny", got.rule, got.reason);
        return buf;
    }
    return NULL;
}

static char *sibling_path(const char *file, const char *rel)
{
    if (rel[0] == '/')
        return cm_xstrdup(rel);
    cm_autofree char *copy = cm_xstrdup(file);
    const char *dir = dirname(copy);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *out = cm_xmalloc(n);
    snprintf(out, n, "%s/%s", dir, rel);
    return out;
}

static int run_test_file(const char *file, results *r)
{
    cm_error err;
    cm_autofree char *text = NULL;
    size_t len = 0;
    cm_autojson cJSON *doc = NULL;
    r->files++;
    printf("%s\n", file);
    if (cm_read_file(file, 4u << 20, &text, &len, &err) < 0 ||
        cm_yaml_to_json(text, len, &doc, &err) < 0) {
        record(r, file, "(load test file)", err.message);
        return -1;
    }
    const char *policy = cm_json_str(doc, "policy");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    if (!policy || !cJSON_IsArray(cases)) {
        record(r, file, "(test file)", "needs policy: PATH and cases: [...]");
        return -1;
    }
    cm_autofree char *policy_path = sibling_path(file, policy);
    const char *profile = cm_json_str(doc, "profile") ? cm_json_str(doc, "profile") : "default";
    int i = 0;
    for (const cJSON *c = cases->child; c; c = c->next, i++) {
        char fallback[32], buf[1024];
        snprintf(fallback, sizeof fallback, "case %d", i + 1);
        const char *name = cm_json_str(c, "name") ? cm_json_str(c, "name") : fallback;
        const char *case_profile = cm_json_str(c, "profile") ? cm_json_str(c, "profile") : profile;
        record(r, file, name, check_case(policy_path, case_profile, c, buf, sizeof buf));
    }
    return 0;
}

static bool is_yaml_name(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"));
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_test_dir(const char *dir, results *r)
{
    DIR *d = opendir(dir);
    if (!d) {
        record(r, dir, "(open directory)", "cannot open directory");
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_yaml_name(e->d_name)) {
            names = realloc(names, (n + 1) * sizeof *names);
            if (!names)
                abort();
            size_t len = strlen(dir) + strlen(e->d_name) + 2;
            bool slash = dir[0] && dir[strlen(dir) - 1] == '/';
            names[n] = cm_xmalloc(len);
            snprintf(names[n++], len, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        run_test_file(names[i], r);
        free(names[i]);
    }
    free(names);
}

static int write_junit(const char *path, results *r)
{
    FILE *f = fopen(path, "we");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
            "  <testsuite name=\"codemode policy test\" tests=\"%d\" failures=\"%d\">\n%s"
            "  </testsuite>\n</testsuites>\n",
            r->cases, r->failed, r->junit.data ? r->junit.data : "");
    return fclose(f) == 0 ? 0 : -1;
}

static int cmd_test(int argc, char **argv)
{
    opts o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    results r = {0};
    for (int i = optind; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            run_test_dir(argv[i], &r);
        else
            run_test_file(argv[i], &r);
    }
    printf("%d file%s, %d case%s: %d passed, %d failed\n", r.files, r.files == 1 ? "" : "s",
           r.cases, r.cases == 1 ? "" : "s", r.cases - r.failed, r.failed);
    if (o.junit && write_junit(o.junit, &r) < 0)
        r.failed++;
    cm_buf_free(&r.junit);
    return r.failed || r.cases == 0 ? 1 : 0;
}

int cm_cmd_policy(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "check"))
        return cmd_check(argc - 1, argv + 1);
    if (!strcmp(sub, "explain"))
        return cmd_explain(argc - 1, argv + 1);
    if (!strcmp(sub, "test"))
        return cmd_test(argc - 1, argv + 1);
    if (!strcmp(sub, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "codemode policy: unknown subcommand '%s'\n", sub);
    usage(stderr);
    return 2;
}
