/* test_isolation.c — unit tests for the isolation context's pure parts:
 * the seccomp filter compiles to a sane BPF program, layer names, the
 * sandbox uid allocator, and the isolation keys of the config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "isolation.h"
#include "util.h"

static void test_seccomp_compiles(void **state)
{
    (void)state;
    cm_isolation iso;
    memset(&iso, 0, sizeof iso);
    cm_error err;
    assert_int_equal(cm_seccomp_compile(&iso, &err), 0);
    assert_true(iso.seccomp_len > 50);
    assert_true(iso.seccomp_len <= BPF_MAXINSNS);
    /* first instruction loads the architecture (seccomp_data.arch at offset 4) */
    assert_int_equal(iso.seccomp_insns[0].k, 4);
    free(iso.seccomp_insns);
}

static void test_layer_names(void **state)
{
    (void)state;
    for (int l = 0; l < CM_LAYER_COUNT; l++)
        assert_int_equal(cm_layer_from_name(cm_layer_name((cm_layer)l)), l);
    assert_int_equal(cm_layer_from_name("nope"), -1);
    assert_string_equal(cm_layer_state_name(CM_LAYER_UNAVAILABLE), "unavailable");
}

static void test_uid_allocator(void **state)
{
    (void)state;
    cm_isolation iso;
    memset(&iso, 0, sizeof iso);
    pthread_mutex_init(&iso.uid_lock, NULL);
    iso.uid_base = 5000;
    iso.gid_base = 7000;
    iso.uid_count = 3;
    iso.uid_used = calloc(3, 1);
    uid_t u[3];
    gid_t g;
    cm_error err;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cm_isolation_take_ids(&iso, &u[i], &g, &err), 0);
        assert_int_equal(g - 7000, u[i] - 5000);
    }
    assert_true(u[0] != u[1] && u[1] != u[2] && u[0] != u[2]);
    uid_t extra;
    assert_int_equal(cm_isolation_take_ids(&iso, &extra, &g, &err), -1);
    assert_int_equal(err.kind, CM_ERR_BUSY);
    cm_isolation_release_ids(&iso, u[1]);
    assert_int_equal(cm_isolation_take_ids(&iso, &extra, &g, &err), 0);
    assert_int_equal(extra, u[1]);
    free(iso.uid_used);
    pthread_mutex_destroy(&iso.uid_lock);
}

static int load_text(const char *text, cm_config *cfg, cm_error *err)
{
    char path[] = "/tmp/cm_test_isolation_XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = cm_config_load(path, "/nonexistent", cfg, err);
    unlink(path);
    return rc;
}

static void test_config_keys(void **state)
{
    (void)state;
    cm_config cfg;
    cm_error err;
    assert_int_equal(load_text("engine:\n  memory_mb: 128\n  cpu_quota_pct: 50\n  pids_max: 16\n"
                               "  sandbox_uid_range: 10\n  imports: all\n  test_mode: true\n"
                               "  require_layers: [seccomp, bpf]\n",
                               &cfg, &err),
                     0);
    assert_int_equal(cfg.memory_bytes, 128u << 20);
    assert_int_equal(cfg.cpu_quota_pct, 50);
    assert_int_equal(cfg.pids_max, 16);
    assert_int_equal(cfg.sandbox_uid_range, 10);
    assert_true(cfg.imports_all);
    assert_true(cfg.test_mode);
    assert_int_equal(cJSON_GetArraySize(cfg.require_layers), 2);
    cm_config_free(&cfg);

    assert_int_equal(load_text("engine:\n  imports: default\n", &cfg, &err), 0);
    assert_false(cfg.imports_all);
    assert_false(cfg.test_mode);
    assert_int_equal(cfg.memory_bytes, 256u << 20);
    assert_int_equal(cfg.pids_max, 64);
    cm_config_free(&cfg);

    static const char *const bad[][2] = {
        {"engine:\n  imports: most\n", "engine.imports"},
        {"engine:\n  pids_max: 2\n", "engine.pids_max"},
        {"engine:\n  require_layers: seccomp\n", "engine.require_layers"},
        {"engine:\n  require_layers: [1]\n", "engine.require_layers"},
        {"engine:\n  test_mode: yes please\n", "engine.test_mode"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(load_text(bad[i][0], &cfg, &err), -1);
        assert_non_null(strstr(err.message, bad[i][1]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seccomp_compiles),
        cmocka_unit_test(test_layer_names),
        cmocka_unit_test(test_uid_allocator),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
