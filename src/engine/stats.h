/* SPDX-License-Identifier: MIT */
/*
 * stats.h: the engine's counters (stats.c): what each connection and each
 * export has served, written on the data path by one thread each with no
 * lock and no locked instruction, and summed on read by the control
 * thread (serve/control.c).  The rules N1-N6 are at the top of stats.c;
 * docs/stats.md says what each counter means.
 */
#ifndef LOOPD_ENGINE_STATS_H
#define LOOPD_ENGINE_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbd/nbd.h"
#include "nbd/proto.h"
#include "util/list.h"

struct export;
struct server;

/* Requests are counted by NBD command: NBD_CMD_READ (0) to
   NBD_CMD_BLOCK_STATUS (7), and one slot for any other type. */
#define STATS_CMDS 9
#define STATS_CMD_OTHER (STATS_CMDS - 1)
/* N5: latency bucket b holds what took less than 2^b microseconds (and
   at least 2^(b-1)); the last one holds the rest. */
#define STATS_BUCKETS 32
/* Errors are counted by errno: 1..STATS_ERRNOS-2 one by one, anything
   larger in the last slot. */
#define STATS_ERRNOS 135
#define STATS_PEER_MAX 80

/* The counters of a block, by index. */
enum stats_index {
	ST_BYTES_READ, /* READ replied with success */
	ST_BYTES_WRITTEN, /* WRITE replied with success */
	ST_FUA, /* WRITE, TRIM, WRITE_ZEROES with FUA */
	ST_WAITED_OVERLAP, /* N4: waited for an overlap (R3, R6) */
	ST_WAITED_BARRIER, /* N4: waited for, or as, a barrier (R4) */
	ST_FLUSH_SYNCED, /* N4: FLUSHes answered by a batch sync (R1) */
	ST_FLUSH_JOINED, /* N4: ... that joined a running one (R7) */
	ST_FLUSH_CLEAN, /* N4: FLUSHes answered with no sync (R7) */
	ST_SYNCS, /* export blocks: batch syncs started (R1) */
	ST_IN_FLIGHT, /* connection blocks: requests held now (C2) */
	ST_IN_FLIGHT_MAX, /* ... and the most at once: a maximum */
	ST_REQUESTS, /* [STATS_CMDS]: replied, by command */
	ST_LAT_SUM = ST_REQUESTS + STATS_CMDS, /* [STATS_CMDS]: in us */
	ST_LAT = ST_LAT_SUM + STATS_CMDS, /* [STATS_CMDS][STATS_BUCKETS] */
	ST_ERRORS = ST_LAT + STATS_CMDS * STATS_BUCKETS, /* [STATS_ERRNOS] */
	ST_N = ST_ERRORS + STATS_ERRNOS,
};

#define ST_REQ(t) (ST_REQUESTS + (t))
#define ST_LSUM(t) (ST_LAT_SUM + (t))
#define ST_LAT_B(t, b) (ST_LAT + (t)*STATS_BUCKETS + (b))
#define ST_ERR(e) (ST_ERRORS + (e))

/* N1, N2: one writer, its own cache lines. */
struct stats_block {
	_Alignas(64) _Atomic uint64_t c[ST_N];
};

/* A block as the reader sums it (N3). */
struct stats_sum {
	uint64_t c[ST_N];
};

/* A connection's block and what identifies it; in struct conn. */
struct stats_conn {
	struct stats_block b; /* N1: its worker's, at reply time */
	struct list_node node; /* in the registry (N3) */
	/* Set before stats_conn_open(), never changed after. */
	const struct export *exp;
	unsigned int id;
	unsigned int worker; /* its queue's index */
	uint64_t since_ns; /* CLOCK_REALTIME: entered transmission */
	char peer[STATS_PEER_MAX];
};

/* N1: add v to a counter that only the calling thread writes. */
static inline void stats_add(struct stats_block *b, unsigned int i, uint64_t v)
{
	atomic_store_explicit(
		&b->c[i],
		atomic_load_explicit(&b->c[i], memory_order_relaxed) + v,
		memory_order_relaxed);
}

/* N5: the latency bucket of us microseconds. */
static inline unsigned int stats_bucket(uint64_t us)
{
	unsigned int b = us ? 64u - (unsigned int)__builtin_clzll(us) : 0;

	return b < STATS_BUCKETS ? b : STATS_BUCKETS - 1;
}

