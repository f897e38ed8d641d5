/* SPDX-License-Identifier: MIT */
/*
 * export.c: open, create, lock and probe a backing file.
 *
 * Probing decides three things once, at start-up:
 *  - whether O_DIRECT works (statx STATX_DIOALIGN says so; tmpfs and some
 *    FUSE filesystems report no alignment), and with which alignment, which
 *    becomes the advertised minimum block size;
 *  - the export size (regular file size, or BLKGETSIZE64 for a device);
 *  - that no other process serves the file: an OFD write lock (read lock
 *    for read-only exports) on the whole file.  Two servers writing one
 *    file would break every durability promise, so this is an error.
 */
#include "engine/export.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util/log.h"
#include "nbd/nbd.h"
#include "util/size.h"
#include "backend/zero.h"

static int lock_file(int fd, bool read_only)
{
	struct flock fl = {
		.l_type = read_only ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = 0,
		.l_len = 0,
	};

	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return -errno;
	return 0;
}

/*
 * Returns the O_DIRECT offset alignment (and memory alignment), or 0 when
 * the filesystem does not support O_DIRECT.
 */
static uint32_t probe_dio_align(int fd, uint32_t *mem_align)
{
	struct statx stx;

	*mem_align = 0;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0)
		return 0;
	if (!(stx.stx_mask & STATX_DIOALIGN) || stx.stx_dio_offset_align == 0)
		return 0;
	*mem_align = stx.stx_dio_mem_align;
	return stx.stx_dio_offset_align;
}

/*
 * E4: a regular file on tmpfs or ramfs has no device below it.  Only a
 * regular file: a device node on devtmpfs reports TMPFS_MAGIC too, but
 * its data lives on the device.
 */
static bool is_mem_backed(int fd, const struct stat *st)
{
	struct statfs sf;

	return S_ISREG(st->st_mode) && fstatfs(fd, &sf) == 0 &&
	       (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

static int get_size(int fd, const struct stat *st, uint64_t *size)
{
	if (S_ISBLK(st->st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return -errno;
		return 0;
	}
	*size = (uint64_t)st->st_size;
	return 0;
}

/* Open (or create) the file; on error fill err and return -errno. */
static int open_backing(const struct export_opts *o, char *err, size_t len)
{
	int flags = o->read_only ? O_RDONLY : O_RDWR;
	int fd;

	fd = open(o->path, flags | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		goto out;
	if (!o->create_size) {
		snprintf(err, len,
			 "%s: No such file (use --size SIZE to create it)",
			 o->path);
		return -ENOENT;
	}
	if (o->read_only) {
		snprintf(err, len,
			 "%s: No such file (cannot create a "
			 "read-only export)",
			 o->path);
		return -ENOENT;
	}
	fd = open(o->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
out:
	if (fd < 0) {
		int e = errno;

		snprintf(err, len, "%s: %s", o->path, strerror(e));
		return -e;
	}
	return fd;
}

int export_open(const struct export_opts *o, struct export **out, char *err,
		size_t errlen)
{
	struct export *exp;
	struct stat st;
	uint32_t align = 0, mem_align = 0;
	char sz[32];
	int fd, r;

	fd = open_backing(o, err, errlen);
	if (fd < 0)
		return fd;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", o->path, strerror(-r));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file or block device",
			 o->path);
		goto out_close;
	}
	r = lock_file(fd, o->read_only);
	if (r == -EAGAIN || r == -EACCES) {
		snprintf(err, errlen,
			 "%s: in use by another process (another loopd "
			 "serving it?)",
			 o->path);
		goto out_close;
	} else if (r < 0) {
		snprintf(err, errlen, "%s: cannot lock: %s", o->path,
			 strerror(-r));
		goto out_close;
	}

	exp = calloc(1, sizeof *exp);
	if (!exp) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out_close;
	}
	exp->fd = fd;
	exp->read_only = o->read_only;
	r = get_size(fd, &st, &exp->size);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot get size: %s", o->path,
			 strerror(-r));
		goto out_free;
	}
	if (o->create_size > exp->size && S_ISREG(st.st_mode)) {
		if (o->read_only) {
			r = -EPERM;
			snprintf(err, errlen,
				 "%s: is smaller than --size and the export "
				 "is read-only",
				 o->path);
			goto out_free;
		}
		/* Grows sparse: no blocks are allocated. */
		if (ftruncate(fd, (off_t)o->create_size) < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: cannot grow to %s: %s",
				 o->path,
				 size_format(o->create_size, sz, sizeof sz),
				 strerror(-r));
			goto out_free;
		}
		exp->size = o->create_size;
	}

	if (o->cache == CACHE_DIRECT) {
		align = probe_dio_align(fd, &mem_align);
		if (!align) {
			log_msg("%s: O_DIRECT is not supported by this "
				"filesystem; using buffered I/O",
				o->path);
		} else if (exp->size % align) {
			log_msg("%s: size is not a multiple of the O_DIRECT "
				"alignment (%u); using buffered I/O",
				o->path, align);
			align = 0;
		} else if (fcntl(fd, F_SETFL, O_DIRECT) < 0) {
			log_msg("%s: cannot enable O_DIRECT (%s); using "
				"buffered I/O",
				o->path, strerror(errno));
			align = 0;
		}
	}
	exp->direct = align != 0;
	exp->mem_backed = !exp->direct && is_mem_backed(fd, &st);
	exp->align = exp->direct ? align : 1;
	exp->mem_align = exp->direct && mem_align ? mem_align : 1;
	/* A block device addresses whole logical blocks, buffered or not:
	   TRIM and fallocate act on those (Z1). */
	exp->min_block = exp->align;
	if (S_ISBLK(st.st_mode)) {
		int lbs = 0;

		if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0 &&
		    (uint32_t)lbs > exp->min_block)
			exp->min_block = (uint32_t)lbs;
	}
	exp->pref_block = exp->align > 4096 ? exp->align : 4096;
	exp->max_payload = EXPORT_MAX_PAYLOAD;
	exp->tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		      NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN |
		      NBD_FLAG_SEND_CACHE;
	if (exp->read_only)
		exp->tflags |= NBD_FLAG_READ_ONLY;
	else
		exp->tflags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
			       NBD_FLAG_SEND_FAST_ZERO;
	atomic_init(&exp->zero_caps, ZERO_CAP_PUNCH | ZERO_CAP_ZERO_RANGE);

	exp->name = strdup(o->name);
	exp->path = strdup(o->path);
	exp->description = strdup(o->path);
	if (!exp->name || !exp->path || !exp->description) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out_free_strings;
	}
	pthread_mutex_init(&exp->lock, NULL);
	sched_init(&exp->sched, o->order, o->flush, exp->align);
	*out = exp;
	return 0;

out_free_strings:
	free(exp->name);
	free(exp->path);
	free(exp->description);
out_free:
	free(exp);
out_close:
	close(fd);
	return r;
}

int export_sync(struct export *exp)
{
	if (exp->read_only)
		return 0;
	if (fdatasync(exp->fd) < 0)
		return -errno;
	return 0;
}

void export_close(struct export *exp)
{
	if (!exp)
		return;
	close(exp->fd);
	pthread_mutex_destroy(&exp->lock);
	free(exp->name);
	free(exp->path);
	free(exp->description);
	free(exp);
}
