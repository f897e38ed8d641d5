/* SPDX-License-Identifier: MIT */
/*
 * queue.h: the engine's own view of a worker (a "queue": one thread, one
 * io_uring), shared by worker.c, conn.c, request.c and export.c.  Not for
 * use outside src/engine/; backends see only queue_sqe() (backend.h).
 */
#ifndef LOOPD_ENGINE_QUEUE_H
#define LOOPD_ENGINE_QUEUE_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/sched.h"
#include "engine/server.h"
#include "util/list.h"

struct conn;
struct req;
struct server;

/* A connection that finished its handshake, waiting for its worker. */
struct pending_conn {
	struct list_node node;
	int fd;
	bool tcp;
	struct conn_params params;
};

struct queue {
	unsigned int idx;
	pthread_t thread;
	struct io_uring ring;
	bool disabled; /* created IORING_SETUP_R_DISABLED */
	int evfd; /* wakes the worker: new connections, stop, force */
	uint64_t evbuf;
	struct server *srv;

	pthread_mutex_t lock; /* protects incoming, stop and force */
	struct list_node incoming; /* struct pending_conn */
	bool stop, force; /* E4: told to stop; the grace period is over */

	/* Owned by the worker thread. */
	bool stopping, forced; /* has acted on stop / on force */
	unsigned int in_flight; /* SQEs issued, CQEs not yet seen (E4) */
	unsigned int bios; /* bios started here and not yet completed */
	unsigned int dones; /* bios and export syncs completed here, ever */
	unsigned int streak; /* E7: bios or syncs in a row completed inline */
	unsigned int lone_hits; /* E7: polls of a lone bio in a row that saw
				   it complete */
	struct list_node conns; /* struct conn */
	struct list_node runq; /* struct req: RUN and REPLY to act on */
	struct list_node dirty; /* struct conn with replies to send */
	struct list_node closeq; /* struct conn that may have finished */
	struct list_node syncq; /* export syncs to start after sends (E8) */
	struct list_node held; /* struct conn whose header receive the loop
				  has yet to arm, or holds while syncs
				  start (C7) */
	struct list_node calls; /* struct queue_call from other threads
				   (E9), under lock */
};

/*
 * E9. A call from a thread that is not a worker (the snapshot code,
 * engine/snapshot.c): fn runs on q's thread, in its loop, like a
 * completion.  queue_call() refuses (-ESHUTDOWN) once q was told to stop,
 * so an accepted call always runs; a caller that needs a second call
 * later holds q (queue_hold) in the first, and makes the second with
 * force, which is never refused.
 */
struct queue_call {
	struct list_node node;
	void (*fn)(struct queue *q, struct queue_call *c);
};
int queue_call(struct queue *q, struct queue_call *c, bool force);

/*
 * E7: a bio or sync was started when q->dones was before; if it (or
 * anything) completed during the start, it ran inline and the streak
 * grows, else it went to the device and the streak ends.
 */
static inline void queue_count_inline(struct queue *q, unsigned int before)
{
	q->streak = q->dones != before ? q->streak + 1 : 0;
}

/* The queue a new connection goes to, round-robin, and every queue (E3). */
struct queue *queue_of(unsigned int i);
unsigned int queue_count(void);

/* Act on r on q: run its I/O or queue its reply (the loop drains it). */
void queue_run(struct queue *q, struct req *r);

/*
 * Hand r to queue to, which runs it as queue_run() would, with
 * IORING_OP_MSG_RING from q (E3, R3 releases, R1 batches).
 */
void queue_handoff(struct queue *q, struct req *r, struct queue *to);

/* An injected delay (tests): cb runs on q after ms milliseconds; ts must
   live until then. */
void queue_timer(struct queue *q, struct ring_cb *cb,
		 struct __kernel_timespec *ts, unsigned int ms);

/* The connection has replies to send / may be finished. */
void queue_mark_dirty(struct queue *q, struct conn *c);
void queue_want_close(struct queue *q, struct conn *c);

#endif /* LOOPD_ENGINE_QUEUE_H */
