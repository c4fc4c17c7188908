/* test_registry.c — unit tests for the manual/tool registry, access names
 * and the search ranking (engine/registry.c, engine/search.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "util.h"

static cJSON *parse(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    if (!j)
        fail_msg("bad test JSON: %s", s);
    return j;
}

static cm_registry *new_registry(void)
{
    cm_registry *r = NULL;
    cm_error err = {0};
    assert_int_equal(cm_registry_new(&r, &err), 0);
    return r;
}

/* Registers manual `name` (type http) with tools given as a JSON array text. */
static int add_manual(cm_registry *r, const char *name, const char *tools_json, cJSON **report,
                      cm_error *err)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "{\"name\": \"%s\", \"call_template_type\": \"http\"}", name);
    cm_autojson cJSON *ct = parse(tmpl);
    cm_autojson cJSON *manual = cJSON_CreateObject();
    cJSON_AddStringToObject(manual, "utcp_version", "1.0.1");
    cJSON_AddItemToObject(manual, "tools", parse(tools_json));
    return cm_registry_add(r, ct, manual, NULL, report, err);
}

#define HTTP_T "\"tool_call_template\": {\"call_template_type\": \"http\"}"

static const cJSON *find_rename(const cJSON *report, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(report, "renamed"))
    {
        if (!strcmp(cm_json_str(e, "name"), name))
            return e;
    }
    return NULL;
}

static void test_add_and_qualify(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    cm_error err = {0};
    cJSON *report = NULL;
    assert_int_equal(add_manual(r, "github",
                                "[{\"name\": \"list_repos\", " HTTP_T "},"
                                " {\"name\": \"github.get_user\", \"description\": \"d\", " HTTP_T
                                "}]",
                                &report, &err),
                     0);
    assert_string_equal(cm_json_str(report, "manual_name"), "github");
    const cJSON *tools = cJSON_GetObjectItem(report, "tools");
    assert_int_equal(cJSON_GetArraySize(tools), 2);
    assert_string_equal(cJSON_GetArrayItem(tools, 0)->valuestring, "github.list_repos");
    assert_string_equal(cJSON_GetArrayItem(tools, 1)->valuestring, "github.get_user");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(report, "renamed")), 0);
    cJSON_Delete(report);
    assert_true(cm_registry_owner(r, "github", NULL));
    assert_false(cm_registry_owner(r, "gitlab", NULL));

    cJSON *tool = NULL;
    char *manual = NULL;
    assert_int_equal(cm_registry_lookup(r, NULL, "github.list_repos", &tool, &manual, NULL, &err),
                     0);
    assert_string_equal(manual, "github");
    assert_string_equal(cm_json_str(tool, "description"), "");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(tool, "inputs")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(tool, "tags")));
    assert_string_equal(cm_json_str(tool, "access_name"), "github.list_repos");
    cJSON_Delete(tool);
    free(manual);
    cm_registry_free(r);
}

static void test_access_names(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    cm_error err = {0};
    cJSON *report = NULL;
    assert_int_equal(add_manual(r, "m",
                                "[{\"name\": \"get-pr\", " HTTP_T "},"
                                " {\"name\": \"2fa\", " HTTP_T "},"
                                " {\"name\": \"class\", " HTTP_T "},"
                                " {\"name\": \"b-c\", " HTTP_T "},"
                                " {\"name\": \"b_c\", " HTTP_T "},"
                                " {\"name\": \"m.server.tool\", " HTTP_T "}]",
                                &report, &err),
                     0);
    cJSON *names = cm_registry_access_names(r, NULL);
    char *printed = cm_json_print(names);
    assert_string_equal(printed, "[\"m._2fa\",\"m.b_c\",\"m.b_c_2\",\"m.class_\",\"m.get_pr\","
                                 "\"m.server_tool\"]");
    free(printed);
    cJSON_Delete(names);

    const cJSON *e = find_rename(report, "m.b-c");
    assert_non_null(e);
    assert_string_equal(cm_json_str(e, "access"), "m.b_c");
    assert_string_equal(cm_json_str(e, "reason"), "sanitized");
    e = find_rename(report, "m.b_c");
    assert_non_null(e);
    assert_string_equal(cm_json_str(e, "access"), "m.b_c_2");
    assert_string_equal(cm_json_str(e, "reason"), "collision");
    assert_string_equal(cm_json_str(find_rename(report, "m.class"), "reason"), "keyword");
    assert_string_equal(cm_json_str(find_rename(report, "m.2fa"), "reason"), "sanitized");
    assert_null(find_rename(report, "m.server.tool"));
    cJSON_Delete(report);

    /* chain view */
    cJSON *chain = cm_registry_chain_tools(r, NULL);
    assert_int_equal(cJSON_GetArraySize(chain), 6);
    const cJSON *first = cJSON_GetArrayItem(chain, 0);
    assert_string_equal(cm_json_str(first, "name"), "m.get-pr");
    assert_string_equal(cm_json_str(first, "access_tool"), "get_pr");
    assert_string_equal(cm_json_str(first, "access_manual"), "m");
    cJSON_Delete(chain);
    cm_registry_free(r);
}

