/* SPDX-License-Identifier: MIT */
/*
 * states.h: the crash states a trace allows (docs/crash.md, and the model
 * in crash-model.md: D(t), P(t), Cand, hb).  Pure: no I/O.
 *
 * Use:
 *   crash_plan_build()       decoded trace records -> writes, crash points
 *   crash_scratch_new()      per-thread scratch for the functions below
 *   crash_point_open()       one crash point's pending set P(t)
 *   crash_state_get()        item i of the point's candidate list
 *   crash_state_extents()    where that state differs from the point's
 *                            durable image D(t), as (range, source) extents
 *   crash_durable_diff()     how D changes from one point to another
 * The plan is read-only after it is built and may be shared by threads;
 * everything else is per thread.
 */
#ifndef LOOPD_CRASH_STATES_H
#define LOOPD_CRASH_STATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace/trace.h"

enum crash_model {
	CRASH_CONTRACT, /* the NBD contract: FLUSH covers replied writes */
	CRASH_BARRIER, /* --flush=barrier: FLUSH covers received writes */
	CRASH_NOFLUSH, /* negative control: nothing is ever durable */
	CRASH_SKIP1, /* negative control: the last flush is ignored */
};

struct crash_opts {
	enum crash_model model;
	uint64_t seed;
	uint32_t exhaustive; /* E: enumerate all subsets when |P| <= E */
	bool tear; /* unit mode: also tear one write per state */
	bool garbage; /* S9: also states where units hold arbitrary bytes */
	uint32_t unit; /* tearing unit (the atomic unit A) */
};

enum crash_wkind {
	CRASH_W_DATA, /* WRITE with a non-zero payload */
	CRASH_W_ZERO, /* WRITE_ZEROES, or a WRITE of zeroes */
	CRASH_W_TRIM, /* TRIM: old contents or zeroes */
};

#define CRASH_NEVER UINT64_MAX /* no reply in the trace */

struct crash_write {
	uint64_t off, len;
	uint64_t recv, reply; /* seq of RECV and REPLY (or CRASH_NEVER) */
	int32_t status; /* reply status; -EINPROGRESS if never replied */
	uint16_t cmd; /* NBD_CMD_* */
	uint8_t kind; /* enum crash_wkind */
	bool fua;
	bool conc; /* overlaps a concurrent write (either order) */
	uint32_t conn;
	uint32_t conc_no; /* conc: its index in the plan's conc list (S8) */
	uint32_t trim_no; /* TRIM: its index in the plan's trim list (S4) */
	const uint8_t *data; /* CRASH_W_DATA: len bytes */
};

enum crash_why {
	CRASH_AT_FLUSH,
	CRASH_AT_FUA,
	CRASH_AT_WRITE,
	CRASH_AT_END,
	CRASH_AT_SNAPSHOT, /* S10: right after a mark "snapshot NAME" */
};

/* S10: the label of a live snapshot's mark starts with this. */
#define CRASH_SNAPSHOT_MARK "snapshot "

/*
 * S10: the crash point right after the first mark label (the instant P
 * of a snapshot, `--at`): the last point at or before it, which allows
 * exactly the states of that instant.  -1 if there is no such mark.
 */
struct crash_plan;
int64_t crash_point_at_mark(const struct crash_plan *p, const char *label);

struct crash_point {
	uint64_t t; /* crash just before the event with this seq */
	uint8_t why; /* enum crash_why: the event at t */
	uint32_t n_recv; /* writes[0, n_recv) were received before t */
	uint32_t n_pending; /* |P(t)| */
	uint32_t n_durable; /* |D(t)| */
	uint64_t cover; /* durability bound, see crash_durable() */
	uint64_t skip_lo, skip_hi; /* SKIP1: the ignored flush's writes */
	bool conc; /* D u P holds a concurrent overlapping pair */
	bool trims; /* a TRIM was received before t */
	int32_t mark; /* index of the last mark before t, or -1 */
	bool exhaustive; /* |P| <= E */
	uint64_t items; /* length of the candidate list */
	uint64_t combos; /* exhaustive: 2^|P| * orders * trim choices */
	uint32_t n_conc; /* concurrent writes received before t (S8) */
	uint32_t n_trims; /* TRIMs received before t (S4) */
	uint32_t n_orders; /* S8: orders of the concurrent writes */
	uint32_t n_trimc; /* S4: choices of which TRIMs stay old */
};

struct crash_mark {
	uint64_t seq;
	const char *label; /* NUL-terminated copy */
};

struct crash_plan {
	struct crash_opts opts;
	struct trace_header hdr;
	bool writethrough; /* SEND_FLUSH not advertised */
	struct crash_write *writes; /* in receive order */
	uint32_t n_writes;
	uint32_t n_flushes, n_fua, n_conc_pairs, n_failed;
	struct crash_point *points;
	uint32_t n_points;
	struct crash_mark *marks;
	uint32_t n_marks;
	uint64_t end_seq; /* one past the last record */
	/* Elementary segments: [bound[s], bound[s+1]) for s < n_seg. */
	uint64_t *bound;
	uint32_t n_seg;
	uint32_t *cov_start; /* cov[cov_start[s] .. cov_start[s+1]) */
	uint32_t *cov; /* writes covering a segment, in receive order */
	uint32_t *seg_lo; /* per write: first segment it covers */
	uint32_t *conc_list, n_conc; /* S8: concurrent writes, receive order */
	uint32_t *trim_list, n_trims; /* S4: TRIMs, receive order */
};

