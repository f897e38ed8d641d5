/* SPDX-License-Identifier: MIT */
/*
 * test-budget.c: the budget of `loopd crash` (src/crash/budget.c, rule
 * X1): everything fits, water-filling, drawing points when the budget is
 * smaller than their number, and the edges (no limit, one point, points
 * without demand).
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "crash/budget.h"
#include "util/compiler.h"

#define MAXP 64

static uint64_t sum_of(const uint32_t *out, uint32_t n)
{
	uint64_t s = 0;
	uint32_t k;

	for (k = 0; k < n; k++)
		s += out[k];
	return s;
}

static uint64_t total_demand(const struct budget_point *pts, uint32_t n)
{
	uint64_t s = 0;
	uint32_t k;

	for (k = 0; k < n; k++)
		s += pts[k].demand;
	return s;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* A small deterministic generator for the property tests. */
static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* X1: a point's demand is its combinations when exhaustive, else its
   list; never 0. */
static void test_demand(void **st)
{
	struct crash_point pt = {0};

	(void)st;
	pt.exhaustive = true;
	pt.items = 4 + 16; /* the 4 fixed items, 2^4 combinations */
	assert_int_equal(budget_demand(&pt), 16);
	pt.exhaustive = false;
	pt.items = 500;
	assert_int_equal(budget_demand(&pt), 500);
	pt.exhaustive = true;
	pt.items = 4;
	assert_int_equal(budget_demand(&pt), 1);
	pt.exhaustive = false;
	pt.items = 0;
	assert_int_equal(budget_demand(&pt), 1);
}

/* X1: when every point's list fits, each point gets its demand. */
static void test_everything_fits(void **st)
{
	const struct budget_point pts[] = {
		{3, 2}, {5, 4}, {1, 0}, {200, 7}, {0, 9},
	};
	const uint32_t n = ARRAY_SIZE(pts);
	uint64_t budgets[] = {209, 1000, 0}; /* exact, more, no limit */
	uint32_t out[ARRAY_SIZE(pts)];
	size_t b;
	uint32_t k;

	(void)st;
	for (b = 0; b < ARRAY_SIZE(budgets); b++) {
		memset(out, 0xff, sizeof out);
		budget_allocate(pts, n, budgets[b], 1, out);
		for (k = 0; k < n; k++)
			assert_int_equal(out[k], pts[k].demand);
	}
}

/* Water-filling by hand: lambda 9 takes 1 + 2 + 9 + 9 + 9 = 30. */
static void test_water_filling_exact(void **st)
{
	const struct budget_point pts[] = {
		{1, 0}, {2, 1}, {10, 3}, {20, 5}, {50, 6},
	};
	const uint32_t want[] = {1, 2, 9, 9, 9};
	uint32_t out[ARRAY_SIZE(pts)];
	uint32_t k;

	(void)st;
	budget_allocate(pts, ARRAY_SIZE(pts), 30, 1, out);
	for (k = 0; k < ARRAY_SIZE(pts); k++)
		assert_int_equal(out[k], want[k]);
}

/* Lambda 6 takes 19 of 20: the one left goes to the last point that
   wants more. */
static void test_water_filling_remainder(void **st)
{
	const struct budget_point pts[] = {{1, 0}, {10, 1}, {10, 1}, {10, 1}};
	const uint32_t want[] = {1, 6, 6, 7};
	uint32_t out[ARRAY_SIZE(pts)];
	uint32_t k;

	(void)st;
	budget_allocate(pts, ARRAY_SIZE(pts), 20, 1, out);
	for (k = 0; k < ARRAY_SIZE(pts); k++)
		assert_int_equal(out[k], want[k]);
}

/*
 * Water-filling on random points: the whole budget is used, every point
 * gets min(demand, lambda) or, for the remainder, lambda + 1 within its
 * demand, and lambda is the largest level that fits.
 */
static void check_water_filling(const struct budget_point *pts, uint32_t n,
				uint64_t b, const uint32_t *out)
{
	uint64_t lambda = UINT64_MAX, fill = 0, fill1 = 0;
	uint32_t k;

	assert_int_equal(sum_of(out, n), b);
	for (k = 0; k < n; k++) {
		assert_true(out[k] <= pts[k].demand);
		if (out[k] < pts[k].demand)
			lambda = min_u64(lambda, out[k]);
	}
	assert_true(lambda != UINT64_MAX); /* someone did not get all */
	for (k = 0; k < n; k++) {
		uint64_t m = min_u64(pts[k].demand, lambda);

		assert_true(out[k] == m || out[k] == lambda + 1);
		fill += m;
		fill1 += min_u64(pts[k].demand, lambda + 1);
	}
	assert_true(fill <= b);
	assert_true(fill1 > b); /* lambda + 1 would not fit */
}

