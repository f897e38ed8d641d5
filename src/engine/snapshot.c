/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c: live snapshots of a running export (snapshot.h): the
 * capture at one instant of the request order, and the copy-before-write
 * that makes a snapshot on a filesystem without reflinks.
 *
 * I1. The instant P.  A snapshot is a capture point of the scheduler (R8
 *     in sched.c), submitted on worker 0 through E9 under exp->lock.  In
 *     the same critical section the recorder appends the mark "snapshot
 *     NAME" (K1: the trace puts P there, between the RECVs before and
 *     after) and the checkpoint NAME is made (engine/dirty.h: it tracks
 *     exactly the writes received after P).
 * I2. Drain and hold.  R8 RUNs the capture point once every write
 *     received before P completed, and holds every write received after P
 *     until the capture completes; reads, FLUSHes and other exports never
 *     wait.  So the storage holds exactly the writes received before P:
 *     a crash state at P, where every write replied before P is present,
 *     none received after, and each in flight at P is present (a subset,
 *     as the contract allows).  The cost is measured: the writes that
 *     arrived while held, and the longest hold (from the first held
 *     write's arrival to the release).
 * I3. Capture, on the caller's thread (never a worker).  With --sync the
 *     export is synced first, inside R8's sync op (R5: an error latches
 *     the export, and the snapshot fails).  Then the backend's snapshot():
 *     a reflink into DEST.part, or an RBD snapshot.  Where the backend has
 *     none (-EOPNOTSUPP: no reflink here; or the in-memory backend),
 *     copy-before-write (I4) is armed instead, which takes no time.  Then
 *     the capture point completes (E9) and the held writes go.
 * I4. Copy-before-write.  DEST.part gets the export's contents at P, in
 *     blocks of CBW_BLOCK bytes, each with a bit that is set once its
 *     contents at P are in DEST.part.  A write, TRIM or WRITE_ZEROES
 *     received after P copies, before the backend sees it (request.c),
 *     the blocks of its range whose bits are clear; the background copy
 *     does the same, CBW_CHUNK at a time, skipping the export's holes
 *     (next_data).  Either reads the blocks without the lock
 *     (read_sync), then under it writes to DEST.part those still clear
 *     (all-zero blocks stay holes) and sets their bits.  A write after P
 *     reaches the export only once its blocks' bits are set, and bits are
 *     never cleared: a block still clear under the lock has not been
 *     written since P, so the bytes read before are its contents at P,
 *     and each block reaches DEST.part once.  A block whose bit was clear
 *     when next_data looked has not changed since P, so its hole is P's.
 * I5. A failed copy fails the snapshot, never a client's write: the copy
 *     stops, the writes go on unhindered, DEST.part is removed and the
 *     error is the snapshot's answer.
 * I6. Complete.  DEST.part is synced (--sync), renamed to DEST without
 *     replacing anything (RENAME_NOREPLACE) and its directory synced
 *     (--sync): DEST never exists incomplete, and never replaces a file.
 * I7. One at a time per export: a snapshot waits for the copy of the one
 *     before to end.  The bitmap is allocated once and reused: when a
 *     capture point RUNs, every write received before it has completed
 *     (R8), so no write of an older snapshot is still between its check
 *     and its copy.
 * I8. At stop, after the workers have exited, a running copy is abandoned
 *     (DEST.part removed, logged); a caller waiting for it gets an error.
 * I9. What a snapshot costs is the drain and the capture (reflink, RBD),
 *     or the drain alone (copy-before-write), while writes are held;
 *     after that, with copy-before-write, each first write to a block
 *     copies it (one 4 KiB read and write for a 4 KiB write).  The
 *     background copy yields to the clients: it runs at nice 19, and
 *     while writes arrive it pauses CBW_YIELD times as long as it copied
 *     (at most 20 ms) after each CBW_CHUNK, so that a busy export's
 *     snapshot takes longer to complete rather than slowing its clients;
 *     an idle export's is copied at full speed.  Its lock is held only to
 *     write what was read.  Measured in bench/snapshot.
 */
