/* cm_limits.c — defaults of the limits in cm_limits.h, in one place. */
#include "cm_limits.h"

cm_reg_limits cm_reg_limits_or_default(const cm_reg_limits *lim)
{
    cm_reg_limits l = lim ? *lim : (cm_reg_limits){0};
    if (l.timeout_s <= 0)
        l.timeout_s = CM_REG_DEFAULT_TIMEOUT_S;
    if (!l.max_bytes)
        l.max_bytes = CM_REG_DEFAULT_MAX_BYTES;
    if (l.max_tools <= 0)
        l.max_tools = CM_REG_DEFAULT_MAX_TOOLS;
    if (!l.max_schema_bytes)
        l.max_schema_bytes = CM_REG_DEFAULT_MAX_SCHEMA_BYTES;
    return l;
}

void cm_limits_apply_floors(cm_limits *l)
{
    if (l->memory_bytes < (16u << 20))
        l->memory_bytes = 16u << 20;
    if (l->cpu_quota_pct < 1)
        l->cpu_quota_pct = 1;
    if (l->pids_max < 8)
        l->pids_max = 8;
}
