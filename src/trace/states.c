/* SPDX-License-Identifier: MIT */
/*
 * states.c: which images a crash may leave, from a recorded trace.
 *
 * The model is crash-model.md §2 (docs/crash.md summarises it).  Symbols:
 * a write w has RecvW(w) = w->recv and ReplyW(w) = w->reply (trace seqs).
 *
 * S1. Crash points.  Only completions that raise the guarantee matter
 *     (crash-point reduction): an OK FLUSH reply, an OK FUA write reply,
 *     and, on an export without SEND_FLUSH (write-through), every OK write
 *     reply; plus the end of the trace.  A point's t is the seq of that
 *     event: the crash happens just before it, so the event's own
 *     guarantee is not in D(t).  A point whose D and P equal the previous
 *     point's is dropped.
 * S2. D(t), per model (crash_durable):
 *       contract  w OK, ReplyW(w) < t, and FUA(w) or ReplyW(w) < RecvF(f)
 *                 for a flush f replied OK before t (w ⊑ f).  The union
 *                 over flushes is "ReplyW(w) < cover", cover = the largest
 *                 RecvF of those flushes.  Write-through: every OK reply.
 *       barrier   as contract, but a flush covers every write *received*
 *                 before it (--flush=barrier drains them first).
 *       no-flush  nothing (flushes and FUA persist nothing).
 *       skip1     as contract, but the writes that only the last flush
 *                 replied before t covers go back to P.
 *     P(t) = { w : RecvW(w) < t } \ D(t); failed writes are always in P.
 * S3. hb: a ->hb b iff ReplyW(a) < RecvW(b).  An image is built from D(t)
 *     plus a chosen S ⊆ P(t).  Per elementary segment (ranges cut at every
 *     write's boundaries), the provider is the last chosen covering write
 *     in receive order (a linear extension of hb).  With CRASH_V_SWAP
 *     (a state's order other than 0, S8) it is the hb-maximal chosen
 *     covering write that comes last in the state's order: among chosen
 *     writes, H = {last} and those with ReplyW > RecvW(last) are exactly
 *     the ones not hb-before any other chosen write, so they are pairwise
 *     concurrent and any of them may be the last writer.  Either way the
 *     provider is never hb-before a chosen (in particular a durable)
 *     write covering the segment, so every image is in Cand(u, t) for
 *     every unit u (unit mode).
 * S4. TRIM is "old or zero", chosen per TRIM: a state has a set of TRIMs
 *     that keep the old contents (trim_old, with CRASH_V_TRIM_OLD); the
 *     others are zeroes.  Choices per point: every subset of its TRIMs
 *     when it has at most 3, else none, all, and 6 seeded random subsets.
 *     A pending TRIM that is not chosen is "old" as well.  WRITE_ZEROES and WRITEs
 *     of zeroes are zero writes.  A TRIM acts only on the whole blocks of
 *     the trace's min_block inside its range, as loopd does (Z1 in
 *     zero.c): its write is that inner range, and a TRIM with no whole
 *     block inside changes nothing.
 * S5. Candidate list of a point, item by item (the item is the state ID):
 *     0 and 1 random subsets (p = 0.5), 2 all of P, 3 none of P; then, when
 *     |P| <= E, every (subset, variant) combination in a seeded order, and
 *     with --tear the torn items; else round robin over prefixes in
 *     receive order and in completion order, omit-one, keep-one, random
 *     subsets with p = 0.1, 0.9, 0.5, and torn items; with --garbage,
 *     garbage items too (S9).  A combination is (subset, order (S8), trim
 *     choice (S4)); sampled items pick the receive order and no old TRIM
 *     half of the time, else a random order and random TRIMs.  Every item
 *     is a pure function of (trace, model, seed, E, tear, garbage, point,
 *     item).
 * S6. Tearing (unit mode, --tear): one chosen write keeps a random proper
 *     subset of its units (unit = the atomic unit A).  The first torn item
 *     tears the last received multi-unit write ("straddles the crash").
 * S7. Two states of one point with the same extents (same source per
 *     byte) are the same image: the extents' key dedupes them.
 * S8. Orders of concurrent writes.  The writes that overlap a write in
 *     flight when they arrived (conc, S3) are listed in receive order.  A
 *     point with m of them received has m! orders when m <= 4: every
 *     permutation (order 0 the receive order, m! - 1 its reverse), so
 *     every linear extension of their hb among them is there; else 8: the
 *     receive order, its reverse (together every pairwise order at least
 *     once) and 6 seeded random orders.
 * S9. Garbage (--garbage): a garbage item picks a pending write, the last
 *     received first and then spread, chosen as present, and a random
 *     non-empty subset of its units that hold arbitrary bytes where it is
 *     the last writer (never under a later write that covers the unit)
 *     (crash_garbage(), a fixed function of the offset): a device may
 *     leave a unit it was writing at the crash in any state.  Off by
 *     default: the NBD contract says nothing of it, and checkers that
 *     checksum their blocks should see it.
 * S10. Snapshots.  A live snapshot (engine/snapshot.c I1) leaves a mark
 *     "snapshot NAME" at its instant P; the point just after the mark (t =
 *     its seq + 1) is a crash point too, so that `--is-state IMG --at
 *     "snapshot NAME"` asks about that instant alone.  Any instant is a
 *     legal crash point; S1 merges it with the one before when they allow
 *     the same states.
 */
#include "trace/states.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd.h"
#include "util/xxh.h"

/* S4: the whole min_block blocks inside a TRIM's range.  False if none. */
static bool trim_inner(const struct trace_header *h, uint64_t *off,
		       uint64_t *len)
{
	uint64_t b = h->min_block ? h->min_block : 1;
	uint64_t lo = (*off + b - 1) / b * b, hi = (*off + *len) / b * b;

	if (hi <= lo)
		return false;
	*off = lo;
	*len = hi - lo;
	return true;
}

#define NONE UINT32_MAX

struct crash_scratch {
	uint32_t point; /* open point, or CRASH_BASE */
	uint32_t *pending; /* receive order */
	uint32_t *by_reply; /* completion order */
	uint32_t *multi; /* pending writes with >= 2 units */
	uint32_t n_pending, n_multi;
	int32_t *pos_of; /* per write: index in pending, or -1 */
	uint32_t *seg_stamp;
	uint32_t stamp;
};

