/* SPDX-License-Identifier: MIT */
/*
 * sched.c: the request scheduler of one export.
 *
 * Pure logic: no I/O, no sockets, no threads, no allocation.  All state is
 * intrusive in struct sched and struct sched_req (sched.h).  Every call
 * appends the events it decides to a struct sched_out, in the order it
 * decides them; the caller acts on them after dropping the export's lock.
 *
 * CONTEXT: not thread-safe.  The caller holds the export's lock around every
 * call (sched.h), so nothing below can race with the caller acting on a
 * sched_out: a request that gets SCHED_REPLY in this call may still be read
 * (never written) until the call returns.
 *
 * The contract (NBD proto.md "Ordering of messages and writes", Linux
 * Documentation/block/writeback_cache_control.rst; see docs/semantics.md):
 * a FLUSH makes durable every write replied before the FLUSH was received,
 * on any connection; a FUA write is durable when replied.  Nothing else is
 * promised, in particular no ordering between requests.  The rules below
 * implement the contract (R1, R2, R5) and the project's stricter choices
 * (R3, R4, R6).  Code cites them by number.
 *
 * R1  FLUSH (FLUSH_SYNC, the default).  A FLUSH replies only after
 *     every write that was replied before the FLUSH arrived, on any
 *     connection, is durable.  A runnable FLUSH joins the "waiting batch".
 *     At most one sync (fdatasync of the export's file) is in flight per
 *     export.  If none is running the waiting batch becomes the running
 *     batch at once and the call sets out->sync.  FLUSHes that arrive while
 *     a sync runs wait for the NEXT sync, because the running one may have
 *     started before writes they must cover were replied (unless R7 shows
 *     that it did not); the next sync starts as soon as the running one
 *     completes (group commit: many flushes, one sync).  The caller
 *     replies to a write only after its I/O completed, and a sync issued
 *     after the FLUSH arrived covers it.  A write still in flight when the
 *     FLUSH arrives is not covered and does not hold it.
 *
 * R2  FUA.  A WRITE (also TRIM, WRITE_ZEROES) with fua is RUN with
 *     r->dsync: the caller uses RWF_DSYNC, or for fallocate issues an
 *     fdatasync itself and reports one result.  Its reply waits for its
 *     completion and for R5 retirement.  FUA on READ, FLUSH and NOP is
 *     ignored.
 *
 * R3  Overlap ordering (ORDER_OVERLAP, the default).  Requests whose
 *     effective byte ranges intersect, at least one of them a SCHED_WRITE,
 *     run in arrival order across all connections: a request RUNs only
 *     after every earlier conflicting request completed.  Others run at
 *     once, in parallel.  ORDER_RELAXED turns R3 off (not R6).
 *
 * R4  Barrier (FLUSH_BARRIER).  A FLUSH conflicts with every request,
 *     earlier or later, whatever its range: it waits until every request
 *     received before it completed, then syncs alone; no request received
 *     after it runs until it is retired.  So at any instant the file holds
 *     every epoch before the running flush.
 *
 *     FLUSH_UNSAFE: a FLUSH is replied at once with 0 and FUA is
 *     ignored; no sync is ever requested.
 *
 * R5  Sync retirement and the error latch.  Linux reports a writeback error
 *     through errseq to only one of several syncs running at once on one
 *     file, so a successful sync may be a lie if another one overlapped it.
 *     Sync operations are the batch syncs (R1) and the dsync writes (R2).
 *     Clock: at issue op.start = ++clock, at completion op.done_at = clock.
 *     A completed op is RETIRED (its requests get their REPLY) only when
 *     every op with start <= its done_at has completed, i.e. every op that
 *     overlapped it in time.  Ops retire in completion order.  Status at
 *     retirement: op.res if nonzero, else -EIO if the export is latched,
 *     else 0.  The latch (s->failed) is set by a batch sync and by a dsync
 *     write that fail with any error: a dsync write's error may be the
 *     writeback error of other data, taken from the file's errseq.  Once latched,
 *     every newly submitted WRITE and FLUSH is replied -EIO at once, never
 *     RUN; reads keep working; no flush or FUA write retired afterwards
 *     claims durability (fsyncgate: a retried fsync "succeeds" on lost
 *     data, wiki.postgresql.org/wiki/Fsync_Errors).
 *     Only errors of a step that syncs latch.  A dsync request that ends
 *     through sched_fail() failed before any such step ran (its arguments
 *     were refused, a resource was short, or a non-syncing step such as a
 *     fallocate failed): it consumed no writeback error, so its op leaves
 *     the in-flight list without latching and it is replied at once.
 *
 * R6  Read-modify-write and BLOCK_STATUS exclusivity, always on.  A WRITE
 *     with r->rmw (unaligned, done by read-modify-write of whole aligned
 *     blocks) owns [off rounded down to align, off+len rounded up); every
 *     other request owns [off, off+len).  In relaxed mode two requests
 *     conflict iff their effective ranges intersect and either both are
 *     WRITEs and one has rmw (the rmw would write back stale bytes of the
 *     other), or one is strict (BLOCK_STATUS) and the other is a WRITE.
 *
 * R7  Syncs that are already enough (FLUSH_SYNC only).  s->wdone counts the
 *     writes (WRITE, TRIM, WRITE_ZEROES) that completed, and a batch sync
 *     notes its value when it is issued (op.wmark).  Every write replied
 *     before a FLUSH arrived completed before then, so a sync issued when
 *     wdone already had its value at the FLUSH's arrival covers the FLUSH:
 *     - Join: a runnable FLUSH joins the RUNNING sync's batch when no write
 *       completed since that sync was issued (wdone == run_op->wmark).
 *     - Clean: a runnable FLUSH is replied 0 at once, with no sync, when
 *       the last batch sync that retired with success (R5) was issued at
 *       the current wdone: every write that ever completed is durable.
 *       Until one has, s->durable_wmark is UINT64_MAX, so the first FLUSH
 *       always syncs.
 *     - Early: with sched_set_early() on, when the clients have been
 *       flushing after about every write (a moving average of at most
 *       EARLY_WPF16 / 16 writes between FLUSHes, and no more than EARLY_RUN
 *       since the last one), the completion of the last pending write
 *       starts a batch sync with no FLUSH yet (op.req NULL).
 *       The FLUSH that follows joins it, and its wait overlaps the round
 *       trip of the write's reply and the FLUSH.  A wrong guess claims
 *       nothing; it costs one sync, which holds the export's sync slot (a
 *       FLUSH that cannot join waits for it to end) and, under R5, the
 *       replies of FUA writes that start while it runs.
 *     The latch (R5) and retirement are unchanged: a joined FLUSH replies
 *     at its sync's retirement, with its status.
 *
 * R8  Capture points (live snapshots, engine/snapshot.c).  A SCHED_SNAP
 *     request is the instant P of a snapshot.  It conflicts with every
 *     WRITE and every other SNAP, whatever their ranges, and with nothing
 *     else: it RUNs once every write received before it has completed
 *     (the drain), and no write received after it RUNs until it
 *     completes (the capture), while reads, FLUSHes and NOPs go on.  So
 *     when it RUNs the storage holds exactly the writes received before
 *     P.  With r->fua (snapshot --sync) it is RUN with r->dsync, as a sync
 *     op of R5: the caller syncs the export inside its RUN, an error
 *     latches, and its REPLY waits for retirement; on a latched export
 *     such a SNAP is replied -EIO at once.  A SNAP never counts as a
 *     write for R7.
 *
 * The conflict relation (conflicts()) is symmetric and depends only on
 * fields fixed at submit and on the mode, so it evaluates identically at
 * submit and at release:
 *   barrier FLUSH on either side        -> conflict       (R4)
 *   SNAP and a WRITE or SNAP            -> conflict       (R8)
 *   SNAP and anything else              -> no conflict    (R8)
 *   FLUSH or NOP on either side         -> no conflict    (R1)
 *   effective ranges disjoint or empty  -> no conflict
 *   both READ                           -> no conflict
 *   ORDER_OVERLAP                 -> conflict       (R3)
 *   ORDER_RELAXED                 -> the R6 test
 *
 * Data structures.  s->active holds, in arrival order, every submitted
 * request from submit until it completes (RUN requests: sched_complete;
 * FLUSH: retirement).  r->wait counts the earlier active requests that
 * conflict with r; removing a request from active decrements the count of
 * every later conflicting one, and a count reaching 0 makes it runnable.
 * Sync ops in flight sit on s->sync_inflight (issue order, so start is
 * ascending), completed ones on s->sync_done (completion order).  A batch
 * sync's op is the sync member of the batch's first FLUSH, because several
 * completed batches may await retirement at once (R5).  r->note keeps,
 * for the engine's counters (N4 in engine/stats.c), what happened to r:
 * why it waited, and how a FLUSH was answered; only bits are set.
 *
 * Request states (r->state):
 *   READ/WRITE/SNAP: WAIT -> RUN -> [SYNCED, dsync only] -> REPLIED
 *   FLUSH:      WAIT -> BATCH_WAIT -> BATCH_RUN -> RETIRING -> REPLIED
 *   a request refused by the latch, a NOP and an unsafe FLUSH go straight
 *   to REPLIED.
 */
