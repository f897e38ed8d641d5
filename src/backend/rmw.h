/* SPDX-License-Identifier: MIT */
/*
 * rmw.h: the read-modify-write of a write that is not aligned to the
 * O_DIRECT block (F2).  Pure: which blocks to read, and how to merge them
 * into the write's buffer.  Tested by tests/unit/test-rmw.c.
 */
#ifndef LOOPD_BACKEND_RMW_H
#define LOOPD_BACKEND_RMW_H

#include <stdbool.h>
#include <stdint.h>

struct rmw_plan {
	uint64_t lo, hi; /* the aligned window that is written */
	bool head; /* read the block at lo first: off is not aligned */
	bool tail; /* read the block at tail_off: the end is not aligned
		      and lies in another block than the head */
	uint64_t tail_off;
};

/* The plan for a write of [off, off+len), len > 0, blocks of align. */
void rmw_plan(uint64_t off, uint64_t len, uint32_t align, struct rmw_plan *p);

/*
 * The block at blk_off (one of the plan's) was read into block: copy into
 * the window buf (which starts at p->lo) the bytes of it that the write
 * does not cover, keeping the client's bytes in [off, off+len).
 */
void rmw_merge(const struct rmw_plan *p, uint64_t off, uint64_t len,
	       uint32_t align, uint64_t blk_off, const uint8_t *block,
	       uint8_t *buf);

#endif /* LOOPD_BACKEND_RMW_H */
