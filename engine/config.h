/* config.h — the engine configuration: a YAML or JSON file with the
 * `.utcp_config.json` keys (`manual_call_templates`, `variables`,
 * `load_variables_from`) plus an optional `engine:` section for engine
 * settings.  Unknown top-level keys are an error (typos must not pass). */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "cm_limits.h"
#include "yamljson.h"

typedef struct cm_config {
    char *path;     /* config file path, NULL when running on defaults */
    char *base_dir; /* directory of the config file (or cwd): relative paths resolve here */
    cJSON *root;    /* whole document, owned */
    /* borrowed from root (may be NULL) */
    const cJSON *manual_call_templates; /* array */
    const cJSON *variables;             /* object */
    const cJSON *load_variables_from;   /* array */
    /* engine: section, defaults filled in */
    char *rootfs;             /* engine.rootfs, absolute; default: <dir of binary>/rootfs */
    char *runtime_dir;        /* engine.runtime_dir: host-wide locks (/run/codemode) */
    char *user;               /* engine.user: the service user a root engine drops to (name, or
                                 "root": one process); NULL: not set (engine/privdrop.c) */
    bool rootfs_build_on_use; /* rootless default: the user's data-dir rootfs, built if missing */
    char *rootfs_full;        /* engine.rootfs_full: for chains whose imports are widened
                                 (imports: all, or a policy list beyond the default);
                                 default: "<rootfs>-full" when it exists, else rootfs */
    int workers;              /* engine.workers: threads running tool calls/chains (default 8) */
    int queue_max;            /* engine.queue_max: queued requests before `busy` (default 256) */
    int default_timeout_s;    /* engine.default_timeout_s (30) */
    int max_timeout_s;        /* engine.max_timeout_s (300) */
    int drain_timeout_s;      /* engine.drain_timeout_s: SIGTERM waits this long for chains (30) */
    size_t max_request_bytes; /* engine.max_request_bytes: one JSON-RPC line (4 MiB) */
    size_t max_output_bytes;  /* engine.max_output_bytes: a chain's logs (1 MiB) */
    size_t max_result_bytes;  /* engine.max_result_bytes: a chain's result (4 MiB) */
    size_t tmp_size_bytes;    /* engine.tmp_size_mb: sandbox /tmp (16 MiB) */
    uid_t sandbox_uid;        /* engine.sandbox_uid (100000) */
    gid_t sandbox_gid;        /* engine.sandbox_gid (100000) */
    int max_tool_calls;       /* engine.max_tool_calls per chain (1000) */
    int max_inflight_calls;   /* engine.max_inflight_calls per chain (16) */
    size_t max_tool_output_bytes; /* engine.max_tool_output_bytes (1 MiB) */
    /* in-flight tool-call data (issue 14): arguments of running calls and
       results not yet sent to the sandbox, counted as their JSON size */
    size_t chain_inflight_bytes;  /* engine.chain_inflight_mb: per chain (32 MiB) */
    size_t inflight_bytes;        /* engine.inflight_mb: all chains together (96 MiB) */
    size_t max_call_bytes;        /* engine.max_call_mb: one tool-call frame (8 MiB) */
    size_t max_call_result_bytes; /* engine.max_call_result_mb: one tool result (4 MiB) */
    char *metrics_file;           /* engine.metrics_file: Prometheus text, rewritten every 5 s */
    int metrics_port;             /* engine.metrics_port: serve /metrics on 127.0.0.1 (0 = off) */
    const cJSON *policy;          /* engine.policy (borrowed; validated by policies/session.c) */
    const cJSON *http;            /* engine.http (borrowed; validated by engine/http_config.c) */
    /* isolation (issue #3) */
    size_t memory_bytes;         /* engine.memory_mb: per-chain memory cap, no swap (256 MiB) */
    int cpu_quota_pct;           /* engine.cpu_quota_pct: per-chain CPU quota, % of one CPU (100) */
    int pids_max;                /* engine.pids_max: per-chain process/thread cap (64) */
    int sandbox_uid_range;       /* engine.sandbox_uid_range: ids from sandbox_uid/gid (1000) */
    int pool_size;               /* engine.pool_size: warm minimal-rootfs sandboxes (2; 0 = off) */
    int pool_full_size;          /* engine.pool_full_size: warm full-rootfs sandboxes (0) */
    int pool_refill_concurrency; /* engine.pool_refill_concurrency: parallel refills (1) */
    bool imports_all;            /* engine.imports: "all" = whole rootfs stdlib ("default") */
    bool test_mode;              /* engine.test_mode: honour CODEMODE_TEST_DISABLE_LAYER */
    bool zygote;        /* engine.zygote: fork sandboxes from a pre-imported zygote (true) */
    bool provider_jail; /* engine.provider_jail: provider processes jailed (true; see
                           isolate/provider_jail.h) */
    const cJSON *public_variables; /* names whose values are not redacted (redact.h) */
    const cJSON *require_layers;   /* engine.require_layers: array of layer names (doctor) */
    int client_queue_max;          /* engine.client_queue_max: one connection's queued + running
                                      slow requests before `busy` (32): a flooding client cannot
                                      fill the whole queue (issue 9) */
    cm_reg_limits registration;    /* engine.registration (issue 14) */
} cm_config;

/* path NULL → defaults only.  exe_dir is where the codemode binary lives
 * (for the default rootfs path). */
int cm_config_load(const char *path, const char *exe_dir, cm_config *cfg, cm_error *err);
void cm_config_free(cm_config *cfg);
/* The engine's maximum limits (engine.max_timeout_s, memory_mb,
 * cpu_quota_pct, pids_max, max_tool_calls, max_output_bytes,
 * max_result_bytes) in the one limits type. */
cm_limits cm_config_limits(const cm_config *cfg);

struct cm_iso_config;
/* The isolation settings (isolate/isolation.h) of cfg; strings borrowed. */
void cm_config_iso(const cm_config *cfg, struct cm_iso_config *out);

#endif
