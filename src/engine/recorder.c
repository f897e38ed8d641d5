/* SPDX-License-Identifier: MIT */
/*
 * recorder.c: `loopd serve --record TRACE` (recorder.h, and the format in
 * docs/trace-format.md).
 *
 * Rules, cited as K1..K6:
 *
 * K1. One order.  Every record is appended under rec->lock, which also
 *     assigns its seq, so the trace's order is the order in which the
 *     engine called us.  The engine calls recorder_recv() under the
 *     export's lock before sched_submit(), recorder_reply() before the
 *     reply is queued, recorder_sync_*() around each fdatasync: the order
 *     the crash model needs (w ⊑ f iff REPLY(w) < RECV(f)).
 *     Lock order: exp->lock, then rec->lock.
 * K2. Payloads are stored once per content: XXH3-128 + length in a hash
 *     table give the offset of an earlier DATA record.  All-zero payloads
 *     are not stored.  The zero test and the hash happen in
 *     recorder_prepare(), before the engine takes the export's lock.
 *     The table grows by moving a few slots per add (trace.c), never by
 *     one whole rehash under the lock; the writer thread allocates (and
 *     faults in) the next table before it is needed and frees the
 *     moved-out one, outside rec->lock (dedupe_upkeep).
 * K3. Records are copied into 1 MiB buffers under rec->lock; full
 *     buffers are written, in order, by a writer thread, so no write(2)
 *     happens on the data path (recorder_recv runs under the export's
 *     lock).  At most TBUF_MAX_QUEUED buffers wait; past that, appends
 *     wait for the writer (backpressure, never a lost record).  The
 *     writer starts with the first buffer, after loopd has daemonised (a
 *     fork keeps no threads).  A killed server leaves a torn tail, which
 *     the reader detects by checksums and drops.
 * K4. Recording never changes what the client sees: a failure to write
 *     the trace is logged once and stops the recording; serving goes on.
 * K5. The base image is captured before the first request: a reflink
 *     where possible, else a sparse copy, at TRACE.base; its SHA-256 goes
 *     into the header.  The export's fd may be O_DIRECT, so the file is
 *     opened again by path.
 * K6. The header is written with write(2) at open, unbuffered, so a fork
 *     (daemonising) cannot write it twice.
 * K7. A trace with a hole is never passed off as whole.  The writer keeps
 *     the end (and seq) of the last record that reached the file in full.
 *     Once recording stopped on an error, close truncates the file there
 *     and appends an END with TRACE_END_INCOMPLETE right after it, so a
 *     reader sees a valid prefix that says it is incomplete, never records
 *     after a hole.  If even that fails, the trace has no END and reads as
 *     one whose server was killed.
 * K8. The trace's data goes around the page cache where the filesystem
 *     allows O_DIRECT: a trace is a second copy of every written byte,
 *     and through the page cache it competes with the export's own
 *     buffered writes for dirty memory and writeback.  Buffers are 4 KiB
 *     aligned in memory and in the file: a buffer that starts off an
 *     alignment boundary (after a mark drained a partial one, K3) ends on
 *     the next, so the stream is aligned again after one buffered write.
 *     A buffer that is not aligned at both ends, or a direct write the
 *     filesystem refuses (EINVAL), is written through the page cache at
 *     the same offset; both descriptors are synced at close.
 */
#include "engine/recorder.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/export.h"
#include "nbd/nbd.h"
#include "nbd/proto.h"
#include "trace/trace.h"
#include "trace/tracefile.h"
#include "util/clock.h"
#include "util/io.h"
#include "util/list.h"
#include "util/log.h"

#define TBUF_SIZE (1 << 20)
#define TBUF_MAX_QUEUED 64 /* 64 MiB waiting at most */
#define TBUF_SPARE 4 /* buffers kept for reuse */
#define TBUF_ALIGN 4096 /* K8: O_DIRECT alignment of the buffers */

