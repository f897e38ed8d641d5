/* SPDX-License-Identifier: MIT */
/*
 * worker.c: the I/O engine.
 *
 * Thread model:
 *  - srv->n_queues worker threads, each with its own io_uring.  No ring is
 *    shared.  A connection belongs to one worker (round-robin), which does
 *    all of its socket I/O and all file I/O of its requests.
 *  - The export's scheduler (sched.c) is shared by every connection of the
 *    export and protected by exp->lock.  A worker calls it with the lock
 *    held and acts on the events it returns after dropping the lock.
 *  - When the scheduler releases a request that belongs to another worker
 *    (a dependant of a request on this worker, or a flush covered by a sync
 *    this worker ran), the request is handed over with IORING_OP_MSG_RING:
 *    the owner gets a CQE carrying the request pointer.  No locks, no
 *    eventfd writes, no shared queues on the data path.
 *
 * Life of a request:
 *   recv header (+payload) -> proto_validate_request -> sched_submit
 *   -> RUN: file I/O SQE(s) -> CQE -> sched_complete
 *   -> REPLY: reply queued -> sendmsg (batched) -> request recycled.
 *
 * E1. A write is replied to only after its CQE reported the whole length
 *     written (short writes are resubmitted, never dropped).  This is what
 *     makes R1 in sched.c hold: the sync for a flush runs after the flush
 *     was received, so it covers every write replied to before.
 * E2. fdatasync and fallocate run as ordinary io_uring requests without
 *     IOSQE_IO_DRAIN or links: they never stall reads and writes.
 * E3. Unaligned requests on an O_DIRECT export go through a bounce buffer
 *     (reads) or read-modify-write of the surrounding blocks (writes); the
 *     scheduler keeps RMW exclusive on those blocks (R6).
 * E4, E5: see docs/design.md (inline I/O on memory-backed files; spreading
 *     a busy connection's large I/O over every worker).
 * E6. Shutdown.  A worker exits only once the server is stopping, nothing
 *     admitted is left (A3 in server.c: no connection lives that could
 *     hand it a request), and its own syncs and MSG_RINGs have completed.
 *     So a request that names a worker can never reach an exited one.
 *     After the grace period (workers_force) every connection is shut
 *     down: unsent replies are dropped, I/O in flight still completes.
 * E7. Errors and the latch.  A step that syncs (a write with RWF_DSYNC,
 *     the fdatasync after a FUA fallocate, a FLUSH's fdatasync) reports
 *     through sched_complete/sched_sync_done, which latch on error (R5).
 *     An error found before any such step (a refused argument, a short
 *     resource, a failed fallocate) goes through sched_fail: it is
 *     answered to that request and latches nothing.
 */
#include "engine/worker.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/inject.h"
#include "util/log.h"
#include "nbd/nbd.h"
#include "nbd/proto.h"
#include "trace/recorder.h"
#include "engine/sched.h"
#include "engine/tsan.h"
#include "backend/zero.h"

#define RING_ENTRIES 512
#define RXBUF_SIZE (64 * 1024)
#define MAX_INFLIGHT 256 /* requests per connection before we stop reading */
/*
 * Request bytes per connection before we stop reading (reading resumes
 * below half).  A client that stops reading its replies keeps them
 * queued; this bounds what it can pin (256 requests of 64 MiB would be
 * 16 GiB).  One request may exceed it.  16 MiB is what the peers allow
 * (qemu-nbd: 16 requests of up to 32 MiB; nbdkit: 16 threads): at 256
 * MiB, 64 connections at QD32 x 1 MiB peaked at 2.5 GiB, 3x the peers
 * (bench/run rss); at 16 MiB, throughput is the same.
 */
#define MAX_INFLIGHT_BYTES ((size_t)16 << 20)
#define IOV_BATCH 64 /* iovecs in one sendmsg */
/*
 * Recycled request buffers per connection, in bytes.  Large buffers are
 * kept too: allocating and freeing 1 MiB per request costs a page fault
 * per 4 KiB touched (half of the CPU of 1M sequential reads, measured).
 */
#define KEEP_BYTES_MAX MAX_INFLIGHT_BYTES /* more is never in use at once */
#define MAX_EXTENTS 1024 /* BLOCK_STATUS descriptors per reply */
#define ZERO_CHUNK (1024 * 1024)
#define SPREAD_AFTER 8 /* E5: in-flight requests before I/O spreads */
/* E5: smaller requests cost less to copy than to hand over (measured:
 * spreading 4 KiB requests cut QD32 IOPS by a third on 2 vCPUs). */
#define SPREAD_MIN (64 * 1024)
#define INLINE_MAX (128 * 1024) /* E4: larger copies go to io-wq */
/* A rejected WRITE payload up to this size is skipped; larger: hang up. */
#define MAX_SKIP ((uint64_t)4 * EXPORT_MAX_PAYLOAD)

/* user_data tags, in the low 3 bits of an 8-byte aligned pointer. */
enum tag {
	TAG_IO = 0, /* struct req: file I/O step */
	TAG_RECV = 1, /* struct conn */
	TAG_SEND = 2, /* struct conn */
	TAG_SYNC = 3, /* struct syncop */
	TAG_MSG = 4, /* struct req handed over by another worker */
	TAG_EVFD = 5, /* struct worker: eventfd read */
	TAG_DELAY = 6, /* struct req: injected delay expired */
	TAG_MSGSENT = 7, /* struct req: our MSG_RING SQE completed */
};

static inline uint64_t ud_make(void *p, enum tag t)
{
	assert(((uintptr_t)p & 7) == 0);
	return (uint64_t)(uintptr_t)p | t;
}
static inline enum tag ud_tag(uint64_t ud)
{
	return (enum tag)(ud & 7);
}
static inline void *ud_ptr(uint64_t ud)
{
	return (void *)(uintptr_t)(ud & ~(uint64_t)7);
}

/* Steps of a request's file I/O. */
enum step {
	ST_NONE,
	ST_READ, /* one read of [io_off, io_off+io_len) into buf */
	ST_WRITE, /* one write from buf */
	ST_RMW_HEAD, /* RMW: read the head block into blk */
	ST_RMW_TAIL, /* RMW: read the tail block into blk */
	ST_FALLOC, /* fallocate: r->zp (zero.c) */
	ST_ZERO_WRITE, /* writing zeros chunk by chunk */
	ST_FUA_SYNC, /* fdatasync after a FUA fallocate */
	ST_FADVISE,
};

struct worker;
struct conn;

