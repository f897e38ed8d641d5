/* SPDX-License-Identifier: MIT */
/*
 * request.c: the life of one request in the engine (request.h):
 *
 *   pool (req_alloc) -> req_dispatch: recorder RECV, sched_submit
 *   -> RUN: req_act starts its I/O (fault injection, then the backend's
 *      submit) -> bio_done/bio_fail -> sched_complete/sched_fail
 *   -> REPLY: recorder REPLY, header encoded (proto.c P1), queued on the
 *      connection -> sent -> req_free.
 *
 * E1. A write is replied to only after its bio completed in full (the
 *     backend never reports a short transfer as done, B4).  This is what
 *     makes R1 hold: the sync for a flush runs after the flush was
 *     received, so it covers every write replied to before.
 * E3. A busy connection is not confined to one core: once it has more
 *     than SPREAD_AFTER requests in flight, the I/O of its READs and WRITEs
 *     of SPREAD_MIN bytes or more runs round-robin on every worker's ring;
 *     the reply goes back to the connection's own worker.
 * E5. Errors and the latch.  A bio that fails in a step that syncs (B3:
 *     bio_done) reports through sched_complete, which latches on error
 *     (R5); one that fails before any such step (bio_fail) goes through
 *     sched_fail: that request is answered and nothing latches.
 * E10. BLOCK_STATUS answers one chunk per context the connection selected
 *     (P1 in nbd/proto.c): base:allocation from the backend's extents
 *     (BIO_EXTENTS), a checkpoint's qemu:dirty-bitmap from its map in
 *     memory (dirty_extents), each rounded to the minimum block size (P2),
 *     the map read when the request RUNs, so every write received before
 *     it has been marked (engine/dirty.h).  With the dirty bitmap alone
 *     the backend is not called: the request completes at once, and
 *     fault injection (--inject, which stands for the backend's I/O) does
 *     not apply to it.  A failure of either context is one error for the
 *     request.
 */
#include "engine/request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conn.h"
#include "engine/dirty.h"
#include "engine/export.h"
#include "engine/inject.h"
#include "engine/queue.h"
#include "engine/recorder.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "engine/tsan.h"
#include "nbd/nbd.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rounding.h"

/* E3.  Measured on 2 vCPUs (docs/design.md): below 64 KiB the hand-over
   costs more than the copy. */
#define SPREAD_AFTER 8
#define SPREAD_MIN (64 * 1024)
#define MAX_EXTENTS 1024 /* BLOCK_STATUS descriptors per reply */
#define REQ_ONE_RAW 16 /* raw extents looked at for REQ_ONE (P2) */
/* E10: the longest dirty run asked for: a multiple of any granularity
   that fits an NBD descriptor's 32-bit length. */
#define DIRTY_MAX_RUN ((uint64_t)1 << 31)
#define KEEP_REQS 64 /* spare requests a connection keeps */

/* ---------------------------------------------------------------- */
/* The pool.                                                          */

static void *alloc_aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len ? len : 1))
		return NULL;
	return p;
}

struct req *req_alloc(struct conn *c)
{
	struct list_node *n = list_pop(&c->free_reqs);
	struct req *r;

	if (n) {
		r = list_entry(n, struct req, node);
		c->n_free--;
		c->free_bytes -= r->cap;
		uint8_t *buf = r->buf;
		size_t cap = r->cap;

		memset(r, 0, sizeof *r);
		r->buf = buf;
		r->cap = cap;
	} else {
		r = calloc(1, sizeof *r);
		if (!r)
			return NULL;
	}
	r->conn = c;
	r->t_recv = c->rx_ns; /* N5: its header came with the last recv */
	c->inflight++;
	stats_in_flight(&c->st.b, c->inflight);
	return r;
}

int req_reserve(struct req *r, size_t len)
{
	if (r->buf && r->cap >= len)
		return 0;
	free(r->buf);
	r->buf = alloc_aligned(len);
	r->cap = r->buf ? len : 0;
	return r->buf ? 0 : -ENOMEM;
}

/*
 * Recycled buffers per connection, in bytes.  Large buffers are kept too:
 * allocating and freeing 1 MiB per request costs a page fault per 4 KiB
 * touched (bench/README.md).
 */
