/* SPDX-License-Identifier: MIT */
/*
 * sched.h: the request scheduler.  No I/O, no sockets, no threads.
 *
 * One struct sched per export.  Requests of every connection of the export
 * enter through sched_submit() in arrival order; the scheduler says, through
 * a struct sched_out, when each may RUN its I/O, when a sync (fdatasync of
 * the export's file) must be issued, and when each may REPLY.  The rules
 * R1..R6 are written out at the top of sched.c and in docs/semantics.md.
 *
 * Locking: the scheduler is not thread-safe.  The caller holds the export's
 * lock around every call, and acts on the returned events after dropping it.
 *
 * Lifetime: the caller owns every struct sched_req (it is embedded in the
 * caller's request).  After the scheduler emits SCHED_REPLY for a request it
 * never touches that request again.
 */
#ifndef LOOPD_SCHED_H
#define LOOPD_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "util/list.h"
#include "util/modes.h"

enum sched_kind {
	SCHED_READ, /* reads data or metadata: READ, CACHE, BLOCK_STATUS */
	SCHED_WRITE, /* changes data: WRITE, TRIM, WRITE_ZEROES */
	SCHED_FLUSH, /* FLUSH */
	SCHED_NOP, /* needs no I/O and no ordering; replied at once */
	SCHED_SNAP, /* a capture point (R8): a live snapshot's instant P */
};

enum sched_action {
	SCHED_RUN = 1, /* caller issues the request's I/O, then calls
			  sched_complete() */
	SCHED_REPLY, /* caller replies with req->status */
};

/*
 * What the scheduler did with a request, for the counters (N4 in
 * engine/stats.c): set as it happens, complete at REPLY.  Bits.
 */
enum sched_note {
	SCHED_NOTE_OVERLAP = 1, /* waited for an earlier overlapping
				   request (R3, or R6) */
	SCHED_NOTE_BARRIER = 2, /* waited for, or as, a barrier FLUSH (R4) */
	SCHED_NOTE_SYNCED = 4, /* a FLUSH replied at its batch sync's
				  retirement (R1, R5) */
	SCHED_NOTE_JOINED = 8, /* a FLUSH that joined a running sync (R7) */
	SCHED_NOTE_CLEAN = 16, /* a FLUSH replied with no sync (R7) */
};

struct sched_req;

/* A sync-like operation whose success claims durability (R5). */
struct sched_syncop {
	struct list_node node; /* in s->sync_inflight / sync_done */
	struct list_node batch; /* a batch sync: the FLUSHes it covers */
	uint64_t start; /* clock at issue */
	uint64_t done_at; /* clock at completion */
	uint64_t wmark; /* a batch sync: s->wdone at issue (R7) */
	int res; /* 0 or -errno */
	struct sched_req *req; /* the FUA write, or the first FLUSH of the
				  batch whose sync this is; NULL for an early
				  sync no FLUSH joined (R7) */
};

struct sched_req {
	/* --- Set by the caller before sched_submit(). --- */
	uint64_t off; /* byte offset (ignored for FLUSH) */
	uint64_t len; /* byte length; 0 never overlaps anything */
	uint8_t kind; /* enum sched_kind */
	bool fua; /* the request carried NBD_CMD_FLAG_FUA */
	bool rmw; /* unaligned WRITE done by read-modify-write: it
		     owns the aligned blocks around it (R6) */
	bool strict; /* order against overlapping writes even when
			R3 is off (BLOCK_STATUS: R6) */

	/* --- Set by the scheduler, read by the caller. --- */
	uint8_t action; /* enum sched_action, valid in a sched_out */
	bool dsync; /* at RUN: issue the write with RWF_DSYNC */
	uint8_t note; /* at REPLY: enum sched_note bits, what happened to
			 it (counted by engine/stats.c, N4) */
	int status; /* at REPLY: 0 or -errno to send */