struct req {
	struct sched_req s; /* must be first */
	struct conn *conn;
	struct worker *iow; /* runs its I/O: conn's worker, or another (E5) */
	struct req *wnext; /* run queue, tx queue or free list */
	struct nbd_request nr;
	uint8_t *buf; /* aligned data buffer (payload or read data) */
	size_t cap; /* allocated size of buf */
	uint8_t *data; /* client's bytes within buf */
	uint8_t *blk; /* one-block bounce for RMW */
	uint64_t io_off; /* current I/O step */
	size_t io_len, io_done;
	uint8_t step;
	bool fast_zero;
	struct zero_req zr; /* TRIM and WRITE_ZEROES (zero.c) */
	struct zero_plan zp; /* ... and the step being run */
	bool recorded; /* its RECV is in the trace: record its REPLY */
	uint32_t rx_got; /* payload bytes received */
	size_t held; /* bytes counted in conn->inflight_bytes */
	uint8_t hdr[32]; /* reply header */
	size_t hdr_len;
	uint8_t *ext; /* BLOCK_STATUS descriptors */
	size_t ext_len;
	struct __kernel_timespec ts; /* injected delay */
};

struct conn {
	struct conn *next; /* in worker->conns */
	struct worker *w;
	int fd;
	unsigned int id;
	struct export *exp;
	struct proto_view view;
	uint32_t meta_id;

	/* Receive side. */
	uint8_t *rxbuf;
	size_t rx_start, rx_end;
	struct req *rx_req; /* WRITE whose payload is arriving */
	uint64_t rx_skip; /* bytes of a rejected payload to discard */
	bool recv_inflight;
	bool rx_eof; /* client closed, error, or we stop reading */
	bool rx_paused; /* too many requests in flight */

	/* Send side. */
	struct req *tx_head, *tx_tail; /* replies waiting for a send */
	struct req *sending; /* replies in the send in flight */
	struct msghdr msg;
	struct iovec iov[IOV_BATCH];
	bool send_inflight;
	bool dirty; /* in worker->dirty list */
	struct conn *dirty_next;
	bool dead; /* socket broken: replies are dropped */
	bool recv_to_payload; /* the recv in flight fills rx_req */
	bool close_queued; /* in worker->closeq */
	struct conn *close_next;

	unsigned int inflight; /* requests allocated, not yet recycled */
	size_t inflight_bytes; /* their data buffers */
	unsigned int spread; /* E5 round-robin */
	struct req *free_reqs;
	unsigned int n_free;
	size_t free_bytes; /* buffer bytes held by free_reqs */
};

struct syncop {
	struct export *exp;
	struct __kernel_timespec ts;
	bool delayed;
};

struct worker {
	unsigned int idx;
	pthread_t thread;
	struct io_uring ring;
	bool disabled; /* created IORING_SETUP_R_DISABLED */
	int evfd;
	uint64_t evbuf;
	pthread_mutex_t lock; /* protects incoming, stop and force */
	struct pending_conn *incoming;
	bool stop;
	bool stopping; /* this thread has acted on stop */
	struct conn *conns;
	unsigned int pending_ops; /* syncs and MSG_RINGs not yet completed */
	struct req *runq_head, *runq_tail; /* RUN/REPLY to act on */
	struct conn *dirty;
	struct conn *closeq; /* connections that may have finished */
	uint8_t *zeros; /* ZERO_CHUNK of zeros, aligned */
	struct server *srv;
	bool force; /* workers_force(): the grace period is over (E6) */
	bool forced; /* this thread has acted on force */
};

struct pending_conn {
	struct pending_conn *next;
	int fd;
	bool tcp;
	struct hs_result hs;
};

static struct worker *workers;
static unsigned int n_workers;
static atomic_uint next_worker;
static atomic_uint next_conn_id;
static atomic_uint n_running; /* worker threads not yet exited */
static int done_fd = -1; /* eventfd: readable once every worker exited */

/* ---------------------------------------------------------------- */
/* Ring helpers.                                                     */

static struct io_uring_sqe *get_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&w->ring)))
		io_uring_submit(&w->ring);
	return sqe;
}

static void *alloc_aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len ? len : 1))
		return NULL;
	return p;
}

static void handle_events(struct worker *w, struct sched_out *o,
			  struct export *exp);
static void queue_reply(struct worker *w, struct req *r);
static void start_io(struct worker *w, struct req *r);
static void rx_process(struct conn *c);
static void want_close(struct conn *c);
static void conn_abort(struct conn *c);

/* ---------------------------------------------------------------- */
/* Requests.                                                         */

static struct req *req_alloc(struct conn *c)
{
	struct req *r = c->free_reqs;

	if (r) {
		c->free_reqs = r->wnext;
		c->n_free--;
		c->free_bytes -= r->cap;
		uint8_t *buf = r->buf;
		size_t cap = r->cap;
		uint8_t *blk = r->blk;

		memset(r, 0, sizeof *r);
		r->buf = buf;
		r->cap = cap;
		r->blk = blk;
	} else {
		r = calloc(1, sizeof *r);
		if (!r)
			return NULL;
	}
	r->conn = c;
	c->inflight++;
	return r;
}

/* Make sure r->buf holds at least len bytes. */
static int req_reserve(struct req *r, size_t len)
{
	if (r->buf && r->cap >= len)
		return 0;
	free(r->buf);
	r->buf = alloc_aligned(len);
	r->cap = r->buf ? len : 0;
	return r->buf ? 0 : -ENOMEM;
}

static void req_free(struct req *r)
{
	struct conn *c = r->conn;
	size_t held = r->held; /* r may be freed below */

	free(r->ext);
	r->ext = NULL;
	if (c->free_bytes + r->cap > KEEP_BYTES_MAX) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
	if (c->n_free < 64) {
		r->wnext = c->free_reqs;
		c->free_reqs = r;
		c->n_free++;
		c->free_bytes += r->cap;
	} else {
		free(r->buf);
		free(r->blk);
		free(r);
	}
	c->inflight--;
	c->inflight_bytes -= held;
	if (c->rx_paused && c->inflight < MAX_INFLIGHT / 2 &&
	    c->inflight_bytes < MAX_INFLIGHT_BYTES / 2) {
		c->rx_paused = false;
		rx_process(c);
	}
	want_close(c);
}

/* ---------------------------------------------------------------- */
/* Scheduler events.                                                 */

static void runq_push(struct worker *w, struct req *r)
{
	r->wnext = NULL;
	if (w->runq_tail)
		w->runq_tail->wnext = r;
	else
		w->runq_head = r;
	w->runq_tail = r;
}

/* E5: a request's I/O runs on r->iow; its reply is sent by its owner. */
static struct worker *event_target(struct req *r)
{
	return r->s.action == SCHED_RUN ? r->iow : r->conn->w;
}

static void send_msg(struct worker *w, struct req *r)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_msg_ring(sqe, event_target(r)->ring.ring_fd, 0,
			       ud_make(r, TAG_MSG), 0);
	io_uring_sqe_set_data64(sqe, ud_make(r, TAG_MSGSENT));
	w->pending_ops++;
	tsan_release(r); /* r is the target's now: see tsan.h */
}

static void submit_sync(struct worker *w, struct export *exp);

/*
 * Act on what the scheduler decided.  Called without exp->lock.  Our own
 * requests go to the run queue (drained by the loop, so that long chains of
 * dependants do not recurse); other workers' requests are handed over.
 */
static void handle_events(struct worker *w, struct sched_out *o,
			  struct export *exp)
{
	struct sched_req *s;

