/* SPDX-License-Identifier: MIT */
/*
 * io.c: whole-buffer I/O loops, the extent walk and the Unix listener
 * (io.h).
 */
#include "util/io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int send_full(int fd, const void *buf, size_t len, int flags)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int recv_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void extent_at(int fd, uint64_t pos, uint64_t end, bool *data, uint64_t *next)
{
	off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;

	*data = true;
	*next = end;
	if (d < 0) {
		if (errno == ENXIO) /* no data after pos: a hole to the end */
			*data = false;
		return;
	}
	if ((uint64_t)d > pos) {
		*data = false;
		*next = (uint64_t)d < end ? (uint64_t)d : end;
		return;
	}
	h = lseek(fd, (off_t)pos, SEEK_HOLE);
	if (h > 0 && (uint64_t)h > pos && (uint64_t)h < end)
		*next = (uint64_t)h;
}

int unix_listen(const char *path, mode_t mode, int sock_flags)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;
	struct stat st;
	int fd, probe, r;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | sock_flags, 0);
	if (fd < 0)
		return -errno;
	old = umask(~mode & 0777);
	r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	if (r < 0 && errno == EADDRINUSE) {
		/* A stale socket of a dead server may be replaced. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0)
			errno = EADDRINUSE;
		else if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
			errno = EEXIST;
		else if (unlink(path) == 0)
			r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
		if (probe >= 0)
			close(probe);
	}
	umask(old);
	if (r < 0 || chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

uint32_t dio_align(int fd, uint32_t *mem_align)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN))
		return 0;
	if (mem_align)
		*mem_align = stx.stx_dio_mem_align;
	return stx.stx_dio_offset_align;
}
