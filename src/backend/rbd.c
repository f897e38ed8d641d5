/* SPDX-License-Identifier: MIT */
/*
 * rbd.c: the Ceph RBD backend, `loopd serve rbd:POOL/IMAGE`: an image of
 * a Ceph cluster served through librbd's C asynchronous API, with the
 * same contract as a file (docs/semantics.md, "RBD").
 *
 * D1. One image handle per export, shared by every connection and worker:
 *     librbd's cache is per handle and not coherent between handles, and a
 *     second handle would fight over the image's exclusive lock.
 * D2. Completions.  librbd completes each operation on a thread of its
 *     own.  The callback pushes the operation on its worker's stack of
 *     finished operations (lock-free, many producers, one consumer) and,
 *     when that stack was empty, writes the worker's eventfd.  A read of
 *     that eventfd on the worker's ring (queue_sqe_idle(), B1) takes the
 *     whole stack and completes each operation on the worker's thread.
 *     Every operation out holds its worker (queue_hold()), so a worker
 *     does not stop under it (E4).
 * D3. Durability.  loopd never uses librbd's cache (rbd_cache = false,
 *     whatever --cache says, checked on the opened image: D9): a write
 *     completes once the OSDs have committed it, and OSDs acknowledge
 *     only what their store has committed.  librbd's write-around cache
 *     would complete a write before that and, if the write then failed,
 *     hand the error only to a flush that still finds I/O in flight: a
 *     FLUSH arriving after the failed write had drained would return 0
 *     (WriteAroundObjectDispatch::flush returns at once when nothing is in
 *     flight), an error swallowed, which loopd's contract forbids.  FLUSH
 *     is rbd_aio_flush all the same (cheap: nothing is cached).  A FUA
 *     write is rbd_aio_write2 with LIBRADOS_OP_FLAG_FADVISE_FUA, a FUA
 *     WRITE_ZEROES or TRIM the operation then a flush: correct with or
 *     without a cache.
 * D4. WRITE_ZEROES is rbd_aio_write_zeroes, never a discard: with NO_HOLE
 *     it asks for thick provisioning.  FAST_ZERO: zeroing without
 *     NO_HOLE sends no data (librbd discards whole objects and zeroes the
 *     rest on the OSDs), so it is fast; with NO_HOLE it writes every
 *     byte, so a fast request is refused with ENOTSUP (Z rules of
 *     zero.c).
 * D5. TRIM is rbd_aio_discard with rbd_skip_partial_discard = false, so
 *     that librbd zeroes exactly the range, partial objects included, as
 *     the recorder's model of a TRIM says (S4 with min_block 1).  Without
 *     it librbd leaves any part smaller than its discard granularity
 *     untouched.  TRIM stays a hint to the client, as NBD says.
 * D6. Bounds.  The engine checks every range against the size (B4):
 *     librbd would clip a write past the end silently.  The size is read
 *     once, at open; an image resized under loopd is not followed.
 * D7. Time.  --ceph-timeout (default 30 s) bounds the connection to the
 *     cluster (client_mount_timeout), monitor commands and every OSD
 *     operation (rados_osd_op_timeout; librados' default is to wait
 *     forever): an operation that times out fails with ETIMEDOUT, sent to
 *     the client as EIO.  A flush or FUA write that fails latches the
 *     export (R5): loopd cannot know what the cluster kept.
 * D8. BLOCK_STATUS.  Holes are reported only for an image with the
 *     fast-diff feature and a valid object map: librbd marks an object in
 *     its object map before it writes to it, and with no cache (D3) a
 *     write completes after that, so the map covers every write loopd
 *     has replied to.  Without fast-diff, finding holes would list the
 *     objects on the OSDs one by one: loopd reports all data instead.
 *     rbd_diff_iterate2 blocks, so it runs on the backend's own map
 *     thread, which completes through the worker's stack like librbd
 *     (D2).  Whole objects: a hole is an object that does not exist.
 *     Never a hole where data may be.
 * D9. The image's own configuration (rbd config image/pool set) is
 *     applied when it opens and could undo D3 or D5: after the open the
 *     effective rbd_cache and rbd_skip_partial_discard are read back, and
 *     an export whose values differ is refused with one line that says
 *     where the override is.
 * D10. A live snapshot (engine/snapshot.c) is an RBD snapshot of the
 *     image, made with rbd_snap_create2 while the engine holds every write
 *     (R8): every write the engine completed is in the image, since no
 *     cache stands between (D3).  librbd's own quiesce of the image's
 *     watchers is skipped: the engine has drained already.  DEST is the snapshot's name (a leading
 *     '@' is dropped), read back with `rbd export POOL/IMAGE@NAME`.
 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <liburing.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <rbd/features.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/backend.h"
#include "util/compiler.h"
#include "util/io.h"

#define PREFIX "rbd:"
#define MAX_SLOTS 256 /* workers: --queues' limit */
#define COPY_CHUNK (4u << 20) /* capture() and hash() read this much */

