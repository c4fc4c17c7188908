/* fuzz_vars.c — libFuzzer harness: variable substitution.  The input is
 * split at the first NUL: before it a JSON object of variables, after it a
 * JSON template whose strings are substituted. */
#include <stdint.h>
#include <string.h>

#include "vars.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, 0, size);
    if (!nul)
        return 0;
    cJSON *vars = cJSON_ParseWithLength(s, (size_t)(nul - s));
    cJSON *tmpl = cJSON_ParseWithLength(nul + 1, size - (size_t)(nul - s) - 1);
    cm_vars *v = NULL;
    cm_error err;
    if (tmpl && cm_vars_new(&v, cJSON_IsObject(vars) ? vars : NULL, NULL, "/nonexistent", &err) == 0) {
        cJSON *out = NULL;
        if (cm_vars_substitute(v, "man", tmpl, &out, &err) == 0)
            cJSON_Delete(out);
        cJSON *names = cJSON_CreateArray();
        cm_vars_required(tmpl, names);
        cJSON_Delete(names);
        cm_vars_free(v);
    }
    cJSON_Delete(vars);
    cJSON_Delete(tmpl);
    return 0;
}
