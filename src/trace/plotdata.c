/* SPDX-License-Identifier: MIT */
/*
 * plotdata.c: what the picture of a trace shows (`loopd trace plot`),
 * from decoded records: its requests in lanes, its syncs and marks, the
 * writes each flush covers, the crash points, and what a crash state made
 * of each write.  Pure: no I/O.  The layout is plot.c.
 *
 * Y1. Requests and lanes.  A request is a RECV; its reply is the first
 *     REPLY of its (conn, cookie) after it that no later RECV of that key
 *     has taken (trace-format.md: "the latest RECV with that key before
 *     the REPLY").  Without one it runs to the end of the view.  A SYNC_END
 *     ends the latest open SYNC_BEGIN of its id.  There is one lane per
 *     connection, in ascending connection number.
 * Y2. What a flush covers.  Under the contract (docs/crash.md §1) a flush
 *     f covers every write replied OK before RecvF(f), so each flush also
 *     covers everything an earlier one did.  The picture shows, per flush,
 *     only what it adds: the OK writes with RecvF(g) <= ReplyW(w) <
 *     RecvF(f), g the flush received just before f (any connection).
 *     Those sets are disjoint, and the bracket of f spans from the first
 *     RECV among them to RecvF(f).
 * Y3. A crash state (--state K.I), from states.c with the options that
 *     `loopd crash` used (X7): a write received at or after the point's t
 *     is AFTER; one in D(t) is DURABLE; a pending one is KEPT when the
 *     state chose it, TORN when chosen and torn or partly garbage (S6,
 *     S9), else DROPPED.  A durable or kept TRIM that the state keeps
 *     as the old data (S4) says so in its title.  Writes the plan leaves out (zero-length, a
 *     TRIM with no whole block inside, S4) stay unmarked.
 */
#include "trace/plot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd.h"

/* A RECV or REPLY, for matching replies to requests by (conn, cookie). */
struct pmatch {
	uint32_t conn;
	uint64_t cookie, seq;
	int64_t req; /* a RECV: its request; a REPLY: -1 */
	int32_t status;
	uint64_t t_ns;
};

