/* privsep.h — the unprivileged engine's end of the privileged part
 * (privsep.c; the broker is sandboxd.c, the wire format sandboxd.h). */
#ifndef CM_PRIVSEP_H
#define CM_PRIVSEP_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

#define CM_PRIVSEP_MAX_DIRS 6

/* The broker's fixed facts, decided by the root engine before its drop. */
typedef struct cm_privsep_facts {
    const char *exe; /* the codemode binary: "/proc/self/exe" in the engine */
    uid_t svc_uid;   /* the service user the engine drops to */
    gid_t svc_gid;
    uid_t uid_base; /* the sandbox uid range (the service uid not in it) */
    gid_t gid_base;
    unsigned count;
    const char *workdir;
    const char *instance[CM_PRIVSEP_MAX_DIRS]; /* ATTACH targets: <dir>/<name> */
    bool instance_v2[CM_PRIVSEP_MAX_DIRS];
    int ninstance;
    const char *cgroup[CM_PRIVSEP_MAX_DIRS]; /* only removed at the end */
    bool cgroup_v2[CM_PRIVSEP_MAX_DIRS];
    int ncgroup;
    char *const *exec_opts; /* NULL-terminated: the exec step's fixed options */
} cm_privsep_facts;

/* One broker and its channel.  Requests are serialised (one in flight). */
typedef struct cm_privsep {
    int fd;    /* -1: not started, or the channel is lost */
    pid_t pid; /* the broker, this process's child */
    pthread_mutex_t lock;
} cm_privsep;

/* A provider process (PROVIDER): fds 0-2, its uid from the range, what the
 * exec step runs (providers/pctx.h cm_provider_spawn, one level down). */
typedef struct cm_privsep_spawn {
    int fds[3];
    uid_t uid;
    const char *prog;
    char *const *argv;     /* NULL-terminated, argv[0] included */
    char *const *envp;     /* NULL-terminated */
    const char *cwd;       /* NULL: "/" */
    const char *const *rw; /* NULL-terminated or NULL */
    const char *own;       /* the call directory to give uid, or NULL */
} cm_privsep_spawn;

/* The engine's drop to the service user, before its first thread
 * (capability state is per thread): no supplementary groups, securebits
 * set and locked and the bounding set emptied (both need CAP_SETPCAP: a
 * container without it keeps its runtime's bounding set, *bounding_kept
 * says so; no_new_privs still keeps exec from gaining anything), ambient
 * cleared, all uids and gids uid/gid, no capabilities, dumpable again (the
 * uid change cleared it: the broker's IDS needs the engine's children's
 * /proc files to be the service user's), no_new_privs.  Checked after. */
int cm_privsep_drop(uid_t uid, gid_t gid, bool *bounding_kept, cm_error *err);

/* Whether this root process can be split here: the broker writes the
 * cgroup.procs files of cgroups the service user owns, which root may only
 * with CAP_DAC_OVERRIDE (a container without it, the shipped podman and
 * Kubernetes set, stays one process for now).  false with why. */
bool cm_privsep_possible(char *why, size_t cap);

/* Whether uid/gid may search every directory on the way to path (the
 * sandbox child binds the rootfs with the service user's credentials);
 * NULL path: true.  false with why naming the first directory that is not. */
bool cm_privsep_path_reachable(const char *path, uid_t uid, gid_t gid, char *why, size_t cap);

/* The service user for the setting engine.user (NULL: not set): "root"
 * returns 1 (one process, not separated); "UID:GID" or a user name; unset,
 * the account `codemode`, else the last uid/gid of the sandbox range
 * [base, base + count) (*from_range true: the caller takes it out of its
 * allocator).  from says where it came from (doctor, log).  -1 with err
 * for an unknown name, root ids or a uid inside the range. */
int cm_privsep_service_user(const char *setting, uid_t base, gid_t gbase, unsigned count,
                            uid_t *uid, gid_t *gid, bool *from_range, char *from, size_t from_cap,
                            cm_error *err);

/* Starts `codemode __sandboxd` with facts on one SOCK_SEQPACKET. */
int cm_privsep_start(const cm_privsep_facts *f, cm_privsep *ps, cm_error *err);
/* Closes the channel and waits for the broker's clean-up and exit; its
 * exit status (0 after a clean end, 3 after it refused a request), -1
 * when it was never started.  Idempotent. */
int cm_privsep_stop(cm_privsep *ps);

/* The requests.  -1 with err when the operation failed (errno kept in
 * err->sys_errno) or when the channel is lost (a refused request: the
 * broker closed it; every later request fails at once). */
int cm_privsep_ids(cm_privsep *ps, int pidfd, uid_t uid, cm_error *err);
int cm_privsep_attach(cm_privsep *ps, int pidfd, const char *name, cm_error *err);
int cm_privsep_provider(cm_privsep *ps, const cm_privsep_spawn *sp, pid_t *pid, cm_error *err);
int cm_privsep_signal(cm_privsep *ps, pid_t pgid, int sig, cm_error *err);
int cm_privsep_uidkill(cm_privsep *ps, uid_t uid, const char *call_dir, cm_error *err);

#endif
