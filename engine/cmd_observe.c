/* cmd_observe.c — `codemode stats` and `codemode health`: the operator's
 * view of a running engine over its socket (the same codemode/ methods a
 * monitoring agent or a Kubernetes probe uses). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "util.h"

static int parse_socket_opts(int argc, char **argv, const char *usage, char **socket_path,
                             bool *flag, const char *flag_name)
{
    const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                  {flag_name, no_argument, NULL, 'f'},
                                  {"help", no_argument, NULL, 'h'},
                                  {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        if (c == 's') {
            free(*socket_path);
            *socket_path = cm_xstrdup(optarg);
        } else if (c == 'f') {
            *flag = true;
        } else {
            fputs(usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (!*socket_path)
        *socket_path = cm_default_socket_path();
    return -1;
}

static int call(const char *socket_path, const char *method, cJSON **result, const char *cmd)
{
    cm_error err;
    cm_autojson cJSON *resp = NULL;
    if (cm_client_call(socket_path, method, NULL, 10000, &resp, &err) < 0) {
        fprintf(stderr, "codemode %s: %s\n", cmd, err.message);
        return 2;
    }
    cJSON *r = cJSON_DetachItemFromObjectCaseSensitive(resp, "result");
    if (!r) {
        cm_autofree char *text = cm_json_print(resp);
        fprintf(stderr, "codemode %s: engine error: %s\n", cmd, text);
        return 2;
    }
    *result = r;
    return 0;
}

int cm_cmd_stats(int argc, char **argv)
{
    static const char usage[] = "usage: codemode stats [--socket PATH] [--prometheus]\n"
                                "Prints the engine's counters (JSON) or its Prometheus metrics.\n";
    cm_autofree char *socket_path = NULL;
    bool prometheus = false;
    int rc = parse_socket_opts(argc, argv, usage, &socket_path, &prometheus, "prometheus");
    if (rc >= 0)
        return rc;
    cm_autojson cJSON *result = NULL;
    if ((rc = call(socket_path, prometheus ? "codemode/metrics" : "codemode/stats", &result,
                   "stats")) != 0)
        return rc;
    if (prometheus) {
        const char *text = cm_json_str(result, "text");
        fputs(text ? text : "", stdout);
        return text ? 0 : 2;
    }
    cm_autofree char *text = cJSON_Print(result);
    printf("%s\n", text);
    return 0;
}

int cm_cmd_health(int argc, char **argv)
{
    static const char usage[] = "usage: codemode health [--socket PATH] [--quiet]\n"
                                "Exit 0 when the engine is ready, 1 when it is not, 2 when it "
                                "cannot be reached.\n";
    cm_autofree char *socket_path = NULL;
    bool quiet = false;
    int rc = parse_socket_opts(argc, argv, usage, &socket_path, &quiet, "quiet");
    if (rc >= 0)
        return rc;
    cm_autojson cJSON *result = NULL;
    if ((rc = call(socket_path, "codemode/health", &result, "health")) != 0)
        return rc;
    if (!quiet) {
        cm_autofree char *text = cJSON_Print(result);
        printf("%s\n", text);
    }
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ready")) ? 0 : 1;
}
