/* SPDX-License-Identifier: MIT */
/*
 * conn.c: one client connection in the transmission phase (conn.h):
 * receive its bytes, parse and validate request headers (proto.c), take in
 * WRITE payloads, send the replies in batches, close it.  All on the
 * connection's worker thread, through its ring.
 *
 * C1 (states) is in conn.h.
 * C2. Budget.  At most MAX_INFLIGHT requests and budget_bytes() of
 *     request buffers are in flight per connection; past either the
 *     connection is PAUSED until it is below half of both.  A client that
 *     stops reading its replies so pins at most this much (one request may
 *     exceed it).  The byte budget is a share of SHARED_INFLIGHT_BYTES
 *     among the open connections, between MIN_INFLIGHT_BYTES and
 *     MAX_INFLIGHT_BYTES: one connection may have 16 MiB in flight, what
 *     the peers allow; 64 connections 4 MiB each, which gives the same
 *     throughput as 16 MiB at a quarter of the memory (bench/README.md,
 *     "Memory").
 * C3. A rejected WRITE's payload is read and dropped to stay in sync, up to
 *     MAX_SKIP bytes; a larger one ends the connection.
 * C4. We ask for a header only once the buffer is drained, so the socket is
 *     usually empty: the receive waits for data first (POLL_FIRST) instead
 *     of trying a recv that fails with EAGAIN and then arming a poll.
 * C5. A WRITE whose payload will not be read to its end (the connection
 *     stopped reading or was aborted, and no receive is in flight) is
 *     dropped: freed, never run and never replied to.  The client had no
 *     reply, so nothing it was told is lost; kept, it would hold the
 *     connection open for good, and with it the server's stop (E4).
 * C6. The rest of a WRITE's payload is first taken with a plain
 *     non-blocking recv: a client sends a header and its payload back to
 *     back, so the payload is usually there by the time the header is
 *     parsed, and the ring would cost one more round trip for it (a
 *     second wait and completion per WRITE at QD1).  Whatever it does not
 *     get (EAGAIN, a part, an error or EOF) is asked of the ring as
 *     before, which also reports the error.
 * C7. A header's receive is armed by the worker's loop (conn_arm_held),
 *     not where it is asked for, and while syncs are about to start (E8)
 *     it waits until they have: a sync may run inline (F7) and block the
 *     worker, and a client at QD1 sends its next request, the FLUSH
 *     after its WRITE's reply, while it runs.  When the syncs kept the
 *     worker longer than a client's round trip (HELD_RECV_NS), the held
 *     receive is first a plain non-blocking recv, which finds that
 *     request in the socket; the ring would need one more io_uring_enter
 *     to run the receive's task work.  The sends submitted before the
 *     syncs are reaped first, so the new reply is not left behind the one
 *     send in flight per connection.  Whatever the plain recv does not
 *     get goes to the ring as before, which also reports errors.
 */
#include "engine/conn.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dirty.h"
#include "engine/export.h"
#include "engine/queue.h"
#include "engine/request.h"
#include "engine/server.h"
#include "util/clock.h"
#include "util/log.h"

#define RXBUF_SIZE (64 * 1024)
#define MAX_INFLIGHT 256 /* C2 */
#define MAX_INFLIGHT_BYTES ((size_t)16 << 20) /* C2 */
#define MIN_INFLIGHT_BYTES ((size_t)2 << 20) /* C2 */
#define SHARED_INFLIGHT_BYTES ((size_t)256 << 20) /* C2 */
#define MAX_SKIP ((uint64_t)4 * EXPORT_MAX_PAYLOAD) /* C3 */

static atomic_uint next_conn_id;

static void on_recv(struct ring_cb *cb, int res);
static void on_send(struct ring_cb *cb, int res);

/* ---------------------------------------------------------------- */
/* States (C1).                                                       */

void conn_abort(struct conn *c)
{
	c->state = CONN_BROKEN;
	shutdown(c->fd, SHUT_RDWR);
	queue_want_close(c->q, c);
}

void conn_stop_reading(struct conn *c)
{
	if (c->state == CONN_OPEN || c->state == CONN_PAUSED)
		c->state = CONN_DRAINING;
	queue_want_close(c->q, c);
}

/* C2: this connection's share of the request buffers. */
static size_t budget_bytes(const struct conn *c)
{
	unsigned int n =
		atomic_load_explicit(&c->q->srv->n_conns, memory_order_relaxed);
	size_t b = n ? SHARED_INFLIGHT_BYTES / n : MAX_INFLIGHT_BYTES;

	return b < MIN_INFLIGHT_BYTES	? MIN_INFLIGHT_BYTES
	       : b > MAX_INFLIGHT_BYTES ? MAX_INFLIGHT_BYTES
					: b;
}

