/* error.c — implementation of the cm_error convention (see error.h). */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[CM_ERR__COUNT] = {
    [CM_ERR_NONE] = "none",
    [CM_ERR_SYNTAX] = "syntax",
    [CM_ERR_EXCEPTION] = "exception",
    [CM_ERR_TIMEOUT] = "timeout",
    [CM_ERR_MEMORY_LIMIT] = "memory_limit",
    [CM_ERR_POLICY_DENIED] = "policy_denied",
    [CM_ERR_TOOL_ERROR] = "tool_error",
    [CM_ERR_OUTPUT_LIMIT] = "output_limit",
    [CM_ERR_RESULT_NOT_SERIALIZABLE] = "result_not_serializable",
    [CM_ERR_SANDBOX_FAILURE] = "sandbox_failure",
    [CM_ERR_INVALID_REQUEST] = "invalid_request",
    [CM_ERR_BUSY] = "busy",
    [CM_ERR_SHUTDOWN] = "shutdown",
    [CM_ERR_INVALID_ARGUMENTS] = "invalid_arguments",
    [CM_ERR_CANCELLED] = "cancelled",
    [CM_ERR_IO] = "io",
    [CM_ERR_CONFIG] = "config",
    [CM_ERR_NOT_FOUND] = "not_found",
    [CM_ERR_INTERNAL] = "internal",
};

static void set_va(cm_error *err, cm_errkind kind, const char *fmt, va_list ap)
{
    err->kind = kind;
    err->sys_errno = 0;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
}

int cm_error_set(cm_error *err, cm_errkind kind, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    set_va(err, kind, fmt, ap);
    va_end(ap);
    return -1;
}

int cm_error_sys(cm_error *err, cm_errkind kind, const char *fmt, ...)
{
    int saved = errno;
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    set_va(err, kind, fmt, ap);
    va_end(ap);
    size_t len = strlen(err->message);
    snprintf(err->message + len, sizeof err->message - len, ": %s", strerror(saved));
    err->sys_errno = saved;
    errno = saved;
    return -1;
}

int cm_error_prefix(cm_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[512];
    char old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    /* truncation is acceptable: the message stays a bounded, readable prefix */
    size_t cap = sizeof err->message - 1;
    size_t plen = strnlen(prefix, cap);
    memcpy(err->message, prefix, plen);
    size_t pos = plen;
    if (pos + 2 <= cap) {
        memcpy(err->message + pos, ": ", 2);
        pos += 2;
    }
    size_t olen = strnlen(old, sizeof old - 1);
    if (olen > cap - pos)
        olen = cap - pos;
    memcpy(err->message + pos, old, olen);
    err->message[pos + olen] = '\0';
    return -1;
}

void cm_error_clear(cm_error *err)
{
    if (!err)
        return;
    err->kind = CM_ERR_NONE;
    err->sys_errno = 0;
    err->message[0] = '\0';
}

const char *cm_errkind_name(cm_errkind kind)
{
    if ((int)kind < 0 || kind >= CM_ERR__COUNT || !kind_names[kind])
        return "internal";
    return kind_names[kind];
}

cm_errkind cm_errkind_from_name(const char *name)
{
    if (!name)
        return CM_ERR_INTERNAL;
    for (int k = 0; k < CM_ERR__COUNT; k++)
        if (kind_names[k] && strcmp(kind_names[k], name) == 0)
            return (cm_errkind)k;
    return CM_ERR_INTERNAL;
}
