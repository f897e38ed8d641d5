/* SPDX-License-Identifier: MIT */
/*
 * file.c: the file backend's I/O: a regular file or a block device served
 * through the worker's io_uring, one step at a time per bio.  Opening and
 * probing are in file-open.c; which fallocate a TRIM or WRITE_ZEROES uses
 * is zero.c's answer; the read-modify-write plan is rmw.c's.
 *
 * F1. Each step is one ring request (read, write, fallocate, fsync,
 *     fadvise) whose completion decides the next.  A short read or write is
 *     resubmitted for the rest; EOF inside the export is EIO (B4).  EAGAIN
 *     and EINTR resubmit the same step.
 * F2. O_DIRECT needs aligned offsets, lengths and buffers: a READ reads the
 *     aligned window (B5) and the client gets the bytes inside it; an
 *     unaligned WRITE first reads its edge blocks into the bounce block
 *     and merges them into the window (rmw.c), then writes the window.
 *     The scheduler keeps it exclusive on those blocks (R6).
 * F3. On a memory-backed file (tmpfs, ramfs) READs and WRITEs of up to
 *     INLINE_MAX bytes, and syncs, run inline on the worker with
 *     preadv2/pwritev2/fdatasync: they are memory copies, or nothing, and
 *     cannot wait for a device, while io_uring would hand each to an io-wq
 *     thread (tmpfs has no RWF_NOWAIT) at two thread wake-ups apiece.
 *     Measured in docs/design.md.  Larger requests go through the ring.
 * F5. FUA: a WRITE carries RWF_DSYNC; a TRIM or WRITE_ZEROES is followed by
 *     an fdatasync, and the bio completes with its result (B2, R2).
 * F6. Page-cache I/O on the worker.  On a buffered file that is not memory
 *     (F3 has those), a READ is first tried with preadv2(RWF_NOWAIT): a
 *     page-cache hit is a copy that never blocks.  What it could not read
 *     (EAGAIN, or a short read at the first page not cached) goes through
 *     the ring from where it stopped, and the bio completes only when all
 *     of it is read.  A WRITE without FUA is a pwritev2 on the worker: a
 *     copy into the page cache, where the ring would hand every buffered
 *     write to an io-wq thread (ext4 has no non-blocking buffered write:
 *     RWF_NOWAIT is EOPNOTSUPP there) at two thread wake-ups.  Such a
 *     write blocks only while the kernel throttles dirty pages; one that
 *     took SLOW_WRITE_NS longer than its copy should (1 ns a byte) sends
 *     every write of the next RING_WRITES_NS through the ring, so that
 *     writeback does not hold a worker whose other connections wait.  A
 *     FUA write waits for the device and always goes through the ring.
 * F7. A sync runs inline (fdatasync on the worker) when the worker has no
 *     bio in flight and serves only the one connection (queue_idle()):
 *     nothing else would run meanwhile, while the ring would hand the
 *     fsync to an io-wq thread.  Otherwise it goes through the ring, so
 *     that a slow device flush never holds another connection's reads.
 */
#include "backend/file.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend/rmw.h"
#include "backend/zero.h"
#include "util/clock.h"
#include "util/io.h"
#include "util/rounding.h"

#define INLINE_MAX (128 * 1024) /* F3: larger copies go to the ring */
/* F6: an inline write this much slower than its copy sends writes to the
   ring for RING_WRITES_NS. */
#define SLOW_WRITE_NS 2000000ull
#define RING_WRITES_NS 100000000ull
#define ZERO_CHUNK (1024 * 1024) /* zeroes written per step */

enum step {
	ST_READ, /* [io_off, io_off+io_len) into buf */
	ST_WRITE, /* the same from buf */
	ST_RMW_HEAD, /* F2: the head block into bounce */
	ST_RMW_TAIL, /* F2: the tail block into bounce */
	ST_FALLOC, /* zp's fallocate */
	ST_ZERO_WRITE, /* zeroes, ZERO_CHUNK at a time */
	ST_FUA_SYNC, /* F5: fdatasync after a fallocate */
	ST_FADVISE, /* CACHE */
};

