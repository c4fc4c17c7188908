/* fuzz_frame.c — libFuzzer harness: arbitrary bytes from a (hostile)
 * sandbox through the control-frame reader, fed in two pieces. */
#include <stdint.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* byte 0 picks where the rest is split in two feeds */
    if (size == 0)
        return 0;
    size_t half = data[0] % size;
    data++;
    size--;
    cm_frame_reader r = {.max_frame = 1u << 16};
    cm_error err;
    if (cm_frame_feed(&r, data, half, &err) == 0 &&
        cm_frame_feed(&r, data + half, size - half, &err) == 0) {
        cJSON *msg;
        int rc;
        while ((rc = cm_frame_next(&r, &msg, &err)) == 1)
            cJSON_Delete(msg);
    }
    cm_frame_reader_free(&r);
    return 0;
}
