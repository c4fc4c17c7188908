/* log.c — structured JSON log lines on stderr (one object per line), so the
 * engine's logs can be shipped and filtered like any node service's. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "util.h"

void cm_log(const char *level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "ts", (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0);
    cJSON_AddStringToObject(o, "level", level);
    cJSON_AddStringToObject(o, "msg", msg);
    char *s = cm_json_print(o);
    fprintf(stderr, "%s\n", s);
    free(s);
    cJSON_Delete(o);
}