	while ((s = sched_out_pop(o))) {
		struct req *r = (struct req *)s;

		if (event_target(r) == w)
			runq_push(w, r);
		else
			send_msg(w, r);
	}
	if (o->sync)
		submit_sync(w, exp);
}

/* The I/O of r ended with res, after any step that syncs (E7). */
static void req_complete(struct worker *w, struct req *r, int res)
{
	struct export *exp = r->conn->exp;
	struct sched_out o;
	bool latched;

	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	latched = !sched_failed(&exp->sched);
	sched_complete(&exp->sched, &r->s, res, &o);
	latched = latched && sched_failed(&exp->sched);
	pthread_mutex_unlock(&exp->lock);
	if (unlikely(latched)) /* R5: a FUA write failed; say so once */
		log_msg("%s: a FUA write failed: %s; the export no longer "
			"claims durability until restarted (writes and "
			"flushes get EIO)",
			exp->path, strerror(-res));
	handle_events(w, &o, exp);
}

/* r failed with err before any step that syncs ran: no latch (E7). */
static void req_fail(struct worker *w, struct req *r, int err)
{
	struct export *exp = r->conn->exp;
	struct sched_out o;

	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	sched_fail(&exp->sched, &r->s, err, &o);
	pthread_mutex_unlock(&exp->lock);
	handle_events(w, &o, exp);
}

static void sync_complete(struct worker *w, struct export *exp, int res)
{
	struct sched_out o;

	if (res < 0)
		log_msg("%s: fdatasync failed: %s; the export no longer "
			"claims durability until restarted (writes and "
			"flushes get EIO)",
			exp->path, strerror(-res));
	if (unlikely(exp->rec))
		recorder_sync_end(exp->rec, res);
	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	sched_sync_done(&exp->sched, res, &o);
	pthread_mutex_unlock(&exp->lock);
	handle_events(w, &o, exp);
}

/*
 * Issue the export's batch sync (R1).  Its state lives in exp->sync_op,
 * made at start: the scheduler never runs two at once, and a sync that
 * cannot start for want of memory would be a lie either way.
 */
static void submit_sync(struct worker *w, struct export *exp)
{
	struct syncop *op = exp->sync_op;
	struct io_uring_sqe *sqe;
	unsigned int delay = 0;
	int err = 0;

	op->delayed = false;
	if (unlikely(inject_enabled))
		inject_match(INJ_SYNC, 0, 0, &delay, &err);
	if (unlikely(err)) {
		if (unlikely(exp->rec))
			recorder_sync_begin(exp->rec);
		sync_complete(w, exp, err);
		return;
	}
	if (exp->mem_backed && !delay) {
		/*
		 * E4: fdatasync of a memory-backed file returns at once (there
		 * is no device), but io_uring would still hand it to an io-wq
		 * thread.  Run it here.
		 */
		int res;

		if (unlikely(exp->rec))
			recorder_sync_begin(exp->rec);
		res = fdatasync(exp->fd) < 0 ? -errno : 0;
		sync_complete(w, exp, res);
		return;
	}
	sqe = get_sqe(w);
	if (unlikely(delay)) {
		op->delayed = true;
		op->ts.tv_sec = delay / 1000;
		op->ts.tv_nsec = (long long)(delay % 1000) * 1000000;
		io_uring_prep_timeout(sqe, &op->ts, 0, 0);
	} else {
		if (unlikely(exp->rec))
			recorder_sync_begin(exp->rec);
		io_uring_prep_fsync(sqe, exp->fd, IORING_FSYNC_DATASYNC);
	}
	io_uring_sqe_set_data64(sqe, ud_make(op, TAG_SYNC));
	w->pending_ops++;
}

static void on_sync_cqe(struct worker *w, struct syncop *op, int res)
{
	struct export *exp = op->exp;

	if (op->delayed) {
		struct io_uring_sqe *sqe = get_sqe(w);

		op->delayed = false;
		if (unlikely(exp->rec))
			recorder_sync_begin(exp->rec);
		io_uring_prep_fsync(sqe, exp->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, ud_make(op, TAG_SYNC));
		return;
	}
	w->pending_ops--;
	sync_complete(w, exp, res);
}

/* ---------------------------------------------------------------- */
/* File I/O.                                                         */

static void submit_step(struct worker *w, struct req *r)
{
	struct export *exp = r->conn->exp;
	struct io_uring_sqe *sqe = get_sqe(w);
	size_t left = r->io_len - r->io_done;
	uint64_t off = r->io_off + r->io_done;

	switch (r->step) {
	case ST_READ:
		io_uring_prep_read(sqe, exp->fd, r->buf + r->io_done,
				   (unsigned int)left, off);
		break;
	case ST_RMW_HEAD:
	case ST_RMW_TAIL:
		io_uring_prep_read(sqe, exp->fd, r->blk + r->io_done,
				   (unsigned int)left, off);
		break;
	case ST_WRITE:
		io_uring_prep_write(sqe, exp->fd, r->buf + r->io_done,
				    (unsigned int)left, off);
		if (r->s.dsync)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case ST_ZERO_WRITE:
		if (left > ZERO_CHUNK)
			left = ZERO_CHUNK;
		io_uring_prep_write(sqe, exp->fd, w->zeros, (unsigned int)left,
				    off);
		if (r->s.dsync)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case ST_FALLOC:
		io_uring_prep_fallocate(sqe, exp->fd, r->zp.mode,
					(off_t)r->zp.off, (off_t)r->zp.len);
		break;
	case ST_FUA_SYNC:
		io_uring_prep_fsync(sqe, exp->fd, IORING_FSYNC_DATASYNC);
		break;
	case ST_FADVISE:
		io_uring_prep_fadvise(sqe, exp->fd, off, (off_t)left,
				      POSIX_FADV_WILLNEED);
		break;
	default:
		abort();
	}
	io_uring_sqe_set_data64(sqe, ud_make(r, TAG_IO));
}

static void begin_step(struct worker *w, struct req *r, enum step st,
		       uint64_t off, size_t len)
{
	r->step = (uint8_t)st;
	r->io_off = off;
	r->io_len = len;
	r->io_done = 0;
	submit_step(w, r);
}

/* The next step of a TRIM or WRITE_ZEROES, as zero.c plans it. */
static void zero_next(struct worker *w, struct req *r)
{
	struct export *exp = r->conn->exp;
	struct zero_geom g = {.min_block = exp->min_block,
			      .dio_align = exp->align};

	zero_plan(&r->zr, atomic_load(&exp->zero_caps), &g, &r->zp);
	switch (r->zp.step) {
	case ZERO_DONE:
		/* Z4, Z5: refused, no latch; Z1: a TRIM that does nothing */
		if (r->zp.err)
			req_fail(w, r, r->zp.err);
		else
			req_complete(w, r, 0);
		return;
	case ZERO_FALLOC:
		begin_step(w, r, ST_FALLOC, r->zp.off, r->zp.len);
		return;
	case ZERO_WRITE:
		begin_step(w, r, ST_ZERO_WRITE, r->zp.off, r->zp.len);
		return;
	}
	abort();
}

