/* SPDX-License-Identifier: MIT */
/*
 * dirty.h: changed-block tracking (engine/dirty.c, rules W1-W8 there):
 * the named dirty maps ("checkpoints") of one export.  A map starts empty
 * when its checkpoint is made, and every write, TRIM and WRITE_ZEROES the
 * export receives after that sets the bits of the granules it touches.
 * Clients read a map as the NBD meta context "qemu:dirty-bitmap:NAME"
 * (serve/handshake.c, engine/request.c), the name qemu-nbd uses, so that
 * `nbdinfo --map=qemu:dirty-bitmap:NAME` and qemu's x-dirty-bitmap work.
 *
 * The maps live in memory, one bit per granule (--checkpoint-granularity,
 * a power of two, default 64 KiB), and in a sidecar file that says
 * whether the last stop was clean: after an unclean stop every map is
 * wholly dirty, never silently empty.
 *
 * Threads: every function is thread-safe (one mutex inside the set);
 * dirty_mark() is on the data path and is called with the export's lock
 * held (lock order: exp->lock, then the set's lock), so that a checkpoint
 * made under exp->lock splits the received writes exactly.  The sidecar is
 * written by dirty_set_persist() and dirty_set_close(), never under a lock
 * the data path takes.
 */
#ifndef LOOPD_ENGINE_DIRTY_H
#define LOOPD_ENGINE_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIRTY_NAME_MAX 128 /* bytes of a checkpoint name, without NUL */
#define DIRTY_MAPS_MAX 64 /* checkpoints per export */
#define DIRTY_GRAN_DEFAULT (64u << 10)
#define DIRTY_CONTEXT_PREFIX "qemu:dirty-bitmap:"

struct dirty_set; /* an export's checkpoints */
struct dirty_map; /* one checkpoint */

/*
 * The set of an export of size bytes, at granularity gran (a power of
 * two, 4 KiB to 1 GiB).  sidecar is the file that keeps the maps across
 * restarts (NULL: memory only).  If it exists it is read: maps of a clean
 * stop come back as they were; after an unclean stop, or when its size or
 * granularity differ, every map comes back wholly dirty, and *note says
 * so in one line (else *note is "").  Then, if any map exists, the sidecar
 * is rewritten as "in use" and synced, so that a crash from now on is
 * seen as unclean.  0, or -errno with a one-line reason in err.
 */
int dirty_set_open(uint64_t size, uint32_t gran, const char *sidecar,
		   struct dirty_set **out, char *note, size_t notelen,
		   char *err, size_t errlen);

/*
 * At a clean stop, once no write can come: write the maps and "clean" to
 * the sidecar (a new file, synced, renamed over it).  The set stays (a
 * handshake still under way may hold a map); 0 or -errno.
 */
int dirty_set_save(struct dirty_set *ds);

/* dirty_set_save(), then free.  0 or -errno; frees in any case. */
int dirty_set_close(struct dirty_set *ds);

/* Free without writing (a failed start).  NULL is fine. */
void dirty_set_free(struct dirty_set *ds);

/* Whether any map exists: a lock-free test for the data path. */
bool dirty_set_active(const struct dirty_set *ds);

/* The granularity. */
uint32_t dirty_set_gran(const struct dirty_set *ds);

/*
 * Make checkpoint name, empty.  Names are 1 to DIRTY_NAME_MAX bytes of
 * [A-Za-z0-9._@:+-].  0, or -EINVAL (bad name), -EEXIST, -ENOSPC (already
 * DIRTY_MAPS_MAX), -ENOMEM.  The caller persists afterwards
 * (dirty_set_persist), outside the export's lock.
 */
int dirty_create(struct dirty_set *ds, const char *name);

/* Forget checkpoint name (a connection reading it keeps its reference,
   and its map, until it lets go).  0 or -ENOENT. */
int dirty_delete(struct dirty_set *ds, const char *name);

/* Write the sidecar as "in use" with the current names (W6).  Called
   after a create or delete.  0, or -errno (logged by the caller). */
int dirty_set_persist(struct dirty_set *ds);

/* Every map: the bits of [off, off + len) become dirty.  len 0: none. */
void dirty_mark(struct dirty_set *ds, uint64_t off, uint64_t len);

/* The names, in creation order: fn(name, dirty_bytes, opaque) each. */
void dirty_list(struct dirty_set *ds,
		void (*fn)(const char *name, uint64_t dirty_bytes,
			   void *opaque),
		void *opaque);

/*
 * A reference to checkpoint name (name need not be NUL-terminated), for a
 * connection that selected its meta context; NULL if there is none.
 * Released with dirty_put().
 */
struct dirty_map *dirty_get(struct dirty_set *ds, const char *name, size_t len);
void dirty_put(struct dirty_set *ds, struct dirty_map *m);

/* One extent of a map: len bytes, all dirty or all clean. */
struct dirty_extent {
	uint64_t len;
	bool dirty;
};

/*
 * The extents of m over [off, off + len) (len > 0, within the export), as
 * runs of equal state, the first starting at off and the last ending at
 * off + len; no run longer than max_run bytes (a multiple of the
 * granularity, e.g. 2^31: an NBD descriptor's length is 32 bits).  Writes
 * at most max extents and returns how many (fewer cover less).
 */
uint32_t dirty_extents(struct dirty_set *ds, const struct dirty_map *m,
		       uint64_t off, uint64_t len, uint64_t max_run,
		       struct dirty_extent *out, uint32_t max);

#endif /* LOOPD_ENGINE_DIRTY_H */
