/* SPDX-License-Identifier: MIT */
/*
 * worker.c: the thread pool and the rings.  srv->n_queues worker threads
 * (queues), each with its own io_uring; no ring is shared.  A worker owns
 * the connections handed to it (conn.c), runs the I/O of their requests
 * (request.c) and of requests other workers hand it (E3), and the syncs
 * the scheduler asks of it.
 *
 * Every SQE carries its completion in user_data: a struct ring_cb (its fn
 * runs on the worker's thread), or, tagged in the low bits, a request
 * handed over by another worker, the end of our own hand-over, or the
 * worker's eventfd.
 *
 * E2. Syncs and fallocates are ordinary ring requests, without
 *     IOSQE_IO_DRAIN or links: they never stall reads and writes on the
 *     ring.  Ordering lives in sched.c, where the unit tests reach it.
 * E4. Shutdown.  A worker exits only once the server is stopping, nothing
 *     admitted is left (G3 in server.c: no connection lives that could
 *     hand it a request) and nothing it issued is still in flight.  So a
 *     request handed to a worker can never reach an exited one.  After the
 *     grace period (workers_force) every connection is aborted: unsent
 *     replies are dropped, I/O in flight still completes.
 * E6. Hand-over.  A request released for another worker (E3 I/O, an R3
 *     dependant, an R1 batch) goes with IORING_OP_MSG_RING: the target
 *     gets a CQE carrying the pointer.  No lock, no shared queue, no
 *     eventfd on the data path.  A hand-over refused because the target's
 *     CQ is full is sent again.
 *
 * E7. Busy-poll.  A worker whose requests are being served from memory
 *     (the last POLL_STREAK bios, or syncs, completed inline: page cache
 *     hits, F3, F6, F7) and that has no backend I/O in flight watches its
 *     ring for up to --busy-poll microseconds before it sleeps.  The next request of a
 *     client at queue depth 1 then finds it awake: waking a sleeping
 *     worker costs a halted vCPU's wake-up, more than the request itself.
 *     While backend I/O is in flight it never polls: the device's
 *     completion work needs the CPU more.  The poll yields the vCPU at
 *     every turn (sched_yield), never a bare spin: what it waits for may
 *     need that vCPU (a direct write's completion runs in a kworker on the
 *     vCPU that took the interrupt), and so may a client or another
 *     worker.  Measured in bench/README.md.
 * E8. A sync the scheduler asks for starts after the worker has submitted
 *     the replies it has ready: a sync may run inline (F7) and block the
 *     worker, and no reply waits for a sync it does not need.  The
 *     receives of request headers wait until it started (C7 in conn.c).
 * E9. Calls from other threads (queue.h): a list under q->lock and the
 *     eventfd, like new connections; never on the data path.
 *
 * Rings are created with SINGLE_ISSUER and DEFER_TASKRUN and enabled by
 * their own thread: completions run when the worker asks for them, with no
 * inter-processor interrupt to wake it for task work.  TASKRUN_FLAG lets
 * E7 see task work arrive without a system call.  Older kernels get a
 * plain ring.
 */
#include "engine/worker.h"

#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/conn.h"
#include "engine/export.h"
#include "engine/queue.h"
#include "engine/request.h"
#include "engine/server.h"
#include "engine/tsan.h"
#include "util/clock.h"
#include "util/compiler.h"
#include "util/log.h"

#define RING_ENTRIES 512

/* user_data: a pointer, 8-byte aligned, with a tag in the low 3 bits. */
enum tag {
	TAG_CB = 0, /* struct ring_cb, counted in in_flight */
	TAG_IDLE = 1, /* struct ring_cb that may wait for good (E4) */
	TAG_MSG = 2, /* struct req handed over by another worker (E6) */
	TAG_MSGSENT = 3, /* struct req: our MSG_RING completed */
	TAG_EVFD = 4, /* struct queue: its eventfd is readable */
};

static inline uint64_t ud_make(void *p, enum tag t)
{
	assert(((uintptr_t)p & 7) == 0);
	return (uint64_t)(uintptr_t)p | t;
}

