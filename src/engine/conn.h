/* SPDX-License-Identifier: MIT */
/*
 * conn.h: one client connection in the transmission phase: receiving and
 * parsing its requests, sending their replies in batches, closing it.
 * Engine-private.
 */
#ifndef LOOPD_ENGINE_CONN_H
#define LOOPD_ENGINE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "engine/backend.h"
#include "engine/stats.h"
#include "nbd/proto.h"
#include "util/list.h"

struct dirty_map;
struct export;
struct pending_conn;
struct queue;
struct req;

#define CONN_IOV_BATCH 64 /* iovecs in one sendmsg */

/*
 * C1. A connection is in one state.  OPEN reads requests; PAUSED stops
 *     reading while too much is in flight (C2) and reads again below half;
 *     DRAINING reads no more (the client closed, sent DISC, or the server
 *     stops) but answers what is in flight; BROKEN (a broken stream, a
 *     failed send, no memory, the end of the grace period) drops the
 *     replies still to send.  A DRAINING or BROKEN connection closes once
 *     nothing of it is in flight (conn_maybe_close).  States only move
 *     forward, except PAUSED back to OPEN.
 */
enum conn_state {
	CONN_OPEN,
	CONN_PAUSED,
	CONN_DRAINING,
	CONN_BROKEN,
};

struct conn {
	struct stats_conn st; /* its counters (N1), first: 64-byte aligned */
	struct list_node node; /* in queue->conns */
	struct list_node dirty_node; /* in queue->dirty */
	struct list_node close_node; /* in queue->closeq */
	struct list_node held_node; /* in queue->held (C7) */
	struct queue *q;
	int fd;
	unsigned int id;
	struct export *exp;
	struct proto_view view;
	uint32_t meta_id; /* base:allocation's context id */
	struct dirty_map *dirty_map; /* the checkpoint selected, held (H10 in
					serve/handshake.c), or NULL */
	uint32_t dirty_id; /* its context id */
	enum conn_state state;

	/* Receive side. */
	uint8_t *rxbuf;
	size_t rx_start, rx_end;
	struct req *rx_req; /* WRITE whose payload is arriving */
	uint64_t rx_skip; /* bytes of a rejected payload to discard */
	bool recv_inflight;
	bool recv_to_payload; /* the recv in flight fills rx_req */
	uint64_t rx_ns; /* N5: when the last recv completed */
	struct ring_cb recv_cb;

	/* Send side. */
	struct list_node txq; /* replies waiting for a send */
	struct list_node sending; /* replies in the send in flight */
	struct msghdr msg;
	struct iovec iov[CONN_IOV_BATCH];
	bool send_inflight;
	struct ring_cb send_cb;

	/* The request pool and the in-flight budget (C2). */
	unsigned int inflight; /* requests allocated, not yet recycled */
	size_t inflight_bytes; /* their data buffers */
	unsigned int spread; /* E3 round-robin */
	struct list_node free_reqs;
	unsigned int n_free;
	size_t free_bytes; /* buffer bytes held by free_reqs */
};

/* A new connection on q. */
void conn_start(struct queue *q, const struct pending_conn *p);

/* Read and parse what the connection has buffered; receive more (C1). */
void conn_receive(struct conn *c);

/* C7: arm the header receives queued since the last pass of the loop. */
void conn_arm_held(struct queue *q);
/* C7: the receives held while syncs started; long_sync: one of them ran
   on this thread for long enough that a client's next request may be
   waiting. */
void conn_release_held(struct queue *q, bool long_sync);

/* A request was freed: resume reading if it was paused (C2). */
void conn_request_done(struct conn *c);

/* Queue r's encoded reply for sending. */
void conn_push_reply(struct conn *c, struct req *r);

/* Send what is queued (called by the loop for dirty connections). */
void conn_send(struct conn *c);

/* C1: beyond use; or: no longer reading. */
void conn_abort(struct conn *c);
void conn_stop_reading(struct conn *c);

/* C1: free the connection if nothing of it is in flight. */
void conn_maybe_close(struct conn *c);

/* A reply may go out on c (it is not BROKEN). */
static inline bool conn_alive(const struct conn *c)
{
	return c->state != CONN_BROKEN;
}

#endif /* LOOPD_ENGINE_CONN_H */
