/* rootfs_verify.c — checks a built rootfs against its MANIFEST.  The engine
 * runs this at every start so it never serves from a rootfs that was altered,
 * extended or given a setuid file, a device node or a world-writable path after
 * it was built; `codemode rootfs verify DIR` runs the same check.  SHA-256 comes
 * from OpenSSL's libcrypto (EVP). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rootfs.h"
#include "util.h"

#define MANIFEST_NAME "MANIFEST"
#define MANIFEST_MAX (16u << 20)
#define HASH_CHUNK (1u << 20)
#define MAX_DEPTH 64

typedef struct entry {
    const char *path; /* relative; directories end in '/' */
    bool is_dir;
    bool seen;
    unsigned mode;
    uint64_t size;
    char sha[65];
} entry;

typedef struct verifier {
    const char *root;
    entry *entries;
    size_t n;
    unsigned char *buf; /* HASH_CHUNK bytes for reading files */
    EVP_MD_CTX *md;
    cm_rootfs_report *rep;
    cm_error *err;
} verifier;

static int bad(verifier *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "rootfs DIR: PATH: problem" */
static int bad(verifier *v, const char *path, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cm_error_set(v->err, CM_ERR_CONFIG, "rootfs %s: %s: %s", v->root, path, what);
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- MANIFEST ------------------------------------------------------------ */

static int parse_line(verifier *v, char *line, size_t lineno, entry *e)
{
    char *f[3];
    char *p = line;
    for (int i = 0; i < 3; i++) {
        f[i] = p;
        p = strchr(p, ' ');
        if (!p)
            return bad(v, MANIFEST_NAME, "line %zu: expected '<sha256> <mode> <size> <path>'",
                       lineno);
        *p++ = '\0';
    }
    char *end;
    unsigned long mode = strtoul(f[1], &end, 8);
    unsigned long long size = strtoull(f[2], &end, 10);
    size_t plen = strlen(p);
    e->is_dir = strcmp(f[0], "-") == 0;
    bool sha_ok = strlen(f[0]) == 64 && strspn(f[0], "0123456789abcdef") == 64;
    if ((!e->is_dir && !sha_ok) || *end || mode > 07777 || plen == 0 || p[0] == '/' ||
        strstr(p, "..") || (e->is_dir != (p[plen - 1] == '/')))
        return bad(v, MANIFEST_NAME, "line %zu: malformed entry", lineno);
    e->path = p;
    e->mode = (unsigned)mode;
    e->size = size;
    snprintf(e->sha, sizeof e->sha, "%s", e->is_dir ? "" : f[0]);
    return 0;
}

/* Splits the MANIFEST text (kept alive by the caller) into sorted entries. */
static int parse_manifest(verifier *v, char *text, size_t len)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (len == 0 || text[len - 1] != '\n')
        return bad(v, MANIFEST_NAME, "empty or not newline-terminated");
    v->entries = cm_xcalloc(lines, sizeof *v->entries);
    char *line = text;
    for (size_t i = 0; i < lines; i++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        if (parse_line(v, line, i + 1, &v->entries[i]) < 0)
            return -1;
        if (i > 0 && strcmp(v->entries[i - 1].path, v->entries[i].path) >= 0)
            return bad(v, MANIFEST_NAME, "line %zu: entries not sorted or duplicated", i + 1);
        v->n++;
        line = nl + 1;
    }
    return 0;
}

static int cmp_entry(const void *key, const void *e)
{
    return strcmp(key, ((const entry *)e)->path);
}

static entry *lookup(verifier *v, const char *rel)
{
    return bsearch(rel, v->entries, v->n, sizeof *v->entries, cmp_entry);
}

/* ---- checks on one path -------------------------------------------------- */

static const char *type_name(mode_t m)
{
    if (S_ISCHR(m) || S_ISBLK(m))
        return "device node";
    if (S_ISLNK(m))
        return "symlink";
    if (S_ISFIFO(m))
        return "fifo";
    if (S_ISSOCK(m))
        return "socket";
    return "unknown file type";
}

/* Type and permission bits that are never acceptable, whatever MANIFEST says. */
static int check_forbidden_bits(verifier *v, const char *rel, const struct stat *st)
{
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        return bad(v, rel, "%s (only regular files and directories are allowed)",
                   type_name(st->st_mode));
    if (st->st_mode & S_ISUID)
        return bad(v, rel, "setuid bit set");
    if (st->st_mode & S_ISGID)
        return bad(v, rel, "setgid bit set");
    if (st->st_mode & S_ISVTX)
        return bad(v, rel, "sticky bit set");
    if (st->st_mode & S_IWOTH)
        return bad(v, rel, "world-writable");
    return 0;
}

static int hash_file(verifier *v, int dirfd, const char *name, const char *rel, char out[65])
{
    cm_autofd int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cm_error_sys(v->err, CM_ERR_CONFIG, "rootfs %s: %s: cannot open", v->root, rel);
    if (EVP_DigestInit_ex(v->md, EVP_sha256(), NULL) != 1)
        return cm_error_set(v->err, CM_ERR_INTERNAL, "EVP_DigestInit_ex(sha256) failed");
    for (;;) {
        ssize_t n = read(fd, v->buf, HASH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cm_error_sys(v->err, CM_ERR_CONFIG, "rootfs %s: %s: read", v->root, rel);
        if (n == 0)
            break;
        EVP_DigestUpdate(v->md, v->buf, (size_t)n);
        v->rep->bytes += (uint64_t)n;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_DigestFinal_ex(v->md, d, &dlen);
    hex(d, dlen, out);
    return 0;
}

static int check_against_manifest(verifier *v, int dirfd, const char *name, const char *rel,
                                  const struct stat *st, entry *e)
{
    if (!e)
        return bad(v, rel, "not in MANIFEST (extra %s)",
                   S_ISDIR(st->st_mode) ? "directory" : "file");
    e->seen = true;
    if (e->is_dir != S_ISDIR(st->st_mode))
        return bad(v, rel, "is a %s, MANIFEST says %s", S_ISDIR(st->st_mode) ? "directory" : "file",
                   e->is_dir ? "directory" : "file");
    if ((st->st_mode & 07777) != e->mode)
        return bad(v, rel, "mode %04o, MANIFEST says %04o", st->st_mode & 07777, e->mode);
    if (e->is_dir)
        return 0;
    if ((uint64_t)st->st_size != e->size)
        return bad(v, rel, "size %jd, MANIFEST says %" PRIu64, (intmax_t)st->st_size, e->size);
    char sha[65];
    if (hash_file(v, dirfd, name, rel, sha) < 0)
        return -1;
    if (strcmp(sha, e->sha) != 0)
        return bad(v, rel, "content changed (SHA-256 differs from MANIFEST)");
    return 0;
}

/* ---- the walk ------------------------------------------------------------ */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Sorted entry names of an open directory (consumes dirfd). */
static int list_dir(verifier *v, int dirfd, const char *rel, char ***out, size_t *out_n)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return cm_error_sys(v->err, CM_ERR_CONFIG, "rootfs %s: %s: opendir", v->root,
                            *rel ? rel : ".");
    }
    size_t n = 0, cap = 16;
    char **names = cm_xmalloc(cap * sizeof *names);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap)
            names = realloc(names, (cap *= 2) * sizeof *names);
        if (!names)
            abort();
        names[n++] = cm_xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_name);
    *out = names;
    *out_n = n;
    return 0;
}

