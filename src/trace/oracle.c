/* SPDX-License-Identifier: MIT */
/*
 * oracle.c: the membership oracle, acceptance test A8 of crash-model.md
 * §4: is a given image (a snapshot, a disk after a power cut) one of the
 * crash states that a trace allows under a model, and from which crash
 * point on?  Pure: no I/O; the image and the base image are memory.
 *
 * Pieces.  The export is cut at every write's boundaries (the plan's
 * elementary segments, S3) and at every multiple of the plan's unit (the
 * atomic unit A, or --tear-unit).  A piece is one of the parts; when the
 * writes are aligned to the unit, a piece is a unit.  Notation as in
 * states.c: RecvW(w), ReplyW(w), hb, D(t), P(t).
 *
 * O1. Membership.  An image is a state at crash point k iff every piece
 *     is explained at k (O2).  Pieces choose independently (Cand of
 *     crash-model.md §2.4 is per unit, so a write may be torn at any
 *     unit, and at another write's boundary inside a unit).  Bytes that
 *     no write covers must equal the base's.
 * O2. Explained.  A piece x holding bytes v is explained at point k
 *     (a crash just before t = points[k].t) iff
 *       (a) v is the base's bytes, and no durable write other than a TRIM
 *           covers x; or
 *       (b) v is what some write c received before t puts on x (its
 *           payload; zeroes for WRITE_ZEROES and for TRIM), and c is not
 *           hb-before any durable non-TRIM write d covering x, that is
 *           ReplyW(c) > RecvW(d) (a write never replied to is never
 *           hb-before anything); or
 *       (c) with --garbage (S9), a pending write covers x, whatever v
 *           is.
 *     This is Cand(x, t) with TRIM as "old or zero" per piece (§2.6): a
 *     TRIM left old is as if never sent, so it neither shows nor hides;
 *     one that lands is a write of zeroes.  Every state the explorer
 *     builds is in it: a segment's provider is the last chosen covering
 *     write, or another hb-maximal one (S3, S8), never hb-before a chosen
 *     write, and every durable write but a TRIM left old is chosen; a torn
 *     write is cut at the unit (S6); a TRIM left old is not chosen (S4);
 *     a garbage unit lies inside a pending write (S9).
 * O3. The earliest point.  D(t) only grows from one point to the next in
 *     every model (S2), so each write has a first point where it has been
 *     received and a first where it is durable, and between two such
 *     events of its covering writes a piece's answer cannot change.  Per
 *     piece, one sweep over those events in point order finds the points
 *     where it is not explained, added to a difference array over the
 *     points; the first point with nothing unexplained is the answer.
 *     Cost: one comparison per byte a write carried, plus the events of
 *     each piece; no subset is ever enumerated.  A model whose D(t)
 *     shrank would make this wrong: it is refused (-ENOTSUP), checked by
 *     comparing |D| per point with the plan's.
 * O4. Refutation.  The first piece (lowest offset) that no point
 *     explains.  If every piece is explained somewhere but no point
 *     explains them all, the closest point (fewest unexplained pieces,
 *     the earliest of those) and its first unexplained piece.
 * O5. Presence (the report on an accepted image).  At its point, a
 *     pending write w may change a piece when it may show there (O2 b)
 *     and its bytes differ from those of D(t) built in receive order; it
 *     is shown on the pieces of those that hold its bytes.  It is present
 *     whole when shown on all of them, in part when on some.
 */
#include "trace/oracle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

/* A DUR event of a segment: covering write c becomes durable at point k. */
struct dur {
	uint32_t k, c;
};

struct oracle {
	const struct crash_plan *p;
	const uint8_t *base, *img;
	bool garbage;
	uint32_t n; /* points */
	uint32_t *rpt; /* per write: first point where it is received */
	uint32_t *dpt; /* per write: first point where it is durable */
	int64_t *diff; /* n + 1: unexplained pieces, as differences */
	struct dur *dur; /* scratch: a segment's DUR events */
	uint64_t n_never;
	bool have_first;
	uint64_t first_off, first_len; /* O4: the first never-explained piece */
};

/* ------------------------------------------------------------------ */
/* Bytes of a piece.                                                   */

/* What a source puts on a piece: bytes, or NULL for zeroes. */
static const uint8_t *src_bytes(const struct crash_plan *p, const uint8_t *base,
				uint32_t w, uint64_t off)
{
	const struct crash_write *cw;

	if (w == NONE)
		return base + off;
	cw = &p->writes[w];
	if (cw->kind != CRASH_W_DATA)
		return NULL;
	return cw->data + (off - cw->off);
}

static bool bytes_eq(const uint8_t *a, const uint8_t *b, uint64_t len)
{
	if (!a && !b)
		return true;
	if (!a)
		return trace_is_zero(b, len);
	if (!b)
		return trace_is_zero(a, len);
	return !memcmp(a, b, len);
}

