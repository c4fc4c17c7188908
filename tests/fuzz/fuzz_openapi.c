/* fuzz_openapi.c — libFuzzer harness: a JSON document through the
 * OpenAPI → UTCP manual converter ($ref cycles, odd shapes). */
#include <stdint.h>

#include "openapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    if (!doc)
        return 0;
    cJSON *manual = NULL;
    cm_error err;
    if (cm_openapi_to_manual(doc, "http://127.0.0.1/openapi.json", NULL, &manual, &err) == 0)
        cJSON_Delete(manual);
    cJSON_Delete(doc);
    return 0;
}
