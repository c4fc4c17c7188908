/* test_frame.c — unit tests for the control-frame reader (engine/frame.c):
 * frames split across reads, the size bound, and the drop mode that lets a
 * chain refuse an oversized tool call without buffering it (issue 14). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* A frame header plus payload, in a new buffer of *len bytes. */
static char *framed(const char *payload, size_t n, size_t *len)
{
    char *b = malloc(4 + n);
    b[0] = (char)(n >> 24);
    b[1] = (char)(n >> 16);
    b[2] = (char)(n >> 8);
    b[3] = (char)n;
    memcpy(b + 4, payload, n);
    *len = 4 + n;
    return b;
}

static void test_split_frame(void **state)
{
    (void)state;
    cm_frame_reader r = {.max_frame = 1024};
    cm_error err;
    size_t len;
    char *b = framed("{\"t\":\"ready\"}", 13, &len);
    cJSON *msg;
    assert_int_equal(cm_frame_feed(&r, b, 3, &err), 0);
    assert_int_equal(cm_frame_next(&r, &msg, &err), 0);
    assert_int_equal(cm_frame_feed(&r, b + 3, len - 3, &err), 0);
    assert_int_equal(cm_frame_next(&r, &msg, &err), 1);
    assert_string_equal(cJSON_GetObjectItem(msg, "t")->valuestring, "ready");
    assert_int_equal(r.last_len, 13);
    cJSON_Delete(msg);
    free(b);
    cm_frame_reader_free(&r);
}

static void test_oversized_fails_without_drop(void **state)
{
    (void)state;
    cm_frame_reader r = {.max_frame = 16};
    cm_error err;
    size_t len;
    char *b = framed("{\"t\":\"log\",\"line\":\"0123456789\"}", 31, &len);
    cJSON *msg;
    assert_int_equal(cm_frame_feed(&r, b, len, &err), 0);
    assert_int_equal(cm_frame_next(&r, &msg, &err), -1);
    assert_non_null(strstr(err.message, "exceeds the limit of 16 bytes"));
    free(b);
    cm_frame_reader_free(&r);
}

/* A 1 MiB call frame over a 64 KiB limit: reported with its head, its
 * bytes never buffered, and the next frame read normally. */
static void test_oversized_dropped(void **state)
{
    (void)state;
    cm_frame_reader r = {.max_frame = 65536, .drop_oversized = true};
    cm_error err;
    size_t n = 1u << 20;
    char *payload = malloc(n);
    const char *head = "{\"t\":\"call\",\"id\":7,\"tool\":\"api.put\",\"args\":{\"x\":\"";
    memset(payload, 'a', n);
    memcpy(payload, head, strlen(head));
    memcpy(payload + n - 3, "\"}}", 3);
    size_t len;
    char *b = framed(payload, n, &len);
    size_t len2;
    char *next = framed("{\"t\":\"ready\"}", 13, &len2);
    cJSON *msg;
    int dropped = 0;
    for (size_t off = 0; off < len; off += 65536) {
        size_t k = len - off < 65536 ? len - off : 65536;
        assert_int_equal(cm_frame_feed(&r, b + off, k, &err), 0);
        int rc;
        while ((rc = cm_frame_next(&r, &msg, &err)) != 0) {
            assert_int_equal(rc, 2);
            dropped++;
        }
        assert_true(r.buf.cap <= 2 * 65536 + 4096);
    }
    assert_int_equal(dropped, 1);
    assert_int_equal(r.last_len, n);
    assert_memory_equal(r.head, head, strlen(head));
    assert_int_equal(r.skip, 0);
    assert_int_equal(cm_frame_feed(&r, next, len2, &err), 0);
    assert_int_equal(cm_frame_next(&r, &msg, &err), 1);
    cJSON_Delete(msg);
    free(payload);
    free(b);
    free(next);
    cm_frame_reader_free(&r);
}

/* A big frame is buffered in one allocation sized from its header, and the
 * buffer shrinks once the frame is taken. */
static void test_big_frame_buffer_sized_and_shrunk(void **state)
{
    (void)state;
    cm_frame_reader r = {.max_frame = 8u << 20};
    cm_error err;
    size_t n = (5u << 20) + 100;
    char *payload = malloc(n);
    memset(payload, ' ', n);
    payload[0] = '{';
    payload[n - 1] = '}';
    size_t len;
    char *b = framed(payload, n, &len);
    for (size_t off = 0; off < len; off += 65536)
        assert_int_equal(cm_frame_feed(&r, b + off, len - off < 65536 ? len - off : 65536, &err),
                         0);
    assert_true(r.buf.cap < n + 2 * 65536); /* not the next power of two (8 MiB) */
    cJSON *msg;
    assert_int_equal(cm_frame_next(&r, &msg, &err), 1);
    cJSON_Delete(msg);
    assert_true(r.buf.cap <= 65536);
    free(payload);
    free(b);
    cm_frame_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_frame),
        cmocka_unit_test(test_oversized_fails_without_drop),
        cmocka_unit_test(test_oversized_dropped),
        cmocka_unit_test(test_big_frame_buffer_sized_and_shrunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
