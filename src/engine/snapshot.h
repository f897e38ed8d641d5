/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h: live snapshots of a running export (engine/snapshot.c,
 * rules I1-I9): a copy of the export as of one instant P of the
 * scheduler's request order, which is a crash state the contract allows
 * at P, taken while the export serves.  `loopd ctl PATH snapshot` and
 * `loopd serve --snapshot-every` (serve/snapshots.c) call it.
 */
#ifndef LOOPD_ENGINE_SNAPSHOT_H
#define LOOPD_ENGINE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct export;
struct snapshot;

struct snapshot_opts {
	const char *dest; /* a path; for an RBD export the snapshot's name */
	bool sync; /* I3: sync the export first, and DEST after */
	bool no_wait; /* return once P is captured; the copy goes on */
};

struct snapshot_result {
	const char *method; /* "reflink", "copy-before-write", "rbd" */
	char checkpoint[160]; /* the checkpoint made at P, or "" */
	char note[160]; /* why there is none, or "" */
	uint64_t held_writes; /* I2: writes that arrived while held */
	uint64_t drain_ns; /* P until the capture could start */
	uint64_t capture_ns; /* the capture itself (sync, reflink...) */
	uint64_t hold_ns; /* the longest any write was held (I2) */
	uint64_t total_ns; /* until DEST was complete (or P captured) */
	uint64_t copied; /* I4: bytes copied into DEST */
	uint64_t copied_by_writes; /* ... of which before a write */
	bool pending; /* no_wait: the copy is still running */
};

/* Made with the export (never fails but for memory), freed with it. */
struct snapshot *snapshot_new(struct export *exp);
/* I8: abandon a running copy (its DEST.part removed), then free. */
void snapshot_free(struct snapshot *sn);

/* I8: a running copy stops soon (the server stops); its waiter gets an
   error.  Any thread. */
void snapshot_cancel(struct snapshot *sn);

/* Whether the export's backend can take snapshots, and to files. */
bool snapshot_supported(const struct export *exp, bool *to_files);

/*
 * Take a snapshot (I1-I7).  Blocks until DEST is complete (or, with
 * no_wait, until P is captured).  Never from a worker.  0, or -errno
 * with one line in err (and nothing left at DEST).
 */
int snapshot_take(struct export *exp, const struct snapshot_opts *o,
		  struct snapshot_result *res, char *err, size_t errlen);

/* --- The engine's hooks (request.c); cheap when no snapshot runs. --- */

/* I2: a write was received while a capture holds writes; exp->lock held. */
void snapshot_note_held(struct snapshot *sn);

/* R8 events for a capture point (engine_events), on a worker. */
struct sched_req;
bool snapshot_event(struct export *exp, struct sched_req *s);

/* I4: before a write's I/O: copy the old contents of [off, off + len)
   into a copy-before-write snapshot.  On a worker, may block briefly. */
void snapshot_before_write(struct snapshot *sn, uint64_t off, uint64_t len);

/* Whether a capture holds writes now (exp->lock held). */
bool snapshot_holding(const struct snapshot *sn);

#endif /* LOOPD_ENGINE_SNAPSHOT_H */
