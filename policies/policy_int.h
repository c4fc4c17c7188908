/* policy_int.h — the in-memory form of a loaded policy, shared by the
 * loader (load.c) and the deciders (decide.c, egress.c).  Immutable after
 * load except the rate buckets, which are guarded by rate_lock. */
#ifndef CM_POLICY_INT_H
#define CM_POLICY_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>

#include "policy.h"

typedef enum {
    ARG_ANY = 0,
    ARG_STRING,
    ARG_NUMBER,
    ARG_INTEGER,
    ARG_BOOLEAN,
    ARG_ARRAY,
    ARG_OBJECT,
    ARG_NULL
} arg_type;

typedef struct arg_rule {
    char *name;
    arg_type type;
    cJSON *enum_values; /* array or NULL */
    char *pattern;      /* as written; NULL when absent */
    regex_t re;
    bool has_min, has_max;
    double min, max;
    long max_length; /* -1: none; strings: bytes, arrays: items */
    bool required, forbidden;
} arg_rule;

typedef struct tool_rule {
    char *name;
    char *match;
    bool allow;
    bool audit_args;
    arg_rule *args;
    size_t nargs;
    long max_calls; /* 0: none */
    double rate;    /* calls per second per profile; 0: none */
    double burst;
    /* rate bucket (under cm_policy.rate_lock) */
    double tokens;
    int64_t last_us;
} tool_rule;

typedef struct egress_rule {
    char *host;    /* as written */
    bool wildcard; /* "*.domain": host holds ".domain" after the star */
    bool is_ip;    /* IP literal or CIDR */
    int family;
    unsigned char net[16];
    int prefix;
    long *ports; /* NULL: the scheme's default port only */
    size_t nports;
    char **schemes; /* default {"https"} */
    size_t nschemes;
} egress_rule;

/* What a profile's callers may do besides running chains (grants.c). */
typedef struct profile_grants {
    unsigned register_types; /* bit per call-template type (grants.c); 0: none */
    bool all_commands;       /* commands: all */
    char **commands;         /* allow-list for cli steps and MCP stdio command lines */
    size_t ncommands;
    bool all_env; /* env: all */
    char **env;   /* variable names a registered cli/mcp template may set */
    size_t nenv;
    bool deregister, manage_all, reload, stats, health, metrics;
} profile_grants;

struct cm_policy_profile {
    char *name;
    profile_grants grants;
    cm_limits limits;
    cJSON *imports;
    tool_rule *rules;
    size_t nrules;
    egress_rule *egress;
    size_t negress;
};

typedef struct manual_vars {
    char *manual;
    char *owner; /* NULL: the config manual; else that profile's registered manual */
    bool all;
    cJSON *names; /* array of strings */
} manual_vars;

struct cm_policy {
    atomic_int refs;
    char *path;
    cm_policy_profile *profiles;
    size_t nprofiles;
    bool has_manuals;
    manual_vars *manuals;
    size_t nmanuals;
    pthread_mutex_t rate_lock;
};

/* egress.c: address helpers used by the loader too */
int cm_egress_parse_ip(const char *text, egress_rule *r);
bool cm_egress_is_private(int family, const unsigned char *addr);

/* yamlpos.c: line/column (1-based) of the node at a path of mapping keys
 * (seg non-NULL) and sequence indexes (seg NULL, idx used).  0 when found. */
int cm_yaml_locate(const char *text, size_t len, const char *const *segs, const int *idx, int depth,
                   size_t *line, size_t *col);

/* grants.c: the profile's `grants` section; freeing it */
struct vctx;
int cm_grants_load(struct vctx *v, const cJSON *j, profile_grants *g);
void cm_grants_free(profile_grants *g);

#endif