static int cmp_pmatch(const void *a, const void *b)
{
	const struct pmatch *x = a, *y = b;

	if (x->conn != y->conn)
		return x->conn < y->conn ? -1 : 1;
	if (x->cookie != y->cookie)
		return x->cookie < y->cookie ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint8_t kind_of(uint16_t cmd)
{
	switch (cmd) {
	case NBD_CMD_WRITE:
		return PLOT_K_WRITE;
	case NBD_CMD_WRITE_ZEROES:
		return PLOT_K_ZERO;
	case NBD_CMD_TRIM:
		return PLOT_K_TRIM;
	case NBD_CMD_READ:
		return PLOT_K_READ;
	case NBD_CMD_FLUSH:
		return PLOT_K_FLUSH;
	default:
		return PLOT_K_OTHER;
	}
}

static bool is_write(uint8_t kind)
{
	return kind == PLOT_K_WRITE || kind == PLOT_K_ZERO ||
	       kind == PLOT_K_TRIM;
}

/* Y1: each REPLY ends the latest unmatched RECV of its key. */
static int match_replies(struct plot_trace *t, struct pmatch *m, size_t nm)
{
	int64_t *stack = malloc((nm ? nm : 1) * sizeof *stack);
	size_t i, sp = 0;

	if (!stack)
		return -ENOMEM;
	qsort(m, nm, sizeof *m, cmp_pmatch);
	for (i = 0; i < nm; i++) {
		struct plot_req *q;

		if (i && (m[i].conn != m[i - 1].conn ||
			  m[i].cookie != m[i - 1].cookie))
			sp = 0;
		if (m[i].req >= 0) {
			stack[sp++] = m[i].req;
			continue;
		}
		if (!sp)
			continue; /* a reply to nothing: ignore */
		q = &t->reqs[stack[--sp]];
		q->reply = m[i].seq;
		q->t_reply = m[i].t_ns;
		q->status = m[i].status;
	}
	free(stack);
	return 0;
}

/* Y1: the lanes, one per connection, in ascending number. */
static int make_lanes(struct plot_trace *t)
{
	uint32_t *c = malloc((t->n_reqs ? t->n_reqs : 1) * sizeof *c);
	size_t i, n = 0;

	if (!c)
		return -ENOMEM;
	for (i = 0; i < t->n_reqs; i++)
		c[i] = t->reqs[i].conn;
	qsort(c, t->n_reqs, sizeof *c, cmp_u32);
	for (i = 0; i < t->n_reqs; i++)
		if (!n || c[n - 1] != c[i])
			c[n++] = c[i];
	t->lane_conn = c;
	t->n_lanes = (uint32_t)n;
	for (i = 0; i < t->n_reqs; i++) {
		const uint32_t *hit =
			bsearch(&t->reqs[i].conn, c, n, sizeof *c, cmp_u32);

		t->reqs[i].lane = (uint32_t)(hit - c);
	}
	return 0;
}

static int cmp_reply(const void *a, const void *b, void *arg)
{
	const struct plot_req *r = arg;
	uint64_t x = r[*(const uint32_t *)a].reply;
	uint64_t y = r[*(const uint32_t *)b].reply;

	return x < y ? -1 : x > y;
}

/* Y2: per flush, the writes it adds to what flushes cover. */
static int coverage(struct plot_trace *t)
{
	uint32_t *ok = malloc((t->n_reqs ? t->n_reqs : 1) * sizeof *ok);
	uint64_t prev = 0;
	size_t i, n = 0, lo = 0;

	if (!ok)
		return -ENOMEM;
	for (i = 0; i < t->n_reqs; i++) {
		const struct plot_req *r = &t->reqs[i];

		if (is_write(r->kind) && !r->status && r->reply != PLOT_NEVER)
			ok[n++] = (uint32_t)i;
	}
	qsort_r(ok, n, sizeof *ok, cmp_reply, t->reqs);
	for (i = 0; i < t->n_reqs; i++) {
		struct plot_req *f = &t->reqs[i];

		if (f->kind != PLOT_K_FLUSH)
			continue;
		/* ok[] is in reply order: skip what earlier flushes took. */
		while (lo < n && t->reqs[ok[lo]].reply < prev)
			lo++;
		f->cov_from = PLOT_NEVER;
		while (lo < n && t->reqs[ok[lo]].reply < f->recv) {
			if (t->reqs[ok[lo]].recv < f->cov_from)
				f->cov_from = t->reqs[ok[lo]].recv;
			f->cov_n++;
			lo++;
		}
		prev = f->recv;
	}
	free(ok);
	return 0;
}

/* Y1: a SYNC_END ends the latest open SYNC_BEGIN of its id, among the
   last 256 (loopd has a few syncs at a time; a trace from elsewhere with
   thousands left open costs no quadratic time). */
static void end_sync(struct plot_trace *t, const struct trace_rec *r)
{
	size_t i = t->n_syncs, stop = i > 256 ? i - 256 : 0;

	while (i-- > stop)
		if (t->syncs[i].end == PLOT_NEVER &&
		    t->syncs[i].id == r->sync.id) {
			t->syncs[i].end = r->seq;
			t->syncs[i].res = r->sync.res;
			return;
		}
}

/* One RECV or REPLY into t and the match list m. */
static void add_request(struct plot_trace *t, const struct trace_rec *r,
			struct pmatch *x)
{
	x->seq = r->seq;
	x->t_ns = r->t_ns;
	if (r->type == TRACE_REPLY) {
		x->conn = r->reply.conn;
		x->cookie = r->reply.cookie;
		x->req = -1;
		x->status = r->reply.status;
		return;
	}
	struct plot_req *q = &t->reqs[t->n_reqs];

	*q = (struct plot_req){.recv = r->seq,
			       .reply = PLOT_NEVER,
			       .t_recv = r->t_ns,
			       .off = r->recv.offset,
			       .len = r->recv.length,
			       .conn = r->recv.conn,
			       .status = -EINPROGRESS,
			       .kind = kind_of(r->recv.cmd),
			       .fua = r->recv.flags & NBD_CMD_FLAG_FUA};
	x->conn = r->recv.conn;
	x->cookie = r->recv.cookie;
	x->req = (int64_t)t->n_reqs++;
}

int plot_trace_build(const struct trace_header *h, const struct trace_rec *recs,
		     size_t n, struct plot_trace *t)
{
	size_t i, nm = 0, nq = 0, ns = 0, nk = 0;
	struct pmatch *m;
	int r;

	memset(t, 0, sizeof *t);
	t->size = h->size;
	for (i = 0; i < n; i++) {
		nm += recs[i].type == TRACE_RECV || recs[i].type == TRACE_REPLY;
		nq += recs[i].type == TRACE_RECV;
		ns += recs[i].type == TRACE_SYNC_BEGIN;
		nk += recs[i].type == TRACE_MARK;
	}
	m = malloc((nm ? nm : 1) * sizeof *m);
	t->reqs = calloc(nq ? nq : 1, sizeof *t->reqs);
	t->syncs = calloc(ns ? ns : 1, sizeof *t->syncs);
	t->marks = calloc(nk ? nk : 1, sizeof *t->marks);
	if (!m || !t->reqs || !t->syncs || !t->marks) {
		r = -ENOMEM;
		goto out;
	}
	if (n) {
		t->first_seq = recs[0].seq;
		t->last_seq = recs[n - 1].seq;
	}
	nm = 0;
	for (i = 0; i < n; i++) {
		const struct trace_rec *rec = &recs[i];

		switch (rec->type) {
		case TRACE_RECV:
		case TRACE_REPLY:
			add_request(t, rec, &m[nm++]);
			break;
		case TRACE_SYNC_BEGIN:
			t->syncs[t->n_syncs++] =
				(struct plot_sync){.begin = rec->seq,
						   .end = PLOT_NEVER,
						   .id = rec->sync.id};
			break;
		case TRACE_SYNC_END:
			end_sync(t, rec);
			break;
		case TRACE_MARK:
			t->marks[t->n_marks++] =
				(struct plot_mark){.seq = rec->seq,
						   .label = rec->mark.label,
						   .len = rec->mark.len};
			break;
		default:
			break;
		}
	}
	r = match_replies(t, m, nm);
	if (!r)
		r = make_lanes(t);
	if (!r)
		r = coverage(t);
out:
	free(m);
	if (r < 0)
		plot_trace_free(t);
	return r;
}

void plot_trace_free(struct plot_trace *t)
{
	free(t->reqs);
	free(t->syncs);
	free(t->marks);
	free(t->lane_conn);
	free(t->points);
	memset(t, 0, sizeof *t);
}

int plot_points(struct plot_trace *t, const struct crash_plan *p)
{
	uint32_t k;

	free(t->points);
	t->points = calloc(p->n_points ? p->n_points : 1, sizeof *t->points);
	if (!t->points)
		return -ENOMEM;
	for (k = 0; k < p->n_points; k++)
		t->points[k] = (struct plot_point){
			.t = p->points[k].t,
			.why = p->points[k].why,
			.n_pending = p->points[k].n_pending,
			.n_durable = p->points[k].n_durable};
	t->n_points = p->n_points;
	return 0;
}

static int cmp_recv_key(const void *key, const void *elt)
{
	uint64_t x = *(const uint64_t *)key;
	uint64_t y = ((const struct plot_req *)elt)->recv;

	return x < y ? -1 : x > y;
}

static bool bit(const uint64_t *v, uint64_t i)
{
	return v[i / 64] >> (i % 64) & 1;
}

int plot_highlight(struct plot_trace *t, const struct crash_plan *p, uint32_t k,
		   const struct crash_state *st)
{
	const struct crash_point *pt = &p->points[k];
	uint32_t w, pi = 0;
	size_t i;

	for (i = 0; i < t->n_reqs; i++) {
		t->reqs[i].hl = PLOT_HL_NONE;
		t->reqs[i].trim_old = false;
	}
	t->state = true;
	t->crash_t = pt->t;
	t->n_kept = t->n_dropped = t->n_torn = 0;
	t->n_pending = st->n_pending;
	for (w = 0; w < p->n_writes; w++) {
		struct plot_req *q =
			bsearch(&p->writes[w].recv, t->reqs, t->n_reqs,
				sizeof *t->reqs, cmp_recv_key);
		uint8_t hl;

		if (w >= pt->n_recv) {
			hl = PLOT_HL_AFTER;
		} else if (crash_durable(p, k, w)) {
			hl = PLOT_HL_DURABLE;
		} else {
			/* The pending list is in receive order (states.c). */
			if (pi < st->n_pending && bit(st->chosen, pi))
				hl = st->torn == pi ? PLOT_HL_TORN
						    : PLOT_HL_KEPT;
			else
				hl = PLOT_HL_DROPPED;
			pi++;
		}
		t->n_kept += hl == PLOT_HL_KEPT;
		t->n_dropped += hl == PLOT_HL_DROPPED;
		t->n_torn += hl == PLOT_HL_TORN;
		if (!q)
			continue;
		q->hl = hl;
		/* S4: a TRIM present (durable ones too) may keep the old
		   data. */
		q->trim_old = p->writes[w].kind == CRASH_W_TRIM &&
			      st->trim_old &&
			      (hl == PLOT_HL_DURABLE || hl == PLOT_HL_KEPT ||
			       hl == PLOT_HL_TORN) &&
			      bit(st->trim_old, p->writes[w].trim_no);
	}
	return 0;
}
