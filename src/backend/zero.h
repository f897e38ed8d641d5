/* SPDX-License-Identifier: MIT */
/*
 * zero.h: how TRIM and WRITE_ZEROES are carried out on a file.  Pure: no
 * I/O.  The engine asks zero_plan() for one step, runs it, and on a
 * fallocate error asks zero_after_falloc_error() what follows.  The rules
 * Z1-Z6 are at the top of zero.c.
 */
#ifndef LOOPD_ZERO_H
#define LOOPD_ZERO_H

#include <stdbool.h>
#include <stdint.h>

/* What the file can do; bits turn off for good (Z6). */
enum zero_cap {
	ZERO_CAP_PUNCH = 1 << 0, /* FALLOC_FL_PUNCH_HOLE | KEEP_SIZE */
	ZERO_CAP_ZERO_RANGE = 1 << 1, /* FALLOC_FL_ZERO_RANGE */
};

struct zero_req {
	bool trim; /* NBD_CMD_TRIM, else NBD_CMD_WRITE_ZEROES */
	bool no_hole; /* NBD_CMD_FLAG_NO_HOLE */
	bool fast; /* NBD_CMD_FLAG_FAST_ZERO */
	bool no_falloc; /* fallocate refused this range (EINVAL): Z6 */
	uint64_t off, len;
};

struct zero_geom {
	uint32_t min_block; /* advertised minimum block size (Z1) */
	uint32_t dio_align; /* O_DIRECT alignment, or 1 if buffered (Z5) */
};

enum zero_step {
	ZERO_DONE, /* nothing to do: reply with err (0 for a no-op TRIM) */
	ZERO_FALLOC, /* fallocate(mode, off, len) */
	ZERO_WRITE, /* write zeroes over [off, off+len) */
};

struct zero_plan {
	enum zero_step step;
	int mode; /* ZERO_FALLOC: the fallocate mode */
	unsigned int cap; /* ZERO_FALLOC: the enum zero_cap it relies on */
	uint64_t off, len; /* the range the step acts on */
	int err; /* ZERO_DONE: 0 or a negative errno for the client */
};

/* The next step for r, given the capabilities caps (Z1-Z5). */
void zero_plan(const struct zero_req *r, unsigned int caps,
	       const struct zero_geom *g, struct zero_plan *p);

/*
 * A fallocate step of plan p failed with err (negative).  Returns the
 * capability bit to turn off (0 for none) and sets *retry when r should
 * be planned again (Z6); otherwise err is the request's answer.  May set
 * r->no_falloc.
 */
unsigned int zero_after_falloc_error(struct zero_req *r,
				     const struct zero_plan *p, int err,
				     bool *retry);

#endif /* LOOPD_ZERO_H */