#include "engine/sched.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum rq_state {
	RQ_NEW = 0, /* being submitted */
	RQ_WAIT, /* in active, wait > 0 */
	RQ_RUN, /* RUN emitted, in active until sched_complete */
	RQ_SYNCED, /* dsync write completed, awaiting retirement (R5) */
	RQ_BATCH_WAIT, /* FLUSH in s->batch_wait (R1) */
	RQ_BATCH_RUN, /* FLUSH covered by the running sync (R1) */
	RQ_RETIRING, /* FLUSH whose sync completed, awaiting R5 */
	RQ_REPLIED, /* REPLY emitted: untouched once the call returns */
};

static void out_append(struct sched_out *o, struct sched_req *r,
		       enum sched_action action)
{
	/* A request appears at most once in one sched_out. */
	assert(!list_linked(&r->out_node));
	r->action = action;
	list_add_tail(&o->reqs, &r->out_node);
}

static void run(struct sched_req *r, struct sched_out *o)
{
	r->state = RQ_RUN;
	out_append(o, r, SCHED_RUN);
}

static void reply(struct sched *s, struct sched_req *r, int status,
		  struct sched_out *o)
{
	assert(r->state != RQ_REPLIED);
	assert(s->n_pending > 0);
	r->state = RQ_REPLIED;
	r->status = status;
	s->n_pending--;
	out_append(o, r, SCHED_REPLY);
}

