/* SPDX-License-Identifier: MIT */
/*
 * image.c: the images of crash states in `loopd crash`: a state as a job
 * (its extents, deduplicated), the workers' working images, moved from
 * point to point and restored after each check, and one state written to
 * a file (--state ID --out IMG).
 *
 * X2. Dedupe.  Within a point, states with the same extents key are one
 *     image (states.c S7) and are checked once.
 * X3. Incremental materialisation.  Each of the -j workers owns one image
 *     file (a reflink or sparse copy of the base, made once) and an
 *     in-memory copy of D(t) (a private mapping of the base, so untouched
 *     pages cost nothing).  States arrive in point order.  Moving to a
 *     later point applies crash_durable_diff() to both.  A state writes
 *     only its extents (where it differs from D(t)).
 * X8. Proportional to the difference.  An extent is written only where
 *     its bytes differ from D(t), compared per CHUNK piece: a piece of
 *     zeroes where D(t) is known to be zero, or of old (base) contents
 *     where D(t) is known to equal the base, is skipped without looking
 *     at a byte (per-chunk flags kept up to date as D(t) moves); other
 *     pieces are compared with D(t) in memory.  So the large zeroed and
 *     trimmed ranges of mkfs and of ext4's lazy inode-table init cost
 *     nothing, and the pieces written are the ones undone (X4).
 * X4. Undo.  Before a check the image's mtime is set to a sentinel.  If
 *     the check did not write (mtime unchanged), the pieces the state
 *     wrote (X8) are restored from D(t).  If it did (e2fsck replaying the journal, a
 *     mount), the image is compared with D(t) in 64 KiB chunks and the
 *     chunks that differ are written back: every chunk of the image's
 *     data extents (SEEK_DATA), and, in its holes, the chunks where D(t)
 *     may hold data (the base's data, or a diff's).  Either way the image
 *     is D(t) again, without a full copy, at a cost that follows the
 *     data, not the export size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash/explore.h"
#include "util/io.h"
#include "util/rounding.h"

static const uint8_t zero_chunk[CHUNK];

/* X4: the mtime set before a check; a check that writes changes it. */
static const struct timespec sentinel = {.tv_sec = 1, .tv_nsec = 0};

/* The bytes of the chunk at off (the last one may be short). */
static uint64_t chunk_len(const struct ctx *c, uint64_t off)
{
	return c->size - off < CHUNK ? c->size - off : CHUNK;
}

/* Where extent e's n <= CHUNK bytes at off come from (zeroes: zero_chunk;
   garbage, S9: made in gbuf, CHUNK bytes). */
static const uint8_t *src_at(const struct ctx *c, const struct crash_extent *e,
			     uint64_t off, uint64_t n, uint8_t *gbuf)
{
	if (e->src == CRASH_SRC_ZERO)
		return zero_chunk;
	if (e->src == CRASH_SRC_GARBAGE) {
		crash_garbage(off, n, gbuf);
		return gbuf;
	}
	if (e->src == CRASH_SRC_BASE)
		return c->base_map + off;
	return crash_src_data(c->plan, e) + (off - e->off);
}

