/* audit.c — the policy audit log: one JSON object per line, appended with a
 * single write(2) to an O_APPEND file so lines from concurrent chains never
 * interleave.  Argument values are redacted (keys kept) unless the deciding
 * rule says `audit_args: true`. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int cm_audit_open(const char *path, int *fd, cm_error *err)
{
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0)
        return cm_error_sys(err, CM_ERR_CONFIG, "audit log %s", path);
    return 0;
}

static void add_time(cJSON *line)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[64], out[80];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%03ldZ", buf, ts.tv_nsec / 1000000);
    cJSON_AddStringToObject(line, "time", out);
}

void cm_audit_write(int fd, cJSON *line)
{
    if (fd < 0) {
        cJSON_Delete(line);
        return;
    }
    add_time(line);
    cm_autofree char *text = cm_json_print(line);
    cJSON_Delete(line);
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: one write, one line */
    ssize_t w = write(fd, text, n + 1);
    text[n] = '\0';
    if (w != (ssize_t)(n + 1))
        cm_log("error", "audit log: short write: %s", w < 0 ? strerror(errno) : "disk full?");
}

cJSON *cm_audit_args(const cJSON *args, bool reveal)
{
    if (reveal || !cJSON_IsObject(args))
        return args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject();
    cJSON *out = cJSON_CreateObject();
    for (const cJSON *a = args->child; a; a = a->next)
        cJSON_AddStringToObject(out, a->string, "<redacted>");
    return out;
}
