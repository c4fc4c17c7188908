/* client.c — the small socket client every `codemode` command that talks to
 * a running engine uses: connect, one request, one answer. */
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
        int e = errno;
        cm_error_sys(err, CM_ERR_IO, "cannot connect to engine at %s", path);
        if (e == ENOENT || e == ECONNREFUSED) {
            size_t n = strlen(err->message);
            snprintf(err->message + n, sizeof err->message - n,
                     "; is `codemode serve` running? (start one with `codemode serve --socket %s "
                     "--config FILE`; --socket PATH or $CODEMODE_SOCKET picks another socket)",
                     path);
        }
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