/* A fallocate step ended with res. */
static void on_falloc_cqe(struct worker *w, struct req *r, int res)
{
	struct export *exp = r->conn->exp;
	unsigned int cap;
	bool retry;

	if (res == 0) {
		if (r->s.dsync)
			begin_step(w, r, ST_FUA_SYNC, 0, 0); /* R2 */
		else
			req_complete(w, r, 0);
		return;
	}
	cap = zero_after_falloc_error(&r->zr, &r->zp, res, &retry);
	if (cap) /* Z6: off for good, and only the mode that failed */
		atomic_fetch_and(&exp->zero_caps, ~cap);
	if (retry)
		zero_next(w, r);
	else
		req_fail(w, r, res); /* E7: a fallocate does not sync */
}

static uint64_t align_down(uint64_t v, uint32_t a)
{
	return v & ~(uint64_t)(a - 1);
}
static uint64_t align_up(uint64_t v, uint32_t a)
{
	return (v + a - 1) & ~(uint64_t)(a - 1);
}

/* Fill r->ext with base:allocation extents of [off, off+len). */
static int block_status(struct req *r)
{
	struct export *exp = r->conn->exp;
	uint64_t pos = r->nr.offset, end = pos + r->nr.length;
	unsigned int n = 0, max = (r->nr.flags & NBD_CMD_FLAG_REQ_ONE)
					  ? 1
					  : MAX_EXTENTS;
	uint8_t *ext = malloc((size_t)max * 8);

	if (!ext)
		return -ENOMEM;
	while (pos < end && n < max) {
		off_t data = lseek(exp->fd, (off_t)pos, SEEK_DATA);
		uint64_t stop;
		uint32_t flags;

		if (data < 0 && errno == ENXIO) {
			/* No data after pos: a hole to the end. */
			stop = end;
			flags = NBD_STATE_HOLE | NBD_STATE_ZERO;
		} else if (data < 0) {
			/* Cannot tell: say data, which is always safe. */
			stop = end;
			flags = 0;
		} else if ((uint64_t)data > pos) {
			stop = (uint64_t)data < end ? (uint64_t)data : end;
			flags = NBD_STATE_HOLE | NBD_STATE_ZERO;
		} else {
			off_t hole = lseek(exp->fd, (off_t)pos, SEEK_HOLE);

			stop = hole < 0 || (uint64_t)hole > end
				       ? end
				       : (uint64_t)hole;
			if (stop <= pos)
				stop = end;
			flags = 0;
		}
		/*
		 * Keep boundaries on the advertised block size, and stay
		 * conservative: a hole shrinks, data grows.
		 */
		if (stop < end && exp->min_block > 1) {
			if (flags && align_down(stop, exp->min_block) > pos) {
				stop = align_down(stop, exp->min_block);
			} else {
				flags = 0;
				stop = align_up(stop, exp->min_block);
				stop = stop < end ? stop : end;
			}
		}
		proto_encode_extent(ext + n * 8, (uint32_t)(stop - pos), flags);
		n++;
		pos = stop;
	}
	r->ext = ext;
	r->ext_len = (size_t)n * 8;
	return 0;
}

/*
 * E4: on a memory-backed file a small read or write is a memcpy that
 * cannot wait for a device, but io_uring would hand every one of them to
 * an io-wq thread (tmpfs has no RWF_NOWAIT), costing two wake-ups per
 * request.  Do it here instead.  Returns false if r is not such a request.
 */
static bool try_inline_rw(struct worker *w, struct req *r)
{
	struct export *exp = r->conn->exp;
	size_t done = 0, len = r->nr.length;
	ssize_t n;

	if (!exp->mem_backed || len > INLINE_MAX ||
	    (r->nr.type != NBD_CMD_READ && r->nr.type != NBD_CMD_WRITE))
		return false;
	while (done < len) {
		struct iovec v = {r->data + done, len - done};
		off_t off = (off_t)(r->nr.offset + done);

		if (r->nr.type == NBD_CMD_READ)
			n = preadv2(exp->fd, &v, 1, off, 0);
		else
			n = pwritev2(exp->fd, &v, 1, off,
				     r->s.dsync ? RWF_DSYNC : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			req_complete(w, r, n < 0 ? -errno : -EIO);
			return true;
		}
		done += (size_t)n;
	}
	req_complete(w, r, 0);
	return true;
}

/* Begin the I/O of a RUN request (after any injected delay). */
static void start_io_now(struct worker *w, struct req *r)
{
	struct export *exp = r->conn->exp;
	uint64_t off = r->nr.offset, len = r->nr.length;
	int r2;

	if (exp->mem_backed && try_inline_rw(w, r))
		return;
	switch (r->nr.type) {
	case NBD_CMD_READ: {
		/* E3: an unaligned read reads the aligned range around it. */
		uint64_t lo = align_down(off, exp->align);

		begin_step(w, r, ST_READ, lo,
			   align_up(off + len, exp->align) - lo);
		return;
	}
	case NBD_CMD_WRITE:
		if (r->s.rmw) {
			uint64_t lo = align_down(off, exp->align);

			if (lo != off) {
				begin_step(w, r, ST_RMW_HEAD, lo, exp->align);
				return;
			}
			begin_step(w, r, ST_RMW_TAIL,
				   align_down(off + len, exp->align),
				   exp->align);
			return;
		}
		begin_step(w, r, ST_WRITE, off, len);
		return;
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		r->zr = (struct zero_req){
			.trim = r->nr.type == NBD_CMD_TRIM,
			.no_hole = r->nr.flags & NBD_CMD_FLAG_NO_HOLE,
			.fast = r->fast_zero,
			.off = off,
			.len = len,
		};
		zero_next(w, r);
		return;
	case NBD_CMD_CACHE:
		begin_step(w, r, ST_FADVISE, off, len);
		return;
	case NBD_CMD_BLOCK_STATUS:
		r2 = block_status(r);
		if (r2 < 0)
			req_fail(w, r, r2);
		else
			req_complete(w, r, 0);
		return;
	default:
		abort();
	}
}

static enum inject_op inject_op_of(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:
		return INJ_READ;
	case NBD_CMD_WRITE:
		return INJ_WRITE;
	case NBD_CMD_TRIM:
		return INJ_TRIM;
	case NBD_CMD_WRITE_ZEROES:
		return INJ_ZERO;
	case NBD_CMD_CACHE:
		return INJ_CACHE;
	default:
		return INJ_STATUS;
	}
}

static void start_io(struct worker *w, struct req *r)
{
	if (unlikely(inject_enabled)) {
		unsigned int delay;
		int err;

		inject_match(inject_op_of(r->nr.type), r->nr.offset,
			     r->nr.length, &delay, &err);
		if (err) {
			req_complete(w, r, err);
			return;
		}
		if (delay) {
			struct io_uring_sqe *sqe = get_sqe(w);

			r->ts.tv_sec = delay / 1000;
			r->ts.tv_nsec = (long long)(delay % 1000) * 1000000;
			io_uring_prep_timeout(sqe, &r->ts, 0, 0);
			io_uring_sqe_set_data64(sqe, ud_make(r, TAG_DELAY));
			return;
		}
	}
	start_io_now(w, r);
}

