/* SPDX-License-Identifier: MIT */
/*
 * rmw.c: the read-modify-write plan of an unaligned O_DIRECT write (F2 in
 * backend/file.c; rmw.h).  The write covers the whole blocks around it:
 * the head block and the tail block are read first (once, when they are
 * the same block), the bytes the client did not send are copied from them,
 * and the window is written in one go.  The scheduler keeps such a write
 * exclusive on its blocks (R6), so the bytes read are never stale.
 */
#include "backend/rmw.h"

#include <string.h>

#include "util/rounding.h"

void rmw_plan(uint64_t off, uint64_t len, uint32_t align, struct rmw_plan *p)
{
	uint64_t end = off + len;

	p->lo = round_down(off, align);
	p->hi = round_up(end, align);
	p->head = p->lo != off;
	p->tail_off = p->hi - align;
	p->tail = p->hi != end && !(p->head && p->tail_off == p->lo);
}

void rmw_merge(const struct rmw_plan *p, uint64_t off, uint64_t len,
	       uint32_t align, uint64_t blk_off, const uint8_t *block,
	       uint8_t *buf)
{
	uint64_t end = off + len, blk_end = blk_off + align;

	if (blk_off < off) /* the bytes before the write */
		memcpy(buf + (blk_off - p->lo), block,
		       (off < blk_end ? off : blk_end) - blk_off);
	if (end < blk_end) { /* the bytes after it */
		uint64_t from = end > blk_off ? end : blk_off;

		memcpy(buf + (from - p->lo), block + (from - blk_off),
		       blk_end - from);
	}
}
