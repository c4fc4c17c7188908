/* uidslot.h — a host-wide claim on one range of sandbox uids (uidslot.c). */
#ifndef CM_UIDSLOT_H
#define CM_UIDSLOT_H

#include <sys/types.h>

#include "error.h"

/* The most ranges engines on one host can hold at once. */
#define CM_UID_SLOTS 64

typedef struct cm_uid_slot {
    int fd;        /* the held lock; -1: none */
    unsigned slot; /* 0..CM_UID_SLOTS-1 */
    uid_t uid_base;
    gid_t gid_base;
} cm_uid_slot;

/* Claims the first free range of `range` uids (and gids) at or above
 * uid_base/gid_base, each range k starting at base + k * range, by an
 * exclusive flock on <lock_dir>/sandbox-uids-<first uid>.lock held until
 * release or process exit (so a dead engine's range is free again at once).
 * CM_ERR_BUSY when all CM_UID_SLOTS are held. */
int cm_uid_slot_claim(const char *lock_dir, uid_t uid_base, gid_t gid_base, unsigned range,
                      cm_uid_slot *out, cm_error *err);
void cm_uid_slot_release(cm_uid_slot *s);

#endif