/* A file I/O step of r finished with res. */
static void on_io_cqe(struct worker *w, struct req *r, int res)
{
	struct export *exp = r->conn->exp;

	if (res == -EAGAIN || res == -EINTR) {
		submit_step(w, r);
		return;
	}
	if (r->step == ST_FALLOC) {
		on_falloc_cqe(w, r, res);
		return;
	}
	if (r->step == ST_FUA_SYNC || r->step == ST_FADVISE) {
		/* fadvise is a hint: its failure is not the client's. */
		req_complete(w, r, r->step == ST_FADVISE ? 0 : res);
		return;
	}
	if (res < 0) {
		req_complete(w, r, res);
		return;
	}
	if (res == 0 && r->io_done < r->io_len) {
		/* EOF inside the export: the file shrank under us. */
		req_complete(w, r, -EIO);
		return;
	}
	r->io_done += (size_t)res;
	if (r->io_done < r->io_len) {
		submit_step(w, r); /* short I/O: go on */
		return;
	}
	switch (r->step) {
	case ST_READ:
	case ST_WRITE:
	case ST_ZERO_WRITE: /* submit_step wrote it chunk by chunk */
		req_complete(w, r, 0);
		return;
	case ST_RMW_HEAD: {
		uint64_t off = r->nr.offset, end = off + r->nr.length;
		uint64_t lo = align_down(off, exp->align);
		uint64_t tail = align_down(end, exp->align);

		memcpy(r->buf, r->blk, off - lo);
		if (end != align_up(end, exp->align) && tail != lo) {
			begin_step(w, r, ST_RMW_TAIL, tail, exp->align);
			return;
		}
		if (end != align_up(end, exp->align)) {
			/* Head and tail are one block: it is in blk. */
			memcpy(r->buf + (end - lo), r->blk + (end - lo),
			       exp->align - (end - lo));
		}
		begin_step(w, r, ST_WRITE, lo, align_up(end, exp->align) - lo);
		return;
	}
	case ST_RMW_TAIL: {
		uint64_t off = r->nr.offset, end = off + r->nr.length;
		uint64_t lo = align_down(off, exp->align);
		uint64_t hi = align_up(end, exp->align);
		uint64_t tail = hi - exp->align;

		memcpy(r->buf + (end - lo), r->blk + (end - tail), hi - end);
		begin_step(w, r, ST_WRITE, lo, hi - lo);
		return;
	}
	default:
		abort();
	}
}

/* ---------------------------------------------------------------- */
/* Replies.                                                          */

static void mark_dirty(struct worker *w, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = w->dirty;
	w->dirty = c;
}

static void queue_reply(struct worker *w, struct req *r)
{
	struct conn *c = r->conn;
	int status = r->s.status;
	uint32_t err = proto_nbd_error(status, r->fast_zero);
	bool ok = status == 0;
	uint16_t type = r->nr.type;

	if (unlikely(log_verbose))
		log_msg("conn %u: %s cookie=%#llx off=%llu len=%u -> %s", c->id,
			proto_cmd_name(type), (unsigned long long)r->nr.cookie,
			(unsigned long long)r->nr.offset, r->nr.length,
			ok ? "ok" : strerror(-status));
	/* The trace holds the reply before it can reach the client. */
	if (unlikely(r->recorded))
		recorder_reply(c->exp->rec, c->id, &r->nr, status);
	if (c->dead) {
		req_free(r);
		return;
	}
	if (c->view.structured && type == NBD_CMD_READ) {
		if (!ok)
			r->hdr_len = proto_encode_error_chunk(
				r->hdr, r->nr.cookie, err, NULL);
		else if (r->nr.length == 0)
			r->hdr_len = proto_encode_chunk(
				r->hdr, NBD_REPLY_FLAG_DONE,
				NBD_REPLY_TYPE_NONE, r->nr.cookie, 0);
		else
			r->hdr_len = proto_encode_offset_data(
				r->hdr, NBD_REPLY_FLAG_DONE, r->nr.cookie,
				r->nr.offset, r->nr.length);
	} else if (type == NBD_CMD_BLOCK_STATUS) {
		if (!ok)
			r->hdr_len = proto_encode_error_chunk(
				r->hdr, r->nr.cookie, err, NULL);
		else
			r->hdr_len = proto_encode_block_status(
				r->hdr, NBD_REPLY_FLAG_DONE, r->nr.cookie,
				c->meta_id, (uint32_t)(r->ext_len / 8));
	} else {
		r->hdr_len =
			proto_encode_simple_reply(r->hdr, r->nr.cookie, err);
	}
	r->wnext = NULL;
	if (c->tx_tail)
		c->tx_tail->wnext = r;
	else
		c->tx_head = r;
	c->tx_tail = r;
	mark_dirty(w, c);
}

/* Start a sendmsg of as many queued replies as fit in one iovec batch. */
static void start_send(struct worker *w, struct conn *c)
{
	struct req *r, *last = NULL;
	struct io_uring_sqe *sqe;
	int n = 0;

	if (c->send_inflight || !c->tx_head)
		return;
	for (r = c->tx_head; r && n + 2 <= IOV_BATCH; r = r->wnext) {
		bool ok = r->s.status == 0;

		c->iov[n].iov_base = r->hdr;
		c->iov[n++].iov_len = r->hdr_len;
		if (ok && r->nr.type == NBD_CMD_READ && r->nr.length) {
			c->iov[n].iov_base = r->data;
			c->iov[n++].iov_len = r->nr.length;
		} else if (ok && r->nr.type == NBD_CMD_BLOCK_STATUS) {
			c->iov[n].iov_base = r->ext;
			c->iov[n++].iov_len = r->ext_len;
		}
		last = r;
	}
	c->sending = c->tx_head;
	c->tx_head = last->wnext;
	if (!c->tx_head)
		c->tx_tail = NULL;
	last->wnext = NULL;
	memset(&c->msg, 0, sizeof c->msg);
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = (size_t)n;
	sqe = get_sqe(w);
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(c, TAG_SEND));
	c->send_inflight = true;
}

static void free_sending(struct conn *c)
{
	struct req *r = c->sending;

	c->sending = NULL;
	while (r) {
		struct req *next = r->wnext;

		req_free(r);
		r = next;
	}
}