	/* --- Private to the scheduler. --- */
	struct list_node node; /* in s->active, arrival order */
	struct list_node out_node; /* in a sched_out */
	struct list_node batch_node; /* in a flush batch */
	uint64_t lo, hi; /* effective byte range [lo, hi) */
	uint64_t seq; /* arrival number */
	uint32_t wait; /* earlier conflicting requests not complete */
	uint8_t state; /* private state machine */
	struct sched_syncop sync; /* when dsync; in a batch's first FLUSH,
				     the batch's sync (R5) */
};

/* Events produced by one call, for the caller to act on after unlocking. */
struct sched_out {
	struct list_node reqs; /* RUN and REPLY, in order */
	bool sync; /* issue one fdatasync of the export's file, then
		      call sched_sync_done() with its result */
};

struct sched_stats {
	uint64_t submitted, completed, syncs, dsync_writes, waited;
	uint64_t early_syncs; /* syncs started before a FLUSH asked (R7) */
	uint64_t flush_joined; /* FLUSHes that joined a running sync (R7) */
	uint64_t flush_clean; /* FLUSHes replied with no sync at all (R7) */
	uint64_t failed_latch; /* 1 once the export stopped claiming
				  durability (R5) */
	uint32_t max_pending; /* the most requests pending at once */
};

struct sched {
	enum order_mode order;
	enum flush_mode flush;
	uint32_t align; /* power of two; RMW granularity (R6) */

	struct list_node active; /* struct sched_req, arrival order */
	uint64_t seq;

	/* Flush batching (R1): at most one sync in flight per export. */
	bool sync_running;
	struct list_node batch_wait; /* FLUSHes for the next sync */
	struct sched_syncop *run_op; /* the running sync's op: it holds the
					batch it covers (R1, R7) */

	/* What the syncs cover (R7). */
	bool early_on; /* sched_set_early() */
	uint64_t wdone; /* writes completed so far */
	uint64_t durable_wmark; /* wdone at the issue of the last batch sync
				   that retired with success; UINT64_MAX
				   until one has */
	uint32_t w_pending; /* writes submitted, not yet completed */
	uint32_t w_since_flush; /* writes submitted since the last FLUSH */
	uint32_t wpf16; /* writes per FLUSH x16, a moving average */
	struct sched_syncop early; /* an early sync's op */

	/* Sync retirement (R5): ops in flight in start order, and completed
	   ops awaiting retirement in completion order. */
	uint64_t clock;
	struct list_node sync_inflight, sync_done; /* struct sched_syncop */
	bool failed; /* R5 latch */
	uint32_t n_pending; /* submitted and not yet REPLY'd */
	struct sched_stats stats;
};

void sched_init(struct sched *s, enum order_mode order, enum flush_mode flush,
		uint32_t align);

/* R7: start a sync early when the clients flush after every write. */
void sched_set_early(struct sched *s, bool on);

void sched_out_init(struct sched_out *o);
/* Pop the next RUN/REPLY request, or NULL. */
struct sched_req *sched_out_pop(struct sched_out *o);

/* A request arrived.  Emits RUN or REPLY for it now, or later. */
void sched_submit(struct sched *s, struct sched_req *r, struct sched_out *o);

/* The I/O of a RUN request finished with res (0 or -errno). */
void sched_complete(struct sched *s, struct sched_req *r, int res,
		    struct sched_out *o);

/*
 * The RUN request r failed with err (a negative errno) before any step of
 * its I/O that syncs ran: its arguments were refused, a resource was
 * short, or a step that claims no durability (fallocate) failed.  Unlike
 * sched_complete(), this never latches the export, even for a FUA write
 * (R5).
 */
void sched_fail(struct sched *s, struct sched_req *r, int err,
		struct sched_out *o);

/* The fdatasync asked for by sched_out.sync finished with res. */
void sched_sync_done(struct sched *s, int res, struct sched_out *o);

/* True once a sync failed: no durability is claimed any more (R5). */
bool sched_failed(const struct sched *s);

/* Number of requests submitted and not yet replied to. */
uint32_t sched_pending(const struct sched *s);

#endif /* LOOPD_SCHED_H */
