/* SPDX-License-Identifier: MIT */
/*
 * backend.h: the interface between the engine and the storage it serves.
 *
 * The engine (connections, scheduler, recorder) never names a backend: it
 * asks one, through struct backend_ops, to carry out a request (struct
 * bio) or a sync, and the backend answers with bio_done()/bio_fail() or
 * backend_sync_done().  A backend registers itself with BACKEND_REGISTER,
 * so adding one is adding files (backend/file.c, backend/mem.c).
 *
 * Rules, cited as B1-B6:
 *
 * B1. Threads.  submit() and sync() are called on a worker thread, the one
 *     that owns io->q (or s->q).  The backend completes each bio and each
 *     sync exactly once, on that same thread: either at once, inside the
 *     call (an in-memory copy), or later from a completion on that
 *     worker's ring (queue_sqe() with a struct ring_cb).  A backend whose
 *     completions arrive on threads of its own (librbd calls back from
 *     its own threads) must hand them to the worker: it keeps a queue of
 *     finished bios per worker and an eventfd that its callbacks write,
 *     and in attach() it arms a read of that eventfd on the worker's ring
 *     (queue_sqe_idle() + io_uring_prep_read), whose ring_cb drains the
 *     queue and re-arms the read; it holds the worker (queue_hold())
 *     for each bio or sync out on its threads.  A worker never blocks on
 *     a backend.
 * B2. Durability.  With io->fua the bio completes only once its data is
 *     durable (RWF_DSYNC, or a sync after it).  A sync makes durable every
 *     bio completed before the sync was called.  The scheduler never asks
 *     for two syncs of one backend at once (R1), and never issues a sync
 *     of its own beside them (R5 needs to see every one).
 * B3. Errors.  bio_done(io, err) reports an error of a step that may have
 *     consumed a writeback error (a write with FUA, a sync): the export
 *     latches (R5).  bio_fail(io, err) reports one found before any such
 *     step (refused arguments, no memory, a non-syncing step that failed):
 *     only that request sees it (E5).
 * B4. Ranges are checked by the engine (proto.c) before submit(): off+len
 *     never passes the size, a WRITE never passes max_payload.  A short
 *     transfer is never reported as a success (E1): the backend resubmits
 *     or fails.
 * B5. Buffers.  READ and WRITE bios carry buf, the aligned window
 *     [round_down(off, io_align), round_up(off+len, io_align)), and data,
 *     the client's bytes inside it.  An unaligned WRITE also gets bounce,
 *     one io_align block the backend may use to read the edges (F2).  The
 *     scheduler keeps such a write exclusive on its blocks (R6).
 * B6. Capabilities are answered by the backend in its info (what it can
 *     do, its block sizes, whether it is memory), never probed by the
 *     engine.  A capability may turn off later (a fallocate mode): the
 *     backend then takes its fallback itself.
 */
#ifndef LOOPD_ENGINE_BACKEND_H
#define LOOPD_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/compiler.h"

struct io_uring_sqe;
struct queue;
struct backend;

/* A completion on a worker's ring: fn runs on that worker's thread. */
struct ring_cb {
	void (*fn)(struct ring_cb *cb, int res);
};

/*
 * An SQE on q's ring whose completion calls cb->fn(cb, cqe->res) (B1).  The
 * worker counts it until then, so it never exits under it.  Never NULL.
 */
struct io_uring_sqe *queue_sqe(struct queue *q, struct ring_cb *cb);

/*
 * The same for an SQE that may stay in flight for good, such as the read
 * of a backend's completion eventfd (B1): the worker does not wait for it
 * when it stops.
 */
struct io_uring_sqe *queue_sqe_idle(struct queue *q, struct ring_cb *cb);

/*
 * A backend whose bios and syncs complete through such an idle SQE (B1)
 * holds q once per bio or sync it has handed to its own threads, and
 * releases it when that one completes on q: the worker does not stop
 * while one is out (E4).  On q's thread only.
 */
void queue_hold(struct queue *q);
void queue_release(struct queue *q);

enum bio_op {
	BIO_READ,
	BIO_WRITE,
	BIO_TRIM, /* advisory: may do nothing */
	BIO_ZERO, /* WRITE_ZEROES */
	BIO_CACHE, /* prefetch hint */
	BIO_EXTENTS, /* which parts hold data (BLOCK_STATUS) */
};

/* One extent of a BIO_EXTENTS answer, as found (the engine rounds). */
struct bio_extent {
	uint64_t len;
	bool hole; /* reads as zeroes and holds no data */
};

#define BIO_PRIV_SIZE 128 /* bytes of per-bio state a backend may keep */

struct bio {
	/* Set by the engine before submit(). */
	uint8_t op; /* enum bio_op */
	bool fua; /* B2: complete only once durable */
	bool no_hole; /* BIO_ZERO: keep the range allocated */
	bool fast; /* BIO_ZERO: fail with -ENOTSUP rather than be slow */
	uint64_t off, len;
	uint8_t *buf; /* READ, WRITE: the aligned window (B5) */
	uint8_t *data; /* READ, WRITE: the client's bytes, inside buf */
	uint8_t *bounce; /* unaligned WRITE: one io_align block (B5) */
	struct bio_extent *ext; /* BIO_EXTENTS: room for max_ext */
	uint32_t max_ext;
	struct queue *q; /* the worker ring it runs on (B1) */

	/* Set by the backend. */
	uint32_t n_ext; /* BIO_EXTENTS: extents filled, from off on */

	/* The backend's own state for this bio, 8-byte aligned. */
	uint64_t priv[BIO_PRIV_SIZE / 8];
};

