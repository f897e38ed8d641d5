/* SPDX-License-Identifier: MIT */
/*
 * dirty.c: changed-block tracking (dirty.h): an export's named dirty
 * maps in memory, and the sidecar file that carries them across a
 * restart.
 *
 * Rules, cited as W1..W8 ("W1 in dirty.c": trace.c and tls.c use T too):
 *
 * W1. Marking.  dirty_mark() runs on the data path with exp->lock held
 *     and takes ds->lock, which guards every map, its bits and its
 *     count.  Lock order: exp->lock, then ds->lock; io_lock (one sidecar
 *     write at a time) comes before ds->lock and is never taken under
 *     exp->lock.  dirty_set_active() reads an atomic count of the maps
 *     alive (listed, or deleted and still held, W4) without any lock, so
 *     an export without checkpoints pays one load per write.
 *     dirty_create() is called under exp->lock too: every write received
 *     before it is outside the new map, every one after it inside.
 * W2. Granularity.  One bit per granule (gran bytes, a power of two from
 *     4 KiB to 1 GiB) per map: a write, TRIM or WRITE_ZEROES that touches
 *     any byte of a granule marks the whole granule.  The last granule of
 *     an export whose size is not a multiple of gran is partial; its bit
 *     covers only the bytes up to the export's end, where extents and
 *     dirty_bytes stop.  Ranges past the end are clipped.  Memory:
 *     ceil(size / gran) bits per map, e.g. 1 TiB at 64 KiB is 2 MiB per
 *     map (at 4 KiB, 32 MiB), and DIRTY_MAPS_MAX (64) maps 128 MiB.
 * W3. Names.  1 to DIRTY_NAME_MAX bytes of [A-Za-z0-9._@:+-], unique
 *     among the listed maps, at most DIRTY_MAPS_MAX listed.  dirty_create()
 *     checks in this order: -EINVAL (the name), -EEXIST, -ENOSPC.  A
 *     deleted name is free again at once, for a new, empty map.
 * W4. References.  dirty_get() takes a reference for a connection.  A
 *     deleted map leaves the list at once (dirty_list, dirty_get and the
 *     sidecar no longer see it) but lives while a reference is held, and
 *     is still marked while it lives: a reader in the middle of a backup
 *     never sees a write as clean.  The last dirty_put() frees it.
 * W5. Extents.  dirty_extents() gives maximal runs of equal state over
 *     [off, off + len): the first starts at off with the state of off's
 *     granule, the last ends at off + len (clipped to the export's end),
 *     none is longer than max_run (a long run is cut into max_run pieces
 *     of the same state), at most max of them.
 * W6. In use.  The sidecar says "in use", with the names and no bitmaps,
 *     whenever the maps in memory may differ from it: dirty_set_open()
 *     rewrites it so before returning if any map exists, and
 *     dirty_set_persist() after each create or delete.  A crash from then
 *     on is seen as unclean (W8).  A checkpoint created and not yet
 *     persisted may be lost by a crash: missing, never wrong.  The names
 *     are copied under ds->lock, the file written outside it.
 * W7. Clean stop.  dirty_set_save() (and dirty_set_close()) writes
 *     "clean" and every listed map's bitmap; an export that has no
 *     checkpoint and never had a sidecar gets none (serving a file leaves
 *     no file beside it unless checkpoints were made).  Every sidecar write (W6 too) makes SIDECAR.tmp,
 *     fsyncs it, renames it over SIDECAR and fsyncs the directory, so a
 *     crash leaves the old file or the new one, never a torn one.  If the
 *     close fails, the "in use" file stays, and the next start takes it
 *     as unclean.  Context: the data path and the connections stopped.
 * W8. Unclean stop, mismatch, corruption.  An "in use" sidecar, or one
 *     written for another export size or granularity, gives back every
 *     map wholly dirty (every granule), with a one-line note.  A sidecar
 *     that cannot be read or fails a check (magic, version, lengths,
 *     names, checksum) fails dirty_set_open() with a one-line err, never
 *     an empty set.  No sidecar file: an empty set.
 *
 * The sidecar, little-endian, version 1:
 *
 *   0  magic "LOOPDCBT"          8 bytes
 *   8  version (1)               u32
 *  12  flags (1: clean)          u32
 *  16  export size in bytes      u64
 *  24  granularity in bytes      u32
 *  28  number of maps            u32
 *  32  each map, in creation order:
 *        name length (1..128)    u32
 *        reserved (0)            u32
 *        name                    padded with zeroes to a multiple of 8
 *        if clean: the bitmap    ceil(ceil(size / gran) / 64) u64 words,
 *                                granule g is bit g % 64 of word g / 64
 *      checksum                  u64, XXH3-64 of every byte before it
 */