struct rbd_backend;

/* A worker's end of D2. */
struct rbd_slot {
	struct ring_cb cb; /* the eventfd read */
	struct queue *q;
	struct rbd_backend *rb;
	int efd;
	uint64_t count; /* the eventfd read's buffer */
	_Atomic(struct rop *) done; /* finished, not yet completed */
};

struct rbd_backend {
	struct backend b;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	pthread_mutex_t attach_lock;
	unsigned int n_slots;
	_Atomic(struct rbd_slot *) slots[MAX_SLOTS];
	/* D8: the map thread and its queue of BIO_EXTENTS bios. */
	bool can_map; /* fast-diff: holes can be found */
	bool map_started, map_stop;
	pthread_t map_thread;
	pthread_mutex_t map_lock;
	pthread_cond_t map_cond;
	struct rop *map_head, *map_tail;
	char desc[256];
	char how[64];
};

enum rop_kind { ROP_BIO, ROP_SYNC };

/* One operation out with librbd: in a bio's or a sync's priv. */
struct rop {
	struct rop *next; /* on its slot's done stack */
	rbd_completion_t c;
	struct rbd_slot *slot;
	uint8_t kind; /* enum rop_kind */
	bool then_flush; /* D3: a FUA ZERO or TRIM, before its flush */
	bool flushed; /* D3: the flush has run (its error latches) */
	int res; /* D8: the map thread's result (c is NULL then) */
};

_Static_assert(sizeof(struct rop) <= sizeof(((struct bio *)0)->priv),
	       "a bio's priv holds a struct rop");
_Static_assert(sizeof(struct rop) <= sizeof(((struct backend_sync *)0)->priv),
	       "a sync's priv holds a struct rop");

static struct rbd_backend *rb_of(struct backend *b)
{
	return container_of(b, struct rbd_backend, b);
}

static struct rop *rop_of_bio(struct bio *io)
{
	return (struct rop *)(void *)io->priv;
}

static struct bio *bio_of_rop(struct rop *op)
{
	return container_of((void *)op, struct bio, priv);
}

static struct backend_sync *sync_of_rop(struct rop *op)
{
	return container_of((void *)op, struct backend_sync, priv);
}

/* ---------------------------------------------------------------- */
/* D2: from librbd's thread to the worker's.                          */

/* On librbd's thread, or the map thread: hand op to its worker. */
static void rop_push(struct rop *op)
{
	struct rbd_slot *s = op->slot;
	struct rop *head = atomic_load_explicit(&s->done, memory_order_relaxed);
	uint64_t one = 1;

	do
		op->next = head;
	while (!atomic_compare_exchange_weak_explicit(&s->done, &head, op,
						      memory_order_release,
						      memory_order_relaxed));
	/* The worker reads the eventfd before it takes the stack: a push on
	   a stack that is not empty will be taken with the others. */
	if (!head && write(s->efd, &one, sizeof one) != sizeof one)
		abort(); /* an eventfd write fails only if misused */
}

/* On librbd's thread. */
static void rop_callback(rbd_completion_t c, void *arg)
{
	(void)c;
	rop_push(arg);
}

static void slot_arm(struct rbd_slot *s)
{
	io_uring_prep_read(queue_sqe_idle(s->q, &s->cb), s->efd, &s->count,
			   sizeof s->count, 0);
}

static void rop_finish(struct rop *op, ssize_t res);

