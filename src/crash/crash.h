/* SPDX-License-Identifier: MIT */
/*
 * crash.h: `loopd crash`, the crash explorer (src/crash/): its entry
 * point, which main.c calls with argv[0] the subcommand name.  It returns
 * the process exit status: 0 every state passed, 1 a state failed, 2
 * usage or tool error, or interrupted.
 */
#ifndef LOOPD_CRASH_CRASH_H
#define LOOPD_CRASH_CRASH_H

int cmd_crash(int argc, char **argv);

#endif /* LOOPD_CRASH_CRASH_H */