static void test_access_ident_helpers(void **state)
{
    (void)state;
    const char *why;
    char *s = cm_access_ident("get-pr", &why);
    assert_string_equal(s, "get_pr");
    assert_string_equal(why, "sanitized");
    free(s);
    s = cm_access_ident("None", &why);
    assert_string_equal(s, "None_");
    assert_string_equal(why, "keyword");
    free(s);
    s = cm_access_ident("fine", &why);
    assert_string_equal(s, "fine");
    assert_null(why);
    free(s);
    s = cm_access_ident("", &why);
    assert_string_equal(s, "_");
    free(s);
    s = cm_manual_name_sanitize("my-api.v2");
    assert_string_equal(s, "my_api_v2");
    free(s);
}

static void test_reserved_manual_and_manual_collision(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    cm_error err = {0};
    cJSON *report = NULL;
    assert_int_equal(add_manual(r, "json", "[{\"name\": \"dump\", " HTTP_T "}]", &report, &err), 0);
    const cJSON *e = find_rename(report, "json");
    assert_non_null(e);
    assert_string_equal(cm_json_str(e, "access"), "json_");
    assert_string_equal(cm_json_str(e, "reason"), "reserved");
    cJSON_Delete(report);
    /* a manual literally called json_ now collides with json's access name */
    assert_int_equal(add_manual(r, "json_", "[{\"name\": \"x\", " HTTP_T "}]", &report, &err), 0);
    e = find_rename(report, "json_");
    assert_non_null(e);
    assert_string_equal(cm_json_str(e, "access"), "json__2");
    assert_string_equal(cm_json_str(e, "reason"), "collision");
    cJSON_Delete(report);

    cJSON *tool = NULL;
    char *manual = NULL;
    assert_int_equal(cm_registry_lookup(r, NULL, "json_.dump", &tool, &manual, NULL, &err), 0);
    assert_string_equal(manual, "json");
    assert_string_equal(cm_json_str(tool, "name"), "json.dump");
    cJSON_Delete(tool);
    free(manual);
    assert_int_equal(cm_registry_lookup(r, NULL, "json__2.x", &tool, &manual, NULL, &err), 0);
    assert_string_equal(manual, "json_");
    cJSON_Delete(tool);
    free(manual);
    cm_registry_free(r);
}

static void test_protocol_not_allowed(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    cm_error err = {0};
    assert_int_equal(add_manual(r, "m",
                                "[{\"name\": \"ok\", " HTTP_T "},"
                                " {\"name\": \"bad\", \"tool_call_template\": "
                                "{\"call_template_type\": \"cli\"}}]",
                                NULL, &err),
                     -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "tools[1].tool_call_template.call_template_type"));
    assert_non_null(strstr(err.message, "'cli'"));
    assert_false(cm_registry_owner(r, "m", NULL));
    cJSON *names = cm_registry_access_names(r, NULL);
    assert_int_equal(cJSON_GetArraySize(names), 0);
    cJSON_Delete(names);

    /* allowed_communication_protocols widens the set */
    cm_autojson cJSON *ct = parse("{\"name\": \"w\", \"call_template_type\": \"http\", "
                                  "\"allowed_communication_protocols\": [\"http\", \"cli\"]}");
    cm_autojson cJSON *manual = parse("{\"tools\": [{\"name\": \"c\", \"tool_call_template\": "
                                      "{\"call_template_type\": \"cli\"}}]}");
    assert_int_equal(cm_registry_add(r, ct, manual, NULL, NULL, &err), 0);
    cm_registry_free(r);
}