static void on_send_cqe(struct worker *w, struct conn *c, int res)
{
	struct msghdr *m = &c->msg;

	c->send_inflight = false;
	if (res == -EAGAIN || res == -EINTR) {
		res = 0;
	} else if (res < 0) {
		if (res != -EPIPE && res != -ECONNRESET && !c->w->forced)
			log_msg("conn %u: send: %s", c->id, strerror(-res));
		conn_abort(c);
		free_sending(c);
		while (c->tx_head) {
			struct req *r = c->tx_head;

			c->tx_head = r->wnext;
			req_free(r);
		}
		c->tx_tail = NULL;
		want_close(c);
		return;
	}
	/* Skip what was sent; resubmit the rest (a partial send). */
	size_t done = (size_t)res;

	while (m->msg_iovlen && done >= m->msg_iov->iov_len) {
		done -= m->msg_iov->iov_len;
		m->msg_iov++;
		m->msg_iovlen--;
	}
	if (m->msg_iovlen) {
		struct io_uring_sqe *sqe;

		m->msg_iov->iov_base = (uint8_t *)m->msg_iov->iov_base + done;
		m->msg_iov->iov_len -= done;
		sqe = get_sqe(w);
		io_uring_prep_sendmsg(sqe, c->fd, m, MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, ud_make(c, TAG_SEND));
		c->send_inflight = true;
		return;
	}
	free_sending(c);
	if (c->tx_head)
		mark_dirty(w, c);
	want_close(c);
}

/* ---------------------------------------------------------------- */
/* Receiving and dispatching requests.                               */

static void submit_recv(struct conn *c, void *buf, size_t len, int flags,
			bool to_payload)
{
	struct io_uring_sqe *sqe = get_sqe(c->w);

	io_uring_prep_recv(sqe, c->fd, buf, len, flags);
	/*
	 * We only ask for a header once the buffer is drained, so the socket
	 * is usually empty: wait for data first instead of trying a recv
	 * that fails with EAGAIN and then arming the poll anyway.
	 */
	if (!to_payload)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, ud_make(c, TAG_RECV));
	c->recv_inflight = true;
	c->recv_to_payload = to_payload;
}

/* Reply at once with an error, without the scheduler. */
static void reply_error(struct conn *c, const struct nbd_request *nr, int err)
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
	r->fast_zero = nr->flags & NBD_CMD_FLAG_FAST_ZERO;
	queue_reply(c->w, r);
}

/* The request (and its payload) is complete: hand it to the scheduler. */
static void dispatch(struct conn *c, struct req *r)
{
	struct export *exp = c->exp;
	struct sched_out o;
	uint16_t t = r->nr.type;

	r->iow = c->w;
	/*
	 * E5: a busy connection is not confined to one core.  Once it has
	 * SPREAD_AFTER requests in flight, the data I/O of its large requests
	 * goes round-robin over all workers' rings; replies stay with the
	 * owner.
	 */
	if (n_workers > 1 && c->inflight > SPREAD_AFTER &&
	    r->nr.length >= SPREAD_MIN &&
	    (t == NBD_CMD_READ || t == NBD_CMD_WRITE))
		r->iow = &workers[(c->w->idx + c->spread++) % n_workers];
	r->s.off = r->nr.offset;
	r->s.len = r->nr.length;
	r->s.fua = r->nr.flags & NBD_CMD_FLAG_FUA;
	r->fast_zero = r->nr.flags & NBD_CMD_FLAG_FAST_ZERO;
	switch (t) {
	case NBD_CMD_READ:
		r->s.kind = r->nr.length ? SCHED_READ : SCHED_NOP;
		break;
	case NBD_CMD_CACHE:
		/* With O_DIRECT there is no cache to warm. */
		r->s.kind =
			exp->direct || !r->nr.length ? SCHED_NOP : SCHED_READ;
		break;
	case NBD_CMD_BLOCK_STATUS:
		r->s.kind = SCHED_READ;
		r->s.strict = true; /* R6: never a hole under a write */
		break;
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		r->s.kind = r->nr.length ? SCHED_WRITE : SCHED_NOP;
		break;
	case NBD_CMD_FLUSH:
		r->s.kind = SCHED_FLUSH;
		break;
	default:
		abort();
	}
	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	/* Recorded under the lock: the trace's order is the arrival order. */
	if (unlikely(exp->rec)) {
		recorder_recv(exp->rec, c->id, &r->nr, r->data);
		r->recorded = true;
	}
	sched_submit(&exp->sched, &r->s, &o);
	pthread_mutex_unlock(&exp->lock);
	handle_events(c->w, &o, exp);
}

/*
 * A header was decoded and validated.  Returns false when the connection
 * must stop reading (payload too large to skip).
 */
static bool on_request(struct conn *c, const struct nbd_request *nr)
{
	struct export *exp = c->exp;
	int err = proto_validate_request(nr, &c->view);
	struct req *r;

	if (unlikely(log_verbose))
		log_msg("conn %u: recv %s cookie=%#llx off=%llu len=%u "
			"flags=%#x",
			c->id, proto_cmd_name(nr->type),
			(unsigned long long)nr->cookie,
			(unsigned long long)nr->offset, nr->length, nr->flags);
	if (err) {
		if (proto_has_payload(nr)) {
			if (nr->length > MAX_SKIP) {
				log_msg("conn %u: %s payload of %u bytes is "
					"too large; disconnecting",
					c->id, proto_cmd_name(nr->type),
					nr->length);
				return false;
			}
			c->rx_skip = nr->length;
		}
		reply_error(c, nr, err);
		return true;
	}
	if (nr->type == NBD_CMD_DISC) {
		/* Finish what is in flight, then close (rx_eof). */
		return false;
	}
	r = req_alloc(c);
	if (!r)
		goto enomem;
	r->nr = *nr;
	if ((nr->type == NBD_CMD_READ || nr->type == NBD_CMD_WRITE) &&
	    nr->length) {
		uint64_t lo = align_down(nr->offset, exp->align);
		uint64_t hi = align_up(nr->offset + nr->length, exp->align);

		if (req_reserve(r, hi - lo) < 0)
			goto enomem_req;
		r->held = hi - lo;
		c->inflight_bytes += r->held;
		r->data = r->buf + (nr->offset - lo);
		if (nr->type == NBD_CMD_WRITE &&
		    (lo != nr->offset || hi != nr->offset + nr->length)) {
			r->s.rmw = true; /* E3, R6 */
			if (!r->blk && !(r->blk = alloc_aligned(exp->align)))
				goto enomem_req;
		}
	}
	if (nr->type == NBD_CMD_WRITE && nr->length) {
		c->rx_req = r; /* payload follows */
		return true;
	}
	dispatch(c, r);
	return true;

enomem_req:
	req_free(r);
enomem:
	if (proto_has_payload(nr))
		c->rx_skip = nr->length;
	reply_error(c, nr, -ENOMEM);
	return true;
}

