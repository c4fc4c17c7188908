/* frame.h — the control protocol's framing (engine ⇄ sandbox runner): a
 * 4-byte big-endian length, then that many bytes of UTF-8 JSON holding one
 * object.  Everything arriving from a sandbox is hostile: the reader bounds
 * the frame size and rejects anything that is not one well-formed object. */
#ifndef CM_FRAME_H
#define CM_FRAME_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "util.h"

#define CM_FRAME_HEAD 256

typedef struct cm_frame_reader {
    cm_buf buf;
    size_t max_frame; /* largest accepted payload */
    size_t last_len;  /* payload length of the frame cm_frame_next decoded last */
    /* set by the owner: a frame over max_frame is dropped unbuffered and
       reported (2) with its first bytes in head, instead of failing (-1) */
    bool drop_oversized;
    char head[CM_FRAME_HEAD + 1]; /* NUL-terminated */
    size_t skip;                  /* bytes of a dropped frame still to come */
} cm_frame_reader;

/* Buffers incoming bytes.  A big frame's buffer is sized once from its
 * header (no doubling past it) and shrunk again once the frame is taken. */
int cm_frame_feed(cm_frame_reader *r, const void *data, size_t len, cm_error *err);
/* 1 and *msg set when a whole frame was decoded; 0 when more bytes are
 * needed; -1 on a protocol violation (oversized, not UTF-8, not a JSON
 * object); 2 when drop_oversized is set and a frame over max_frame is being
 * dropped (last_len is its length, head its first bytes; never buffered).  */
int cm_frame_next(cm_frame_reader *r, cJSON **msg, cm_error *err);
void cm_frame_reader_free(cm_frame_reader *r);

/* Appends the framed encoding of msg to out. */
int cm_frame_encode(const cJSON *msg, cm_buf *out, cm_error *err);

#endif