static void slot_ready(struct ring_cb *cb, int res)
{
	struct rbd_slot *s = container_of(cb, struct rbd_slot, cb);
	struct rop *list, *rev = NULL, *next;

	if (res == -ECANCELED)
		return; /* the ring is going away */
	list = atomic_exchange_explicit(&s->done, NULL, memory_order_acquire);
	for (; list; list = next) { /* the stack is newest first */
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev; rev = next) {
		ssize_t r;

		next = rev->next;
		if (rev->c) {
			r = rbd_aio_get_return_value(rev->c);
			rbd_aio_release(rev->c);
		} else {
			r = rev->res; /* from the map thread (D8) */
		}
		rop_finish(rev, r);
	}
	slot_arm(s);
}

static struct rbd_slot *slot_of(struct rbd_backend *rb, struct queue *q)
{
	unsigned int i;

	for (i = 0; i < MAX_SLOTS; i++) {
		struct rbd_slot *s = atomic_load_explicit(&rb->slots[i],
							  memory_order_acquire);

		if (!s || s->q == q)
			return s;
	}
	return NULL;
}

static int rbd_attach(struct backend *b, struct queue *q)
{
	struct rbd_backend *rb = rb_of(b);
	struct rbd_slot *s = calloc(1, sizeof *s);

	if (!s)
		return -ENOMEM;
	s->efd = eventfd(0, EFD_CLOEXEC);
	if (s->efd < 0) {
		free(s);
		return -errno;
	}
	s->cb.fn = slot_ready;
	s->q = q;
	s->rb = rb;
	pthread_mutex_lock(&rb->attach_lock);
	if (rb->n_slots == MAX_SLOTS) {
		pthread_mutex_unlock(&rb->attach_lock);
		close(s->efd);
		free(s);
		return -ENOSPC;
	}
	atomic_store_explicit(&rb->slots[rb->n_slots++], s,
			      memory_order_release);
	pthread_mutex_unlock(&rb->attach_lock);
	slot_arm(s);
	return 0;
}

/* ---------------------------------------------------------------- */
/* Operations.                                                        */

/* Start op on librbd: 0, or a negative errno (nothing is out then). */
static int rop_start(struct rbd_backend *rb, struct rop *op, struct queue *q,
		     int (*go)(struct rbd_backend *rb, struct rop *op))
{
	int r;

	op->slot = slot_of(rb, q);
	if (!op->slot)
		return -EIO; /* never: every worker attaches (B1) */
	r = rbd_aio_create_completion(op, rop_callback, &op->c);
	if (r < 0)
		return r;
	queue_hold(q);
	r = go(rb, op);
	if (r < 0) {
		rbd_aio_release(op->c);
		queue_release(q);
	}
	return r;
}

static int go_bio(struct rbd_backend *rb, struct rop *op)
{
	struct bio *io = bio_of_rop(op);

	switch (io->op) {
	case BIO_READ:
		return rbd_aio_read(rb->image, io->off, io->len,
				    (char *)io->data, op->c);
	case BIO_WRITE:
		if (io->fua) /* D3 */
			return rbd_aio_write2(rb->image, io->off, io->len,
					      (const char *)io->data, op->c,
					      LIBRADOS_OP_FLAG_FADVISE_FUA);
		return rbd_aio_write(rb->image, io->off, io->len,
				     (const char *)io->data, op->c);
	case BIO_ZERO: /* D4 */
		return rbd_aio_write_zeroes(
			rb->image, io->off, io->len, op->c,
			io->no_hole ? RBD_WRITE_ZEROES_FLAG_THICK_PROVISION : 0,
			0);
	case BIO_TRIM: /* D5 */
		return rbd_aio_discard(rb->image, io->off, io->len, op->c);
	default:
		return -EINVAL;
	}
}

static int go_flush(struct rbd_backend *rb, struct rop *op)
{
	return rbd_aio_flush(rb->image, op->c);
}

/* ---------------------------------------------------------------- */
/* D8: BLOCK_STATUS on the map thread.                                */

static void all_data(struct bio *io)
{
	io->ext[0].len = io->len;
	io->ext[0].hole = false;
	io->n_ext = 1;
}