static struct queue *queues;
static unsigned int n_queues;
static atomic_uint next_queue;
static atomic_uint n_running; /* worker threads not yet exited */
static int done_fd = -1; /* eventfd: readable once every worker exited */

bool queue_idle(const struct queue *q)
{
	/* F7 blocks the worker: only when no other connection shares it */
	return q->bios == 0 && q->conns.next == q->conns.prev;
}

/* E7: in-memory requests (or lone bios seen complete) in a row before
   the worker busy-polls between requests. */
#define POLL_STREAK 2

/* C7: a sync that kept the worker this long was longer than a client's
   round trip. */
#define HELD_RECV_NS 20000

/*
 * E7: the worker's only connection has one request, and it is the one bio
 * at the device: a client at QD1, waiting for this reply and sending
 * nothing meanwhile.
 */
static bool lone_bio(const struct queue *q)
{
	const struct conn *c;

	if (q->bios != 1 || list_empty(&q->conns) ||
	    q->conns.next != q->conns.prev)
		return false;
	c = list_entry(q->conns.next, struct conn, node);
	return c->inflight == 1;
}

/*
 * E7: before sleeping, a worker watches its ring for up to
 * srv->busy_poll_us, for the SQ flag that says task work arrived
 * (IORING_SETUP_TASKRUN_FLAG) or a CQE, with no system call while it
 * watches, in two cases:
 *   - between requests, with no bio in flight, when the last POLL_STREAK
 *     requests completed inline (page cache, memory) or were lone bios
 *     whose completion a poll saw: the next request is likely to come
 *     within a round trip;
 *   - while a lone bio (lone_bio()) is at the device: the client waits
 *     for it anyway, and a sleeping worker is woken by an interrupt on
 *     an idle vCPU, which costs more than the wait.
 * A poll that saw nothing resets both streaks.  With more than one
 * request or connection on the worker it never polls while a bio is out:
 * there the CPU is worth more to the client and io-wq.
 */
static void busy_poll(struct queue *q)
{
	uint64_t until;
	bool lone;

	if (!q->srv->busy_poll_us)
		return;
	lone = lone_bio(q);
	if (!lone && (q->bios ||
		      (q->streak < POLL_STREAK && q->lone_hits < POLL_STREAK)))
		return;
	if (io_uring_sq_ready(&q->ring))
		io_uring_submit(&q->ring);
	until = clock_ns(CLOCK_MONOTONIC) +
		(uint64_t)q->srv->busy_poll_us * 1000u;
	do {
		if (io_uring_cq_ready(&q->ring) ||
		    (IO_URING_READ_ONCE(*q->ring.sq.kflags) &
		     IORING_SQ_TASKRUN)) {
			if (lone)
				q->lone_hits++;
			return;
		}
		sched_yield(); /* E7: not a bare spin */
	} while (clock_ns(CLOCK_MONOTONIC) < until);
	q->streak = 0;
	q->lone_hits = 0;
}

struct queue *queue_of(unsigned int i)
{
	return &queues[i];
}

unsigned int queue_count(void)
{
	return n_queues;
}

/* ---------------------------------------------------------------- */
/* SQEs.                                                              */

static struct io_uring_sqe *get_sqe(struct queue *q)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&q->ring)))
		io_uring_submit(&q->ring);
	return sqe;
}

struct io_uring_sqe *queue_sqe(struct queue *q, struct ring_cb *cb)
{
	struct io_uring_sqe *sqe = get_sqe(q);

	q->in_flight++;
	io_uring_sqe_set_data64(sqe, ud_make(cb, TAG_CB));
	return sqe;
}

struct io_uring_sqe *queue_sqe_idle(struct queue *q, struct ring_cb *cb)
{
	struct io_uring_sqe *sqe = get_sqe(q);

	io_uring_sqe_set_data64(sqe, ud_make(cb, TAG_IDLE));
	return sqe;
}

void queue_hold(struct queue *q)
{
	q->in_flight++;
}