struct tbuf {
	struct list_node node; /* in rec->queue or rec->spare */
	size_t len;
	size_t cap; /* K8: TBUF_SIZE, less what realigns the stream */
	uint8_t *data; /* TBUF_SIZE bytes, TBUF_ALIGN aligned */
	uint64_t last_end; /* K7: stream end of the last record ending in
			      this buffer, 0 if none */
	uint64_t last_seq; /* ... and its seq */
};

struct recorder {
	pthread_mutex_t lock; /* K1: protects everything below */
	pthread_cond_t cond; /* the buffer queue changed (K3) */
	int fd;
	int dfd; /* K8: the same file with O_DIRECT, or -1 */
	struct tbuf *cur; /* being filled */
	struct list_node queue; /* full, for the writer, in order */
	struct tbuf *last_queued; /* the buffer queued last (K7) */
	struct list_node spare;
	unsigned int n_queued, n_spare;
	bool writing; /* the writer holds a buffer */
	bool writer_started, closing;
	pthread_t writer;
	uint64_t written; /* stream bytes the writer has written */
	uint64_t good_end, good_seq; /* K7: the last record in the file */
	char *path;
	struct export *exp;
	uint64_t pos; /* file offset of the next record */
	uint64_t appended; /* stream bytes put so far (K8) */
	uint64_t seq; /* seq of the last record */
	uint64_t sync_id;
	uint64_t t0; /* CLOCK_MONOTONIC ns at open */
	struct trace_dedupe dd;
	struct trace_end tot;
	bool failed; /* K4: recording stopped */
};

/* K4: the first failure is logged; later ones are silent. */
static void stop_recording(struct recorder *rec, int err)
{
	if (!rec->failed)
		log_msg("--record %s: %s; recording stopped (serving goes on)",
			rec->path, strerror(err));
	rec->failed = true;
}

static void tbuf_free(struct tbuf *b)
{
	if (b) {
		free(b->data);
		free(b);
	}
}

/* K8: write b at stream offset off, directly where both ends are
   aligned.  Context: the writer thread, without rec->lock. */
static int write_tbuf(struct recorder *rec, const struct tbuf *b, uint64_t off)
{
	if (rec->dfd >= 0 && off % TBUF_ALIGN == 0 &&
	    b->len % TBUF_ALIGN == 0) {
		int r = pwrite_full(rec->dfd, b->data, b->len, off);

		if (r != -EINVAL)
			return r;
	}
	return pwrite_full(rec->fd, b->data, b->len, off);
}

/*
 * K2: the dedupe table's memory work, away from rec->lock (which the
 * engine holds under the export's lock): free a table it has moved out,
 * make the next one before a growth needs it.
 * Context: the writer thread, rec->lock held (released meanwhile).
 */
static void dedupe_upkeep(struct recorder *rec)
{
	struct trace_dedupe_ent *dead, *v = NULL;
	size_t cap = trace_dedupe_upkeep(&rec->dd, &dead);

	if (!dead && !cap)
		return;
	pthread_mutex_unlock(&rec->lock);
	free(dead);
	if (cap)
		v = trace_dedupe_table_new(cap);
	pthread_mutex_lock(&rec->lock);
	v = trace_dedupe_give(&rec->dd, v, cap);
	if (v) { /* the table grew meanwhile */
		pthread_mutex_unlock(&rec->lock);
		free(v);
		pthread_mutex_lock(&rec->lock);
	}
}