void conn_request_done(struct conn *c)
{
	if (c->state == CONN_PAUSED && c->inflight < MAX_INFLIGHT / 2 &&
	    c->inflight_bytes < budget_bytes(c) / 2) {
		c->state = CONN_OPEN;
		conn_receive(c);
	}
	queue_want_close(c->q, c);
}

/* ---------------------------------------------------------------- */
/* Receiving and parsing requests.                                    */

/* C7: a receive into the buffer (at c->rxbuf + c->rx_end: request
   headers, skipped payloads), armed by the loop (conn_arm_held). */
static void want_rxbuf(struct conn *c)
{
	c->recv_inflight = true;
	c->recv_to_payload = false;
	list_add_tail(&c->q->held, &c->held_node);
}

/* The rest of the current WRITE's payload, straight into its buffer. */
static void submit_payload_recv(struct conn *c, void *buf, size_t len)
{
	io_uring_prep_recv(queue_sqe(c->q, &c->recv_cb), c->fd, buf, len,
			   MSG_WAITALL);
	c->recv_inflight = true;
	c->recv_to_payload = true;
}

/* A plain non-blocking recv (C6, C7): its bytes, or a negative errno. */
static int recv_now(struct conn *c, void *buf, size_t len)
{
	ssize_t k;

	do
		k = recv(c->fd, buf, len, MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	return k < 0 ? -errno : (int)k;
}

/*
 * A header was decoded: validate it and take the request in.  Returns
 * false when the connection must stop reading (DISC, or a payload too
 * large to skip).
 */
static bool on_request(struct conn *c, const struct nbd_request *nr)
{
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
			c->rx_skip = nr->length; /* C3 */
		}
		req_reply_error(c, nr, err);
		return true;
	}
	if (nr->type == NBD_CMD_DISC)
		return false; /* finish what is in flight, then close */
	r = req_alloc(c);
	if (r) {
		r->nr = *nr;
		if ((nr->type == NBD_CMD_READ || nr->type == NBD_CMD_WRITE) &&
		    nr->length && req_prepare(r) < 0) {
			req_free(r);
			r = NULL;
		}
	}
	if (!r) {
		if (proto_has_payload(nr))
			c->rx_skip = nr->length;
		req_reply_error(c, nr, -ENOMEM);
		return true;
	}
	if (nr->type == NBD_CMD_WRITE && nr->length) {
		c->rx_req = r; /* the payload follows */
		return true;
	}
	req_dispatch(r);
	return true;
}

/* n more bytes of r's payload arrived; true if that was the last of them
   (r is dispatched). */
static bool payload_got(struct conn *c, struct req *r, size_t n)
{
	r->rx_got += (uint32_t)n;
	if (r->rx_got != r->nr.length)
		return false;
	c->rx_req = NULL;
	req_dispatch(r);
	return true;
}

/* C6: take what the socket already has of r's payload; true if that was
   all of it (r is dispatched). */
static bool recv_payload_now(struct conn *c, struct req *r)
{
	int k = recv_now(c, r->io.data + r->rx_got, r->nr.length - r->rx_got);

	/* k <= 0: the ring's recv waits, or reports it */
	return k > 0 && payload_got(c, r, (size_t)k);
}

/*
 * Take bytes of the current WRITE's payload from the buffer.  Returns
 * false when the rest must be received first (a recv was issued, or the
 * connection stops reading).
 */
static bool take_payload(struct conn *c)
{
	struct req *r = c->rx_req;
	size_t avail = c->rx_end - c->rx_start;
	size_t need = r->nr.length - r->rx_got;
	size_t n = avail < need ? avail : need;

	memcpy(r->io.data + r->rx_got, c->rxbuf + c->rx_start, n);
	c->rx_start += n;
	if (payload_got(c, r, n))
		return true;
	if (c->state != CONN_OPEN) { /* C5: the rest will never come */
		/* C2 pauses only between requests */
		assert(c->state != CONN_PAUSED);
		c->rx_req = NULL;
		req_free(r);
		return false;
	}
	c->rx_start = c->rx_end = 0;
	if (recv_payload_now(c, r))
		return true;
	/* Receive the rest straight into the buffer. */
	submit_payload_recv(c, r->io.data + r->rx_got,
			    r->nr.length - r->rx_got);
	return false;
}

/* C3: drop bytes of a rejected payload.  False: a recv was issued. */
static bool skip_payload(struct conn *c)
{
	size_t avail = c->rx_end - c->rx_start;
	size_t n = avail < c->rx_skip ? avail : c->rx_skip;

	c->rx_start += n;
	c->rx_skip -= n;
	if (!c->rx_skip)
		return true;
	if (c->state == CONN_OPEN) {
		c->rx_start = c->rx_end = 0;
		want_rxbuf(c);
	}
	return false;
}

