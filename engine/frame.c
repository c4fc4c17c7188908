/* frame.c — length-prefixed JSON frames for the control socket (frame.h). */
#include "frame.h"

#include <string.h>

int cm_frame_feed(cm_frame_reader *r, const void *data, size_t len, cm_error *err)
{
    return cm_buf_append(&r->buf, data, len, err);
}

static size_t frame_length(const unsigned char *p)
{
    return ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | (size_t)p[3];
}

int cm_frame_next(cm_frame_reader *r, cJSON **msg, cm_error *err)
{
    *msg = NULL;
    if (r->buf.len < 4)
        return 0;
    size_t n = frame_length((const unsigned char *)r->buf.data);
    if (n > r->max_frame)
        return cm_error_set(err, CM_ERR_OUTPUT_LIMIT, "control frame of %zu bytes exceeds %zu", n,
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
