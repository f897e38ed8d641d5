/* SPDX-License-Identifier: MIT */
/*
 * test-sched.c: the scheduler's rules R1..R8 (top of src/engine/sched.c,
 * docs/semantics.md), one test per claim, named after the rule it proves.
 *
 * Method: a small harness (struct h) owns a scheduler and a pool of
 * requests.  SUBMIT, COMPLETE and SYNC_DONE call the scheduler and queue the
 * events it emitted, in order (a sync request goes last in its call);
 * EXPECT_* pop them one at a time, so each test reads like a trace.  The
 * harness checks on every event that no request is RUN twice, replied
 * twice or RUN after its reply, and that at most one sync is in flight.
 * H_FINISH checks that every request was replied exactly once and
 * sched_pending() is back to 0.
 *
 * test_model_random then drives thousands of random traces in every mode
 * against an independent oracle of the rules.
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/sched.h"

#define MAX_REQS 64
#define MAX_EVENTS 128

enum { F_FUA = 1, F_RMW = 2, F_STRICT = 4 };

enum ev_kind {
	EV_NONE = 0,
	EV_RUN = SCHED_RUN,
	EV_REPLY = SCHED_REPLY,
	EV_SYNC
};

struct ev {
	enum ev_kind kind;
	struct sched_req *r;
	int status;
	bool dsync;
};

struct h {
	struct sched s;
	struct sched_req req[MAX_REQS];
	const char *name[MAX_REQS];
	int runs[MAX_REQS], replies[MAX_REQS];
	int nreq;
	struct ev ev[MAX_EVENTS];
	int ev_head, ev_tail;
	bool sync_outstanding;
	int syncs_seen;
};

static void check(bool ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void check(bool ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	va_start(ap, fmt);
	vprint_error(fmt, ap);
	va_end(ap);
	print_error("\n");
	_fail(file, line);
}

static int idx(struct h *h, const struct sched_req *r)
{
	return (int)(r - h->req);
}

static const char *ev_str(struct h *h, const struct ev *e, char *buf, size_t n)
{
	switch (e->kind) {
	case EV_NONE:
		snprintf(buf, n, "(no event)");
		break;
	case EV_RUN:
		snprintf(buf, n, "RUN %s%s", h->name[idx(h, e->r)],
			 e->dsync ? " dsync" : "");
		break;
	case EV_REPLY:
		snprintf(buf, n, "REPLY %s %d", h->name[idx(h, e->r)],
			 e->status);
		break;
	case EV_SYNC:
		snprintf(buf, n, "SYNC");
		break;
	}
	return buf;
}

static void h_init(struct h *h, enum order_mode order, enum flush_mode flush,
		   uint32_t align)
{
	memset(h, 0, sizeof(*h));
	sched_init(&h->s, order, flush, align);
}

static struct sched_req *h_new(struct h *h, const char *name, uint8_t kind,
			       uint64_t off, uint64_t len, unsigned flags)
{
	struct sched_req *r;

	assert_true(h->nreq < MAX_REQS);
	r = &h->req[h->nreq];
	h->name[h->nreq++] = name;
	r->kind = kind;
	r->off = off;
	r->len = len;
	r->fua = flags & F_FUA;
	r->rmw = flags & F_RMW;
	r->strict = flags & F_STRICT;
	return r;
}

#define W(h, name, off, len) h_new(h, name, SCHED_WRITE, off, len, 0)
#define WF(h, name, off, len, fl) h_new(h, name, SCHED_WRITE, off, len, fl)
#define R(h, name, off, len) h_new(h, name, SCHED_READ, off, len, 0)
#define FL(h, name) h_new(h, name, SCHED_FLUSH, 0, 0, 0)
#define SNAP(h, name, fl) h_new(h, name, SCHED_SNAP, 0, 0, fl)

static void h_push(struct h *h, struct ev e, const char *file, int line)
{
	check(h->ev_tail < MAX_EVENTS, file, line, "event queue overflow");
	h->ev[h->ev_tail++] = e;
}

/* Move the events of one call into the queue, checking invariants. */
static void h_drain(struct h *h, struct sched_out *o, const char *file,
		    int line)
{
	struct sched_req *r;
	struct ev e;
	int i;

	while ((r = sched_out_pop(o))) {
		i = idx(h, r);
		check(i >= 0 && i < h->nreq, file, line, "foreign request");
		e = (struct ev){.kind = (enum ev_kind)r->action, .r = r};
		if (r->action == SCHED_RUN) {
			check(h->runs[i] == 0 && h->replies[i] == 0, file, line,
			      "%s RUN twice or after its REPLY", h->name[i]);
			check(r->kind == SCHED_READ || r->kind == SCHED_WRITE ||
				      r->kind == SCHED_SNAP,
			      file, line, "%s: RUN of a FLUSH/NOP", h->name[i]);
			h->runs[i]++;
			e.dsync = r->dsync;
		} else {
			check(r->action == SCHED_REPLY, file, line,
			      "%s: bad action %d", h->name[i], r->action);
			check(h->replies[i] == 0, file, line, "%s REPLY twice",
			      h->name[i]);
			h->replies[i]++;
			e.status = r->status;
		}
		h_push(h, e, file, line);
	}
	if (o->sync) {
		check(!h->sync_outstanding, file, line,
		      "second sync while one is in flight (R1)");
		h->sync_outstanding = true;
		h->syncs_seen++;
		h_push(h, (struct ev){.kind = EV_SYNC}, file, line);
	}
}

static void h_submit(struct h *h, struct sched_req *r, const char *file,
		     int line)
{
	struct sched_out o;

	sched_out_init(&o);
	sched_submit(&h->s, r, &o);
	h_drain(h, &o, file, line);
}

static void h_complete(struct h *h, struct sched_req *r, int res,
		       const char *file, int line)
{
	struct sched_out o;

	check(h->runs[idx(h, r)] == 1, file, line,
	      "test bug: completing %s, which was never RUN",
	      h->name[idx(h, r)]);
	sched_out_init(&o);
	sched_complete(&h->s, r, res, &o);
	h_drain(h, &o, file, line);
}

static void h_fail(struct h *h, struct sched_req *r, int err, const char *file,
		   int line)
{
	struct sched_out o;

	check(h->runs[idx(h, r)] == 1, file, line,
	      "test bug: failing %s, which was never RUN", h->name[idx(h, r)]);
	sched_out_init(&o);
	sched_fail(&h->s, r, err, &o);
	h_drain(h, &o, file, line);
}

static void h_sync_done(struct h *h, int res, const char *file, int line)
{
	struct sched_out o;

	check(h->sync_outstanding, file, line, "test bug: no sync to finish");
	h->sync_outstanding = false;
	sched_out_init(&o);
	sched_sync_done(&h->s, res, &o);
	h_drain(h, &o, file, line);
}

static void h_expect(struct h *h, enum ev_kind kind, struct sched_req *r,
		     int status, bool dsync, const char *file, int line)
{
	struct ev want = {
		.kind = kind, .r = r, .status = status, .dsync = dsync};
	struct ev got = {.kind = EV_NONE};
	char a[64], b[64];
	bool ok;

	if (h->ev_head < h->ev_tail)
		got = h->ev[h->ev_head++];
	ok = got.kind == kind && got.r == r;
	if (ok && kind == EV_RUN)
		ok = got.dsync == dsync;
	if (ok && kind == EV_REPLY)
		ok = got.status == status;
	check(ok, file, line, "expected %s, got %s",
	      ev_str(h, &want, a, sizeof(a)), ev_str(h, &got, b, sizeof(b)));
}

static void h_expect_none(struct h *h, const char *file, int line)
{
	struct ev want = {.kind = EV_NONE};
	char a[64], b[64];

	check(h->ev_head == h->ev_tail, file, line, "expected %s, got %s",
	      ev_str(h, &want, a, sizeof(a)),
	      ev_str(h, &h->ev[h->ev_head], b, sizeof(b)));
}

/* Everything was replied exactly once and the scheduler is empty. */
static void h_finish(struct h *h, const char *file, int line)
{
	int i;

	h_expect_none(h, file, line);
	for (i = 0; i < h->nreq; i++)
		check(h->replies[i] == 1, file, line, "%s never replied",
		      h->name[i]);
	check(!h->sync_outstanding, file, line, "sync still in flight");
	check(sched_pending(&h->s) == 0, file, line, "pending %u, want 0",
	      sched_pending(&h->s));
	check(list_empty(&h->s.active) && list_empty(&h->s.sync_inflight) &&
		      list_empty(&h->s.sync_done),
	      file, line, "scheduler not empty");
	check(h->s.stats.syncs == (uint64_t)h->syncs_seen, file, line,
	      "stats.syncs %llu, saw %d", (unsigned long long)h->s.stats.syncs,
	      h->syncs_seen);
}

#define SUBMIT(h, r) h_submit(h, r, __FILE__, __LINE__)
#define COMPLETE(h, r, res) h_complete(h, r, res, __FILE__, __LINE__)
#define FAIL(h, r, err) h_fail(h, r, err, __FILE__, __LINE__)
#define SYNC_DONE(h, res) h_sync_done(h, res, __FILE__, __LINE__)
#define EXPECT_RUN(h, r) h_expect(h, EV_RUN, r, 0, false, __FILE__, __LINE__)
#define EXPECT_RUN_DSYNC(h, r)                                                 \
	h_expect(h, EV_RUN, r, 0, true, __FILE__, __LINE__)
#define EXPECT_REPLY(h, r, st)                                                 \
	h_expect(h, EV_REPLY, r, st, false, __FILE__, __LINE__)
#define EXPECT_SYNC(h) h_expect(h, EV_SYNC, NULL, 0, false, __FILE__, __LINE__)
#define EXPECT_NONE(h) h_expect_none(h, __FILE__, __LINE__)
#define H_FINISH(h) h_finish(h, __FILE__, __LINE__)

/* Submit r, which must RUN at once without dsync, and complete it. */
static void h_roundtrip(struct h *h, struct sched_req *r, int res,
			const char *file, int line)
{
	h_submit(h, r, file, line);
	h_expect(h, EV_RUN, r, 0, false, file, line);
	h_complete(h, r, res, file, line);
	h_expect(h, EV_REPLY, r, res, false, file, line);
}

