/* SPDX-License-Identifier: MIT */
/*
 * io.h: whole-buffer I/O on blocking descriptors, the one copy of each
 * loop: files (write_full, pwrite_full), stream sockets (send_full,
 * recv_full), the data/hole extents of a file (extent_at) and its O_DIRECT
 * alignment (dio_align).  Each returns 0 or a negative errno and retries
 * EINTR.
 */
#ifndef LOOPD_UTIL_IO_H
#define LOOPD_UTIL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int write_full(int fd, const void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/*
 * Read exactly len bytes from offset off.  -EIO if the file ends first
 * (a short read is never silently accepted).
 */
int pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Sockets: -ECONNRESET on EOF, error or timeout.  send_full adds flags
   (e.g. MSG_MORE) to MSG_NOSIGNAL. */
int send_full(int fd, const void *buf, size_t len, int flags);
int recv_full(int fd, void *buf, size_t len);

/*
 * The extent of fd that starts at pos, clipped to end: *data says whether
 * it holds data, *next is where it ends (pos < *next <= end).  Where the
 * filesystem cannot tell (lseek fails other than with ENXIO), the rest is
 * data, the safe answer for every caller.
 */
void extent_at(int fd, uint64_t pos, uint64_t end, bool *data, uint64_t *next);

/*
 * The O_DIRECT offset alignment of fd (statx STATX_DIOALIGN), or 0 where
 * O_DIRECT is not supported; the memory alignment in *mem_align if not
 * NULL.
 */
uint32_t dio_align(int fd, uint32_t *mem_align);

/* Create a Unix stream socket at path, listening (backlog SOMAXCONN), with
   mode (set through the umask, so no wider mode is ever visible).  A stale
   socket file (no server answers on it) is replaced; a live one is
   -EADDRINUSE, a non-socket file -EEXIST.  Flags for socket(2), e.g.
   SOCK_NONBLOCK.  Returns the fd or a negative errno. */
int unix_listen(const char *path, mode_t mode, int sock_flags);

#endif /* LOOPD_UTIL_IO_H */