#include "engine/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dirty.h"
#include "engine/export.h"
#include "engine/inject.h"
#include "engine/queue.h"
#include "engine/recorder.h"
#include "engine/request.h"
#include "util/clock.h"
#include "util/log.h"

#define CBW_BLOCK 4096u /* I4: the unit of the copied map */
#define CBW_CHUNK (256u << 10) /* I4: the background copy's piece */
#define CBW_YIELD 9 /* I9: pause this many times a piece's copy time */
#define CBW_PAUSE_MAX_NS 20000000ull /* I9: ... but at most 20 ms */
#define SNAP_LABEL_PREFIX "snapshot " /* I1: trace/states.c knows it */

enum phase {
	PH_IDLE,
	PH_SUBMITTED, /* on its way to worker 0 */
	PH_RUN, /* drained: capture now (I2) */
	PH_REPLIED, /* the capture point is done (or refused) */
};

struct snapshot {
	struct export *exp;
	pthread_mutex_t take_lock; /* I7: one snapshot at a time */

	/* The capture point (I1-I3), under wait_lock. */
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;
	struct sched_req s;
	struct queue_call submit_call, complete_call;
	struct queue *q;
	enum phase phase;
	int status; /* at PH_REPLIED */
	int complete_res; /* what the capture point completes with */
	char label[DIRTY_NAME_MAX + 16];
	const char *ckpt; /* the checkpoint to make at P, or NULL */
	int ckpt_res;

	/* I2, under exp->lock. */
	bool holding;
	uint64_t held, t_p, t_first_held, t_release;

	/* I4: the copy-before-write, under lock; active is read without. */
	pthread_mutex_t lock;
	atomic_bool active;
	_Atomic uint64_t *bits; /* one per granule, allocated once (I7) */
	uint64_t n_blocks;
	uint8_t *buf; /* the background copy's CBW_CHUNK, 4096-aligned */
	int dst_fd;
	char *part, *dest;
	bool sync;
	int err; /* I5: the first copy error */
	uint64_t copied, copied_by_writes;
	atomic_bool cancel; /* I8 */
	atomic_uint_fast64_t writes_seen; /* I9: writes while it copies */
	bool thread_running;
	pthread_t thread;
	uint64_t t_start, t_done;
	int result; /* the copy's: 0 or -errno, with msg */
	char msg[512];
};

struct snapshot *snapshot_new(struct export *exp)
{
	struct snapshot *sn = calloc(1, sizeof *sn);

	if (!sn)
		return NULL;
	sn->exp = exp;
	sn->dst_fd = -1;
	pthread_mutex_init(&sn->take_lock, NULL);
	pthread_mutex_init(&sn->wait_lock, NULL);
	pthread_cond_init(&sn->wait_cond, NULL);
	pthread_mutex_init(&sn->lock, NULL);
	sn->s.kind = SCHED_SNAP;
	return sn;
}

bool snapshot_supported(const struct export *exp, bool *to_files)
{
	const struct backend_ops *ops = exp->b->ops;

	*to_files = ops->read_sync != NULL;
	return !exp->read_only && (ops->snapshot || ops->read_sync);
}

/* ---------------------------------------------------------------- */
/* The engine's hooks.                                                */

bool snapshot_holding(const struct snapshot *sn)
{
	return sn->holding;
}

void snapshot_note_held(struct snapshot *sn)
{
	if (!sn->held++)
		sn->t_first_held = clock_ns(CLOCK_MONOTONIC);
}

static void set_phase(struct snapshot *sn, enum phase ph, int status)
{
	pthread_mutex_lock(&sn->wait_lock);
	sn->phase = ph;
	sn->status = status;
	pthread_cond_broadcast(&sn->wait_cond);
	pthread_mutex_unlock(&sn->wait_lock);
}