#define ROUNDTRIP(h, r) h_roundtrip(h, r, 0, __FILE__, __LINE__)

/* ------------------------------------------------------------------ R1 */

/*
 * R1: a FLUSH covers a write replied on another connection before it
 * arrived: the sync is requested at once and the FLUSH waits for it.
 */
static void test_r1_flush_covers_write_replied_on_other_connection(void **st)
{
	struct h h;
	struct sched_req *a, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A(conn1)", 0, 4096);
	f = FL(&h, "F(conn2)");

	ROUNDTRIP(&h, a);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	EXPECT_NONE(&h); /* not replied before the sync completed */
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	H_FINISH(&h);
}

/*
 * R1: a write still in flight when the FLUSH arrives is not covered and
 * does not hold it: the sync starts at once and the FLUSH replies while
 * the write is still running.
 */
static void test_r1_inflight_write_does_not_block_flush(void **st)
{
	struct h h;
	struct sched_req *a, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A(conn1)", 0, 4096);
	f = FL(&h, "F(conn2)");

	SUBMIT(&h, a);
	EXPECT_RUN(&h, a);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	EXPECT_NONE(&h);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, a, 0);
	H_FINISH(&h);
}

/*
 * R1 group commit: F2 and F3 arrive while F1's sync runs.  They need the
 * NEXT sync (the running one may predate writes they cover), which starts
 * when the first completes: one sync for both.
 */
static void test_r1_flushes_during_sync_batch_into_next_sync(void **st)
{
	struct h h;
	struct sched_req *f1, *f2, *f3, *a;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f1 = FL(&h, "F1");
	a = W(&h, "A", 0, 512);
	f2 = FL(&h, "F2");
	f3 = FL(&h, "F3");

	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	/* A is replied after F1's sync started: F2 must cover it. */
	ROUNDTRIP(&h, a);
	SUBMIT(&h, f2);
	EXPECT_NONE(&h); /* no second sync while one runs */
	SUBMIT(&h, f3);
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f1, 0);
	EXPECT_SYNC(&h); /* exactly one more, for F2 and F3 */
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f2, 0);
	EXPECT_REPLY(&h, f3, 0);
	assert_int_equal(h.s.stats.syncs, 2);
	H_FINISH(&h);
}

/* R1: a FLUSH arriving while no sync runs starts one at once. */
static void test_r1_flush_after_sync_completed_starts_a_new_sync(void **st)
{
	struct h h;
	struct sched_req *f1, *f2, *a;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f1 = FL(&h, "F1");
	a = W(&h, "A", 0, 512);
	f2 = FL(&h, "F2");

	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f1, 0);
	EXPECT_NONE(&h); /* nothing waiting: no idle sync */
	ROUNDTRIP(&h, a); /* F2 must cover A */
	SUBMIT(&h, f2);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f2, 0);
	H_FINISH(&h);
}

/* ------------------------------------------------------------------ R2 */

/* R2: a FUA write runs with dsync; a plain write without. */
static void test_r2_fua_write_runs_dsync(void **st)
{
	struct h h;
	struct sched_req *a, *b;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	b = W(&h, "B", 8192, 4096);

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	SUBMIT(&h, b);
	EXPECT_RUN(&h, b);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, a, 0);
	COMPLETE(&h, b, 0);
	EXPECT_REPLY(&h, b, 0);
	assert_int_equal(h.s.stats.dsync_writes, 1);
	assert_int_equal(h.s.stats.syncs, 0);
	H_FINISH(&h);
}

/* R2: FUA on READ and FLUSH is ignored; FUA TRIM is a dsync write. */
static void test_r2_fua_ignored_on_read_and_flush(void **st)
{
	struct h h;
	struct sched_req *rd, *f, *trim;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	rd = h_new(&h, "R fua", SCHED_READ, 0, 512, F_FUA);
	f = h_new(&h, "F fua", SCHED_FLUSH, 0, 0, F_FUA);
	trim = WF(&h, "TRIM fua", 4096, 4096, F_FUA);

	ROUNDTRIP(&h, rd); /* EXPECT_RUN inside checks dsync false */
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	SUBMIT(&h, trim);
	EXPECT_RUN_DSYNC(&h, trim);
	COMPLETE(&h, trim, 0);
	EXPECT_REPLY(&h, trim, 0);
	H_FINISH(&h);
}

/* R2: unsafe mode ignores FUA. */
static void test_r2_unsafe_mode_runs_fua_without_dsync(void **st)
{
	struct h h;
	struct sched_req *a;

	h_init(&h, ORDER_OVERLAP, FLUSH_UNSAFE, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);

	SUBMIT(&h, a);
	EXPECT_RUN(&h, a); /* dsync false */
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, a, 0);
	assert_int_equal(h.s.stats.dsync_writes, 0);
	H_FINISH(&h);
}

/* R2: a FUA write's own error is its reply. */
static void test_r2_fua_write_error_is_replied(void **st)
{
	struct h h;
	struct sched_req *a;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	COMPLETE(&h, a, -ENOSPC);
	EXPECT_REPLY(&h, a, -ENOSPC);
	/*
	 * R5: any error of a dsync write latches, since it may be the
	 * writeback error of other data (errseq reports it only once).
	 */
	assert_true(sched_failed(&h.s));
	H_FINISH(&h);
}

/* ------------------------------------------------------------------ R8 */

/*
 * R8: a capture point waits for every earlier write, whatever its range
 * (the drain), holds every later write until it completes, and never
 * holds a read or a FLUSH.
 */
static void test_r8_snap_drains_writes_and_holds_later_ones(void **st)
{
	struct h h;
	struct sched_req *a, *b, *p, *c, *rd, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A", 0, 4096);
	b = W(&h, "B", 1 << 20, 4096);
	p = SNAP(&h, "P", 0);
	c = W(&h, "C", 8 << 20, 4096);
	rd = R(&h, "R", 0, 4096);
	f = FL(&h, "F");

	SUBMIT(&h, a);
	EXPECT_RUN(&h, a);
	SUBMIT(&h, b);
	EXPECT_RUN(&h, b);
	SUBMIT(&h, p);
	EXPECT_NONE(&h); /* A and B are in flight */
	SUBMIT(&h, c);
	EXPECT_NONE(&h); /* received after P: held */
	SUBMIT(&h, rd);
	EXPECT_NONE(&h); /* overlaps A (R3), not P */
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, a, 0);
	EXPECT_RUN(&h, rd);
	COMPLETE(&h, rd, 0);
	EXPECT_REPLY(&h, rd, 0);
	SUBMIT(&h, f); /* a FLUSH goes on beside a capture */
	EXPECT_SYNC(&h);
	COMPLETE(&h, b, 0);
	EXPECT_REPLY(&h, b, 0);
	EXPECT_RUN(&h, p); /* drained: the storage holds A and B */
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	COMPLETE(&h, p, 0);
	EXPECT_REPLY(&h, p, 0);
	EXPECT_RUN(&h, c); /* released by the capture's end */
	COMPLETE(&h, c, 0);
	EXPECT_REPLY(&h, c, 0);
	assert_int_equal(h.s.stats.dsync_writes, 0);
	H_FINISH(&h);
}

/* R8: two capture points are serialised; a read never waits for one. */
static void test_r8_snaps_in_order_reads_never_wait(void **st)
{
	struct h h;
	struct sched_req *p1, *p2, *rd;

	h_init(&h, ORDER_RELAXED, FLUSH_SYNC, 1);
	p1 = SNAP(&h, "P1", 0);
	p2 = SNAP(&h, "P2", 0);
	rd = R(&h, "R", 0, 4096);

	SUBMIT(&h, p1);
	EXPECT_RUN(&h, p1);
	SUBMIT(&h, p2);
	EXPECT_NONE(&h);
	ROUNDTRIP(&h, rd);
	COMPLETE(&h, p1, 0);
	EXPECT_REPLY(&h, p1, 0);
	EXPECT_RUN(&h, p2);
	COMPLETE(&h, p2, 0);
	EXPECT_REPLY(&h, p2, 0);
	H_FINISH(&h);
}

/*
 * R8 with R5: a capture point with a sync (snapshot --sync) is a sync op:
 * it RUNs dsync, even in unsafe mode; its error latches; its reply waits
 * for an overlapping batch sync; a latched export refuses the next one.
 */
static void test_r8_sync_snap_is_an_r5_op(void **st)
{
	struct h h;
	struct sched_req *a, *f, *p, *p2, *p3;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A", 0, 4096);
	f = FL(&h, "F");
	p = SNAP(&h, "P sync", F_FUA);
	p2 = SNAP(&h, "P2 sync", F_FUA);
	p3 = SNAP(&h, "P3", 0);

	ROUNDTRIP(&h, a);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SUBMIT(&h, p);
	EXPECT_RUN_DSYNC(&h, p);
	COMPLETE(&h, p, -EIO); /* its sync failed */
	EXPECT_NONE(&h); /* R5: the batch sync overlapped it */
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, p, -EIO);
	EXPECT_REPLY(&h, f, -EIO); /* latched: it may have lost the error */
	assert_true(sched_failed(&h.s));
	SUBMIT(&h, p2);
	EXPECT_REPLY(&h, p2, -EIO);
	SUBMIT(&h, p3); /* no sync asked: a capture still works */
	EXPECT_RUN(&h, p3);
	COMPLETE(&h, p3, 0);
	EXPECT_REPLY(&h, p3, 0);
	H_FINISH(&h);

	h_init(&h, ORDER_OVERLAP, FLUSH_UNSAFE, 1);
	p = SNAP(&h, "P sync", F_FUA);
	SUBMIT(&h, p);
	EXPECT_RUN_DSYNC(&h, p);
	COMPLETE(&h, p, 0);
	EXPECT_REPLY(&h, p, 0);
	H_FINISH(&h);
}

/* ------------------------------------------------------------------ R3 */

/*
 * R3: three pairwise-overlapping writes with different ranges run strictly
 * in arrival order; a disjoint write runs at once, in parallel.
 */