/* Consume buffered bytes; issue the next recv if more are needed. */
void conn_receive(struct conn *c)
{
	for (;;) {
		size_t avail = c->rx_end - c->rx_start;
		struct nbd_request nr;

		if (c->recv_inflight)
			return;
		if (c->rx_req) {
			if (!take_payload(c))
				return;
			continue;
		}
		if (c->rx_skip) {
			if (!skip_payload(c))
				return;
			continue;
		}
		if (c->state != CONN_OPEN)
			return;
		if (c->inflight >= MAX_INFLIGHT ||
		    c->inflight_bytes >= budget_bytes(c)) {
			c->state = CONN_PAUSED; /* C2 */
			return;
		}
		if (avail < PROTO_REQUEST_SIZE) {
			if (c->rx_start) {
				memmove(c->rxbuf, c->rxbuf + c->rx_start,
					avail);
				c->rx_start = 0;
				c->rx_end = avail;
			}
			want_rxbuf(c);
			return;
		}
		if (proto_decode_request(c->rxbuf + c->rx_start, &nr) < 0) {
			log_msg("conn %u: bad request magic; disconnecting",
				c->id);
			conn_abort(c);
			return;
		}
		c->rx_start += PROTO_REQUEST_SIZE;
		if (!on_request(c, &nr)) {
			conn_stop_reading(c);
			return;
		}
	}
}

static void on_recv(struct ring_cb *cb, int res)
{
	struct conn *c = container_of(cb, struct conn, recv_cb);

	c->recv_inflight = false;
	if (res > 0)
		c->rx_ns = clock_ns(CLOCK_MONOTONIC); /* N5 */
	if (res == -EAGAIN || res == -EINTR) {
		conn_receive(c);
		return;
	}
	if (res <= 0) {
		if (res < 0 && res != -ECONNRESET && !c->q->stopping)
			log_msg("conn %u: recv: %s", c->id, strerror(-res));
		if (c->rx_req) { /* a disconnect in the middle of a payload */
			struct req *r = c->rx_req;

			c->rx_req = NULL;
			req_free(r);
		}
		conn_stop_reading(c);
		return;
	}
	if (c->recv_to_payload) { /* it went straight into the payload */
		(void)payload_got(c, c->rx_req, (size_t)res);
	} else {
		c->rx_end += (size_t)res;
	}
	conn_receive(c);
}

/* C7: a header's receive goes to the ring, with POLL_FIRST (C4). */
void conn_arm_held(struct queue *q)
{
	struct list_node *n;

	while ((n = list_pop(&q->held))) {
		struct conn *c = list_entry(n, struct conn, held_node);
		struct io_uring_sqe *sqe = queue_sqe(q, &c->recv_cb);

		io_uring_prep_recv(sqe, c->fd, c->rxbuf + c->rx_end,
				   RXBUF_SIZE - c->rx_end, 0);
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST; /* C4 */
	}
}

/* C7 */
void conn_release_held(struct queue *q, bool long_sync)
{
	struct list_node held, *n;

	list_init(&held);
	while ((n = list_pop(&q->held)))
		list_add_tail(&held, n);
	while ((n = list_pop(&held))) {
		struct conn *c = list_entry(n, struct conn, held_node);
		int res = long_sync ? recv_now(c, c->rxbuf + c->rx_end,
					       RXBUF_SIZE - c->rx_end)
				    : -EAGAIN;

		on_recv(&c->recv_cb, res); /* -EAGAIN: back to the ring */
	}
}

/* ---------------------------------------------------------------- */
/* Sending replies.                                                   */

void conn_push_reply(struct conn *c, struct req *r)
{
	list_add_tail(&c->txq, &r->node);
	queue_mark_dirty(c->q, c);
}

static void prep_send(struct conn *c)
{
	struct io_uring_sqe *sqe = queue_sqe(c->q, &c->send_cb);

	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	c->send_inflight = true;
}

/* Start a sendmsg of as many queued replies as fit in one iovec batch. */
void conn_send(struct conn *c)
{
	struct list_node *n;
	int k = 0;

	if (c->send_inflight || list_empty(&c->txq))
		return;
	while ((n = list_first(&c->txq)) && k + 2 <= CONN_IOV_BATCH) {
		struct req *r = list_entry(n, struct req, node);

		c->iov[k].iov_base = r->hdr;
		c->iov[k++].iov_len = r->hdr_len;
		if (r->payload == PROTO_PAYLOAD_DATA) {
			c->iov[k].iov_base = r->io.data;
			c->iov[k++].iov_len = r->nr.length;
		} else if (r->payload == PROTO_PAYLOAD_EXTENTS) {
			c->iov[k].iov_base = r->ext;
			c->iov[k++].iov_len = r->ext_len;
		}
		list_del(n);
		list_add_tail(&c->sending, n);
	}
	memset(&c->msg, 0, sizeof c->msg);
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = (size_t)k;
	prep_send(c);
}

