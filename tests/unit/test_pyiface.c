/* test_pyiface.c — unit tests for the compact interfaces (engine/pyiface*.c,
 * issue 20): a class two tools need is written once, outputs stop one level
 * down, signatures and summaries are what search answers with, the index
 * has a line per tool, and `full` still renders everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyiface.h"
#include "util.h"

static cJSON *parse(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    if (!j)
        fail_msg("bad test JSON: %s", s);
    return j;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A user definition both tools' outputs reference, and an identical inline body. */
#define USER_DEFS                                                                                  \
    "\"$defs\":{\"user\":{\"type\":\"object\",\"properties\":{\"login\":{\"type\":\"string\"},"    \
    "\"org\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"}}}}}}"
#define BODY                                                                                       \
    "\"body\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","                 \
    "\"description\":\"The text. More words here.\"}},\"required\":[\"text\"]}"

static const char *const GET_USER =
    "{\"name\":\"m.get_user\",\"description\":\"Get a user by login. Returns 404 if absent.\","
    "\"inputs\":{\"type\":\"object\",\"properties\":{\"login\":{\"type\":\"string\"},"
    "\"mode\":{\"enum\":[\"a\",\"b\"]},\"page\":{\"type\":\"integer\"}," BODY
    "},\"required\":[\"login\"]},"
    "\"outputs\":{\"$ref\":\"#/$defs/user\"," USER_DEFS "}}";
static const char *const LIST_USERS =
    "{\"name\":\"m.list_users\",\"description\":\"List users\","
    "\"inputs\":{\"type\":\"object\",\"properties\":{" BODY "}},"
    "\"outputs\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/user\"}," USER_DEFS "}}";

typedef struct two {
    cm_pyiface_tool_text a, b;
    cJSON *entries;
} two;

static cJSON *entry(const char *tool, const cm_pyiface_tool_text *x)
{
    cJSON *e = cJSON_CreateObject();
    char name[64];
    snprintf(name, sizeof name, "m.%s", tool);
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "access_manual", "m");
    cJSON_AddStringToObject(e, "access_tool", tool);
    cJSON_AddStringToObject(e, "iface_classes", x->classes);
    cJSON_AddStringToObject(e, "iface_method", x->method);
    cJSON_AddStringToObject(e, "iface_signature", x->signature);
    cJSON_AddStringToObject(e, "iface_summary", x->summary);
    return e;
}

static void generate(two *t)
{
    cm_pyiface_manual *m = cm_pyiface_manual_new("m");
    cm_autojson cJSON *a = parse(GET_USER), *b = parse(LIST_USERS);
    cm_pyiface_tool(m, "get_user", a, &t->a);
    cm_pyiface_tool(m, "list_users", b, &t->b);
    cm_pyiface_manual_free(m);
    t->entries = cJSON_CreateArray();
    cJSON_AddItemToArray(t->entries, entry("get_user", &t->a));
    cJSON_AddItemToArray(t->entries, entry("list_users", &t->b));
}

static void release(two *t)
{
    cm_pyiface_tool_text_free(&t->a);
    cm_pyiface_tool_text_free(&t->b);
    cJSON_Delete(t->entries);
}

static void test_shared_classes_once(void **state)
{
    (void)state;
    two t;
    generate(&t);
    /* each tool's own text holds the shared classes (it compiles alone) ... */
    assert_non_null(strstr(t.a.classes, "class m_User(TypedDict, total=False):\n"));
    assert_non_null(strstr(t.b.classes, "class m_User(TypedDict, total=False):\n"));
    /* ... the identical inline body is one class, named after its first tool */
    assert_non_null(strstr(t.b.classes, "class m_GetUserInputBody(TypedDict):"));
    cm_autofree char *all = cm_pyiface_assemble(t.entries, NULL);
    assert_int_equal(count(all, "class m_User("), 1);
    assert_int_equal(count(all, "class m_GetUserInputBody("), 1);
    assert_int_equal(count(all, "# namespace m\n"), 1);
    assert_non_null(strstr(all, "-> List[m_User]:"));
    release(&t);
}