static void test_r3_overlapping_writes_run_in_arrival_order(void **st)
{
	struct h h;
	struct sched_req *w1, *w2, *w3, *w4;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	w1 = W(&h, "W1", 0, 8192);
	w2 = W(&h, "W2", 4096, 8192);
	w3 = W(&h, "W3", 6144, 4096);
	w4 = W(&h, "W4 disjoint", 65536, 4096);

	SUBMIT(&h, w1);
	EXPECT_RUN(&h, w1);
	SUBMIT(&h, w2);
	EXPECT_NONE(&h);
	SUBMIT(&h, w3);
	EXPECT_NONE(&h);
	SUBMIT(&h, w4);
	EXPECT_RUN(&h, w4); /* in parallel with W1 */
	assert_int_equal(h.s.stats.waited, 2);
	COMPLETE(&h, w1, 0);
	EXPECT_REPLY(&h, w1, 0);
	EXPECT_RUN(&h, w2);
	EXPECT_NONE(&h); /* W3 still waits for W2 */
	COMPLETE(&h, w2, 0);
	EXPECT_REPLY(&h, w2, 0);
	EXPECT_RUN(&h, w3);
	COMPLETE(&h, w3, 0);
	EXPECT_REPLY(&h, w3, 0);
	COMPLETE(&h, w4, 0);
	EXPECT_REPLY(&h, w4, 0);
	H_FINISH(&h);
}

/*
 * R3 is transitive through a chain: W3 overlaps only W2, W2 overlaps W1;
 * W3 waits for W2, which waits for W1, even though W3 and W1 are disjoint.
 */
static void test_r3_chain_of_overlaps_keeps_arrival_order(void **st)
{
	struct h h;
	struct sched_req *w1, *w2, *w3;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	w1 = W(&h, "W1", 0, 4096);
	w2 = W(&h, "W2", 2048, 4096);
	w3 = W(&h, "W3", 5000, 4096);

	SUBMIT(&h, w1);
	EXPECT_RUN(&h, w1);
	SUBMIT(&h, w2);
	SUBMIT(&h, w3);
	EXPECT_NONE(&h);
	COMPLETE(&h, w1, 0);
	EXPECT_REPLY(&h, w1, 0);
	EXPECT_RUN(&h, w2);
	EXPECT_NONE(&h);
	COMPLETE(&h, w2, 0);
	EXPECT_REPLY(&h, w2, 0);
	EXPECT_RUN(&h, w3);
	COMPLETE(&h, w3, 0);
	EXPECT_REPLY(&h, w3, 0);
	H_FINISH(&h);
}

/* R3: a request waits for every earlier conflict, not just one. */
static void test_r3_waits_for_all_earlier_conflicts(void **st)
{
	struct h h;
	struct sched_req *a, *b, *c;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A", 0, 4096);
	b = W(&h, "B", 8192, 4096);
	c = R(&h, "C spans A and B", 0, 16384);

	SUBMIT(&h, a);
	EXPECT_RUN(&h, a);
	SUBMIT(&h, b);
	EXPECT_RUN(&h, b);
	SUBMIT(&h, c);
	EXPECT_NONE(&h);
	COMPLETE(&h, b, 0);
	EXPECT_REPLY(&h, b, 0);
	EXPECT_NONE(&h); /* A still running */
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, a, 0);
	EXPECT_RUN(&h, c);
	COMPLETE(&h, c, 0);
	EXPECT_REPLY(&h, c, 0);
	H_FINISH(&h);
}

/* R3: overlapping reads do not conflict. */
static void test_r3_overlapping_reads_run_in_parallel(void **st)
{
	struct h h;
	struct sched_req *r1, *r2;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	r1 = R(&h, "R1", 0, 8192);
	r2 = R(&h, "R2", 4096, 8192);

	SUBMIT(&h, r1);
	EXPECT_RUN(&h, r1);
	SUBMIT(&h, r2);
	EXPECT_RUN(&h, r2);
	COMPLETE(&h, r2, 0);
	EXPECT_REPLY(&h, r2, 0);
	COMPLETE(&h, r1, 0);
	EXPECT_REPLY(&h, r1, 0);
	assert_int_equal(h.s.stats.waited, 0);
	H_FINISH(&h);
}

/* R3: a TRIM is a SCHED_WRITE: ordered against reads in both directions. */
static void test_r3_trim_and_read_ordered_both_ways(void **st)
{
	struct h h;
	struct sched_req *trim1, *rd1, *rd2, *trim2;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	trim1 = W(&h, "TRIM1", 0, 65536);
	rd1 = R(&h, "R1 after TRIM1", 4096, 512);
	rd2 = R(&h, "R2", 131072, 4096);
	trim2 = W(&h, "TRIM2 after R2", 128000, 8192);

	/* TRIM then READ: the read waits. */
	SUBMIT(&h, trim1);
	EXPECT_RUN(&h, trim1);
	SUBMIT(&h, rd1);
	EXPECT_NONE(&h);
	COMPLETE(&h, trim1, 0);
	EXPECT_REPLY(&h, trim1, 0);
	EXPECT_RUN(&h, rd1);
	COMPLETE(&h, rd1, 0);
	EXPECT_REPLY(&h, rd1, 0);

	/* READ then TRIM: the trim waits. */
	SUBMIT(&h, rd2);
	EXPECT_RUN(&h, rd2);
	SUBMIT(&h, trim2);
	EXPECT_NONE(&h);
	COMPLETE(&h, rd2, 0);
	EXPECT_REPLY(&h, rd2, 0);
	EXPECT_RUN(&h, trim2);
	COMPLETE(&h, trim2, 0);
	EXPECT_REPLY(&h, trim2, 0);
	H_FINISH(&h);
}

/* R3: WRITE_ZEROES (a SCHED_WRITE) against a read, both ways. */
static void test_r3_write_zeroes_and_read_ordered(void **st)
{
	struct h h;
	struct sched_req *rd, *wz, *rd2;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	rd = R(&h, "R", 0, 4096);
	wz = W(&h, "WRITE_ZEROES", 2048, 1 << 20);
	rd2 = R(&h, "R2", 1 << 19, 4096);

	SUBMIT(&h, rd);
	EXPECT_RUN(&h, rd);
	SUBMIT(&h, wz);
	EXPECT_NONE(&h);
	SUBMIT(&h, rd2);
	EXPECT_NONE(&h); /* behind the zeroing, not beside it */
	COMPLETE(&h, rd, 0);
	EXPECT_REPLY(&h, rd, 0);
	EXPECT_RUN(&h, wz);
	COMPLETE(&h, wz, 0);
	EXPECT_REPLY(&h, wz, 0);
	EXPECT_RUN(&h, rd2);
	COMPLETE(&h, rd2, 0);
	EXPECT_REPLY(&h, rd2, 0);
	H_FINISH(&h);
}

/* R3 off: relaxed mode lets overlapping writes and reads run in parallel. */
static void test_r3_relaxed_runs_overlapping_writes_in_parallel(void **st)
{
	struct h h;
	struct sched_req *w1, *w2, *w3, *rd;

	h_init(&h, ORDER_RELAXED, FLUSH_SYNC, 1);
	w1 = W(&h, "W1", 0, 8192);
	w2 = W(&h, "W2", 4096, 8192);
	w3 = W(&h, "W3", 0, 8192);
	rd = R(&h, "R", 0, 16384);

	SUBMIT(&h, w1);
	EXPECT_RUN(&h, w1);
	SUBMIT(&h, w2);
	EXPECT_RUN(&h, w2);
	SUBMIT(&h, w3);
	EXPECT_RUN(&h, w3);
	SUBMIT(&h, rd);
	EXPECT_RUN(&h, rd);
	COMPLETE(&h, w3, 0);
	EXPECT_REPLY(&h, w3, 0);
	COMPLETE(&h, rd, 0);
	EXPECT_REPLY(&h, rd, 0);
	COMPLETE(&h, w1, 0);
	EXPECT_REPLY(&h, w1, 0);
	COMPLETE(&h, w2, 0);
	EXPECT_REPLY(&h, w2, 0);
	assert_int_equal(h.s.stats.waited, 0);
	H_FINISH(&h);
}

/* R3: a zero-length request overlaps nothing, even rmw at an odd offset. */
static void test_r3_zero_length_never_waits(void **st)
{
	struct h h;
	struct sched_req *w, *z1, *z2, *z3;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 4096);
	w = W(&h, "W", 0, 8192);
	z1 = W(&h, "W len0", 100, 0);
	z2 = R(&h, "R len0", 100, 0);
	z3 = WF(&h, "W rmw len0", 100, 0, F_RMW);

	SUBMIT(&h, w);
	EXPECT_RUN(&h, w);
	ROUNDTRIP(&h, z1);
	ROUNDTRIP(&h, z2);
	ROUNDTRIP(&h, z3);
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	H_FINISH(&h);
}

/*
 * R3/R6: the conflict relation, table-driven.  Each row is tried in both
 * arrival orders: the second request must wait iff the row says conflict
 * (the relation is symmetric).
 */
struct spec {
	uint8_t kind;
	uint64_t off, len;
	unsigned flags;
};

