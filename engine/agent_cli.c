/* agent_cli.c — the agent-facing subcommands: `codemode prompt`,
 * `codemode tools interfaces|interface NAME|search QUERY` and the streaming
 * form of `codemode run --follow`.  All talk to a running engine over its
 * socket (client.c), except `prompt`, which needs no engine. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "client.h"
#include "util.h"

#define MAX_LINE (256u << 20)

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
        cm_autojson cJSON *sc = call_tool(socket_path, "search_tools", args, &rc);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(sc, "tools"))
        {
            printf("%-8.4f %s  %s\n", cJSON_GetObjectItemCaseSensitive(t, "score")->valuedouble,
                   cm_json_str(t, "access_name"),
                   cm_json_str(t, "description") ? cm_json_str(t, "description") : "");
        }
    } else {
        cJSON_Delete(args);
        tools_usage(stderr);
        return 2;
    }
    return rc;
}

/* ---- codemode run --follow ------------------------------------------------ */

static int send_line(int fd, cJSON *msg, cm_error *err)
{
    cm_autofree char *text = cm_json_print(msg);
    cJSON_Delete(msg);
    if (cm_write_all(fd, text, strlen(text), err) < 0 || cm_write_all(fd, "\n", 1, err) < 0)
        return -1;
    return 0;
}

static cJSON *request(int id, const char *method)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(r, "id", id);
    cJSON_AddStringToObject(r, "method", method);
    return r;
}

/* Handles one line from the engine: 1 when it was the chain's response
 * (printed; *rc set), 0 otherwise. */
static int follow_line(const char *line, int *rc)
{
    cm_autojson cJSON *msg = cJSON_Parse(line);
    const char *method = cm_json_str(msg, "method");
    if (method && !strcmp(method, "notifications/message")) {
        const char *data = cm_json_str(cJSON_GetObjectItemCaseSensitive(msg, "params"), "data");
        if (data) {
            printf("%s\n", data);
            fflush(stdout);
        }
        return 0;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    if (!cJSON_IsNumber(id) || id->valueint != 2)
        return 0;
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(result, "structuredContent");
    cm_autofree char *text = cJSON_Print(sc ? sc : msg);
    if (!sc) {
        fprintf(stderr, "codemode run: engine error: %s\n", text);
        *rc = 2;
        return 1;
    }
    printf("%s\n", text);
    *rc = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError")) ? 1 : 0;
    return 1;
}

int cm_run_follow(const char *socket_path, const char *code, double timeout)
{
    cm_error err;
    cm_autofd int fd = cm_client_connect(socket_path, &err);
    if (fd < 0) {
        fprintf(stderr, "codemode run: %s\n", err.message);
        return 2;
    }
    cJSON *lvl = request(1, "logging/setLevel");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(lvl, "params"), "level", "info");
    cJSON *call = request(2, "tools/call");
    cJSON *params = cJSON_AddObjectToObject(call, "params");
    cJSON_AddStringToObject(params, "name", "call_tool_chain");
    cJSON *args = cJSON_AddObjectToObject(params, "arguments");
    cJSON_AddStringToObject(args, "code", code);
    cJSON_AddNumberToObject(args, "timeout", timeout);
    if (send_line(fd, lvl, &err) < 0 || send_line(fd, call, &err) < 0) {
        fprintf(stderr, "codemode run: sending request: %s\n", err.message);
        return 2;
    }
    cm_buf in = {0};
    int64_t deadline = cm_now_ms() + (int64_t)(timeout * 1000) + 30000;
    int rc = 2;
    char chunk[65536];
    for (;;) {
        char *nl;
        while (in.len && (nl = memchr(in.data, '\n', in.len))) {
            *nl = '\0';
            size_t used = (size_t)(nl - in.data) + 1;
            int done = follow_line(in.data, &rc);
            cm_buf_consume(&in, used);
            if (done) {
                cm_buf_free(&in);
                return rc;
            }
        }
        int64_t left = deadline - cm_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR)) {
            fprintf(stderr, "codemode run: no answer from the engine\n");
            break;
        }
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0 || in.len + (size_t)n > MAX_LINE) {
            fprintf(stderr, "codemode run: engine closed the connection\n");
            break;
        }
        if (cm_buf_append(&in, chunk, (size_t)n, &err) < 0)
            break;
    }
    cm_buf_free(&in);
    return 2;
}