bool oracle_carries(const struct crash_plan *p, uint32_t w, const uint8_t *img,
		    uint64_t off, uint64_t len)
{
	const struct crash_write *cw = &p->writes[w];

	if (cw->kind != CRASH_W_DATA)
		return trace_is_zero(img + off, len);
	return !memcmp(cw->data + (off - cw->off), img + off, len);
}

/* The end of the piece that starts at off, inside [off, hi). */
static uint64_t piece_end(const struct crash_plan *p, uint64_t off, uint64_t hi)
{
	uint64_t a = p->opts.unit, end = (off / a + 1) * a;

	return end < hi ? end : hi;
}

/* ------------------------------------------------------------------ */
/* Points per write: O3.                                               */

uint32_t oracle_first_point(const struct crash_plan *p, uint32_t w)
{
	uint32_t lo = 0, hi = p->n_points;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->points[mid].n_recv > w)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/*
 * The first point where each write is received (n_recv grows along the
 * points) and where it is durable (binary search: D grows, O3), then the
 * check that D really grew: |D| per point as the plan counted it.
 */
static int event_points(struct oracle *o)
{
	const struct crash_plan *p = o->p;
	uint32_t w, k = 0, *cnt;
	uint64_t sum = 0;
	int r = 0;

	for (w = 0; w < p->n_writes; w++) {
		uint32_t lo, hi;

		while (k < o->n && p->points[k].n_recv <= w)
			k++;
		o->rpt[w] = k;
		lo = k;
		hi = o->n;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (crash_durable(p, mid, w))
				hi = mid;
			else
				lo = mid + 1;
		}
		o->dpt[w] = lo;
	}
	cnt = calloc(o->n + 1, sizeof *cnt);
	if (!cnt)
		return -ENOMEM;
	for (w = 0; w < p->n_writes; w++)
		cnt[o->dpt[w]]++;
	for (k = 0; k < o->n; k++) {
		sum += cnt[k];
		if (sum != p->points[k].n_durable) {
			r = -ENOTSUP; /* O3: D(t) shrank somewhere */
			break;
		}
	}
	free(cnt);
	return r;
}

/* ------------------------------------------------------------------ */
/* Pieces: O1, O2, O3.                                                 */

/* O2 from the state of a piece's sweep. */
static bool explained(const struct oracle *o, bool base_ok, uint64_t mreply,
		      uint64_t rmax, uint32_t npend)
{
	return (o->garbage && npend) || (base_ok && !rmax) || mreply > rmax;
}

/* A piece no point explains (O1, O4): the first is kept. */
static void never(struct oracle *o, uint64_t off, uint64_t len)
{
	if (!o->n_never++) {
		o->have_first = true;
		o->first_off = off;
		o->first_len = len;
	}
}

/* O1: bytes [lo, hi) that no write covers must equal the base's. */
static void gap(struct oracle *o, uint64_t lo, uint64_t hi)
{
	const uint64_t step = 1u << 20;

	while (lo < hi) {
		/* A whole number of pieces at a time (the last may be cut). */
		uint64_t end =
			hi - lo > step ? piece_end(o->p, lo + step, hi) : hi;
		uint64_t x, x1;

		if (!memcmp(o->img + lo, o->base + lo, end - lo)) {
			lo = end;
			continue;
		}
		for (x = lo; x < end; x = x1) {
			x1 = piece_end(o->p, x, end);
			if (!memcmp(o->img + x, o->base + x, x1 - x))
				continue;
			o->diff[0]++;
			o->diff[o->n]--;
			never(o, x, x1 - x);
		}
		lo = end;
	}
}

static int cmp_dur(const void *a, const void *b)
{
	const struct dur *x = a, *y = b;

	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return x->c < y->c ? -1 : x->c > y->c;
}

/*
 * O3: the points where piece [x0, x1) is not explained go into diff.  cw
 * are its m covering writes (receive order: their first points grow), dur
 * its segment's DUR events sorted by point.
 */
static void sweep_piece(struct oracle *o, const uint32_t *cw, uint32_t m,
			uint32_t n_dur, uint64_t x0, uint64_t x1)
{
	const struct crash_plan *p = o->p;
	const uint8_t *v = o->img + x0;
	bool base_ok = !memcmp(v, o->base + x0, x1 - x0), any = false;
	uint64_t mreply = 0, rmax = 0;
	uint32_t i = 0, j = 0, from = 0, npend = 0;

	for (;;) {
		uint32_t next = o->n;

		if (i < m && o->rpt[cw[i]] < next)
			next = o->rpt[cw[i]];
		if (j < n_dur && o->dur[j].k < next)
			next = o->dur[j].k;
		if (from < next) {
			if (explained(o, base_ok, mreply, rmax, npend)) {
				any = true;
			} else {
				o->diff[from]++;
				o->diff[next]--;
			}
		}
		if (next == o->n)
			break;
		for (; i < m && o->rpt[cw[i]] == next; i++) {
			const struct crash_write *w = &p->writes[cw[i]];

			npend++;
			if (w->reply > mreply &&
			    oracle_carries(p, cw[i], o->img, x0, x1 - x0))
				mreply = w->reply;
		}
		for (; j < n_dur && o->dur[j].k == next; j++) {
			const struct crash_write *w = &p->writes[o->dur[j].c];

			npend--;
			if (w->kind != CRASH_W_TRIM && w->recv > rmax)
				rmax = w->recv;
		}
		from = next;
	}
	if (!any)
		never(o, x0, x1 - x0);
}