static const struct conflict_row {
	const char *what;
	enum order_mode order;
	struct spec a, b;
	bool conflict;
} conflict_rows[] = {
/* clang-format off */
#define OV ORDER_OVERLAP
#define RX ORDER_RELAXED
#define WR(off, len, fl) { SCHED_WRITE, off, len, fl }
#define RD(off, len, fl) { SCHED_READ, off, len, fl }
	{ "R3 W/W overlap", OV, WR(0, 4096, 0), WR(2048, 4096, 0), true },
	{ "R3 W/W adjacent", OV, WR(0, 4096, 0), WR(4096, 4096, 0), false },
	{ "R3 W/R overlap", OV, WR(0, 4096, 0), RD(4095, 1, 0), true },
	{ "R3 R/R overlap", OV, RD(0, 4096, 0), RD(0, 4096, 0), false },
	{ "R3 len0", OV, WR(0, 4096, 0), WR(100, 0, 0), false },
	{ "R3 rmw block vs W", OV, WR(100, 100, F_RMW),
	  WR(1024, 1024, 0), true },
	{ "R3 rmw block vs R", OV, WR(100, 100, F_RMW),
	  RD(1024, 1024, 0), true },
	{ "R3 rmw next block", OV, WR(100, 100, F_RMW),
	  WR(4096, 4096, 0), false },
	{ "relaxed W/W", RX, WR(0, 4096, 0), WR(0, 4096, 0), false },
	{ "relaxed W/R", RX, WR(0, 4096, 0), RD(0, 4096, 0), false },
	{ "R6 rmw vs W same block", RX, WR(100, 100, F_RMW),
	  WR(1024, 1024, 0), true },
	{ "R6 rmw vs rmw", RX, WR(100, 100, F_RMW),
	  WR(3000, 2000, F_RMW), true },
	{ "R6 rmw vs W next block", RX, WR(100, 100, F_RMW),
	  WR(4096, 512, 0), false },
	{ "R6 rmw vs R same bytes", RX, WR(100, 100, F_RMW),
	  RD(100, 100, 0), false },
	{ "R6 rmw len0", RX, WR(100, 0, F_RMW), WR(0, 4096, 0), false },
	{ "R6 strict vs W", RX, RD(0, 4096, F_STRICT), WR(512, 512, 0), true },
	{ "R6 strict vs rmw block", RX, RD(1024, 1024, F_STRICT),
	  WR(100, 100, F_RMW), true },
	{ "R6 strict vs R", RX, RD(0, 4096, F_STRICT), RD(0, 4096, 0), false },
	{ "R6 strict vs W disjoint", RX, RD(0, 4096, F_STRICT),
	  WR(4096, 512, 0), false },
	/* The rmw's block ends at 2^64: rounding up must not wrap. */
	{ "R6 rmw at end of u64", RX, WR(UINT64_MAX - 100, 50, F_RMW),
	  WR(UINT64_MAX - 40, 10, 0), true },
/* clang-format on */
#undef OV
#undef RX
#undef WR
#undef RD
};

static void test_r3_r6_conflict_table(void **st)
{
	const struct conflict_row *t;
	const struct spec *first, *second;
	struct sched_req *a, *b;
	struct h h;
	size_t i;
	int swap;

	for (i = 0; i < sizeof(conflict_rows) / sizeof(conflict_rows[0]); i++) {
		t = &conflict_rows[i];
		for (swap = 0; swap < 2; swap++) {
			first = swap ? &t->b : &t->a;
			second = swap ? &t->a : &t->b;
			h_init(&h, t->order, FLUSH_SYNC, 4096);
			a = h_new(&h, t->what, first->kind, first->off,
				  first->len, first->flags);
			b = h_new(&h, "second", second->kind, second->off,
				  second->len, second->flags);
			SUBMIT(&h, a);
			EXPECT_RUN(&h, a);
			SUBMIT(&h, b);
			if (!t->conflict)
				EXPECT_RUN(&h, b);
			check(h.ev_head == h.ev_tail, __FILE__, __LINE__,
			      "row \"%s\" (swap %d): want %s", t->what, swap,
			      t->conflict ? "conflict" : "no conflict");
			COMPLETE(&h, a, 0);
			EXPECT_REPLY(&h, a, 0);
			if (t->conflict)
				EXPECT_RUN(&h, b);
			COMPLETE(&h, b, 0);
			EXPECT_REPLY(&h, b, 0);
			H_FINISH(&h);
		}
	}
}

/* ------------------------------------------------------------------ R4 */

/*
 * R4: a barrier FLUSH waits for every earlier request, even a disjoint
 * read, and every later request, even a disjoint one, waits until the
 * FLUSH is replied.
 */
static void test_r4_barrier_flush_orders_everything(void **st)
{
	struct h h;
	struct sched_req *r1, *w1, *f, *w2, *r2;

	h_init(&h, ORDER_OVERLAP, FLUSH_BARRIER, 1);
	r1 = R(&h, "R1 before", 0, 512);
	w1 = W(&h, "W1 before", 1 << 20, 4096);
	f = FL(&h, "F");
	w2 = W(&h, "W2 after", 8 << 20, 4096);
	r2 = R(&h, "R2 after", 16 << 20, 512);

	SUBMIT(&h, r1);
	EXPECT_RUN(&h, r1);
	SUBMIT(&h, w1);
	EXPECT_RUN(&h, w1);
	SUBMIT(&h, f);
	EXPECT_NONE(&h); /* no sync yet: earlier requests still run */
	SUBMIT(&h, w2);
	SUBMIT(&h, r2);
	EXPECT_NONE(&h);
	COMPLETE(&h, r1, 0);
	EXPECT_REPLY(&h, r1, 0);
	EXPECT_NONE(&h); /* W1 still runs */
	COMPLETE(&h, w1, 0);
	EXPECT_REPLY(&h, w1, 0);
	EXPECT_SYNC(&h);
	EXPECT_NONE(&h); /* W2, R2 held while the sync runs */
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	EXPECT_RUN(&h, w2);
	EXPECT_RUN(&h, r2);
	COMPLETE(&h, w2, 0);
	EXPECT_REPLY(&h, w2, 0);
	COMPLETE(&h, r2, 0);
	EXPECT_REPLY(&h, r2, 0);
	H_FINISH(&h);
}

/* R4: barrier flushes do not batch: each is its own epoch, its own sync. */
static void test_r4_barrier_flushes_sync_one_at_a_time(void **st)
{
	struct h h;
	struct sched_req *f1, *f2, *w;

	h_init(&h, ORDER_OVERLAP, FLUSH_BARRIER, 1);
	f1 = FL(&h, "F1");
	w = W(&h, "W", 0, 512);
	f2 = FL(&h, "F2");

	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SUBMIT(&h, w);
	SUBMIT(&h, f2);
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f1, 0);
	EXPECT_RUN(&h, w);
	EXPECT_NONE(&h); /* F2 waits for W */
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f2, 0);
	H_FINISH(&h);
}

/* R4 off: in sync mode a FLUSH holds nothing and waits for nothing. */
static void test_r4_sync_mode_flush_holds_nothing(void **st)
{
	struct h h;
	struct sched_req *w1, *f, *w2, *rd;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	w1 = W(&h, "W1", 0, 4096);
	f = FL(&h, "F");
	w2 = W(&h, "W2", 8192, 4096);
	rd = R(&h, "R", 65536, 4096);

	SUBMIT(&h, w1);
	EXPECT_RUN(&h, w1);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SUBMIT(&h, w2);
	EXPECT_RUN(&h, w2);
	SUBMIT(&h, rd);
	EXPECT_RUN(&h, rd);
	COMPLETE(&h, w2, 0);
	EXPECT_REPLY(&h, w2, 0);
	COMPLETE(&h, rd, 0);
	EXPECT_REPLY(&h, rd, 0);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	COMPLETE(&h, w1, 0);
	EXPECT_REPLY(&h, w1, 0);
	assert_int_equal(h.s.stats.waited, 0);
	H_FINISH(&h);
}

/* ------------------------------------------------------------------ R5 */

/*
 * R5: a failed sync fails its FLUSH and latches: later writes and flushes
 * are refused with -EIO without running; reads still run.
 */
static void test_r5_sync_failure_latches_export(void **st)
{
	struct h h;
	struct sched_req *f, *w, *wf, *f2, *rd, *nop;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f = FL(&h, "F");
	w = W(&h, "W after", 0, 4096);
	wf = WF(&h, "W fua after", 8192, 4096, F_FUA);
	f2 = FL(&h, "F2 after");
	rd = R(&h, "R after", 0, 4096);
	nop = h_new(&h, "NOP", SCHED_NOP, 0, 0, 0);

	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	assert_false(sched_failed(&h.s));
	SYNC_DONE(&h, -EIO);
	EXPECT_REPLY(&h, f, -EIO);
	assert_true(sched_failed(&h.s));
	assert_int_equal(h.s.stats.failed_latch, 1);

	SUBMIT(&h, w);
	EXPECT_REPLY(&h, w, -EIO);
	SUBMIT(&h, wf);
	EXPECT_REPLY(&h, wf, -EIO);
	SUBMIT(&h, f2);
	EXPECT_REPLY(&h, f2, -EIO);
	EXPECT_NONE(&h); /* and no sync */
	ROUNDTRIP(&h, rd);
	SUBMIT(&h, nop);
	EXPECT_REPLY(&h, nop, 0);
	H_FINISH(&h);
}

/* R5: any sync error latches, not just -EIO. */
static void test_r5_sync_enospc_also_latches(void **st)
{
	struct h h;
	struct sched_req *f, *w;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f = FL(&h, "F");
	w = W(&h, "W after", 0, 4096);

	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, -ENOSPC);
	EXPECT_REPLY(&h, f, -ENOSPC);
	assert_true(sched_failed(&h.s));
	SUBMIT(&h, w);
	EXPECT_REPLY(&h, w, -EIO);
	H_FINISH(&h);
}

/* R5: a FUA write that fails with -EIO latches. */
static void test_r5_fua_write_eio_latches(void **st)
{
	struct h h;
	struct sched_req *a, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	f = FL(&h, "F after");

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	COMPLETE(&h, a, -EIO);
	EXPECT_REPLY(&h, a, -EIO);
	assert_true(sched_failed(&h.s));
	SUBMIT(&h, f);
	EXPECT_REPLY(&h, f, -EIO);
	H_FINISH(&h);
}

/*
 * R5: a FUA request refused before any step that syncs (FAST_ZERO that
 * cannot be fast: ENOTSUP) is answered with its error and latches nothing:
 * a later write and flush succeed.
 */
static void test_r5_refused_fua_request_does_not_latch(void **st)
{
	struct h h;
	struct sched_req *z, *w, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	z = WF(&h, "Z fua fast-zero", 0, 4096, F_FUA);
	w = W(&h, "W", 0, 4096);
	f = FL(&h, "F");

	SUBMIT(&h, z);
	EXPECT_RUN_DSYNC(&h, z);
	FAIL(&h, z, -ENOTSUP);
	EXPECT_REPLY(&h, z, -ENOTSUP);
	assert_false(sched_failed(&h.s));
	ROUNDTRIP(&h, w);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	assert_false(sched_failed(&h.s));
	H_FINISH(&h);
}

/*
 * R5: a flush whose sync overlapped a FUA request in time waits for it;
 * when that request is refused without syncing (EINVAL), the flush
 * retires with its own success, not -EIO.
 */
