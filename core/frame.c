/* frame.c — length-prefixed JSON frames for the control socket (frame.h). */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

/* Buffers above this are sized to their frame, and shrunk after it. */
#define BIG_BUFFER (256u << 10)

static size_t frame_length(const unsigned char *p)
{
    return ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | (size_t)p[3];
}

/* Sets the buffer's capacity to cap (>= len + 1); keeps it on failure. */
static void resize(cm_buf *b, size_t cap)
{
    char *p = realloc(b->data, cap);
    if (p) {
        b->data = p;
        b->cap = cap;
    }
}

int cm_frame_feed(cm_frame_reader *r, const void *data, size_t len, cm_error *err)
{
    size_t drop = r->skip < len ? r->skip : len; /* the rest of a dropped frame */
    r->skip -= drop;
    data = (const char *)data + drop;
    len -= drop;
    if (r->buf.len >= 4) {
        /* room for this frame and one more read, not the next power of 2 */
        size_t want = 4 + frame_length((const unsigned char *)r->buf.data) + 65536 + 1;
        size_t need = r->buf.len + len + 1;
        if (want > r->max_frame + 65536 + 5)
            want = r->max_frame + 65536 + 5;
        if (need > r->buf.cap && want >= need && want > BIG_BUFFER)
            resize(&r->buf, want);
    }
    return cm_buf_append(&r->buf, data, len, err);
}

/* After a big frame: give its buffer back (keeping what follows it). */
static void shrink(cm_buf *b)
{
    if (b->cap > BIG_BUFFER && b->len < b->cap / 4)
        resize(b, b->len + 1 > 65536 ? b->len + 1 : 65536);
}

int cm_frame_next(cm_frame_reader *r, cJSON **msg, cm_error *err)
{
    *msg = NULL;
    if (r->buf.len < 4)
        return 0;
    size_t n = frame_length((const unsigned char *)r->buf.data);
    if (n > r->max_frame && r->drop_oversized) {
        size_t head = n < CM_FRAME_HEAD ? n : CM_FRAME_HEAD;
        if (r->buf.len < 4 + head)
            return 0;
        memcpy(r->head, r->buf.data + 4, head);
        r->head[head] = '\0';
        size_t have = r->buf.len - 4 < n ? r->buf.len - 4 : n;
        cm_buf_consume(&r->buf, 4 + have);
        shrink(&r->buf);
        r->skip = n - have;
        r->last_len = n;
        return 2;
    }
    if (n > r->max_frame)
        return cm_error_set(err, CM_ERR_OUTPUT_LIMIT,
                            "control frame of %zu bytes exceeds the limit of %zu bytes", n,
                            r->max_frame);
    if (r->buf.len < 4 + n)
        return 0;
    const char *payload = r->buf.data + 4;
    if (!cm_utf8_valid(payload, n)) {
        cm_buf_consume(&r->buf, 4 + n);
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "control frame is not valid UTF-8");
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(payload, n, &end, 0);
    cm_buf_consume(&r->buf, 4 + n);
    shrink(&r->buf);
    r->last_len = n;
    if (!j)
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "control frame is not valid JSON");
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "control frame is not a JSON object");
    }
    *msg = j;
    return 1;
}

void cm_frame_reader_free(cm_frame_reader *r)
{
    cm_buf_free(&r->buf);
}

int cm_frame_encode(const cJSON *msg, cm_buf *out, cm_error *err)
{
    char *s = cJSON_PrintUnformatted(msg);
    if (!s)
        return cm_error_set(err, CM_ERR_INTERNAL, "cannot serialize control frame");
    size_t n = strlen(s);
    unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    int rc = cm_buf_append(out, hdr, 4, err);
    if (rc == 0)
        rc = cm_buf_append(out, s, n, err);
    free(s);
    return rc;
}
