/* SPDX-License-Identifier: MIT */
/*
 * recorder.h: `loopd serve --record TRACE`, the server side of the crash
 * explorer.  Appends every request of one export to a trace, in one global
 * order (docs/trace-format.md), so that `loopd crash` can enumerate the
 * crash states the contract allows.
 *
 * Ordering guarantees the engine gives the recorder (worker.c):
 *  - recorder_recv() is called before the request is handed to the
 *    scheduler, so before any of its I/O starts;
 *  - recorder_reply() is called after the request's I/O completed and
 *    before the reply bytes are queued for the socket.  So a write whose
 *    REPLY precedes a flush's RECV in the trace had completed before the
 *    flush was received, and the flush's sync (issued after that) covers
 *    it: the trace's w ⊑ f never claims more than the server made durable;
 *  - recorder_sync_begin() before an fdatasync is issued, and
 *    recorder_sync_end() when it completed, before any flush it covers is
 *    replied.
 * All functions are thread-safe (one mutex inside) and cheap enough for
 * the data path; errors writing the trace are reported once and stop the
 * recording (never the serving: recording never changes what the client
 * sees).
 */
#ifndef LOOPD_RECORDER_H
#define LOOPD_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/export.h"
#include "nbd/proto.h"

struct recorder;

/*
 * Start recording exp into path: capture the base image (reflink where
 * the filesystem allows, else a sparse copy, next to the trace as
 * PATH.base), write the header (size, block size, advertised flags,
 * flush mode, base identity).  Returns 0 or -errno with a one-line reason.
 */
int recorder_open(const char *path, struct export *exp, struct recorder **out,
		  char *err, size_t errlen);

/* What recorder_recv() needs to know of a WRITE's payload (K2). */
struct recorder_prep {
	uint32_t kind; /* enum trace_data_kind */
	uint8_t hash[16];
};

/*
 * The costly part of recording a request: whether the payload is all
 * zeroes, and its hash.  Needs no recorder and no lock, so the engine
 * calls it before taking the export's lock (K2).
 */
void recorder_prepare(const struct nbd_request *nr, const void *payload,
		      struct recorder_prep *p);

/* A request arrived on connection conn; payload is the WRITE data and p
   what recorder_prepare() found of it. */
void recorder_recv(struct recorder *rec, uint32_t conn,
		   const struct nbd_request *nr, const void *payload,
		   const struct recorder_prep *p);

/* The reply to a request is about to be sent with status (0/-errno). */
void recorder_reply(struct recorder *rec, uint32_t conn,
		    const struct nbd_request *nr, int status);

/* An fdatasync of the export is about to be issued / has completed. */
void recorder_sync_begin(struct recorder *rec);
void recorder_sync_end(struct recorder *rec, int res);

/*
 * A named mark: `loopd ctl PATH mark LABEL`, or `loopd trace mark` through
 * TRACE.ctl, both served by serve/control.c (Q5).  Any thread.
 */
void recorder_mark(struct recorder *rec, const char *label);

/*
 * The mark of a snapshot's instant P (engine/snapshot.c I1): appended
 * under the export's lock, so it is not drained to the file at once.
 */
void recorder_snapshot(struct recorder *rec, const char *label);

/* Write the END record (totals, final image hash), flush, close. */
int recorder_close(struct recorder *rec);

#endif