bool snapshot_event(struct export *exp, struct sched_req *s)
{
	struct snapshot *sn = exp->snap;

	if (s->kind != SCHED_SNAP)
		return false;
	if (s->action == SCHED_RUN)
		set_phase(sn, PH_RUN, 0); /* I2: drained */
	else
		set_phase(sn, PH_REPLIED, s->status);
	return true;
}

/* I1, on worker 0 (E9). */
static void on_submit(struct queue *q, struct queue_call *c)
{
	struct snapshot *sn = container_of(c, struct snapshot, submit_call);
	struct export *exp = sn->exp;
	struct sched_out o;

	queue_hold(q); /* E9: until the capture completes */
	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	sn->t_p = clock_ns(CLOCK_MONOTONIC);
	sn->held = 0;
	sn->t_first_held = 0;
	sn->holding = true;
	if (exp->rec)
		recorder_snapshot(exp->rec, sn->label);
	sn->ckpt_res = sn->ckpt ? dirty_create(exp->dirty, sn->ckpt) : 0;
	sched_submit(&exp->sched, &sn->s, &o);
	pthread_mutex_unlock(&exp->lock);
	engine_events(q, &o, exp);
	pthread_mutex_lock(&sn->wait_lock);
	if (sn->phase == PH_REPLIED) { /* refused at once (R8): no capture */
		pthread_mutex_lock(&exp->lock);
		sn->holding = false;
		sn->t_release = clock_ns(CLOCK_MONOTONIC);
		pthread_mutex_unlock(&exp->lock);
		queue_release(q);
	}
	pthread_mutex_unlock(&sn->wait_lock);
}

/* I3: the capture is over; the held writes go. */
static void on_complete(struct queue *q, struct queue_call *c)
{
	struct snapshot *sn = container_of(c, struct snapshot, complete_call);
	struct export *exp = sn->exp;
	struct sched_out o;

	bool latched;

	sched_out_init(&o);
	pthread_mutex_lock(&exp->lock);
	sn->holding = false;
	sn->t_release = clock_ns(CLOCK_MONOTONIC);
	latched = !sched_failed(&exp->sched);
	sched_complete(&exp->sched, &sn->s, sn->complete_res, &o);
	latched = latched && sched_failed(&exp->sched);
	if (latched) { /* N6: the first latch says why */
		exp->latch_err = -sn->complete_res;
		exp->latch_op = "snapshot sync";
	}
	pthread_mutex_unlock(&exp->lock);
	if (latched) /* R5, as for a failed FLUSH's sync */
		log_msg("export \"%s\": the sync of snapshot --sync failed: "
			"%s; the export no longer claims durability until "
			"restarted (writes and flushes get EIO)",
			exp->name, strerror(-sn->complete_res));
	engine_events(q, &o, exp);
	queue_release(q);
}

/* ---------------------------------------------------------------- */
/* Copy-before-write (I4).                                            */

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static bool bit_test(struct snapshot *sn, uint64_t g)
{
	return atomic_load_explicit(&sn->bits[g / 64], memory_order_acquire) &
	       (1ull << (g % 64));
}

static void bit_set(struct snapshot *sn, uint64_t g)
{
	atomic_fetch_or_explicit(&sn->bits[g / 64], 1ull << (g % 64),
				 memory_order_release);
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		off += (uint64_t)w;
		len -= (size_t)w;
	}
	return 0;
}

/* I4: len bytes of DEST.part at off from p, its all-zero blocks left as
   holes.  0 or -errno. */
static int write_sparse(struct snapshot *sn, const uint8_t *p, size_t len,
			uint64_t off, uint64_t *written)
{
	size_t i = 0, start;
	int r = 0;

	while (!r && i < len) {
		while (i < len &&
		       all_zero(p + i,
				len - i < CBW_BLOCK ? len - i : CBW_BLOCK))
			i += CBW_BLOCK;
		start = i;
		while (i < len &&
		       !all_zero(p + i,
				 len - i < CBW_BLOCK ? len - i : CBW_BLOCK))
			i += CBW_BLOCK;
		if (i > len)
			i = len;
		if (i > start) {
			r = pwrite_all(sn->dst_fd, p + start, i - start,
				       off + start);
			*written += i - start;
		}
	}
	return r;
}