/* Append [off, off+len) to the pieces written (merged when contiguous). */
static int note_piece(struct image *im, uint64_t off, uint64_t len)
{
	struct piece *p;

	if (im->n_w && im->w[im->n_w - 1].off + im->w[im->n_w - 1].len == off) {
		im->w[im->n_w - 1].len += len;
		return 0;
	}
	if (im->n_w == im->cap_w) {
		size_t cap = im->cap_w ? im->cap_w * 2 : 64;

		p = realloc(im->w, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		im->w = p;
		im->cap_w = cap;
	}
	im->w[im->n_w++] = (struct piece){off, len};
	return 0;
}

/*
 * X8: write extent e where it differs from D(t) (im->dmem): into the
 * image, and, when advancing (to_mem), into D(t) as well, marking its
 * chunks dirty.  Pieces written to the image alone are noted for X4.
 */
static int put_extent(struct image *im, const struct crash_extent *e,
		      bool to_mem)
{
	const struct ctx *c = im->c;
	uint64_t off, end = e->off + e->len;
	int r;

	for (off = e->off; off < end;) {
		uint64_t k = off / CHUNK, cend = (k + 1) * CHUNK;
		uint64_t n = (end < cend ? end : cend) - off;
		bool whole = off == k * CHUNK && n == chunk_len(c, off);
		const uint8_t *src = src_at(c, e, off, n, im->gbuf);

		if ((whole && e->src == CRASH_SRC_ZERO && im->dz[k]) ||
		    (whole && e->src == CRASH_SRC_BASE && im->db[k]) ||
		    !memcmp(src, im->dmem + off, n)) {
			off += n;
			continue;
		}
		r = pwrite_full(im->fd, src, n, off);
		if (r < 0)
			return r;
		if (to_mem) {
			memcpy(im->dmem + off, src, n);
			im->dirty[k] = 1;
			im->dz[k] = trace_is_zero(im->dmem + k * CHUNK,
						  chunk_len(c, k * CHUNK));
			im->db[k] = !memcmp(im->dmem + k * CHUNK,
					    c->base_map + k * CHUNK,
					    chunk_len(c, k * CHUNK));
		} else {
			r = note_piece(im, off, n);
			if (r < 0)
				return r;
		}
		off += n;
	}
	return 0;
}

static int put_extents(struct image *im, const struct crash_extents *x,
		       bool to_mem)
{
	size_t i;
	int r;

	for (i = 0; i < x->n; i++) {
		r = put_extent(im, &x->v[i], to_mem);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A file made from the base, D(t) of point k, then the extents of x:
   written whole, for --state --out (no D(t) in memory). */
static int put_plain(const struct ctx *c, int fd, const struct crash_extents *x)
{
	uint8_t *gbuf = malloc(CHUNK);
	size_t i;
	int r = 0;

	if (!gbuf)
		return -ENOMEM;
	for (i = 0; !r && i < x->n; i++) {
		const struct crash_extent *e = &x->v[i];
		uint64_t off, n;

		for (off = e->off; off < e->off + e->len; off += n) {
			n = e->off + e->len - off;
			if (n > CHUNK)
				n = CHUNK;
			r = pwrite_full(fd, src_at(c, e, off, n, gbuf), n, off);
			if (r < 0)
				break;
		}
	}
	free(gbuf);
	return r;
}

/* The base as the images need it: mapped, and where it holds data (X4). */
int image_base_map(struct ctx *c)
{
	uint64_t off, next, k;
	bool data;

	c->n_chunks = round_up(c->size, CHUNK) / CHUNK;
	c->base_data = calloc(c->n_chunks + 1, 1);
	if (!c->base_data)
		return -ENOMEM;
	for (off = 0; off < c->size; off = next) {
		extent_at(c->base_fd, off, c->size, &data, &next);
		for (k = off / CHUNK; data && k * CHUNK < next; k++)
			c->base_data[k] = 1;
	}
	c->base_map = c->size ? mmap(NULL, c->size, PROT_READ, MAP_SHARED,
				     c->base_fd, 0)
			      : NULL;
	if (c->base_map == MAP_FAILED) {
		c->base_map = NULL;
		return -ENOMEM;
	}
	/* X8: which chunks of the base are zero (holes are, unread). */
	c->base_zero = malloc(c->n_chunks + 1);
	if (!c->base_zero)
		return -ENOMEM;
	c->base_zero[c->n_chunks] = 1;
	for (k = 0; k < c->n_chunks; k++)
		c->base_zero[k] = !c->base_data[k] ||
				  trace_is_zero(c->base_map + k * CHUNK,
						chunk_len(c, k * CHUNK));
	return 0;
}

/*
 * X2: state `item` of point k (open in s) as a job in *out, or *out =
 * NULL when a state of the point with the same image was produced before
 * (seen holds their keys).  Returns 0 or -ENOMEM.
 */
int image_job(const struct ctx *c, struct crash_scratch *s,
	      struct trace_dedupe *seen, uint32_t k, uint64_t item,
	      struct job **out)
{
	struct crash_state st;
	struct job *j = calloc(1, sizeof *j);
	uint8_t key[16] = {0};
	int r;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	r = crash_state_get(c->plan, s, item, &st);
	if (!r)
		r = crash_state_extents(c->plan, s, &st, &j->x);
	if (!r) {
		memcpy(key, &j->x.key, sizeof j->x.key);
		if (trace_dedupe_find(seen, key, 0))
			r = 1; /* a duplicate */
		else if (trace_dedupe_add(seen, key, 0, 1) < 0)
			r = -ENOMEM;
	}
	if (r) {
		crash_state_free(&st);
		crash_extents_free(&j->x);
		free(j);
		return r < 0 ? r : 0;
	}
	j->point = k;
	j->item = item;
	j->kind = st.kind;
	j->n_chosen = st.n_chosen;
	j->n_pending = st.n_pending;
	j->variant = st.variant;
	j->torn = st.torn != UINT32_MAX;
	crash_state_free(&st);
	*out = j;
	return 0;
}

/* X3: a worker's image, a copy of the base in the working directory. */
int image_open(struct image *im, const struct ctx *c, int id)
{
	bool reflinked;
	int r;

	im->c = c;
	im->cur = CRASH_BASE;
	im->fd = -1;
	if (snprintf(im->path, sizeof im->path, "%s/state%d.img", c->workdir,
		     id) >= (int)sizeof im->path)
		return -ENAMETOOLONG;
	r = tracefile_copy(c->base_path, im->path, 0, &reflinked);
	if (r < 0)
		return r;
	im->fd = open(im->path, O_RDWR | O_CLOEXEC);
	if (im->fd < 0)
		return -errno;
	im->map = mmap(NULL, c->size, PROT_READ, MAP_SHARED, im->fd, 0);
	im->dmem = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			c->base_fd, 0);
	if (im->map == MAP_FAILED || im->dmem == MAP_FAILED) {
		im->map = im->map == MAP_FAILED ? NULL : im->map;
		im->dmem = im->dmem == MAP_FAILED ? NULL : im->dmem;
		return -ENOMEM;
	}
	im->dirty = calloc(c->n_chunks + 1, 1);
	im->seen = calloc(c->n_chunks + 1, sizeof *im->seen);
	im->gbuf = malloc(CHUNK);
	im->dz = malloc(c->n_chunks + 1);
	im->db = malloc(c->n_chunks + 1);
	im->s = crash_scratch_new(c->plan);
	if (!im->s || !im->dirty || !im->seen || !im->dz || !im->db ||
	    !im->gbuf)
		return -ENOMEM;
	memcpy(im->dz, c->base_zero, c->n_chunks + 1); /* X8: D(t) = base */
	memset(im->db, 1, c->n_chunks + 1);
	return 0;
}

/* Also after a failed image_open(): the file is removed. */
void image_close(struct image *im)
{
	if (im->map)
		munmap((void *)im->map, im->c->size);
	if (im->dmem)
		munmap(im->dmem, im->c->size);
	if (im->fd >= 0)
		close(im->fd);
	if (im->path[0])
		unlink(im->path);
	crash_scratch_free(im->s);
	crash_extents_free(&im->d);
	free(im->dirty);
	free(im->seen);
	free(im->dz);
	free(im->db);
	free(im->w);
	free(im->gbuf);
	im->gbuf = NULL;
	im->dz = im->db = NULL;
	im->w = NULL;
	im->n_w = im->cap_w = 0;
	im->map = im->dmem = NULL;
	im->fd = -1;
	im->s = NULL;
	im->dirty = NULL;
	im->seen = NULL;
}

/* X3: move the image and D(t) to point k (no earlier than the last). */
int image_advance(struct image *im, uint32_t k)
{
	const struct ctx *c = im->c;
	int r;

	if (k == im->cur)
		return 0;
	r = crash_durable_diff(c->plan, im->s, im->cur, k, &im->d);
	if (!r)
		r = put_extents(im, &im->d, true);
	if (!r)
		im->cur = k;
	return r;
}

/* X3: write state j (its extents only); X4: then the sentinel mtime. */
int image_apply(struct image *im, const struct job *j)
{
	const struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, sentinel};
	int r;

	im->n_w = 0;
	r = put_extents(im, &j->x, false);

	if (!r && futimens(im->fd, ts) < 0)
		r = -errno;
	return r;
}

static int restore_chunk(struct image *im, uint64_t off)
{
	uint64_t n = chunk_len(im->c, off);

	if (!memcmp(im->map + off, im->dmem + off, n))
		return 0;
	return pwrite_full(im->fd, im->dmem + off, n, off);
}

/* X4: the chunks of the image's data extents, marked seen. */
static int restore_data(struct image *im)
{
	const struct ctx *c = im->c;
	uint64_t off, next, k;
	bool data;
	int r;

	for (off = 0; off < c->size; off = next) {
		extent_at(im->fd, off, c->size, &data, &next);
		for (k = off / CHUNK; data && k * CHUNK < next; k++) {
			if (im->seen[k] == im->stamp)
				continue;
			im->seen[k] = im->stamp;
			r = restore_chunk(im, k * CHUNK);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* X4: a hole, which reads as zeroes, is right where D(t) is zero: only
   chunks where the base or a diff put data can differ. */
static int restore_holes(struct image *im)
{
	const struct ctx *c = im->c;
	uint64_t n;
	int r;

	for (n = 0; n < c->n_chunks; n++) {
		if (im->seen[n] == im->stamp ||
		    !(c->base_data[n] || im->dirty[n]))
			continue;
		if (!trace_is_zero(im->dmem + n * CHUNK,
				   chunk_len(c, n * CHUNK))) {
			r = restore_chunk(im, n * CHUNK);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* X4: make the image D(t) again after state j was checked. */
int image_restore(struct image *im, const struct job *j)
{
	const struct ctx *c = im->c;
	struct stat st;
	size_t i;
	int r;

	if (fstat(im->fd, &st) < 0)
		return -errno;
	if (st.st_mtim.tv_sec == sentinel.tv_sec &&
	    st.st_mtim.tv_nsec == sentinel.tv_nsec &&
	    (uint64_t)st.st_size == c->size) {
		for (i = 0; i < im->n_w; i++) { /* X8: what was written */
			const struct piece *p = &im->w[i];

			r = pwrite_full(im->fd, im->dmem + p->off, p->len,
					p->off);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if ((uint64_t)st.st_size != c->size &&
	    ftruncate(im->fd, (off_t)c->size) < 0)
		return -errno;
	if (++im->stamp == 0) {
		memset(im->seen, 0, (c->n_chunks + 1) * sizeof *im->seen);
		im->stamp = 1;
	}
	r = restore_data(im);
	return r < 0 ? r : restore_holes(im);
}

/* LOOPD_CRASH_VERIFY, a testing aid: is the image exactly D(t)? */
int image_verify(const struct image *im)
{
	return memcmp(im->map, im->dmem, im->c->size) ? -EIO : 0;
}

/*
 * State st of point k (open in s) written to path: a copy of the base,
 * D(t) of the point, then the state's extents, synced.
 */
int image_write_state(const struct ctx *c, struct crash_scratch *s, uint32_t k,
		      const struct crash_state *st, const char *path)
{
	struct crash_extents d = {0}, x = {0};
	bool reflinked;
	int fd = -1, r;

	r = tracefile_copy(c->base_path, path, 0, &reflinked);
	if (!r)
		fd = open(path, O_RDWR | O_CLOEXEC);
	if (!r && fd < 0)
		r = -errno;
	if (!r)
		r = crash_durable_diff(c->plan, s, CRASH_BASE, k, &d);
	if (!r)
		r = put_plain(c, fd, &d);
	if (!r)
		r = crash_state_extents(c->plan, s, st, &x);
	if (!r)
		r = put_plain(c, fd, &x);
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	crash_extents_free(&d);
	crash_extents_free(&x);
	return r;
}
