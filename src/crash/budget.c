/* SPDX-License-Identifier: MIT */
/*
 * budget.c: the budget of `loopd crash`, how many states each crash point
 * gets (budget.h).  Pure: no I/O, no globals.
 *
 * X1. Budget.  --max-states B is shared by the crash points: when every
 *     point's list fits, all of it; else water-filling (each point gets
 *     min(demand, λ)); when B is smaller than the number of points, B
 *     points are drawn (seeded), weighted by |P|.  A point's demand is
 *     its number of distinct combinations when exhaustive, else its list.
 */
#include "crash/budget.h"

#include <assert.h>
#include <string.h>

uint64_t budget_demand(const struct crash_point *pt)
{
	/* An exhaustive list repeats its 4 fixed items (S5) among the
	   combinations. */
	uint64_t d = pt->exhaustive ? pt->items - 4 : pt->items;

	return d ? d : 1;
}

/* The weight of a point in a draw: |P| + 1, so |P| = 0 can be drawn. */
static uint64_t weight(const struct budget_point *pt)
{
	return pt->n_pending + 1ull;
}

/*
 * Fewer states than points: b points are drawn, one state each, weighted
 * by |P| + 1, without replacement (a drawn point leaves the urn).
 */
static void draw(const struct budget_point *pts, uint32_t n, uint64_t b,
		 uint64_t seed, uint32_t *out)
{
	uint64_t x = seed ^ 0x5ca1ab1e, wsum = 0, r, acc;
	uint32_t k;
	uint64_t got;

	memset(out, 0, n * sizeof *out);
	for (k = 0; k < n; k++)
		if (pts[k].demand)
			wsum += weight(&pts[k]);
	for (got = 0; got < b; got++) {
		/* b < the points with demand: one is left in the urn. */
		assert(wsum > 0);
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		r = (x >> 11) % wsum;
		for (k = 0, acc = 0; k < n; k++) {
			if (!pts[k].demand || out[k])
				continue;
			acc += weight(&pts[k]);
			if (r < acc)
				break;
		}
		out[k] = 1;
		wsum -= weight(&pts[k]);
	}
}

/* sum(min(demand, lambda)) over the points. */
static uint64_t filled(const struct budget_point *pts, uint32_t n,
		       uint64_t lambda)
{
	uint64_t sum = 0;
	uint32_t k;

	for (k = 0; k < n; k++)
		sum += pts[k].demand < lambda ? pts[k].demand : lambda;
	return sum;
}

/* Water-filling: the largest lambda with sum(min(d, lambda)) <= b. */
static void fill(const struct budget_point *pts, uint32_t n, uint64_t b,
		 uint32_t *out)
{
	uint64_t lo = 1, hi = b, sum = 0;
	uint32_t k;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;

		if (filled(pts, n, mid) <= b)
			lo = mid;
		else
			hi = mid - 1;
	}
	for (k = 0; k < n; k++) {
		uint64_t d = pts[k].demand;

		out[k] = (uint32_t)(d < lo ? d : lo);
		sum += out[k];
	}
	/* The remainder, one each, to points that want more (later first:
	   they have the most history behind them). */
	for (k = n; k-- > 0 && sum < b;)
		if (pts[k].demand > out[k]) {
			out[k]++;
			sum++;
		}
}

void budget_allocate(const struct budget_point *pts, uint32_t n,
		     uint64_t max_states, uint64_t seed, uint32_t *out)
{
	uint64_t total = 0;
	uint32_t k, n_sel = 0;

	for (k = 0; k < n; k++) {
		total += pts[k].demand;
		n_sel += pts[k].demand > 0;
	}
	if (!max_states || total <= max_states) {
		for (k = 0; k < n; k++)
			out[k] = (uint32_t)pts[k].demand;
		return;
	}
	if (max_states < n_sel)
		draw(pts, n, max_states, seed, out);
	else
		fill(pts, n, max_states, out);
}