/* R5: from now on no durability is claimed. */
static void latch(struct sched *s)
{
	s->failed = true;
	s->stats.failed_latch = 1;
}

/* R6: the byte range a request owns; an empty range never intersects. */
static void set_range(const struct sched *s, struct sched_req *r)
{
	uint64_t mask = (uint64_t)s->align - 1;
	uint64_t end;

	if (__builtin_add_overflow(r->off, r->len, &end))
		end = UINT64_MAX;
	r->lo = r->off;
	r->hi = r->len ? end : r->off;
	if (r->len && r->kind == SCHED_WRITE && r->rmw) {
		r->lo &= ~mask;
		r->hi = end > UINT64_MAX - mask ? UINT64_MAX
						: (end + mask) & ~mask;
	}
}

static bool intersect(const struct sched_req *a, const struct sched_req *b)
{
	return a->lo < a->hi && b->lo < b->hi && a->lo < b->hi && b->lo < a->hi;
}

/* R4: a and b conflict because one of them is a barrier FLUSH. */
static bool is_barrier(const struct sched *s, const struct sched_req *a,
		       const struct sched_req *b)
{
	return s->flush == FLUSH_BARRIER &&
	       (a->kind == SCHED_FLUSH || b->kind == SCHED_FLUSH);
}

/* The conflict relation: see the table at the top of the file. */
static bool conflicts(const struct sched *s, const struct sched_req *a,
		      const struct sched_req *b)
{
	if (is_barrier(s, a, b))
		return true; /* R4 */
	if (a->kind == SCHED_SNAP || b->kind == SCHED_SNAP) {
		const struct sched_req *o = a->kind == SCHED_SNAP ? b : a;

		return o->kind == SCHED_WRITE || o->kind == SCHED_SNAP; /* R8 */
	}
	if (a->kind == SCHED_FLUSH || a->kind == SCHED_NOP ||
	    b->kind == SCHED_FLUSH || b->kind == SCHED_NOP)
		return false; /* R1: a FLUSH orders nothing */
	if (!intersect(a, b))
		return false;
	if (a->kind == SCHED_READ && b->kind == SCHED_READ)
		return false;
	if (s->order == ORDER_OVERLAP)
		return true; /* R3 */
	/* R6 */
	if (a->kind == SCHED_WRITE && b->kind == SCHED_WRITE &&
	    (a->rmw || b->rmw))
		return true;
	return (a->strict && b->kind == SCHED_WRITE) ||
	       (b->strict && a->kind == SCHED_WRITE);
}

/* R5: a sync op is issued; it joins the in-flight list in start order. */
static void op_issue(struct sched *s, struct sched_syncop *op,
		     struct sched_req *req)
{
	op->start = ++s->clock;
	op->done_at = 0;
	op->res = 0;
	op->req = req;
	list_add_tail(&s->sync_inflight, &op->node);
}

