/* fuzz_rpc.c — libFuzzer harness: one JSON-RPC line through the engine's
 * line handler (UTF-8 check, cJSON parse, request validation, error
 * answers).  The engine is marked stopping so that every method past
 * validation is answered "shutting down" without needing workers,
 * sandboxes or providers; ping is dispatched for real. */
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"
#include "rpc.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* codemode/health reads the worker pool, which this harness has none of */
    if (memmem(data, size, "health", 6))
        return 0;
    static cm_engine eng;
    static cm_conn conn;
    if (!eng.wake_fd) {
        eng.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        atomic_store(&eng.stopping, true);
        conn.eng = &eng;
        atomic_init(&conn.refs, 1);
        pthread_mutex_init(&conn.lock, NULL);
    }
    cm_rpc_handle_line(&eng, &conn, (const char *)data, size);
    uint64_t v;
    (void)!read(eng.wake_fd, &v, sizeof v);
    cm_buf_free(&conn.out);
    return 0;
}
