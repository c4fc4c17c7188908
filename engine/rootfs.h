/* rootfs.h — checking a sandbox rootfs against its MANIFEST (`codemode rootfs
 * verify`, and the engine at start-up) and the `codemode rootfs` command. */
#ifndef CM_ROOTFS_H
#define CM_ROOTFS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct cm_rootfs_report {
    char id[65];    /* rootfs id: hex SHA-256 of MANIFEST */
    size_t files;   /* regular files checked (MANIFEST excluded) */
    size_t dirs;    /* directories checked (root excluded) */
    uint64_t bytes; /* bytes hashed */
    int64_t elapsed_us;
} cm_rootfs_report;

/* Checks DIR against DIR/MANIFEST ("<sha256> <mode> <size> <path>" per file,
 * "- <mode> 0 <path>/" per directory): every listed entry present with the same
 * type, mode, size and SHA-256; nothing unlisted; no setuid/setgid/sticky bit,
 * no world-writable path, nothing but regular files and directories (no device
 * node, symlink, fifo, socket).  On failure the message names the first bad
 * path (walk order: sorted by name, depth first), e.g.
 * "rootfs /x: usr/bin/python3.11: content changed (SHA-256 differs from MANIFEST)". */
int cm_rootfs_verify(const char *dir, cm_rootfs_report *rep, cm_error *err);

/* Builds the minimal rootfs into dir (its parents made 0700 as needed) with
 * the builder beside the binary, and verifies it: a rootless user's rootfs
 * on first use.  The builder's output goes to stderr. */
int cm_rootfs_build_user(const char *dir, cm_error *err);

/* `codemode rootfs build|verify ...`; argv[0] is "rootfs".  Returns the exit status. */
int cm_cmd_rootfs(int argc, char **argv);

#endif
