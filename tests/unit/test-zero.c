/* SPDX-License-Identifier: MIT */
/*
 * test-zero.c: how TRIM and WRITE_ZEROES are carried out (Z1-Z6, top of
 * src/backend/zero.c).  A table of requests, capabilities and geometry with the
 * step each must plan, then the fallocate error cases, then the race of
 * two requests failing at once.
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>

#include "backend/zero.h"

#define PUNCH ZERO_CAP_PUNCH
#define ZR ZERO_CAP_ZERO_RANGE
#define ALL (PUNCH | ZR)
#define PUNCH_MODE (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)

struct plan_case {
	const char *what;
	struct zero_req r;
	unsigned int caps;
	uint32_t min_block, dio_align;
	enum zero_step step;
	int mode; /* ZERO_FALLOC */
	uint64_t off, len; /* ZERO_FALLOC, ZERO_WRITE */
	int err; /* ZERO_DONE */
};

#define TRIM(o, l)                                                             \
	{                                                                      \
		.trim = true, .off = (o), .len = (l)                           \
	}
#define WZ(o, l)                                                               \
	{                                                                      \
		.off = (o), .len = (l)                                         \
	}
#define WZ_NH(o, l)                                                            \
	{                                                                      \
		.no_hole = true, .off = (o), .len = (l)                        \
	}
#define WZ_FAST(o, l)                                                          \
	{                                                                      \
		.fast = true, .off = (o), .len = (l)                           \
	}
#define WZ_NH_FAST(o, l)                                                       \
	{                                                                      \
		.no_hole = true, .fast = true, .off = (o), .len = (l)          \
	}
#define WZ_NOFALLOC(o, l)                                                      \
	{                                                                      \
		.no_falloc = true, .off = (o), .len = (l)                      \
	}
#define TRIM_NOFALLOC(o, l)                                                    \
	{                                                                      \
		.trim = true, .no_falloc = true, .off = (o), .len = (l)        \
	}

static const struct plan_case cases[] = {
	/* Z1: TRIM punches the whole min_block blocks inside, or nothing. */
	{"Z1 trim rounds inward", TRIM(1000, 10000), ALL, 4096, 4096,
	 ZERO_FALLOC, PUNCH_MODE, 4096, 4096, 0},
	{"Z1 trim aligned", TRIM(8192, 8192), ALL, 4096, 4096, ZERO_FALLOC,
	 PUNCH_MODE, 8192, 8192, 0},
	{"Z1 trim inside one block does nothing", TRIM(100, 3000), ALL, 4096,
	 4096, ZERO_DONE, 0, 0, 0, 0},
	{"Z1 trim buffered: byte-exact", TRIM(1000, 10000), ALL, 1, 1,
	 ZERO_FALLOC, PUNCH_MODE, 1000, 10000, 0},
	{"Z1 block device: 512-byte blocks", TRIM(100, 2000), ALL, 512, 1,
	 ZERO_FALLOC, PUNCH_MODE, 512, 1536, 0},
	{"Z1 trim without punch does nothing", TRIM(0, 8192), ZR, 4096, 4096,
	 ZERO_DONE, 0, 0, 0, 0},
	/* Z2: punch, else zero range, else write. */
	{"Z2 punch first", WZ(0, 8192), ALL, 4096, 4096, ZERO_FALLOC,
	 PUNCH_MODE, 0, 8192, 0},
	{"Z2 punch covers partial blocks", WZ(100, 1000), ALL, 4096, 4096,
	 ZERO_FALLOC, PUNCH_MODE, 100, 1000, 0},
	{"Z2 zero range without punch", WZ(0, 8192), ZR, 4096, 4096,
	 ZERO_FALLOC, FALLOC_FL_ZERO_RANGE, 0, 8192, 0},
	{"Z2 write without fallocate", WZ(0, 8192), 0, 4096, 4096, ZERO_WRITE,
	 0, 0, 8192, 0},
	/* Z3: NO_HOLE never punches. */
	{"Z3 no-hole zero range", WZ_NH(0, 8192), ALL, 4096, 4096, ZERO_FALLOC,
	 FALLOC_FL_ZERO_RANGE, 0, 8192, 0},
	{"Z3 no-hole on tmpfs (punch only) writes", WZ_NH(0, 8192), PUNCH, 1, 1,
	 ZERO_WRITE, 0, 0, 8192, 0},
	/* Z4: FAST_ZERO fails where zeroes would be written. */
	{"Z4 fast with punch", WZ_FAST(0, 8192), PUNCH, 1, 1, ZERO_FALLOC,
	 PUNCH_MODE, 0, 8192, 0},
	{"Z4 fast no-hole on tmpfs", WZ_NH_FAST(0, 8192), PUNCH, 1, 1,
	 ZERO_DONE, 0, 0, 0, -ENOTSUP},
	{"Z4 fast without fallocate", WZ_FAST(0, 8192), 0, 1, 1, ZERO_DONE, 0,
	 0, 0, -ENOTSUP},
	/* Z5: O_DIRECT zero writes must be aligned. */
	{"Z5 unaligned under O_DIRECT", WZ(100, 8192), 0, 4096, 4096, ZERO_DONE,
	 0, 0, 0, -EINVAL},
	{"Z5 unaligned buffered", WZ(100, 8192), 0, 1, 1, ZERO_WRITE, 0, 100,
	 8192, 0},
	/* Z6: after EINVAL from fallocate, this request writes. */
	{"Z6 no_falloc writes", WZ_NOFALLOC(0, 8192), ALL, 512, 1, ZERO_WRITE,
	 0, 0, 8192, 0},
	{"Z6 no_falloc trim does nothing", TRIM_NOFALLOC(0, 8192), ALL, 512, 1,
	 ZERO_DONE, 0, 0, 0, 0},
};

