/* client.c — `codemode run` and the small socket client behind it. */
#include "client.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

#define MAX_RESPONSE (256u << 20)

char *cm_default_socket_path(void)
{
    const char *env = getenv("CODEMODE_SOCKET");
    if (env && *env)
        return cm_xstrdup(env);
    if (geteuid() == 0)
        return cm_xstrdup("/run/codemode/codemode.sock");
    char buf[512];
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg)
        snprintf(buf, sizeof buf, "%s/codemode.sock", xdg);
    else
        snprintf(buf, sizeof buf, "/tmp/codemode-%u.sock", (unsigned)geteuid());
    return cm_xstrdup(buf);
}

static int connect_socket(const char *path, cm_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return cm_error_set(err, CM_ERR_IO, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        cm_error_sys(err, CM_ERR_IO, "cannot connect to engine at %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int read_line(int fd, int timeout_ms, cm_buf *line, cm_error *err)
{
    int64_t deadline = cm_now_ms() + timeout_ms;
    char chunk[65536];
    for (;;) {
        char *nl = line->len ? memchr(line->data, '\n', line->len) : NULL;
        if (nl) {
            line->len = (size_t)(nl - line->data);
            line->data[line->len] = '\0';
            return 0;
        }
        int64_t left = deadline - cm_now_ms();
        if (left <= 0)
            return cm_error_set(err, CM_ERR_TIMEOUT, "no answer from the engine in %d ms",
                                timeout_ms);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return cm_error_sys(err, CM_ERR_IO, "poll");
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n == 0)
            return cm_error_set(err, CM_ERR_IO, "engine closed the connection");
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return cm_error_sys(err, CM_ERR_IO, "read");
        }
        if (line->len + (size_t)n > MAX_RESPONSE)
            return cm_error_set(err, CM_ERR_IO, "response larger than %u bytes", MAX_RESPONSE);
        if (cm_buf_append(line, chunk, (size_t)n, err) < 0)
            return -1;
    }
}

int cm_client_connect(const char *socket_path, cm_error *err)
{
    return connect_socket(socket_path, err);
}

int cm_client_call(const char *socket_path, const char *method, cJSON *params, int timeout_ms,
                   cJSON **response, cm_error *err)
{
    cm_autojson cJSON *req = cJSON_CreateObject(); /* owns params from here on */
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", 1);
    cJSON_AddStringToObject(req, "method", method);
    if (params)
        cJSON_AddItemToObject(req, "params", params);
    cm_autofd int fd = connect_socket(socket_path, err);
    if (fd < 0)
        return -1;
    cm_autofree char *text = cm_json_print(req);
    if (cm_write_all(fd, text, strlen(text), err) < 0 || cm_write_all(fd, "\n", 1, err) < 0)
        return cm_error_prefix(err, "sending request");
    cm_buf line = {0};
    if (read_line(fd, timeout_ms, &line, err) < 0) {
        cm_buf_free(&line);
        return -1;
    }
    *response = cJSON_Parse(line.data);
    cm_buf_free(&line);
    if (!*response)
        return cm_error_set(err, CM_ERR_IO, "engine sent invalid JSON");
    return 0;
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