/* K3: the writer thread. */
static void *writer_main(void *arg)
{
	struct recorder *rec = arg;
	struct tbuf *b;
	uint64_t off;
	int r;

	pthread_mutex_lock(&rec->lock);
	for (;;) {
		while (list_empty(&rec->queue) && !rec->closing)
			pthread_cond_wait(&rec->cond, &rec->lock);
		if (list_empty(&rec->queue))
			break;
		b = list_entry(list_pop(&rec->queue), struct tbuf, node);
		rec->writing = true;
		off = rec->written;
		pthread_mutex_unlock(&rec->lock);
		r = rec->failed ? 0 : write_tbuf(rec, b, off);
		pthread_mutex_lock(&rec->lock);
		rec->writing = false;
		rec->n_queued--;
		rec->written += b->len;
		if (r < 0)
			stop_recording(rec, -r);
		else if (!rec->failed && b->last_end) {
			rec->good_end = b->last_end; /* K7 */
			rec->good_seq = b->last_seq;
		}
		if (rec->n_spare < TBUF_SPARE) {
			list_add_head(&rec->spare, &b->node);
			rec->n_spare++;
		} else {
			tbuf_free(b);
		}
		pthread_cond_broadcast(&rec->cond);
		dedupe_upkeep(rec);
	}
	pthread_mutex_unlock(&rec->lock);
	return NULL;
}

/*
 * Hand the current buffer to the writer.  Waits while too many are
 * queued.  Context: rec->lock held (released while waiting).
 */
static void queue_cur(struct recorder *rec)
{
	struct tbuf *b = rec->cur;
	int r;

	if (!b || !b->len)
		return;
	if (!rec->writer_started) {
		r = pthread_create(&rec->writer, NULL, writer_main, rec);
		if (r) {
			stop_recording(rec, r);
			return;
		}
		rec->writer_started = true;
	}
	while (rec->n_queued >= TBUF_MAX_QUEUED && !rec->failed)
		pthread_cond_wait(&rec->cond, &rec->lock);
	rec->cur = NULL;
	rec->last_queued = b;
	list_add_tail(&rec->queue, &b->node);
	rec->n_queued++;
	pthread_cond_broadcast(&rec->cond);
}

/* A buffer for the stream from rec->appended on; NULL if out of memory.
   Context: rec->lock held. */
static struct tbuf *get_tbuf(struct recorder *rec)
{
	struct tbuf *b = list_first_entry(&rec->spare, struct tbuf, node);

	if (b) {
		list_del(&b->node);
		rec->n_spare--;
	} else {
		b = malloc(sizeof *b);
		if (!b)
			return NULL;
		if (posix_memalign((void **)&b->data, TBUF_ALIGN, TBUF_SIZE)) {
			free(b);
			return NULL;
		}
	}
	b->len = 0;
	b->last_end = 0;
	b->cap = TBUF_SIZE - rec->appended % TBUF_ALIGN; /* K8 */
	return b;
}

/* Append bytes to the stream.  Context: rec->lock held. */
static void put(struct recorder *rec, const void *p, size_t len)
{
	const uint8_t *s = p;

	while (len && !rec->failed) {
		struct tbuf *b = rec->cur;
		size_t n;

		if (!b) {
			b = get_tbuf(rec);
			if (!b) {
				stop_recording(rec, ENOMEM);
				return;
			}
			rec->cur = b;
		}
		n = b->cap - b->len < len ? b->cap - b->len : len;
		memcpy(b->data + b->len, s, n);
		b->len += n;
		rec->appended += n;
		s += n;
		len -= n;
		if (b->len == b->cap)
			queue_cur(rec);
	}
}

/* Wait until everything appended so far is in the file (or failed).
   Context: rec->lock held (released while waiting). */
static void drain(struct recorder *rec)
{
	uint64_t target = rec->pos;

	queue_cur(rec);
	while (rec->written < target && !rec->failed && rec->writer_started)
		pthread_cond_wait(&rec->cond, &rec->lock);
}

/*
 * Append one record.  The tail is the DATA payload or MARK label (in r).
 * Context: rec->lock held.
 */