void queue_release(struct queue *q)
{
	q->in_flight--;
}

void queue_timer(struct queue *q, struct ring_cb *cb,
		 struct __kernel_timespec *ts, unsigned int ms)
{
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (long long)(ms % 1000) * 1000000;
	io_uring_prep_timeout(queue_sqe(q, cb), ts, 0, 0);
}

void queue_handoff(struct queue *q, struct req *r, struct queue *to)
{
	struct io_uring_sqe *sqe = get_sqe(q);

	q->in_flight++;
	io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, ud_make(r, TAG_MSG),
			       0);
	io_uring_sqe_set_data64(sqe, ud_make(r, TAG_MSGSENT));
	tsan_release(r); /* r is the target's now: see tsan.h */
}

/* ---------------------------------------------------------------- */
/* What the loop acts on.                                             */

void queue_run(struct queue *q, struct req *r)
{
	list_add_tail(&q->runq, &r->node);
}

void queue_mark_dirty(struct queue *q, struct conn *c)
{
	if (!list_linked(&c->dirty_node))
		list_add_tail(&q->dirty, &c->dirty_node);
}

/* Connections are freed only from the loop, never inside a handler. */
void queue_want_close(struct queue *q, struct conn *c)
{
	if (!list_linked(&c->close_node))
		list_add_tail(&q->closeq, &c->close_node);
}

static void drain_runq(struct queue *q)
{
	struct list_node *n;

	while ((n = list_pop(&q->runq)))
		req_act(q, list_entry(n, struct req, node));
}

static void flush_dirty(struct queue *q)
{
	struct list_node *n;

	while ((n = list_pop(&q->dirty)))
		conn_send(list_entry(n, struct conn, dirty_node));
}

static void close_finished(struct queue *q)
{
	struct list_node *n;

	while ((n = list_pop(&q->closeq)))
		conn_maybe_close(list_entry(n, struct conn, close_node));
}

/* ---------------------------------------------------------------- */
/* The eventfd: new connections, stop, force.                         */

/* A poll, not a read: a blocking read would park an io-wq thread that
   ring teardown then has to wait for. */
static void arm_evfd(struct queue *q)
{
	struct io_uring_sqe *sqe = get_sqe(q);

	io_uring_prep_poll_add(sqe, q->evfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(q, TAG_EVFD));
}

static void for_each_conn(struct queue *q, void (*fn)(struct conn *c))
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &q->conns)
	{
		fn(list_entry(n, struct conn, node));
	}
}

static void shut_rd(struct conn *c)
{
	shutdown(c->fd, SHUT_RD); /* pending receives return 0 */
}

static void wake(struct queue *q);

/* E9: any thread. */
int queue_call(struct queue *q, struct queue_call *c, bool force)
{
	pthread_mutex_lock(&q->lock);
	if (q->stop && !force) {
		pthread_mutex_unlock(&q->lock);
		return -ESHUTDOWN;
	}
	list_add_tail(&q->calls, &c->node);
	pthread_mutex_unlock(&q->lock);
	wake(q);
	return 0;
}

static void on_evfd(struct queue *q)
{
	struct list_node incoming, calls, *n;
	bool stop, force;

	if (read(q->evfd, &q->evbuf, sizeof q->evbuf) < 0 && errno != EAGAIN)
		log_msg("worker %u: eventfd: %s", q->idx, strerror(errno));
	list_init(&incoming);
	list_init(&calls);
	pthread_mutex_lock(&q->lock);
	while ((n = list_pop(&q->incoming)))
		list_add_tail(&incoming, n);
	while ((n = list_pop(&q->calls)))
		list_add_tail(&calls, n);
	stop = q->stop;
	force = q->force;
	pthread_mutex_unlock(&q->lock);
	while ((n = list_pop(&incoming))) {
		struct pending_conn *p =
			list_entry(n, struct pending_conn, node);

		if (stop) { /* admitted before the stop, never served */
			server_params_put(&p->params); /* H10 */
			close(p->fd);
			atomic_fetch_sub(&q->srv->n_conns, 1);
			server_release(q->srv);
		} else {
			conn_start(q, p);
		}
		free(p);
	}
	while ((n = list_pop(&calls))) { /* E9 */
		struct queue_call *c = list_entry(n, struct queue_call, node);

		c->fn(q, c);
	}
	if (stop && !q->stopping) {
		q->stopping = true;
		for_each_conn(q, shut_rd); /* E4 */
	}
	if (force && !q->forced) {
		q->forced = true;
		for_each_conn(q, conn_abort); /* E4: the grace period is over */
	}
	arm_evfd(q);
}