/*
 * Build the plan from decoded records (in trace order; RECV data
 * pointers resolved).  The plan points into records' data and labels,
 * which must outlive it.  Returns 0 or -errno (-ENOMEM, -EINVAL with
 * *why set for an inconsistent trace).
 */
int crash_plan_build(const struct trace_header *h, const struct trace_rec *recs,
		     size_t n, const struct crash_opts *o,
		     struct crash_plan **out, const char **why);
void crash_plan_free(struct crash_plan *p);

/* Whether write w is in D at point k (k == CRASH_BASE: never). */
#define CRASH_BASE UINT32_MAX
bool crash_durable(const struct crash_plan *p, uint32_t k, uint32_t w);

/* Per-thread scratch. */
struct crash_scratch;
struct crash_scratch *crash_scratch_new(const struct crash_plan *p);
void crash_scratch_free(struct crash_scratch *s);

/* A point's pending set, in receive order (valid until the next open). */
int crash_point_open(const struct crash_plan *p, struct crash_scratch *s,
		     uint32_t k);

enum crash_variant {
	CRASH_V_SWAP = 1, /* concurrent writes in another order (S8) */
	CRASH_V_TRIM_OLD = 2, /* some TRIMs keep the old contents (S4) */
};

struct crash_state {
	uint32_t point;
	uint64_t item; /* index in the point's candidate list: the ID */
	const char *kind; /* how it was chosen: "subset", "prefix-recv"... */
	uint8_t variant; /* enum crash_variant bits */
	uint32_t n_pending, n_chosen;
	uint64_t *chosen; /* bitset over the pending list */
	uint32_t torn; /* pending index of the torn write, or UINT32_MAX */
	uint32_t n_units; /* units of the torn write */
	uint64_t *tear; /* bitset over its units: which are present, or
			   with garbage, which hold arbitrary bytes (S9) */
	bool garbage; /* S9: the torn write's set units hold garbage */
	uint32_t order; /* S8: 0 receive order, 1 reverse, ... */
	uint64_t *trim_old; /* S4: bitset over the trim list, or NULL */
};

/*
 * Item `item` of the open point's candidate list.  Deterministic in
 * (trace, model, seed, E, tear, point, item).  Returns 0, or -ENOENT past
 * the end of the list, -ENOMEM.  Free with crash_state_free().
 */
int crash_state_get(const struct crash_plan *p, struct crash_scratch *s,
		    uint64_t item, struct crash_state *st);
void crash_state_free(struct crash_state *st);

#define CRASH_SRC_BASE UINT32_MAX /* the base image's bytes */
#define CRASH_SRC_ZERO (UINT32_MAX - 1) /* zeroes */
#define CRASH_SRC_GARBAGE (UINT32_MAX - 2) /* S9: crash_garbage() bytes */

/* A byte range and where its contents come from. */
struct crash_extent {
	uint64_t off, len;
	uint32_t src; /* write index, CRASH_SRC_BASE or CRASH_SRC_ZERO */
	uint32_t zero; /* always 0: the struct has no padding, because the
			  dedupe key hashes its bytes (padding would be
			  uninitialised, and equal states could differ) */
};

struct crash_extents {
	struct crash_extent *v;
	size_t n, cap;
	uint64_t key; /* crash_state_extents: content key for dedupe */
};

/*
 * The extents where state st differs from D(t) of its point (which must
 * be open in s), sorted and merged, and a key: two states of one point
 * with the same key have the same image.  Returns 0 or -ENOMEM.
 */
int crash_state_extents(const struct crash_plan *p, struct crash_scratch *s,
			const struct crash_state *st,
			struct crash_extents *out);

/*
 * The extents that turn the image D(from) into D(to), with from ==
 * CRASH_BASE for the base image.  Returns 0 or -ENOMEM.
 */
int crash_durable_diff(const struct crash_plan *p, struct crash_scratch *s,
		       uint32_t from, uint32_t to, struct crash_extents *out);

/* The bytes of extent e that start at offset off (src is a write). */
static inline const uint8_t *crash_src_data(const struct crash_plan *p,
					    const struct crash_extent *e)
{
	const struct crash_write *w = &p->writes[e->src];

	return w->data + (e->off - w->off);
}

void crash_extents_free(struct crash_extents *x);

/*
 * S9: the arbitrary bytes of a garbage extent, for [off, off + len): a
 * fixed function of the offset (so equal extents are equal images),
 * unlike any data a write is likely to carry.
 */
void crash_garbage(uint64_t off, uint64_t len, uint8_t *out);

const char *crash_model_name(enum crash_model m);
const char *crash_why_name(uint8_t why);

#endif /* LOOPD_CRASH_STATES_H */