static void append(struct recorder *rec, struct trace_rec *r)
{
	static const uint8_t zero[8];
	uint8_t prefix[TRACE_REC_PREFIX_MAX];
	size_t n;

	if (rec->failed)
		return;
	r->seq = ++rec->seq;
	r->t_ns = clock_ns(CLOCK_MONOTONIC) - rec->t0;
	n = trace_encode_prefix(prefix, r);
	put(rec, prefix, n);
	if (r->type == TRACE_DATA)
		put(rec, r->data.bytes, r->data.len);
	else if (r->type == TRACE_MARK)
		put(rec, r->mark.label, r->mark.len);
	put(rec, zero, trace_rec_pad(r));
	rec->pos += r->size;
	rec->tot.n_records++;
	/* K7: the buffer this record ends in (queued already if it ended on
	   the buffer's last byte; the writer cannot have taken it yet, as
	   rec->lock was held since). */
	if (!rec->failed) {
		struct tbuf *b = rec->cur ? rec->cur : rec->last_queued;

		b->last_end = rec->pos;
		b->last_seq = r->seq;
	}
}

void recorder_prepare(const struct nbd_request *nr, const void *payload,
		      struct recorder_prep *p)
{
	p->kind = TRACE_DATA_NONE;
	if (nr->type != NBD_CMD_WRITE || !nr->length || !payload)
		return;
	if (trace_is_zero(payload, nr->length)) {
		p->kind = TRACE_DATA_ZERO;
	} else {
		trace_payload_hash(payload, nr->length, p->hash);
		p->kind = TRACE_DATA_REF;
	}
}

void recorder_recv(struct recorder *rec, uint32_t conn,
		   const struct nbd_request *nr, const void *payload,
		   const struct recorder_prep *p)
{
	struct trace_rec r = {.type = TRACE_RECV}, d = {.type = TRACE_DATA};
	bool has_data = p->kind == TRACE_DATA_REF;

	r.recv.conn = conn;
	r.recv.cmd = nr->type;
	r.recv.flags = nr->flags;
	r.recv.cookie = nr->cookie;
	r.recv.offset = nr->offset;
	r.recv.length = nr->length;
	r.recv.data_kind = p->kind;
	if (has_data) {
		memcpy(d.data.hash, p->hash, sizeof d.data.hash);
		d.data.len = nr->length;
		d.data.bytes = payload;
	}
	pthread_mutex_lock(&rec->lock);
	if (has_data) {
		r.recv.data_ref =
			trace_dedupe_find(&rec->dd, d.data.hash, d.data.len);
		if (!r.recv.data_ref) {
			r.recv.data_ref = rec->pos;
			append(rec, &d);
			rec->tot.data_bytes += d.data.len;
			if (trace_dedupe_add(&rec->dd, d.data.hash, d.data.len,
					     r.recv.data_ref) < 0)
				stop_recording(rec, ENOMEM);
		}
	}
	append(rec, &r);
	rec->tot.n_recv++;
	if (proto_cmd_is_write(nr->type)) {
		rec->tot.n_writes++;
		rec->tot.bytes_written += nr->length;
		if (nr->flags & NBD_CMD_FLAG_FUA)
			rec->tot.n_fua++;
	} else if (nr->type == NBD_CMD_FLUSH) {
		rec->tot.n_flushes++;
	}
	pthread_mutex_unlock(&rec->lock);
}

void recorder_reply(struct recorder *rec, uint32_t conn,
		    const struct nbd_request *nr, int status)
{
	struct trace_rec r = {.type = TRACE_REPLY};

	r.reply.conn = conn;
	r.reply.cmd = nr->type;
	r.reply.cookie = nr->cookie;
	r.reply.status = status;
	pthread_mutex_lock(&rec->lock);
	append(rec, &r);
	rec->tot.n_reply++;
	pthread_mutex_unlock(&rec->lock);
}

void recorder_sync_begin(struct recorder *rec)
{
	struct trace_rec r = {.type = TRACE_SYNC_BEGIN};

	pthread_mutex_lock(&rec->lock);
	r.sync.id = ++rec->sync_id;
	append(rec, &r);
	pthread_mutex_unlock(&rec->lock);
}

