/* SPDX-License-Identifier: MIT */
/*
 * clock.h: a clock's time in nanoseconds, the one helper for the
 * engine's timestamps (the recorder, E7's poll deadline, F6's slow-write
 * test).
 */
#ifndef LOOPD_UTIL_CLOCK_H
#define LOOPD_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* LOOPD_UTIL_CLOCK_H */
