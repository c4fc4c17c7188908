/* cm_limits.h — the limits types every layer passes around, so a provider or
 * the sandbox layer can take one without including the engine's config.
 * The engine config (engine/config.c) fills them from `engine:` keys. */
#ifndef CM_LIMITS_H
#define CM_LIMITS_H

#include <stddef.h>

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
