/* SPDX-License-Identifier: MIT */
/*
 * budget.h: how --max-states is shared by the crash points of `loopd
 * crash` (rule X1, in budget.c).  Pure: no I/O, no globals; tested by
 * tests/unit/test-budget.c.
 */
#ifndef LOOPD_CRASH_BUDGET_H
#define LOOPD_CRASH_BUDGET_H

#include <stdint.h>

#include "trace/states.h"

/* One crash point, as the budget sees it. */
struct budget_point {
	uint64_t demand; /* states it can use; 0: it takes no part */
	uint32_t n_pending; /* |P|: a draw weighs it |P| + 1 */
};

/* X1: the demand of a selected point (at least 1). */
uint64_t budget_demand(const struct crash_point *pt);

/*
 * X1: share max_states (0: no limit) among the n points: out[k] states
 * for point k, 0 for a point without demand.  Deterministic in (points,
 * max_states, seed).
 */
void budget_allocate(const struct budget_point *pts, uint32_t n,
		     uint64_t max_states, uint64_t seed, uint32_t *out);

#endif /* LOOPD_CRASH_BUDGET_H */