/* The file backend's state of one bio, in bio->priv. */
struct file_io {
	struct ring_cb cb;
	struct bio *io;
	struct file_backend *f;
	uint8_t step;
	uint64_t io_off;
	size_t io_len, io_done;
	union {
		struct rmw_plan rmw; /* WRITE */
		struct {
			struct zero_req zr;
			struct zero_plan zp;
		}; /* TRIM, WRITE_ZEROES */
	};
};

_Static_assert(sizeof(struct file_io) <= BIO_PRIV_SIZE,
	       "struct file_io must fit in bio->priv");

/* Read-only zeroes for ST_ZERO_WRITE, shared by every worker. */
static uint8_t zeroes[ZERO_CHUNK] __attribute__((aligned(4096)));

static struct file_io *fio_of(struct bio *io)
{
	return (struct file_io *)(void *)io->priv;
}

static void on_step(struct ring_cb *cb, int res);

/* Issue fio's current step (again) on the worker's ring. */
static void submit_step(struct file_backend *f, struct file_io *fio)
{
	struct bio *io = fio->io;
	struct io_uring_sqe *sqe = queue_sqe(io->q, &fio->cb);
	size_t left = fio->io_len - fio->io_done;
	uint64_t off = fio->io_off + fio->io_done;

	switch (fio->step) {
	case ST_READ:
		io_uring_prep_read(sqe, f->fd, io->buf + fio->io_done,
				   (unsigned int)left, off);
		break;
	case ST_RMW_HEAD:
	case ST_RMW_TAIL:
		io_uring_prep_read(sqe, f->fd, io->bounce + fio->io_done,
				   (unsigned int)left, off);
		break;
	case ST_WRITE:
		io_uring_prep_write(sqe, f->fd, io->buf + fio->io_done,
				    (unsigned int)left, off);
		if (io->fua)
			sqe->rw_flags = RWF_DSYNC; /* F5 */
		break;
	case ST_ZERO_WRITE:
		io_uring_prep_write(
			sqe, f->fd, zeroes,
			(unsigned int)(left > ZERO_CHUNK ? ZERO_CHUNK : left),
			off);
		if (io->fua)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case ST_FALLOC:
		io_uring_prep_fallocate(sqe, f->fd, fio->zp.mode,
					(off_t)fio->zp.off, (off_t)fio->zp.len);
		break;
	case ST_FUA_SYNC:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		break;
	case ST_FADVISE:
		io_uring_prep_fadvise(sqe, f->fd, off, (off_t)left,
				      POSIX_FADV_WILLNEED);
		break;
	default:
		abort();
	}
}

static void begin_from(struct file_backend *f, struct file_io *fio,
		       enum step st, uint64_t off, size_t len, size_t done)
{
	fio->step = (uint8_t)st;
	fio->io_off = off;
	fio->io_len = len;
	fio->io_done = done;
	submit_step(f, fio);
}

static void begin(struct file_backend *f, struct file_io *fio, enum step st,
		  uint64_t off, size_t len)
{
	begin_from(f, fio, st, off, len, 0);
}

/* ---------------------------------------------------------------- */
/* TRIM and WRITE_ZEROES (zero.c).                                    */

static void zero_next(struct file_backend *f, struct file_io *fio)
{
	struct zero_geom g = {.min_block = f->b.info.min_block,
			      .dio_align = f->align};

	zero_plan(&fio->zr, atomic_load(&f->zero_caps), &g, &fio->zp);
	switch (fio->zp.step) {
	case ZERO_DONE: /* Z4, Z5: refused (B3); Z1: a TRIM doing nothing */
		if (fio->zp.err)
			bio_fail(fio->io, fio->zp.err);
		else
			bio_done(fio->io, 0);
		return;
	case ZERO_FALLOC:
		begin(f, fio, ST_FALLOC, fio->zp.off, fio->zp.len);
		return;
	case ZERO_WRITE:
		begin(f, fio, ST_ZERO_WRITE, fio->zp.off, fio->zp.len);
		return;
	}
	abort();
}