static void test_validation_paths(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    cm_error err = {0};
    assert_int_equal(add_manual(r, "m",
                                "[{\"name\": \"a\", " HTTP_T "}, {\"name\": \"b\", " HTTP_T "},"
                                " {\"name\": \"c\", " HTTP_T "},"
                                " {\"name\": \"d\", \"tool_call_template\": {}}]",
                                NULL, &err),
                     -1);
    assert_non_null(strstr(err.message, "tools[3].tool_call_template.call_template_type: missing"));
    assert_int_equal(add_manual(r, "m", "[{\"description\": \"x\", " HTTP_T "}]", NULL, &err), -1);
    assert_non_null(strstr(err.message, "tools[0].name: missing"));
    assert_int_equal(
        add_manual(r, "m", "[{\"name\": \"a\", \"tags\": [1], " HTTP_T "}]", NULL, &err), -1);
    assert_non_null(strstr(err.message, "tools[0].tags[0]"));
    assert_int_equal(add_manual(r, "m",
                                "[{\"name\": \"a\", " HTTP_T "}, {\"name\": \"m.a\", " HTTP_T "}]",
                                NULL, &err),
                     -1);
    assert_non_null(strstr(err.message, "duplicate tool name 'm.a'"));
    char long_tools[512];
    snprintf(long_tools, sizeof long_tools, "[{\"name\": \"%0200d\", " HTTP_T "}]", 0);
    assert_int_equal(add_manual(r, "m", long_tools, NULL, &err), -1);
    assert_non_null(strstr(err.message, "longer than 128"));

    cm_autojson cJSON *ct = parse("{\"name\": \"x\", \"call_template_type\": \"http\"}");
    cm_autojson cJSON *no_tools = parse("{\"utcp_version\": \"1.0\"}");
    assert_int_equal(cm_registry_add(r, ct, no_tools, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.message, "tools: missing"));
    assert_false(cm_registry_owner(r, "m", NULL));
    assert_false(cm_registry_owner(r, "x", NULL));
    cm_registry_free(r);
}

static void test_duplicate_and_remove(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    cm_error err = {0};
    assert_int_equal(add_manual(r, "m", "[{\"name\": \"a\", " HTTP_T "}]", NULL, &err), 0);
    assert_int_equal(add_manual(r, "m", "[{\"name\": \"b\", " HTTP_T "}]", NULL, &err), -1);
    assert_int_equal(err.kind, CM_ERR_CONFIG);
    assert_non_null(strstr(err.message, "already registered"));
    cJSON *tool = NULL;
    assert_int_equal(cm_registry_lookup(r, NULL, "m.b", &tool, NULL, NULL, &err), -1);
    assert_int_equal(err.kind, CM_ERR_NOT_FOUND);

    assert_int_equal(cm_registry_remove(r, NULL, "m", &err), 0);
    assert_false(cm_registry_owner(r, "m", NULL));
    assert_int_equal(cm_registry_lookup(r, NULL, "m.a", &tool, NULL, NULL, &err), -1);
    assert_int_equal(cm_registry_remove(r, NULL, "m", &err), -1);
    assert_int_equal(err.kind, CM_ERR_NOT_FOUND);
    /* the name is free again */
    assert_int_equal(add_manual(r, "m", "[{\"name\": \"b\", " HTTP_T "}]", NULL, &err), 0);
    assert_int_equal(cm_registry_lookup(r, NULL, "m.b", &tool, NULL, NULL, &err), 0);
    cJSON_Delete(tool);
    cm_registry_free(r);
}

static void test_lookup_by_both_names(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    cm_error err = {0};
    assert_int_equal(add_manual(r, "github", "[{\"name\": \"get-pr\", " HTTP_T "}]", NULL, &err),
                     0);
    cJSON *a = NULL, *b = NULL;
    assert_int_equal(cm_registry_lookup(r, NULL, "github.get-pr", &a, NULL, NULL, &err), 0);
    assert_int_equal(cm_registry_lookup(r, NULL, "github.get_pr", &b, NULL, NULL, &err), 0);
    assert_true(cJSON_Compare(a, b, 1));
    assert_string_equal(cm_json_str(a, "access_name"), "github.get_pr");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(a, "tool_call_template")));
    cJSON_Delete(a);
    cJSON_Delete(b);
    assert_int_equal(cm_registry_lookup(r, NULL, "github.nope", &a, NULL, NULL, &err), -1);
    assert_int_equal(cm_registry_lookup(r, NULL, "github", &a, NULL, NULL, &err), -1);
    cm_registry_free(r);
}

static cm_registry *search_fixture(void)
{
    cm_registry *r = new_registry();
    cm_error err = {0};
    assert_int_equal(
        add_manual(r, "github",
                   "[{\"name\": \"list_issues\", \"description\": \"List issues in a repository\","
                   " \"tags\": [\"issues\"], " HTTP_T "},"
                   " {\"name\": \"getPullRequest\", \"description\": \"Fetch one pull request "
                   "by number\", \"tags\": [\"pulls\", \"review\"], " HTTP_T "},"
                   " {\"name\": \"create_comment\", \"description\": \"Comment on an issue or "
                   "a request\", " HTTP_T "},"
                   " {\"name\": \"zeta\", \"description\": \"same words alpha\", " HTTP_T "},"
                   " {\"name\": \"alpha\", \"description\": \"same words zeta\", " HTTP_T "}]",
                   NULL, &err),
        0);
    assert_int_equal(add_manual(r, "weather",
                                "[{\"name\": \"forecast\", \"description\": \"Weather forecast "
                                "for a city\", \"tags\": [\"weather\"], " HTTP_T "}]",
                                NULL, &err),
                     0);
    return r;
}