static int walk(verifier *v, int dirfd, const char *prefix, int depth);

static int visit(verifier *v, int dirfd, const char *prefix, const char *name, int depth)
{
    char rel[4096];
    struct stat st;
    int n = snprintf(rel, sizeof rel, "%s%s", prefix, name);
    if (n < 0 || (size_t)n >= sizeof rel - 1)
        return bad(v, prefix, "path too long");
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return cm_error_sys(v->err, CM_ERR_CONFIG, "rootfs %s: %s: stat", v->root, rel);
    if (check_forbidden_bits(v, rel, &st) < 0)
        return -1;
    if (S_ISDIR(st.st_mode))
        strcat(rel, "/");
    if (check_against_manifest(v, dirfd, name, rel, &st, lookup(v, rel)) < 0)
        return -1;
    if (S_ISREG(st.st_mode)) {
        v->rep->files++;
        return 0;
    }
    v->rep->dirs++;
    if (depth >= MAX_DEPTH)
        return bad(v, rel, "nested deeper than %d levels", MAX_DEPTH);
    int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return cm_error_sys(v->err, CM_ERR_CONFIG, "rootfs %s: %s: open", v->root, rel);
    return walk(v, sub, rel, depth + 1);
}

/* Visits every entry of dirfd (consumed) in name order. */
static int walk(verifier *v, int dirfd, const char *prefix, int depth)
{
    char **names = NULL;
    size_t n = 0;
    int dupfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0); /* list_dir consumes one fd */
    if (dupfd < 0) {
        close(dirfd);
        return cm_error_sys(v->err, CM_ERR_IO, "dup");
    }
    cm_autofd int keep = dupfd;
    if (list_dir(v, dirfd, prefix, &names, &n) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (depth == 0 && !strcmp(names[i], MANIFEST_NAME))
            continue;
        rc = visit(v, keep, prefix, names[i], depth);
    }
    free_names(names, n);
    return rc;
}

