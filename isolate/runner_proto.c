/* runner_proto.c — the runner's command lines and the wait for its ready
 * frame (see runner_proto.h; protocol in rootfs/README.md).  Why here and
 * not in pool.c: the runner's interface lives in one place beside its
 * protocol, whoever starts the sandbox. */
#include "runner_proto.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "util.h"

const char *const cm_runner_argv[] = {
    "/usr/bin/python3.11", "-I", "-S", "-B", "-c", "import _codemode_runner as r; r.main(3)", NULL};
const char *const cm_runner_envp[] = {"LANG=C.UTF-8", NULL};

const char *const cm_zygote_argv[] = {"/usr/bin/python3.11",
                                      "-I",
                                      "-S",
                                      "-B",
                                      "-c",
                                      "import _codemode_runner as r; r.zygote_main(3)",
                                      NULL};

int cm_runner_wait_ready(int fd, int64_t deadline_ms, cm_error *err)
{
    cm_frame_reader r = {.max_frame = 4096};
    int rc = -1;
    for (;;) {
        int64_t left = deadline_ms - cm_now_ms();
        if (left <= 0) {
            cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "the runner did not report ready in time");
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
            cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "poll");
            break;
        }
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "the runner exited before ready");
            break;
        }
        if (cm_frame_feed(&r, buf, (size_t)n, err) < 0)
            break;
        cJSON *msg = NULL;
        int got = cm_frame_next(&r, &msg, err);
        if (got < 0)
            break;
        if (got == 0)
            continue;
        const char *t = cm_json_str(msg, "t");
        rc = t && !strcmp(t, "ready") ? 0
                                      : cm_error_set(err, CM_ERR_SANDBOX_FAILURE,
                                                     "the runner's first frame was not ready");
        cJSON_Delete(msg);
        if (rc == 0 && r.buf.len)
            rc = cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "unexpected bytes after ready");
        break;
    }
    cm_frame_reader_free(&r);
    return rc;
}