static void test_r5_refused_fua_request_releases_flush(void **st)
{
	struct h h;
	struct sched_req *a, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	f = FL(&h, "F");

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h); /* A overlapped F's sync */
	FAIL(&h, a, -EINVAL);
	EXPECT_REPLY(&h, f, 0);
	EXPECT_REPLY(&h, a, -EINVAL);
	assert_false(sched_failed(&h.s));
	H_FINISH(&h);
}

/* R5: plain writes running when the latch is set reply their own result. */
static void test_r5_running_plain_write_keeps_its_result(void **st)
{
	struct h h;
	struct sched_req *w, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	w = W(&h, "W", 0, 4096);
	f = FL(&h, "F");

	SUBMIT(&h, w);
	EXPECT_RUN(&h, w);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, -EIO);
	EXPECT_REPLY(&h, f, -EIO);
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	H_FINISH(&h);
}

/*
 * R5 errseq: F's sync succeeds while an earlier-issued FUA write is in
 * flight.  Linux may have reported a writeback error to that write only,
 * so F is not replied until the write completes; the write's -EIO then
 * fails F too.
 */
static void test_r5_errseq_flush_waits_for_concurrent_fua_write(void **st)
{
	struct h h;
	struct sched_req *a, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	f = FL(&h, "F");

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h); /* A overlapped F's sync */
	COMPLETE(&h, a, -EIO);
	EXPECT_REPLY(&h, f, -EIO); /* the sync's 0 was a lie */
	EXPECT_REPLY(&h, a, -EIO);
	assert_true(sched_failed(&h.s));
	H_FINISH(&h);
}

/* R5: the same, with the FUA write succeeding: both reply 0. */
static void test_r5_flush_waits_for_concurrent_fua_write_ok(void **st)
{
	struct h h;
	struct sched_req *a, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	f = FL(&h, "F");

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, f, 0); /* completion order: F's sync finished first */
	EXPECT_REPLY(&h, a, 0);
	H_FINISH(&h);
}

/*
 * R5: a FUA write issued after F's sync completed did not overlap it and
 * does not hold F.  (F is held here by an earlier FUA write A; B starts
 * after F's sync ended and is still running when F is replied.  A itself
 * completed while B ran, so A waits for B.)
 */
static void test_r5_later_fua_write_does_not_hold_flush(void **st)
{
	struct h h;
	struct sched_req *a, *f, *b;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	f = FL(&h, "F");
	b = WF(&h, "B fua later", 8192, 4096, F_FUA);

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h); /* held by A */
	SUBMIT(&h, b);
	EXPECT_RUN_DSYNC(&h, b);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, f, 0); /* B does not hold F */
	EXPECT_NONE(&h); /* A overlapped B: A waits */
	COMPLETE(&h, b, 0);
	EXPECT_REPLY(&h, a, 0);
	EXPECT_REPLY(&h, b, 0);
	H_FINISH(&h);
}

/*
 * R5: a FUA write completing OK while a sync runs waits for that sync; the
 * sync's failure fails the write too (its 0 may be a stolen error).
 */
static void test_r5_fua_write_waits_for_concurrent_sync(void **st)
{
	struct h h;
	struct sched_req *f, *a;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f = FL(&h, "F");
	a = WF(&h, "A fua", 0, 4096, F_FUA);

	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	COMPLETE(&h, a, 0);
	EXPECT_NONE(&h); /* held by the running sync */
	SYNC_DONE(&h, -EIO);
	EXPECT_REPLY(&h, a, -EIO);
	EXPECT_REPLY(&h, f, -EIO);
	H_FINISH(&h);
}

/*
 * R5: two completed batch syncs wait for retirement at once (both overlap
 * a slow FUA write), and retire in completion order.
 */
static void test_r5_two_batches_retire_in_completion_order(void **st)
{
	struct h h;
	struct sched_req *f1, *a, *f2, *f3, *b, *c;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f1 = FL(&h, "F1");
	a = WF(&h, "A fua slow", 0, 4096, F_FUA);
	b = W(&h, "B", 8192, 512);
	f2 = FL(&h, "F2");
	c = W(&h, "C", 8192, 512);
	f3 = FL(&h, "F3");

	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	ROUNDTRIP(&h, b); /* completed after F1's sync began: F2 can't join */
	SUBMIT(&h, f2);
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_SYNC(&h); /* F2's sync starts; F1 still held by A */
	EXPECT_NONE(&h);
	ROUNDTRIP(&h, c);
	SUBMIT(&h, f3);
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_SYNC(&h); /* F3's; F1 and F2 both awaiting retirement */
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, f1, 0);
	EXPECT_REPLY(&h, f2, 0);
	EXPECT_REPLY(&h, f3, 0);
	EXPECT_REPLY(&h, a, 0);
	H_FINISH(&h);
}

/*
 * R5: no durability is claimed after the latch: a FLUSH already waiting
 * for the next sync when the running one fails gets -EIO even though its
 * own sync returns 0.
 */
static void test_r5_no_durability_claimed_after_latch(void **st)
{
	struct h h;
	struct sched_req *f1, *f2, *a, *b;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f1 = FL(&h, "F1");
	f2 = FL(&h, "F2");
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	b = W(&h, "B", 8192, 512);

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	ROUNDTRIP(&h, b); /* F2 must wait for the next sync (R7: no join) */
	SUBMIT(&h, f2);
	EXPECT_NONE(&h);
	SYNC_DONE(&h, -EIO);
	EXPECT_SYNC(&h); /* F2's sync: F1 is held by A */
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, f1, -EIO);
	EXPECT_REPLY(&h, f2, -EIO);
	EXPECT_REPLY(&h, a, -EIO);
	H_FINISH(&h);
}

/* ------------------------------------------------------------------ R7 */

/* R7 join: no write completed since F1's sync was issued, so F2 rides on
 * it: one sync for both. */
static void test_r7_flush_joins_running_sync(void **st)
{
	struct h h;
	struct sched_req *a, *f1, *f2;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A", 0, 4096);
	f1 = FL(&h, "F1");
	f2 = FL(&h, "F2");

	ROUNDTRIP(&h, a);
	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SUBMIT(&h, f2);
	EXPECT_NONE(&h); /* joined: no reply before the sync completes */
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f1, 0);
	EXPECT_REPLY(&h, f2, 0);
	EXPECT_NONE(&h); /* and no second sync */
	assert_int_equal(h.s.stats.flush_joined, 1);
	H_FINISH(&h);
}

/* R7 join: a joined FLUSH gets its sync's error, and the latch. */
static void test_r7_joined_flush_gets_sync_error(void **st)
{
	struct h h;
	struct sched_req *a, *f1, *f2;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A", 0, 4096);
	f1 = FL(&h, "F1");
	f2 = FL(&h, "F2");

	ROUNDTRIP(&h, a);
	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SUBMIT(&h, f2);
	SYNC_DONE(&h, -EIO);
	EXPECT_REPLY(&h, f1, -EIO);
	EXPECT_REPLY(&h, f2, -EIO);
	assert_true(sched_failed(&h.s));
	H_FINISH(&h);
}

/* R7 clean: after a sync retired with success and no write completed
 * since, a FLUSH has nothing to make durable and is replied at once. */
static void test_r7_clean_flush_needs_no_sync(void **st)
{
	struct h h;
	struct sched_req *a, *f1, *f2, *r, *f3;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = W(&h, "A", 0, 4096);
	f1 = FL(&h, "F1");
	f2 = FL(&h, "F2");
	r = R(&h, "R", 0, 4096);
	f3 = FL(&h, "F3");

	ROUNDTRIP(&h, a);
	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f1, 0);
	SUBMIT(&h, f2);
	EXPECT_REPLY(&h, f2, 0); /* no SYNC */
	ROUNDTRIP(&h, r); /* reads change nothing */
	SUBMIT(&h, f3);
	EXPECT_REPLY(&h, f3, 0);
	assert_int_equal(h.s.stats.syncs, 1);
	assert_int_equal(h.s.stats.flush_clean, 2);
	H_FINISH(&h);
}

/* R7 clean: the very first FLUSH syncs, even with no write: the file may
 * hold data nobody synced. */
static void test_r7_first_flush_always_syncs(void **st)
{
	struct h h;
	struct sched_req *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	f = FL(&h, "F");
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	H_FINISH(&h);
}

/* R7 clean needs retirement: a sync that completed but is held by a slow
 * FUA write (R5) does not yet make a later FLUSH clean. */
static void test_r7_clean_waits_for_retirement(void **st)
{
	struct h h;
	struct sched_req *a, *f1, *f2;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua slow", 0, 4096, F_FUA);
	f1 = FL(&h, "F1");
	f2 = FL(&h, "F2");

	SUBMIT(&h, a);
	EXPECT_RUN_DSYNC(&h, a);
	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h); /* F1 held by A */
	SUBMIT(&h, f2);
	EXPECT_SYNC(&h); /* not clean: F1's sync has not retired */
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, f1, 0);
	EXPECT_REPLY(&h, f2, 0);
	EXPECT_REPLY(&h, a, 0);
	H_FINISH(&h);
}

/* Write then flush, n times: the pattern R7 early learns. */
static void h_write_flush(struct h *h, int n, uint64_t off)
{
	int i;

	for (i = 0; i < n; i++) {
		struct sched_req *w = W(h, "W", off, 4096);
		struct sched_req *f = FL(h, "F");

		ROUNDTRIP(h, w);
		if (h->sync_outstanding) { /* an early sync: F joins it */
			EXPECT_SYNC(h);
			SUBMIT(h, f);
			EXPECT_NONE(h);
		} else {
			SUBMIT(h, f);
			EXPECT_SYNC(h);
		}
		SYNC_DONE(h, 0);
		EXPECT_REPLY(h, f, 0);
		EXPECT_NONE(h);
	}
}

/* R7 early: once the client flushes after every write, the completion of
 * the write starts the sync the FLUSH then joins. */
