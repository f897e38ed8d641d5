/* SPDX-License-Identifier: MIT */
/* tracecmd.h: `loopd trace dump|stats|mark` (tracecmd.c). */
#ifndef LOOPD_TRACE_TRACECMD_H
#define LOOPD_TRACE_TRACECMD_H

/* argv[0] is "trace".  Returns the process exit status. */
int cmd_trace(int argc, char **argv);

#endif /* LOOPD_TRACE_TRACECMD_H */