/* R5: a sync op completed; it waits on the done list for retirement. */
static void op_done(struct sched *s, struct sched_syncop *op, int res)
{
	list_del(&op->node);
	op->res = res;
	op->done_at = s->clock;
	list_add_tail(&s->sync_done, &op->node);
}

static void release(struct sched *s, const struct sched_req *r,
		    struct list_node *first, struct sched_out *o);

/* R1, R7: issue op as the running batch sync; one fdatasync. */
static void sync_issue(struct sched *s, struct sched_syncop *op,
		       struct sched_req *leader, struct sched_out *o)
{
	assert(!s->sync_running);
	op_issue(s, op, leader);
	op->wmark = s->wdone;
	s->run_op = op;
	s->sync_running = true;
	s->stats.syncs++;
	o->sync = true;
}

/* R1: the waiting batch becomes the running batch. */
static void sync_start(struct sched *s, struct sched_out *o)
{
	struct sched_req *leader =
		list_entry(s->batch_wait.next, struct sched_req, batch_node);
	struct list_node *n;

	assert(!list_empty(&s->batch_wait));
	/* R5: the batch's sync op, and so the batch, live in its first
	   FLUSH. */
	list_init(&leader->sync.batch);
	while ((n = list_pop(&s->batch_wait))) {
		list_entry(n, struct sched_req, batch_node)->state =
			RQ_BATCH_RUN;
		list_add_tail(&leader->sync.batch, n);
	}
	sync_issue(s, &leader->sync, leader, o);
}

/* R7: f needs no sync of its own; it leaves s->active replied. */
static void flush_reply_now(struct sched *s, struct sched_req *f,
			    struct sched_out *o)
{
	struct list_node *first = f->node.next;

	list_del(&f->node);
	reply(s, f, 0, o);
	release(s, f, first, o);
}

/* R1, R7: a runnable FLUSH joins a batch, or needs none. */
static void batch_add(struct sched *s, struct sched_req *f, struct sched_out *o)
{
	if (s->flush == FLUSH_SYNC && s->durable_wmark == s->wdone) {
		s->stats.flush_clean++;
		f->note |= SCHED_NOTE_CLEAN;
		flush_reply_now(s, f, o); /* R7 clean */
		return;
	}
	if (s->flush == FLUSH_SYNC && s->sync_running &&
	    s->run_op->wmark == s->wdone) {
		struct sched_syncop *op = s->run_op; /* R7 join */

		s->stats.flush_joined++;
		f->note |= SCHED_NOTE_JOINED;
		f->state = RQ_BATCH_RUN;
		list_add_tail(&op->batch, &f->batch_node);
		if (!op->req)
			op->req = f;
		return;
	}
	f->state = RQ_BATCH_WAIT;
	list_add_tail(&s->batch_wait, &f->batch_node);
	if (!s->sync_running)
		sync_start(s, o);
}

/*
 * R7 early: the moving average of writes between FLUSHes (x16) at or
 * under which the last pending write's completion starts a sync.
 */
#define EARLY_WPF16 24 /* 1.5 writes per FLUSH */
#define EARLY_RUN 2 /* more writes than this with no FLUSH: stop guessing */
#define WPF_CAP 64 /* one long run of writes counts as this many */

static void early_sync(struct sched *s, struct sched_out *o)
{
	if (!s->early_on || s->flush != FLUSH_SYNC || s->failed ||
	    s->sync_running || s->w_pending || !s->w_since_flush ||
	    s->w_since_flush > EARLY_RUN || s->wpf16 > EARLY_WPF16 ||
	    s->durable_wmark == s->wdone || list_linked(&s->early.node))
		return;
	list_init(&s->early.batch);
	sync_issue(s, &s->early, NULL, o);
	s->stats.early_syncs++;
}

/* R7: a FLUSH arrived: fold the writes since the last one in. */
static void count_flush(struct sched *s)
{
	uint32_t n = s->w_since_flush < WPF_CAP ? s->w_since_flush : WPF_CAP;

	s->wpf16 = (s->wpf16 + n * 16) / 2;
	s->w_since_flush = 0;
}

/* R7: a write left the scheduler's hands. */
static void count_write_done(struct sched *s, const struct sched_req *r)
{
	if (r->kind != SCHED_WRITE)
		return;
	assert(s->w_pending > 0);
	s->w_pending--;
	s->wdone++;
}