static void free_list(struct list_node *head)
{
	struct list_node *n;

	while ((n = list_pop(head)))
		req_free(list_entry(n, struct req, node));
}

static void on_send(struct ring_cb *cb, int res)
{
	struct conn *c = container_of(cb, struct conn, send_cb);
	struct msghdr *m = &c->msg;
	size_t done;

	c->send_inflight = false;
	if (res == -EAGAIN || res == -EINTR)
		res = 0;
	if (res < 0) {
		if (res != -EPIPE && res != -ECONNRESET && !c->q->forced)
			log_msg("conn %u: send: %s", c->id, strerror(-res));
		conn_abort(c);
		free_list(&c->sending);
		free_list(&c->txq);
		return;
	}
	/* Skip what was sent; send the rest (a partial send). */
	done = (size_t)res;
	while (m->msg_iovlen && done >= m->msg_iov->iov_len) {
		done -= m->msg_iov->iov_len;
		m->msg_iov++;
		m->msg_iovlen--;
	}
	if (m->msg_iovlen) {
		m->msg_iov->iov_base = (uint8_t *)m->msg_iov->iov_base + done;
		m->msg_iov->iov_len -= done;
		prep_send(c);
		return;
	}
	free_list(&c->sending);
	if (!list_empty(&c->txq))
		queue_mark_dirty(c->q, c);
	queue_want_close(c->q, c);
}

/* ---------------------------------------------------------------- */
/* Start and close.                                                   */

void conn_maybe_close(struct conn *c)
{
	struct server *srv = c->q->srv;

	if (c->state < CONN_DRAINING || c->inflight || c->recv_inflight ||
	    c->send_inflight || !list_empty(&c->txq) ||
	    list_linked(&c->dirty_node))
		return;
	list_del(&c->node);
	if (log_verbose)
		log_msg("conn %u: closed", c->id);
	stats_conn_close(&c->st); /* N3 */
	if (c->dirty_map) /* H10 in serve/handshake.c */
		dirty_put(c->exp->dirty, c->dirty_map);
	/* Free the slot first: the client may reconnect on EOF. */
	atomic_fetch_sub(&srv->n_conns, 1);
	close(c->fd);
	req_pool_drain(&c->free_reqs);
	free(c->rxbuf);
	free(c);
	server_release(srv); /* E4: may let every worker exit */
}

void conn_start(struct queue *q, const struct pending_conn *p)
{
	struct conn *c = aligned_alloc(64, sizeof *c); /* N2 */
	struct export *exp = p->params.exp;

	if (c)
		memset(c, 0, sizeof *c);
	if (!c || !(c->rxbuf = malloc(RXBUF_SIZE))) {
		log_msg("out of memory for a new connection");
		free(c);
		if (p->params.meta_dirty) /* H10 in serve/handshake.c */
			dirty_put(exp->dirty, p->params.meta_dirty);
		close(p->fd);
		atomic_fetch_sub(&q->srv->n_conns, 1);
		server_release(q->srv);
		return;
	}
	c->q = q;
	c->fd = p->fd;
	c->id = atomic_fetch_add(&next_conn_id, 1) + 1;
	c->exp = exp;
	c->view = (struct proto_view){
		.size = exp->size,
		.tflags = p->params.tflags,
		.min_block = exp->min_block,
		.max_payload = exp->max_payload,
		.structured = p->params.structured,
		.meta_alloc = p->params.meta_alloc,
		.meta_dirty = p->params.meta_dirty != NULL,
	};
	c->meta_id = p->params.meta_alloc_id;
	c->dirty_map = p->params.meta_dirty; /* now the connection's (H10) */
	c->dirty_id = p->params.meta_dirty_id;
	c->recv_cb.fn = on_recv;
	c->send_cb.fn = on_send;
	list_init(&c->txq);
	list_init(&c->sending);
	list_init(&c->free_reqs);
	if (p->tcp) {
		int one = 1;

		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	list_add_tail(&q->conns, &c->node);
	c->st.exp = exp;
	c->st.id = c->id;
	c->st.worker = q->idx;
	c->st.since_ns = clock_ns(CLOCK_REALTIME);
	memcpy(c->st.peer, p->params.peer, sizeof c->st.peer);
	c->st.peer[sizeof c->st.peer - 1] = 0;
	stats_conn_open(&c->st); /* N3 */
	if (log_verbose)
		log_msg("conn %u: transmission on export \"%s\"", c->id,
			exp->name);
	conn_receive(c);
}
