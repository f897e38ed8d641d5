/* SPDX-License-Identifier: MIT */
/*
 * stats.c: the engine's counters (stats.h): the blocks, the registry of
 * open connections, and the read that sums them for `loopd ctl stats`
 * and --stats-file (serve/control.c, serve/statsdoc.c).
 *
 * N1. One writer per block.  A connection's block is written only by its
 *     worker, and an export's block for worker w only by w, so a counter
 *     is a relaxed atomic load and store of its own thread (two plain
 *     moves on x86-64): no lock and no locked instruction on the data
 *     path.  The reader loads each counter with a relaxed load.
 * N2. No shared cache lines.  Blocks are 64-byte aligned and a multiple
 *     of 64 bytes long: a connection's lives in its struct conn, allocated
 *     aligned, and an export has one block per worker.  Two workers never
 *     write one line.
 * N3. Reading.  Open connections sit in one registry under one mutex,
 *     which only connection start and close and the reader take.  A
 *     connection that closes folds its block into its export's block for
 *     its worker and leaves the registry under that mutex, so a read
 *     counts each request exactly once.  Counters only grow (the in-flight
 *     gauges aside); one read is not one instant across counters: a
 *     request being replied to may show in one and not yet in the next.
 * N4. What is counted, and when.  A request is counted once, on its
 *     connection's worker, when its reply is decided (queued for the
 *     socket, or dropped with a broken connection): its command, its
 *     latency, its errno, its bytes (READ and WRITE that succeeded), FUA,
 *     and the scheduler's notes (sched_req.note: whether it waited for an
 *     overlapping request (R3, R6) or a barrier (R4), and how a FLUSH was
 *     answered: by a batch sync, joined to a running one, or clean, R1,
 *     R7).  The scheduler stays pure: it sets bits, the engine counts
 *     them.  A batch sync is counted when the worker issuing it starts it
 *     (export.c), whatever its outcome.  A request refused before the
 *     scheduler (a bad request, no memory) is counted with its error.
 * N5. Latency runs from the completion of the receive that brought the
 *     request's header (all headers of one receive share it) to N4's
 *     decision: the wait for a paused connection (C2), the scheduler,
 *     the I/O and any sync, but not the send.  Buckets are powers of two
 *     of microseconds (stats_bucket()).
 * N6. The latch (R5).  Whoever latches the export first records, under
 *     the export's lock, the errno and the operation that failed: the
 *     batch sync (export.c) or a FUA write, TRIM or WRITE_ZEROES
 *     (request.c).  Later failures change nothing.
 */
#include "engine/stats.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/export.h"
#include "engine/sched.h"
#include "engine/server.h"

/* stats_reply() reads the note bits by position. */
_Static_assert(SCHED_NOTE_OVERLAP == 1 && SCHED_NOTE_BARRIER == 2 &&
		       SCHED_NOTE_SYNCED == 4 && SCHED_NOTE_JOINED == 8 &&
		       SCHED_NOTE_CLEAN == 16,
	       "stats_reply() reads enum sched_note by bit");
_Static_assert(sizeof(struct stats_block) % 64 == 0, "N2");

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct list_node reg = {&reg, &reg}; /* struct stats_conn */
static size_t reg_n;
static unsigned int n_workers;

int stats_init(struct server *srv)
{
	size_t i, len;

	n_workers = srv->n_queues ? srv->n_queues : 1;
	len = n_workers * sizeof(struct stats_block);
	for (i = 0; i < srv->n_exports; i++) {
		struct export *exp = srv->exports[i];

		exp->stats = aligned_alloc(64, len); /* N2 */
		if (!exp->stats)
			return -ENOMEM;
		memset(exp->stats, 0, len);
	}
	return 0;
}

void stats_conn_open(struct stats_conn *sc)
{
	pthread_mutex_lock(&reg_lock);
	list_add_tail(&reg, &sc->node);
	reg_n++;
	pthread_mutex_unlock(&reg_lock);
}