/* ---------------------------------------------------------------- */
/* The loop.                                                          */

static void on_cqe(struct queue *q, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	void *p = (void *)(uintptr_t)(ud & ~(uint64_t)7);

	switch ((enum tag)(ud & 7)) {
	case TAG_CB:
		q->in_flight--;
		((struct ring_cb *)p)->fn(p, cqe->res);
		break;
	case TAG_IDLE:
		((struct ring_cb *)p)->fn(p, cqe->res);
		break;
	case TAG_MSG: /* not ours: the sender counts it */
		tsan_acquire(p);
		queue_run(q, p);
		break;
	case TAG_MSGSENT:
		q->in_flight--;
		if (cqe->res < 0) { /* E6: the target's CQ was full */
			struct req *r = p;

			queue_handoff(q, r,
				      r->s.action == SCHED_RUN ? r->iow
							       : r->conn->q);
		}
		break;
	case TAG_EVFD:
		on_evfd(q);
		break;
	default:
		abort();
	}
}

/* E4 */
static bool may_exit(struct queue *q)
{
	return q->stopping && list_empty(&q->conns) && q->in_flight == 0 &&
	       server_admitted(q->srv) == 0;
}

static void attach_backends(struct queue *q)
{
	size_t i;

	for (i = 0; i < q->srv->n_exports; i++) {
		struct backend *b = q->srv->exports[i]->b;

		if (b->ops->attach && b->ops->attach(b, q) < 0) {
			log_msg("worker %u: cannot attach export \"%s\"",
				q->idx, q->srv->exports[i]->name);
			abort();
		}
	}
}

/* Act on the CQEs the ring holds now. */
static void reap(struct queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&q->ring, head, cqe)
	{
		on_cqe(q, cqe);
		n++;
		drain_runq(q); /* act now so that replies leave early */
	}
	io_uring_cq_advance(&q->ring, n);
}

/* E8, C7 */
static void start_syncs(struct queue *q)
{
	uint64_t t0;

	/* E8: the replies leave before a sync may block (a failed submit
	   leaves them for the next one). */
	(void)io_uring_submit(&q->ring);
	if (list_empty(&q->held)) {
		export_start_deferred(q);
		return;
	}
	t0 = clock_ns(CLOCK_MONOTONIC);
	export_start_deferred(q);
	reap(q); /* C7: the sends submitted above, done by now */
	conn_release_held(q, clock_ns(CLOCK_MONOTONIC) - t0 >= HELD_RECV_NS);
}

