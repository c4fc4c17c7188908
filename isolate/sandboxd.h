/* sandboxd.h — the privileged part's wire format and entry point
 * (sandboxd.c; isolate/README.md "Privilege separation").  One request is
 * one SOCK_SEQPACKET message: a fixed header, then `len` bytes of
 * NUL-terminated strings, with the fds of the request as SCM_RIGHTS.  One
 * reply per request that passed validation; a request that does not pass
 * gets no reply: the broker closes the channel, cleans up and exits. */
#ifndef CM_SANDBOXD_H
#define CM_SANDBOXD_H

#include <stdint.h>

#define CM_SANDBOXD_CMD "__sandboxd"
#define CM_SBD_MAGIC 0x434d5344u        /* "CMSD" */
#define CM_SBD_MAX_FRAME (128u * 1024u) /* header + strings */
#define CM_SBD_NAME_MAX 32              /* ATTACH: [0-9a-z-]{1,32} */
#define CM_SBD_MAX_STRS 4096            /* PROVIDER: argv + envp + options */
#define CM_SBD_MAX_PROCS 4096           /* provider process groups remembered */

typedef enum cm_sbd_op {
    CM_SBD_IDS = 1,  /* pidfd; uid: write the target's id maps "0 uid 1" */
    CM_SBD_ATTACH,   /* pidfd; "name": join <instance>/name in each hierarchy */
    CM_SBD_PROVIDER, /* fds 0-2; uid; tagged strings: start a provider process */
    CM_SBD_SIGNAL,   /* pgid, sig (TERM|KILL): signal a provider process group */
    CM_SBD_UIDKILL,  /* uid [; "call dir"]: kill all of uid, remove its call dir */
} cm_sbd_op;

typedef struct cm_sbd_hdr {
    uint32_t magic;
    uint32_t op;
    uint32_t uid;  /* IDS, PROVIDER, UIDKILL */
    int32_t pgid;  /* SIGNAL */
    int32_t sig;   /* SIGNAL */
    uint32_t nstr; /* strings in the payload */
    uint32_t len;  /* payload bytes after the header */
} cm_sbd_hdr;

/* PROVIDER strings each start with a tag byte:
 *   'p' program (exactly one), 'a' argv element (at least one), 'e' KEY=VALUE,
 *   'c' working directory (at most one, absolute), 'r' a writable directory
 *   (absolute, no `..`, at most CM_JAIL_MAX_RW), 'o' the call directory
 *   to give the uid (a direct child of the work dir, at most one). */

typedef struct cm_sbd_reply {
    uint32_t magic;
    int32_t status; /* 0, or the errno of the operation */
    int32_t pid;    /* PROVIDER: the new process (the engine's child) */
} cm_sbd_reply;

/* `codemode __sandboxd --fd N --service UID:GID --range UID:GID:COUNT
 *  --workdir DIR [--instance {1|2}:DIR]... [--cgroup {1|2}:DIR]...
 *  -- EXEC-STEP-OPTIONS...`: serves requests on fd N until end-of-file or
 * a refused request, then kills what is left in the instance and cgroup
 * directories, removes them and the work dir.  Returns the exit status
 * (0 at end-of-file, 3 after a refusal, 2 on bad arguments). */
int cm_sandboxd_main(int argc, char **argv);

#endif