#include "engine/dirty.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/io.h"
#include "util/le.h"
#include "util/list.h"
#include "util/xxh.h"

#define SC_MAGIC "LOOPDCBT"
#define SC_VERSION 1u
#define SC_CLEAN 1u
#define SC_HDR 32
#define SC_BUF (64u << 10) /* bytes buffered per write or read */

#define GRAN_MIN (4u << 10)
#define GRAN_MAX (1u << 30)

struct dirty_map {
	struct list_node node; /* in ds->maps, in creation order */
	uint64_t ndirty; /* granules set */
	unsigned int refs; /* W4: dirty_get()s not yet put */
	bool listed; /* false once deleted (W4) */
	char name[DIRTY_NAME_MAX + 1];
	uint64_t bits[]; /* ds->nwords */
};

struct dirty_set {
	pthread_mutex_t lock; /* W1: maps, listed, bits, ndirty, refs */
	pthread_mutex_t io_lock; /* W6, W7: one sidecar write at a time */
	struct list_node maps; /* alive: listed, and deleted but held */
	unsigned int nlisted;
	atomic_uint nalive; /* W1: maps on ds->maps */
	uint64_t size;
	uint64_t ngran;
	size_t nwords;
	uint32_t gran;
	unsigned int shift; /* log2(gran) */
	char *sidecar, *tmp, *dir; /* NULL: memory only */
};

static bool gran_valid(uint64_t gran)
{
	return gran >= GRAN_MIN && gran <= GRAN_MAX && !(gran & (gran - 1));
}

/* W2: granules of an export; never overflows, whatever size is. */
static uint64_t granules(uint64_t size, unsigned int shift)
{
	return (size >> shift) + !!(size & ((UINT64_C(1) << shift) - 1));
}

static size_t words_of(uint64_t ngran)
{
	return (size_t)(ngran / 64 + !!(ngran % 64));
}

/* W3 */
static bool name_valid(const char *name, size_t len)
{
	size_t i;

	if (!len || len > DIRTY_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c && strchr("._@:+-", c)))
			continue;
		return false;
	}
	return true;
}

static struct dirty_map *map_new(const struct dirty_set *ds, const char *name,
				 size_t len)
{
	struct dirty_map *m;

	/* One word at least: calloc(0) may return NULL. */
	m = calloc(1, sizeof *m + (ds->nwords ? ds->nwords : 1) *
					  sizeof m->bits[0]);
	if (!m)
		return NULL;
	memcpy(m->name, name, len);
	m->name[len] = '\0';
	return m;
}

/* W8: every granule set, the bits past the last granule clear. */
static void map_fill(const struct dirty_set *ds, struct dirty_map *m)
{
	if (!ds->nwords)
		return;
	memset(m->bits, 0xff, ds->nwords * sizeof m->bits[0]);
	if (ds->ngran % 64)
		m->bits[ds->nwords - 1] = (UINT64_C(1) << (ds->ngran % 64)) - 1;
	m->ndirty = ds->ngran;
}

/* Context: ds->lock held. */
static struct dirty_map *find_listed(struct dirty_set *ds, const char *name,
				     size_t len)
{
	struct list_node *pos;

	list_for_each(pos, &ds->maps)
	{
		struct dirty_map *m = list_entry(pos, struct dirty_map, node);

		if (m->listed && strlen(m->name) == len &&
		    !memcmp(m->name, name, len))
			return m;
	}
	return NULL;
}

