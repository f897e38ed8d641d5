/* SPDX-License-Identifier: MIT */
/*
 * export.h: one export: a named backend, as every connection to it sees
 * it, with the scheduler that orders its requests (sched.c) and the
 * recorder that may trace them.
 *
 * An export is made once at start-up (export_create), shared by every
 * connection and worker thread, and never freed while the server runs.
 * Its scheduler is protected by exp->lock; the fields above it are
 * immutable after export_create.
 */
#ifndef LOOPD_ENGINE_EXPORT_H
#define LOOPD_ENGINE_EXPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/sched.h"

struct recorder;
struct dirty_set;
struct snapshot;
struct stats_block;

struct export
{
	char *name; /* export name; "" is the default export */
	char *description; /* NBD_INFO_DESCRIPTION and LIST */
	struct backend *b;
	uint64_t size; /* bytes */
	bool read_only;
	uint32_t min_block, pref_block, max_payload; /* advertised */
	uint32_t io_align; /* the backend's buffer alignment (B5) */
	uint16_t tflags; /* transmission flags, without SEND_DF */

	pthread_mutex_t lock; /* protects sched and the latch's why */
	struct sched sched;
	int latch_err; /* N6: errno of the failure that latched it (R5) */
	const char *latch_op; /* N6: what failed: "sync", "FUA WRITE"... */

	/* The counters (engine/stats.c): one block per worker, each
	   written by its worker only (N1). */
	struct stats_block *stats;

	struct recorder *rec; /* --record, or NULL */

	/* The checkpoints (engine/dirty.h); NULL for a read-only export.
	   Writes mark them under lock (W1). */
	struct dirty_set *dirty;

	/* A live snapshot in progress (engine/snapshot.h), or NULL. */
	struct snapshot *snap;

	/* The one batch sync in flight (R1), ready before it is needed so
	   that a sync never fails for want of memory (E5). */
	struct export_sync *sync;
};

/* Largest payload a client may send or ask for in one request. */
#define EXPORT_MAX_PAYLOAD (64u << 20)

/*
 * Make the export name for backend b (which it owns from now on).  Returns
 * 0 or -ENOMEM.
 */
int export_create(const char *name, struct backend *b, enum order_mode order,
		  enum flush_mode flush, struct export **out);

/*
 * The scheduler asked for the export's batch sync (sched_out.sync): q
 * issues it once it has submitted the replies it has ready (E8), through
 * any injected delay or error and the recorder's SYNC records; its result
 * goes to sched_sync_done() on q.  Context: q's thread, exp->lock not
 * held.
 */
void export_sync_defer(struct export *exp, struct queue *q);

/* E8: issue the syncs deferred on q.  Context: q's thread. */
void export_start_deferred(struct queue *q);

/*
 * At stop, after every worker has exited: the final sync of the backend,
 * and whether the export latched (R5).  Returns 0 or -errno of the sync.
 */
int export_finish(struct export *exp, bool *latched);

/*
 * Last: close the backend (an RBD image's handle releases its watch and
 * its lock at once, rather than when the cluster times it out) and free
 * the export.
 */
void export_close(struct export *exp);

#endif /* LOOPD_ENGINE_EXPORT_H */