static void test_r7_early_sync_after_write(void **st)
{
	struct h h;
	struct sched_req *w, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	sched_set_early(&h.s, true);
	h_write_flush(&h, 10, 0);
	assert_true(h.s.stats.early_syncs > 0);
	w = W(&h, "W last", 0, 4096);
	f = FL(&h, "F last");
	SUBMIT(&h, w);
	EXPECT_RUN(&h, w);
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	EXPECT_SYNC(&h); /* early, before the FLUSH arrived */
	SUBMIT(&h, f);
	EXPECT_NONE(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	H_FINISH(&h);
}

/* R7 early: off by default; and never while another write is pending
 * (the FLUSH could not join a sync that misses it). */
static void test_r7_early_sync_conditions(void **st)
{
	struct h h;
	struct sched_req *a, *b, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	h_write_flush(&h, 10, 0);
	assert_int_equal(h.s.stats.early_syncs, 0);
	sched_set_early(&h.s, true);
	h_write_flush(&h, 10, 0);
	a = W(&h, "A", 0, 4096);
	b = W(&h, "B", 8192, 4096);
	f = FL(&h, "F");
	SUBMIT(&h, a);
	EXPECT_RUN(&h, a);
	SUBMIT(&h, b);
	EXPECT_RUN(&h, b);
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, a, 0);
	EXPECT_NONE(&h); /* B still pending: no early sync */
	COMPLETE(&h, b, 0);
	EXPECT_REPLY(&h, b, 0);
	EXPECT_SYNC(&h);
	SUBMIT(&h, f);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	/* A client that stops flushing stops the guessing: the third write
	   in a row with no FLUSH starts no sync. */
	ROUNDTRIP(&h, W(&h, "C1", 0, 4096));
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	ROUNDTRIP(&h, W(&h, "C2", 0, 4096));
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	ROUNDTRIP(&h, W(&h, "C3", 0, 4096));
	EXPECT_NONE(&h);
	ROUNDTRIP(&h, W(&h, "C4", 0, 4096));
	EXPECT_NONE(&h);
	f = FL(&h, "F after C4");
	SUBMIT(&h, f);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	H_FINISH(&h);
}

/* R7 early: a guess that no FLUSH follows costs a sync nobody waits for;
 * a failed early sync latches like any other (R5). */
static void test_r7_early_sync_unclaimed_and_failed(void **st)
{
	struct h h;
	struct sched_req *w, *w2, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	sched_set_early(&h.s, true);
	h_write_flush(&h, 10, 0);
	w = W(&h, "W", 0, 4096);
	ROUNDTRIP(&h, w);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_NONE(&h); /* nobody to reply to */
	w2 = W(&h, "W2", 0, 4096);
	ROUNDTRIP(&h, w2);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, -EIO);
	EXPECT_NONE(&h);
	assert_true(sched_failed(&h.s));
	f = FL(&h, "F");
	SUBMIT(&h, f);
	EXPECT_REPLY(&h, f, -EIO);
	H_FINISH(&h);
}

/* ------------------------------------------------------------------ R6 */

/*
 * R6: in relaxed mode an rmw write and a plain write touching the same
 * aligned block (disjoint bytes) are ordered: the rmw rewrites the whole
 * block and would otherwise put back stale bytes of the other.
 */
static void test_r6_relaxed_rmw_orders_writes_in_same_block(void **st)
{
	struct h h;
	struct sched_req *rmw, *w, *far;

	h_init(&h, ORDER_RELAXED, FLUSH_SYNC, 4096);
	rmw = WF(&h, "W rmw [4096+100,+200)", 4096 + 100, 200, F_RMW);
	w = W(&h, "W [4096+2048,+2048)", 4096 + 2048, 2048);
	far = WF(&h, "W rmw other block", 3 * 4096 + 1, 10, F_RMW);

	SUBMIT(&h, rmw);
	EXPECT_RUN(&h, rmw);
	SUBMIT(&h, w);
	EXPECT_NONE(&h);
	SUBMIT(&h, far);
	EXPECT_RUN(&h, far);
	COMPLETE(&h, rmw, 0);
	EXPECT_REPLY(&h, rmw, 0);
	EXPECT_RUN(&h, w);
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	COMPLETE(&h, far, 0);
	EXPECT_REPLY(&h, far, 0);
	H_FINISH(&h);
}

/* R6: a strict (BLOCK_STATUS) read waits for an overlapping write even in
 * relaxed mode, while a plain read does not. */
static void test_r6_relaxed_strict_read_waits_for_write(void **st)
{
	struct h h;
	struct sched_req *w, *bs, *rd;

	h_init(&h, ORDER_RELAXED, FLUSH_SYNC, 1);
	w = W(&h, "TRIM", 0, 65536);
	bs = h_new(&h, "BLOCK_STATUS", SCHED_READ, 0, 1 << 20, F_STRICT);
	rd = R(&h, "R", 0, 4096);

	SUBMIT(&h, w);
	EXPECT_RUN(&h, w);
	SUBMIT(&h, bs);
	EXPECT_NONE(&h);
	SUBMIT(&h, rd);
	EXPECT_RUN(&h, rd);
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	EXPECT_RUN(&h, bs);
	COMPLETE(&h, bs, 0);
	EXPECT_REPLY(&h, bs, 0);
	COMPLETE(&h, rd, 0);
	EXPECT_REPLY(&h, rd, 0);
	H_FINISH(&h);
}

/* ------------------------------------------------------- unsafe, NOP */

/* Unsafe: a FLUSH is replied at once with 0, and no sync is requested. */
static void test_unsafe_flush_replied_at_once_without_sync(void **st)
{
	struct h h;
	struct sched_req *w, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_UNSAFE, 1);
	w = W(&h, "W", 0, 4096);
	f = FL(&h, "F");

	SUBMIT(&h, w);
	EXPECT_RUN(&h, w);
	SUBMIT(&h, f);
	EXPECT_REPLY(&h, f, 0);
	EXPECT_NONE(&h);
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	assert_int_equal(h.s.stats.syncs, 0);
	H_FINISH(&h);
}

/* NOP: replied at once, holds nothing, even behind a barrier. */
static void test_nop_replied_at_once(void **st)
{
	struct h h;
	struct sched_req *w, *f, *nop;

	h_init(&h, ORDER_OVERLAP, FLUSH_BARRIER, 1);
	w = W(&h, "W", 0, 4096);
	f = FL(&h, "F");
	nop = h_new(&h, "NOP", SCHED_NOP, 0, 4096, 0);

	SUBMIT(&h, w);
	EXPECT_RUN(&h, w);
	SUBMIT(&h, f);
	SUBMIT(&h, nop);
	EXPECT_REPLY(&h, nop, 0);
	EXPECT_NONE(&h);
	COMPLETE(&h, w, 0);
	EXPECT_REPLY(&h, w, 0);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f, 0);
	H_FINISH(&h);
}

/* n_pending counts submitted-not-replied requests and returns to 0. */
static void test_pending_counts_unreplied_requests(void **st)
{
	struct h h;
	struct sched_req *a, *b, *f;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	a = WF(&h, "A fua", 0, 4096, F_FUA);
	b = W(&h, "B", 0, 4096);
	f = FL(&h, "F");

	SUBMIT(&h, a);
	SUBMIT(&h, b);
	SUBMIT(&h, f);
	assert_int_equal(sched_pending(&h.s), 3);
	EXPECT_RUN_DSYNC(&h, a);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	assert_int_equal(sched_pending(&h.s), 3); /* F held by A (R5) */
	COMPLETE(&h, a, 0);
	EXPECT_REPLY(&h, f, 0);
	EXPECT_REPLY(&h, a, 0);
	EXPECT_RUN(&h, b);
	assert_int_equal(sched_pending(&h.s), 1);
	COMPLETE(&h, b, 0);
	EXPECT_REPLY(&h, b, 0);
	assert_int_equal(h.s.stats.submitted, 3);
	assert_int_equal(h.s.stats.completed, 2);
	assert_int_equal(h.s.stats.waited, 1);
	H_FINISH(&h);
}

/*
 * N4 (engine/stats.c): the notes the counters read at REPLY.  A write
 * that waited for an overlapping one (R3) says OVERLAP, a disjoint one
 * nothing; in barrier mode a FLUSH that waited for earlier requests and a
 * request held behind it say BARRIER (R4); a FLUSH replied at its batch
 * sync's retirement says SYNCED, one that joined a running sync JOINED as
 * well, one replied with no sync CLEAN (R7); max_pending is the peak of
 * sched_pending().
 */
static void test_n4_notes_for_the_counters(void **st)
{
	struct h h;
	struct sched_req *w1, *w2, *w3, *f1, *f2, *f3;
	struct sched_req *r1, *bf, *bw;

	h_init(&h, ORDER_OVERLAP, FLUSH_SYNC, 1);
	w1 = W(&h, "W1", 0, 8192);
	w2 = W(&h, "W2 overlaps W1", 4096, 8192);
	w3 = W(&h, "W3 disjoint", 65536, 4096);
	f1 = FL(&h, "F1");
	f2 = FL(&h, "F2 joins");
	f3 = FL(&h, "F3 clean");

	SUBMIT(&h, w1);
	EXPECT_RUN(&h, w1);
	SUBMIT(&h, w2);
	SUBMIT(&h, w3);
	EXPECT_RUN(&h, w3);
	assert_int_equal(h.s.stats.max_pending, 3);
	COMPLETE(&h, w1, 0);
	EXPECT_REPLY(&h, w1, 0);
	EXPECT_RUN(&h, w2);
	COMPLETE(&h, w2, 0);
	EXPECT_REPLY(&h, w2, 0);
	COMPLETE(&h, w3, 0);
	EXPECT_REPLY(&h, w3, 0);
	assert_int_equal(w1->note, 0);
	assert_int_equal(w2->note, SCHED_NOTE_OVERLAP);
	assert_int_equal(w3->note, 0);
	SUBMIT(&h, f1);
	EXPECT_SYNC(&h);
	SUBMIT(&h, f2);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, f1, 0);
	EXPECT_REPLY(&h, f2, 0);
	SUBMIT(&h, f3);
	EXPECT_REPLY(&h, f3, 0);
	assert_int_equal(f1->note, SCHED_NOTE_SYNCED);
	assert_int_equal(f2->note, SCHED_NOTE_SYNCED | SCHED_NOTE_JOINED);
	assert_int_equal(f3->note, SCHED_NOTE_CLEAN);
	assert_int_equal(h.s.stats.max_pending, 3);
	H_FINISH(&h);

	h_init(&h, ORDER_OVERLAP, FLUSH_BARRIER, 1);
	r1 = R(&h, "R1", 0, 512);
	bf = FL(&h, "F barrier");
	bw = W(&h, "W after", 1 << 20, 4096);
	SUBMIT(&h, r1);
	EXPECT_RUN(&h, r1);
	SUBMIT(&h, bf);
	SUBMIT(&h, bw);
	EXPECT_NONE(&h);
	COMPLETE(&h, r1, 0);
	EXPECT_REPLY(&h, r1, 0);
	EXPECT_SYNC(&h);
	SYNC_DONE(&h, 0);
	EXPECT_REPLY(&h, bf, 0);
	EXPECT_RUN(&h, bw);
	COMPLETE(&h, bw, 0);
	EXPECT_REPLY(&h, bw, 0);
	assert_int_equal(r1->note, 0);
	assert_int_equal(bf->note, SCHED_NOTE_BARRIER | SCHED_NOTE_SYNCED);
	assert_int_equal(bw->note, SCHED_NOTE_BARRIER);
	H_FINISH(&h);
}

