/* SPDX-License-Identifier: MIT */
/*
 * file-open.c: opening a file or block device for the file backend, and
 * what it does outside the data path: the final sync, the recorder's base
 * image and hash, a live snapshot's reflink and reads (F8), close.  The
 * I/O is in file.c.
 *
 * F4. Probing decides once, at start-up:
 *     - whether O_DIRECT works (statx STATX_DIOALIGN says so; tmpfs and
 *       some FUSE filesystems report no alignment) and with which
 *       alignment, which is the advertised minimum block size; where it
 *       does not, or the size is not a multiple of it, one line says so
 *       and I/O is buffered;
 *     - the size (the file's, or BLKGETSIZE64 for a device), and for a
 *       device its logical block size as the minimum block size (Z1);
 *     - whether it is memory (F3: a regular file on tmpfs or ramfs; a
 *       device node on devtmpfs reports the tmpfs magic too, but its data
 *       is on the device);
 *     - that no other process serves it: an OFD write lock (read lock for
 *       a read-only export) on the whole file.  Two servers writing one
 *       file would break every durability promise, so that is an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "backend/file.h"
#include "backend/zero.h"
#include "trace/tracefile.h"
#include "util/io.h"
#include "util/log.h"
#include "util/size.h"

static int lock_file(int fd, bool read_only)
{
	struct flock fl = {
		.l_type = read_only ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

static bool is_mem_backed(int fd, const struct stat *st)
{
	struct statfs sf;

	return S_ISREG(st->st_mode) && fstatfs(fd, &sf) == 0 &&
	       (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

/* Open (or create) the file; on error fill err and return -errno. */
static int open_backing(const struct backend_opts *o, char *err, size_t len)
{
	int fd = open(o->spec, (o->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (!o->create_size) {
			snprintf(err, len,
				 "%s: No such file (use --size SIZE to create "
				 "it)",
				 o->spec);
			return -ENOENT;
		}
		if (o->read_only) {
			snprintf(err, len,
				 "%s: No such file (cannot create a read-only "
				 "export)",
				 o->spec);
			return -ENOENT;
		}
		fd = open(o->spec, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	}
	if (fd < 0) {
		int e = errno;

		snprintf(err, len, "%s: %s", o->spec, strerror(e));
		return -e;
	}
	return fd;
}

/* The size, grown sparse to --size if smaller. */
static int size_of(int fd, const struct stat *st, const struct backend_opts *o,
		   uint64_t *size, char *err, size_t len)
{
	char sz[32];

	if (S_ISBLK(st->st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			snprintf(err, len, "%s: cannot get size: %s", o->spec,
				 strerror(errno));
			return -errno;
		}
		return 0;
	}
	*size = (uint64_t)st->st_size;
	if (o->create_size <= *size)
		return 0;
	if (o->read_only) {
		snprintf(err, len,
			 "%s: is smaller than --size and the export is "
			 "read-only",
			 o->spec);
		return -EPERM;
	}
	if (ftruncate(fd, (off_t)o->create_size) < 0) {
		int e = errno;

		snprintf(err, len, "%s: cannot grow to %s: %s", o->spec,
			 size_format(o->create_size, sz, sizeof sz),
			 strerror(e));
		return -e;
	}
	*size = o->create_size;
	return 0;
}

/* F4: O_DIRECT where it works; its alignment, or 0 for buffered I/O. */
static uint32_t try_direct(int fd, const char *path, uint64_t size)
{
	uint32_t align = dio_align(fd, NULL);

	if (!align) {
		log_msg("%s: O_DIRECT is not supported by this filesystem; "
			"using buffered I/O",
			path);
	} else if (size % align) {
		log_msg("%s: size is not a multiple of the O_DIRECT alignment "
			"(%u); using buffered I/O",
			path, align);
		align = 0;
	} else if (fcntl(fd, F_SETFL, O_DIRECT) < 0) {
		log_msg("%s: cannot enable O_DIRECT (%s); using buffered I/O",
			path, strerror(errno));
		align = 0;
	}
	return align;
}

static void fill_info(struct file_backend *f, const struct stat *st,
		      const struct backend_opts *o)
{
	struct backend_info *in = &f->b.info;

	in->io_align = f->align;
	in->min_block = f->align;
	if (S_ISBLK(st->st_mode)) { /* whole logical blocks (Z1) */
		int lbs = 0;

		if (ioctl(f->fd, BLKSSZGET, &lbs) == 0 && lbs > 0 &&
		    (uint32_t)lbs > in->min_block)
			in->min_block = (uint32_t)lbs;
	}
	in->pref_block = f->align > 4096 ? f->align : 4096;
	in->max_payload = UINT32_MAX; /* the engine's cap applies */
	in->read_only = o->read_only;
	in->can_trim = in->can_zero = in->can_fast_zero = true;
	in->can_cache = !f->direct; /* no page cache to warm */
	in->in_memory = f->mem;
	in->description = f->path;
	in->how = f->direct ? "O_DIRECT"
		  : f->mem  ? "buffered, in memory"
			    : "buffered";
}

/* Check, lock and size the open file fd.  0 or -errno with err set. */
static int check_and_lock(int fd, const struct backend_opts *o, struct stat *st,
			  uint64_t *size, char *err, size_t errlen)
{
	int r;

	if (fstat(fd, st) < 0) {
		snprintf(err, errlen, "%s: %s", o->spec, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
		snprintf(err, errlen, "%s: not a regular file or block device",
			 o->spec);
		return -EINVAL;
	}
	r = lock_file(fd, o->read_only);
	if (r == -EAGAIN || r == -EACCES) {
		snprintf(err, errlen,
			 "%s: in use by another process (another loopd "
			 "serving it?)",
			 o->spec);
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot lock: %s", o->spec,
			 strerror(-r));
		return r;
	}
	return size_of(fd, st, o, size, err, errlen);
}

int file_open(const struct backend_opts *o, struct backend **out, char *err,
	      size_t errlen)
{
	struct file_backend *f;
	struct stat st;
	int fd, r;

	fd = open_backing(o, err, errlen);
	if (fd < 0)
		return fd;
	f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(o->spec))) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out_free;
	}
	f->fd = fd;
	r = check_and_lock(fd, o, &st, &f->b.info.size, err, errlen);
	if (r < 0)
		goto out_free;
	f->align = o->direct ? try_direct(fd, o->spec, f->b.info.size) : 0;
	f->direct = f->align != 0;
	if (!f->direct)
		f->align = 1;
	f->mem = !f->direct && is_mem_backed(fd, &st);
	atomic_init(&f->zero_caps, ZERO_CAP_PUNCH | ZERO_CAP_ZERO_RANGE);
	atomic_init(&f->ring_writes_until, 0);
	fill_info(f, &st, o);
	*out = &f->b;
	return 0;

