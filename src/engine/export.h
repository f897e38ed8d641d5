/* SPDX-License-Identifier: MIT */
/*
 * export.h: one served file.
 *
 * An export is opened once at start-up (export_open), shared by every
 * connection and worker thread, and closed at exit.  Its scheduler is
 * protected by exp->lock; everything else is immutable after open, except
 * the capability bits, which only ever turn off (atomically).
 */
#ifndef LOOPD_EXPORT_H
#define LOOPD_EXPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/sched.h"

enum cache_mode { CACHE_DIRECT, CACHE_BUFFERED };

struct export_opts {
	const char *name; /* export name ("" for the default) */
	const char *path; /* backing file */
	uint64_t create_size; /* --size: create or grow to this; 0 = no */
	bool read_only;
	enum cache_mode cache; /* requested; may fall back to buffered */
	enum sched_order order;
	enum sched_flush_mode flush;
};

struct export
{
	char *name; /* export name; "" is the default export */
	char *path; /* backing file path, as given */
	char *description; /* shown by NBD_INFO_DESCRIPTION and LIST */
	int fd; /* backing file, O_RDWR or O_RDONLY, maybe O_DIRECT */
	uint64_t size; /* bytes */
	bool read_only;
	bool direct; /* fd is O_DIRECT */
	bool mem_backed; /* a regular file on tmpfs/ramfs: no device
			    below (E4) */
	uint32_t align; /* O_DIRECT offset/length alignment, else 1 */
	uint32_t mem_align; /* O_DIRECT memory alignment, else 1 */
	uint32_t min_block, pref_block, max_payload; /* advertised */
	uint16_t tflags; /* transmission flags, without SEND_DF */

	/* enum zero_cap bits: they only ever turn off, atomically, on the
	   first EOPNOTSUPP of their own mode (Z6 in zero.c). */
	atomic_uint zero_caps;

	/* The engine's state for the export's one batch sync in flight
	   (R1), made once at start so a sync never needs an allocation. */
	struct syncop *sync_op;

	pthread_mutex_t lock; /* protects sched */
	struct sched sched;

	struct recorder *rec; /* --record, or NULL */
};

/* Largest payload a client may send or ask for in one request. */
#define EXPORT_MAX_PAYLOAD (64u << 20)

/*
 * Open, create or grow, lock and probe the backing file.  On failure
 * returns a negative errno and writes a one-line reason (without the
 * "loopd: " prefix) into err[errlen].  On success sets *out and prints
 * nothing; the caller may print (*out)->direct etc.
 */
int export_open(const struct export_opts *o, struct export **out, char *err,
		size_t errlen);

/* fdatasync the file (used at shutdown). Returns 0 or -errno. */
int export_sync(struct export *exp);

void export_close(struct export *exp);

#endif /* LOOPD_EXPORT_H */