static void test_mode_names(void **st)
{
	assert_string_equal(flush_mode_name(FLUSH_SYNC), "sync");
	assert_string_equal(flush_mode_name(FLUSH_BARRIER), "barrier");
	assert_string_equal(flush_mode_name(FLUSH_UNSAFE), "unsafe");
	assert_string_equal(order_mode_name(ORDER_OVERLAP), "overlap");
	assert_string_equal(order_mode_name(ORDER_RELAXED), "relaxed");
}

/* ------------------------------------------------------ random model */

/*
 * All rules at once: random traces in every mode, with and without
 * injected errors, checked event by event against an oracle written from
 * the rules (not from sched.c's code):
 *   R3/R4/R6 safety: at RUN, every earlier conflicting request is done.
 *   R3/R4/R6 liveness: after each call, a request that is not RUN has an
 *     earlier conflicting request not done; with nothing in flight,
 *     everything is replied.
 *   R1: a FLUSH replied 0 was preceded by a successful sync issued after
 *     every plain write replied before the FLUSH arrived had completed
 *     (with R7, that sync may have started before the FLUSH arrived, or
 *     have retired before it: half the seeds also turn early syncs on).
 *   R2: a FUA write replied 0 ran with dsync and completed with 0.
 *   R5: once a sync failed or a dsync write got -EIO, no FLUSH or FUA
 *     write is replied 0, and new writes and flushes are refused at once;
 *     a FLUSH or FUA write replied 0 overlapped no sync op still in flight.
 */
#define SIM_SLOTS 24

struct sim_req {
	struct sched_req r;
	bool used, running, completed, replied;
	uint64_t arrival, completed_at;
	uint64_t issued_at; /* dsync write: tick of its RUN */
	uint64_t cover; /* FLUSH: plain writes completed up to here were
			   replied before it arrived and must be durable */
	uint64_t sync_lb; /* FLUSH: first sync completion after arrival, a
			     lower bound of its own sync's completion */
	int res;
};

struct sim {
	struct sched s;
	struct sim_req q[SIM_SLOTS];
	uint64_t tick, arrivals, rng;
	bool sync_out, latched, errors;
	uint64_t sync_issued_at, durable_upto;
	uint64_t plain_done_max; /* max completed_at of a plain write
				    replied 0 */
	uint64_t syncs;
};

static uint64_t sim_rand(struct sim *m)
{
	/* xorshift64 */
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng;
}

static uint64_t sim_pick(struct sim *m, uint64_t n)
{
	return sim_rand(m) % n;
}

static void orange(const struct sched *s, const struct sched_req *r,
		   uint64_t *lo, uint64_t *hi)
{
	uint64_t a = s->align;

	*lo = r->off;
	*hi = r->off + r->len;
	if (r->kind == SCHED_WRITE && r->rmw && r->len) {
		*lo = r->off / a * a;
		*hi = (r->off + r->len + a - 1) / a * a;
	}
}

static bool oracle_conflict(const struct sched *s, const struct sched_req *a,
			    const struct sched_req *b)
{
	uint64_t alo, ahi, blo, bhi;
	bool aw = a->kind == SCHED_WRITE, bw = b->kind == SCHED_WRITE;

	if (a->kind == SCHED_FLUSH || b->kind == SCHED_FLUSH)
		return s->flush == FLUSH_BARRIER;
	if (a->kind == SCHED_NOP || b->kind == SCHED_NOP)
		return false;
	if (!a->len || !b->len || (!aw && !bw))
		return false;
	orange(s, a, &alo, &ahi);
	orange(s, b, &blo, &bhi);
	if (ahi <= blo || bhi <= alo)
		return false;
	if (s->order == ORDER_OVERLAP)
		return true;
	return (aw && bw && (a->rmw || b->rmw)) || (a->strict && bw) ||
	       (b->strict && aw);
}

/* Done, as far as ordering goes: a FLUSH when replied, others at
 * completion (or when refused). */
static bool sim_done(const struct sim_req *p)
{
	if (p->r.kind == SCHED_FLUSH)
		return p->replied;
	return p->completed || p->replied;
}

/* An earlier, conflicting, not-done request that q must wait for. */
static bool sim_blocked(struct sim *m, const struct sim_req *q)
{
	const struct sim_req *p;

	for (p = m->q; p < m->q + SIM_SLOTS; p++)
		if (p != q && p->used && p->arrival < q->arrival &&
		    !sim_done(p) && oracle_conflict(&m->s, &p->r, &q->r))
			return true;
	return false;
}

/* R5: is a sync op issued before tick t still in flight? */
static bool sim_inflight_before(struct sim *m, uint64_t t)
{
	const struct sim_req *p;

	if (m->sync_out && m->sync_issued_at < t)
		return true;
	for (p = m->q; p < m->q + SIM_SLOTS; p++)
		if (p->used && p->running && !p->completed && p->r.dsync &&
		    p->issued_at < t)
			return true;
	return false;
}

static void sim_event(struct sim *m, struct sched_req *r)
{
	struct sim_req *q = (struct sim_req *)r;
	bool fua_like;

	assert_true(q->used && !q->replied);
	if (r->action == SCHED_RUN) {
		assert_true(r->kind == SCHED_READ || r->kind == SCHED_WRITE);
		assert_false(q->running || q->completed);
		assert_false(sim_blocked(m, q)); /* R3, R4, R6 */
		/* R2 */
		assert_int_equal(r->dsync, r->kind == SCHED_WRITE && r->fua &&
						   m->s.flush != FLUSH_UNSAFE);
		q->running = true;
		q->issued_at = m->tick;
		return;
	}
	assert_int_equal(r->action, SCHED_REPLY);
	q->replied = true;
	fua_like =
		r->kind == SCHED_FLUSH || (r->kind == SCHED_WRITE && r->dsync);
	if (r->kind == SCHED_READ || r->kind == SCHED_WRITE) {
		/* Replied after completion, or refused without running. */
		assert_true(q->completed ||
			    (!q->running && m->latched && r->status == -EIO));
		if (q->completed && !r->dsync)
			assert_int_equal(r->status, q->res);
	}
	if (m->latched && fua_like && m->s.flush != FLUSH_UNSAFE)
		assert_int_not_equal(r->status, 0); /* R5 */
	if (r->kind == SCHED_FLUSH && r->status == 0 &&
	    m->s.flush != FLUSH_UNSAFE) {
		assert_true(q->cover < m->durable_upto); /* R1 */
		/* R5; a FLUSH that needed no sync (R7 clean) was covered by
		   one that had retired, so only a sync completed after it
		   arrived can still be held up. */
		if (q->sync_lb)
			assert_false(sim_inflight_before(m, q->sync_lb));
		else
			assert_int_equal(m->s.flush, FLUSH_SYNC);
	}
	if (r->kind == SCHED_WRITE && r->dsync && r->status == 0) {
		assert_true(q->completed && q->res == 0); /* R2 */
		assert_false(sim_inflight_before(m, q->completed_at)); /* R5 */
	}
	if (r->kind == SCHED_WRITE && !r->dsync && r->status == 0 &&
	    q->completed && q->completed_at > m->plain_done_max)
		m->plain_done_max = q->completed_at;
	assert_false(q->running && !q->completed);
	q->used = false;
}

static void sim_dump(struct sim *m, const struct sim_req *stuck)
{
	const struct sim_req *p;

	for (p = m->q; p < m->q + SIM_SLOTS; p++)
		if (p->used)
			print_error("%s slot %2d arr %llu kind %d [%llu,+%llu)"
				    "%s%s%s run %d done %d wait %u\n",
				    p == stuck ? "*" : " ", (int)(p - m->q),
				    (unsigned long long)p->arrival, p->r.kind,
				    (unsigned long long)p->r.off,
				    (unsigned long long)p->r.len,
				    p->r.fua ? " fua" : "",
				    p->r.rmw ? " rmw" : "",
				    p->r.strict ? " strict" : "", p->running,
				    p->completed, p->r.wait);
}

static void sim_drain(struct sim *m, struct sched_out *o)
{
	struct sched_req *r;
	struct sim_req *q;
	bool busy = m->sync_out;

	while ((r = sched_out_pop(o)))
		sim_event(m, r);
	if (o->sync) {
		assert_false(m->sync_out); /* R1: one sync at a time */
		assert_int_not_equal(m->s.flush, FLUSH_UNSAFE);
		m->sync_out = true;
		m->sync_issued_at = m->tick + 1;
		m->syncs++;
	}
	assert_true(sched_failed(&m->s) == m->latched);
	/* Liveness. */
	for (q = m->q; q < m->q + SIM_SLOTS; q++) {
		if (q->running && !q->completed)
			busy = true;
		if (q->used && !q->running && !q->replied &&
		    q->r.kind != SCHED_FLUSH && !sim_blocked(m, q)) {
			sim_dump(m, q);
			fail_msg("slot %d waits for nothing", (int)(q - m->q));
		}
	}
	busy = busy || m->sync_out;
	if (!busy)
		for (q = m->q; q < m->q + SIM_SLOTS; q++)
			assert_false(q->used);
}

