/* cmd_run.c — `codemode run`: sends one chain to a running engine and
 * prints the response; with --follow it streams the chain's log lines as the
 * engine sends them, then the response.  A command above the socket client
 * (client.c), which knows nothing of commands. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "util.h"

/* the longest response line --follow reads */
#define MAX_LINE (256u << 20)

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

/* The chain's code: text, so a NUL byte (which would cut it) or invalid
 * UTF-8 is refused here rather than sent. */
static int read_code(const char *file, char **code, cm_error *err)
{
    size_t n = 0;
    const char *path = strcmp(file, "-") == 0 ? "/dev/stdin" : file;
    if (cm_read_file(path, 16u << 20, code, &n, err) < 0)
        return -1;
    if (memchr(*code, '\0', n) || !cm_utf8_valid(*code, n)) {
        free(*code);
        *code = NULL;
        return cm_error_set(err, CM_ERR_INVALID_REQUEST,
                            "%s: code must be UTF-8 text without NUL bytes", file);
    }
    return 0;
}

static void run_usage(FILE *f)
{
    fprintf(f, "usage: codemode run [--socket PATH] [--timeout SECONDS] [--follow] FILE|-\n"
               "Runs one tool chain on the engine and prints its response JSON.\n"
               "--follow prints the chain's log lines as they are produced, then the response.\n"
               "Exit status: 0 chain succeeded, 1 chain failed, 2 usage or connection error.\n");
}

int cm_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"follow", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cm_autofree char *socket_path = NULL;
    double timeout = 30;
    bool follow = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:t:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow = true;
            break;
        case 's':
            free(socket_path);
            socket_path = cm_xstrdup(optarg);
            break;
        case 't': {
            char *end;
            timeout = strtod(optarg, &end);
            if (*end || !(timeout > 0)) {
                fprintf(stderr, "codemode run: --timeout must be a positive number\n");
                return 2;
            }
            break;
        }
        case 'h':
            run_usage(stdout);
            return 0;
        default:
            run_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        run_usage(stderr);
        return 2;
    }
    if (!socket_path)
        socket_path = cm_default_socket_path();
    cm_error err;
    cm_autofree char *code = NULL;
    if (read_code(argv[optind], &code, &err) < 0) {
        fprintf(stderr, "codemode run: %s\n", err.message);
        return 2;
    }
    if (follow)
        return cm_run_follow(socket_path, code, timeout);
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "name", "call_tool_chain");
    cJSON *args = cJSON_AddObjectToObject(params, "arguments");
    cJSON_AddStringToObject(args, "code", code);
    cJSON_AddNumberToObject(args, "timeout", timeout);
    cm_autojson cJSON *resp = NULL;
    if (cm_client_call(socket_path, "tools/call", params, (int)(timeout * 1000) + 30000, &resp,
                       &err) < 0) {
        fprintf(stderr, "codemode run: %s\n", err.message);
        return 2;
    }
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(resp, "result");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(result, "structuredContent");
    if (!sc) {
        cm_autofree char *text = cJSON_Print(resp);
        fprintf(stderr, "codemode run: engine error: %s\n", text);
        return 2;
    }
    cm_autofree char *text = cJSON_Print(sc);
    printf("%s\n", text);
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError")) ? 1 : 0;
}
