/* SPDX-License-Identifier: MIT */
/*
 * fuzz-sched.c: libFuzzer harness for the request scheduler (src/engine/sched.c).
 *
 * Input: byte 0 picks the mode (bit 0: order relaxed; bits 1-2: flush
 * mode sync, barrier or unsafe; bits 3-6: alignment 2^n, at most 4096;
 * bit 7: early syncs, R7).
 * Then one operation per opcode byte, in the order a worker could make
 * the calls:
 *   op % 4 == 0 or 1  SUBMIT a request; two more bytes give its offset and
 *                     length.  Bits 2-3: kind (READ, WRITE, FLUSH, NOP),
 *                     4: fua, 5: rmw, 6: strict, 7: offset near 2^64 (so
 *                     that offset + length can wrap).
 *   op % 4 == 2       COMPLETE a running request; one more byte picks it.
 *                     Bit 2: it failed with EIO.  Bit 3: it failed with
 *                     EINVAL before any step that syncs (sched_fail).
 *   op % 4 == 3       SYNC_DONE, if a sync is in flight.  Bit 2: EIO.
 * At the end every running request completes and every sync finishes, as
 * a worker does at shutdown, until nothing moves.
 *
 * The scheduler's own asserts are on (b_ndebug=if-release).  The harness
 * checks each event against the rules at the top of src/engine/sched.c:
 *   FS1  a request is RUN at most once, replied exactly once, never RUN
 *       after its reply, and a READ or WRITE that was RUN replies only
 *       after it completed; a FLUSH or NOP is never RUN; at most one sync
 *       is in flight; at the end nothing is pending.
 *   FS2  (R2) a WRITE RUNs with dsync iff it has FUA and the mode is not
 *       unsafe; a non-dsync request replies with its completion's result.
 *   FS3  (R3, R6) a request does not RUN while an earlier request that
 *       conflicts with it has not completed.  Conflict is judged on the
 *       plain ranges [off, off+len), which are inside the effective ones,
 *       so this is a necessary condition.
 *   FS4  (R4) in barrier mode nothing RUNs while an earlier FLUSH is not
 *       replied, and a FLUSH's sync starts only when every earlier
 *       request has completed.
 *   FS5  (R1, R7) a FLUSH replied with success in sync or barrier mode
 *       was covered by a successful batch sync issued after every write
 *       that had completed when the FLUSH arrived; in barrier mode that
 *       sync started after the FLUSH arrived.  In sync mode it may have
 *       started before (R7 join, early) or retired before (R7 clean).
 *   FS6  (R5) sched_failed() is true exactly after a failed sync or dsync
 *       write; from then on every WRITE and FLUSH submitted is replied EIO
 *       at once, and no FLUSH or dsync WRITE is replied with success.
 *   FS7  (R5) a FLUSH or dsync WRITE replied with success: its sync, and
 *       every sync or dsync write that started before that one completed,
 *       has completed without error.
 *   FS8  (R5) a request ended by sched_fail() is replied with its error,
 *       latches nothing, and its dsync op, which never synced, holds up no
 *       other op's retirement.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-sched: %s:%d: %s\n", __FILE__,   \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#define MAX_REQS 128

enum st { ST_SUBMITTED = 1, ST_RUN, ST_COMPLETED, ST_REPLIED };

struct t_req {
	struct sched_req r;
	enum st st;
	uint64_t end; /* off + len, saturated */
	uint32_t arrival; /* the clock when it arrived (FS5) */
	uint32_t cover; /* FLUSH: writes completed when it arrived (FS5) */
	unsigned int op; /* dsync WRITE or FLUSH: its sync op, 1-based */
	int res; /* given at COMPLETE */
	bool dsync; /* RUN with dsync */
};

/* A sync-like operation (R5): a batch sync, or a dsync write. */
struct t_op {
	uint32_t start, done_at; /* on the harness's clock, as in sched.c */
	uint32_t wmark; /* a batch sync: writes completed at its issue */
	bool batch; /* a batch sync, not a dsync write */
	bool done;
	bool withdrawn; /* its request failed before syncing (FS8) */
	int res;
};

static struct {
	struct sched s;
	struct t_req req[MAX_REQS];
	unsigned int n;
	struct t_op ops[2 * MAX_REQS];
	unsigned int n_ops;
	uint32_t clock;
	unsigned int sync_op; /* the batch sync in flight, 1-based, or 0 */
	uint32_t syncs; /* syncs started */
	uint32_t wdone; /* writes completed (sched_complete, sched_fail) */
	bool failed; /* a sync or dsync write failed (FS6) */
} h;

static unsigned int op_issue(void)
{
	struct t_op *op = &h.ops[h.n_ops++];

	op->start = ++h.clock;
	return h.n_ops;
}

static void op_done(unsigned int i, int res)
{
	struct t_op *op = &h.ops[i - 1];

	check(!op->done);
	op->done = true;
	op->done_at = h.clock;
	op->res = res;
	if (res)
		h.failed = true;
}

