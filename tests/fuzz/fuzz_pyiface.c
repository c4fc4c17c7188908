/* fuzz_pyiface.c — libFuzzer harness: a tool definition (JSON: name,
 * description, inputs, outputs schemas) through the schema → Python
 * interface generator (compact and full), then the assembler and the index. */
#include <stdint.h>
#include <stdlib.h>

#include "pyiface.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *def = cJSON_ParseWithLength((const char *)data, size);
    if (!cJSON_IsObject(def)) {
        cJSON_Delete(def);
        return 0;
    }
    cm_pyiface_manual *m = cm_pyiface_manual_new("fz");
    cm_pyiface_tool_text x = {0}, full = {0};
    cm_pyiface_tool(m, "tool_x", def, &x);
    cm_pyiface_tool_full("fz", "tool_x", def, &full);
    cJSON *tools = cJSON_CreateArray();
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", "fz.tool_x");
    cJSON_AddStringToObject(t, "access_manual", "fz");
    cJSON_AddStringToObject(t, "access_tool", "tool_x");
    cJSON_AddStringToObject(t, "iface_classes", x.classes);
    cJSON_AddStringToObject(t, "iface_method", x.method);
    cJSON_AddStringToObject(t, "iface_signature", x.signature);
    cJSON_AddStringToObject(t, "iface_summary", x.summary);
    cJSON_AddItemToArray(tools, t);
    free(cm_pyiface_assemble(tools, NULL));
    free(cm_pyiface_index(tools));
    cJSON_Delete(tools);
    cm_pyiface_tool_text_free(&x);
    cm_pyiface_tool_text_free(&full);
    cm_pyiface_manual_free(m);
    cJSON_Delete(def);
    return 0;
}