out_free:
	if (f)
		free(f->path);
	free(f);
	close(fd);
	return r;
}

void file_default_name(const char *spec, char *out, size_t len)
{
	char *copy = strdup(spec);

	snprintf(out, len, "%s", copy ? basename(copy) : spec);
	free(copy);
}

int file_final_sync(struct backend *b)
{
	struct file_backend *f = container_of(b, struct file_backend, b);

	return fdatasync(f->fd) < 0 ? -errno : 0;
}

/*
 * K5: the file may be O_DIRECT, so it is copied by path.  A copy that is
 * not a reflink is synced before serving starts: its writeback would
 * otherwise compete with the export's own I/O, and a host crash could
 * leave a torn base beside a whole trace.
 */
int file_capture(struct backend *b, const char *path, bool *cheap)
{
	struct file_backend *f = container_of(b, struct file_backend, b);
	int fd, r = tracefile_copy(f->path, path, TRACEFILE_UNCACHED, cheap);

	if (r < 0 || *cheap)
		return r;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int file_hash(struct backend *b, uint8_t out[32])
{
	struct file_backend *f = container_of(b, struct file_backend, b);

	return tracefile_sha256(f->path, out, NULL);
}

/*
 * F8. Live snapshots (engine/snapshot.c).  The capture is a reflink of
 * the whole file into the engine's DEST.part (FICLONE: XFS, btrfs); where
 * the filesystem has none (or the export is a device), -EOPNOTSUPP makes
 * the engine copy before writes, through read_sync() (pread on the
 * export's own fd: the engine's buffer and lengths suit O_DIRECT) and
 * next_data() (SEEK_DATA and SEEK_HOLE, so holes are never copied).
 */
int file_snapshot(struct backend *b, const char *dest, int fd, char *err,
		  size_t errlen)
{
	struct file_backend *f = container_of(b, struct file_backend, b);
	int e;

	if (ioctl(fd, FICLONE, f->fd) == 0)
		return 0;
	e = errno;
	if (e == EOPNOTSUPP || e == ENOTTY || e == EXDEV || e == EINVAL ||
	    e == ENOSYS)
		return -EOPNOTSUPP;
	snprintf(err, errlen, "reflink of %s into %s.part failed: %s", f->path,
		 dest, strerror(e));
	return -e;
}

long file_read_sync(struct backend *b, void *buf, size_t len, uint64_t off)
{
	struct file_backend *f = container_of(b, struct file_backend, b);
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(f->fd, (uint8_t *)buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (long)done;
}

uint64_t file_next_data(struct backend *b, uint64_t off, uint64_t *end)
{
	struct file_backend *f = container_of(b, struct file_backend, b);
	uint64_t size = b->info.size;
	off_t d = lseek(f->fd, (off_t)off, SEEK_DATA), h;

	if (d < 0) {
		/* ENXIO: only holes from off on; else assume data. */
		*end = size;
		return errno == ENXIO ? size : off;
	}
	h = lseek(f->fd, d, SEEK_HOLE);
	*end = h < 0 ? size : (uint64_t)h;
	return (uint64_t)d;
}

void file_close(struct backend *b)
{
	struct file_backend *f = container_of(b, struct file_backend, b);

	close(f->fd);
	free(f->path);
	free(f);
}
