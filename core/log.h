/* log.h — the one logging call (log.c): JSON lines on stderr.  A leaf
 * header, so any layer can log without knowing the engine. */
#ifndef CM_LOG_H
#define CM_LOG_H

/* Structured log line on stderr: {"level","msg",...}. */
void cm_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
