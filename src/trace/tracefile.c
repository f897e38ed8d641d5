/* SPDX-License-Identifier: MIT */
/*
 * tracefile.c: load a trace file; copy and hash image files.
 *
 * T6. A trace is mapped read-only and decoded once into an array of
 *     records whose payload pointers point into the mapping, so a payload
 *     is never copied.  The mapping is of the size at open time: a trace
 *     that is still being written is read up to that point, and its last
 *     record may be torn (kept out, reported).
 * U1. Copies try FICLONE first: on btrfs and XFS the base image and the
 *     explorer's working images are then free.  Elsewhere only the data
 *     extents are copied, so a sparse 1 TiB export with 10 MiB of data
 *     costs 10 MiB.
 * U2. A served file's base copy (K5) reads the file with O_DIRECT: read
 *     through the page cache, the copy leaves the file's pages in large
 *     folios (readahead), and on ext4 every later 4 KiB buffered write
 *     into such a folio walks all of its buffer heads (measured with
 *     --record: a quarter of all CPU samples in ext4_block_write_begin,
 *     and 4 KiB random writes at a fifth of the rate without).  Dirty
 *     pages are written back by the kernel before a direct read, so the
 *     copy is of the file's current contents.
 */
#include "trace/tracefile.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/io.h"

/* Buffers are allocated per call: a large __thread buffer would be
   carved out of every thread's stack, and loopd's connection threads
   have small stacks. */
#define COPY_BUF (1 << 20)

int tracefile_open(const char *path, struct tracefile *tf, char *err,
		   size_t errlen)
{
	struct trace_reader rd;
	struct stat st;
	size_t cap = 0;
	int fd, r;

	memset(tf, 0, sizeof *tf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	tf->len = (size_t)st.st_size;
	if (tf->len < TRACE_HEADER_SIZE) {
		close(fd);
		snprintf(err, errlen, "%s: not a loopd trace (too short)",
			 path);
		return -EINVAL;
	}
	tf->map = mmap(NULL, tf->len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (tf->map == MAP_FAILED) {
		tf->map = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		return -ENOMEM;
	}
	r = trace_reader_init(&rd, tf->map, tf->len, &tf->h);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 r == -EPROTONOSUPPORT ? "unsupported trace version"
			 : r == -EBADMSG       ? "trace header is corrupt"
					       : "not a loopd trace");
		tracefile_close(tf);
		return r;
	}
	for (;;) {
		if (tf->n == cap) {
			struct trace_rec *v;

			cap = cap ? cap * 2 : 4096;
			v = realloc(tf->recs, cap * sizeof *v);
			if (!v) {
				snprintf(err, errlen, "out of memory");
				tracefile_close(tf);
				return -ENOMEM;
			}
			tf->recs = v;
		}
		r = trace_next(&rd, &tf->recs[tf->n]);
		if (r <= 0)
			break;
		if (tf->recs[tf->n].type == TRACE_END)
			tf->ended = true;
		tf->n++;
	}
	tf->valid = rd.pos;
	if (r < 0)
		tf->why = rd.why;
	if (tf->ended)
		tf->end = &tf->recs[tf->n - 1].end;
	return 0;
}

void tracefile_close(struct tracefile *tf)
{
	if (tf->map)
		munmap((void *)tf->map, tf->len);
	free(tf->recs);
	memset(tf, 0, sizeof *tf);
}

/* Copy [off, off + len) with copy_file_range, else read/write. */
static int copy_range(int in, int out, off_t off, off_t len, char *buf)
{
	while (len > 0) {
		off_t o1 = off, o2 = off;
		ssize_t n = copy_file_range(in, &o1, out, &o2, (size_t)len, 0);

		if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
			      errno == EOPNOTSUPP || errno == EINVAL)) {
			n = pread(in, buf,
				  len < (off_t)COPY_BUF ? (size_t)len
							: COPY_BUF,
				  off);
			if (n > 0 && pwrite(out, buf, (size_t)n, off) != n)
				return errno ? -errno : -EIO;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		off += n;
		len -= n;
	}
	return 0;
}

/* U2: [off, off + len) read with O_DIRECT from din (aligned to align;
   the file's end may cut the last read short). */
static int copy_direct(int din, int out, off_t off, off_t len, char *buf,
		       uint32_t align)
{
	off_t a = off - off % align, end = off + len;

	while (a < end) {
		size_t want = end - a < (off_t)COPY_BUF ? (size_t)(end - a)
							: COPY_BUF;
		off_t from = a < off ? off : a, to;
		ssize_t n;
		int r;

		want = (want + align - 1) / align * align;
		n = pread(din, buf, want, a);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		to = a + n < end ? a + n : end;
		if (to > from) {
			r = pwrite_full(out, buf + (from - a),
					(size_t)(to - from), (uint64_t)from);
			if (r < 0)
				return r;
		}
		a += n;
		if (n % align)
			break; /* end of file */
	}
	return 0;
}

/* U2: src again with O_DIRECT, or -1 (and *align 0) where that fails. */
static int open_direct(const char *src, uint32_t *align)
{
	uint32_t mem = 0;
	int fd = open(src, O_RDONLY | O_DIRECT | O_CLOEXEC);

	*align = 0;
	if (fd < 0)
		return -1;
	*align = dio_align(fd, &mem);
	if (!*align || *align > 4096 || mem > 4096) { /* buf: 4096-aligned */
		*align = 0;
		close(fd);
		return -1;
	}
	return fd;
}

int tracefile_copy(const char *src, const char *dst, unsigned int flags,
		   bool *reflinked)
{
	struct stat st;
	uint64_t pos, next;
	bool data;
	int in, out, din = -1, r = 0;
	uint32_t align = 0;
	char *buf = NULL;

	*reflinked = false;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 || fstat(in, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (ioctl(out, FICLONE, in) == 0) {
		*reflinked = true;
		goto out_close;
	}
	if (flags & TRACEFILE_UNCACHED)
		din = open_direct(src, &align);
	for (pos = 0; !r && pos < (uint64_t)st.st_size; pos = next) {
		extent_at(in, pos, (uint64_t)st.st_size, &data, &next);
		if (!data)
			continue; /* U1: holes stay holes */
		if (!buf && posix_memalign((void **)&buf, 4096, COPY_BUF))
			r = -ENOMEM;
		else if (din >= 0)
			r = copy_direct(din, out, (off_t)pos,
					(off_t)(next - pos), buf, align);
		else
			r = copy_range(in, out, (off_t)pos, (off_t)(next - pos),
				       buf);
	}
	if (!r && ftruncate(out, st.st_size) < 0)
		r = -errno;
out_close:
	if (out >= 0 && close(out) < 0 && !r)
		r = -errno;
	if (din >= 0)
		close(din);
	close(in);
	free(buf);
	return r;
}

int tracefile_sha256(const char *path, uint8_t out[32], uint64_t *size)
{
	gnutls_hash_hd_t h;
	uint8_t *buf;
	uint64_t total = 0;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(COPY_BUF);
	if (!buf || gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
		free(buf);
		close(fd);
		return -ENOMEM;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while ((n = read(fd, buf, COPY_BUF)) > 0) {
		gnutls_hash(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	if (n < 0)
		r = -errno;
	gnutls_hash_deinit(h, out);
	free(buf);
	close(fd);
	if (size)
		*size = total;
	return r;
}

void tracefile_hex(const uint8_t *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = 0;
}