/* O3 for segment s (it has covering writes): its DUR events, its pieces. */
static void sweep_segment(struct oracle *o, uint32_t s)
{
	const struct crash_plan *p = o->p;
	const uint32_t *cw = &p->cov[p->cov_start[s]];
	uint32_t m = p->cov_start[s + 1] - p->cov_start[s], i, n_dur = 0;
	uint64_t x, x1, hi = p->bound[s + 1];

	for (i = 0; i < m; i++)
		if (o->dpt[cw[i]] < o->n)
			o->dur[n_dur++] = (struct dur){o->dpt[cw[i]], cw[i]};
	if (n_dur > 1)
		qsort(o->dur, n_dur, sizeof *o->dur, cmp_dur);
	for (x = p->bound[s]; x < hi; x = x1) {
		x1 = piece_end(p, x, hi);
		sweep_piece(o, cw, m, n_dur, x, x1);
	}
}

/* O2 at one point k, without a sweep (for O4's second look). */
static bool piece_ok_at(const struct oracle *o, const uint32_t *cw, uint32_t m,
			uint64_t x0, uint64_t x1, uint32_t k)
{
	const struct crash_plan *p = o->p;
	uint64_t mreply = 0, rmax = 0;
	uint32_t i, npend = 0;

	for (i = 0; i < m; i++) {
		const struct crash_write *w = &p->writes[cw[i]];

		if (o->rpt[cw[i]] > k)
			break;
		if (o->dpt[cw[i]] > k)
			npend++;
		else if (w->kind != CRASH_W_TRIM && w->recv > rmax)
			rmax = w->recv;
	}
	for (i = 0; i < m && o->rpt[cw[i]] <= k; i++)
		if (p->writes[cw[i]].reply > mreply &&
		    oracle_carries(p, cw[i], o->img, x0, x1 - x0))
			mreply = p->writes[cw[i]].reply;
	return explained(o, !memcmp(o->img + x0, o->base + x0, x1 - x0), mreply,
			 rmax, npend);
}

/* O4: the first piece not explained at k, when every piece is explained
   at some point (so the bytes no write covers are the base's). */
static void first_bad_at(const struct oracle *o, uint32_t k,
			 struct oracle_result *res)
{
	const struct crash_plan *p = o->p;
	uint32_t s;

	for (s = 0; s < p->n_seg; s++) {
		const uint32_t *cw = &p->cov[p->cov_start[s]];
		uint32_t m = p->cov_start[s + 1] - p->cov_start[s];
		uint64_t x, x1, hi = p->bound[s + 1];

		for (x = p->bound[s]; m && x < hi; x = x1) {
			x1 = piece_end(p, x, hi);
			if (!piece_ok_at(o, cw, m, x, x1, k)) {
				res->bad_off = x;
				res->bad_len = x1 - x;
				return;
			}
		}
	}
}

static void free_oracle(struct oracle *o)
{
	free(o->rpt);
	free(o->dpt);
	free(o->diff);
	free(o->dur);
}

/* O1, O4: from the differences, the earliest point with no unexplained
   piece, else the closest one. */
static void decide(struct oracle *o, struct oracle_result *res,
		   uint64_t *per_point)
{
	int64_t run = 0;
	uint64_t best = UINT64_MAX;
	uint32_t k;

	for (k = 0; k < o->n; k++) {
		run += o->diff[k];
		if (per_point)
			per_point[k] = (uint64_t)run;
		if ((uint64_t)run < best) {
			best = (uint64_t)run;
			res->point = k;
		}
	}
	res->member = best == 0;
	res->n_bad = best;
	res->n_never = o->n_never;
	if (res->member)
		return;
	if (o->have_first) {
		res->never = true;
		res->bad_off = o->first_off;
		res->bad_len = o->first_len;
		return;
	}
	first_bad_at(o, res->point, res);
}