/*
 * N4: a request's reply is decided (sent, or dropped with its
 * connection), on its connection's worker: nr as received, note from the
 * scheduler (sched.h), status 0 or -errno, ns since its header arrived.
 */
static inline void stats_reply(struct stats_block *b,
			       const struct nbd_request *nr, uint8_t note,
			       int status, uint64_t ns)
{
	unsigned int t =
		nr->type < STATS_CMD_OTHER ? nr->type : STATS_CMD_OTHER;
	uint64_t us = ns / 1000;

	stats_add(b, ST_REQ(t), 1);
	stats_add(b, ST_LSUM(t), us);
	stats_add(b, ST_LAT_B(t, stats_bucket(us)), 1);
	if (status < 0) {
		unsigned int e = (unsigned int)-status;

		stats_add(b, ST_ERR(e < STATS_ERRNOS ? e : STATS_ERRNOS - 1),
			  1);
	} else if (t == NBD_CMD_READ) {
		stats_add(b, ST_BYTES_READ, nr->length);
	} else if (t == NBD_CMD_WRITE) {
		stats_add(b, ST_BYTES_WRITTEN, nr->length);
	}
	if ((nr->flags & NBD_CMD_FLAG_FUA) &&
	    (t == NBD_CMD_WRITE || t == NBD_CMD_TRIM ||
	     t == NBD_CMD_WRITE_ZEROES))
		stats_add(b, ST_FUA, 1);
	if (note) {
		/* enum sched_note: OVERLAP 1, BARRIER 2, SYNCED 4, JOINED 8,
		   CLEAN 16 (static_asserts in stats.c) */
		stats_add(b, ST_WAITED_OVERLAP, note & 1);
		stats_add(b, ST_WAITED_BARRIER, (note >> 1) & 1);
		stats_add(b, ST_FLUSH_SYNCED, (note >> 2) & 1);
		stats_add(b, ST_FLUSH_JOINED, (note >> 3) & 1);
		stats_add(b, ST_FLUSH_CLEAN, (note >> 4) & 1);
	}
}

/* N1: a connection now holds n requests (C2). */
static inline void stats_in_flight(struct stats_block *b, unsigned int n)
{
	atomic_store_explicit(&b->c[ST_IN_FLIGHT], n, memory_order_relaxed);
	if (n >
	    atomic_load_explicit(&b->c[ST_IN_FLIGHT_MAX], memory_order_relaxed))
		atomic_store_explicit(&b->c[ST_IN_FLIGHT_MAX], n,
				      memory_order_relaxed);
}

/*
 * Before the workers start: one block per worker for every export
 * (exp->stats, freed by export_close).  0 or -ENOMEM.
 */
int stats_init(struct server *srv);

/* N3: a connection's stats_conn, filled in, enters the registry; at its
 * close its counters are folded into its export's block for its worker. */
void stats_conn_open(struct stats_conn *sc);
void stats_conn_close(struct stats_conn *sc);

/* What one read of the counters gives (N3), for serve/statsdoc.c. */
struct stats_export_view {
	const struct export *exp;
	struct stats_sum sum; /* its connections, open and closed */
	unsigned int conns; /* open now */
	/* From its scheduler, under its lock. */
	uint32_t in_flight, in_flight_max; /* received, not yet replied */
	uint64_t early_syncs; /* R7 */
	bool latched; /* R5 */
	int latch_err; /* N6: the errno, positive */
	const char *latch_op; /* N6: "sync", "FUA WRITE", ... */
};

struct stats_conn_view {
	unsigned int id;
	size_t export; /* index in srv->exports */
	uint64_t since_ns;
	char peer[STATS_PEER_MAX];
	struct stats_sum sum;
};

struct stats_view {
	struct stats_export_view *exports; /* srv->n_exports */
	size_t n_exports;
	struct stats_conn_view *conns; /* by connection number */
	size_t n_conns;
};

/* Read every counter (N3).  0 or -ENOMEM.  Any thread but a worker. */
int stats_collect(struct server *srv, struct stats_view *v);
void stats_view_free(struct stats_view *v);

#endif /* LOOPD_ENGINE_STATS_H */