/* One BLOCK_STATUS being answered: io->ext covers [io->off, pos). */
struct map_walk {
	struct bio *io;
	uint64_t pos, end;
	bool unsorted;
};

/* Append len bytes of one kind; false once io->ext is full. */
static bool walk_add(struct map_walk *w, uint64_t len, bool hole)
{
	struct bio *io = w->io;

	if (!len)
		return true;
	if (io->n_ext && io->ext[io->n_ext - 1].hole == hole) {
		io->ext[io->n_ext - 1].len += len;
	} else {
		if (io->n_ext == io->max_ext)
			return false;
		io->ext[io->n_ext++] = (struct bio_extent){len, hole};
	}
	w->pos += len;
	return true;
}

/* rbd_diff_iterate2's callback: the objects that exist, in order. */
static int walk_cb(uint64_t off, size_t len, int exists, void *arg)
{
	struct map_walk *w = arg;
	uint64_t end = off + len < w->end ? off + len : w->end;

	if (off < w->io->off)
		off = w->io->off; /* a whole object that starts before */
	if (end <= off)
		return 0;
	if (off < w->pos) {
		/* Out of order: a gap already said "hole" may be data.
		   Stop; the answer becomes all data. */
		w->unsorted = true;
		return -ECANCELED;
	}
	if (!walk_add(w, off - w->pos, true) ||
	    !walk_add(w, end - off, !exists))
		return -ECANCELED; /* io->ext is full: a partial answer */
	return 0;
}

/* On the map thread.  Always 0: all data is the answer when in doubt. */
static int map_extents(struct rbd_backend *rb, struct bio *io)
{
	struct map_walk w = {
		.io = io, .pos = io->off, .end = io->off + io->len};
	uint64_t flags = 0;
	int r;

	io->n_ext = 0;
	r = rbd_get_flags(rb->image, &flags);
	if (r < 0 || (flags & (RBD_FLAG_OBJECT_MAP_INVALID |
			       RBD_FLAG_FAST_DIFF_INVALID)))
		goto all;
	r = rbd_diff_iterate2(rb->image, NULL, io->off, io->len, 1, 1, walk_cb,
			      &w);
	if (w.unsorted || (r < 0 && r != -ECANCELED))
		goto all;
	if (r == 0)
		(void)walk_add(&w, w.end - w.pos,
			       true); /* the tail: no object */
	if (io->n_ext)
		return 0;
all:
	all_data(io);
	return 0;
}

static void *map_main(void *arg)
{
	struct rbd_backend *rb = arg;
	struct rop *op;

	pthread_mutex_lock(&rb->map_lock);
	for (;;) {
		while (!rb->map_head && !rb->map_stop)
			pthread_cond_wait(&rb->map_cond, &rb->map_lock);
		op = rb->map_head;
		if (!op)
			break; /* stopping, and nothing is left */
		rb->map_head = op->next;
		if (!rb->map_head)
			rb->map_tail = NULL;
		pthread_mutex_unlock(&rb->map_lock);
		op->res = map_extents(rb, bio_of_rop(op));
		rop_push(op);
		pthread_mutex_lock(&rb->map_lock);
	}
	pthread_mutex_unlock(&rb->map_lock);
	return NULL;
}

static void map_queue(struct rbd_backend *rb, struct rop *op, struct bio *io)
{
	*op = (struct rop){.kind = ROP_BIO, .slot = slot_of(rb, io->q)};
	if (!op->slot) {
		bio_fail(io, -EIO); /* never: every worker attaches (B1) */
		return;
	}
	queue_hold(io->q);
	pthread_mutex_lock(&rb->map_lock);
	if (rb->map_tail)
		rb->map_tail->next = op;
	else
		rb->map_head = op;
	rb->map_tail = op;
	pthread_cond_signal(&rb->map_cond);
	pthread_mutex_unlock(&rb->map_lock);
}

