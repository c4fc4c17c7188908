/* util.h — small shared helpers: cleanup attributes (crun style), monotonic
 * time, a growable byte buffer, fd helpers and cJSON conveniences.  Nothing
 * here holds state. */
#ifndef CM_UTIL_H
#define CM_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "error.h"

void cm_cleanup_fd(int *fd);
void cm_cleanup_free(void *p);
void cm_cleanup_json(cJSON **j);
#define cm_autofd __attribute__((cleanup(cm_cleanup_fd)))
#define cm_autofree __attribute__((cleanup(cm_cleanup_free)))
#define cm_autojson __attribute__((cleanup(cm_cleanup_json)))

/* Returns the fd and sets *fd = -1 (hand ownership out of an autofd). */
static inline int cm_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}
static inline void *cm_steal_ptr(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t cm_now_ms(void);
/* Microseconds on CLOCK_MONOTONIC. */
int64_t cm_now_us(void);

/* Growable byte buffer, always NUL-terminated. */
typedef struct cm_buf {
    char *data;
    size_t len;
    size_t cap;
} cm_buf;
int cm_buf_append(cm_buf *b, const void *data, size_t len, cm_error *err);
int cm_buf_printf(cm_buf *b, cm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Removes the first n bytes. */
void cm_buf_consume(cm_buf *b, size_t n);
void cm_buf_free(cm_buf *b);

/* Aborts on allocation failure (memory exhaustion is not recoverable here). */
void *cm_xmalloc(size_t n);
void *cm_xcalloc(size_t n, size_t m);
char *cm_xstrdup(const char *s);

/* Writes all bytes (retrying on EINTR/short writes); blocking fds only. */
int cm_write_all(int fd, const void *data, size_t len, cm_error *err);
/* sendmsg of niov buffers with nfds (at most 4) fds as SCM_RIGHTS,
 * MSG_NOSIGNAL, retried on EINTR: the bytes sent, or -1 with errno. */
struct iovec;
ssize_t cm_send_fds(int fd, struct iovec *iov, int niov, const int *fds, int nfds);
/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
int cm_read_file(const char *path, size_t max, char **out, size_t *out_len, cm_error *err);
int cm_set_nonblock(int fd, bool on, cm_error *err);
/* Puts what a failed child wrote to its (non-blocking) output fd in front of
 * err's message: the first few hundred bytes on one line.  Nothing if empty. */
void cm_error_prefix_output(cm_error *err, int fd);

/* Directory of the running binary (from /proc/self/exe; "." if unknown).
 * Caller frees. */
char *cm_exe_dir(void);

/* cJSON helpers */
const char *cm_json_str(const cJSON *obj, const char *key); /* NULL if absent or not a string */
/* Prints compactly; aborts on OOM.  Caller frees. */
char *cm_json_print(const cJSON *j);
/* True when the string is valid UTF-8. */
bool cm_utf8_valid(const char *s, size_t len);
/* Removes dir and everything below it (no symlink is followed); best effort. */
void cm_remove_tree(const char *dir);
/* Makes path's parent directories (mode, as far as missing); with self,
 * path itself too.  0, or -1 with errno. */
int cm_mkdir_parents(const char *path, mode_t mode, bool self);
/* True while pid is a running codemode engine (its comm says so, so a
 * reused pid of another program is not taken for one). */
bool cm_engine_pid_alive(long pid);

#endif