int oracle_check(const struct crash_plan *p, const uint8_t *base,
		 const uint8_t *img, struct oracle_result *res,
		 uint64_t *per_point)
{
	struct oracle o = {.p = p, .base = base, .img = img};
	uint32_t s, max_m = 1;
	uint64_t pos = 0;
	int r;

	memset(res, 0, sizeof *res);
	o.garbage = p->opts.garbage;
	o.n = p->n_points;
	if (!o.n)
		return -EINVAL;
	for (s = 0; s < p->n_seg; s++)
		if (p->cov_start[s + 1] - p->cov_start[s] > max_m)
			max_m = p->cov_start[s + 1] - p->cov_start[s];
	o.rpt = malloc(((size_t)p->n_writes + 1) * sizeof *o.rpt);
	o.dpt = malloc(((size_t)p->n_writes + 1) * sizeof *o.dpt);
	o.diff = calloc((size_t)o.n + 1, sizeof *o.diff);
	o.dur = malloc(max_m * sizeof *o.dur);
	if (!o.rpt || !o.dpt || !o.diff || !o.dur) {
		r = -ENOMEM;
		goto out;
	}
	r = event_points(&o);
	if (r < 0)
		goto out;
	for (s = 0; s < p->n_seg; s++) {
		uint64_t lo = p->bound[s], hi = p->bound[s + 1];

		if (pos < lo)
			gap(&o, pos, lo);
		if (p->cov_start[s + 1] == p->cov_start[s])
			gap(&o, lo, hi);
		else
			sweep_segment(&o, s);
		pos = hi;
	}
	gap(&o, pos, p->hdr.size);
	decide(&o, res, per_point);
out:
	free_oracle(&o);
	return r;
}

/* ------------------------------------------------------------------ */
/* For the report: O5 and the pieces of an explanation.                */

const uint32_t *oracle_writes_at(const struct crash_plan *p, uint64_t off,
				 uint32_t *n)
{
	uint32_t lo = 0, hi = p->n_seg + 1, s;

	*n = 0;
	if (!p->n_seg)
		return NULL;
	/* lo: how many boundaries are at or before off. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->bound[mid] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || lo > p->n_seg)
		return NULL; /* before the first write or after the last */
	s = lo - 1;
	*n = p->cov_start[s + 1] - p->cov_start[s];
	return *n ? &p->cov[p->cov_start[s]] : NULL;
}

bool oracle_may_show(const struct crash_plan *p, uint32_t k, uint32_t w,
		     uint64_t off, uint32_t *hider)
{
	const uint32_t *cw;
	uint32_t n, i;

	*hider = NONE;
	if (w >= p->points[k].n_recv)
		return false;
	cw = oracle_writes_at(p, off, &n);
	for (i = 0; i < n; i++) {
		const struct crash_write *d = &p->writes[cw[i]];

		if (d->kind != CRASH_W_TRIM && crash_durable(p, k, cw[i]) &&
		    d->recv > p->writes[w].reply) {
			*hider = cw[i];
			return false;
		}
	}
	return true;
}

int oracle_presence(const struct crash_plan *p, const uint8_t *base,
		    const uint8_t *img, uint32_t k,
		    struct oracle_presence *per_write, uint64_t *differ)
{
	uint32_t n_recv = p->points[k].n_recv, s, i;
	uint8_t *dur = malloc((size_t)p->n_writes + 1);

	if (!dur)
		return -ENOMEM;
	memset(per_write, 0, (size_t)p->n_writes * sizeof *per_write);
	for (i = 0; i < n_recv; i++)
		dur[i] = crash_durable(p, k, i);
	*differ = 0;
	for (s = 0; s < p->n_seg; s++) {
		const uint32_t *cw = &p->cov[p->cov_start[s]];
		uint32_t m = p->cov_start[s + 1] - p->cov_start[s];
		uint32_t prov = NONE;
		uint64_t x, x1, rmax = 0, hi = p->bound[s + 1];

		/* D(t) in receive order (states.c with no state chosen). */
		for (i = 0; i < m && cw[i] < n_recv; i++) {
			const struct crash_write *w = &p->writes[cw[i]];

			if (!dur[cw[i]])
				continue;
			prov = cw[i];
			if (w->kind != CRASH_W_TRIM && w->recv > rmax)
				rmax = w->recv;
		}
		for (x = p->bound[s]; m && x < hi; x = x1) {
			const uint8_t *d;

			x1 = piece_end(p, x, hi);
			d = src_bytes(p, base, prov, x);
			if (!bytes_eq(d, img + x, x1 - x))
				(*differ)++;
			for (i = 0; i < m && cw[i] < n_recv; i++) {
				uint32_t w = cw[i];

				if (dur[w] || p->writes[w].reply <= rmax ||
				    bytes_eq(src_bytes(p, base, w, x), d,
					     x1 - x))
					continue;
				per_write[w].can++;
				if (oracle_carries(p, w, img, x, x1 - x))
					per_write[w].shown++;
			}
		}
	}
	free(dur);
	return 0;
}