void recorder_sync_end(struct recorder *rec, int res)
{
	struct trace_rec r = {.type = TRACE_SYNC_END};

	pthread_mutex_lock(&rec->lock);
	r.sync.id = rec->sync_id;
	r.sync.res = res;
	append(rec, &r);
	pthread_mutex_unlock(&rec->lock);
}

static void mark(struct recorder *rec, const char *label, bool wait)
{
	struct trace_rec r = {.type = TRACE_MARK};
	size_t len = strnlen(label, TRACE_MARK_MAX);

	r.mark.label = label;
	r.mark.len = (uint32_t)len;
	pthread_mutex_lock(&rec->lock);
	append(rec, &r);
	rec->tot.n_marks++;
	/* A mark is what a harness waits for: make it reach the file. */
	if (wait)
		drain(rec);
	pthread_mutex_unlock(&rec->lock);
}

void recorder_mark(struct recorder *rec, const char *label)
{
	mark(rec, label, true);
}

void recorder_snapshot(struct recorder *rec, const char *label)
{
	mark(rec, label, false);
}

/* ------------------------------------------------------------------ */
/* Open and close.                                                     */

/* The atomic unit: the advertised minimum block size, but never below
   512, the smallest sector any NBD client uses (docs/trace-format.md). */
static uint32_t atomic_unit(uint32_t min_block)
{
	uint32_t a = 512;

	while (a < min_block)
		a *= 2;
	return a;
}

/* K5: capture the base image at base, and describe the export. */
static int make_header(struct export *exp, const char *base,
		       struct trace_header *h, bool *reflinked, char *err,
		       size_t errlen)
{
	char real[PATH_MAX];
	int r;

	r = exp->b->ops->capture(exp->b, base, reflinked);
	if (r < 0) {
		snprintf(err, errlen, "capturing the base image %s: %s", base,
			 strerror(-r));
		return r;
	}
	r = tracefile_sha256(base, h->base_sha256, NULL);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", base, strerror(-r));
		return r;
	}
	if (!realpath(base, real) || strlen(real) >= sizeof h->base_path) {
		snprintf(err, errlen, "%s: path too long for the trace", base);
		return -ENAMETOOLONG;
	}
	memcpy(h->base_path, real, strlen(real) + 1);
	h->size = exp->size;
	h->min_block = exp->min_block;
	h->atomic = atomic_unit(exp->min_block);
	h->tflags = exp->tflags;
	h->flush_mode = (uint8_t)exp->sched.flush;
	h->order_mode = (uint8_t)exp->sched.order;
	h->start_ns = clock_ns(CLOCK_REALTIME);
	snprintf(h->version, sizeof h->version, "loopd %s", LOOPD_VERSION);
	return 0;
}

int recorder_open(const char *path, struct export *exp, struct recorder **out,
		  char *err, size_t errlen)
{
	struct trace_header h = {0};
	uint8_t hb[TRACE_HEADER_SIZE];
	struct recorder *rec;
	char *base = NULL;
	bool reflinked;
	int r;

	rec = calloc(1, sizeof *rec);
	if (!rec || asprintf(&base, "%s.base", path) < 0) {
		free(rec);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&rec->lock, NULL);
	pthread_cond_init(&rec->cond, NULL);
	list_init(&rec->queue);
	list_init(&rec->spare);
	rec->dd.hand_off = true; /* K2: dedupe_upkeep */
	rec->fd = rec->dfd = -1;
	rec->exp = exp;
	rec->path = strdup(path);
	if (!rec->path) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out_free;
	}
	r = make_header(exp, base, &h, &reflinked, err, errlen);
	if (r < 0)
		goto out_free;
	trace_encode_header(hb, &h);

	rec->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (rec->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out_free;
	}
	/* K6 */
	r = write_full(rec->fd, hb, sizeof hb);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto out_close;
	}
	/* K8: EINVAL where the filesystem has no O_DIRECT */
	rec->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	rec->pos = rec->written = rec->good_end = TRACE_HEADER_SIZE;
	rec->appended = TRACE_HEADER_SIZE;
	rec->t0 = clock_ns(CLOCK_MONOTONIC);
	log_msg("--record %s: base image %s (%s)", path, h.base_path,
		reflinked ? "reflink" : "sparse copy");
	free(base);
	*out = rec;
	return 0;

