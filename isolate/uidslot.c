/* uidslot.c — two engines on one host (two services, two pods sharing the
 * host's uid space) must never hand a sandbox the uid of the other's
 * sandbox: their chains would share file ownership, signals and ucounts.
 * Each engine takes one range of engine.sandbox_uid_range uids by holding
 * an flock on a file per range in the runtime directory; the kernel drops
 * the lock when the engine dies, however it dies, so nothing needs
 * cleaning up. */
#include "uidslot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static int make_lock_dir(const char *dir, cm_error *err)
{
    if (mkdir(dir, 0755) == 0 || errno == EEXIST)
        return 0;
    return cm_error_sys(err, CM_ERR_IO, "sandbox uid lock directory %s (engine.runtime_dir)", dir);
}

int cm_uid_slot_claim(const char *lock_dir, uid_t uid_base, gid_t gid_base, unsigned range,
                      cm_uid_slot *out, cm_error *err)
{
    out->fd = -1;
    if (make_lock_dir(lock_dir, err) < 0)
        return -1;
    for (unsigned k = 0; k < CM_UID_SLOTS; k++) {
        uint64_t first = (uint64_t)uid_base + (uint64_t)k * range;
        if (first + range > 4294967294u ||
            (uint64_t)gid_base + (uint64_t)k * range + range > 4294967294u)
            break;
        char path[4200];
        snprintf(path, sizeof path, "%s/sandbox-uids-%llu.lock", lock_dir,
                 (unsigned long long)first);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return cm_error_sys(err, CM_ERR_IO, "open %s", path);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *out = (cm_uid_slot){.fd = fd,
                                 .slot = k,
                                 .uid_base = (uid_t)first,
                                 .gid_base = (gid_t)(gid_base + k * range)};
            return 0;
        }
        int e = errno;
        close(fd);
        if (e != EWOULDBLOCK)
            return cm_error_set(err, CM_ERR_IO, "flock %s: %s", path, strerror(e));
    }
    return cm_error_set(err, CM_ERR_BUSY,
                        "every sandbox uid range under %s is held by another engine (%d at "
                        "most; engine.sandbox_uid sets where they start)",
                        lock_dir, CM_UID_SLOTS);
}

void cm_uid_slot_release(cm_uid_slot *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}