#define KEEP_BYTES_MAX ((size_t)16 << 20)

void req_free(struct req *r)
{
	struct conn *c = r->conn;

	free(r->ext);
	r->ext = NULL;
	c->inflight--;
	stats_in_flight(&c->st.b, c->inflight);
	c->inflight_bytes -= r->held;
	if (c->free_bytes + r->cap > KEEP_BYTES_MAX) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
	if (c->n_free < KEEP_REQS) {
		list_add_head(&c->free_reqs, &r->node);
		c->n_free++;
		c->free_bytes += r->cap;
	} else {
		free(r->buf);
		free(r);
	}
	conn_request_done(c);
}

void req_pool_drain(struct list_node *free_reqs)
{
	struct list_node *n;

	while ((n = list_pop(free_reqs))) {
		struct req *r = list_entry(n, struct req, node);

		free(r->buf);
		free(r);
	}
}

/*
 * READ and WRITE: the aligned data window of B5 (with one more block for
 * an unaligned WRITE's read-modify-write, F2), counted in the
 * connection's budget (C2).  0 or -ENOMEM.
 */
int req_prepare(struct req *r)
{
	struct conn *c = r->conn;
	uint32_t a = c->exp->io_align;
	uint64_t off = r->nr.offset, end = off + r->nr.length;
	uint64_t lo = round_down(off, a), hi = round_up(end, a);
	bool rmw = r->nr.type == NBD_CMD_WRITE && (lo != off || hi != end);

	if (req_reserve(r, hi - lo + (rmw ? a : 0)) < 0)
		return -ENOMEM;
	r->held = hi - lo;
	c->inflight_bytes += r->held;
	r->io.buf = r->buf;
	r->io.data = r->buf + (off - lo);
	r->io.bounce = rmw ? r->buf + (hi - lo) : NULL;
	r->s.rmw = rmw; /* R6 */
	return 0;
}

/* ---------------------------------------------------------------- */
/* The scheduler.                                                     */

/* E3: a request's I/O runs on r->iow; its reply is sent by its owner. */
static struct queue *event_target(struct req *r)
{
	return r->s.action == SCHED_RUN ? r->iow : r->conn->q;
}

void engine_events(struct queue *q, struct sched_out *o, struct export *exp)
{
	struct sched_req *s;

	while ((s = sched_out_pop(o))) {
		struct req *r;
		struct queue *to;

		if (unlikely(snapshot_event(exp, s))) /* R8, I2 */
			continue;
		r = container_of(s, struct req, s);
		to = event_target(r);

		if (to == q)
			queue_run(q, r);
		else
			queue_handoff(q, r, to);
	}
	if (o->sync)
		export_sync_defer(exp, q); /* E8 */
}

static enum sched_kind kind_of(const struct req *r)
{
	const struct export *exp = r->conn->exp;

	switch (r->nr.type) {
	case NBD_CMD_READ:
		return r->nr.length ? SCHED_READ : SCHED_NOP;
	case NBD_CMD_CACHE: /* B6: some backends have nothing to warm */
		return exp->b->info.can_cache && r->nr.length ? SCHED_READ
							      : SCHED_NOP;
	case NBD_CMD_BLOCK_STATUS:
		return SCHED_READ;
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		return r->nr.length ? SCHED_WRITE : SCHED_NOP;
	case NBD_CMD_FLUSH:
		return SCHED_FLUSH;
	}
	abort();
}