/* ------------------------------------------------------------------ */
/* Small helpers.                                                      */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t x = a ^ (b * 0xff51afd7ed558ccdull) ^ (c * 0xc4ceb9fe1a85ec53);

	splitmix(&x);
	return splitmix(&x);
}

/* Uniform in [0, 1). */
static double unit_rand(uint64_t *x)
{
	return (double)(splitmix(x) >> 11) * 0x1.0p-53;
}

/*
 * A seeded bijection of [0, m): a bijective mix of the smallest power of
 * two >= m, with cycle walking.  Used to visit lists in a spread order
 * that is still complete.
 */
static uint64_t bij(uint64_t seed, uint64_t m, uint64_t r)
{
	unsigned int b = 1, i;
	uint64_t mask, x = r;

	if (m <= 1)
		return 0;
	x %= m; /* a value past m may sit on a cycle with none below m */
	while (b < 63 && (1ull << b) < m)
		b++;
	mask = (1ull << b) - 1;
	do {
		for (i = 0; i < 3; i++) {
			x = (x + mix3(seed, i, b)) & mask;
			x = (x * (mix3(seed, i + 7, b) | 1)) & mask;
			x ^= x >> (b / 2 + 1);
		}
	} while (x >= m);
	return x;
}

static bool bit_get(const uint64_t *v, uint64_t i)
{
	return v[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *v, uint64_t i)
{
	v[i / 64] |= 1ull << (i % 64);
}

static void bit_clear(uint64_t *v, uint64_t i)
{
	v[i / 64] &= ~(1ull << (i % 64));
}

/* First index s with a[s] >= x in sorted a[0, n). */
static uint32_t lower_bound(const uint64_t *a, uint32_t n, uint64_t x)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (a[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

const char *crash_model_name(enum crash_model m)
{
	switch (m) {
	case CRASH_CONTRACT:
		return "contract";
	case CRASH_BARRIER:
		return "barrier";
	case CRASH_NOFLUSH:
		return "no-flush";
	case CRASH_SKIP1:
		return "skip-one-flush";
	}
	return "unknown";
}

const char *crash_why_name(uint8_t why)
{
	switch (why) {
	case CRASH_AT_FLUSH:
		return "flush";
	case CRASH_AT_FUA:
		return "fua";
	case CRASH_AT_WRITE:
		return "write";
	case CRASH_AT_END:
		return "end";
	case CRASH_AT_SNAPSHOT:
		return "snapshot";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* D(t): S2.                                                           */

bool crash_durable(const struct crash_plan *p, uint32_t k, uint32_t wi)
{
	const struct crash_write *w = &p->writes[wi];
	const struct crash_point *pt;

	if (k == CRASH_BASE)
		return false;
	pt = &p->points[k];
	if (wi >= pt->n_recv || w->status != 0 || w->reply >= pt->t)
		return false;
	switch (p->opts.model) {
	case CRASH_NOFLUSH:
		return false;
	case CRASH_CONTRACT:
		if (p->writethrough || w->fua)
			return true;
		return w->reply < pt->cover;
	case CRASH_BARRIER:
		if (p->writethrough || w->fua)
			return true;
		return w->recv < pt->cover;
	case CRASH_SKIP1:
		if (p->writethrough || w->fua)
			return true;
		return w->reply < pt->cover &&
		       !(w->reply >= pt->skip_lo && w->reply < pt->skip_hi);
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Building the plan.                                                  */

/* A RECV or REPLY, for matching replies to requests by (conn, cookie). */
struct match {
	uint32_t conn;
	uint64_t cookie, seq;
	bool reply;
	int32_t status;
	int32_t what; /* write index, -2 - flush index, or -1 */
};

static int cmp_match(const void *a, const void *b)
{
	const struct match *x = a, *y = b;

	if (x->conn != y->conn)
		return x->conn < y->conn ? -1 : 1;
	if (x->cookie != y->cookie)
		return x->cookie < y->cookie ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct flush {
	uint64_t recv, reply;
	int32_t status;
};

struct event {
	uint64_t seq;
	uint8_t why;
	uint64_t recv_f; /* flush: its RecvF */
};

static int cmp_event(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A write's RECV: the write it adds to the plan, if it changes data. */
static int add_write(struct crash_plan *p, const struct trace_rec *r,
		     struct match *x, const char **why)
{
	struct crash_write *w = &p->writes[p->n_writes];

	if (!r->recv.length)
		return 0; /* changes nothing */
	if (r->recv.offset + r->recv.length < r->recv.offset ||
	    r->recv.offset + r->recv.length > p->hdr.size) {
		*why = "a write lies beyond the export size";
		return -EINVAL;
	}
	w->off = r->recv.offset;
	w->len = r->recv.length;
	if (r->recv.cmd == NBD_CMD_TRIM &&
	    !trim_inner(&p->hdr, &w->off, &w->len))
		return 0; /* S4: no whole block: changes nothing */
	w->recv = r->seq;
	w->reply = CRASH_NEVER;
	w->status = -EINPROGRESS;
	w->cmd = r->recv.cmd;
	w->conn = r->recv.conn;
	w->fua = r->recv.flags & NBD_CMD_FLAG_FUA;
	if (r->recv.cmd == NBD_CMD_TRIM)
		w->kind = CRASH_W_TRIM;
	else if (r->recv.cmd == NBD_CMD_WRITE_ZEROES ||
		 r->recv.data_kind == TRACE_DATA_ZERO)
		w->kind = CRASH_W_ZERO;
	else if (r->recv.data)
		w->kind = CRASH_W_DATA;
	else {
		*why = "a WRITE without its payload";
		return -EINVAL;
	}
	w->data = r->recv.data;
	x->what = (int32_t)p->n_writes++;
	return 0;
}

/* Match each REPLY to the latest unmatched RECV of its key. */
static void match_replies(struct crash_plan *p, struct match *m, size_t nm,
			  int32_t *stack, struct flush *fl)
{
	size_t i, sp = 0;

	qsort(m, nm, sizeof *m, cmp_match);
	for (i = 0; i < nm; i++) {
		if (i && (m[i].conn != m[i - 1].conn ||
			  m[i].cookie != m[i - 1].cookie))
			sp = 0;
		if (!m[i].reply) {
			stack[sp++] = (int32_t)i;
			continue;
		}
		if (!sp)
			continue; /* a reply to nothing: ignore */
		const struct match *q = &m[stack[--sp]];

		if (q->what >= 0) {
			p->writes[q->what].reply = m[i].seq;
			p->writes[q->what].status = m[i].status;
		} else if (q->what <= -2) {
			fl[-2 - q->what].reply = m[i].seq;
			fl[-2 - q->what].status = m[i].status;
		}
	}
}

/*
 * The writes, flushes and marks of a trace, with each reply matched to its
 * request.  A little over 80 lines: counting, then one pass over the
 * records, each kind in a line or two.
 */
static int collect(struct crash_plan *p, const struct trace_rec *recs, size_t n,
		   struct flush **flushes_out, uint32_t *n_fl, const char **why)
{
	struct match *m = NULL;
	struct flush *fl = NULL;
	size_t i, nm = 0, nw = 0, nf = 0, nk = 0;
	int32_t *stack = NULL;

	for (i = 0; i < n; i++) {
		if (recs[i].type == TRACE_RECV || recs[i].type == TRACE_REPLY)
			nm++;
		if (recs[i].type == TRACE_RECV)
			nw++;
		if (recs[i].type == TRACE_MARK)
			nk++;
	}
	p->writes = calloc(nw ? nw : 1, sizeof *p->writes);
	fl = calloc(nw ? nw : 1, sizeof *fl);
	m = calloc(nm ? nm : 1, sizeof *m);
	stack = calloc(nm ? nm : 1, sizeof *stack);
	p->marks = calloc(nk ? nk : 1, sizeof *p->marks);
	if (!p->writes || !fl || !m || !stack || !p->marks)
		goto out_nomem;
	nm = 0;
	for (i = 0; i < n; i++) {
		const struct trace_rec *r = &recs[i];
		struct match *x;

		p->end_seq = r->seq + 1;
		if (r->type == TRACE_MARK) {
			struct crash_mark *k = &p->marks[p->n_marks];

			k->seq = r->seq;
			k->label = strndup(r->mark.label, r->mark.len);
			if (!k->label)
				goto out_nomem;
			p->n_marks++;
			continue;
		}
		if (r->type != TRACE_RECV && r->type != TRACE_REPLY)
			continue;
		x = &m[nm++];
		x->seq = r->seq;
		x->what = -1;
		if (r->type == TRACE_REPLY) {
			x->conn = r->reply.conn;
			x->cookie = r->reply.cookie;
			x->reply = true;
			x->status = r->reply.status;
			continue;
		}
		x->conn = r->recv.conn;
		x->cookie = r->recv.cookie;
		switch (r->recv.cmd) {
		case NBD_CMD_WRITE:
		case NBD_CMD_WRITE_ZEROES:
		case NBD_CMD_TRIM:
			if (add_write(p, r, x, why) < 0)
				goto out_inval;
			break;
		case NBD_CMD_FLUSH:
			fl[nf].recv = r->seq;
			fl[nf].reply = CRASH_NEVER;
			fl[nf].status = -EINPROGRESS;
			x->what = -2 - (int32_t)nf++;
			break;
		default:
			break;
		}
	}
	match_replies(p, m, nm, stack, fl);
	free(m);
	free(stack);
	*flushes_out = fl;
	*n_fl = (uint32_t)nf;
	return 0;

out_inval:
	free(m);
	free(stack);
	free(fl);
	return -EINVAL;
out_nomem:
	free(m);
	free(stack);
	free(fl);
	return -ENOMEM;
}

/* S4, S8: the TRIMs and the concurrent writes, each in receive order. */
static int list_kinds(struct crash_plan *p)
{
	size_t nw = p->n_writes ? p->n_writes : 1;
	uint32_t w;

	p->conc_list = calloc(nw, sizeof *p->conc_list);
	p->trim_list = calloc(nw, sizeof *p->trim_list);
	if (!p->conc_list || !p->trim_list)
		return -ENOMEM;
	for (w = 0; w < p->n_writes; w++) {
		struct crash_write *x = &p->writes[w];

		x->conc_no = x->trim_no = NONE;
		if (x->conc) {
			x->conc_no = p->n_conc;
			p->conc_list[p->n_conc++] = w;
		}
		if (x->kind == CRASH_W_TRIM) {
			x->trim_no = p->n_trims;
			p->trim_list[p->n_trims++] = w;
		}
	}
	return 0;
}

/* Writes that overlap a write in flight when they arrived: S3. */
static int find_concurrent(struct crash_plan *p, uint32_t *first_b)
{
	uint32_t *active, n_active = 0, b, i;

	*first_b = NONE;
	active = malloc((p->n_writes ? p->n_writes : 1) * sizeof *active);
	if (!active)
		return -ENOMEM;
	for (b = 0; b < p->n_writes; b++) {
		struct crash_write *wb = &p->writes[b];
		uint32_t keep = 0;

		for (i = 0; i < n_active; i++) {
			struct crash_write *wa = &p->writes[active[i]];

			if (wa->reply < wb->recv)
				continue; /* a ->hb b */
			active[keep++] = active[i];
			if (wa->off < wb->off + wb->len &&
			    wb->off < wa->off + wa->len) {
				wa->conc = wb->conc = true;
				p->n_conc_pairs++;
				if (*first_b == NONE)
					*first_b = b;
			}
		}
		n_active = keep;
		active[n_active++] = b;
	}
	free(active);
	return 0;
}

static int build_segments(struct crash_plan *p)
{
	uint64_t *b;
	uint32_t i, n = 0, s, *fill;
	size_t total = 0;

	b = malloc((2 * (size_t)p->n_writes + 1) * sizeof *b);
	if (!b)
		return -ENOMEM;
	for (i = 0; i < p->n_writes; i++) {
		b[n++] = p->writes[i].off;
		b[n++] = p->writes[i].off + p->writes[i].len;
	}
	qsort(b, n, sizeof *b, cmp_u64);
	for (i = 0, s = 0; i < n; i++)
		if (!s || b[s - 1] != b[i])
			b[s++] = b[i];
	p->bound = b;
	p->n_seg = s ? s - 1 : 0;
	p->seg_lo = malloc((p->n_writes ? p->n_writes : 1) * sizeof *p->seg_lo);
	p->cov_start = calloc(p->n_seg + 2, sizeof *p->cov_start);
	if (!p->seg_lo || !p->cov_start)
		return -ENOMEM;
	for (i = 0; i < p->n_writes; i++) {
		const struct crash_write *w = &p->writes[i];
		uint32_t lo = lower_bound(b, s, w->off);
		uint32_t hi = lower_bound(b, s, w->off + w->len);

		p->seg_lo[i] = lo;
		total += hi - lo;
		for (uint32_t x = lo; x < hi; x++)
			p->cov_start[x + 1]++;
	}
	for (i = 0; i < p->n_seg; i++)
		p->cov_start[i + 1] += p->cov_start[i];
	p->cov = malloc((total ? total : 1) * sizeof *p->cov);
	fill = calloc(p->n_seg + 1, sizeof *fill);
	if (!p->cov || !fill) {
		free(fill);
		return -ENOMEM;
	}
	/* Writes in receive order: each list ends up sorted. */
	for (i = 0; i < p->n_writes; i++) {
		const struct crash_write *w = &p->writes[i];

		for (s = p->seg_lo[i];
		     s < p->n_seg && p->bound[s] < w->off + w->len; s++)
			p->cov[p->cov_start[s] + fill[s]++] = i;
	}
	free(fill);
	return 0;
}

static uint32_t units_of(const struct crash_plan *p,
			 const struct crash_write *w)
{
	uint64_t a = p->opts.unit;

	return (uint32_t)((w->off + w->len - 1) / a - w->off / a + 1);
}

/* Receive count before seq t (writes are sorted by recv). */
static uint32_t recv_before(const struct crash_plan *p, uint64_t t)
{
	uint32_t lo = 0, hi = p->n_writes;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->writes[mid].recv < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

#define N_STRATEGIES 7
#define N_FIXED 4 /* items 0, 1: random (p = 0.5); 2: all; 3: none */
#define MAX_PERM 4 /* S8: every order of up to this many writes */
#define N_ORDERS 8 /* S8: else receive, reverse and 6 random orders */
#define MAX_TRIM_SETS 3 /* S4: every subset of up to this many TRIMs */
#define N_TRIMC 8 /* S4: else none, all and 6 random subsets */

/* S5: the length of a point's candidate list. */
static uint64_t factorial(uint32_t m)
{
	uint64_t f = 1;

	while (m > 1)
		f *= m--;
	return f;
}

/* Torn (S6) and garbage (S9) items of an exhaustive list. */
static uint64_t n_torn_items(const struct crash_plan *p, uint32_t n_multi)
{
	return !p->opts.tear ? 0 : n_multi * 2 < 256 ? n_multi * 2 : 256;
}

static uint64_t n_garbage_items(const struct crash_plan *p, uint32_t n)
{
	return !p->opts.garbage ? 0 : n * 2 < 256 ? n * 2 : 256;
}

static void size_point(struct crash_plan *p, struct crash_point *pt,
		       uint32_t n_multi)
{
	uint64_t n = pt->n_pending, per, ns;

	pt->n_orders = !pt->conc ? 1
		       : pt->n_conc <= MAX_PERM
			       ? (uint32_t)factorial(pt->n_conc)
			       : N_ORDERS;
	pt->n_trimc = !pt->trims		     ? 1
		      : pt->n_trims <= MAX_TRIM_SETS ? 1u << pt->n_trims
						     : N_TRIMC;
	pt->exhaustive = n <= p->opts.exhaustive;
	if (pt->exhaustive) {
		pt->combos = (1ull << n) * pt->n_orders * pt->n_trimc;
		pt->items = N_FIXED + pt->combos + n_torn_items(p, n_multi) +
			    n_garbage_items(p, (uint32_t)n);
		return;
	}
	ns = N_STRATEGIES + (p->opts.tear ? 1 : 0) + (p->opts.garbage ? 1 : 0);
	per = n > 64 ? n : 64;
	pt->combos = 0;
	pt->items = N_FIXED + ns * per;
}

/*
 * Long on purpose: the sorted events, then the one pass over them that
 * makes every crash point (S1, S2) from the running durable state.
 */
static int build_points(struct crash_plan *p, const struct flush *fl,
			uint32_t n_fl, uint32_t first_conc)
{
	struct event *ev;
	uint32_t n_ev = 0, i, w, first_trim = NONE, n_conc = 0, n_trims = 0;
	uint64_t cover = 0, skip_lo = 0, skip_hi = 0;

	ev = calloc((size_t)p->n_writes + n_fl + p->n_marks + 1, sizeof *ev);
	p->points = calloc((size_t)p->n_writes + n_fl + p->n_marks + 2,
			   sizeof *p->points);
	if (!ev || !p->points) {
		free(ev);
		return -ENOMEM;
	}
	for (w = 0; w < p->n_writes; w++) {
		const struct crash_write *x = &p->writes[w];

		if (x->kind == CRASH_W_TRIM && first_trim == NONE)
			first_trim = w;
		if (x->status || x->reply == CRASH_NEVER)
			continue;
		if (p->writethrough)
			ev[n_ev++] =
				(struct event){x->reply, CRASH_AT_WRITE, 0};
		else if (x->fua)
			ev[n_ev++] = (struct event){x->reply, CRASH_AT_FUA, 0};
	}
	for (i = 0; i < n_fl; i++)
		if (!fl[i].status && fl[i].reply != CRASH_NEVER)
			ev[n_ev++] = (struct event){fl[i].reply, CRASH_AT_FLUSH,
						    fl[i].recv};
	/* S10: the instant of a live snapshot is a crash point. */
	for (i = 0; i < p->n_marks; i++)
		if (p->marks[i].label &&
		    !strncmp(p->marks[i].label, CRASH_SNAPSHOT_MARK,
			     strlen(CRASH_SNAPSHOT_MARK)))
			ev[n_ev++] = (struct event){p->marks[i].seq + 1,
						    CRASH_AT_SNAPSHOT, 0};
	qsort(ev, n_ev, sizeof *ev, cmp_event);
	ev[n_ev++] = (struct event){p->end_seq, CRASH_AT_END, 0};

	for (i = 0; i < n_ev; i++) {
		struct crash_point *pt = &p->points[p->n_points];
		uint32_t n_multi = 0, m;

		memset(pt, 0, sizeof *pt);
		pt->t = ev[i].seq;
		pt->why = ev[i].why;
		pt->n_recv = recv_before(p, pt->t);
		pt->cover = cover;
		pt->skip_lo = skip_lo;
		pt->skip_hi = skip_hi;
		pt->conc = first_conc != NONE && first_conc < pt->n_recv;
		pt->trims = first_trim != NONE && first_trim < pt->n_recv;
		/* Points come in seq order, so n_recv never falls. */
		while (n_conc < p->n_conc && p->conc_list[n_conc] < pt->n_recv)
			n_conc++;
		while (n_trims < p->n_trims &&
		       p->trim_list[n_trims] < pt->n_recv)
			n_trims++;
		pt->n_conc = n_conc;
		pt->n_trims = n_trims;
		pt->mark = -1;
		for (m = 0; m < p->n_marks && p->marks[m].seq < pt->t; m++)
			pt->mark = (int32_t)m;
		for (w = 0; w < pt->n_recv; w++) {
			if (crash_durable(p, p->n_points, w)) {
				pt->n_durable++;
				continue;
			}
			pt->n_pending++;
			if (units_of(p, &p->writes[w]) > 1)
				n_multi++;
		}
		size_point(p, pt, n_multi);
		/* S1: a point equal to the previous one adds nothing. */
		if (p->n_points) {
			const struct crash_point *q = pt - 1;

			/* D only grows, except under SKIP1. */
			if (q->n_recv == pt->n_recv &&
			    q->n_durable == pt->n_durable &&
			    (p->opts.model != CRASH_SKIP1 ||
			     (q->cover == pt->cover &&
			      q->skip_lo == pt->skip_lo &&
			      q->skip_hi == pt->skip_hi)))
				goto apply;
		}
		p->n_points++;
	apply:
		if (ev[i].why == CRASH_AT_FLUSH) {
			/* SKIP1: what this flush alone adds is skipped until
			   the next flush reply. */
			if (ev[i].recv_f > cover) {
				skip_lo = cover;
				skip_hi = ev[i].recv_f;
				cover = ev[i].recv_f;
			} else {
				skip_lo = skip_hi = 0;
			}
		}
	}
	free(ev);
	return 0;
}

int64_t crash_point_at_mark(const struct crash_plan *p, const char *label)
{
	uint32_t m, k;
	int64_t at = -1;

	for (m = 0; m < p->n_marks; m++)
		if (!strcmp(p->marks[m].label, label))
			break;
	if (m == p->n_marks)
		return -1;
	/* S10: just after the mark; S1 may have merged it with the one
	   before, which then allows the same states. */
	for (k = 0; k < p->n_points && p->points[k].t <= p->marks[m].seq + 1;
	     k++)
		at = k;
	return at;
}

int crash_plan_build(const struct trace_header *h, const struct trace_rec *recs,
		     size_t n, const struct crash_opts *o,
		     struct crash_plan **out, const char **why)
{
	struct crash_plan *p;
	struct flush *fl = NULL;
	uint32_t n_fl = 0, first_conc, i;
	int r;

	*why = NULL;
	if (!o->unit || (o->unit & (o->unit - 1))) {
		*why = "the tearing unit must be a power of two";
		return -EINVAL;
	}
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->opts = *o;
	p->hdr = *h;
	p->writethrough = !(h->tflags & NBD_FLAG_SEND_FLUSH);
	r = collect(p, recs, n, &fl, &n_fl, why);
	if (r < 0)
		goto out_free;
	p->n_flushes = n_fl;
	for (i = 0; i < p->n_writes; i++) {
		if (p->writes[i].fua)
			p->n_fua++;
		if (p->writes[i].status)
			p->n_failed++;
	}
	r = find_concurrent(p, &first_conc);
	if (!r)
		r = list_kinds(p);
	if (!r)
		r = build_segments(p);
	if (!r)
		r = build_points(p, fl, n_fl, first_conc);
	if (r < 0)
		goto out_free;
	free(fl);
	*out = p;
	return 0;

out_free:
	free(fl);
	crash_plan_free(p);
	return r;
}

void crash_plan_free(struct crash_plan *p)
{
	uint32_t i;

	if (!p)
		return;
	for (i = 0; i < p->n_marks; i++)
		free((char *)p->marks[i].label);
	free(p->marks);
	free(p->writes);
	free(p->points);
	free(p->bound);
	free(p->cov_start);
	free(p->cov);
	free(p->seg_lo);
	free(p->conc_list);
	free(p->trim_list);
	free(p);
}

/* ------------------------------------------------------------------ */
/* Points and states.                                                  */

struct crash_scratch *crash_scratch_new(const struct crash_plan *p)
{
	struct crash_scratch *s = calloc(1, sizeof *s);
	size_t nw = p->n_writes ? p->n_writes : 1;

	if (!s)
		return NULL;
	s->point = CRASH_BASE;
	s->pending = malloc(nw * sizeof *s->pending);
	s->by_reply = malloc(nw * sizeof *s->by_reply);
	s->multi = malloc(nw * sizeof *s->multi);
	s->pos_of = malloc(nw * sizeof *s->pos_of);
	s->seg_stamp = calloc(p->n_seg + 1, sizeof *s->seg_stamp);
	if (!s->pending || !s->by_reply || !s->multi || !s->pos_of ||
	    !s->seg_stamp) {
		crash_scratch_free(s);
		return NULL;
	}
	memset(s->pos_of, 0xff, nw * sizeof *s->pos_of);
	return s;
}

void crash_scratch_free(struct crash_scratch *s)
{
	if (!s)
		return;
	free(s->pending);
	free(s->by_reply);
	free(s->multi);
	free(s->pos_of);
	free(s->seg_stamp);
	free(s);
}

/* qsort_r context: order pending writes by completion. */
static int cmp_reply(const void *a, const void *b, void *arg)
{
	const struct crash_write *w = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (w[x].reply != w[y].reply)
		return w[x].reply < w[y].reply ? -1 : 1;
	return x < y ? -1 : x > y;
}

int crash_point_open(const struct crash_plan *p, struct crash_scratch *s,
		     uint32_t k)
{
	const struct crash_point *pt;
	uint32_t w, i;

	if (k >= p->n_points)
		return -ENOENT;
	for (i = 0; i < s->n_pending; i++)
		s->pos_of[s->pending[i]] = -1;
	pt = &p->points[k];
	s->point = k;
	s->n_pending = s->n_multi = 0;
	for (w = 0; w < pt->n_recv; w++) {
		if (crash_durable(p, k, w))
			continue;
		s->pos_of[w] = (int32_t)s->n_pending;
		s->pending[s->n_pending++] = w;
		if (units_of(p, &p->writes[w]) > 1)
			s->multi[s->n_multi++] = w;
	}
	memcpy(s->by_reply, s->pending, s->n_pending * sizeof *s->pending);
	qsort_r(s->by_reply, s->n_pending, sizeof *s->by_reply, cmp_reply,
		p->writes);
	return 0;
}

void crash_state_free(struct crash_state *st)
{
	free(st->chosen);
	free(st->tear);
	free(st->trim_old);
	st->chosen = st->tear = st->trim_old = NULL;
}

static void choose_random(struct crash_state *st, uint64_t *rng, double prob)
{
	uint32_t i;

	for (i = 0; i < st->n_pending; i++)
		if (unit_rand(rng) < prob)
			bit_set(st->chosen, i);
}

/* S6: tear pending write `w` (a multi-unit one). */
static int tear_write(const struct crash_plan *p, const struct crash_scratch *s,
		      struct crash_state *st, uint32_t w, uint64_t *rng)
{
	uint32_t u, n, ones = 0;

	st->torn = (uint32_t)s->pos_of[w];
	bit_set(st->chosen, st->torn);
	n = st->n_units = units_of(p, &p->writes[w]);
	st->tear = calloc((n + 63) / 64, sizeof *st->tear);
	if (!st->tear)
		return -ENOMEM;
	for (u = 0; u < n; u++)
		if (splitmix(rng) & 1) {
			bit_set(st->tear, u);
			ones++;
		}
	/* A proper, non-empty subset. */
	u = (uint32_t)(splitmix(rng) % n);
	if (!ones)
		bit_set(st->tear, u);
	else if (ones == n)
		bit_clear(st->tear, u);
	return 0;
}

/* S4: trim choice tc of the point's TRIMs (0: none stays old). */
static void choose_trims(const struct crash_point *pt, struct crash_state *st,
			 uint64_t tc, uint64_t seed)
{
	uint64_t rng = mix3(seed, tc, 0x7217);
	uint32_t i;

	for (i = 0; i < pt->n_trims; i++)
		if (pt->n_trims <= MAX_TRIM_SETS ? tc >> i & 1
		    : tc == 1			 ? 1
		    : tc > 1			 ? splitmix(&rng) & 1
						 : 0) {
			bit_set(st->trim_old, i);
			st->variant |= CRASH_V_TRIM_OLD;
		}
}

/* S4, S8: room for the TRIM choice. */
static int alloc_trims(const struct crash_point *pt, struct crash_state *st)
{
	if (!pt->trims)
		return 0;
	st->trim_old = calloc(pt->n_trims / 64 + 1, sizeof *st->trim_old);
	return st->trim_old ? 0 : -ENOMEM;
}

/* Order o and trim choice tc (S8, S4). */
static void set_variant(const struct crash_point *pt, struct crash_state *st,
			uint64_t o, uint64_t tc, uint64_t seed)
{
	st->order = (uint32_t)o;
	if (o)
		st->variant |= CRASH_V_SWAP;
	choose_trims(pt, st, tc, seed);
}

/* Sampled items: half the time the receive order, else a random one;
   half the time no old TRIM, else a random choice. */
static void random_variant(const struct crash_point *pt, struct crash_state *st,
			   uint64_t *rng, uint64_t seed)
{
	uint64_t o = 0, tc = 0, v = splitmix(rng);

	if (pt->n_orders > 1 && v & 1)
		o = 1 + (v >> 8) % (pt->n_orders - 1);
	if (pt->n_trimc > 1 && v & 2)
		tc = 1 + (v >> 32) % (pt->n_trimc - 1);
	set_variant(pt, st, o, tc, seed);
}

/* Combination c (exhaustive lists): subset bits, order, trim choice. */
static void choose_combo(const struct crash_point *pt, struct crash_state *st,
			 uint64_t c, uint64_t seed)
{
	uint32_t n = st->n_pending, i;
	uint64_t v = c >> n;

	for (i = 0; i < n; i++)
		if (c >> i & 1)
			bit_set(st->chosen, i);
	set_variant(pt, st, v % pt->n_orders, v / pt->n_orders, seed);
}

/* S9: pending write w, present, with a random non-empty set of its units
   holding garbage. */
static int garble_write(const struct crash_plan *p,
			const struct crash_scratch *s, struct crash_state *st,
			uint32_t w, uint64_t *rng)
{
	uint32_t u, n, ones = 0;

	st->torn = (uint32_t)s->pos_of[w];
	st->garbage = true;
	bit_set(st->chosen, st->torn);
	n = st->n_units = units_of(p, &p->writes[w]);
	st->tear = calloc((n + 63) / 64, sizeof *st->tear);
	if (!st->tear)
		return -ENOMEM;
	for (u = 0; u < n; u++)
		if (splitmix(rng) & 1) {
			bit_set(st->tear, u);
			ones++;
		}
	if (!ones)
		bit_set(st->tear, (uint32_t)(splitmix(rng) % n));
	return 0;
}

/*
 * Long on purpose: one case per kind of item of S5 (the fixed items, the
 * exhaustive combinations, each sampling strategy, torn items), all
 * filling the same state.
 */
int crash_state_get(const struct crash_plan *p, struct crash_scratch *s,
		    uint64_t item, struct crash_state *st)
{
	const struct crash_point *pt = &p->points[s->point];
	uint64_t seed = mix3(p->opts.seed, s->point, 0x5eed);
	uint64_t rng = mix3(p->opts.seed, s->point, item), j, r, c;
	uint32_t n = s->n_pending, i, len, strat;
	int ret = 0;

	memset(st, 0, sizeof *st);
	if (item >= pt->items)
		return -ENOENT;
	st->point = s->point;
	st->item = item;
	st->n_pending = n;
	st->torn = NONE;
	st->chosen = calloc(n / 64 + 1, sizeof *st->chosen);
	if (!st->chosen || alloc_trims(pt, st) < 0) {
		crash_state_free(st);
		return -ENOMEM;
	}
	if (item < N_FIXED - 2)
		goto random_half;
	if (item == N_FIXED - 2) {
		st->kind = "complete";
		for (i = 0; i < n; i++)
			bit_set(st->chosen, i);
		goto count;
	}
	if (item == N_FIXED - 1) {
		st->kind = "empty";
		goto count;
	}
	j = item - N_FIXED;
	if (pt->exhaustive) {
		if (j < pt->combos) {
			st->kind = "subset";
			choose_combo(pt, st, bij(seed, pt->combos, j), seed);
			goto count;
		}
		r = j - pt->combos;
		if (r < n_torn_items(p, s->n_multi))
			goto torn;
		r -= n_torn_items(p, s->n_multi);
		goto garbage;
	}
	i = N_STRATEGIES + (p->opts.tear ? 1 : 0) + (p->opts.garbage ? 1 : 0);
	strat = (uint32_t)(j % i);
	r = j / i;
	switch (strat) {
	case 0: /* prefix in receive order */
	case 3: /* prefix in completion order */
		if (r >= n - 1)
			goto random_half;
		len = 1 + (uint32_t)bij(seed + strat, n - 1, r);
		st->kind = strat ? "prefix-done" : "prefix-recv";
		for (i = 0; i < len; i++)
			bit_set(st->chosen,
				strat ? (uint32_t)s->pos_of[s->by_reply[i]]
				      : i);
		goto count;
	case 1: /* omit one */
	case 4: /* keep one */
		if (r >= n)
			goto random_half;
		c = bij(seed + strat, n, r);
		if (strat == 1) {
			st->kind = "omit-one";
			for (i = 0; i < n; i++)
				if (i != c)
					bit_set(st->chosen, i);
		} else {
			st->kind = "keep-one";
			bit_set(st->chosen, c);
		}
		goto count;
	case 2:
		st->kind = "random-0.1";
		choose_random(st, &rng, 0.1);
		random_variant(pt, st, &rng, seed);
		goto count;
	case 5:
		st->kind = "random-0.9";
		choose_random(st, &rng, 0.9);
		random_variant(pt, st, &rng, seed);
		goto count;
	case 6:
		goto random_half;
	default:
		if (p->opts.tear && strat == N_STRATEGIES)
			goto torn;
		goto garbage;
	}

torn:
	if (!s->n_multi)
		goto random_half;
	st->kind = "torn";
	choose_random(st, &rng, 0.5);
	random_variant(pt, st, &rng, seed);
	/* r == 0: the last received multi-unit write; then spread. */
	ret = tear_write(
		p, s, st,
		r ? s->multi[bij(seed + 99, s->n_multi, (r - 1) % s->n_multi)]
		  : s->multi[s->n_multi - 1],
		&rng);
	if (ret < 0) {
		crash_state_free(st);
		return ret;
	}
	goto count;

garbage:
	if (!n)
		goto random_half;
	st->kind = "garbage";
	choose_random(st, &rng, 0.5);
	random_variant(pt, st, &rng, seed);
	/* r == 0: the last received pending write; then spread. */
	ret = garble_write(p, s, st,
			   r ? s->pending[bij(seed + 77, n, (r - 1) % n)]
			     : s->pending[n - 1],
			   &rng);
	if (ret < 0) {
		crash_state_free(st);
		return ret;
	}
	goto count;

random_half:
	st->kind = "random-0.5";
	choose_random(st, &rng, 0.5);
	random_variant(pt, st, &rng, seed);
count:
	for (i = 0; i < n; i++)
		st->n_chosen += bit_get(st->chosen, i);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Providers and extents: S3, S4, S7.                                  */

struct sel {
	const struct crash_plan *p;
	const struct crash_scratch *s;
	uint32_t k; /* point, or CRASH_BASE */
	const struct crash_state *st; /* NULL: D(t) only */
	uint64_t unit_off; /* offset of the piece, for a torn write */
};

static bool chosen(const struct sel *x, uint32_t w)
{
	const struct crash_write *cw = &x->p->writes[w];
	const struct crash_state *st = x->st;
	int32_t pos;

	if (st && st->trim_old && cw->kind == CRASH_W_TRIM &&
	    bit_get(st->trim_old, cw->trim_no))
		return false; /* S4: this TRIM keeps the old contents */
	if (crash_durable(x->p, x->k, w))
		return true;
	if (!st)
		return false;
	pos = x->s->pos_of[w];
	if (pos < 0 || !bit_get(st->chosen, (uint32_t)pos))
		return false;
	if ((uint32_t)pos == st->torn && !st->garbage) {
		uint64_t a = x->p->opts.unit;

		return bit_get(st->tear, x->unit_off / a - cw->off / a);
	}
	return true;
}

/* S8: where rank r of the permutations of m (<= MAX_PERM) puts c. */
static uint32_t perm_pos(uint32_t m, uint64_t r, uint32_t c)
{
	uint32_t rest[MAX_PERM], i, j, n = m;

	for (i = 0; i < m; i++)
		rest[i] = i;
	for (i = 0; i < m; i++) {
		uint64_t f = factorial(m - 1 - i);

		j = (uint32_t)(r / f);
		r %= f;
		if (rest[j] == c)
			return i;
		memmove(&rest[j], &rest[j + 1], (n - j - 1) * sizeof *rest);
		n--;
	}
	return 0;
}

/* S8: w's rank in the state's order (higher: later, so it wins). */
static uint64_t prio(const struct sel *x, uint32_t w)
{
	uint32_t m = x->p->points[x->k].n_conc, c = x->p->writes[w].conc_no;
	uint32_t o = x->st->order;

	if (c == NONE)
		return w; /* not concurrent: alone among the hb-maximal */
	if (m <= MAX_PERM)
		return perm_pos(m, o, c);
	if (o == 1)
		return m - c; /* the reverse of the receive order */
	return mix3(x->p->opts.seed, o, c);
}

/* The write whose bytes segment seg holds, or NONE for the base. */
static uint32_t provider(const struct sel *x, uint32_t seg)
{
	const struct crash_plan *p = x->p;
	uint32_t n_recv = x->k == CRASH_BASE ? 0 : p->points[x->k].n_recv;
	uint32_t e, w, last = NONE, best;
	uint64_t bp;

	for (e = p->cov_start[seg]; e < p->cov_start[seg + 1]; e++) {
		w = p->cov[e];
		if (w >= n_recv)
			break;
		if (chosen(x, w))
			last = w;
	}
	if (last == NONE || !x->st || !x->st->order)
		return last;
	/* S3, S8: the hb-maximal chosen writes are last and those that
	   replied after it arrived; the state's order picks among them. */
	best = last;
	bp = prio(x, last);
	for (e = p->cov_start[seg]; e < p->cov_start[seg + 1]; e++) {
		w = p->cov[e];
		if (w >= last)
			break;
		if (p->writes[w].reply > p->writes[last].recv && chosen(x, w) &&
		    prio(x, w) > bp) {
			best = w;
			bp = prio(x, w);
		}
	}
	return best;
}

static uint32_t src_of(const struct crash_plan *p, uint32_t w)
{
	if (w == NONE)
		return CRASH_SRC_BASE;
	if (p->writes[w].kind != CRASH_W_DATA)
		return CRASH_SRC_ZERO;
	return w;
}

static int emit(struct crash_extents *out, uint64_t off, uint64_t len,
		uint32_t src)
{
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 64;
		struct crash_extent *v = realloc(out->v, cap * sizeof *v);

		if (!v)
			return -ENOMEM;
		out->v = v;
		out->cap = cap;
	}
	out->v[out->n++] = (struct crash_extent){off, len, src, 0};
	return 0;
}

static int cmp_extent(const void *a, const void *b)
{
	const struct crash_extent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

_Static_assert(sizeof(struct crash_extent) == 24,
	       "the key hashes struct crash_extent: it must have no padding");

/* Sort, merge neighbours with the same source, and compute the key. */
static void finish(struct crash_extents *out)
{
	size_t i, m = 0;

	if (out->n > 1)
		qsort(out->v, out->n, sizeof *out->v, cmp_extent);
	for (i = 0; i < out->n; i++) {
		struct crash_extent *e = &out->v[i];

		if (m && out->v[m - 1].src == e->src &&
		    out->v[m - 1].off + out->v[m - 1].len == e->off)
			out->v[m - 1].len += e->len;
		else
			out->v[m++] = *e;
	}
	out->n = m;
	out->key = XXH3_64bits(out->v, m * sizeof *out->v);
}

/* Compare segment seg (or its pieces) under a selection and a reference. */
static int visit(const struct sel *x, const struct sel *ref, uint32_t seg,
		 struct crash_extents *out)
{
	const struct crash_plan *p = x->p;
	uint64_t lo = p->bound[seg], hi = p->bound[seg + 1], a, end;
	const struct crash_write *tw = NULL;
	uint32_t sx, sr, w;
	struct sel piece;

	if (x->st && x->st->torn != NONE) {
		tw = &p->writes[x->s->pending[x->st->torn]];
		if (lo < tw->off || lo >= tw->off + tw->len)
			tw = NULL;
	}
	sr = src_of(p, provider(ref, seg));
	if (!tw) {
		sx = src_of(p, provider(x, seg));
		return sx == sr ? 0 : emit(out, lo, hi - lo, sx);
	}
	/* S6: a torn write's segment is cut at unit boundaries. */
	piece = *x;
	a = p->opts.unit;
	for (; lo < hi; lo = end) {
		end = (lo / a + 1) * a;
		if (end > hi)
			end = hi;
		piece.unit_off = lo;
		w = provider(&piece, seg);
		/* S9: garbage where the garbled write is the last writer, not
		   under a write that came after it (a durable one, say). */
		if (x->st->garbage &&
		    bit_get(x->st->tear, lo / a - tw->off / a) &&
		    w == x->s->pending[x->st->torn])
			sx = CRASH_SRC_GARBAGE;
		else
			sx = src_of(p, w);
		if (sx != sr && emit(out, lo, end - lo, sx) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int visit_write(struct crash_scratch *s, const struct sel *x,
		       const struct sel *ref, uint32_t w,
		       struct crash_extents *out)
{
	const struct crash_plan *p = x->p;
	const struct crash_write *cw = &p->writes[w];
	uint32_t seg;

	for (seg = p->seg_lo[w];
	     seg < p->n_seg && p->bound[seg] < cw->off + cw->len; seg++) {
		if (s->seg_stamp[seg] == s->stamp)
			continue;
		s->seg_stamp[seg] = s->stamp;
		if (visit(x, ref, seg, out) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void new_stamp(struct crash_scratch *s, const struct crash_plan *p)
{
	if (++s->stamp == 0) {
		memset(s->seg_stamp, 0, (p->n_seg + 1) * sizeof *s->seg_stamp);
		s->stamp = 1;
	}
}

int crash_state_extents(const struct crash_plan *p, struct crash_scratch *s,
			const struct crash_state *st, struct crash_extents *out)
{
	struct sel x = {p, s, st->point, st, 0}, ref = {p, s, st->point, 0, 0};
	uint32_t i, n_recv = p->points[st->point].n_recv;

	out->n = 0;
	new_stamp(s, p);
	for (i = 0; i < st->n_pending; i++)
		if (bit_get(st->chosen, i) &&
		    visit_write(s, &x, &ref, s->pending[i], out) < 0)
			return -ENOMEM;
	for (i = 0; st->variant && i < n_recv; i++) {
		const struct crash_write *w = &p->writes[i];

		if (((st->variant & CRASH_V_SWAP) && w->conc) ||
		    ((st->variant & CRASH_V_TRIM_OLD) &&
		     w->kind == CRASH_W_TRIM))
			if (visit_write(s, &x, &ref, i, out) < 0)
				return -ENOMEM;
	}
	finish(out);
	return 0;
}

int crash_durable_diff(const struct crash_plan *p, struct crash_scratch *s,
		       uint32_t from, uint32_t to, struct crash_extents *out)
{
	struct sel x = {p, s, to, 0, 0}, ref = {p, s, from, 0, 0};
	uint32_t n = 0, w;

	out->n = 0;
	new_stamp(s, p);
	if (to != CRASH_BASE)
		n = p->points[to].n_recv;
	if (from != CRASH_BASE && p->points[from].n_recv > n)
		n = p->points[from].n_recv;
	for (w = 0; w < n; w++)
		if (crash_durable(p, from, w) != crash_durable(p, to, w) &&
		    visit_write(s, &x, &ref, w, out) < 0)
			return -ENOMEM;
	finish(out);
	return 0;
}

void crash_garbage(uint64_t off, uint64_t len, uint8_t *out)
{
	uint64_t i, word = UINT64_MAX, v = 0;

	for (i = 0; i < len; i++) {
		uint64_t o = off + i;

		if (o >> 3 != word) {
			word = o >> 3;
			v = word ^ 0x6761726261676521ull; /* "garbage!" */
			v = splitmix(&v);
		}
		out[i] = (uint8_t)(v >> ((o & 7) * 8));
	}
}

void crash_extents_free(struct crash_extents *x)
{
	free(x->v);
	memset(x, 0, sizeof *x);
}
