/* SPDX-License-Identifier: MIT */
/*
 * mount.c: the log replay of the mounting checks of `loopd crash`
 * (--check xfs, --check btrfs): a state's image goes on a loop device,
 * is mounted (the filesystem's own recovery replays its log and writes
 * the image) and unmounted, and the device is detached, so that the
 * offline checker (check.c) then reads a replayed image.
 *
 * X10. Mounting a state.  For each state a loop device is attached to
 *      the worker's image by ioctl (LOOP_CTL_GET_FREE, LOOP_CONFIGURE;
 *      buffered, so that the mount's writes land in the image file where
 *      X4 finds and undoes them; autoclear, so that a killed explorer
 *      leaves no device behind).  `mount -t FS` puts it on DIR/mntN, the
 *      worker's own mount point, in a mount namespace private to the
 *      worker's thread (unshare(CLONE_NEWNS) once per thread, propagation
 *      private): no mount is seen outside the explorer, or outlives it
 *      and the commands it started.  `umount`, then LOOP_CLR_FD, end the
 *      state; after them every write of the mount is in the file.  A mount that fails or times out is a
 *      failing state, quoted with the kernel's warnings about the device
 *      (/dev/kmsg); it is still unmounted (had it got that far) and
 *      detached.  An unmount that fails is a tool error: the image could
 *      change under X4.
 * X11. One filesystem UUID, many images.  Every worker's image is a state
 *      of one filesystem, so images of one UUID are mounted at once.  XFS
 *      refuses a second mount of a UUID: check.c mounts it with nouuid.
 *      btrfs registers devices by fsid; since Linux 6.7
 *      (/sys/fs/btrfs/features/temp_fsid) a single-device filesystem
 *      whose fsid is mounted already gets a temporary fsid, so workers
 *      mount in parallel.  Without that feature two such mounts collide
 *      (EBUSY, or the second sees the first's filesystem), so the mounts
 *      are serialised across the workers.  Either way the device is
 *      forgotten after its umount (BTRFS_IOC_FORGET_DEV): a stale
 *      registration of one state, with its generation, never meets the
 *      mount of the next.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/loop.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crash/explore.h"
#include "util/log.h"

#define LOOP_TRIES 64 /* LOOP_CTL_GET_FREE races with other users */

/* X10: this thread's mount namespace is a private one. */
static _Thread_local bool private_ns;

/* X11: serialise btrfs mounts (no temp_fsid); set before the workers. */
static bool btrfs_serial;
static pthread_mutex_t btrfs_lock = PTHREAD_MUTEX_INITIALIZER;

/* A loop device attached to an image. */
struct loopdev {
	int fd;
	char path[32]; /* /dev/loopN */
	char name[24]; /* loopN, as the kernel's messages name it */
};

