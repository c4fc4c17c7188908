/* cm_limits.h — the limits types every layer passes around, so a provider or
 * the sandbox layer can take one without including the engine's config.
 * The engine config (engine/config.c) fills them from `engine:` keys. */
#ifndef CM_LIMITS_H
#define CM_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* A chain's limits: the one type the engine config, a policy profile, a
 * request and the sandbox's cgroup all speak, one unit per field.  0 means
 * "not set here" (the next side's value applies).  The engine's maximum
 * comes from `engine:` (cm_config_limits), a profile's from its `limits:`,
 * a request's from call_tool_chain; cm_policy_resolve_limits is the one
 * function computing engine ∩ profile ∩ request. */
typedef struct cm_limits {
    double timeout_s;      /* wall clock, seconds */
    uint64_t memory_bytes; /* cgroup memory cap, bytes (no swap) */
    int cpu_quota_pct;     /* CPU quota, percent of one CPU */
    long cpu_shares;       /* cgroup CPU weight (v1 shares) */
    int pids_max;          /* processes and threads */
    long max_tool_calls;   /* tool calls per chain */
    long max_output_bytes; /* printed output */
    long max_result_bytes; /* the returned value, serialized */
} cm_limits;

/* What a sandbox needs to start a Python runner at all: every cgroup limit
 * raised to its floor (16 MiB, 1 % of a CPU, 8 processes). */
void cm_limits_apply_floors(cm_limits *l);

/* engine.registration: what one manual registration (discovery) may cost.
 * Providers read it through cm_call_ctx.reg (providers/provider.h). */
typedef struct cm_reg_limits {
    int timeout_s;           /* timeout_s: whole registration, download included (30) */
    size_t max_bytes;        /* max_bytes: a downloaded or read manual/OpenAPI document (32 MiB) */
    int max_tools;           /* max_tools: tools one manual may have (2000) */
    size_t max_schema_bytes; /* max_schema_bytes: a manual's tool schemas, all tools (64 MiB) */
} cm_reg_limits;

#define CM_REG_DEFAULT_TIMEOUT_S 30
#define CM_REG_DEFAULT_MAX_BYTES ((size_t)32 << 20)
#define CM_REG_DEFAULT_MAX_TOOLS 2000
#define CM_REG_DEFAULT_MAX_SCHEMA_BYTES ((size_t)64 << 20)

/* The limits with every unset (0) field at its default; lim may be NULL. */
cm_reg_limits cm_reg_limits_or_default(const cm_reg_limits *lim);

#endif
