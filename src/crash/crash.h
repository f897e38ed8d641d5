/* SPDX-License-Identifier: MIT */
/* crash.h: `loopd crash`, the explorer's entry point. */
#ifndef LOOPD_CRASH_CRASH_H
#define LOOPD_CRASH_CRASH_H

/* argv[0] is "crash".  Returns the process exit status (0, 1 or 2). */
int cmd_crash(int argc, char **argv);

#endif /* LOOPD_CRASH_CRASH_H */