/* N3: the closing connection's worker is the only writer of both. */
void stats_conn_close(struct stats_conn *sc)
{
	struct stats_block *to = &sc->exp->stats[sc->worker];
	unsigned int i;
	uint64_t v, m;

	pthread_mutex_lock(&reg_lock);
	for (i = 0; i < ST_N; i++) {
		v = atomic_load_explicit(&sc->b.c[i], memory_order_relaxed);
		if (i == ST_IN_FLIGHT)
			continue; /* a gauge, and 0 by now */
		if (i == ST_IN_FLIGHT_MAX) {
			m = atomic_load_explicit(&to->c[i],
						 memory_order_relaxed);
			if (v > m)
				atomic_store_explicit(&to->c[i], v,
						      memory_order_relaxed);
			continue;
		}
		if (v)
			stats_add(to, i, v);
	}
	list_del(&sc->node);
	reg_n--;
	pthread_mutex_unlock(&reg_lock);
}

/* N3: add block b to sum s with relaxed loads. */
static void sum_add(struct stats_sum *s, const struct stats_block *b)
{
	unsigned int i;
	uint64_t v;

	for (i = 0; i < ST_N; i++) {
		v = atomic_load_explicit(&b->c[i], memory_order_relaxed);
		if (i == ST_IN_FLIGHT_MAX)
			s->c[i] = v > s->c[i] ? v : s->c[i];
		else
			s->c[i] += v;
	}
}

static size_t export_index(const struct server *srv, const struct export *e)
{
	size_t i;

	for (i = 0; i < srv->n_exports; i++)
		if (srv->exports[i] == e)
			break;
	return i;
}

static int by_id(const void *a, const void *b)
{
	const struct stats_conn_view *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/* N3: every block, under the registry's mutex. */
static int collect_blocks(struct server *srv, struct stats_view *v)
{
	struct list_node *n;
	size_t i, k = 0;
	unsigned int w;

	pthread_mutex_lock(&reg_lock);
	v->conns = calloc(reg_n + 1, sizeof *v->conns);
	if (!v->conns) {
		pthread_mutex_unlock(&reg_lock);
		return -ENOMEM;
	}
	for (i = 0; i < srv->n_exports; i++)
		for (w = 0; w < n_workers; w++)
			sum_add(&v->exports[i].sum, &srv->exports[i]->stats[w]);
	list_for_each(n, &reg)
	{
		const struct stats_conn *sc =
			list_entry(n, struct stats_conn, node);
		struct stats_conn_view *cv = &v->conns[k++]; /* reg_n of them */

		cv->id = sc->id;
		cv->export = export_index(srv, sc->exp);
		cv->since_ns = sc->since_ns;
		memcpy(cv->peer, sc->peer, sizeof cv->peer);
		sum_add(&cv->sum, &sc->b);
		if (cv->export < srv->n_exports) {
			struct stats_export_view *ev = &v->exports[cv->export];

			sum_add(&ev->sum, &sc->b);
			ev->conns++;
		}
	}
	v->n_conns = k;
	pthread_mutex_unlock(&reg_lock);
	/* The open connection's in-flight gauge is the export's business
	   (its scheduler's); a sum of maxima would mean nothing. */
	for (i = 0; i < srv->n_exports; i++)
		v->exports[i].sum.c[ST_IN_FLIGHT] =
			v->exports[i].sum.c[ST_IN_FLIGHT_MAX] = 0;
	qsort(v->conns, v->n_conns, sizeof *v->conns, by_id);
	return 0;
}

int stats_collect(struct server *srv, struct stats_view *v)
{
	size_t i;
	int r;

	memset(v, 0, sizeof *v);
	v->n_exports = srv->n_exports;
	v->exports =
		calloc(srv->n_exports ? srv->n_exports : 1, sizeof *v->exports);
	if (!v->exports)
		return -ENOMEM;
	r = collect_blocks(srv, v);
	if (r < 0) {
		stats_view_free(v);
		return r;
	}
	for (i = 0; i < srv->n_exports; i++) {
		struct export *exp = srv->exports[i];
		struct stats_export_view *ev = &v->exports[i];

		ev->exp = exp;
		pthread_mutex_lock(&exp->lock);
		ev->in_flight = sched_pending(&exp->sched);
		ev->in_flight_max = exp->sched.stats.max_pending;
		ev->early_syncs = exp->sched.stats.early_syncs;
		ev->latched = sched_failed(&exp->sched);
		ev->latch_err = exp->latch_err; /* N6 */
		ev->latch_op = exp->latch_op;
		pthread_mutex_unlock(&exp->lock);
	}
	return 0;
}

void stats_view_free(struct stats_view *v)
{
	free(v->exports);
	free(v->conns);
	memset(v, 0, sizeof *v);
}