static void test_search_ranking(void **state)
{
    (void)state;
    cm_registry *r = search_fixture();
    cJSON *res = cm_registry_search(r, "Pull requests for review", 10);
    assert_true(cJSON_GetArraySize(res) >= 2);
    const cJSON *top = cJSON_GetArrayItem(res, 0);
    assert_string_equal(cm_json_str(top, "name"), "github.getPullRequest");
    assert_string_equal(cm_json_str(top, "access_name"), "github.getPullRequest");
    assert_true(cJSON_GetObjectItem(top, "score")->valuedouble > 0);
    assert_non_null(cJSON_GetObjectItem(top, "inputs"));
    /* forecast shares no term: not returned */
    const cJSON *e;
    cJSON_ArrayForEach(e, res)
    {
        assert_string_not_equal(cm_json_str(e, "name"), "weather.forecast");
    }
    cJSON_Delete(res);

    res = cm_registry_search(r, "weather in my city", 10);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    assert_string_equal(cm_json_str(cJSON_GetArrayItem(res, 0), "name"), "weather.forecast");
    cJSON_Delete(res);
    cm_registry_free(r);
}

static void test_search_ties_limit_empty(void **state)
{
    (void)state;
    cm_registry *r = search_fixture();
    /* "same words" scores alpha and zeta equally: name ascending breaks the tie */
    cJSON *res = cm_registry_search(r, "same words", 10);
    assert_int_equal(cJSON_GetArraySize(res), 2);
    assert_string_equal(cm_json_str(cJSON_GetArrayItem(res, 0), "name"), "github.alpha");
    assert_string_equal(cm_json_str(cJSON_GetArrayItem(res, 1), "name"), "github.zeta");
    cJSON_Delete(res);

    res = cm_registry_search(r, "", 3);
    assert_int_equal(cJSON_GetArraySize(res), 3);
    assert_string_equal(cm_json_str(cJSON_GetArrayItem(res, 0), "name"), "github.alpha");
    assert_string_equal(cm_json_str(cJSON_GetArrayItem(res, 1), "name"), "github.create_comment");
    cJSON_Delete(res);

    res = cm_registry_search(r, NULL, 0); /* limit <= 0 → 10 */
    assert_int_equal(cJSON_GetArraySize(res), 6);
    cJSON_Delete(res);

    res = cm_registry_search(r, "issue request", 1);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    cJSON_Delete(res);

    /* deterministic: same query, same output */
    cJSON *a = cm_registry_search(r, "comment on issues", 10);
    cJSON *b = cm_registry_search(r, "comment on issues", 10);
    assert_true(cJSON_Compare(a, b, 1));
    assert_string_equal(cm_json_str(cJSON_GetArrayItem(a, 0), "name"), "github.create_comment");
    cJSON_Delete(a);
    cJSON_Delete(b);
    cm_registry_free(r);
}

typedef struct thread_arg {
    cm_registry *r;
    int id;
    int failures;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    cm_error err = {0};
    for (int i = 0; i < 50; i++) {
        char name[32], tool[48];
        snprintf(name, sizeof name, "t%d_%d", a->id, i);
        if (add_manual(a->r, name, "[{\"name\": \"x\", " HTTP_T "}]", NULL, &err) < 0)
            a->failures++;
        snprintf(tool, sizeof tool, "%s.x", name);
        cJSON *def = NULL;
        if (cm_registry_lookup(a->r, NULL, tool, &def, NULL, NULL, &err) < 0)
            a->failures++;
        cJSON_Delete(def);
        cJSON *s = cm_registry_search(a->r, "x", 5);
        cJSON_Delete(s);
        if (i % 2 && cm_registry_remove(a->r, NULL, name, &err) < 0)
            a->failures++;
    }
    return NULL;
}

static void test_thread_safety(void **state)
{
    (void)state;
    cm_registry *r = new_registry();
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){.r = r, .id = i, .failures = 0};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    cJSON *names = cm_registry_access_names(r, NULL);
    assert_int_equal(cJSON_GetArraySize(names), 4 * 25);
    cJSON_Delete(names);
    cm_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_qualify),
        cmocka_unit_test(test_access_names),
        cmocka_unit_test(test_access_ident_helpers),
        cmocka_unit_test(test_reserved_manual_and_manual_collision),
        cmocka_unit_test(test_protocol_not_allowed),
        cmocka_unit_test(test_validation_paths),
        cmocka_unit_test(test_duplicate_and_remove),
        cmocka_unit_test(test_lookup_by_both_names),
        cmocka_unit_test(test_search_ranking),
        cmocka_unit_test(test_search_ties_limit_empty),
        cmocka_unit_test(test_thread_safety),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
