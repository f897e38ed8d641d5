/* SPDX-License-Identifier: MIT */
/*
 * rounding.h: rounding to a block size, the one copy of it.  Any nonzero
 * alignment works (block sizes are powers of two, but the explorer's
 * geometry need not be).  Tested by tests/unit/test-util.c.
 */
#ifndef LOOPD_UTIL_ROUNDING_H
#define LOOPD_UTIL_ROUNDING_H

#include <stdbool.h>
#include <stdint.h>

static inline uint64_t round_down(uint64_t v, uint64_t a)
{
	return v / a * a;
}

/* v rounded up to a multiple of a; saturates instead of wrapping. */
static inline uint64_t round_up(uint64_t v, uint64_t a)
{
	uint64_t d = round_down(v, a);

	if (d == v)
		return v;
	return d > UINT64_MAX - a ? UINT64_MAX : d + a;
}

static inline bool is_aligned(uint64_t v, uint64_t a)
{
	return v % a == 0;
}

#endif /* LOOPD_UTIL_ROUNDING_H */