static void on_falloc(struct file_backend *f, struct file_io *fio, int res)
{
	unsigned int cap;
	bool retry;

	if (res == 0) {
		if (fio->io->fua)
			begin(f, fio, ST_FUA_SYNC, 0, 0); /* F5 */
		else
			bio_done(fio->io, 0);
		return;
	}
	cap = zero_after_falloc_error(&fio->zr, &fio->zp, res, &retry);
	if (cap) /* Z6: off for good, and only the mode that failed */
		atomic_fetch_and(&f->zero_caps, ~cap);
	if (retry)
		zero_next(f, fio);
	else
		bio_fail(fio->io, res); /* B3: a fallocate does not sync */
}

/* ---------------------------------------------------------------- */
/* READ and WRITE.                                                    */

/* F3, F6: a copy between the bio and the page cache, done here. */
static void inline_rw(struct bio *io, int fd)
{
	size_t done = 0;
	ssize_t n;

	while (done < io->len) {
		struct iovec v = {io->data + done, io->len - done};
		off_t off = (off_t)(io->off + done);

		if (io->op == BIO_READ)
			n = preadv2(fd, &v, 1, off, 0);
		else
			n = pwritev2(fd, &v, 1, off, io->fua ? RWF_DSYNC : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			bio_done(io, n < 0 ? -errno : -EIO);
			return;
		}
		done += (size_t)n;
	}
	bio_done(io, 0);
}

/* F6: a plain WRITE into the page cache, unless writes are throttled. */
static bool write_inline(struct file_backend *f, struct bio *io)
{
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC), t1, len = io->len;

	if (t0 <
	    atomic_load_explicit(&f->ring_writes_until, memory_order_relaxed))
		return false;
	inline_rw(io, f->fd); /* completes io: it is not ours after this */
	t1 = clock_ns(CLOCK_MONOTONIC);
	if (t1 - t0 > SLOW_WRITE_NS + len)
		atomic_store_explicit(&f->ring_writes_until,
				      t1 + RING_WRITES_NS,
				      memory_order_relaxed);
	return true;
}

/* F6: a READ from the page cache if it is there, else the rest by ring. */
static void read_nowait(struct file_backend *f, struct file_io *fio)
{
	struct bio *io = fio->io;
	struct iovec v = {io->data, io->len};
	ssize_t n;

	assert(io->buf == io->data); /* buffered: no alignment window (F2) */
	do
		n = preadv2(f->fd, &v, 1, (off_t)io->off, RWF_NOWAIT);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)io->len) {
		bio_done(io, 0);
		return;
	}
	if (n < 0 && errno != EAGAIN && errno != EOPNOTSUPP) {
		bio_done(io, -errno);
		return;
	}
	begin_from(f, fio, ST_READ, io->off, io->len, n > 0 ? (size_t)n : 0);
}

static void start_write(struct file_backend *f, struct file_io *fio)
{
	struct bio *io = fio->io;

	if (!io->bounce) {
		begin(f, fio, ST_WRITE, io->off, io->len);
		return;
	}
	rmw_plan(io->off, io->len, f->align, &fio->rmw); /* F2 */
	if (fio->rmw.head)
		begin(f, fio, ST_RMW_HEAD, fio->rmw.lo, f->align);
	else
		begin(f, fio, ST_RMW_TAIL, fio->rmw.tail_off, f->align);
}

/* A whole step finished: the next one, or the end of the bio. */
static void step_done(struct file_backend *f, struct file_io *fio)
{
	struct bio *io = fio->io;
	struct rmw_plan *p = &fio->rmw;

	switch (fio->step) {
	case ST_READ:
	case ST_WRITE:
	case ST_ZERO_WRITE: /* submit_step wrote it chunk by chunk */
		bio_done(io, 0);
		return;
	case ST_RMW_HEAD:
	case ST_RMW_TAIL:
		rmw_merge(p, io->off, io->len, f->align, fio->io_off,
			  io->bounce, io->buf);
		if (fio->step == ST_RMW_HEAD && p->tail)
			begin(f, fio, ST_RMW_TAIL, p->tail_off, f->align);
		else
			begin(f, fio, ST_WRITE, p->lo, p->hi - p->lo);
		return;
	default:
		abort();
	}
}

