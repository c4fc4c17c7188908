/* fuzz_manual.c — libFuzzer harness: manual text (JSON or YAML) through
 * the text-manual parser, then cm_registry_add. */
#include <stdint.h>

#include "registry.h"
#include "text_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *manual = NULL;
    cm_error err;
    if (cm_parse_manual_text((const char *)data, size, "fuzz", &manual, &err) < 0)
        return 0;
    cm_registry *r = NULL;
    if (cm_registry_new(&r, &err) == 0) {
        cJSON *tmpl = cJSON_Parse("{\"name\":\"fz\",\"call_template_type\":\"text\"}");
        cJSON *report = NULL;
        if (cm_registry_add(r, tmpl, manual, NULL, &report, &err) == 0) {
            cJSON_Delete(cm_registry_chain_tools(r, NULL));
            cJSON_Delete(cm_registry_search(r, "a", 5));
        }
        cJSON_Delete(report);
        cJSON_Delete(tmpl);
        cm_registry_free(r);
    }
    cJSON_Delete(manual);
    return 0;
}
