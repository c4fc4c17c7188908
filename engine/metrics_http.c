/* metrics_http.c — the opt-in Prometheus scrape endpoint: GET /metrics on
 * 127.0.0.1:<engine.metrics_port>.  Loopback only, one response per
 * connection, no keep-alive.  It runs on its own thread with socket
 * timeouts, so a slow scraper can never stall the engine's event loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tools.h"

#define REQ_MAX 4096

static void respond(cm_engine *eng, int fd, const char *req)
{
    bool ok = strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET / ", 6) == 0;
    cm_buf body = {0}, out = {0};
    cm_error err;
    int status = ok ? 200 : 404;
    if (ok && cm_engine_metrics_text(eng, &body, &err) < 0)
        status = 500;
    if (!ok)
        cm_buf_append(&body, "not found: try /metrics\n", 24, &err);
    cm_buf_printf(&out, &err,
                  "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  status,
                  status == 200   ? "OK"
                  : status == 404 ? "Not Found"
                                  : "Error",
                  body.len);
    cm_buf_append(&out, body.data ? body.data : "", body.len, &err);
    size_t off = 0;
    while (off < out.len) {
        ssize_t n = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    cm_buf_free(&body);
    cm_buf_free(&out);
}

static void serve_one(cm_engine *eng, int fd)
{
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char req[REQ_MAX + 1];
    size_t len = 0;
    while (len < REQ_MAX) {
        ssize_t n = recv(fd, req + len, REQ_MAX - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[len] = '\0';
    respond(eng, fd, req);
}

static void *metrics_main(void *arg)
{
    cm_engine *eng = arg;
    for (;;) {
        int fd = accept4(eng->metrics_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL; /* listener shut down */
        }
        serve_one(eng, fd);
        close(fd);
    }
}

int cm_metrics_http_start(cm_engine *eng, cm_error *err)
{
    eng->metrics_fd = -1;
    if (eng->cfg.metrics_port <= 0)
        return 0;
    cm_autofd int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "metrics socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)eng->cfg.metrics_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0)
        return cm_error_sys(err, CM_ERR_IO, "cannot listen on 127.0.0.1:%d for metrics",
                            eng->cfg.metrics_port);
    eng->metrics_fd = cm_steal_fd(&fd);
    int rc = pthread_create(&eng->metrics_thread, NULL, metrics_main, eng);
    if (rc != 0) {
        close(eng->metrics_fd);
        eng->metrics_fd = -1;
        errno = rc;
        return cm_error_sys(err, CM_ERR_INTERNAL, "cannot start metrics thread");
    }
    cm_log("info", "metrics on http://127.0.0.1:%d/metrics", eng->cfg.metrics_port);
    return 0;
}

void cm_metrics_http_stop(cm_engine *eng)
{
    if (eng->metrics_fd < 0)
        return;
    shutdown(eng->metrics_fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(eng->metrics_thread, NULL);
    close(eng->metrics_fd);
    eng->metrics_fd = -1;
}
