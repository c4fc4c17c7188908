/* agent_cli.c — the agent-facing subcommands: `codemode prompt`,
 * `codemode tools interfaces|interface NAME|search QUERY`.  All talk to a
 * running engine over its socket (client.c), except `prompt`, which needs no
 * engine. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "client.h"
#include "util.h"

int cm_cmd_prompt(int argc, char **argv)
{
    static const char usage[] = "usage: codemode prompt\nPrints the agent prompt template.\n";
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc > 1) {
        fputs(usage, stderr);
        return 2;
    }
    fputs(CM_AGENT_PROMPT, stdout);
    return 0;
}

static void tools_usage(FILE *f)
{
    fprintf(f, "usage: codemode tools [--socket PATH] interfaces\n"
               "       codemode tools [--socket PATH] interface NAME\n"
               "       codemode tools [--socket PATH] search [--limit N] QUERY\n"
               "Prints Python interfaces of the engine's tools, or ranks tools for a task.\n");
}

/* Calls one engine tool and returns its structuredContent (or NULL after
 * printing why). */
static cJSON *call_tool(const char *socket_path, const char *tool, cJSON *args, int *rc)
{
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "name", tool);
    cJSON_AddItemToObject(params, "arguments", args);
    cm_autojson cJSON *resp = NULL;
    cm_error err;
    if (cm_client_call(socket_path, "tools/call", params, 60000, &resp, &err) < 0) {
        fprintf(stderr, "codemode tools: %s\n", err.message);
        *rc = 2;
        return NULL;
    }
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(resp, "result");
    cJSON *sc = cJSON_GetObjectItemCaseSensitive(result, "structuredContent");
    if (!sc || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError"))) {
        cm_autofree char *text = cm_json_print(sc ? sc : resp);
        fprintf(stderr, "codemode tools: %s failed: %s\n", tool, text);
        *rc = 1;
        return NULL;
    }
    *rc = 0;
    return cJSON_DetachItemViaPointer((cJSON *)result, sc);
}

int cm_cmd_tools(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cm_autofree char *socket_path = NULL;
    int limit = 10, c, rc = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+s:l:h", opts, NULL)) != -1) {
        if (c == 's') {
            free(socket_path);
            socket_path = cm_xstrdup(optarg);
        } else if (c == 'l') {
            limit = atoi(optarg);
        } else if (c == 'h') {
            tools_usage(stdout);
            return 0;
        } else {
            tools_usage(stderr);
            return 2;
        }
    }
    /* options may also follow the verb */
    const char *verb = optind < argc ? argv[optind++] : NULL;
    while (optind < argc && (c = getopt_long(argc, argv, "+s:l:h", opts, NULL)) != -1) {
        if (c == 's') {
            free(socket_path);
            socket_path = cm_xstrdup(optarg);
        } else if (c == 'l') {
            limit = atoi(optarg);
        } else {
            tools_usage(stderr);
            return 2;
        }
    }
    const char *arg = optind < argc ? argv[optind++] : NULL;
    if (!verb || optind != argc || limit < 1 || limit > 1000) {
        tools_usage(stderr);
        return 2;
    }
    if (!socket_path)
        socket_path = cm_default_socket_path();
    cJSON *args = cJSON_CreateObject();
    if (!strcmp(verb, "interfaces") && !arg) {
        cm_autojson cJSON *sc =
            call_tool(socket_path, "get_all_tools_python_interfaces", args, &rc);
        if (sc)
            fputs(cm_json_str(sc, "interfaces"), stdout);
    } else if (!strcmp(verb, "interface") && arg) {
        cJSON_AddStringToObject(args, "tool_name", arg);
        cm_autojson cJSON *sc = call_tool(socket_path, "get_tool_interface", args, &rc);
        if (sc)
            fputs(cm_json_str(sc, "interface"), stdout);
    } else if (!strcmp(verb, "search") && arg) {
        cJSON_AddStringToObject(args, "task_description", arg);
        cJSON_AddNumberToObject(args, "limit", limit);
        cJSON_AddStringToObject(args, "detail", "full"); /* the score and description */
        cm_autojson cJSON *sc = call_tool(socket_path, "search_tools", args, &rc);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(sc, "tools"))
        {
            printf("%-8.4f %s  %s\n", cJSON_GetObjectItemCaseSensitive(t, "score")->valuedouble,
                   cm_json_str(t, "access_name"),
                   cm_json_str(t, "description") ? cm_json_str(t, "description") : "");
        }
        /* nothing found is said, with exit 1, like grep */
        if (sc && !cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(sc, "tools"))) {
            fprintf(stderr,
                    "codemode tools: no matches for \"%s\" (`codemode tools interfaces` "
                    "shows every tool)\n",
                    arg);
            rc = 1;
        }
    } else {
        cJSON_Delete(args);
        tools_usage(stderr);
        return 2;
    }
    return rc;
}

/* ---- codemode run --follow ------------------------------------------------ */