/* Unlink a map that is neither listed nor held.  Context: ds->lock held;
   the caller frees it after dropping the lock. */
static void map_unlink(struct dirty_set *ds, struct dirty_map *m)
{
	list_del(&m->node);
	atomic_fetch_sub_explicit(&ds->nalive, 1, memory_order_release);
}

/* W2: set granules [first, last]; returns how many were clear. */
static uint64_t set_range(uint64_t *w, uint64_t first, uint64_t last)
{
	size_t i = (size_t)(first / 64), j = (size_t)(last / 64), k;
	uint64_t lo = ~UINT64_C(0) << (first % 64);
	uint64_t hi = ~UINT64_C(0) >> (63 - last % 64);
	uint64_t added;

	if (i == j) {
		lo &= hi;
		added = (uint64_t)__builtin_popcountll(lo & ~w[i]);
		w[i] |= lo;
		return added;
	}
	added = (uint64_t)__builtin_popcountll(lo & ~w[i]);
	w[i] |= lo;
	for (k = i + 1; k < j; k++) {
		added += (uint64_t)__builtin_popcountll(~w[k]);
		w[k] = ~UINT64_C(0);
	}
	added += (uint64_t)__builtin_popcountll(hi & ~w[j]);
	w[j] |= hi;
	return added;
}

static bool test_bit(const uint64_t *w, uint64_t g)
{
	return w[g / 64] >> (g % 64) & 1;
}

/* The first granule in [from, limit) whose bit is want, else limit. */
static uint64_t find_next(const uint64_t *w, uint64_t from, uint64_t limit,
			  bool want)
{
	while (from < limit) {
		uint64_t x = w[from / 64];

		if (!want)
			x = ~x;
		x &= ~UINT64_C(0) << (from % 64);
		if (x) {
			from = from / 64 * 64 + (uint64_t)__builtin_ctzll(x);
			return from < limit ? from : limit;
		}
		from = from / 64 * 64 + 64;
	}
	return limit;
}

/*
 * The maps of the set, each with a reference so that a delete cannot free
 * it while the sidecar is written (names never change; bits are read only
 * by the clean write of W7, when nothing marks any more).  Returns how
 * many; the caller puts them.
 */
static unsigned int hold_listed(struct dirty_set *ds,
				struct dirty_map *held[DIRTY_MAPS_MAX])
{
	struct list_node *pos;
	unsigned int n = 0;

	pthread_mutex_lock(&ds->lock);
	list_for_each(pos, &ds->maps)
	{
		struct dirty_map *m = list_entry(pos, struct dirty_map, node);

		if (m->listed && n < DIRTY_MAPS_MAX) {
			m->refs++;
			held[n++] = m;
		}
	}
	pthread_mutex_unlock(&ds->lock);
	return n;
}

/* Sidecar output: buffered, hashed as it goes. */
struct sc_out {
	int fd;
	int err; /* the first error; later puts do nothing */
	size_t n;
	uint8_t *buf; /* SC_BUF */
	XXH3_state_t st;
};

static void out_flush(struct sc_out *o)
{
	if (!o->err && o->n)
		o->err = write_full(o->fd, o->buf, o->n);
	o->n = 0;
}

static void out_put(struct sc_out *o, const void *p, size_t len)
{
	const uint8_t *s = p;

	XXH3_64bits_update(&o->st, p, len);
	while (len && !o->err) {
		size_t k = SC_BUF - o->n < len ? SC_BUF - o->n : len;

		memcpy(o->buf + o->n, s, k);
		o->n += k;
		s += k;
		len -= k;
		if (o->n == SC_BUF)
			out_flush(o);
	}
}

static void out_bitmap(struct sc_out *o, const uint64_t *w, size_t nwords)
{
	uint8_t b[4096];
	size_t i, k;

	while (nwords && !o->err) {
		k = nwords < sizeof b / 8 ? nwords : sizeof b / 8;
		for (i = 0; i < k; i++)
			put64(b + i * 8, w[i]);
		out_put(o, b, k * 8);
		w += k;
		nwords -= k;
	}
}

