/* cmd_doctor.c — `codemode doctor [--config FILE]`: the command line and the
 * engine config are the engine's, the report is isolate's (isolate/doctor.c
 * cm_doctor_report, which gets the isolation settings only).  Why split:
 * isolate must not load or even see the engine's configuration. */
#include "cmd_doctor.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "engine.h"
#include "isolation.h"

static int doctor_config(int argc, char **argv, const char *exe_dir, cm_config *cfg)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') {
            config = optarg;
        } else {
            fprintf(c == 'h' ? stdout : stderr, "usage: codemode doctor [--config FILE]\n");
            return c == 'h' ? 1 : 2;
        }
    }
    cm_error err;
    if (cm_config_load(config, exe_dir, cfg, &err) < 0) {
        fprintf(stderr, "codemode doctor: %s\n", err.message);
        return 2;
    }
    char *real = realpath(cfg->rootfs, NULL);
    if (real) {
        free(cfg->rootfs);
        cfg->rootfs = real;
    }
    return 0;
}

int cm_cmd_doctor(int argc, char **argv, const char *exe_dir)
{
    cm_config cfg;
    int rc = doctor_config(argc, argv, exe_dir, &cfg);
    if (rc)
        return rc == 1 ? 0 : rc;
    cm_iso_config iso_cfg;
    cm_config_iso(&cfg, &iso_cfg);
    cm_error err;
    rc = cm_doctor_report(&iso_cfg, CM_VERSION, &err);
    if (rc < 0)
        fprintf(stderr, "codemode doctor: %s\n", err.message);
    cm_config_free(&cfg);
    return rc < 0 ? 2 : rc;
}