/* r's conflicts have all completed: let it go. */
static void make_runnable(struct sched *s, struct sched_req *r,
			  struct sched_out *o)
{
	assert(r->wait == 0);
	switch (r->kind) {
	case SCHED_READ:
		run(r, o);
		break;
	case SCHED_WRITE:
	case SCHED_SNAP:
		/* R2; unsafe mode ignores FUA.  R8: a SNAP's sync is asked
		   for by name (snapshot --sync), so it is kept. */
		r->dsync = r->fua &&
			   (s->flush != FLUSH_UNSAFE || r->kind == SCHED_SNAP);
		if (r->dsync) {
			op_issue(s, &r->sync, r); /* R5 */
			s->stats.dsync_writes++;
		}
		run(r, o);
		break;
	case SCHED_FLUSH:
		assert(s->flush != FLUSH_UNSAFE); /* replied at submit */
		batch_add(s, r, o); /* R1, R4 */
		break;
	default:
		abort();
	}
}

/*
 * r left s->active: every later request that counted r in its wait (those
 * that conflict with r, R3/R4/R6) has one blocker less.  first is the
 * request that followed r in s->active.  make_runnable() never unlinks
 * from s->active, so walking on is safe.
 */
static void release(struct sched *s, const struct sched_req *r,
		    struct list_node *first, struct sched_out *o)
{
	struct list_node *n;

	for (n = first; n != &s->active; n = n->next) {
		struct sched_req *q = list_entry(n, struct sched_req, node);

		if (!conflicts(s, r, q))
			continue;
		/* q arrived while r was active, so it counted r. */
		assert(q->wait > 0);
		if (--q->wait == 0)
			make_runnable(s, q, o);
	}
}

/*
 * R5: a completed batch retires: its FLUSHes reply and leave s->active.
 * The batch is moved off its op first: once replied, the leader that
 * holds the op is not written again.
 */
static void batch_retire(struct sched *s, struct sched_syncop *op, int status,
			 struct sched_out *o)
{
	struct list_node batch, *n, *first;

	if (status == 0)
		s->durable_wmark = op->wmark; /* R7 */
	list_init(&batch);
	while ((n = list_pop(&op->batch)))
		list_add_tail(&batch, n);
	while ((n = list_pop(&batch))) {
		struct sched_req *f =
			list_entry(n, struct sched_req, batch_node);

		assert(f->state == RQ_RETIRING);
		first = f->node.next;
		list_del(&f->node);
		f->note |= SCHED_NOTE_SYNCED;
		reply(s, f, status, o);
		/* R4: a barrier FLUSH releases everything after it. */
		release(s, f, first, o);
	}
}

/*
 * R5: retire completed sync ops, in completion order, while no op that
 * overlapped the head in time (start <= head's done_at) is still in flight.
 * s->sync_inflight is in start order, so its head has the smallest start.
 * done_at is ascending along s->sync_done, so once the head must wait all
 * others must too.  Ops issued by the releases below start after every
 * done_at on the list and so never hold it.
 */
static void retire(struct sched *s, struct sched_out *o)
{
	struct sched_syncop *op, *oldest;
	int status;

	while ((op = list_first_entry(&s->sync_done, struct sched_syncop,
				      node))) {
		oldest = list_first_entry(&s->sync_inflight,
					  struct sched_syncop, node);
		if (oldest && oldest->start <= op->done_at)
			break;
		list_del(&op->node);
		status = op->res ? op->res : s->failed ? -EIO : 0;
		if (op->req && (op->req->kind == SCHED_WRITE ||
				op->req->kind == SCHED_SNAP)) {
			assert(op->req->state == RQ_SYNCED);
			reply(s, op->req, status, o); /* R2 */
		} else {
			batch_retire(s, op, status, o); /* R1, R7 */
		}
	}
}

void sched_init(struct sched *s, enum order_mode order, enum flush_mode flush,
		uint32_t align)
{
	assert(align >= 1 && (align & (align - 1)) == 0);
	memset(s, 0, sizeof(*s));
	s->order = order;
	s->flush = flush;
	s->align = align;
	s->durable_wmark = UINT64_MAX; /* R7: no sync yet */
	s->wpf16 = WPF_CAP * 16;
	list_init(&s->active);
	list_init(&s->batch_wait);
	list_init(&s->sync_inflight);
	list_init(&s->sync_done);
}

void sched_set_early(struct sched *s, bool on)
{
	s->early_on = on;
}

void sched_out_init(struct sched_out *o)
{
	list_init(&o->reqs);
	o->sync = false;
}