static void test_plan_table(void **st)
{
	size_t i;

	(void)st;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct plan_case *c = &cases[i];
		struct zero_geom g = {c->min_block, c->dio_align};
		struct zero_plan p;
		bool ok;

		zero_plan(&c->r, c->caps, &g, &p);
		ok = p.step == c->step;
		if (ok && c->step == ZERO_FALLOC)
			ok = p.mode == c->mode && p.off == c->off &&
			     p.len == c->len;
		if (ok && c->step == ZERO_WRITE)
			ok = p.off == c->off && p.len == c->len;
		if (ok && c->step == ZERO_DONE)
			ok = p.err == c->err;
		if (!ok) {
			print_error("%s: got step %d mode %#x [%llu, +%llu) "
				    "err %d\n",
				    c->what, p.step, (unsigned)p.mode,
				    (unsigned long long)p.off,
				    (unsigned long long)p.len, p.err);
			fail();
		}
	}
}

/* Z6: EOPNOTSUPP/ENODEV turn off the failed mode's bit only. */
static void test_z6_unsupported_turns_off_its_own_mode(void **st)
{
	struct zero_req r = WZ_NH(0, 4096);
	struct zero_geom g = {1, 1};
	struct zero_plan p;
	bool retry;

	(void)st;
	zero_plan(&r, ALL, &g, &p);
	assert_int_equal(p.mode, FALLOC_FL_ZERO_RANGE);
	assert_int_equal(zero_after_falloc_error(&r, &p, -EOPNOTSUPP, &retry),
			 ZR);
	assert_true(retry);

	r = (struct zero_req)WZ(0, 4096);
	zero_plan(&r, ALL, &g, &p);
	assert_int_equal(zero_after_falloc_error(&r, &p, -ENODEV, &retry),
			 PUNCH);
	assert_true(retry);
}

/* Z6: EINVAL falls back for this request only; other errors answer. */
static void test_z6_einval_and_other_errors(void **st)
{
	struct zero_req r = WZ(100, 1000);
	struct zero_geom g = {512, 1};
	struct zero_plan p;
	bool retry;

	(void)st;
	zero_plan(&r, ALL, &g, &p);
	assert_int_equal(zero_after_falloc_error(&r, &p, -EINVAL, &retry), 0);
	assert_true(retry);
	assert_true(r.no_falloc);
	zero_plan(&r, ALL, &g, &p);
	assert_int_equal(p.step, ZERO_WRITE);

	r = (struct zero_req)WZ(0, 4096);
	zero_plan(&r, ALL, &g, &p);
	assert_int_equal(zero_after_falloc_error(&r, &p, -EIO, &retry), 0);
	assert_false(retry);
	assert_false(r.no_falloc);
}

/*
 * Z6, the race: two NO_HOLE requests planned while ZERO_RANGE seemed
 * available both fail with EOPNOTSUPP.  Each turns off ZERO_RANGE; punch
 * stays on, so a later TRIM still punches.
 */
static void test_z6_two_failures_at_once_keep_punch(void **st)
{
	struct zero_req a = WZ_NH(0, 4096), b = WZ_NH(4096, 4096);
	struct zero_req t = TRIM(0, 8192);
	struct zero_geom g = {1, 1};
	struct zero_plan pa, pb, pt;
	unsigned int caps = ALL;
	bool retry;

	(void)st;
	zero_plan(&a, caps, &g, &pa);
	zero_plan(&b, caps, &g, &pb);
	caps &= ~zero_after_falloc_error(&a, &pa, -EOPNOTSUPP, &retry);
	caps &= ~zero_after_falloc_error(&b, &pb, -EOPNOTSUPP, &retry);
	assert_int_equal(caps, PUNCH);
	zero_plan(&a, caps, &g, &pa);
	assert_int_equal(pa.step, ZERO_WRITE); /* Z3: never a punch */
	zero_plan(&t, caps, &g, &pt);
	assert_int_equal(pt.step, ZERO_FALLOC);
	assert_int_equal(pt.mode, PUNCH_MODE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_table),
		cmocka_unit_test(test_z6_unsupported_turns_off_its_own_mode),
		cmocka_unit_test(test_z6_einval_and_other_errors),
		cmocka_unit_test(test_z6_two_failures_at_once_keep_punch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