out_close:
	close(rec->fd);
out_free:
	free(base);
	free(rec->path);
	pthread_cond_destroy(&rec->cond);
	pthread_mutex_destroy(&rec->lock);
	free(rec);
	return r;
}

/*
 * K7: after a failure, keep the prefix that reached the file whole and end
 * it with an END that says the recording is incomplete.  Context: the
 * writer has exited.
 */
static int end_incomplete(struct recorder *rec, struct trace_rec *r)
{
	uint8_t *buf;
	size_t n;
	int ret;

	r->seq = rec->good_seq + 1;
	r->t_ns = clock_ns(CLOCK_MONOTONIC) - rec->t0;
	r->end.flags |= TRACE_END_INCOMPLETE;
	r->end.n_records = rec->good_seq;
	buf = malloc(trace_rec_size(r));
	if (!buf)
		return -ENOMEM;
	n = trace_encode_rec(buf, r);
	if (ftruncate(rec->fd, (off_t)rec->good_end) < 0 ||
	    lseek(rec->fd, (off_t)rec->good_end, SEEK_SET) < 0)
		ret = -errno;
	else
		ret = write_full(rec->fd, buf, n);
	free(buf);
	return ret;
}

int recorder_close(struct recorder *rec)
{
	struct trace_rec r = {.type = TRACE_END};
	int ret = 0, s;

	pthread_mutex_lock(&rec->lock);
	r.end = rec->tot;
	/* n_records counts the records before END. */
	r.end.final_size = rec->exp->size;
	s = rec->exp->b->ops->hash(rec->exp->b, r.end.final_sha256);
	if (s < 0) {
		log_msg("--record %s: hashing export \"%s\": %s", rec->path,
			rec->exp->name, strerror(-s));
		r.end.flags |= TRACE_END_INCOMPLETE;
	}
	append(rec, &r); /* nothing, if recording stopped (K4) */
	queue_cur(rec);
	rec->closing = true;
	pthread_cond_broadcast(&rec->cond);
	pthread_mutex_unlock(&rec->lock);
	if (rec->writer_started)
		pthread_join(rec->writer, NULL);
	if (rec->cur && rec->cur->len) /* the writer never started */
		stop_recording(rec, EIO);
	if (rec->failed) {
		s = end_incomplete(rec, &r);
		if (s < 0)
			log_msg("--record %s: cannot end the trace: %s; it "
				"reads as unfinished",
				rec->path, strerror(-s));
		else
			log_msg("--record %s: kept %" PRIu64
				" records up to the failure; the trace says "
				"it is incomplete",
				rec->path, rec->good_seq);
	}
	if (fdatasync(rec->fd) < 0)
		stop_recording(rec, errno);
	ret = rec->failed ? -EIO : 0;
	if (close(rec->fd) < 0 && !ret)
		ret = -errno;
	if (rec->dfd >= 0)
		close(rec->dfd); /* synced with rec->fd: one file */
	while (!list_empty(&rec->spare))
		tbuf_free(list_entry(list_pop(&rec->spare), struct tbuf, node));
	tbuf_free(rec->cur);
	trace_dedupe_free(&rec->dd);
	pthread_cond_destroy(&rec->cond);
	pthread_mutex_destroy(&rec->lock);
	free(rec->path);
	free(rec);
	return ret;
}
