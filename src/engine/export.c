/* SPDX-License-Identifier: MIT */
/*
 * export.c: an export as the engine sees it (export.h): what it
 * advertises, made from its backend's info (B6), and its batch sync: the
 * one fdatasync-like operation the scheduler asks for at a time (R1),
 * through fault injection and the recorder's SYNC records, to the backend
 * and back to the scheduler.
 */
#include "engine/export.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dirty.h"
#include "engine/inject.h"
#include "engine/queue.h"
#include "engine/recorder.h"
#include "engine/request.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "nbd/nbd.h"
#include "util/log.h"

/* The batch sync's state (E5: made once, never allocated on the way). */
struct export_sync {
	struct backend_sync bs; /* the backend's part */
	struct export *exp;
	struct list_node qnode; /* in a queue's syncq until issued (E8) */
	struct ring_cb delay_cb; /* an injected delay expired */
	struct __kernel_timespec ts;
};

static uint16_t tflags_of(const struct backend_info *in)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		     NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN |
		     NBD_FLAG_SEND_CACHE;

	if (in->read_only)
		return f | NBD_FLAG_READ_ONLY;
	if (in->can_trim)
		f |= NBD_FLAG_SEND_TRIM;
	if (in->can_zero)
		f |= NBD_FLAG_SEND_WRITE_ZEROES;
	if (in->can_zero && in->can_fast_zero)
		f |= NBD_FLAG_SEND_FAST_ZERO;
	return f;
}

int export_create(const char *name, struct backend *b, enum order_mode order,
		  enum flush_mode flush, struct export **out)
{
	const struct backend_info *in = &b->info;
	struct export *exp = calloc(1, sizeof *exp);

	if (!exp)
		return -ENOMEM;
	exp->sync = calloc(1, sizeof *exp->sync);
	exp->name = strdup(name);
	exp->description = strdup(in->description ? in->description : "");
	exp->snap = snapshot_new(exp);
	if (!exp->sync || !exp->name || !exp->description || !exp->snap) {
		snapshot_free(exp->snap);
		free(exp->sync);
		free(exp->name);
		free(exp->description);
		free(exp);
		return -ENOMEM;
	}
	exp->b = b;
	exp->size = in->size;
	exp->read_only = in->read_only;
	exp->min_block = in->min_block;
	exp->pref_block = in->pref_block;
	exp->max_payload = in->max_payload < EXPORT_MAX_PAYLOAD
				   ? in->max_payload
				   : EXPORT_MAX_PAYLOAD;
	exp->io_align = in->io_align ? in->io_align : 1;
	exp->tflags = tflags_of(in);
	exp->sync->exp = exp;
	pthread_mutex_init(&exp->lock, NULL);
	sched_init(&exp->sched, order, flush, exp->io_align);
	sched_set_early(&exp->sched, true); /* R7 */
	*out = exp;
	return 0;
}

/* ---------------------------------------------------------------- */
/* The batch sync (R1).                                               */

void backend_sync_done(struct backend_sync *bs, int res)
{
	struct export_sync *es = container_of(bs, struct export_sync, bs);
	struct export *exp = es->exp;
	struct queue *q = bs->q; /* bs may start the next sync once the
				    scheduler has it (R1) */
	struct sched_out o;
	bool latched;

	q->dones++; /* E7 */
	if (res < 0)
		log_msg("export \"%s\": sync failed: %s; the export no longer "
			"claims durability until restarted (writes and "
			"flushes get EIO)",
			exp->name, strerror(-res));
	if (unlikely(exp->rec))
		recorder_sync_end(exp->rec, res);
	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	latched = !sched_failed(&exp->sched);
	sched_sync_done(&exp->sched, res, &o);
	if (latched && sched_failed(&exp->sched)) {
		exp->latch_err = -res; /* N6: the first latch says why */
		exp->latch_op = "sync";
	}
	pthread_mutex_unlock(&exp->lock);
	engine_events(q, &o, exp);
}

static void sync_now(struct export_sync *es)
{
	struct export *exp = es->exp;
	struct queue *q = es->bs.q;
	unsigned int before = q->dones;

	if (unlikely(exp->rec))
		recorder_sync_begin(exp->rec);
	exp->b->ops->sync(exp->b, &es->bs);
	queue_count_inline(q, before); /* E7: as for a bio */
}

static void on_delay(struct ring_cb *cb, int res)
{
	sync_now(container_of(cb, struct export_sync, delay_cb));
}

void export_sync_defer(struct export *exp, struct queue *q)
{
	list_add_tail(&q->syncq, &exp->sync->qnode);
}

static void sync_start(struct export_sync *es, struct queue *q)
{
	struct export *exp = es->exp;
	unsigned int delay = 0;
	int err = 0;

	es->bs.q = q;
	stats_add(&exp->stats[q->idx], ST_SYNCS, 1); /* N4 */
	if (unlikely(inject_enabled))
		inject_match(INJ_SYNC, 0, 0, &delay, &err);
	if (unlikely(err)) {
		if (unlikely(exp->rec))
			recorder_sync_begin(exp->rec);
		backend_sync_done(&es->bs, err);
		return;
	}
	if (unlikely(delay)) {
		es->delay_cb.fn = on_delay;
		queue_timer(q, &es->delay_cb, &es->ts, delay);
		return;
	}
	sync_now(es);
}

void export_start_deferred(struct queue *q)
{
	struct list_node now, *n;

	/*
	 * Only the syncs deferred so far: one that an inline sync's
	 * completion asks for waits for the next pass of the loop, after the
	 * replies that completion released have been submitted (E8).
	 */
	list_init(&now);
	while ((n = list_pop(&q->syncq)))
		list_add_tail(&now, n);
	while ((n = list_pop(&now)))
		sync_start(list_entry(n, struct export_sync, qnode), q);
}

int export_finish(struct export *exp, bool *latched)
{
	pthread_mutex_lock(&exp->lock);
	*latched = sched_failed(&exp->sched);
	pthread_mutex_unlock(&exp->lock);
	return exp->read_only ? 0 : exp->b->ops->final_sync(exp->b);
}

void export_close(struct export *exp)
{
	snapshot_free(exp->snap); /* I8: before the backend goes */
	dirty_set_free(exp->dirty); /* a failed start: nothing to save */
	exp->b->ops->close(exp->b);
	pthread_mutex_destroy(&exp->lock);
	free(exp->stats);
	free(exp->sync);
	free(exp->name);
	free(exp->description);
	free(exp);
}
