/* egress.h — the contract between whoever decides where a provider may
 * connect (the caller's policy, policies/egress.c) and the providers that
 * connect (http, MCP over HTTP).  A provider sees only these two checks, so
 * it depends on no policy type.  NULL `const cm_egress *` = no policy: the
 * provider's built-in rule applies. */
#ifndef CM_EGRESS_H
#define CM_EGRESS_H

#include <sys/socket.h>

#include "error.h"

typedef struct cm_egress {
    const void *rules; /* the deciding party's own data (a policy profile) */
    /* may a request go to this URL (scheme, host, port)?  -1, kind
     * policy_denied, with the rule named */
    int (*check_url)(const void *rules, const char *url, cm_error *err);
    /* may a connection go to this resolved address? */
    int (*check_addr)(const void *rules, const struct sockaddr *addr, cm_error *err);
} cm_egress;

#endif