/* I5: the first error stops the copy; writes go on without it.  Under
   sn->lock. */
static void copy_failed(struct snapshot *sn, int err)
{
	if (!sn->err)
		sn->err = err;
	atomic_store_explicit(&sn->active, false, memory_order_release);
}

/*
 * I4: the blocks b0..b1 whose bits are clear.  They are read without the
 * lock into buf (room for (b1 - b0 + 1) blocks); under it, those still
 * clear are written and their bits set.  A block clear under the lock has
 * not been written since P (a write sets the bit first), so what was read
 * is its contents at P.  0, or -errno (also when the copy has stopped:
 * its error, or -ECANCELED).
 */
static int copy_blocks(struct snapshot *sn, uint64_t b0, uint64_t b1,
		       uint8_t *buf, bool by_write)
{
	struct backend *b = sn->exp->b;
	uint64_t size = sn->exp->size, off = b0 * CBW_BLOCK, k, e, w;
	uint64_t end =
		(b1 + 1) * CBW_BLOCK > size ? size : (b1 + 1) * CBW_BLOCK;
	size_t len = (size_t)(end - off);
	long n = b->ops->read_sync(b, buf, (len + 4095) & ~(size_t)4095, off);
	int r = n < 0 ? (int)n : 0;

	if (n >= 0 && (size_t)n < len)
		memset(buf + n, 0, len - (size_t)n);
	pthread_mutex_lock(&sn->lock);
	if (!atomic_load(&sn->active))
		r = sn->err ? sn->err : -ECANCELED;
	for (k = b0; !r && k <= b1; k = e + 1) {
		uint64_t lo = k * CBW_BLOCK, hi;

		e = k;
		if (bit_test(sn, k))
			continue;
		while (e < b1 && !bit_test(sn, e + 1))
			e++;
		hi = (e + 1) * CBW_BLOCK > end ? end : (e + 1) * CBW_BLOCK;
		w = 0;
		r = write_sparse(sn, buf + (lo - off), (size_t)(hi - lo), lo,
				 &w);
		if (r)
			break;
		for (uint64_t j = k; j <= e; j++)
			bit_set(sn, j);
		sn->copied += w; /* bytes written: holes are not counted */
		if (by_write)
			sn->copied_by_writes += w;
	}
	if (r && r != -ECANCELED && atomic_load(&sn->active))
		copy_failed(sn, r);
	pthread_mutex_unlock(&sn->lock);
	return r;
}

void snapshot_before_write(struct snapshot *sn, uint64_t off, uint64_t len)
{
	uint64_t b0, b1, c0, c1, k;
	uint8_t *buf;

	if (!atomic_load_explicit(&sn->active, memory_order_acquire) || !len)
		return;
	atomic_fetch_add_explicit(&sn->writes_seen, 1, memory_order_relaxed);
	b0 = off / CBW_BLOCK;
	b1 = (off + len - 1) / CBW_BLOCK;
	if (b1 >= sn->n_blocks)
		b1 = sn->n_blocks - 1;
	for (c0 = b0; c0 <= b1 && bit_test(sn, c0); c0++)
		;
	if (c0 > b1)
		return; /* all copied: the common case, no lock */
	for (c1 = b1; bit_test(sn, c1); c1--)
		;
	/* I4: in pieces of CBW_CHUNK; a failure is the snapshot's (I5). */
	if (posix_memalign((void **)&buf, 4096,
			   (c1 - c0 + 1) * CBW_BLOCK < CBW_CHUNK
				   ? (c1 - c0 + 1) * CBW_BLOCK
				   : CBW_CHUNK)) {
		pthread_mutex_lock(&sn->lock);
		copy_failed(sn, -ENOMEM);
		pthread_mutex_unlock(&sn->lock);
		return;
	}
	for (k = c0; k <= c1; k += CBW_CHUNK / CBW_BLOCK) {
		uint64_t e = k + CBW_CHUNK / CBW_BLOCK - 1;

		if (copy_blocks(sn, k, e < c1 ? e : c1, buf, true))
			break;
	}
	free(buf);
}

