/* SPDX-License-Identifier: MIT */
/*
 * inject.h: fault injection, FOR TESTING ONLY.
 *
 * Rules come from --inject SPEC or the LOOPD_INJECT environment variable:
 *   delay=MS:OP[@START-END][*N]    delay the I/O of matching requests
 *   error=ERRNO:OP[@START-END][*N] fail matching requests with ERRNO
 * OP: read write trim zero cache status sync any.  When no rule is given,
 * inject_enabled is false and the I/O path pays one predicted branch.
 */
#ifndef LOOPD_INJECT_H
#define LOOPD_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum inject_op {
	INJ_READ = 1 << 0,
	INJ_WRITE = 1 << 1,
	INJ_TRIM = 1 << 2,
	INJ_ZERO = 1 << 3,
	INJ_CACHE = 1 << 4,
	INJ_STATUS = 1 << 5,
	INJ_SYNC = 1 << 6, /* the fdatasync run for FLUSH (and FUA) */
	INJ_ANY = 0x7f,
};

extern bool inject_enabled;

/*
 * Parse and add rules.  Returns 0, or -EINVAL with a one-line reason in
 * err.  Not thread-safe: call before the workers start.
 */
int inject_parse(const char *spec, char *err, size_t errlen);

/*
 * Look up the first rule matching op on [off, off+len) (len 0 matches any
 * range rule only if off lies inside it; sync always matches ranges).
 * Sets *delay_ms (0 if none) and *error (0 or a negative errno).
 * Thread-safe.
 */
void inject_match(enum inject_op op, uint64_t off, uint64_t len,
		  unsigned int *delay_ms, int *error);

#endif