static int sync_dir(const char *dir)
{
	int fd, r = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		r = -errno;
	close(fd);
	return r;
}

/* W6, W7: write the sidecar, clean (with the bitmaps) or in use (without),
   through SIDECAR.tmp.  Context: io_lock held. */
static int sidecar_write(struct dirty_set *ds, bool clean)
{
	struct dirty_map *held[DIRTY_MAPS_MAX];
	uint8_t hdr[SC_HDR], pad[8] = {0}, b[8];
	struct sc_out o = {.fd = -1};
	unsigned int n, i;
	int r;

	o.buf = malloc(SC_BUF);
	if (!o.buf)
		return -ENOMEM;
	XXH3_64bits_reset(&o.st);
	n = hold_listed(ds, held);
	o.fd = open(ds->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (o.fd < 0) {
		r = -errno;
		goto out_put;
	}
	memcpy(hdr, SC_MAGIC, 8);
	put32(hdr + 8, SC_VERSION);
	put32(hdr + 12, clean ? SC_CLEAN : 0);
	put64(hdr + 16, ds->size);
	put32(hdr + 24, ds->gran);
	put32(hdr + 28, n);
	out_put(&o, hdr, sizeof hdr);
	for (i = 0; i < n; i++) {
		size_t len = strlen(held[i]->name);

		put32(b, (uint32_t)len);
		put32(b + 4, 0);
		out_put(&o, b, sizeof b);
		out_put(&o, held[i]->name, len);
		out_put(&o, pad, (8 - len % 8) % 8);
		if (clean)
			out_bitmap(&o, held[i]->bits, ds->nwords);
	}
	out_flush(&o);
	put64(b, XXH3_64bits_digest(&o.st));
	r = o.err ? o.err : write_full(o.fd, b, sizeof b);
	if (!r && fsync(o.fd))
		r = -errno;
	if (close(o.fd) && !r)
		r = -errno;
	if (!r && rename(ds->tmp, ds->sidecar))
		r = -errno;
	if (r)
		unlink(ds->tmp);
	else
		r = sync_dir(ds->dir);
out_put:
	for (i = 0; i < n; i++)
		dirty_put(ds, held[i]);
	free(o.buf);
	return r;
}

/* Sidecar input: bounded by the file's length, hashed as it goes. */
struct sc_in {
	int fd;
	uint64_t pos, len;
	XXH3_state_t st;
};

/* -EBADMSG if the file ends first. */
static int in_get(struct sc_in *in, void *p, size_t len)
{
	int r;

	if (len > in->len - in->pos)
		return -EBADMSG;
	r = pread_full(in->fd, p, len, in->pos);
	if (r < 0)
		return r;
	XXH3_64bits_update(&in->st, p, len);
	in->pos += len;
	return 0;
}

/* A bitmap of nwords words, into w (NULL: read and dropped). */
static int in_bitmap(struct sc_in *in, uint64_t *w, uint64_t nwords,
		     uint8_t *buf)
{
	uint64_t done = 0;
	size_t k, i;
	int r;

	if (nwords > (in->len - in->pos) / 8)
		return -EBADMSG;
	while (done < nwords) {
		k = nwords - done < SC_BUF / 8 ? (size_t)(nwords - done)
					       : SC_BUF / 8;
		r = in_get(in, buf, k * 8);
		if (r < 0)
			return r;
		for (i = 0; w && i < k; i++)
			w[done + i] = get64(buf + i * 8);
		done += k;
	}
	return 0;
}

/* One line into err: "sidecar PATH: why". */
#define SC_ERR(ds, err, errlen, ...)                                           \
	do {                                                                   \
		char why_[160];                                                \
		snprintf(why_, sizeof why_, __VA_ARGS__);                      \
		snprintf(err, errlen, "sidecar %s: %s", (ds)->sidecar, why_);  \
	} while (0)

/*
 * W8: read the sidecar open on fd into ds's (empty) list.  0, or -errno
 * with the reason in err; nothing is kept on failure.
 */
static int sidecar_read(struct dirty_set *ds, int fd, uint64_t flen, char *note,
			size_t notelen, char *err, size_t errlen)
{
	struct sc_in in = {.fd = fd, .len = flen};
	uint8_t hdr[SC_HDR], b[8], *buf;
	char name[DIRTY_NAME_MAX + 8];
	struct list_node loaded, *pos;
	uint64_t fsize, fwords;
	uint32_t version, flags, fgran, nmaps, i, len;
	bool clean, match;
	int r;

	list_init(&loaded);
	buf = malloc(SC_BUF);
	if (!buf) {
		SC_ERR(ds, err, errlen, "out of memory");
		return -ENOMEM;
	}
	XXH3_64bits_reset(&in.st);
	r = in_get(&in, hdr, sizeof hdr);
	if (r < 0 && r != -EBADMSG)
		goto out_short;
	if (r < 0 || memcmp(hdr, SC_MAGIC, 8)) {
		SC_ERR(ds, err, errlen, "not a loopd checkpoint file");
		r = -EBADMSG;
		goto out_free;
	}
	version = get32(hdr + 8);
	flags = get32(hdr + 12);
	fsize = get64(hdr + 16);
	fgran = get32(hdr + 24);
	nmaps = get32(hdr + 28);
	if (version != SC_VERSION) {
		SC_ERR(ds, err, errlen,
		       "version %" PRIu32 " (this loopd reads %u)", version,
		       SC_VERSION);
		r = -EPROTONOSUPPORT;
		goto out_free;
	}
	r = -EBADMSG;
	if (flags & ~SC_CLEAN || !gran_valid(fgran) || nmaps > DIRTY_MAPS_MAX) {
		SC_ERR(ds, err, errlen, "corrupt header");
		goto out_free;
	}
	clean = flags & SC_CLEAN;
	match = fsize == ds->size && fgran == ds->gran;
	fwords = words_of(granules(fsize, (unsigned int)__builtin_ctz(fgran)));
	for (i = 0; i < nmaps; i++) {
		struct dirty_map *m;

		r = in_get(&in, b, sizeof b);
		if (r < 0)
			goto out_short;
		len = get32(b);
		r = -EBADMSG;
		if (get32(b + 4) || !len || len > DIRTY_NAME_MAX) {
			SC_ERR(ds, err, errlen, "corrupt checkpoint %" PRIu32,
			       i + 1);
			goto out_free;
		}
		r = in_get(&in, name, (len + 7) / 8 * 8);
		if (r < 0)
			goto out_short;
		r = -EBADMSG;
		if (!name_valid(name, len)) {
			SC_ERR(ds, err, errlen,
			       "bad name of checkpoint %" PRIu32, i + 1);
			goto out_free;
		}
		list_for_each(pos, &loaded)
		{
			m = list_entry(pos, struct dirty_map, node);
			if (strlen(m->name) == len &&
			    !memcmp(m->name, name, len)) {
				SC_ERR(ds, err, errlen, "checkpoint %.*s twice",
				       (int)len, name);
				goto out_free;
			}
		}
		m = map_new(ds, name, len);
		if (!m) {
			SC_ERR(ds, err, errlen, "out of memory");
			r = -ENOMEM;
			goto out_free;
		}
		m->listed = true;
		list_add_tail(&loaded, &m->node);
		if (clean) {
			r = in_bitmap(&in, match ? m->bits : NULL, fwords, buf);
			if (r < 0)
				goto out_short;
		}
		if (clean && match) {
			size_t w;

			/* Bits past the last granule mean nothing. */
			if (ds->ngran % 64)
				m->bits[ds->nwords - 1] &=
					(UINT64_C(1) << (ds->ngran % 64)) - 1;
			for (w = 0; w < ds->nwords; w++)
				m->ndirty += (uint64_t)__builtin_popcountll(
					m->bits[w]);
		} else {
			map_fill(ds, m); /* W8 */
		}
	}
	if (flen - in.pos != 8) {
		r = -EBADMSG;
		goto out_short;
	}
	r = pread_full(fd, b, sizeof b, in.pos);
	if (r < 0)
		goto out_short;
	if (get64(b) != XXH3_64bits_digest(&in.st)) {
		SC_ERR(ds, err, errlen, "bad checksum");
		r = -EBADMSG;
		goto out_free;
	}
	if (nmaps && !(clean && match)) {
		char why[160];

		if (!clean)
			snprintf(why, sizeof why,
				 "the last stop was not clean");
		else
			snprintf(why, sizeof why,
				 "written for size %" PRIu64
				 " at granularity %" PRIu32 ", now %" PRIu64
				 " at %" PRIu32,
				 fsize, fgran, ds->size, ds->gran);
		snprintf(note, notelen,
			 "sidecar %s: %s: %" PRIu32
			 " checkpoint(s) wholly dirty",
			 ds->sidecar, why, nmaps);
	}
	while ((pos = list_pop(&loaded))) {
		list_add_tail(&ds->maps, pos);
		ds->nlisted++;
		atomic_fetch_add_explicit(&ds->nalive, 1, memory_order_release);
	}
	r = 0;
	goto out_free;
out_short:
	if (r == -EBADMSG)
		SC_ERR(ds, err, errlen, "truncated or corrupt");
	else
		SC_ERR(ds, err, errlen, "%s", strerror(-r));
out_free:
	while ((pos = list_pop(&loaded)))
		free(list_entry(pos, struct dirty_map, node));
	free(buf);
	return r;
}

/* The sidecar at open: none is fine, anything else is read (W8). */
static int sidecar_load(struct dirty_set *ds, char *note, size_t notelen,
			char *err, size_t errlen)
{
	struct stat st;
	int fd, r;

	fd = open(ds->sidecar, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		r = -errno;
		SC_ERR(ds, err, errlen, "%s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st)) {
		r = -errno;
		SC_ERR(ds, err, errlen, "%s", strerror(-r));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		SC_ERR(ds, err, errlen, "not a regular file");
		goto out_close;
	}
	r = sidecar_read(ds, fd, (uint64_t)st.st_size, note, notelen, err,
			 errlen);
out_close:
	close(fd);
	return r;
}

static int set_paths(struct dirty_set *ds, const char *sidecar)
{
	const char *slash = strrchr(sidecar, '/');

	ds->sidecar = strdup(sidecar);
	if (asprintf(&ds->tmp, "%s.tmp", sidecar) < 0)
		ds->tmp = NULL;
	if (!slash)
		ds->dir = strdup(".");
	else if (slash == sidecar)
		ds->dir = strdup("/");
	else
		ds->dir = strndup(sidecar, (size_t)(slash - sidecar));
	return ds->sidecar && ds->tmp && ds->dir ? 0 : -ENOMEM;
}

int dirty_set_open(uint64_t size, uint32_t gran, const char *sidecar,
		   struct dirty_set **out, char *note, size_t notelen,
		   char *err, size_t errlen)
{
	struct dirty_set *ds;
	int r;

	*out = NULL;
	if (notelen)
		note[0] = '\0';
	if (errlen)
		err[0] = '\0';
	if (!gran_valid(gran)) {
		snprintf(err, errlen,
			 "checkpoint granularity %" PRIu32
			 ": not a power of two from 4 KiB to 1 GiB",
			 gran);
		return -EINVAL;
	}
	ds = calloc(1, sizeof *ds);
	if (!ds) {
		snprintf(err, errlen, "checkpoints: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&ds->lock, NULL);
	pthread_mutex_init(&ds->io_lock, NULL);
	list_init(&ds->maps);
	atomic_init(&ds->nalive, 0);
	ds->size = size;
	ds->gran = gran;
	ds->shift = (unsigned int)__builtin_ctz(gran);
	ds->ngran = granules(size, ds->shift);
	ds->nwords = words_of(ds->ngran);
	if (sidecar) {
		r = set_paths(ds, sidecar);
		if (r < 0) {
			snprintf(err, errlen, "checkpoints: out of memory");
			goto out_free;
		}
		r = sidecar_load(ds, note, notelen, err, errlen);
		if (r < 0)
			goto out_free;
		if (ds->nlisted) {
			pthread_mutex_lock(&ds->io_lock);
			r = sidecar_write(ds, false); /* W6 */
			pthread_mutex_unlock(&ds->io_lock);
			if (r < 0) {
				SC_ERR(ds, err, errlen,
				       "cannot mark it in use: %s",
				       strerror(-r));
				goto out_free;
			}
		}
	}
	*out = ds;
	return 0;
out_free:
	dirty_set_free(ds);
	return r;
}

int dirty_set_save(struct dirty_set *ds)
{
	int r = 0;

	/* W7: an export that never had a checkpoint leaves no file. */
	if (ds && ds->sidecar && !atomic_load(&ds->nalive) &&
	    access(ds->sidecar, F_OK) < 0 && errno == ENOENT)
		return 0;
	if (ds && ds->sidecar) {
		pthread_mutex_lock(&ds->io_lock);
		r = sidecar_write(ds, true); /* W7 */
		pthread_mutex_unlock(&ds->io_lock);
	}
	return r;
}

int dirty_set_close(struct dirty_set *ds)
{
	int r = dirty_set_save(ds);

	dirty_set_free(ds);
	return r;
}

void dirty_set_free(struct dirty_set *ds)
{
	struct list_node *n;

	if (!ds)
		return;
	while ((n = list_pop(&ds->maps)))
		free(list_entry(n, struct dirty_map, node));
	pthread_mutex_destroy(&ds->lock);
	pthread_mutex_destroy(&ds->io_lock);
	free(ds->sidecar);
	free(ds->tmp);
	free(ds->dir);
	free(ds);
}

bool dirty_set_active(const struct dirty_set *ds)
{
	return ds && atomic_load_explicit(&ds->nalive, memory_order_acquire);
}

uint32_t dirty_set_gran(const struct dirty_set *ds)
{
	return ds->gran;
}

int dirty_create(struct dirty_set *ds, const char *name)
{
	size_t len = strnlen(name, DIRTY_NAME_MAX + 1);
	struct dirty_map *m;
	int r = 0;

	if (!name_valid(name, len)) /* W3 */
		return -EINVAL;
	m = map_new(ds, name, len);
	if (!m)
		return -ENOMEM;
	m->listed = true;
	pthread_mutex_lock(&ds->lock);
	if (find_listed(ds, name, len))
		r = -EEXIST;
	else if (ds->nlisted >= DIRTY_MAPS_MAX)
		r = -ENOSPC;
	if (!r) {
		list_add_tail(&ds->maps, &m->node);
		ds->nlisted++;
		atomic_fetch_add_explicit(&ds->nalive, 1, memory_order_release);
	}
	pthread_mutex_unlock(&ds->lock);
	if (r)
		free(m);
	return r;
}

int dirty_delete(struct dirty_set *ds, const char *name)
{
	struct dirty_map *m;
	bool gone = false;

	pthread_mutex_lock(&ds->lock);
	m = find_listed(ds, name, strnlen(name, DIRTY_NAME_MAX + 1));
	if (m) {
		m->listed = false;
		ds->nlisted--;
		if (!m->refs) { /* W4: else the last dirty_put() frees it */
			map_unlink(ds, m);
			gone = true;
		}
	}
	pthread_mutex_unlock(&ds->lock);
	if (gone)
		free(m);
	return m ? 0 : -ENOENT;
}

int dirty_set_persist(struct dirty_set *ds)
{
	int r;

	if (!ds->sidecar)
		return 0;
	pthread_mutex_lock(&ds->io_lock);
	r = sidecar_write(ds, false); /* W6 */
	pthread_mutex_unlock(&ds->io_lock);
	return r;
}

void dirty_mark(struct dirty_set *ds, uint64_t off, uint64_t len)
{
	struct list_node *pos;
	uint64_t last;

	if (!dirty_set_active(ds) || !len || off >= ds->size)
		return;
	/* W2: clipped to the export, rounded out to whole granules. */
	last = len > ds->size - off ? ds->size - 1 : off + len - 1;
	pthread_mutex_lock(&ds->lock);
	list_for_each(pos, &ds->maps) /* W4: deleted but held ones too */
	{
		struct dirty_map *m = list_entry(pos, struct dirty_map, node);

		m->ndirty +=
			set_range(m->bits, off >> ds->shift, last >> ds->shift);
	}
	pthread_mutex_unlock(&ds->lock);
}

/* W2: the bytes of m's dirty granules, the last one cut at the end. */
static uint64_t dirty_bytes(const struct dirty_set *ds,
			    const struct dirty_map *m)
{
	uint64_t tail;

	if (!m->ndirty)
		return 0;
	if (!test_bit(m->bits, ds->ngran - 1))
		return m->ndirty << ds->shift;
	tail = ds->size - ((ds->ngran - 1) << ds->shift);
	return ((m->ndirty - 1) << ds->shift) + tail;
}

void dirty_list(struct dirty_set *ds,
		void (*fn)(const char *name, uint64_t dirty_bytes,
			   void *opaque),
		void *opaque)
{
	struct dirty_map *held[DIRTY_MAPS_MAX];
	uint64_t bytes[DIRTY_MAPS_MAX];
	unsigned int n, i;

	/* fn runs without ds->lock, so it may call into the set. */
	n = hold_listed(ds, held);
	pthread_mutex_lock(&ds->lock);
	for (i = 0; i < n; i++)
		bytes[i] = dirty_bytes(ds, held[i]);
	pthread_mutex_unlock(&ds->lock);
	for (i = 0; i < n; i++)
		fn(held[i]->name, bytes[i], opaque);
	for (i = 0; i < n; i++)
		dirty_put(ds, held[i]);
}

struct dirty_map *dirty_get(struct dirty_set *ds, const char *name, size_t len)
{
	struct dirty_map *m;

	if (!name_valid(name, len))
		return NULL;
	pthread_mutex_lock(&ds->lock);
	m = find_listed(ds, name, len);
	if (m)
		m->refs++; /* W4 */
	pthread_mutex_unlock(&ds->lock);
	return m;
}

void dirty_put(struct dirty_set *ds, struct dirty_map *m)
{
	bool gone = false;

	if (!m)
		return;
	pthread_mutex_lock(&ds->lock);
	if (!--m->refs && !m->listed) { /* W4 */
		map_unlink(ds, m);
		gone = true;
	}
	pthread_mutex_unlock(&ds->lock);
	if (gone)
		free(m);
}

uint32_t dirty_extents(struct dirty_set *ds, const struct dirty_map *m,
		       uint64_t off, uint64_t len, uint64_t max_run,
		       struct dirty_extent *out, uint32_t max)
{
	uint64_t end, lastg, pos = off;
	uint32_t n = 0;

	if (!len || off >= ds->size || !max)
		return 0;
	end = len > ds->size - off ? ds->size : off + len;
	lastg = (end - 1) >> ds->shift;
	if (!max_run)
		max_run = UINT64_MAX;
	pthread_mutex_lock(&ds->lock);
	while (pos < end && n < max) {
		uint64_t g = pos >> ds->shift, next, run_end;
		bool dirty = test_bit(m->bits, g);

		/* W5: up to the first granule of the other state. */
		next = find_next(m->bits, g + 1, lastg + 1, !dirty);
		run_end = next > lastg ? end : next << ds->shift;
		out[n].len = run_end - pos < max_run ? run_end - pos : max_run;
		out[n].dirty = dirty;
		pos += out[n].len;
		n++;
	}
	pthread_mutex_unlock(&ds->lock);
	return n;
}