static void *worker_main(void *arg)
{
	struct queue *q = arg;

	/*
	 * When the client is this host's kernel (nbdfuse + loop, nbd), memory
	 * reclaim may wait on our I/O: mark the thread as an I/O flusher so
	 * its own allocations do not recurse into that reclaim.  Needs
	 * CAP_SYS_RESOURCE; without it we carry on.
	 */
	prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);
	/* liburing 2.3 declares io_uring_enable_rings() but does not
	 * export it: register directly. */
	if (q->disabled && syscall(__NR_io_uring_register, q->ring.ring_fd,
				   IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
		log_msg("worker %u: cannot enable its io_uring", q->idx);
		abort();
	}
	attach_backends(q);
	arm_evfd(q);
	for (;;) {
		int r;

		drain_runq(q);
		flush_dirty(q);
		if (!list_empty(&q->syncq)) {
			start_syncs(q);
			continue;
		}
		conn_arm_held(q);
		close_finished(q);
		if (may_exit(q))
			break;
		busy_poll(q);
		r = io_uring_submit_and_wait(&q->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			log_msg("worker %u: io_uring_submit_and_wait: %s",
				q->idx, strerror(-r));
			abort();
		}
		reap(q);
	}
	if (atomic_fetch_sub(&n_running, 1) == 1) {
		uint64_t one = 1;

		if (write(done_fd, &one, sizeof one) < 0)
			log_msg("workers: eventfd: %s", strerror(errno));
	}
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Start, connections, stop.                                          */

static void wake(struct queue *q)
{
	uint64_t one = 1;

	if (write(q->evfd, &one, sizeof one) < 0)
		log_msg("worker %u: eventfd: %s", q->idx, strerror(errno));
}

/* G3, E4: the last admitted connection went while stopping. */
static void wake_all(struct server *srv)
{
	unsigned int i;

	for (i = 0; i < n_queues; i++)
		wake(&queues[i]);
}

static int queue_init(struct queue *q, unsigned int idx, struct server *srv)
{
	struct io_uring_params p = {0};
	int r;

	q->idx = idx;
	q->srv = srv;
	pthread_mutex_init(&q->lock, NULL);
	list_init(&q->incoming);
	list_init(&q->conns);
	list_init(&q->runq);
	list_init(&q->dirty);
	list_init(&q->closeq);
	list_init(&q->syncq);
	list_init(&q->held);
	list_init(&q->calls);
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
		  IORING_SETUP_TASKRUN_FLAG; /* E7 */
	p.cq_entries = RING_ENTRIES * 8;
	r = io_uring_queue_init_params(RING_ENTRIES, &q->ring, &p);
	if (r == -EINVAL) { /* an older kernel */
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 8;
		r = io_uring_queue_init_params(RING_ENTRIES, &q->ring, &p);
	}
	if (r < 0)
		return r;
	q->disabled = p.flags & IORING_SETUP_R_DISABLED;
	q->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return q->evfd < 0 ? -errno : 0;
}

int workers_start(struct server *srv)
{
	unsigned int i;
	int r;

	n_queues = srv->n_queues ? srv->n_queues : 1;
	queues = calloc(n_queues, sizeof *queues);
	done_fd = eventfd(0, EFD_CLOEXEC);
	if (!queues || done_fd < 0)
		return -ENOMEM;
	srv->on_idle = wake_all;
	for (i = 0; i < n_queues; i++) {
		r = queue_init(&queues[i], i, srv);
		if (r < 0)
			return r;
	}
	for (i = 0; i < n_queues; i++) {
		atomic_fetch_add(&n_running, 1);
		r = pthread_create(&queues[i].thread, NULL, worker_main,
				   &queues[i]);
		if (r) {
			atomic_fetch_sub(&n_running, 1);
			return -r;
		}
	}
	return 0;
}

void workers_add_conn(int fd, const struct conn_params *params, bool tcp)
{
	struct queue *q = &queues[atomic_fetch_add(&next_queue, 1) % n_queues];
	struct pending_conn *p = calloc(1, sizeof *p);

	if (!p) {
		struct conn_params lost = *params;

		server_params_put(&lost); /* H10 */
		close(fd);
		atomic_fetch_sub(&q->srv->n_conns, 1);
		server_release(q->srv);
		return;
	}
	p->fd = fd;
	p->tcp = tcp;
	p->params = *params;
	pthread_mutex_lock(&q->lock);
	list_add_tail(&q->incoming, &p->node);
	pthread_mutex_unlock(&q->lock);
	wake(q);
}

/* Tell every worker to stop (or, with force, to end the grace period). */
static void tell_all(bool force)
{
	unsigned int i;

	for (i = 0; i < n_queues; i++) {
		struct queue *q = &queues[i];

		pthread_mutex_lock(&q->lock);
		if (force)
			q->force = true;
		else
			q->stop = true;
		pthread_mutex_unlock(&q->lock);
		wake(q);
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

	for (i = 0; i < n_queues; i++)
		pthread_join(queues[i].thread, NULL);
}
