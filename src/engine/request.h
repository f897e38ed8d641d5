/* SPDX-License-Identifier: MIT */
/*
 * request.h: one NBD request inside the engine, from its header to its
 * reply: the per-connection pool it comes from, the scheduler calls that
 * order it, the bio the backend carries out, and the reply it gets.
 * Engine-private.
 */
#ifndef LOOPD_ENGINE_REQUEST_H
#define LOOPD_ENGINE_REQUEST_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/sched.h"
#include "nbd/proto.h"
#include "util/list.h"

struct conn;
struct queue;
struct export;

struct req {
	struct sched_req s; /* the scheduler's part */
	struct bio io; /* the backend's part */
	struct conn *conn;
	struct queue *iow; /* runs its I/O: its connection's queue, or
			      another (E3) */
	struct list_node node; /* run queue, send queue or free list */
	struct nbd_request nr;
	uint8_t *buf; /* aligned data window (B5), reused */
	size_t cap; /* allocated size of buf */
	size_t held; /* bytes counted in the connection's budget */
	uint32_t rx_got; /* WRITE payload bytes received */
	uint64_t t_recv; /* N5: CLOCK_MONOTONIC ns, its header arrived */
	bool recorded; /* its RECV is in the trace: record its REPLY */
	bool started; /* its bio was submitted and has not completed */
	uint8_t hdr[PROTO_REPLY_HDR_MAX]; /* reply header */
	uint8_t hdr_len;
	uint8_t payload; /* enum proto_payload after the header */
	uint8_t *ext; /* BLOCK_STATUS: the reply after its header (P1) */
	size_t ext_len;
	struct proto_status_chunk st[PROTO_STATUS_CHUNKS]; /* its chunks */
	uint8_t n_st;
	struct ring_cb delay_cb; /* an injected delay expired */
	struct __kernel_timespec ts;
};

/* The pool: a request of c, recycled buffers included; NULL: no memory. */
struct req *req_alloc(struct conn *c);
/* r->buf holds at least len bytes.  0 or -ENOMEM. */
int req_reserve(struct req *r, size_t len);
/* r is done (replied, or dropped): back to its connection's pool. */
void req_free(struct req *r);
/* READ, WRITE: the data window and the budget (B5, C2).  0 or -ENOMEM. */
int req_prepare(struct req *r);
/* Free the pool's spare requests (the connection closes). */
void req_pool_drain(struct list_node *free_reqs);

/*
 * A valid request has arrived whole (header and payload): hand it to the
 * scheduler (recorded first, K1) and act on what it decides.
 */
void req_dispatch(struct req *r);

/* Reply at once, without the scheduler: a refused request. */
void req_reply_error(struct conn *c, const struct nbd_request *nr, int err);

/* On q's loop: r was given RUN (start its I/O) or REPLY (queue it). */
void req_act(struct queue *q, struct req *r);

/* Act on what one scheduler call decided.  Without exp->lock. */
void engine_events(struct queue *q, struct sched_out *o, struct export *exp);

#endif /* LOOPD_ENGINE_REQUEST_H */