static void test_compact_rules(void **state)
{
    (void)state;
    two t;
    generate(&t);
    /* an output's nested object is a dict; the parameter doc is one sentence */
    assert_non_null(strstr(t.a.classes, "    org: dict\n"));
    assert_non_null(strstr(t.a.classes, "    text: str  # The text.\n"));
    assert_null(strstr(t.a.classes, "More words"));
    /* an enum parameter keeps its Literal, and no doc */
    assert_non_null(strstr(t.a.classes, "    mode: NotRequired[Literal[\"a\", \"b\"]]\n"));
    /* the method says the first sentence only */
    assert_non_null(strstr(t.a.method, "\"Get a user by login.\""));
    assert_null(strstr(t.a.method, "Access:"));
    release(&t);
}

static void test_signature_and_summary(void **state)
{
    (void)state;
    two t;
    generate(&t);
    /* required first, optional ones until two are shown, the enum as its base type */
    assert_string_equal(t.a.signature, "m.get_user(login: str, mode: str = ..., ...) -> User");
    assert_string_equal(t.a.summary, "Get a user by login.");
    /* an inline class named after the tool is `dict`; a summary that only says the
       name again is left out */
    assert_string_equal(t.b.signature, "m.list_users(body: dict = ...) -> list[User]");
    assert_string_equal(t.b.summary, "");
    cm_autofree char *idx = cm_pyiface_index(t.entries);
    assert_non_null(strstr(idx, "# namespace m\n#   m.get_user(login: str, mode: str = ..., ...) "
                                "-> User  # Get a user by login.\n#   m.list_users("));
    release(&t);
}

static void test_full_renders_everything(void **state)
{
    (void)state;
    cm_autojson cJSON *a = parse(GET_USER);
    cm_pyiface_tool_text x = {0};
    cm_pyiface_tool_full("m", "get_user", a, &x);
    assert_non_null(strstr(x.classes, "class m_User(TypedDict):"));
    assert_non_null(strstr(x.classes, "    org: NotRequired[\"m_UserOrg\"]"));
    assert_non_null(strstr(x.classes, "\"The text. More words here.\""));
    assert_non_null(strstr(x.method, "Access: await m.get_user(login=..., mode=..., page=..., "
                                     "body=...)\\nUTCP name: m.get_user"));
    cm_pyiface_tool_text_free(&x);
}

/* An output object with fields f0..f11, links l0_url..l5_url and html_url. */
static cJSON *wide_output(void)
{
    cJSON *def = cJSON_CreateObject();
    cJSON_AddStringToObject(def, "name", "m.get");
    cJSON *out = cJSON_AddObjectToObject(def, "outputs");
    cJSON_AddStringToObject(out, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(out, "properties");
    for (int i = 0; i < 19; i++) {
        char name[32];
        if (i < 12)
            snprintf(name, sizeof name, "f%d", i);
        else if (i < 18)
            snprintf(name, sizeof name, "l%d_url", i - 12);
        else
            snprintf(name, sizeof name, "html_url");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(props, name), "type", "string");
    }
    return def;
}

static void test_link_fields_folded(void **state)
{
    (void)state;
    cm_autojson cJSON *def = wide_output();
    cm_pyiface_manual *m = cm_pyiface_manual_new("m");
    cm_pyiface_tool_text x = {0}, full = {0};
    cm_pyiface_tool(m, "get", def, &x);
    cm_pyiface_manual_free(m);
    assert_non_null(strstr(x.classes, "    html_url: str\n"));
    assert_non_null(strstr(x.classes, "    f11: str\n"));
    assert_null(strstr(x.classes, "l0_url"));
    assert_non_null(strstr(x.classes, "    # +6 *_url fields\n"));
    cm_pyiface_tool_full("m", "get", def, &full);
    assert_non_null(strstr(full.classes, "    l5_url: NotRequired[str]\n"));
    cm_pyiface_tool_text_free(&x);
    cm_pyiface_tool_text_free(&full);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_classes_once),
        cmocka_unit_test(test_compact_rules),
        cmocka_unit_test(test_signature_and_summary),
        cmocka_unit_test(test_full_renders_everything),
        cmocka_unit_test(test_link_fields_folded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