void req_dispatch(struct req *r)
{
	struct conn *c = r->conn;
	struct export *exp = c->exp;
	struct sched_out o;
	struct recorder_prep prep;
	uint16_t t = r->nr.type;

	r->iow = c->q;
	if (queue_count() > 1 && c->inflight > SPREAD_AFTER &&
	    r->nr.length >= SPREAD_MIN &&
	    (t == NBD_CMD_READ || t == NBD_CMD_WRITE)) /* E3 */
		r->iow = queue_of((c->q->idx + c->spread++) % queue_count());
	r->s.off = r->nr.offset;
	r->s.len = r->nr.length;
	r->s.fua = r->nr.flags & NBD_CMD_FLAG_FUA;
	r->s.kind = (uint8_t)kind_of(r);
	r->s.strict = t == NBD_CMD_BLOCK_STATUS; /* R6: never a hole under a
						    write */
	sched_out_init(&o);
	if (unlikely(exp->rec)) /* K2: the payload's hash, unlocked */
		recorder_prepare(&r->nr, r->io.data, &prep);
	pthread_mutex_lock(&exp->lock);
	/* K1: recorded under the lock, so the trace's order is the order
	   in which the scheduler saw the requests. */
	if (unlikely(exp->rec)) {
		recorder_recv(exp->rec, c->id, &r->nr, r->io.data, &prep);
		r->recorded = true;
	}
	if (r->s.kind == SCHED_WRITE) {
		/* W1: a checkpoint made under the lock splits the writes
		   exactly; I2: what a snapshot's capture holds. */
		if (unlikely(exp->dirty && dirty_set_active(exp->dirty)))
			dirty_mark(exp->dirty, r->nr.offset, r->nr.length);
		if (unlikely(snapshot_holding(exp->snap)))
			snapshot_note_held(exp->snap);
	}
	sched_submit(&exp->sched, &r->s, &o);
	pthread_mutex_unlock(&exp->lock);
	engine_events(c->q, &o, exp);
}

/* ---------------------------------------------------------------- */
/* I/O.                                                               */

static void bio_setup(struct req *r, struct queue *q)
{
	struct bio *io = &r->io;
	uint16_t f = r->nr.flags;

	io->off = r->nr.offset;
	io->len = r->nr.length;
	io->fua = r->s.dsync; /* R2 */
	io->no_hole = f & NBD_CMD_FLAG_NO_HOLE;
	io->fast = f & NBD_CMD_FLAG_FAST_ZERO;
	io->q = q;
	switch (r->nr.type) {
	case NBD_CMD_READ:
		io->op = BIO_READ;
		break;
	case NBD_CMD_WRITE:
		io->op = BIO_WRITE;
		break;
	case NBD_CMD_TRIM:
		io->op = BIO_TRIM;
		break;
	case NBD_CMD_WRITE_ZEROES:
		io->op = BIO_ZERO;
		break;
	case NBD_CMD_CACHE:
		io->op = BIO_CACHE;
		break;
	case NBD_CMD_BLOCK_STATUS:
		io->op = BIO_EXTENTS;
		io->max_ext =
			(f & NBD_CMD_FLAG_REQ_ONE) ? REQ_ONE_RAW : MAX_EXTENTS;
		break;
	default:
		abort();
	}
}

static void submit(struct req *r)
{
	struct export *exp = r->conn->exp;
	struct queue *q = r->io.q;
	unsigned int before = q->dones;

	q->bios++; /* queue_idle(), E7 */
	r->started = true;
	if (r->io.op == BIO_EXTENTS) {
		r->io.ext = malloc(r->io.max_ext * sizeof *r->io.ext);
		if (!r->io.ext) {
			bio_fail(&r->io, -ENOMEM);
			return;
		}
	}
	if (r->s.kind == SCHED_WRITE) /* I4: a snapshot's old blocks */
		snapshot_before_write(exp->snap, r->nr.offset, r->nr.length);
	exp->b->ops->submit(exp->b, &r->io);
	/* E7: r may be gone; did its bio complete inline? */
	queue_count_inline(q, before);
}

static void on_delay(struct ring_cb *cb, int res)
{
	submit(container_of(cb, struct req, delay_cb));
}

static enum inject_op inject_op_of(uint8_t op)
{
	static const enum inject_op map[] = {
		[BIO_READ] = INJ_READ,	 [BIO_WRITE] = INJ_WRITE,
		[BIO_TRIM] = INJ_TRIM,	 [BIO_ZERO] = INJ_ZERO,
		[BIO_CACHE] = INJ_CACHE, [BIO_EXTENTS] = INJ_STATUS,
	};

	return map[op];
}