/*
 * FS7 (R5): a success claimed by op i is only true if every sync op that
 * overlapped it in time, i.e. started before it completed, has completed
 * and succeeded: Linux reports a writeback error to only one of them.
 */
static void check_retired(unsigned int i)
{
	const struct t_op *op = &h.ops[i - 1];
	unsigned int j;

	check(op->done && op->res == 0);
	for (j = 0; j < h.n_ops; j++)
		if (h.ops[j].start <= op->done_at && !h.ops[j].withdrawn)
			check(h.ops[j].done && h.ops[j].res == 0);
}

static bool plain_conflict(const struct t_req *a, const struct t_req *b)
{
	uint8_t ka = a->r.kind, kb = b->r.kind;

	if (ka == SCHED_FLUSH || ka == SCHED_NOP || kb == SCHED_FLUSH ||
	    kb == SCHED_NOP)
		return false;
	if (!a->r.len || !b->r.len || a->r.off >= b->end || b->r.off >= a->end)
		return false;
	if (ka == SCHED_READ && kb == SCHED_READ)
		return false;
	if (h.s.order == ORDER_OVERLAP)
		return true;
	if (ka == SCHED_WRITE && kb == SCHED_WRITE && (a->r.rmw || b->r.rmw))
		return true;
	return (a->r.strict && kb == SCHED_WRITE) ||
	       (b->r.strict && ka == SCHED_WRITE);
}

static void on_run(struct t_req *t)
{
	unsigned int i;

	/* FS1 */
	check(t->st == ST_SUBMITTED);
	check(t->r.kind == SCHED_READ || t->r.kind == SCHED_WRITE);
	t->st = ST_RUN;
	t->dsync = t->r.dsync;
	if (t->dsync)
		t->op = op_issue();
	/* FS2 */
	check(t->dsync == (t->r.kind == SCHED_WRITE && t->r.fua &&
			   h.s.flush != FLUSH_UNSAFE));

	for (i = 0; &h.req[i] != t; i++) {
		const struct t_req *e = &h.req[i];

		/* FS3 */
		if (e->st == ST_SUBMITTED || e->st == ST_RUN)
			check(!plain_conflict(e, t));
		/* FS4 */
		if (h.s.flush == FLUSH_BARRIER && e->r.kind == SCHED_FLUSH)
			check(e->st == ST_REPLIED);
	}
}

/* FS5, FS7: a successful batch sync that covers FLUSH t, and retired. */
static bool covered(const struct t_req *t)
{
	unsigned int i;

	for (i = 0; i < h.n_ops; i++) {
		const struct t_op *op = &h.ops[i];

		if (!op->batch || !op->done || op->res || op->wmark < t->cover)
			continue;
		if (h.s.flush == FLUSH_BARRIER && op->start <= t->arrival)
			continue;
		check_retired(i + 1);
		return true;
	}
	return false;
}

static void on_reply(struct t_req *t)
{
	int status = t->r.status;

	/* FS1 */
	check(t->st != ST_REPLIED);
	check(t->st != ST_RUN);
	if (t->st == ST_COMPLETED && !t->dsync)
		check(status == t->res); /* FS2 */
	if (t->st == ST_COMPLETED && t->dsync && t->op &&
	    h.ops[t->op - 1].withdrawn)
		check(status == t->res); /* FS8 */
	if (t->st == ST_SUBMITTED)
		check(t->r.kind == SCHED_FLUSH || t->r.kind == SCHED_NOP ||
		      (t->r.kind == SCHED_WRITE && status == -EIO));
	t->st = ST_REPLIED;

	/* FS5, FS7 */
	if (t->r.kind == SCHED_FLUSH && status == 0 &&
	    h.s.flush != FLUSH_UNSAFE)
		check(covered(t));
	if (t->dsync && status == 0)
		check_retired(t->op);
	/* FS6 */
	if (h.failed && (t->r.kind == SCHED_FLUSH || t->dsync))
		check(status != 0);
}

static void on_sync_start(void)
{
	unsigned int i;

	/* FS1 */
	check(!h.sync_op);
	h.sync_op = op_issue();
	h.ops[h.sync_op - 1].batch = true;
	h.ops[h.sync_op - 1].wmark = h.wdone;
	h.syncs++;
	/* FS4: the running batch's FLUSH waited for everything before it. */
	if (h.s.flush == FLUSH_BARRIER) {
		for (i = 0; i < h.n; i++) {
			const struct t_req *e = &h.req[i];

			if (e->r.kind == SCHED_FLUSH && e->st == ST_SUBMITTED)
				break;
			check(e->st == ST_COMPLETED || e->st == ST_REPLIED);
		}
	}
}

