/* SPDX-License-Identifier: MIT */
/* log.c: the one logger: one line on stderr per message (log.h). */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool log_verbose;

void log_msg(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One write per line so lines from threads do not interleave. */
	fprintf(stderr, "loopd: %s\n", buf);
}
