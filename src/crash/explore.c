/* SPDX-License-Identifier: MIT */
/* TEMPORARY link shim until the explorer lands: overwrite this file. */
#include "recorder.h"

#include <stdio.h>

int cmd_trace(int argc, char **argv)
{
	fprintf(stderr, "loopd: trace: not built yet\n");
	return 2;
}
int cmd_crash(int argc, char **argv)
{
	fprintf(stderr, "loopd: crash: not built yet\n");
	return 2;
}