static void on_step(struct ring_cb *cb, int res)
{
	struct file_io *fio = container_of(cb, struct file_io, cb);
	struct bio *io = fio->io;
	struct file_backend *f = fio->f;

	if (res == -EAGAIN || res == -EINTR) {
		submit_step(f, fio); /* F1 */
		return;
	}
	switch (fio->step) {
	case ST_FALLOC:
		on_falloc(f, fio, res);
		return;
	case ST_FUA_SYNC:
		bio_done(io, res); /* B3: a sync's error latches */
		return;
	case ST_FADVISE:
		bio_done(io, 0); /* a hint: its failure is not the client's */
		return;
	}
	if (res < 0) {
		bio_done(io, res);
		return;
	}
	if (res == 0 && fio->io_done < fio->io_len) {
		bio_done(io, -EIO); /* F1: EOF inside the export */
		return;
	}
	fio->io_done += (size_t)res;
	if (fio->io_done < fio->io_len)
		submit_step(f, fio); /* F1: short I/O, go on */
	else
		step_done(f, fio);
}

/* ---------------------------------------------------------------- */
/* Extents.                                                           */

static void extents(struct file_backend *f, struct bio *io)
{
	uint64_t pos = io->off, end = io->off + io->len, next;
	bool data;

	io->n_ext = 0;
	while (pos < end && io->n_ext < io->max_ext) {
		extent_at(f->fd, pos, end, &data, &next);
		io->ext[io->n_ext].len = next - pos;
		io->ext[io->n_ext++].hole = !data;
		pos = next;
	}
	bio_done(io, 0);
}

/* ---------------------------------------------------------------- */
/* The ops.                                                           */

void file_submit(struct backend *b, struct bio *io)
{
	struct file_backend *f = container_of(b, struct file_backend, b);
	struct file_io *fio = fio_of(io);

	fio->cb.fn = on_step;
	fio->io = io;
	fio->f = f;
	switch (io->op) {
	case BIO_READ:
	case BIO_WRITE:
		if (f->mem && io->len <= INLINE_MAX) {
			inline_rw(io, f->fd); /* F3 */
			return;
		}
		if (io->op == BIO_WRITE) {
			if (f->direct || f->mem || io->fua ||
			    !write_inline(f, io)) /* F6 */
				start_write(f, fio);
			return;
		}
		if (!f->direct && !f->mem) {
			read_nowait(f, fio); /* F6 */
			return;
		}
		/* F2: the aligned window around the range (B5). */
		begin(f, fio, ST_READ, round_down(io->off, f->align),
		      round_up(io->off + io->len, f->align) -
			      round_down(io->off, f->align));
		return;
	case BIO_TRIM:
	case BIO_ZERO:
		fio->zr = (struct zero_req){.trim = io->op == BIO_TRIM,
					    .no_hole = io->no_hole,
					    .fast = io->fast,
					    .off = io->off,
					    .len = io->len};
		zero_next(f, fio);
		return;
	case BIO_CACHE:
		begin(f, fio, ST_FADVISE, io->off, io->len);
		return;
	case BIO_EXTENTS:
		extents(f, io);
		return;
	}
	abort();
}

static void on_sync(struct ring_cb *cb, int res)
{
	backend_sync_done(container_of(cb, struct backend_sync, cb), res);
}

void file_sync(struct backend *b, struct backend_sync *s)
{
	struct file_backend *f = container_of(b, struct file_backend, b);
	struct io_uring_sqe *sqe;

	if (f->mem || queue_idle(s->q)) { /* F3, F7 */
		backend_sync_done(s, fdatasync(f->fd) < 0 ? -errno : 0);
		return;
	}
	s->cb.fn = on_sync;
	sqe = queue_sqe(s->q, &s->cb);
	io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
}

static const struct backend_ops file_ops = {
	.name = "file",
	.prefix = NULL, /* the default: a path */
	.open = file_open,
	.default_name = file_default_name,
	.submit = file_submit,
	.sync = file_sync,
	.final_sync = file_final_sync,
	.capture = file_capture,
	.hash = file_hash,
	.close = file_close,
	.snapshot = file_snapshot, /* F8 */
	.read_sync = file_read_sync,
	.next_data = file_next_data,
};

BACKEND_REGISTER(file_ops);
