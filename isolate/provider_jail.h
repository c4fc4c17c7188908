/* provider_jail.h — the sandbox a provider process (CLI command, MCP stdio
 * server) enters in the `codemode __provider-exec` step (provider_jail.c). */
#ifndef CM_PROVIDER_JAIL_H
#define CM_PROVIDER_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CM_JAIL_MAX_HIDE 256
#define CM_JAIL_MAX_RW 4

typedef struct cm_provider_jail {
    bool on;     /* own mount view, no capabilities, no_new_privs */
    bool userns; /* engine not root: a user namespace mapping its one uid first */
    bool ids;    /* engine root: become uid/gid (no supplementary groups) */
    uid_t uid;
    gid_t gid;
    const char *hide[CM_JAIL_MAX_HIDE]; /* engine files (empty file over them), dirs (tmpfs) */
    int nhide;
    const char *rw[CM_JAIL_MAX_RW]; /* directories kept writable (a CLI call's own dir) */
    int nrw;
    unsigned tmp_mb; /* size of the private /tmp, /var/tmp, /dev/shm */
} cm_provider_jail;

/* In the exec step, after the cgroup join: a private mount namespace with
 * the host read-only (nosuid), a private tmpfs on /tmp, /var/tmp and
 * /dev/shm, every hide path covered, every rw directory writable again at
 * its own path; then the unprivileged ids, an empty bounding set and
 * ambient set, no capabilities, no_new_privs.  -1 with why filled. */
int cm_provider_jail_enter(const cm_provider_jail *j, char *why, size_t cap);

/* Engine side, before a provider uid is used again: kills every process
 * still running as uid (what a CLI command left behind in its own session).
 * uid must not be 0 or the engine's own. */
void cm_provider_uid_kill(uid_t uid);

/* True when this process may create a user namespace with a mount
 * namespace (a rootless engine: its sandboxes and provider jail). */
bool cm_userns_works(void);

#endif
