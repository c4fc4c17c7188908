/* bench_search.c — `make bench`: registers 10,000 tools (100 manuals of 100
 * tools with generated names, tags and descriptions) in a real registry and
 * reports search_tools latency (p50/p99 over many queries).  Target: p50 < 5 ms
 * on the 2-core development machine.  Also times interface assembly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyiface.h"
#include "registry.h"
#include "util.h"

#define MANUALS 100
#define TOOLS_PER_MANUAL 100
#define QUERIES 400

static const char *const VERBS[] = {"get",  "list",  "create", "update", "delete", "search",
                                    "send", "fetch", "sync",   "export", "import", "archive"};
static const char *const NOUNS[] = {
    "pull_request", "issue",   "comment", "user",           "repository", "file",       "message",
    "invoice",      "payment", "order",   "customer",       "ticket",     "deployment", "build",
    "metric",       "alert",   "channel", "calendar_event", "document",   "image"};
static const char *const WORDS[] = {"quickly", "returns",   "paginated", "results", "for",
                                    "the",     "given",     "owner",     "project", "account",
                                    "team",    "workspace", "status",    "history", "details",
                                    "summary", "filter",    "label"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static cJSON *make_manual(int m, unsigned *seed)
{
    cJSON *manual = cJSON_CreateObject();
    cJSON_AddStringToObject(manual, "utcp_version", "1.0.0");
    cJSON *tools = cJSON_AddArrayToObject(manual, "tools");
    for (int i = 0; i < TOOLS_PER_MANUAL; i++) {
        const char *verb = VERBS[rand_r(seed) % (sizeof VERBS / sizeof *VERBS)];
        const char *noun = NOUNS[rand_r(seed) % (sizeof NOUNS / sizeof *NOUNS)];
        char name[128], desc[512];
        snprintf(name, sizeof name, "%s_%s_%d", verb, noun, i);
        int n = snprintf(desc, sizeof desc, "%s a %s in service %d:", verb, noun, m);
        for (int w = 0; w < 12; w++)
            n += snprintf(desc + n, sizeof desc - (size_t)n, " %s",
                          WORDS[rand_r(seed) % (sizeof WORDS / sizeof *WORDS)]);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", name);
        cJSON_AddStringToObject(t, "description", desc);
        cJSON *tags = cJSON_AddArrayToObject(t, "tags");
        cJSON_AddItemToArray(tags, cJSON_CreateString(noun));
        cJSON *in = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"owner\":{\"type\":"
                                "\"string\"},\"limit\":{\"type\":\"integer\"}},\"required\":["
                                "\"owner\"]}");
        cJSON_AddItemToObject(t, "inputs", in);
        cJSON *tmpl = cJSON_AddObjectToObject(t, "tool_call_template");
        cJSON_AddStringToObject(tmpl, "call_template_type", "text");
        cJSON_AddItemToArray(tools, t);
    }
    return manual;
}

int main(void)
{
    cm_registry *r;
    cm_error err;
    if (cm_registry_new(&r, &err) < 0)
        return 1;
    unsigned seed = 42;
    int64_t t0 = cm_now_us();
    for (int m = 0; m < MANUALS; m++) {
        cJSON *tmpl = cJSON_CreateObject();
        char name[32];
        snprintf(name, sizeof name, "svc%d", m);
        cJSON_AddStringToObject(tmpl, "name", name);
        cJSON_AddStringToObject(tmpl, "call_template_type", "text");
        cJSON *manual = make_manual(m, &seed);
        if (cm_registry_add(r, tmpl, manual, NULL, NULL, &err) < 0) {
            fprintf(stderr, "register: %s\n", err.message);
            return 1;
        }
        cJSON_Delete(tmpl);
        cJSON_Delete(manual);
    }
    double reg_ms = (double)(cm_now_us() - t0) / 1000.0;
    static const char *const queries[] = {"pull request",
                                          "list open issues for a repository",
                                          "send a message",
                                          "create invoice payment",
                                          "PR comments",
                                          "delete calendar event",
                                          "export metrics history",
                                          "find customer orders"};
    size_t nq = sizeof queries / sizeof *queries;
    double lat[QUERIES];
    int hits = 0;
    for (int i = 0; i < QUERIES; i++) {
        int64_t s = cm_now_us();
        cJSON *res = cm_registry_search(r, queries[(size_t)i % nq], 10);
        lat[i] = (double)(cm_now_us() - s) / 1000.0;
        hits += cJSON_GetArraySize(res);
        cJSON_Delete(res);
    }
    qsort(lat, QUERIES, sizeof *lat, cmp_double);
    int64_t s = cm_now_us();
    cJSON *tools = cm_registry_chain_tools(r, NULL);
    char *text = cm_pyiface_assemble(tools, NULL);
    double iface_ms = (double)(cm_now_us() - s) / 1000.0;
    printf("search over %d tools, %d queries: p50 %.3f ms, p99 %.3f ms, max %.3f ms "
           "(target p50 < 5 ms) [%d results]\n",
           MANUALS * TOOLS_PER_MANUAL, QUERIES, lat[QUERIES / 2], lat[QUERIES * 99 / 100],
           lat[QUERIES - 1], hits);
    printf("registration of %d tools (index + interfaces): %.1f ms; all interfaces (%zu bytes): "
           "%.1f ms\n",
           MANUALS * TOOLS_PER_MANUAL, reg_ms, strlen(text), iface_ms);
    free(text);
    cJSON_Delete(tools);
    cm_registry_free(r);
    return lat[QUERIES / 2] < 5.0 ? 0 : 1;
}
