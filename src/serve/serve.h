/* SPDX-License-Identifier: MIT */
/*
 * serve.h: `loopd serve` (serve.c).
 */
#ifndef LOOPD_SERVE_SERVE_H
#define LOOPD_SERVE_SERVE_H

/*
 * Run `loopd serve` (argv[0] is "serve") until SIGINT or SIGTERM.  Errors
 * are logged as one line.  Returns the process exit status, which main()
 * returns: the process ends there only (in the launching process of a
 * daemon too, which returns once the daemon is listening).
 */
int cmd_serve(int argc, char **argv);

#endif /* LOOPD_SERVE_SERVE_H */
