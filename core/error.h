/* error.h — the one error convention of codemode.
 *
 * Every fallible function returns int: 0 on success, -1 on failure, and fills
 * the caller's cm_error with a kind (machine-readable, closed set) and a
 * message (human-readable, carrying context).  Callers add context on the way
 * up with cm_error_prefix().  Kinds that reach a chain's response are the
 * public `error.kind` strings documented in README.md. */
#ifndef CM_ERROR_H
#define CM_ERROR_H

#include <stdarg.h>

typedef enum cm_errkind {
    CM_ERR_NONE = 0,
    /* public chain error kinds (README "Error kinds") */
    CM_ERR_SYNTAX,                  /* "syntax": the chain does not compile */
    CM_ERR_EXCEPTION,               /* "exception": the chain raised */
    CM_ERR_TIMEOUT,                 /* "timeout": wall-clock limit hit, chain killed */
    CM_ERR_MEMORY_LIMIT,            /* "memory_limit" */
    CM_ERR_POLICY_DENIED,           /* "policy_denied" */
    CM_ERR_TOOL_ERROR,              /* "tool_error": a tool call failed and was not caught */
    CM_ERR_OUTPUT_LIMIT,            /* "output_limit": logs or result too large */
    CM_ERR_RESULT_NOT_SERIALIZABLE, /* "result_not_serializable" */
    CM_ERR_SANDBOX_FAILURE,         /* "sandbox_failure": sandbox could not start or died */
    CM_ERR_INVALID_REQUEST,         /* "invalid_request": bad parameters */
    CM_ERR_BUSY,                    /* "busy": queue full */
    CM_ERR_SHUTDOWN,                /* "shutdown": the engine stopped it after its drain time */
    CM_ERR_INVALID_ARGUMENTS, /* "invalid_arguments": a tool call's arguments fail its inputs schema
                               */
    CM_ERR_CANCELLED,         /* "cancelled": the client sent notifications/cancelled */
    /* internal kinds (never a chain error kind on their own) */
    CM_ERR_IO,        /* "io": a system call failed */
    CM_ERR_CONFIG,    /* "config": bad configuration or manual */
    CM_ERR_NOT_FOUND, /* "not_found": unknown manual or tool */
    CM_ERR_INTERNAL,  /* "internal": a bug or resource exhaustion */
    CM_ERR__COUNT
} cm_errkind;

typedef struct cm_error {
    cm_errkind kind;
    int sys_errno; /* errno when the failure came from a system call, else 0 */
    char message[1024];
} cm_error;

/* Sets kind and message; returns -1 so callers can `return cm_error_set(...)`. */
int cm_error_set(cm_error *err, cm_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like cm_error_set, appending ": strerror(errno)" and recording errno. */
int cm_error_sys(cm_error *err, cm_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "context: " to the message; returns -1. */
int cm_error_prefix(cm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cm_error_clear(cm_error *err);
/* "timeout", "tool_error", ... ; never NULL. */
const char *cm_errkind_name(cm_errkind kind);
/* Reverse of cm_errkind_name; CM_ERR_INTERNAL for unknown names. */
cm_errkind cm_errkind_from_name(const char *name);

#endif