/* RUN: the I/O starts, after any injected delay or error (tests). */
static void start_io(struct queue *q, struct req *r)
{
	bio_setup(r, q);
	if (r->io.op == BIO_EXTENTS && !r->conn->view.meta_alloc) {
		bio_done(&r->io, 0); /* E10: the dirty bitmap alone */
		return;
	}
	if (unlikely(inject_enabled)) {
		unsigned int delay;
		int err;

		inject_match(inject_op_of(r->io.op), r->nr.offset, r->nr.length,
			     &delay, &err);
		if (err) {
			bio_done(&r->io, err); /* a data-path error */
			return;
		}
		if (delay) {
			r->delay_cb.fn = on_delay;
			queue_timer(q, &r->delay_cb, &r->ts, delay);
			return;
		}
	}
	submit(r);
}

/*
 * E10: the chunk of the dirty bitmap: the map's runs over the request,
 * rounded (P2) into out (at most max).  How many; 0 only on a bug.  raw
 * and dx hold n_raw extents each.
 */
static uint32_t dirty_chunk(const struct req *r, struct proto_extent *raw,
			    struct dirty_extent *dx, uint32_t n_raw,
			    struct proto_extent *out, uint32_t max)
{
	const struct conn *c = r->conn;
	const struct export *exp = c->exp;
	uint32_t i, n;

	n = dirty_extents(exp->dirty, c->dirty_map, r->nr.offset, r->nr.length,
			  DIRTY_MAX_RUN, dx, n_raw);
	for (i = 0; i < n; i++) {
		raw[i].len = dx[i].len;
		raw[i].flags = dx[i].dirty ? NBD_STATE_DIRTY : 0;
	}
	return proto_align_dirty(raw, n, r->nr.offset,
				 r->nr.offset + r->nr.length, exp->min_block,
				 out, max);
}

/*
 * BLOCK_STATUS (E10): a chunk per selected context, base:allocation from
 * the backend's extents, then the dirty bitmap, each rounded (P2); encoded
 * into r->ext, after the first chunk's header (P1).  0, -ENOMEM, or -EIO
 * for a context that gave no extent.
 */
static int encode_extents(struct req *r)
{
	const struct conn *c = r->conn;
	const struct export *exp = c->exp;
	bool one = r->nr.flags & NBD_CMD_FLAG_REQ_ONE;
	uint32_t max = one ? 1 : MAX_EXTENTS;
	uint32_t n_dirty = one ? REQ_ONE_RAW : MAX_EXTENTS;
	const struct proto_extent *ext[PROTO_STATUS_CHUNKS];
	struct proto_extent *raw, *out;
	struct dirty_extent *dx = NULL;
	uint32_t i, n, k = 0, total = 0;
	size_t n_raw = c->view.meta_alloc ? r->io.n_ext : 0;
	int ret = -ENOMEM;

	if (c->dirty_map && n_raw < n_dirty)
		n_raw = n_dirty;
	raw = calloc(n_raw + (size_t)PROTO_STATUS_CHUNKS * max, sizeof *raw);
	if (!raw)
		return -ENOMEM;
	out = raw + n_raw;
	if (c->dirty_map && !(dx = calloc(n_dirty, sizeof *dx)))
		goto out_free;
	if (c->view.meta_alloc) {
		for (i = 0; i < r->io.n_ext; i++) {
			raw[i].len = r->io.ext[i].len;
			raw[i].flags = r->io.ext[i].hole
					       ? NBD_STATE_HOLE | NBD_STATE_ZERO
					       : 0;
		}
		n = proto_align_extents(raw, r->io.n_ext, r->nr.offset,
					r->nr.offset + r->nr.length,
					exp->min_block, out, max);
		r->st[k] = (struct proto_status_chunk){c->meta_id, n};
		ext[k++] = out;
		total += n;
	}
	if (c->dirty_map) {
		n = dirty_chunk(r, raw, dx, n_dirty, out + max, max);
		r->st[k] = (struct proto_status_chunk){c->dirty_id, n};
		ext[k++] = out + max;
		total += n;
	}
	ret = -EIO; /* E10: no context (never valid), or one without extents */
	if (!k)
		goto out_free;
	for (i = 0; i < k; i++)
		if (!r->st[i].n_extents)
			goto out_free;
	ret = -ENOMEM;
	r->ext = malloc(proto_status_payload_size(total, k));
	if (!r->ext)
		goto out_free;
	r->n_st = (uint8_t)k;
	r->ext_len = proto_encode_status_payload(r->ext, r->nr.cookie, r->st,
						 ext, k);
	ret = 0;
out_free:
	free(dx);
	free(raw);
	return ret;
}

