/* SPDX-License-Identifier: MIT */
/* plotcmd.h: `loopd trace plot` (plotcmd.c). */
#ifndef LOOPD_TRACE_PLOTCMD_H
#define LOOPD_TRACE_PLOTCMD_H

/* argv[0] is "plot".  Returns the process exit status. */
int plotcmd_run(int argc, char **argv);

#endif /* LOOPD_TRACE_PLOTCMD_H */
