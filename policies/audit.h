/* audit.h — the JSON-lines policy audit log (see audit.c). */
#ifndef CM_POLICY_AUDIT_H
#define CM_POLICY_AUDIT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

/* Opens (creates 0600) the log for appending. */
int cm_audit_open(const char *path, int *fd, cm_error *err);
/* Adds "time" (UTC, ms), writes one line, frees line.  fd < 0: no log. */
void cm_audit_write(int fd, cJSON *line);
/* Copy of args, values replaced by "<redacted>" unless reveal. */
cJSON *cm_audit_args(const cJSON *args, bool reveal);

#endif
