/* SPDX-License-Identifier: MIT */
/*
 * ctl.h: `loopd ctl PATH COMMAND [ARGS]` (ctl.c), the command line that
 * talks to a running server's control socket (serve/control.c).
 */
#ifndef LOOPD_SERVE_CTL_H
#define LOOPD_SERVE_CTL_H

/* argv[0] is "ctl".  Returns the exit status: 0, 1 or 2 (Q8 in ctl.c). */
int cmd_ctl(int argc, char **argv);

#endif /* LOOPD_SERVE_CTL_H */