static void rbd_submit(struct backend *b, struct bio *io)
{
	struct rbd_backend *rb = rb_of(b);
	struct rop *op = rop_of_bio(io);
	int r;

	switch (io->op) {
	case BIO_CACHE:
		bio_done(io, 0); /* a hint: librbd reads ahead on its own */
		return;
	case BIO_EXTENTS: /* D8 */
		if (rb->can_map) {
			map_queue(rb, op, io);
		} else {
			all_data(io);
			bio_done(io, 0);
		}
		return;
	case BIO_ZERO:
		if (io->fast && io->no_hole) { /* D4 */
			bio_fail(io, -ENOTSUP);
			return;
		}
		break;
	default:
		break;
	}
	*op = (struct rop){.kind = ROP_BIO,
			   .then_flush = io->fua && (io->op == BIO_ZERO ||
						     io->op == BIO_TRIM)};
	r = rop_start(rb, op, io->q, go_bio);
	if (r < 0)
		bio_fail(io, r); /* nothing was sent (B3) */
}

static void rbd_sync(struct backend *b, struct backend_sync *s)
{
	struct rop *op = (struct rop *)(void *)s->priv;
	int r;

	*op = (struct rop){.kind = ROP_SYNC};
	r = rop_start(rb_of(b), op, s->q, go_flush);
	if (r < 0)
		backend_sync_done(s, r);
}

/* On the worker's thread, once librbd has answered op (D2). */
static void rop_finish(struct rop *op, ssize_t res)
{
	struct queue *q = op->slot->q;
	struct bio *io;
	int r;

	if (op->kind == ROP_SYNC) {
		queue_release(q);
		backend_sync_done(sync_of_rop(op), res < 0 ? (int)res : 0);
		return;
	}
	io = bio_of_rop(op);
	if (res >= 0 && op->then_flush) { /* D3 */
		op->then_flush = false;
		op->flushed = true;
		queue_release(q);
		r = rop_start(op->slot->rb, op, q, go_flush);
		if (r < 0)
			bio_done(io, r); /* the FUA is not met: latch */
		return;
	}
	queue_release(q);
	if (res >= 0 && io->op == BIO_READ && (uint64_t)res != io->len)
		res = -EIO; /* never a short read as a success (B4) */
	if (res >= 0)
		bio_done(io, 0);
	else if (op->flushed || (io->fua && io->op == BIO_WRITE))
		bio_done(io, (int)res); /* B3: a durable step failed */
	else
		bio_fail(io, (int)res);
}

/* ---------------------------------------------------------------- */
/* Open and close.                                                    */

/* "rbd:POOL/IMAGE" into pool and image; false if it is not that. */
static bool parse_spec(const char *spec, char *pool, size_t plen, char *image,
		       size_t ilen)
{
	const char *p = spec + strlen(PREFIX), *slash = strchr(p, '/');

	if (!slash || slash == p || !slash[1] || strchr(slash + 1, '/') ||
	    (size_t)(slash - p) >= plen || strlen(slash + 1) >= ilen)
		return false;
	snprintf(pool, plen, "%.*s", (int)(slash - p), p);
	snprintf(image, ilen, "%s", slash + 1);
	return true;
}

static void rbd_default_name(const char *spec, char *out, size_t len)
{
	const char *slash = strrchr(spec, '/');

	snprintf(out, len, "%s", slash ? slash + 1 : spec + strlen(PREFIX));
}

/* D3, D5, D7: the settings loopd makes, over the configuration's. */
static int configure(rados_t cl, const struct backend_opts *o, char *err,
		     size_t errlen)
{
	char t[16];
	const char *const keys[] = {"client_mount_timeout",
				    "rados_mon_op_timeout",
				    "rados_osd_op_timeout"};
	size_t i;
	int r;

	snprintf(t, sizeof t, "%u", o->ceph_timeout);
	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		r = rados_conf_set(cl, keys[i], t);
		if (r < 0)
			goto bad;
	}
	r = rados_conf_set(cl, "rbd_skip_partial_discard", "false"); /* D5 */
	if (r >= 0)
		r = rados_conf_set(cl, "rbd_cache", "false"); /* D3 */
	if (r >= 0)
		return 0;
bad:
	snprintf(err, errlen, "%s: cannot configure librados: %s", o->spec,
		 strerror(-r));
	return r;
}