static void sim_submit(struct sim *m, struct sim_req *q)
{
	static const uint8_t kinds[] = {
		SCHED_READ,  SCHED_READ,  SCHED_READ,  SCHED_WRITE, SCHED_WRITE,
		SCHED_WRITE, SCHED_WRITE, SCHED_FLUSH, SCHED_FLUSH, SCHED_NOP};
	struct sched_out o;
	struct sched_req *r = &q->r;

	memset(q, 0, sizeof(*q));
	q->used = true;
	q->arrival = ++m->arrivals;
	r->kind = kinds[sim_pick(m, sizeof(kinds))];
	/* R7 early learns from a FLUSH after about every write. */
	if (m->s.early_on && sim_pick(m, 3) == 0)
		r->kind = SCHED_FLUSH;
	r->off = sim_pick(m, 16) * 1024 +
		 (sim_pick(m, 4) ? 0 : sim_pick(m, 1024));
	r->len = sim_pick(m, 5) * 1024 +
		 (sim_pick(m, 4) ? 0 : sim_pick(m, 1024));
	r->fua = sim_pick(m, 3) == 0;
	r->rmw = r->kind == SCHED_WRITE && sim_pick(m, 3) == 0;
	r->strict = r->kind == SCHED_READ && sim_pick(m, 4) == 0;
	/* R1: a FLUSH must cover plain writes replied before it arrived. */
	if (r->kind == SCHED_FLUSH)
		q->cover = m->plain_done_max;

	m->tick += 2;
	sched_out_init(&o);
	sched_submit(&m->s, r, &o);
	if (m->latched && (r->kind == SCHED_WRITE || r->kind == SCHED_FLUSH)) {
		/* R5: refused at once. */
		assert_ptr_equal(list_first(&o.reqs), &r->out_node);
		assert_int_equal(r->action, SCHED_REPLY);
		assert_int_equal(r->status, -EIO);
	}
	sim_drain(m, &o);
}

static int sim_error(struct sim *m)
{
	if (!m->errors || sim_pick(m, 20))
		return 0;
	return sim_pick(m, 2) ? -EIO : -ENOSPC;
}

static void sim_complete(struct sim *m, struct sim_req *q, int res)
{
	struct sched_out o;

	m->tick += 2;
	q->completed = true;
	q->completed_at = m->tick;
	q->res = res;
	if (q->r.dsync && res) /* R5: any dsync error latches */
		m->latched = true;
	sched_out_init(&o);
	sched_complete(&m->s, &q->r, res, &o);
	sim_drain(m, &o);
}

static void sim_sync_done(struct sim *m, int res)
{
	struct sched_out o;
	struct sim_req *q;

	m->tick += 2;
	for (q = m->q; q < m->q + SIM_SLOTS; q++)
		if (q->used && q->r.kind == SCHED_FLUSH && !q->sync_lb)
			q->sync_lb = m->tick;
	m->sync_out = false;
	if (res)
		m->latched = true;
	else
		m->durable_upto = m->sync_issued_at;
	sched_out_init(&o);
	sched_sync_done(&m->s, res, &o);
	sim_drain(m, &o);
}

static struct sim_req *sim_running(struct sim *m)
{
	int i, start = (int)sim_pick(m, SIM_SLOTS);
	struct sim_req *q;

	for (i = 0; i < SIM_SLOTS; i++) {
		q = &m->q[(start + i) % SIM_SLOTS];
		if (q->used && q->running && !q->completed)
			return q;
	}
	return NULL;
}

static struct sim_req *sim_free(struct sim *m)
{
	int i, start = (int)sim_pick(m, SIM_SLOTS);
	struct sim_req *q;

	for (i = 0; i < SIM_SLOTS; i++) {
		q = &m->q[(start + i) % SIM_SLOTS];
		if (!q->used)
			return q;
	}
	return NULL;
}

static uint64_t sim_r7[3]; /* early syncs, joins, clean FLUSHes seen */

static void sim_run(enum order_mode order, enum flush_mode flush, bool errors,
		    bool early, uint64_t seed, int steps)
{
	static struct sim m;
	struct sim_req *q;
	uint64_t roll;
	int i;

	memset(&m, 0, sizeof(m));
	sched_init(&m.s, order, flush, 4096);
	sched_set_early(&m.s, early);
	m.rng = seed;
	m.errors = errors;
	for (i = 0; i < steps; i++) {
		roll = sim_pick(&m, 100);
		if (roll < 45 && (q = sim_free(&m)))
			sim_submit(&m, q);
		else if (roll < 85 && (q = sim_running(&m)))
			sim_complete(&m, q, sim_error(&m));
		else if (m.sync_out)
			sim_sync_done(&m, sim_error(&m));
	}
	/* Drain: everything must finish (no deadlock). */
	for (;;) {
		if ((q = sim_running(&m)))
			sim_complete(&m, q, 0);
		else if (m.sync_out)
			sim_sync_done(&m, 0);
		else
			break;
	}
	for (q = m.q; q < m.q + SIM_SLOTS; q++)
		assert_false(q->used);
	sim_r7[0] += m.s.stats.early_syncs;
	sim_r7[1] += m.s.stats.flush_joined;
	sim_r7[2] += m.s.stats.flush_clean;
	assert_int_equal(sched_pending(&m.s), 0);
	assert_int_equal(m.s.stats.syncs, m.syncs);
	assert_true(list_empty(&m.s.active));
	assert_true(list_empty(&m.s.sync_inflight));
	assert_true(list_empty(&m.s.sync_done));
}

static void test_model_random(void **st)
{
	static const enum flush_mode modes[] = {FLUSH_SYNC, FLUSH_BARRIER,
						FLUSH_UNSAFE};
	int m, order, errors;
	uint64_t seed;

	for (m = 0; m < 3; m++)
		for (order = 0; order < 2; order++)
			for (errors = 0; errors < 2; errors++)
				for (seed = 1; seed <= 16; seed++)
					sim_run((enum order_mode)order,
						modes[m], errors, seed & 1,
						seed * 0x9e3779b97f4a7c15ull,
						10000);
	/* The model reached every R7 path. */
	assert_true(sim_r7[0] > 0 && sim_r7[1] > 0 && sim_r7[2] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_r1_flush_covers_write_replied_on_other_connection),
		cmocka_unit_test(test_r1_inflight_write_does_not_block_flush),
		cmocka_unit_test(
			test_r1_flushes_during_sync_batch_into_next_sync),
		cmocka_unit_test(
			test_r1_flush_after_sync_completed_starts_a_new_sync),
		cmocka_unit_test(test_r2_fua_write_runs_dsync),
		cmocka_unit_test(test_r2_fua_ignored_on_read_and_flush),
		cmocka_unit_test(test_r2_unsafe_mode_runs_fua_without_dsync),
		cmocka_unit_test(test_r2_fua_write_error_is_replied),
		cmocka_unit_test(
			test_r3_overlapping_writes_run_in_arrival_order),
		cmocka_unit_test(test_r3_chain_of_overlaps_keeps_arrival_order),
		cmocka_unit_test(test_r3_waits_for_all_earlier_conflicts),
		cmocka_unit_test(test_r3_overlapping_reads_run_in_parallel),
		cmocka_unit_test(test_r3_trim_and_read_ordered_both_ways),
		cmocka_unit_test(test_r3_write_zeroes_and_read_ordered),
		cmocka_unit_test(
			test_r3_relaxed_runs_overlapping_writes_in_parallel),
		cmocka_unit_test(test_r3_zero_length_never_waits),
		cmocka_unit_test(test_r3_r6_conflict_table),
		cmocka_unit_test(test_r4_barrier_flush_orders_everything),
		cmocka_unit_test(test_r4_barrier_flushes_sync_one_at_a_time),
		cmocka_unit_test(test_r4_sync_mode_flush_holds_nothing),
		cmocka_unit_test(test_r5_sync_failure_latches_export),
		cmocka_unit_test(test_r5_sync_enospc_also_latches),
		cmocka_unit_test(test_r5_fua_write_eio_latches),
		cmocka_unit_test(test_r5_refused_fua_request_does_not_latch),
		cmocka_unit_test(test_r5_refused_fua_request_releases_flush),
		cmocka_unit_test(test_r5_running_plain_write_keeps_its_result),
		cmocka_unit_test(
			test_r5_errseq_flush_waits_for_concurrent_fua_write),
		cmocka_unit_test(
			test_r5_flush_waits_for_concurrent_fua_write_ok),
		cmocka_unit_test(test_r5_later_fua_write_does_not_hold_flush),
		cmocka_unit_test(test_r5_fua_write_waits_for_concurrent_sync),
		cmocka_unit_test(
			test_r5_two_batches_retire_in_completion_order),
		cmocka_unit_test(test_r5_no_durability_claimed_after_latch),
		cmocka_unit_test(test_r7_flush_joins_running_sync),
		cmocka_unit_test(test_r7_joined_flush_gets_sync_error),
		cmocka_unit_test(test_r7_clean_flush_needs_no_sync),
		cmocka_unit_test(test_r7_first_flush_always_syncs),
		cmocka_unit_test(test_r7_clean_waits_for_retirement),
		cmocka_unit_test(test_r7_early_sync_after_write),
		cmocka_unit_test(test_r7_early_sync_conditions),
		cmocka_unit_test(test_r7_early_sync_unclaimed_and_failed),
		cmocka_unit_test(
			test_r6_relaxed_rmw_orders_writes_in_same_block),
		cmocka_unit_test(test_r6_relaxed_strict_read_waits_for_write),
		cmocka_unit_test(
			test_unsafe_flush_replied_at_once_without_sync),
		cmocka_unit_test(test_nop_replied_at_once),
		cmocka_unit_test(test_pending_counts_unreplied_requests),
		cmocka_unit_test(test_n4_notes_for_the_counters),
		cmocka_unit_test(test_mode_names),
		cmocka_unit_test(
			test_r8_snap_drains_writes_and_holds_later_ones),
		cmocka_unit_test(test_r8_snaps_in_order_reads_never_wait),
		cmocka_unit_test(test_r8_sync_snap_is_an_r5_op),
		cmocka_unit_test(test_model_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