/* The bio no longer counts against its queue's idleness (E7). */
static void bio_stopped(struct req *r)
{
	if (r->started) {
		r->started = false;
		r->io.q->bios--;
		r->io.q->dones++;
	}
}

/* N6: the FUA request whose failure latched the export. */
static const char *latch_op_of(uint16_t type)
{
	switch (type) {
	case NBD_CMD_TRIM:
		return "FUA TRIM";
	case NBD_CMD_WRITE_ZEROES:
		return "FUA WRITE_ZEROES";
	default:
		return "FUA WRITE";
	}
}

void bio_done(struct bio *io, int res)
{
	struct req *r = container_of(io, struct req, io);
	struct export *exp = r->conn->exp;
	struct sched_out o;
	bool latched;

	bio_stopped(r);
	if (io->op == BIO_EXTENTS) {
		int e = res ? res : encode_extents(r);

		free(io->ext);
		io->ext = NULL;
		if (e) {
			bio_fail(io,
				 e); /* E5: reading metadata syncs nothing */
			return;
		}
	}
	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	latched = !sched_failed(&exp->sched);
	sched_complete(&exp->sched, &r->s, res, &o);
	latched = latched && sched_failed(&exp->sched);
	if (unlikely(latched)) { /* N6: the first latch says why */
		exp->latch_err = -res;
		exp->latch_op = latch_op_of(r->nr.type);
	}
	pthread_mutex_unlock(&exp->lock);
	if (unlikely(latched)) /* R5: a FUA write failed; say so once */
		log_msg("export \"%s\": a FUA write failed: %s; the export "
			"no longer claims durability until restarted (writes "
			"and flushes get EIO)",
			exp->name, strerror(-res));
	engine_events(io->q, &o, exp);
}

void bio_fail(struct bio *io, int err)
{
	struct req *r = container_of(io, struct req, io);
	struct export *exp = r->conn->exp;
	struct sched_out o;

	bio_stopped(r);
	free(io->ext);
	io->ext = NULL;
	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	sched_fail(&exp->sched, &r->s, err, &o); /* E5 */
	pthread_mutex_unlock(&exp->lock);
	engine_events(io->q, &o, exp);
}

/* ---------------------------------------------------------------- */
/* Replies.                                                           */

static void queue_reply(struct req *r)
{
	struct conn *c = r->conn;
	int status = r->s.status;
	enum proto_payload pay;

	if (unlikely(log_verbose))
		log_msg("conn %u: %s cookie=%#llx off=%llu len=%u -> %s", c->id,
			proto_cmd_name(r->nr.type),
			(unsigned long long)r->nr.cookie,
			(unsigned long long)r->nr.offset, r->nr.length,
			status ? strerror(-status) : "ok");
	/* K1: the trace holds the reply before it can reach the client. */
	if (unlikely(r->recorded))
		recorder_reply(c->exp->rec, c->id, &r->nr, status);
	stats_reply(&c->st.b, &r->nr, r->s.note, status,
		    clock_ns(CLOCK_MONOTONIC) - r->t_recv); /* N4, N5 */
	if (!conn_alive(c)) {
		req_free(r);
		return;
	}
	r->hdr_len = (uint8_t)proto_encode_reply(
		r->hdr, &r->nr,
		proto_nbd_error(status, r->nr.flags & NBD_CMD_FLAG_FAST_ZERO),
		c->view.structured, r->st, r->n_st, &pay);
	r->payload = (uint8_t)pay;
	conn_push_reply(c, r);
}

void req_reply_error(struct conn *c, const struct nbd_request *nr, int err)
{
	struct req *r = req_alloc(c);

	if (!r) {
		log_msg("conn %u: out of memory for a reply; disconnecting",
			c->id);
		conn_abort(c);
		return;
	}
	r->nr = *nr;
	r->s.status = err;
	queue_reply(r);
}

void req_act(struct queue *q, struct req *r)
{
	if (r->s.action == SCHED_RUN)
		start_io(q, r); /* maybe another queue's request (E3) */
	else
		queue_reply(r);
}
