/* util.c — shared helpers (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

void cm_cleanup_fd(int *fd)
{
    if (fd && *fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
        *fd = -1;
    }
}

void cm_cleanup_free(void *p)
{
    void **pp = (void **)p;
    free(*pp);
    *pp = NULL;
}

void cm_cleanup_json(cJSON **j)
{
    if (j && *j) {
        cJSON_Delete(*j);
        *j = NULL;
    }
}

int64_t cm_now_ms(void)
{
    return cm_now_us() / 1000;
}

int64_t cm_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int buf_reserve(cm_buf *b, size_t extra, cm_error *err)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2)
            return cm_error_set(err, CM_ERR_INTERNAL, "buffer too large");
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return cm_error_set(err, CM_ERR_INTERNAL, "out of memory growing buffer to %zu", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

int cm_buf_append(cm_buf *b, const void *data, size_t len, cm_error *err)
{
    if (buf_reserve(b, len, err) < 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cm_buf_printf(cm_buf *b, cm_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return cm_error_set(err, CM_ERR_INTERNAL, "bad format");
    if (buf_reserve(b, (size_t)n, err) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void cm_buf_consume(cm_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        if (b->data)
            b->data[0] = '\0';
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void cm_buf_free(cm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void *cm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

void *cm_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        abort();
    return p;
}

char *cm_xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

int cm_write_all(int fd, const void *data, size_t len, cm_error *err)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cm_error_sys(err, CM_ERR_IO, "write");
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int cm_read_file(const char *path, size_t max, char **out, size_t *out_len, cm_error *err)
{
    cm_autofd int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cm_error_sys(err, CM_ERR_IO, "cannot open %s", path);
    cm_buf b = {0};
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            cm_buf_free(&b);
            return cm_error_sys(err, CM_ERR_IO, "cannot read %s", path);
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > max) {
            cm_buf_free(&b);
            return cm_error_set(err, CM_ERR_IO, "%s is larger than %zu bytes", path, max);
        }
        if (cm_buf_append(&b, chunk, (size_t)n, err) < 0) {
            cm_buf_free(&b);
            return -1;
        }
    }
    if (!b.data && cm_buf_append(&b, "", 0, err) < 0)
        return -1;
    *out = b.data;
    if (out_len)
        *out_len = b.len;
    return 0;
}

int cm_set_nonblock(int fd, bool on, cm_error *err)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return cm_error_sys(err, CM_ERR_IO, "fcntl(F_GETFL)");
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (fcntl(fd, F_SETFL, fl) < 0)
        return cm_error_sys(err, CM_ERR_IO, "fcntl(F_SETFL)");
    return 0;
}

const char *cm_json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

char *cm_json_print(const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (!s)
        abort();
    return s;
}

bool cm_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

char *cm_exe_dir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return cm_xstrdup(".");
    path[n] = '\0';
    return cm_xstrdup(dirname(path));
}

void cm_error_prefix_output(cm_error *err, int fd)
{
    char buf[400];
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (char *p = buf; *p; p++) {
        if (*p == '\n')
            *p = ' ';
    }
    cm_error_prefix(err, "%s", buf);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

bool cm_engine_pid_alive(long pid)
{
    if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
        return false;
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(comm, sizeof comm, f) && !strncmp(comm, "codemode", 8);
    fclose(f);
    return ok;
}

void cm_remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int cm_mkdir_parents(const char *path, mode_t mode, bool self)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return self && mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

ssize_t cm_send_fds(int fd, struct iovec *iov, int niov, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    if (nfds < 0 || nfds > 4) {
        errno = EINVAL;
        return -1;
    }
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
    if (nfds > 0) {
        memset(&u, 0, sizeof u);
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    while ((n = sendmsg(fd, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n;
}
