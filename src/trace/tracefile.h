/* SPDX-License-Identifier: MIT */
/*
 * tracefile.h: file-level helpers shared by the recorder (recorder.c), the
 * `loopd trace` commands (tracecmd.c) and the explorer (explore.c):
 * loading a trace file into decoded records, copying an image with a
 * reflink or sparsely, and hashing a file with SHA-256.
 */
#ifndef LOOPD_CRASH_TRACEFILE_H
#define LOOPD_CRASH_TRACEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace/trace.h"

struct tracefile {
	const uint8_t *map; /* the whole file, read-only */
	size_t len;
	struct trace_header h;
	struct trace_rec *recs; /* the valid prefix, decoded */
	size_t n;
	size_t valid; /* bytes in the valid prefix (header included) */
	bool ended; /* END was read */
	const char *why; /* why the rest was dropped, or NULL */
	const struct trace_end *end; /* END's totals, or NULL */
};

/*
 * Map and decode a trace.  A torn or corrupt tail is not an error: the
 * valid prefix is kept and tf->why says why the rest was dropped.
 * Returns 0 or -errno with a one-line reason in err.
 */
int tracefile_open(const char *path, struct tracefile *tf, char *err,
		   size_t errlen);
void tracefile_close(struct tracefile *tf);

/*
 * Copy src to dst (created or truncated, mode 0644): a reflink (FICLONE)
 * where the filesystem allows, else a sparse copy (SEEK_DATA/SEEK_HOLE,
 * copy_file_range, or read/write).  *reflinked says which.  With
 * TRACEFILE_UNCACHED, src is read with O_DIRECT where its filesystem
 * allows, so that its page cache is left as it was (U2).  Returns 0 or
 * -errno.
 */
#define TRACEFILE_UNCACHED 1u
int tracefile_copy(const char *src, const char *dst, unsigned int flags,
		   bool *reflinked);

/* SHA-256 of a whole file (read without O_DIRECT).  Returns 0 or -errno. */
int tracefile_sha256(const char *path, uint8_t out[32], uint64_t *size);

/* 64 hex digits and a NUL. */
void tracefile_hex(const uint8_t *p, size_t n, char *out);

#endif /* LOOPD_CRASH_TRACEFILE_H */