struct sched_req *sched_out_pop(struct sched_out *o)
{
	struct list_node *n = list_pop(&o->reqs);

	return n ? list_entry(n, struct sched_req, out_node) : NULL;
}

void sched_submit(struct sched *s, struct sched_req *r, struct sched_out *o)
{
	struct list_node *n;

	r->action = 0;
	r->dsync = false;
	r->note = 0;
	r->status = 0;
	r->node.next = r->out_node.next = r->batch_node.next = NULL;
	r->seq = ++s->seq;
	r->wait = 0;
	r->state = RQ_NEW;
	set_range(s, r);
	s->stats.submitted++;
	s->n_pending++;
	if (s->n_pending > s->stats.max_pending)
		s->stats.max_pending = s->n_pending;

	switch (r->kind) {
	case SCHED_NOP:
		reply(s, r, 0, o);
		return;
	case SCHED_FLUSH:
		if (s->failed) {
			reply(s, r, -EIO, o); /* R5 */
			return;
		}
		if (s->flush == FLUSH_UNSAFE) {
			reply(s, r, 0, o); /* claims what it did not do */
			return;
		}
		count_flush(s); /* R7 */
		break;
	case SCHED_WRITE:
		if (s->failed) {
			reply(s, r, -EIO, o); /* R5 */
			return;
		}
		s->w_pending++; /* R7 */
		s->w_since_flush++;
		break;
	case SCHED_READ:
		break;
	case SCHED_SNAP:
		if (s->failed && r->fua) {
			reply(s, r, -EIO, o); /* R8, R5 */
			return;
		}
		break;
	default:
		abort();
	}

	/* R3, R4, R6, R8: count the earlier requests r must wait for. */
	list_for_each(n, &s->active)
	{
		const struct sched_req *a =
			list_entry(n, struct sched_req, node);

		if (!conflicts(s, a, r))
			continue;
		r->wait++;
		r->note |= is_barrier(s, a, r) ? SCHED_NOTE_BARRIER
					       : SCHED_NOTE_OVERLAP;
	}
	list_add_tail(&s->active, &r->node);
	if (r->wait) {
		r->state = RQ_WAIT;
		s->stats.waited++;
		return;
	}
	make_runnable(s, r, o);
}

void sched_complete(struct sched *s, struct sched_req *r, int res,
		    struct sched_out *o)
{
	struct list_node *first;

	assert(r->state == RQ_RUN);
	s->stats.completed++;
	count_write_done(s, r); /* R7 */
	if (r->dsync) {
		/* R2, R5: the reply waits for retirement. */
		r->state = RQ_SYNCED;
		op_done(s, &r->sync, res);
		if (res)
			latch(s); /* R5: may be another page's writeback error */
		retire(s, o);
	} else {
		reply(s, r, res, o);
	}
	/*
	 * Ordering is about execution, not durability: release now.  Only
	 * now is r's successor in s->active read, because retire() may just
	 * have unlinked FLUSHes that followed r.
	 */
	first = r->node.next;
	list_del(&r->node);
	release(s, r, first, o);
	early_sync(s, o); /* R7 */
}

void sched_fail(struct sched *s, struct sched_req *r, int err,
		struct sched_out *o)
{
	struct list_node *first;

	assert(r->state == RQ_RUN && err < 0);
	s->stats.completed++;
	count_write_done(s, r); /* R7 */
	if (r->dsync) {
		/* R5: no sync ran; the op claims nothing and latches nothing.
		   Others may have waited for it to retire. */
		list_del(&r->sync.node);
		retire(s, o);
	}
	reply(s, r, err, o);
	first = r->node.next;
	list_del(&r->node);
	release(s, r, first, o);
}

void sched_sync_done(struct sched *s, int res, struct sched_out *o)
{
	struct sched_syncop *op = s->run_op;
	struct list_node *n;

	assert(s->sync_running && op);
	s->run_op = NULL;
	s->sync_running = false;
	list_for_each(n, &op->batch)
	{
		list_entry(n, struct sched_req, batch_node)->state =
			RQ_RETIRING;
	}
	op_done(s, op, res);
	if (res)
		latch(s); /* R5 */
	retire(s, o);
	/* R1: flushes that arrived during the sync get the next one. */
	if (!list_empty(&s->batch_wait) && !s->sync_running)
		sync_start(s, o);
}

bool sched_failed(const struct sched *s)
{
	return s->failed;
}

uint32_t sched_pending(const struct sched *s)
{
	return s->n_pending;
}
