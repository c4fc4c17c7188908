/* policy_cli.h — `codemode policy check|explain|test|bench` (policy_cli.c). */
#ifndef CM_POLICY_CLI_H
#define CM_POLICY_CLI_H

int cm_cmd_policy(int argc, char **argv);

#endif