/* The cluster handle, connected: 0 or a negative errno (err says why). */
static int connect_cluster(struct rbd_backend *rb, const struct backend_opts *o,
			   char *err, size_t errlen)
{
	const char *id = o->ceph_id ? o->ceph_id : "admin";
	int r = rados_create(&rb->cluster, id);

	if (r < 0) {
		snprintf(err, errlen, "%s: librados: %s", o->spec,
			 strerror(-r));
		rb->cluster = NULL;
		return r;
	}
	r = rados_conf_read_file(rb->cluster, o->ceph_conf);
	if (r < 0) {
		if (o->ceph_conf)
			snprintf(err, errlen, "--ceph-conf %s: cannot read: %s",
				 o->ceph_conf, strerror(-r));
		else
			snprintf(err, errlen,
				 "%s: no Ceph configuration found "
				 "(/etc/ceph/ceph.conf, $CEPH_CONF); give "
				 "one with --ceph-conf",
				 o->spec);
		return r;
	}
	r = configure(rb->cluster, o, err, errlen);
	if (r < 0)
		return r;
	r = rados_connect(rb->cluster);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			snprintf(err, errlen,
				 "%s: the Ceph cluster did not answer within "
				 "%u s (--ceph-timeout)",
				 o->spec, o->ceph_timeout);
		else
			snprintf(err, errlen,
				 "%s: cannot connect to the Ceph cluster as "
				 "client.%s: %s",
				 o->spec, id, strerror(-r));
		return r;
	}
	return 0;
}

static int open_image(struct rbd_backend *rb, const struct backend_opts *o,
		      char *err, size_t errlen)
{
	char pool[128], image[256];
	int r;

	if (!parse_spec(o->spec, pool, sizeof pool, image, sizeof image)) {
		snprintf(err, errlen, "%s: expected rbd:POOL/IMAGE", o->spec);
		return -EINVAL;
	}
	r = connect_cluster(rb, o, err, errlen);
	if (r < 0)
		return r;
	r = rados_ioctx_create(rb->cluster, pool, &rb->ioctx);
	if (r < 0) {
		rb->ioctx = NULL;
		snprintf(err, errlen, "%s: pool \"%s\": %s", o->spec, pool,
			 r == -ENOENT ? "no such pool" : strerror(-r));
		return r;
	}
	r = o->read_only
		    ? rbd_open_read_only(rb->ioctx, image, &rb->image, NULL)
		    : rbd_open(rb->ioctx, image, &rb->image, NULL);
	if (r < 0) {
		rb->image = NULL;
		snprintf(err, errlen, "%s: image \"%s\" in pool \"%s\": %s",
			 o->spec, image, pool,
			 r == -ENOENT ? "no such image" : strerror(-r));
		return r;
	}
	return 0;
}

/* D9: the values of D3 and D5 as the opened image has them. */
static int check_config(struct rbd_backend *rb, const char *spec, char *err,
			size_t errlen)
{
	static const char *const src[] = {"configuration", "pool", "image"};
	rbd_config_option_t *opt = NULL;
	int n = 0, r, i;

	r = rbd_config_image_list(rb->image, NULL, &n);
	if (r != -ERANGE && r < 0)
		goto bad;
	opt = calloc((size_t)n + 1, sizeof *opt);
	if (!opt)
		return -ENOMEM;
	r = rbd_config_image_list(rb->image, opt, &n);
	if (r < 0) {
		free(opt);
		goto bad;
	}
	for (i = 0; i < n && !r; i++) {
		if ((strcmp(opt[i].name, "rbd_cache") &&
		     strcmp(opt[i].name, "rbd_skip_partial_discard")) ||
		    !strcmp(opt[i].value, "false"))
			continue;
		snprintf(err, errlen,
			 "%s: the %s sets %s = %s, which loopd cannot serve "
			 "with its contract (remove it: rbd config %s rm ... "
			 "%s)",
			 spec,
			 src[opt[i].source <= RBD_CONFIG_SOURCE_IMAGE
				     ? opt[i].source
				     : 0],
			 opt[i].name, opt[i].value,
			 opt[i].source == RBD_CONFIG_SOURCE_POOL ? "pool"
								 : "image",
			 opt[i].name);
		r = -EINVAL;
	}
	rbd_config_image_list_cleanup(opt, n);
	free(opt);
	return r;
bad:
	snprintf(err, errlen, "%s: cannot read the image's configuration: %s",
		 spec, strerror(-r));
	return r;
}

