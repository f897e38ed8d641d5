/* SPDX-License-Identifier: MIT */
/*
 * zero.c: how TRIM and WRITE_ZEROES are carried out on a file (zero.h).
 *
 * Rules, cited as Z1-Z6:
 *
 * Z1. TRIM is advisory (NBD: the client may assume nothing about the
 *     range until it writes it again).  It punches exactly the whole
 *     blocks of the advertised minimum block size that lie inside its
 *     range, or does nothing at all when the file cannot punch or no whole
 *     block lies inside.  Never more, never a partial block: the crash
 *     explorer models a TRIM as exactly this (docs/trace-format.md), so the
 *     trace describes what the file got.
 * Z2. WRITE_ZEROES without NO_HOLE may free the space: punch, else
 *     FALLOC_FL_ZERO_RANGE, else write zeroes.
 * Z3. WRITE_ZEROES with NO_HOLE keeps the range allocated (NBD: the
 *     server SHOULD NOT deallocate it): ZERO_RANGE, else write zeroes;
 *     never punch.
 * Z4. FAST_ZERO: only a fallocate is fast.  Where the next step would be
 *     writing zeroes, the request fails at once with ENOTSUP, which the
 *     client expects and which says nothing about the data (no latch, R5).
 * Z5. Writing zeroes through O_DIRECT needs a range aligned to the O_DIRECT
 *     alignment; an unaligned one is refused with EINVAL (also no latch).
 * Z6. A fallocate that fails with EOPNOTSUPP or ENODEV turns off the one
 *     capability its mode relied on, never another, and the request is
 *     planned again; two requests that fail at once each turn off their
 *     own mode's bit.  EINVAL (a block device given a range it cannot
 *     zero) makes only this request fall back to writing zeroes (a TRIM:
 *     to nothing).  EAGAIN and EINTR mean "again, the same step".  Any
 *     other error is the request's answer.
 */
#include "backend/zero.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>

static uint64_t round_up(uint64_t v, uint32_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t round_down(uint64_t v, uint32_t a)
{
	return v / a * a;
}

static void falloc(struct zero_plan *p, unsigned int cap, uint64_t off,
		   uint64_t len)
{
	p->step = ZERO_FALLOC;
	p->cap = cap;
	p->mode = cap == ZERO_CAP_PUNCH
			  ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			  : FALLOC_FL_ZERO_RANGE;
	p->off = off;
	p->len = len;
}

static void done(struct zero_plan *p, int err)
{
	p->step = ZERO_DONE;
	p->err = err;
}

void zero_plan(const struct zero_req *r, unsigned int caps,
	       const struct zero_geom *g, struct zero_plan *p)
{
	*p = (struct zero_plan){.off = r->off, .len = r->len};
	if (r->no_falloc)
		caps = 0;
	if (r->trim) {
		/* Z1 */
		uint64_t lo = round_up(r->off, g->min_block);
		uint64_t hi = round_down(r->off + r->len, g->min_block);

		if (!(caps & ZERO_CAP_PUNCH) || hi <= lo)
			done(p, 0);
		else
			falloc(p, ZERO_CAP_PUNCH, lo, hi - lo);
		return;
	}
	if (!r->no_hole && (caps & ZERO_CAP_PUNCH)) {
		falloc(p, ZERO_CAP_PUNCH, r->off, r->len); /* Z2 */
		return;
	}
	if (caps & ZERO_CAP_ZERO_RANGE) {
		falloc(p, ZERO_CAP_ZERO_RANGE, r->off, r->len); /* Z2, Z3 */
		return;
	}
	if (r->fast) {
		done(p, -ENOTSUP); /* Z4 */
		return;
	}
	if ((r->off | r->len) % g->dio_align) {
		done(p, -EINVAL); /* Z5 */
		return;
	}
	p->step = ZERO_WRITE;
}

unsigned int zero_after_falloc_error(struct zero_req *r,
				     const struct zero_plan *p, int err,
				     bool *retry)
{
	*retry = false;
	switch (err) {
	case -EOPNOTSUPP:
	case -ENODEV:
		*retry = true;
		return p->cap; /* Z6: the mode that failed, and only it */
	case -EINVAL:
		r->no_falloc = true;
		*retry = true;
		return 0;
	default:
		return 0;
	}
}