/* X10: the calling thread gets a mount namespace of its own. */
static int enter_private_ns(void)
{
	if (private_ns)
		return 0;
	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	/* Mounts must not propagate to the namespace we came from. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	private_ns = true;
	return 0;
}

/* X10: a free loop device on img, buffered, cleared on its last close. */
static int loop_attach(const char *img, struct loopdev *lo)
{
	struct loop_config cfg;
	int ctl, fd, n, i, r = -EBUSY;

	fd = open(img, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		r = -errno;
		goto out_close;
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.fd = (uint32_t)fd;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
	snprintf((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name,
		 "%s", img);
	for (i = 0; i < LOOP_TRIES && r == -EBUSY; i++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = -errno;
			break;
		}
		snprintf(lo->path, sizeof lo->path, "/dev/loop%d", n);
		snprintf(lo->name, sizeof lo->name, "loop%d", n);
		lo->fd = open(lo->path, O_RDWR | O_CLOEXEC);
		if (lo->fd < 0) {
			r = -errno;
			break;
		}
		/* EBUSY: another process took it since GET_FREE. */
		r = ioctl(lo->fd, LOOP_CONFIGURE, &cfg) < 0 ? -errno : 0;
		if (r < 0)
			close(lo->fd);
	}
	close(ctl);
out_close:
	close(fd);
	return r;
}

/* X10: detach; the kernel has flushed the device into the file after. */
static int loop_detach(struct loopdev *lo)
{
	int r = ioctl(lo->fd, LOOP_CLR_FD) < 0 ? -errno : 0;

	close(lo->fd);
	lo->fd = -1;
	return r;
}

/* X11: unregister dev from btrfs's device list (not registered: fine). */
static void btrfs_forget(const char *dev)
{
	struct btrfs_ioctl_vol_args a;
	int fd = open("/dev/btrfs-control", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	memset(&a, 0, sizeof a);
	snprintf(a.name, sizeof a.name, "%s", dev);
	/* ENOENT: the kernel dropped it at umount already. */
	(void)ioctl(fd, BTRFS_IOC_FORGET_DEV, &a);
	close(fd);
}

/*
 * Unmount dir if something is mounted there (a mount that timed out may
 * have finished in the kernel).  0: nothing is mounted there any more;
 * -EBUSY: only a lazy unmount could be done.
 */
static int force_umount(const char *dir)
{
	if (!umount2(dir, 0) || errno == EINVAL)
		return 0;
	umount2(dir, MNT_DETACH);
	return -EBUSY;
}

/* The kernel's log from now on (-1 when it cannot be read). */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Does text name the device (loop1, not loop12)? */
static bool names_dev(const char *text, const char *dev)
{
	size_t n = strlen(dev);
	const char *p;

	for (p = text; (p = strstr(p, dev)); p += n)
		if (!isdigit((unsigned char)p[n]))
			return true;
	return false;
}

/*
 * X10: the kernel's warnings and errors about dev since kmsg_open(), one
 * a line, into out.  A record is "PRIO,SEQ,TIME,FLAGS;TEXT\n" and then
 * continuation lines; the level is PRIO & 7 (4: warning).
 */
static void kmsg_read(int fd, const char *dev, char *out, size_t len)
{
	char rec[8192], *text, *nl;
	size_t j = 0;
	ssize_t n;

	out[0] = 0;
	if (fd < 0)
		return;
	for (;;) {
		n = read(fd, rec, sizeof rec - 1);
		if (n < 0 && errno == EPIPE)
			continue; /* overwritten records: go on */
		if (n <= 0)
			break;
		rec[n] = 0;
		text = strchr(rec, ';');
		if (!text || (strtol(rec, NULL, 10) & 7) > 4)
			continue;
		text++;
		nl = strchr(text, '\n');
		if (nl)
			*nl = 0;
		if (names_dev(text, dev) && j + 1 < len) {
			int w = snprintf(out + j, len - j, "%s\n", text);

			j = w < 0 || j + (size_t)w >= len ? len - 1
							  : j + (size_t)w;
		}
	}
}

/* The end of a state's mount: X11's forget, the lock, X10's detach. */
static int release(struct loopdev *lo, bool btrfs, int r, char *detail,
		   size_t len)
{
	int d;

	if (btrfs)
		btrfs_forget(lo->path);
	if (btrfs && btrfs_serial)
		pthread_mutex_unlock(&btrfs_lock);
	d = loop_detach(lo);
	if (d < 0 && !r) {
		snprintf(detail, len, "cannot detach %s", lo->path);
		r = d;
	}
	return r;
}

/* After a failing mount: the exit status, the kernel's words, mount's. */
static void mount_failed(const struct checker *ck, int st, int kmsg,
			 const char *dev, char *detail, size_t len)
{
	char klog[2048];

	if (WIFEXITED(st))
		snprintf(detail, len, "mount exit %d", WEXITSTATUS(st));
	else
		snprintf(detail, len, "mount killed by signal %d",
			 WTERMSIG(st));
	kmsg_read(kmsg, dev, klog, sizeof klog);
	check_quote_log(ck, klog, detail, len);
}

/* X10: umount what the state's mount put on ck->mnt. */
static int unmount(const struct checker *ck, uint32_t timeout, char *detail,
		   size_t len)
{
	char *argv[] = {"umount", (char *)ck->mnt, NULL};
	int st, r;

	check_clear_log(ck);
	r = check_exec(argv, ck, timeout, &st);
	if (!r && WIFEXITED(st) && !WEXITSTATUS(st))
		return 0;
	if (r == -ETIMEDOUT)
		snprintf(detail, len, "umount %s timed out", ck->mnt);
	else if (!r)
		snprintf(detail, len, "umount %s: exit %d", ck->mnt,
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	else
		snprintf(detail, len, "cannot run umount");
	check_quote_log(ck, NULL, detail, len);
	force_umount(ck->mnt);
	return r < 0 ? r : -EBUSY;
}

/*
 * X10, X11: mount ck->img (type fstype, options opts) and unmount it, so
 * that its log is replayed.  Returns 0 when that ran: *ok, or detail
 * says why the state fails; -errno (detail says why) for a tool error.
 */
int mount_replay(const struct checker *ck, const char *fstype, const char *opts,
		 uint32_t timeout, bool *ok, char *detail, size_t len)
{
	bool btrfs = !strcmp(fstype, "btrfs");
	struct loopdev lo;
	int kmsg, st, r;

	*ok = false;
	r = enter_private_ns();
	if (r < 0) {
		snprintf(detail, len, "cannot make a private mount namespace");
		return r;
	}
	r = loop_attach(ck->img, &lo);
	if (r < 0) {
		snprintf(detail, len, "cannot attach a loop device to %s",
			 ck->img);
		return r;
	}
	if (btrfs && btrfs_serial)
		pthread_mutex_lock(&btrfs_lock);
	kmsg = kmsg_open();
	{
		char *argv[] = {"mount",      "-t",    (char *)fstype,	"-o",
				(char *)opts, lo.path, (char *)ck->mnt, NULL};

		r = check_exec(argv, ck, timeout, &st);
	}
	if (r == -ETIMEDOUT) {
		snprintf(detail, len, "mount timed out after %u s", timeout);
		r = force_umount(ck->mnt);
		if (r < 0)
			snprintf(detail, len, "cannot unmount %s", ck->mnt);
	} else if (r < 0) {
		snprintf(detail, len, "cannot run mount");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		mount_failed(ck, st, kmsg, lo.name, detail, len);
		r = force_umount(ck->mnt);
	} else {
		r = unmount(ck, timeout, detail, len);
		*ok = !r;
	}
	if (kmsg >= 0)
		close(kmsg);
	return release(&lo, btrfs, r, detail, len);
}

/* X10, X11: before exploring: root, loop devices, how btrfs mounts. */
int mount_ready(const char *check)
{
	int fd;

	if (geteuid()) {
		log_msg("--check %s mounts every state: it needs root", check);
		return -EPERM;
	}
	fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		log_msg("--check %s: /dev/loop-control: %s", check,
			strerror(-r));
		return r;
	}
	close(fd);
	btrfs_serial = access("/sys/fs/btrfs/features/temp_fsid", F_OK) < 0;
	return 0;
}