static void rbd_close_backend(struct backend *b)
{
	struct rbd_backend *rb = rb_of(b);
	unsigned int i;

	if (rb->map_started) {
		pthread_mutex_lock(&rb->map_lock);
		rb->map_stop = true;
		pthread_cond_signal(&rb->map_cond);
		pthread_mutex_unlock(&rb->map_lock);
		pthread_join(rb->map_thread, NULL);
	}
	pthread_cond_destroy(&rb->map_cond);
	pthread_mutex_destroy(&rb->map_lock);
	if (rb->image)
		rbd_close(rb->image);
	if (rb->ioctx)
		rados_ioctx_destroy(rb->ioctx);
	if (rb->cluster)
		rados_shutdown(rb->cluster);
	for (i = 0; i < rb->n_slots; i++) {
		struct rbd_slot *s = atomic_load(&rb->slots[i]);

		close(s->efd);
		free(s);
	}
	pthread_mutex_destroy(&rb->attach_lock);
	free(rb);
}

static int rbd_open_backend(const struct backend_opts *o, struct backend **out,
			    char *err, size_t errlen)
{
	struct rbd_backend *rb = calloc(1, sizeof *rb);
	rbd_image_info_t st;
	uint64_t pref, features;
	int r;

	if (!rb) {
		snprintf(err, errlen, "%s: out of memory", o->spec);
		return -ENOMEM;
	}
	pthread_mutex_init(&rb->attach_lock, NULL);
	pthread_mutex_init(&rb->map_lock, NULL);
	pthread_cond_init(&rb->map_cond, NULL);
	r = open_image(rb, o, err, errlen);
	if (r >= 0)
		r = check_config(rb, o->spec, err, errlen);
	if (r >= 0) {
		r = rbd_stat(rb->image, &st, sizeof st);
		if (r < 0)
			snprintf(err, errlen, "%s: rbd_stat: %s", o->spec,
				 strerror(-r));
	}
	if (r >= 0 && o->create_size && o->create_size != st.size) {
		snprintf(err, errlen,
			 "%s: --size: the image is %llu bytes; loopd does not "
			 "create or resize RBD images (use rbd create/resize)",
			 o->spec, (unsigned long long)st.size);
		r = -EINVAL;
	}
	if (r >= 0 && rbd_get_features(rb->image, &features) >= 0 &&
	    (features & RBD_FEATURE_FAST_DIFF)) { /* D8 */
		r = -pthread_create(&rb->map_thread, NULL, map_main, rb);
		if (r < 0)
			snprintf(err, errlen, "%s: cannot start a thread: %s",
				 o->spec, strerror(-r));
		rb->map_started = rb->can_map = r == 0;
	}
	if (r < 0) {
		rbd_close_backend(&rb->b);
		return r;
	}
	/* The object size as the preferred block: a power of two (1 <<
	   order), capped to what a request may carry. */
	pref = st.obj_size ? st.obj_size : 4096;
	if (pref > (32u << 20))
		pref = 32u << 20;
	snprintf(rb->desc, sizeof rb->desc, "%s", o->spec);
	snprintf(rb->how, sizeof rb->how, "librbd, no cache");
	rb->b.info = (struct backend_info){
		.size = st.size,
		.min_block = 1,
		.pref_block = (uint32_t)pref,
		.max_payload = UINT32_MAX, /* the engine's cap applies */
		.io_align = 1,
		.read_only = o->read_only,
		.can_trim = true,
		.can_zero = true,
		.can_fast_zero = true,
		.can_cache = false,
		.description = rb->desc,
		.how = rb->how,
	};
	*out = &rb->b;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Blocking, on the main thread once the workers have stopped.        */

static int rbd_final_sync(struct backend *b)
{
	return rbd_flush(rb_of(b)->image);
}

static int rbd_no_progress(uint64_t done, uint64_t total, void *arg)
{
	(void)done;
	(void)total;
	(void)arg;
	return 0;
}

/* D10 */
static int rbd_snapshot(struct backend *b, const char *dest, int fd, char *err,
			size_t errlen)
{
	const char *name = dest[0] == '@' ? dest + 1 : dest;
	int r;

	(void)fd;
	if (!*name || strchr(name, '/') || strchr(name, '@')) {
		snprintf(err, errlen,
			 "\"%s\" is not an RBD snapshot name (NAME or @NAME)",
			 dest);
		return -EINVAL;
	}
	/* D10: the engine has drained and holds the writes already;
	   librbd's quiesce round trip to watchers would only add to it. */
	r = rbd_snap_create2(rb_of(b)->image, name,
			     RBD_SNAP_CREATE_SKIP_QUIESCE, rbd_no_progress,
			     NULL);
	if (r < 0)
		snprintf(err, errlen, "rbd snap create %s@%s: %s",
			 rb_of(b)->desc, name,
			 r == -EEXIST ? "a snapshot has this name"
				      : strerror(-r));
	return r;
}

static int rbd_snapshot_remove(struct backend *b, const char *name, char *err,
			       size_t errlen)
{
	int r = rbd_snap_remove(rb_of(b)->image,
				name[0] == '@' ? name + 1 : name);

	if (r < 0)
		snprintf(err, errlen, "rbd snap rm %s@%s: %s", rb_of(b)->desc,
			 name, strerror(-r));
	return r;
}

/*
 * Read the whole image in COPY_CHUNK pieces and give each to fn: the
 * recorder's base copy and the trace's final hash.
 */
static int read_all(struct rbd_backend *rb,
		    int (*fn)(void *arg, const uint8_t *p, size_t n,
			      uint64_t off),
		    void *arg)
{
	uint64_t off, size = rb->b.info.size;
	uint8_t *buf = malloc(COPY_CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (off = 0; !r && off < size; off += COPY_CHUNK) {
		size_t n = size - off < COPY_CHUNK ? size - off : COPY_CHUNK;
		ssize_t got = rbd_read(rb->image, off, n, (char *)buf);

		if (got < 0)
			r = (int)got;
		else if ((size_t)got != n)
			r = -EIO;
		else
			r = fn(arg, buf, n, off);
	}
	free(buf);
	return r;
}

/* Write the blocks that are not all zeroes: the copy stays sparse. */
static int write_nonzero(void *arg, const uint8_t *p, size_t n, uint64_t off)
{
	static const uint8_t zero[4096];
	int fd = *(int *)arg, r = 0;
	size_t i;

	for (i = 0; !r && i < n; i += sizeof zero) {
		size_t k = n - i < sizeof zero ? n - i : sizeof zero;

		if (memcmp(p + i, zero, k))
			r = pwrite_full(fd, p + i, k, off + i);
	}
	return r;
}

/* K5: the base image is a sparse local copy of the image. */
static int rbd_capture(struct backend *b, const char *path, bool *cheap)
{
	int fd, r = 0;

	*cheap = false;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)b->info.size) < 0)
		r = -errno;
	if (!r)
		r = read_all(rb_of(b), write_nonzero, &fd);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	return r;
}

static int hash_chunk(void *arg, const uint8_t *p, size_t n, uint64_t off)
{
	(void)off;
	return gnutls_hash(*(gnutls_hash_hd_t *)arg, p, n) ? -EIO : 0;
}

static int rbd_hash(struct backend *b, uint8_t out[32])
{
	gnutls_hash_hd_t h;
	int r;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256))
		return -ENOMEM;
	r = read_all(rb_of(b), hash_chunk, &h);
	gnutls_hash_deinit(h, out);
	return r;
}

static const struct backend_ops rbd_ops = {
	.name = "rbd",
	.prefix = PREFIX,
	.open = rbd_open_backend,
	.default_name = rbd_default_name,
	.submit = rbd_submit,
	.sync = rbd_sync,
	.attach = rbd_attach,
	.final_sync = rbd_final_sync,
	.capture = rbd_capture,
	.hash = rbd_hash,
	.close = rbd_close_backend,
	.snapshot = rbd_snapshot,
	.snapshot_remove = rbd_snapshot_remove,
};

BACKEND_REGISTER(rbd_ops);
