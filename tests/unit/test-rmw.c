/* SPDX-License-Identifier: MIT */
/*
 * test-rmw.c: the read-modify-write plan of an unaligned O_DIRECT write
 * (F2, src/backend/rmw.c), against a byte model: for every offset and
 * length in a few blocks, reading the planned blocks from an "old" disk
 * and merging them must give exactly the old bytes with the client's
 * written over them, and only the planned blocks are read.
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "backend/rmw.h"

#define A 16 /* a small block, so that every case is enumerable */
#define DISK (4 * A)

static void check_case(uint64_t off, uint64_t len)
{
	uint8_t disk[DISK], buf[DISK + A], want[DISK];
	struct rmw_plan p;
	uint64_t i;
	int reads = 0;

	for (i = 0; i < DISK; i++)
		disk[i] = (uint8_t)(i * 7 + 1);
	rmw_plan(off, len, A, &p);
	assert_true(p.lo <= off && p.hi >= off + len);
	assert_true(p.lo % A == 0 && p.hi % A == 0);
	assert_true(p.hi - p.lo < len + 2 * A);
	/* The client's bytes land in the window (as the engine puts them). */
	memset(buf, 0xee, sizeof buf);
	memset(buf + (off - p.lo), 0x55, len);
	if (p.head) {
		rmw_merge(&p, off, len, A, p.lo, disk + p.lo, buf);
		reads++;
	}
	if (p.tail) {
		rmw_merge(&p, off, len, A, p.tail_off, disk + p.tail_off, buf);
		reads++;
	}
	memcpy(want, disk, DISK);
	memset(want + off, 0x55, len);
	assert_memory_equal(buf, want + p.lo, p.hi - p.lo);
	/* At most the two edge blocks, and one when they are the same. */
	assert_true(reads <= (p.hi - p.lo == A ? 1 : 2));
	assert_true(p.head == (off % A != 0));
}

static void test_every_range(void **st)
{
	uint64_t off, len;

	(void)st;
	for (off = 0; off < 3 * A; off++)
		for (len = 1; off + len <= DISK; len++)
			check_case(off, len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