static int check_missing(verifier *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (!v->entries[i].seen)
            return bad(v, v->entries[i].path, "missing (listed in MANIFEST)");
    return 0;
}

/* ---- entry point ----------------------------------------------------------- */

static int load_manifest(verifier *v, int rootfd, char **text)
{
    struct stat st;
    if (fstatat(rootfd, MANIFEST_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return cm_error_sys(v->err, CM_ERR_CONFIG,
                            "rootfs %s: no MANIFEST (not a built rootfs? build it with "
                            "`codemode rootfs build`)",
                            v->root);
    if (check_forbidden_bits(v, MANIFEST_NAME, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode))
        return bad(v, MANIFEST_NAME, "not a regular file");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", v->root, MANIFEST_NAME);
    size_t len;
    if (cm_read_file(path, MANIFEST_MAX, text, &len, v->err) < 0)
        return cm_error_prefix(v->err, "rootfs %s", v->root);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    if (EVP_Digest(*text, len, d, &dlen, EVP_sha256(), NULL) != 1)
        return cm_error_set(v->err, CM_ERR_INTERNAL, "EVP_Digest(sha256) failed");
    hex(d, dlen, v->rep->id);
    return parse_manifest(v, *text, len);
}

static int check_root(verifier *v, int rootfd)
{
    struct stat st;
    if (fstat(rootfd, &st) < 0)
        return cm_error_sys(v->err, CM_ERR_CONFIG, "rootfs %s: stat", v->root);
    return check_forbidden_bits(v, ".", &st);
}

int cm_rootfs_verify(const char *dir, cm_rootfs_report *rep, cm_error *err)
{
    int64_t t0 = cm_now_us();
    memset(rep, 0, sizeof *rep);
    verifier v = {.root = dir, .rep = rep, .err = err};
    int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return cm_error_sys(err, CM_ERR_CONFIG, "rootfs %s", dir);
    cm_autofree char *text = NULL;
    v.md = EVP_MD_CTX_new();
    v.buf = cm_xmalloc(HASH_CHUNK);
    int rc = -1;
    if (v.md && load_manifest(&v, rootfd, &text) == 0 && check_root(&v, rootfd) == 0) {
        rc = walk(&v, rootfd, "", 0);
        rootfd = -1; /* consumed */
        if (rc == 0)
            rc = check_missing(&v);
    } else if (!v.md) {
        cm_error_set(err, CM_ERR_INTERNAL, "EVP_MD_CTX_new failed");
    }
    if (rootfd >= 0)
        close(rootfd);
    EVP_MD_CTX_free(v.md);
    free(v.buf);
    free(v.entries);
    rep->elapsed_us = cm_now_us() - t0;
    return rc;
}