/* Consume buffered bytes; issue the next recv if more are needed. */
static void rx_process(struct conn *c)
{
	for (;;) {
		size_t avail = c->rx_end - c->rx_start;

		if (c->recv_inflight)
			return;
		if (c->rx_req) {
			struct req *r = c->rx_req;
			size_t need = r->nr.length - r->rx_got;
			size_t n = avail < need ? avail : need;

			memcpy(r->data + r->rx_got, c->rxbuf + c->rx_start, n);
			c->rx_start += n;
			r->rx_got += (uint32_t)n;
			if (r->rx_got == r->nr.length) {
				c->rx_req = NULL;
				dispatch(c, r);
				continue;
			}
			if (c->rx_eof)
				return;
			/* Receive the rest straight into the buffer. */
			c->rx_start = c->rx_end = 0;
			submit_recv(c, r->data + r->rx_got, need - n,
				    MSG_WAITALL, true);
			return;
		}
		if (c->rx_skip) {
			size_t n = avail < c->rx_skip ? avail : c->rx_skip;

			c->rx_start += n;
			c->rx_skip -= n;
			if (c->rx_skip) {
				if (c->rx_eof)
					return;
				c->rx_start = c->rx_end = 0;
				submit_recv(c, c->rxbuf, RXBUF_SIZE, 0, false);
				return;
			}
			continue;
		}
		if (c->rx_eof)
			return;
		if (c->inflight >= MAX_INFLIGHT ||
		    c->inflight_bytes >= MAX_INFLIGHT_BYTES) {
			c->rx_paused = true;
			return;
		}
		if (avail < PROTO_REQUEST_SIZE) {
			if (c->rx_start) {
				memmove(c->rxbuf, c->rxbuf + c->rx_start,
					avail);
				c->rx_start = 0;
				c->rx_end = avail;
			}
			submit_recv(c, c->rxbuf + c->rx_end,
				    RXBUF_SIZE - c->rx_end, 0, false);
			return;
		}

		struct nbd_request nr;

		if (proto_decode_request(c->rxbuf + c->rx_start, &nr) < 0) {
			log_msg("conn %u: bad request magic; disconnecting",
				c->id);
			conn_abort(c);
			return;
		}
		c->rx_start += PROTO_REQUEST_SIZE;
		if (!on_request(c, &nr)) {
			c->rx_eof = true;
			want_close(c);
			return;
		}
	}
}

static void on_recv_cqe(struct conn *c, int res)
{
	c->recv_inflight = false;
	if (res == -EAGAIN || res == -EINTR) {
		goto again;
	}
	if (res <= 0) {
		if (res < 0 && res != -ECONNRESET && !c->w->stopping)
			log_msg("conn %u: recv: %s", c->id, strerror(-res));
		c->rx_eof = true;
		if (c->rx_req) {
			/* Disconnect in the middle of a payload. */
			struct req *r = c->rx_req;

			c->rx_req = NULL;
			req_free(r);
		}
		want_close(c);
		return;
	}
	if (c->recv_to_payload) {
		/* The recv went straight into the payload buffer. */
		c->rx_req->rx_got += (uint32_t)res;
		if (c->rx_req->rx_got == c->rx_req->nr.length) {
			struct req *r = c->rx_req;

			c->rx_req = NULL;
			dispatch(c, r);
		}
	} else {
		c->rx_end += (size_t)res;
	}
again:
	rx_process(c);
}

/* ---------------------------------------------------------------- */
/* Connections.                                                      */

/*
 * The connection is beyond use (a broken stream, a send error, no memory,
 * the end of the grace period): stop reading, drop the replies still to
 * send, and close once the requests in flight have completed.
 */
static void conn_abort(struct conn *c)
{
	c->dead = true;
	c->rx_eof = true;
	shutdown(c->fd, SHUT_RDWR);
	want_close(c);
}

/*
 * Connections are freed only from the loop (close_finished), never from
 * inside a handler that may still use them.
 */
static void want_close(struct conn *c)
{
	if (c->close_queued)
		return;
	c->close_queued = true;
	c->close_next = c->w->closeq;
	c->w->closeq = c;
}

static void conn_maybe_close(struct conn *c)
{
	struct worker *w = c->w;
	struct conn **pp;

	if (!c->rx_eof || c->inflight || c->recv_inflight || c->send_inflight ||
	    c->tx_head || c->dirty)
		return;
	for (pp = &w->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (log_verbose)
		log_msg("conn %u: closed", c->id);
	/* Free the slot first: the client may reconnect on EOF. */
	atomic_fetch_sub(&w->srv->n_conns, 1);
	close(c->fd);
	while (c->free_reqs) {
		struct req *r = c->free_reqs;

		c->free_reqs = r->wnext;
		free(r->buf);
		free(r->blk);
		free(r);
	}
	free(c->rxbuf);
	free(c);
	server_release(w->srv); /* E6: may let every worker exit */
}

/* A connection admitted by the handshake will not be served after all. */
static void pending_drop(struct server *srv, int fd)
{
	close(fd);
	atomic_fetch_sub(&srv->n_conns, 1);
	server_release(srv);
}

static void conn_start(struct worker *w, struct pending_conn *p)
{
	struct conn *c = calloc(1, sizeof *c);
	struct export *exp = p->hs.exp;

	if (!c || !(c->rxbuf = malloc(RXBUF_SIZE))) {
		log_msg("out of memory for a new connection");
		free(c);
		pending_drop(w->srv, p->fd);
		return;
	}
	c->w = w;
	c->fd = p->fd;
	c->id = atomic_fetch_add(&next_conn_id, 1) + 1;
	c->exp = exp;
	c->view.size = exp->size;
	c->view.tflags = p->hs.tflags;
	c->view.min_block = exp->min_block;
	c->view.max_payload = exp->max_payload;
	c->view.structured = p->hs.structured;
	c->view.meta_alloc = p->hs.meta_alloc;
	c->meta_id = p->hs.meta_alloc_id;
	if (p->tcp) {
		int one = 1;

		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	c->next = w->conns;
	w->conns = c;
	if (log_verbose)
		log_msg("conn %u: transmission on export \"%s\"", c->id,
			exp->name);
	rx_process(c);
}

/* ---------------------------------------------------------------- */
/* The loop.                                                         */

/*
 * Wait for the eventfd with a poll, not a read: a blocking read would park
 * an io-wq thread that ring teardown then has to wait for.
 */
static void arm_evfd(struct worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_poll_add(sqe, w->evfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(w, TAG_EVFD));
}

static void on_evfd(struct worker *w)
{
	struct pending_conn *p, *next;
	bool stop, force;
	struct conn *c;

	if (read(w->evfd, &w->evbuf, sizeof w->evbuf) < 0 && errno != EAGAIN)
		log_msg("worker %u: eventfd: %s", w->idx, strerror(errno));
	pthread_mutex_lock(&w->lock);
	p = w->incoming;
	w->incoming = NULL;
	stop = w->stop;
	force = w->force;
	pthread_mutex_unlock(&w->lock);
	for (; p; p = next) {
		next = p->next;
		if (stop)
			pending_drop(w->srv, p->fd);
		else
			conn_start(w, p);
		free(p);
	}
	if (stop && !w->stopping) {
		w->stopping = true;
		/* E6: stop reading; pending recvs return 0. */
		for (c = w->conns; c; c = c->next)
			shutdown(c->fd, SHUT_RD);
	}
	if (force && !w->forced) {
		w->forced = true;
		/* E6: the grace period is over. */
		for (c = w->conns; c; c = c->next)
			conn_abort(c);
	}
	arm_evfd(w);
}

static void on_cqe(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	void *p = ud_ptr(ud);
	int res = cqe->res;

	switch (ud_tag(ud)) {
	case TAG_IO:
		on_io_cqe(w, p, res);
		break;
	case TAG_RECV:
		on_recv_cqe(p, res);
		break;
	case TAG_SEND:
		on_send_cqe(w, p, res);
		break;
	case TAG_SYNC:
		on_sync_cqe(w, p, res);
		break;
	case TAG_MSG:
		tsan_acquire(p);
		runq_push(w, p);
		break;
	case TAG_EVFD:
		on_evfd(w);
		break;
	case TAG_DELAY:
		start_io_now(w, p);
		break;
	case TAG_MSGSENT:
		w->pending_ops--;
		if (res < 0) /* the target's CQ was full: try again */
			send_msg(w, p);
		break;
	}
}

static void drain_runq(struct worker *w)
{
	struct req *r;

	while ((r = w->runq_head)) {
		w->runq_head = r->wnext;
		if (!w->runq_head)
			w->runq_tail = NULL;
		if (r->s.action == SCHED_RUN) {
			start_io(w,
				 r); /* maybe another worker's request (E5) */
		} else {
			queue_reply(w, r);
		}
	}
}

static void close_finished(struct worker *w)
{
	while (w->closeq) {
		struct conn *c = w->closeq;

		w->closeq = c->close_next;
		c->close_queued = false;
		conn_maybe_close(c);
	}
}

static void flush_dirty(struct worker *w)
{
	while (w->dirty) {
		struct conn *c = w->dirty;

		w->dirty = c->dirty_next;
		c->dirty = false;
		start_send(w, c);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	/*
	 * When the client is this host's kernel (nbdfuse + loop, nbd), memory
	 * reclaim may wait on our I/O: mark the thread as an I/O flusher so
	 * its own allocations do not recurse into that reclaim.  Needs
	 * CAP_SYS_RESOURCE; without it we carry on.
	 */
	prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);
	/* liburing 2.3 declares io_uring_enable_rings() but does not
	 * export it: register directly. */
	if (w->disabled && syscall(__NR_io_uring_register, w->ring.ring_fd,
				   IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
		log_msg("worker %u: cannot enable its io_uring", w->idx);
		abort();
	}
	arm_evfd(w);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		int r;

		drain_runq(w);
		flush_dirty(w);
		close_finished(w);
		/* E6 */
		if (w->stopping && !w->conns && !w->pending_ops &&
		    server_admitted(w->srv) == 0)
			break;
		r = io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			log_msg("worker %u: io_uring_submit_and_wait: %s",
				w->idx, strerror(-r));
			abort();
		}
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			on_cqe(w, cqe);
			n++;
			/* Act on events now so replies leave promptly. */
			drain_runq(w);
		}
		io_uring_cq_advance(&w->ring, n);
	}
	if (atomic_fetch_sub(&n_running, 1) == 1) {
		uint64_t one = 1;

		if (write(done_fd, &one, sizeof one) < 0)
			log_msg("workers: eventfd: %s", strerror(errno));
	}
	return NULL;
}