/* The backend's state for the one sync in flight (B2), in the export. */
struct backend_sync {
	struct ring_cb cb; /* for the backend's own use */
	struct queue *q; /* the worker it runs on */
	uint64_t priv[4];
};

/*
 * Whether q has nothing else to do right now: no bio in flight on it and
 * at most one connection, so that blocking the worker delays that
 * connection's own later requests, and at worst the I/O of a busy
 * connection spread to q (E3), which a sync's own thread hand-off would
 * have delayed too.  A backend may then block the worker
 * briefly (a sync) instead of paying a thread hand-off (B1).
 */
bool queue_idle(const struct queue *q);

/* Completions, called by the backend on io->q's thread (B1, B3). */
void bio_done(struct bio *io, int res);
void bio_fail(struct bio *io, int err);
void backend_sync_done(struct backend_sync *s, int res);

/* What a backend is and can do (B6). */
struct backend_info {
	uint64_t size; /* bytes */
	uint32_t min_block, pref_block, max_payload; /* advertised */
	uint32_t io_align; /* B5: buffer window and R6 granularity */
	bool read_only;
	bool can_trim, can_zero, can_fast_zero;
	bool can_cache; /* false: CACHE is answered at once */
	bool in_memory; /* no device below: syncs cost nothing */
	const char *description; /* NBD_INFO_DESCRIPTION (the path) */
	const char *how; /* for the "serving" log line: "O_DIRECT", ... */
};

/* How `loopd serve` asks for a backend. */
struct backend_opts {
	const char *spec; /* what follows NAME= on the command line */
	uint64_t create_size; /* --size: create or grow to this; 0 = no */
	bool read_only;
	bool direct; /* --cache=direct (where supported) */
	/* rbd: (backend/rbd.c) */
	const char *ceph_conf; /* --ceph-conf; NULL: librados' search */
	const char *ceph_id; /* --ceph-id; NULL: admin */
	unsigned int ceph_timeout; /* --ceph-timeout, seconds */
};

struct backend_ops {
	const char *name; /* "file", "mem" */
	/* Specs starting with this select the backend; NULL: the default
	   (a path). */
	const char *prefix;

	/* Open.  0, or a negative errno with a one-line reason in err. */
	int (*open)(const struct backend_opts *o, struct backend **out,
		    char *err, size_t errlen);
	/* The default export name for a spec (the file's basename). */
	void (*default_name)(const char *spec, char *out, size_t len);

	/* B1-B5: carry out io; completes with bio_done()/bio_fail(). */
	void (*submit)(struct backend *b, struct bio *io);
	/* B2: make durable what completed; completes backend_sync_done(). */
	void (*sync)(struct backend *b, struct backend_sync *s);

	/* Optional: per-worker setup, on that worker's thread (B1). */
	int (*attach)(struct backend *b, struct queue *q);

	/* Blocking, from a thread that is not a worker: the main thread
	   once every worker has stopped, or a snapshot --sync inside its
	   R8 capture (where R5 counts it as a sync op). */
	int (*final_sync)(struct backend *b);
	/* The recorder's base image: a copy at path (K5).  *cheap says
	   whether it shares blocks (a reflink). */
	int (*capture)(struct backend *b, const char *path, bool *cheap);
	/* SHA-256 of the whole contents (the trace's END). */
	int (*hash)(struct backend *b, uint8_t out[32]);
	void (*close)(struct backend *b);

	/*
	 * Live snapshots (engine/snapshot.c, I1-I9), all optional and
	 * blocking, called from a thread that is not a worker.
	 *
	 * snapshot(): an instant copy of the whole contents, taken while
	 * every write is drained and held (R8): for a backend with
	 * read_sync, a reflink into fd (DEST.part, which the engine then
	 * renames to DEST); otherwise fd is -1 and dest names what to make
	 * (an RBD snapshot).  -EOPNOTSUPP when there is no such copy here (no
	 * reflink on this filesystem): the engine then copies before writes,
	 * with read_sync().  Other errors with one line in err.
	 */
	int (*snapshot)(struct backend *b, const char *dest, int fd, char *err,
			size_t errlen);
	/* Read [off, off + len) into buf (4096-aligned; len a multiple of
	   4096): bytes read, short only at the end, or -errno.  A backend
	   with read_sync takes snapshots to files (dest a path). */
	long (*read_sync)(struct backend *b, void *buf, size_t len,
			  uint64_t off);
	/* The first offset at or after off that may hold data (the size if
	   none), and in *end where that data ends: the snapshot's copy skips
	   holes. */
	uint64_t (*next_data)(struct backend *b, uint64_t off, uint64_t *end);
	/* Remove snapshot name made by snapshot() with fd -1 (an RBD
	   snapshot), for --snapshot-keep.  0 or -errno with err. */
	int (*snapshot_remove)(struct backend *b, const char *name, char *err,
			       size_t errlen);
};

struct backend {
	const struct backend_ops *ops;
	struct backend_info info;
};

/*
 * Registration: a backend file says BACKEND_REGISTER(its_ops).  The
 * pointers land in one linker section, which backend_find() walks.
 */
#define BACKEND_REGISTER(ops)                                                  \
	static const struct backend_ops *const backend_reg_##ops               \
		__attribute__((used, section("loopd_backends"))) = &(ops)

/* The backend for a spec: the one whose prefix it starts with, else the
   default.  NULL if none is compiled in. */
const struct backend_ops *backend_find(const char *spec);

/* Open the backend for o->spec (backend_find + open). */
int backend_open(const struct backend_opts *o, struct backend **out, char *err,
		 size_t errlen);

#endif /* LOOPD_ENGINE_BACKEND_H */