/* I6: DEST.part becomes DEST.  0 or -errno with err. */
static int finish_file(int fd, const char *part, const char *dest, bool sync,
		       char *err, size_t errlen)
{
	char *d = strdup(dest);
	int r = 0, dfd;

	if (sync && fsync(fd) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot sync %s: %s", part, strerror(-r));
	}
	if (close(fd) < 0 && !r) {
		r = -errno;
		snprintf(err, errlen, "cannot write %s: %s", part,
			 strerror(-r));
	}
	if (!r &&
	    renameat2(AT_FDCWD, part, AT_FDCWD, dest, RENAME_NOREPLACE) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot rename %s to %s: %s", part, dest,
			 strerror(-r));
	}
	if (r)
		unlink(part);
	if (!r && sync && d) {
		dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			if (fsync(dfd) < 0)
				r = -errno;
			close(dfd);
		}
		if (r)
			snprintf(err, errlen,
				 "cannot sync the directory of %s: %s", dest,
				 strerror(-r));
	}
	free(d);
	return r;
}

static void pause_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* I4: the background copy, on a thread of its own; then I5 or I6. */
static void *copy_main(void *arg)
{
	struct snapshot *sn = arg;
	struct backend *b = sn->exp->b;
	const uint64_t per = CBW_CHUNK / CBW_BLOCK;
	uint64_t k = 0, data_hi = 0, data_lo, e;
	uint64_t seen, t0, dt;
	int r = 0;

	/* I9: the copy yields the CPU to the clients. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
		log_msg("snapshot: cannot lower the copy's priority: %s",
			strerror(errno));
	while (k < sn->n_blocks && !atomic_load(&sn->cancel)) {
		if (bit_test(sn, k)) {
			k++;
			continue;
		}
		if (b->ops->next_data && k * CBW_BLOCK >= data_hi) {
			/* I4: the next data extent; blocks before it were
			   holes at P. */
			data_lo = b->ops->next_data(b, k * CBW_BLOCK, &data_hi);
			if (data_lo >= sn->exp->size)
				break;
			if (data_lo / CBW_BLOCK > k) {
				k = data_lo / CBW_BLOCK;
				continue;
			}
		}
		e = k + per - 1 < sn->n_blocks ? k + per - 1 : sn->n_blocks - 1;
		seen = atomic_load_explicit(&sn->writes_seen,
					    memory_order_relaxed);
		t0 = clock_ns(CLOCK_MONOTONIC);
		r = copy_blocks(sn, k, e, sn->buf, false);
		if (r < 0)
			break;
		k = e + 1;
		/* I9: while clients write, copy at most 1 / (1 + CBW_YIELD)
		   of the time; when they do not, at full speed. */
		dt = clock_ns(CLOCK_MONOTONIC) - t0;
		if (seen != atomic_load_explicit(&sn->writes_seen,
						 memory_order_relaxed))
			pause_ns(dt * CBW_YIELD < CBW_PAUSE_MAX_NS
					 ? dt * CBW_YIELD
					 : CBW_PAUSE_MAX_NS);
	}
	pthread_mutex_lock(&sn->lock);
	if (atomic_load(&sn->cancel) && !sn->err)
		sn->err = -ECANCELED;
	atomic_store(&sn->active, false); /* writes go on without us */
	r = sn->err;
	pthread_mutex_unlock(&sn->lock);
	if (r == -ECANCELED) {
		snprintf(sn->msg, sizeof sn->msg,
			 "the server stopped before the copy into %s was "
			 "complete; removed",
			 sn->part);
	} else if (r) {
		snprintf(sn->msg, sizeof sn->msg, "copying into %s failed: %s",
			 sn->part, strerror(-r));
	}
	if (r) { /* I5 */
		close(sn->dst_fd);
		unlink(sn->part);
	} else { /* I6 */
		r = finish_file(sn->dst_fd, sn->part, sn->dest, sn->sync,
				sn->msg, sizeof sn->msg);
	}
	sn->dst_fd = -1;
	sn->result = r;
	if (r)
		log_msg("export \"%s\": snapshot %s: %s", sn->exp->name,
			sn->dest, sn->msg);
	sn->t_done = clock_ns(CLOCK_MONOTONIC);
	return NULL;
}