static void wake(struct worker *w);

/* A3, E6: the last admitted connection went while stopping. */
static void wake_all(struct server *srv)
{
	unsigned int i;

	for (i = 0; i < n_workers; i++)
		wake(&workers[i]);
}

int workers_start(struct server *srv)
{
	unsigned int i;
	int r;

	n_workers = srv->n_queues ? srv->n_queues : 1;
	workers = calloc(n_workers, sizeof *workers);
	if (!workers)
		return -ENOMEM;
	for (i = 0; i < srv->n_exports; i++) {
		srv->exports[i]->sync_op = calloc(1, sizeof(struct syncop));
		if (!srv->exports[i]->sync_op)
			return -ENOMEM;
		srv->exports[i]->sync_op->exp = srv->exports[i];
	}
	done_fd = eventfd(0, EFD_CLOEXEC);
	if (done_fd < 0)
		return -errno;
	srv->on_idle = wake_all;
	for (i = 0; i < n_workers; i++) {
		struct worker *w = &workers[i];
		struct io_uring_params p = {0};

		w->idx = i;
		w->srv = srv;
		pthread_mutex_init(&w->lock, NULL);
		/*
		 * One issuer per ring, and completions run when the worker
		 * asks for them (no IPIs to wake it for task work).  The ring
		 * is created disabled and enabled by its own thread, which
		 * then becomes its single issuer.  Older kernels: plain ring.
		 */
		p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
			  IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
		p.cq_entries = RING_ENTRIES * 8;
		r = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
		if (r == -EINVAL) {
			memset(&p, 0, sizeof p);
			p.flags = IORING_SETUP_CQSIZE;
			p.cq_entries = RING_ENTRIES * 8;
			r = io_uring_queue_init_params(RING_ENTRIES, &w->ring,
						       &p);
		}
		if (r < 0)
			return r;
		w->disabled = p.flags & IORING_SETUP_R_DISABLED;
		w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->evfd < 0)
			return -errno;
		w->zeros = alloc_aligned(ZERO_CHUNK);
		if (!w->zeros)
			return -ENOMEM;
		memset(w->zeros, 0, ZERO_CHUNK);
	}
	for (i = 0; i < n_workers; i++) {
		atomic_fetch_add(&n_running, 1);
		r = pthread_create(&workers[i].thread, NULL, worker_main,
				   &workers[i]);
		if (r) {
			atomic_fetch_sub(&n_running, 1);
			return -r;
		}
	}
	return 0;
}

static void wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->evfd, &one, sizeof one) < 0)
		log_msg("worker %u: eventfd: %s", w->idx, strerror(errno));
}

void workers_add_conn(int fd, const struct hs_result *hs, bool tcp)
{
	struct worker *w =
		&workers[atomic_fetch_add(&next_worker, 1) % n_workers];
	struct pending_conn *p = calloc(1, sizeof *p);

	if (!p) {
		pending_drop(workers[0].srv, fd);
		return;
	}
	p->fd = fd;
	p->tcp = tcp;
	p->hs = *hs;
	pthread_mutex_lock(&w->lock);
	p->next = w->incoming;
	w->incoming = p;
	pthread_mutex_unlock(&w->lock);
	wake(w);
}

/* Tell every worker to stop (or, with force, to end the grace period). */
static void tell_all(bool force)
{
	unsigned int i;

	for (i = 0; i < n_workers; i++) {
		struct worker *w = &workers[i];

		pthread_mutex_lock(&w->lock);
		if (force)
			w->force = true;
		else
			w->stop = true;
		pthread_mutex_unlock(&w->lock);
		wake(w);
	}
}

void workers_stop(void)
{
	tell_all(false);
}

void workers_force(void)
{
	tell_all(true);
}

int workers_done_fd(void)
{
	return done_fd;
}

void workers_join(void)
{
	unsigned int i;

	for (i = 0; i < n_workers; i++)
		pthread_join(workers[i].thread, NULL);
}
