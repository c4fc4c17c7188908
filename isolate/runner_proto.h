/* runner_proto.h — the engine's end of the runner's start-up: the command
 * line every sandbox runs (and the zygote's), and the wait for the runner's
 * first control frame, `{"t":"ready"}`.  The protocol itself (4-byte
 * big-endian length + JSON, fd 3) is rootfs/README.md "Control protocol";
 * the runner is rootfs/runner.py.
 *
 * Why a file of its own: the pool, the zygote and a chain that builds its
 * sandbox on the request path all start the same runner the same way; this
 * keeps the runner's interface in one place beside its protocol, not inside
 * the pool's bookkeeping. */
#ifndef CM_RUNNER_PROTO_H
#define CM_RUNNER_PROTO_H

#include <stdint.h>

#include "error.h"

/* The runner command every sandbox runs (fd 3 = control socket). */
extern const char *const cm_runner_argv[];
extern const char *const cm_runner_envp[];
/* The zygote's runner command (fd 3 = its SOCK_SEQPACKET to the engine). */
extern const char *const cm_zygote_argv[];

/* Waits (until deadline_ms, CLOCK_MONOTONIC ms) for the runner's first frame
 * on the non-blocking control socket fd; it must be {"t":"ready"} with
 * nothing after it. */
int cm_runner_wait_ready(int fd, int64_t deadline_ms, cm_error *err);

#endif
