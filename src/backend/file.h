/* SPDX-License-Identifier: MIT */
/*
 * file.h: the file backend's state, shared by file-open.c (opening and
 * probing) and file.c (I/O).  Private to src/backend/.
 */
#ifndef LOOPD_BACKEND_FILE_H
#define LOOPD_BACKEND_FILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"

struct file_backend {
	struct backend b;
	int fd; /* O_RDWR or O_RDONLY, maybe O_DIRECT */
	char *path; /* as given */
	bool direct; /* fd is O_DIRECT */
	bool mem; /* F3: a regular file on tmpfs/ramfs */
	uint32_t align; /* O_DIRECT alignment, else 1 */
	/* enum zero_cap bits: they only ever turn off, atomically, on the
	   first EOPNOTSUPP of their own mode (Z6 in zero.c). */
	atomic_uint zero_caps;
	/* F6: until when (CLOCK_MONOTONIC ns) writes go through the ring
	   after one was throttled.  Any worker may set it. */
	_Atomic uint64_t ring_writes_until;
};

/* file-open.c: open, create or grow, lock and probe (F4). */
int file_open(const struct backend_opts *o, struct backend **out, char *err,
	      size_t errlen);
void file_default_name(const char *spec, char *out, size_t len);
int file_final_sync(struct backend *b);
int file_capture(struct backend *b, const char *path, bool *cheap);
int file_hash(struct backend *b, uint8_t out[32]);
void file_close(struct backend *b);
int file_snapshot(struct backend *b, const char *dest, int fd, char *err,
		  size_t errlen);
long file_read_sync(struct backend *b, void *buf, size_t len, uint64_t off);
uint64_t file_next_data(struct backend *b, uint64_t off, uint64_t *end);

/* file.c: the I/O. */
void file_submit(struct backend *b, struct bio *io);
void file_sync(struct backend *b, struct backend_sync *s);

#endif /* LOOPD_BACKEND_FILE_H */
