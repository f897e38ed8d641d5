/* SPDX-License-Identifier: MIT */
/*
 * oracle.h: the membership oracle A8 (trace/oracle.c, rules O1-O5): is an
 * image one of the crash states that a plan (states.h) allows, and at
 * which crash point first?  Pure: no I/O; the caller maps the image and
 * the base image and passes their bytes.
 *
 * Use:
 *   oracle_check()        the answer, the earliest point or what refutes it
 *   oracle_presence()     which pending writes an accepted image holds
 *   oracle_writes_at(), oracle_first_point(), oracle_carries(),
 *   oracle_may_show()     the pieces of an explanation, for the report
 */
#ifndef LOOPD_TRACE_ORACLE_H
#define LOOPD_TRACE_ORACLE_H

#include <stdbool.h>
#include <stdint.h>

#include "trace/states.h"

struct oracle_result {
	bool member; /* the image is a state at some crash point */
	uint32_t point; /* member: the earliest one; else the closest (O4) */
	uint64_t n_bad; /* pieces not explained at point (0: member) */
	uint64_t n_never; /* pieces explained at no point */
	bool never; /* the piece below is explained at no point */
	uint64_t bad_off, bad_len; /* not member: the first piece of O4 */
};

/*
 * O1-O4: whether img (p->hdr.size bytes, as base) is a crash state of the
 * plan, under its model, unit and garbage option (p->opts).  per_point,
 * if not NULL, gets for each crash point the number of pieces it does not
 * explain (0: img is a state there).  Returns 0, or
 * -ENOMEM, or -ENOTSUP when the model's D(t) shrinks from one point to a
 * later one (O3 relies on it growing).
 */
int oracle_check(const struct crash_plan *p, const uint8_t *base,
		 const uint8_t *img, struct oracle_result *res,
		 uint64_t *per_point);

/* O5: one pending write at a point. */
struct oracle_presence {
	uint64_t can; /* its pieces where it may show and differs from D(t) */
	uint64_t shown; /* of those, the pieces where img holds its bytes */
};

/*
 * O5 at point k: per write (an array of p->n_writes, filled for the
 * pending ones, zero for the others), and in *differ the number of pieces
 * where img differs from D(t) built in receive order.  Returns 0 or
 * -ENOMEM.
 */
int oracle_presence(const struct crash_plan *p, const uint8_t *base,
		    const uint8_t *img, uint32_t k,
		    struct oracle_presence *per_write, uint64_t *differ);

/* The writes that cover byte off, in receive order; *n of them. */
const uint32_t *oracle_writes_at(const struct crash_plan *p, uint64_t off,
				 uint32_t *n);

/* The first crash point at which write w has been received. */
uint32_t oracle_first_point(const struct crash_plan *p, uint32_t w);

/* Whether write w puts img's bytes [off, off + len) there (w covers it). */
bool oracle_carries(const struct crash_plan *p, uint32_t w, const uint8_t *img,
		    uint64_t off, uint64_t len);

/*
 * O2 (b): whether write w, received before point k, may show on the piece
 * at off.  When it may not, *hider is a durable write covering off that w
 * is hb-before.
 */
bool oracle_may_show(const struct crash_plan *p, uint32_t k, uint32_t w,
		     uint64_t off, uint32_t *hider);

#endif /* LOOPD_TRACE_ORACLE_H */