/* I4: arm copy-before-write into fd (DEST.part).  0 or -ENOMEM. */
static int cbw_arm(struct snapshot *sn, int fd, const char *part,
		   const char *dest, bool sync)
{
	uint64_t n = (sn->exp->size + CBW_BLOCK - 1) / CBW_BLOCK;

	if (!sn->bits) { /* I7: once */
		sn->bits = calloc((n + 63) / 64, sizeof *sn->bits);
		if (posix_memalign((void **)&sn->buf, 4096, CBW_CHUNK))
			sn->buf = NULL;
		if (!sn->bits || !sn->buf) {
			free((void *)sn->bits);
			free(sn->buf);
			sn->bits = NULL;
			sn->buf = NULL;
			return -ENOMEM;
		}
	} else {
		memset((void *)sn->bits, 0, (n + 63) / 64 * sizeof *sn->bits);
	}
	sn->n_blocks = n;
	sn->dst_fd = fd;
	free(sn->part);
	free(sn->dest);
	sn->part = strdup(part);
	sn->dest = strdup(dest);
	sn->sync = sync;
	sn->err = 0;
	sn->copied = sn->copied_by_writes = 0;
	if (!sn->part || !sn->dest)
		return -ENOMEM;
	atomic_store_explicit(&sn->active, true, memory_order_release);
	return 0;
}

/* I4-I6: wait for the copy (which completes DEST itself).  0 or
   -errno with err. */
static int cbw_finish(struct snapshot *sn, struct snapshot_result *res,
		      char *err, size_t errlen)
{
	pthread_join(sn->thread, NULL);
	sn->thread_running = false;
	if (res) {
		res->copied = sn->copied;
		res->copied_by_writes = sn->copied_by_writes;
	}
	if (sn->result)
		snprintf(err, errlen, "%.*s", (int)(errlen ? errlen - 1 : 0),
			 sn->msg);
	return sn->result;
}

/* ---------------------------------------------------------------- */
/* Taking one.                                                        */

static void wait_phase(struct snapshot *sn, enum phase ph)
{
	pthread_mutex_lock(&sn->wait_lock);
	while (sn->phase < ph)
		pthread_cond_wait(&sn->wait_cond, &sn->wait_lock);
	pthread_mutex_unlock(&sn->wait_lock);
}

/* The checkpoint's name: DEST's base name (or the RBD snapshot's). */
static void checkpoint_name(const char *dest, char *out, size_t len)
{
	const char *slash = strrchr(dest, '/');

	snprintf(out, len, "%s", slash ? slash + 1 : dest);
}

/* I3 for a path: create DEST.part.  fd or -errno with err. */
static int open_part(const char *dest, char *part, size_t plen, char *err,
		     size_t errlen, uint64_t size)
{
	int fd;

	if ((size_t)snprintf(part, plen, "%s.part", dest) >= plen) {
		snprintf(err, errlen, "%s: name too long", dest);
		return -ENAMETOOLONG;
	}
	if (access(dest, F_OK) == 0) {
		snprintf(err, errlen,
			 "%s exists (a snapshot never replaces "
			 "a file)",
			 dest);
		return -EEXIST;
	}
	fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot create %s: %s", part,
			 e == EEXIST ? "it exists (another snapshot's "
				       "unfinished copy?)"
				     : strerror(e));
		return -e;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot size %s: %s", part, strerror(e));
		close(fd);
		unlink(part);
		return -e;
	}
	return fd;
}

