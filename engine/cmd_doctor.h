/* cmd_doctor.h — `codemode doctor [--config FILE]` (engine/cmd_doctor.c). */
#ifndef CM_CMD_DOCTOR_H
#define CM_CMD_DOCTOR_H

/* Exit 0 when all required layers are active and the live check passed,
 * 1 when not, 2 on usage or config errors.  exe_dir: the codemode binary's
 * directory (default rootfs). */
int cm_cmd_doctor(int argc, char **argv, const char *exe_dir);

#endif