static void test_water_filling_random(void **st)
{
	struct budget_point pts[MAXP];
	uint32_t out[MAXP], n, k, n_sel;
	uint64_t x = 0x12345678, b, total;
	int round;

	(void)st;
	for (round = 0; round < 500; round++) {
		n = 1 + (uint32_t)(next_rand(&x) % MAXP);
		n_sel = 0;
		for (k = 0; k < n; k++) {
			pts[k].demand =
				next_rand(&x) % 4 ? next_rand(&x) % 300 : 0;
			pts[k].n_pending = (uint32_t)(next_rand(&x) % 50);
			n_sel += pts[k].demand > 0;
		}
		total = total_demand(pts, n);
		if (total <= n_sel)
			continue; /* nothing to fill */
		/* n_sel <= b < total */
		b = n_sel + next_rand(&x) % (total - n_sel);
		budget_allocate(pts, n, b, round, out);
		check_water_filling(pts, n, b, out);
		for (k = 0; k < n; k++)
			if (!pts[k].demand)
				assert_int_equal(out[k], 0);
	}
}

/* Fewer states than points: exactly b points drawn, one state each. */
static void test_draw_count_and_seed(void **st)
{
	struct budget_point pts[20];
	uint32_t a[20], again[20], other[20], k, n = 20;
	uint64_t b, seed;
	bool differs = false;

	(void)st;
	for (k = 0; k < n; k++) {
		pts[k].demand = 10 + k;
		pts[k].n_pending = k % 5;
	}
	for (b = 1; b < n; b++) {
		for (seed = 1; seed <= 8; seed++) {
			budget_allocate(pts, n, b, seed, a);
			assert_int_equal(sum_of(a, n), b);
			for (k = 0; k < n; k++)
				assert_true(a[k] <= 1);
			/* Deterministic for a seed. */
			budget_allocate(pts, n, b, seed, again);
			assert_memory_equal(a, again, sizeof a);
			budget_allocate(pts, n, b, seed + 100, other);
			differs |= memcmp(a, other, sizeof a) != 0;
		}
	}
	assert_true(differs); /* the seed matters */
}

/* How often point 1 of two is drawn, when one state is shared. */
static double share_of_second(const struct budget_point pts[2], uint64_t rounds)
{
	uint32_t out[2], second = 0;
	uint64_t seed;

	for (seed = 0; seed < rounds; seed++) {
		budget_allocate(pts, 2, 1, seed, out);
		assert_int_equal(out[0] + out[1], 1);
		second += out[1];
	}
	return (double)second / (double)rounds;
}

/*
 * Draws weigh a point |P| + 1: weights 1 and 10 draw the second about
 * 10 times in 11, weights 1 and 2 (|P| = 0 and 1) 2 times in 3.  Over
 * 4000 seeds the bounds are at least 6 standard deviations away.
 */
static void test_draw_weighted(void **st)
{
	const struct budget_point heavy[] = {{5, 0}, {5, 9}};
	const struct budget_point light[] = {{5, 0}, {5, 1}};
	double f;

	(void)st;
	f = share_of_second(heavy, 4000);
	assert_true(f > 0.87 && f < 0.95);
	f = share_of_second(light, 4000);
	assert_true(f > 0.62 && f < 0.71);
}

/* Points without demand are never drawn and never counted as points. */
static void test_zero_demand(void **st)
{
	const struct budget_point pts[] = {
		{0, 50}, {7, 0}, {0, 50}, {7, 0}, {7, 0}, {0, 50},
	};
	const struct budget_point none[] = {{0, 1}, {0, 2}};
	uint32_t out[ARRAY_SIZE(pts)], k;
	uint64_t seed;

	(void)st;
	for (seed = 0; seed < 200; seed++) {
		/* 2 < 3 points with demand: a draw among them only. */
		budget_allocate(pts, ARRAY_SIZE(pts), 2, seed, out);
		assert_int_equal(sum_of(out, ARRAY_SIZE(pts)), 2);
		assert_int_equal(out[0] + out[2] + out[5], 0);
	}
	/* 3 = the points with demand: water-filling, one each. */
	budget_allocate(pts, ARRAY_SIZE(pts), 3, 1, out);
	for (k = 0; k < ARRAY_SIZE(pts); k++)
		assert_int_equal(out[k], pts[k].demand ? 1 : 0);
	budget_allocate(none, 2, 5, 1, out);
	assert_int_equal(out[0] + out[1], 0);
	budget_allocate(none, 2, 0, 1, out);
	assert_int_equal(out[0] + out[1], 0);
}

/* One point: min(demand, budget), and a budget of 0 is no limit. */
static void test_one_point(void **st)
{
	const struct budget_point pt = {100, 3};
	uint32_t out;

	(void)st;
	budget_allocate(&pt, 1, 10, 1, &out);
	assert_int_equal(out, 10);
	budget_allocate(&pt, 1, 1, 1, &out);
	assert_int_equal(out, 1);
	budget_allocate(&pt, 1, 1000, 1, &out);
	assert_int_equal(out, 100);
	budget_allocate(&pt, 1, 0, 1, &out);
	assert_int_equal(out, 100);
	budget_allocate(&pt, 0, 5, 1, &out); /* no points: nothing to do */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demand),
		cmocka_unit_test(test_everything_fits),
		cmocka_unit_test(test_water_filling_exact),
		cmocka_unit_test(test_water_filling_remainder),
		cmocka_unit_test(test_water_filling_random),
		cmocka_unit_test(test_draw_count_and_seed),
		cmocka_unit_test(test_draw_weighted),
		cmocka_unit_test(test_zero_demand),
		cmocka_unit_test(test_one_point),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