static void fill_times(struct snapshot *sn, struct snapshot_result *res,
		       uint64_t t_run, uint64_t t_cap)
{
	struct export *exp = sn->exp;

	pthread_mutex_lock(&exp->lock);
	res->held_writes = sn->held;
	res->hold_ns = sn->held ? sn->t_release - sn->t_first_held : 0;
	pthread_mutex_unlock(&exp->lock);
	res->drain_ns = t_run - sn->t_p;
	res->capture_ns = t_cap - t_run;
}

/* I1-I3: the capture point; on success *cbw says I4 was armed. */
static int capture(struct snapshot *sn, const struct snapshot_opts *o, int fd,
		   const char *part, struct snapshot_result *res, bool *cbw,
		   char *err, size_t errlen)
{
	struct export *exp = sn->exp;
	struct backend *b = exp->b;
	uint64_t t_run, t_cap;
	int r = 0, sync_res = 0;

	sn->phase = PH_SUBMITTED;
	sn->s.fua = o->sync; /* R8 */
	sn->q = queue_of(0);
	sn->submit_call.fn = on_submit;
	sn->complete_call.fn = on_complete;
	if (queue_call(sn->q, &sn->submit_call, false) < 0) {
		snprintf(err, errlen, "the server is stopping");
		return -ESHUTDOWN;
	}
	wait_phase(sn, PH_RUN);
	if (sn->phase == PH_REPLIED) { /* R8: a latched export */
		snprintf(err, errlen,
			 "the export has latched an error (R5); "
			 "a synced snapshot cannot be taken");
		return sn->status ? sn->status : -EIO;
	}
	t_run = clock_ns(CLOCK_MONOTONIC);
	if (o->sync) { /* I3, R5; a sync as --inject sees it */
		unsigned int delay = 0;

		if (unlikely(inject_enabled))
			inject_match(INJ_SYNC, 0, 0, &delay, &sync_res);
		if (!sync_res)
			sync_res = b->ops->final_sync(b);
		if (sync_res < 0) {
			r = sync_res;
			snprintf(err, errlen, "syncing the export failed: %s",
				 strerror(-r));
		}
	}
	*cbw = false;
	if (!r && b->ops->snapshot) {
		r = b->ops->snapshot(b, o->dest, fd, err, errlen);
		res->method = fd >= 0 ? "reflink" : "rbd";
	} else if (!r) {
		r = -EOPNOTSUPP;
	}
	if (r == -EOPNOTSUPP && fd < 0)
		snprintf(err, errlen, "the backend has no way to snapshot");
	if (r == -EOPNOTSUPP && fd >= 0) { /* I4 */
		res->method = "copy-before-write";
		r = cbw_arm(sn, fd, part, o->dest, o->sync);
		*cbw = r == 0;
		if (r)
			snprintf(err, errlen, "no memory for the copy");
	}
	t_cap = clock_ns(CLOCK_MONOTONIC);
	sn->complete_res = sync_res; /* R8: only the sync's error latches */
	queue_call(sn->q, &sn->complete_call, true);
	wait_phase(sn, PH_REPLIED);
	fill_times(sn, res, t_run, t_cap);
	if (!r && sn->status) {
		r = sn->status; /* R5: retired with the latch */
		snprintf(err, errlen, "the export's sync failed (R5): %s",
			 strerror(-r));
	}
	if (r && *cbw) {
		pthread_mutex_lock(&sn->lock);
		atomic_store(&sn->active, false);
		pthread_mutex_unlock(&sn->lock);
		*cbw = false;
	}
	return r;
}

