/* fuzz_policy.c — libFuzzer harness: a policy document (YAML or JSON)
 * through the policy loader. */
#include <stdint.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cm_policy *p = NULL;
    cm_error err;
    if (cm_policy_parse((const char *)data, size, "fuzz", &p, &err) == 0)
        cm_policy_unref(p);
    return 0;
}
