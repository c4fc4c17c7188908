/* fuzz_pyiface.c — libFuzzer harness: a tool definition (JSON: name,
 * description, inputs, outputs schemas) through the schema → Python
 * interface generator, then the assembler. */
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
    cm_pyiface_names *names = cm_pyiface_names_new();
    char *classes = NULL, *method = NULL;
    cm_pyiface_tool("fz", "tool_x", def, names, &classes, &method);
    cJSON *tools = cJSON_CreateArray();
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", "fz.tool_x");
    cJSON_AddStringToObject(t, "access_manual", "fz");
    cJSON_AddStringToObject(t, "access_tool", "tool_x");
    cJSON_AddStringToObject(t, "iface_classes", classes ? classes : "");
    cJSON_AddStringToObject(t, "iface_method", method ? method : "");
    cJSON_AddItemToArray(tools, t);
    free(cm_pyiface_assemble(tools, NULL));
    cJSON_Delete(tools);
    free(classes);
    free(method);
    cm_pyiface_names_free(names);
    cJSON_Delete(def);
    return 0;
}