int snapshot_take(struct export *exp, const struct snapshot_opts *o,
		  struct snapshot_result *res, char *err, size_t errlen)
{
	struct snapshot *sn = exp->snap;
	char part[PATH_MAX], ckpt[DIRTY_NAME_MAX + 1];
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
	bool to_files, cbw = false;
	int fd = -1, r;

	memset(res, 0, sizeof *res);
	if (!snapshot_supported(exp, &to_files)) {
		snprintf(err, errlen, "export \"%s\" cannot be snapshotted%s",
			 exp->name, exp->read_only ? " (read-only)" : "");
		return -ENOTSUP;
	}
	pthread_mutex_lock(&sn->take_lock);
	if (sn->thread_running) { /* I7 */
		char e2[512];

		cbw_finish(sn, NULL, e2, sizeof e2); /* logged by the copy */
	}
	if (to_files) {
		fd = open_part(o->dest, part, sizeof part, err, errlen,
			       exp->size);
		if (fd < 0) {
			pthread_mutex_unlock(&sn->take_lock);
			return fd;
		}
	}
	checkpoint_name(o->dest, ckpt, sizeof ckpt);
	snprintf(sn->label, sizeof sn->label, SNAP_LABEL_PREFIX "%s", ckpt);
	sn->ckpt = exp->dirty ? ckpt : NULL;
	r = capture(sn, o, fd, part, res, &cbw, err, errlen);
	if (sn->ckpt && sn->ckpt_res == 0) {
		if (r) { /* no snapshot, no checkpoint named after it */
			dirty_delete(exp->dirty, ckpt);
		} else {
			snprintf(res->checkpoint, sizeof res->checkpoint, "%s",
				 ckpt);
			if (dirty_set_persist(exp->dirty) < 0)
				snprintf(res->note, sizeof res->note,
					 "the checkpoint's sidecar could not "
					 "be written");
		}
	} else if (sn->ckpt) {
		snprintf(res->note, sizeof res->note, "no checkpoint: %s",
			 sn->ckpt_res == -EEXIST   ? "one has this name"
			 : sn->ckpt_res == -ENOSPC ? "too many"
			 : sn->ckpt_res == -EINVAL ? "the name has characters "
						     "a checkpoint cannot have"
						   : strerror(-sn->ckpt_res));
	}
	if (r) {
		if (fd >= 0) {
			close(fd);
			unlink(part);
		}
	} else if (cbw) {
		sn->t_start = t0;
		sn->thread_running = true;
		r = pthread_create(&sn->thread, NULL, copy_main, sn);
		if (r) {
			sn->thread_running = false;
			pthread_mutex_lock(&sn->lock);
			atomic_store(&sn->active, false);
			pthread_mutex_unlock(&sn->lock);
			close(fd);
			unlink(part);
			snprintf(err, errlen, "cannot start the copy: %s",
				 strerror(r));
			r = -r;
		} else if (o->no_wait) {
			res->pending = true;
		} else {
			r = cbw_finish(sn, res, err, errlen);
		}
	} else if (fd >= 0) {
		r = finish_file(fd, part, o->dest, o->sync, err, errlen);
	}
	res->total_ns = clock_ns(CLOCK_MONOTONIC) - t0;
	pthread_mutex_unlock(&sn->take_lock);
	return r;
}

void snapshot_cancel(struct snapshot *sn)
{
	atomic_store(&sn->cancel, true);
}

void snapshot_free(struct snapshot *sn)
{
	char err[512];

	if (!sn)
		return;
	if (sn->thread_running) { /* I8: logged by the copy */
		atomic_store(&sn->cancel, true);
		cbw_finish(sn, NULL, err, sizeof err);
	}
	pthread_mutex_destroy(&sn->take_lock);
	pthread_mutex_destroy(&sn->wait_lock);
	pthread_cond_destroy(&sn->wait_cond);
	pthread_mutex_destroy(&sn->lock);
	free((void *)sn->bits);
	free(sn->buf);
	free(sn->part);
	free(sn->dest);
	free(sn);
}