static void drain(struct sched_out *o)
{
	struct sched_req *r;

	while ((r = sched_out_pop(o))) {
		struct t_req *t = container_of(r, struct t_req, r);

		check(t >= h.req && t < h.req + h.n);
		if (r->action == SCHED_RUN)
			on_run(t);
		else if (r->action == SCHED_REPLY)
			on_reply(t);
		else
			check(!"unknown action");
	}
	if (o->sync)
		on_sync_start();
	/* FS6: the latch is on exactly when a sync or dsync write failed. */
	check(sched_failed(&h.s) == h.failed);
}

static void submit(uint8_t op, uint8_t b_off, uint8_t b_len)
{
	static const uint8_t kinds[] = {SCHED_READ, SCHED_WRITE, SCHED_FLUSH,
					SCHED_NOP};
	struct t_req *t;
	struct sched_out o;
	bool refused;

	if (h.n == MAX_REQS)
		return;
	t = &h.req[h.n++];
	t->r.kind = kinds[(op >> 2) & 3];
	t->r.fua = op & 0x10;
	t->r.rmw = op & 0x20;
	t->r.strict = op & 0x40;
	/* 384: not a multiple of any alignment but 128, so RMW rounds. */
	t->r.off = (uint64_t)b_off * 384;
	if (op & 0x80)
		t->r.off += UINT64_MAX - 0x1ffff;
	t->r.len = (uint64_t)b_len * 384;
	if (__builtin_add_overflow(t->r.off, t->r.len, &t->end))
		t->end = UINT64_MAX;
	t->arrival = h.clock;
	t->cover = h.wdone;
	t->st = ST_SUBMITTED;
	/* FS6: refused at once, before any event of this call is seen. */
	refused = h.failed &&
		  (t->r.kind == SCHED_WRITE || t->r.kind == SCHED_FLUSH);

	sched_out_init(&o);
	sched_submit(&h.s, &t->r, &o);
	if (refused)
		check(list_first(&o.reqs) == &t->r.out_node &&
		      t->r.action == SCHED_REPLY && t->r.status == -EIO);
	drain(&o);
}

static bool complete(uint8_t pick, int res, bool early)
{
	unsigned int i, n_run = 0;
	struct sched_out o;
	struct t_req *t = NULL;

	for (i = 0; i < h.n; i++)
		n_run += h.req[i].st == ST_RUN;
	if (!n_run)
		return false;
	pick %= n_run;
	for (i = 0; i < h.n; i++)
		if (h.req[i].st == ST_RUN && pick-- == 0) {
			t = &h.req[i];
			break;
		}
	check(t);
	t->st = ST_COMPLETED;
	if (t->r.kind == SCHED_WRITE)
		h.wdone++; /* FS5 */
	sched_out_init(&o);
	if (early) {
		/* FS8: no sync ran; the op is as if never issued. */
		t->res = -EINVAL;
		if (t->dsync) {
			h.ops[t->op - 1].withdrawn = true;
			h.ops[t->op - 1].done = true;
		}
		sched_fail(&h.s, &t->r, -EINVAL, &o);
	} else {
		t->res = res;
		if (t->dsync)
			op_done(t->op, res);
		sched_complete(&h.s, &t->r, res, &o);
	}
	drain(&o);
	return true;
}

static bool sync_done(int res)
{
	struct sched_out o;

	if (!h.sync_op)
		return false;
	op_done(h.sync_op, res);
	h.sync_op = 0;
	sched_out_init(&o);
	sched_sync_done(&h.s, res, &o);
	drain(&o);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum flush_mode modes[] = {FLUSH_SYNC, FLUSH_BARRIER,
						FLUSH_UNSAFE};
	size_t pos = 1;
	unsigned int i;

	if (size < 1)
		return 0;
	memset(&h, 0, sizeof h);
	sched_init(&h.s, (data[0] & 1) ? ORDER_RELAXED : ORDER_OVERLAP,
		   modes[((data[0] >> 1) & 3) % 3],
		   1u << (((data[0] >> 3) & 15) % 13));
	sched_set_early(&h.s, data[0] & 0x80);

	while (pos < size) {
		uint8_t op = data[pos++];
		int res = (op & 4) ? -EIO : 0;

		switch (op & 3) {
		case 0:
		case 1:
			if (size - pos < 2)
				pos = size;
			else
				submit(op, data[pos], data[pos + 1]);
			pos += 2;
			break;
		case 2:
			if (pos < size)
				complete(data[pos], res, op & 8);
			pos++;
			break;
		default:
			sync_done(res);
			break;
		}
	}

	/* Shut down: finish everything, successfully, until nothing moves. */
	for (;;) {
		bool moved = sync_done(0);

		while (complete(0, 0, false))
			moved = true;
		if (!moved)
			break;
	}
	/* FS1 */
	check(sched_pending(&h.s) == 0);
	check(!h.sync_op);
	for (i = 0; i < h.n; i++)
		check(h.req[i].st == ST_REPLIED);
	return 0;
}
