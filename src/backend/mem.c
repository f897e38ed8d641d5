/* SPDX-License-Identifier: MIT */
/*
 * mem.c: the in-memory backend, `loopd serve mem:SIZE`: the export is a
 * buffer in loopd's memory, gone when loopd stops.  It exists to show and
 * test that the backend interface (engine/backend.h) is all a storage
 * needs: the protocol, scheduler and recorder tests run against it
 * unchanged (tests/e2e/test-mem-backend.sh).  Scratch use only: nothing
 * it holds survives a restart, so FLUSH and FUA have nothing to do.
 *
 * M1. Every bio completes inline, under one mutex per backend (so
 *     concurrent bios, which --order=relaxed allows to overlap, never race
 *     on the bytes).  TRIM zeroes its range (TRIM is advisory, zeroes are
 *     one legal outcome, and the crash model's); WRITE_ZEROES zeroes;
 *     BLOCK_STATUS reports all data (always safe).
 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/backend.h"
#include "util/compiler.h"
#include "util/io.h"
#include "util/size.h"

#define PREFIX "mem:"

struct mem_backend {
	struct backend b;
	uint8_t *mem; /* anonymous mapping: untouched pages cost nothing */
	pthread_mutex_t lock; /* M1 */
	char desc[64];
};

static struct mem_backend *mb_of(struct backend *b)
{
	return container_of(b, struct mem_backend, b);
}

static int mem_open(const struct backend_opts *o, struct backend **out,
		    char *err, size_t errlen)
{
	const char *sz = o->spec + strlen(PREFIX);
	struct mem_backend *m;
	uint64_t size = o->create_size;

	if (*sz && size_parse(sz, &size) < 0) {
		snprintf(err, errlen, "%s: expected mem:SIZE, e.g. mem:64M",
			 o->spec);
		return -EINVAL;
	}
	if (!size) {
		snprintf(err, errlen, "%s: no size (mem:SIZE or --size)",
			 o->spec);
		return -EINVAL;
	}
	m = calloc(1, sizeof *m);
	if (!m)
		goto out_nomem;
	m->mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->mem == MAP_FAILED)
		goto out_nomem;
	pthread_mutex_init(&m->lock, NULL);
	snprintf(m->desc, sizeof m->desc, "in-memory scratch disk");
	m->b.info = (struct backend_info){
		.size = size,
		.min_block = 1,
		.pref_block = 4096,
		.max_payload = UINT32_MAX,
		.io_align = 1,
		.read_only = o->read_only,
		.can_trim = true,
		.can_zero = true,
		.can_fast_zero = true,
		.in_memory = true,
		.description = m->desc,
		.how = "lost at exit",
	};
	*out = &m->b;
	return 0;

out_nomem:
	free(m);
	snprintf(err, errlen, "%s: cannot map %llu bytes", o->spec,
		 (unsigned long long)size);
	return -ENOMEM;
}

static void mem_default_name(const char *spec, char *out, size_t len)
{
	(void)spec;
	snprintf(out, len, "mem");
}

static void mem_submit(struct backend *b, struct bio *io)
{
	struct mem_backend *m = mb_of(b);

	pthread_mutex_lock(&m->lock);
	switch (io->op) {
	case BIO_READ:
		memcpy(io->data, m->mem + io->off, io->len);
		break;
	case BIO_WRITE:
		memcpy(m->mem + io->off, io->data, io->len);
		break;
	case BIO_TRIM:
	case BIO_ZERO:
		memset(m->mem + io->off, 0, io->len);
		break;
	case BIO_CACHE:
		break;
	case BIO_EXTENTS:
		io->ext[0].len = io->len;
		io->ext[0].hole = false;
		io->n_ext = 1;
		break;
	default:
		abort();
	}
	pthread_mutex_unlock(&m->lock);
	bio_done(io, 0);
}

static void mem_sync(struct backend *b, struct backend_sync *s)
{
	(void)b;
	backend_sync_done(s, 0);
}

static int mem_final_sync(struct backend *b)
{
	(void)b;
	return 0;
}

/* The recorder's base image: the buffer, sparse (K5). */
static int mem_capture(struct backend *b, const char *path, bool *cheap)
{
	struct mem_backend *m = mb_of(b);
	static const uint8_t zero[4096];
	uint64_t off, size = b->info.size;
	int fd, r = 0;

	*cheap = false;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	for (off = 0; !r && off < size; off += sizeof zero) {
		size_t n = size - off < sizeof zero ? size - off : sizeof zero;

		if (memcmp(m->mem + off, zero, n))
			r = pwrite_full(fd, m->mem + off, n, off);
	}
	if (close(fd) < 0 && !r)
		r = -errno;
	return r;
}

static int mem_hash(struct backend *b, uint8_t out[32])
{
	struct mem_backend *m = mb_of(b);

	return gnutls_hash_fast(GNUTLS_DIG_SHA256, m->mem, b->info.size, out)
		       ? -EIO
		       : 0;
}

/* A live snapshot copies before writes (engine/snapshot.c I4). */
static long mem_read_sync(struct backend *b, void *buf, size_t len,
			  uint64_t off)
{
	struct mem_backend *m = mb_of(b);
	uint64_t size = b->info.size;
	size_t n = off >= size ? 0 : size - off < len ? size - off : len;

	pthread_mutex_lock(&m->lock);
	memcpy(buf, m->mem + off, n);
	pthread_mutex_unlock(&m->lock);
	return (long)n;
}

static void mem_close(struct backend *b)
{
	struct mem_backend *m = mb_of(b);

	munmap(m->mem, b->info.size);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct backend_ops mem_ops = {
	.name = "mem",
	.prefix = PREFIX,
	.open = mem_open,
	.default_name = mem_default_name,
	.submit = mem_submit,
	.sync = mem_sync,
	.final_sync = mem_final_sync,
	.capture = mem_capture,
	.hash = mem_hash,
	.close = mem_close,
	.read_sync = mem_read_sync,
};

BACKEND_REGISTER(mem_ops);
