/* SPDX-License-Identifier: MIT */
/*
 * check.c: running the check of `loopd crash` on a state's image: the
 * user's command (`sh -c CMD`, {} expanded) or a built-in check (ext4,
 * xfs, btrfs), as child processes with a timeout, their output in the
 * worker's log and the start of that log quoted for a failing state.
 *
 * X5. Checks run as child processes (posix_spawn, own process group, no
 *     shell for the built-in ones) with a timeout; stdout and stderr go to
 *     a per-worker log whose start is quoted for a failing state.  A check
 *     that cannot be started is a tool error (exit 2), not a failing
 *     state; so is a built-in check whose tools are missing, found before
 *     exploring (check_ready()).  The built-in checks replay the log
 *     first, then run the offline checker, which must exit 0:
 *       ext4   e2fsck -p -E journal_only (exit 0 or 1), e2fsck -fn
 *       xfs    mount -o nouuid and umount (X10, X11), xfs_repair -n -P
 *       btrfs  mount -o nodiscard and umount (X10, X11), btrfs check
 *              --readonly
 *     An offline checker alone would judge an unreplayed log (e2fsck -fn
 *     skips the journal, xfs_repair -n ignores a dirty log, btrfs check
 *     does not replay the tree log).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crash/explore.h"
#include "util/log.h"

/* Empty the log (create it when create is set). */
static void clear_log(const struct checker *ck, bool create)
{
	int fd = open(ck->log,
		      O_WRONLY | O_TRUNC | O_CLOEXEC | (create ? O_CREAT : 0),
		      0644);

	if (fd >= 0)
		close(fd);
}

void check_clear_log(const struct checker *ck)
{
	clear_log(ck, false);
}

/*
 * X5: run argv with stdout and stderr appended to the worker's log.
 * Returns 0 with the wait status, -ETIMEDOUT (killed), or -errno (could
 * not start).
 */
int check_exec(char *const argv[], const struct checker *ck, uint32_t timeout,
	       int *status)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct pollfd pfd;
	pid_t pid;
	int r, pfdn;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, ck->log,
					 O_WRONLY | O_APPEND | O_CREAT, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	r = posix_spawnp(&pid, argv[0], &fa, &at, argv, ck->env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return -r;
	pfdn = pidfd_open(pid, 0);
	if (pfdn >= 0) {
		pfd.fd = pfdn;
		pfd.events = POLLIN;
		do
			r = poll(&pfd, 1, (int)(timeout * 1000));
		while (r < 0 && errno == EINTR);
		close(pfdn);
		if (r == 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, status, 0);
			return -ETIMEDOUT;
		}
	}
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * Lines that say nothing about the image: e2fsck's banner and passes,
 * xfs_repair's phases and its note on a file on tmpfs, btrfs check's
 * progress, mount's pointer to dmesg (X10 quotes the kernel instead).
 */
static bool noise(const char *line)
{
	static const char *const prefix[] = {
		"e2fsck 1.",
		"Pass ",
		"Phase ",
		"        - ",
		"Cannot get host filesystem geometry",
		"Repair may fail if there is a sector size mismatch",
		"the image and the host filesystem.",
		"No modify flag set",
		"Opening filesystem to check",
		"Checking filesystem on ",
		"UUID: ",
		"       dmesg(1) may have more information",
		NULL,
	};
	const char *const *p;

	if (!*line || (line[0] == '[' && line[1] >= '0' && line[1] <= '9'))
		return true;
	for (p = prefix; *p; p++)
		if (!strncmp(line, *p, strlen(*p)))
			return true;
	return false;
}

/*
 * For the report: first (if not NULL), then the start of the log, on one
 * line appended to out, without noise(), so the first error shows.
 */
void check_quote_log(const struct checker *ck, const char *first, char *out,
		     size_t len)
{
	char buf[8192], *line, *save = NULL;
	size_t j = strlen(out), n = 0;
	const char *sep = ": ";
	ssize_t r;
	int fd = open(ck->log, O_RDONLY | O_CLOEXEC);

	if (first)
		n = (size_t)snprintf(buf, sizeof buf, "%s\n", first);
	if (n >= sizeof buf)
		n = sizeof buf - 1;
	if (fd >= 0) {
		r = read(fd, buf + n, sizeof buf - 1 - n);
		n += r > 0 ? (size_t)r : 0;
		close(fd);
	}
	buf[n] = 0;
	for (line = strtok_r(buf, "\n", &save); line && j + 4 < len;
	     line = strtok_r(NULL, "\n", &save)) {
		if (noise(line))
			continue;
		for (; *sep; sep++)
			out[j++] = *sep;
		sep = " | ";
		for (; *line && j + 1 < len; line++)
			out[j++] = (*line >= 32 && *line < 127) ? *line : '?';
	}
	out[j] = 0;
}

/* cmd with every {} replaced by img (malloc'ed), or NULL. */
static char *expand(const char *cmd, const char *img)
{
	size_t n = 0, il = strlen(img);
	const char *p;
	char *out, *q;

	for (p = cmd; (p = strstr(p, "{}")); p += 2)
		n++;
	out = malloc(strlen(cmd) + n * il + 1);
	if (!out)
		return NULL;
	for (q = out, p = cmd; *p;) {
		if (p[0] == '{' && p[1] == '}') {
			memcpy(q, img, il);
			q += il;
			p += 2;
		} else {
			*q++ = *p++;
		}
	}
	*q = 0;
	return out;
}

/*
 * The last step of a built-in check: argv (the image path last) must exit
 * 0; detail names it by its arguments before the image.
 */
static int final_step(const struct checker *ck, char *const argv[],
		      uint32_t timeout, bool *pass, char *detail, size_t len)
{
	size_t j = 0;
	int i, st, r;

	for (i = 0; argv[i + 1] && j + 1 < len; i++) {
		int w = snprintf(detail + j, len - j, "%s%s", i ? " " : "",
				 argv[i]);

		j = w < 0 || j + (size_t)w >= len ? len - 1 : j + (size_t)w;
	}
	clear_log(ck, false);
	r = check_exec(argv, ck, timeout, &st);
	if (r == -ETIMEDOUT) {
		snprintf(detail + j, len - j, " timed out");
		return 0;
	}
	if (r < 0)
		return r;
	/* check_exec() set st: it returns 0 only after waitpid().  The
	   analyzer thinks posix_spawnp() may return < 0. */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	*pass = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (*pass) {
		detail[0] = 0;
		return 0;
	}
	snprintf(detail + j, len - j, " exit %d",
		 WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	check_quote_log(ck, NULL, detail, len);
	return 0;
}

/* --check ext4: replay the journal (exit 0 or 1), then e2fsck -fn. */
static int check_ext4(const struct checker *ck, uint32_t timeout, bool *pass,
		      char *detail, size_t len)
{
	char *replay[] = {"e2fsck", "-p", "-E", "journal_only", ck->img, NULL};
	char *fsck[] = {"e2fsck", "-fn", ck->img, NULL};
	int st, r;

	r = check_exec(replay, ck, timeout, &st);
	if (r == -ETIMEDOUT) {
		snprintf(detail, len, "journal replay timed out");
		return 0;
	}
	if (r < 0)
		return r;
	/* As in final_step(): check_exec() set st. */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) {
		snprintf(detail, len,
			 "journal replay (e2fsck -p -E journal_only) "
			 "exit %d",
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128);
		check_quote_log(ck, NULL, detail, len);
		return 0;
	}
	return final_step(ck, fsck, timeout, pass, detail, len);
}

/* --check xfs: mount and umount replay the log (X10, X11), then
   xfs_repair -n. */
static int check_xfs(const struct checker *ck, uint32_t timeout, bool *pass,
		     char *detail, size_t len)
{
	/* -P: no prefetch threads, which overlap reads of a disk; the
	   image is in memory (X9) or in the page cache, and on 2 CPUs
	   they cost a third of xfs_repair's time. */
	char *repair[] = {"xfs_repair", "-n", "-P", ck->img, NULL};
	bool replayed;
	int r;

	/* X11: every worker's image has the same UUID. */
	r = mount_replay(ck, "xfs", "nouuid", timeout, &replayed, detail, len);
	if (r < 0 || !replayed)
		return r;
	return final_step(ck, repair, timeout, pass, detail, len);
}

/* --check btrfs: mount and umount replay the tree log (X10, X11), then
   btrfs check --readonly. */
static int check_btrfs(const struct checker *ck, uint32_t timeout, bool *pass,
		       char *detail, size_t len)
{
	char *fsck[] = {"btrfs", "check", "--readonly", ck->img, NULL};
	bool replayed;
	int r;

	/* nodiscard: a loop device on tmpfs takes discards, and btrfs
	   turns async discard on for it; holes punched in the image
	   would cost X4 a restore and tell nothing. */
	r = mount_replay(ck, "btrfs", "nodiscard", timeout, &replayed, detail,
			 len);
	if (r < 0 || !replayed)
		return r;
	return final_step(ck, fsck, timeout, pass, detail, len);
}

/* --check CMD: sh -c CMD, which passes with exit 0. */
static int check_cmd(const struct checker *ck, const struct opts *o, bool *pass,
		     char *detail, size_t len)
{
	char *cmd = expand(o->check, ck->img);
	char *argv[] = {"sh", "-c", cmd, NULL};
	int st, r;

	if (!cmd)
		return -ENOMEM;
	r = check_exec(argv, ck, o->timeout, &st);
	free(cmd);
	if (r == -ETIMEDOUT) {
		snprintf(detail, len, "timed out after %u s", o->timeout);
		return 0;
	}
	if (r < 0)
		return r;
	/* As in final_step(): check_exec() set st. */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	*pass = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (*pass)
		return 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		snprintf(detail, len, "check command not found");
		check_quote_log(ck, NULL, detail, len);
		return -ENOENT;
	}
	if (WIFEXITED(st))
		snprintf(detail, len, "exit %d", WEXITSTATUS(st));
	else
		snprintf(detail, len, "killed by signal %d", WTERMSIG(st));
	check_quote_log(ck, NULL, detail, len);
	return 0;
}

/* A built-in check (X5): its name, how it runs, the tools it needs. */
struct builtin {
	const char *name;
	int (*run)(const struct checker *ck, uint32_t timeout, bool *pass,
		   char *detail, size_t len);
	const char *tools[4];
	bool mounts; /* X10: it mounts the image */
};

static const struct builtin builtins[] = {
	{"ext4", check_ext4, {"e2fsck"}, false},
	{"xfs", check_xfs, {"mount", "umount", "xfs_repair"}, true},
	{"btrfs", check_btrfs, {"mount", "umount", "btrfs"}, true},
	{0},
};

/* --check NAME: the built-in check NAME, or NULL (a command). */
static const struct builtin *find_builtin(const char *name)
{
	const struct builtin *b;

	for (b = builtins; name && b->name; b++)
		if (!strcmp(b->name, name))
			return b;
	return NULL;
}

/* Is cmd an executable file in a directory of $PATH? */
static bool in_path(const char *cmd)
{
	const char *p = getenv("PATH"), *e;
	char path[PATH_MAX];
	int n;

	for (p = p ? p : "/usr/bin:/bin";; p = e + 1) {
		e = strchrnul(p, ':');
		n = snprintf(path, sizeof path, "%.*s/%s", (int)(e - p), p,
			     cmd);
		if (e > p && n > 0 && (size_t)n < sizeof path &&
		    !access(path, X_OK))
			return true;
		if (!*e)
			return false;
	}
}

/* X5: before exploring, a built-in check's tools are there (and root and
   loop devices for X10). */
int check_ready(const struct opts *o)
{
	const struct builtin *b = find_builtin(o->check);
	const char *const *t;

	if (!b)
		return 0;
	for (t = b->tools; *t; t++) {
		if (!in_path(*t)) {
			log_msg("--check %s needs %s, which is not in PATH",
				b->name, *t);
			return -ENOENT;
		}
	}
	return b->mounts ? mount_ready(b->name) : 0;
}

int check_init(struct checker *ck, const struct opts *o, const char *workdir,
	       int id, char *img)
{
	size_t n = 0;

	ck->img = img;
	ck->fs = find_builtin(o->check);
	if (snprintf(ck->log, sizeof ck->log, "%s/check%d.log", workdir, id) >=
	    (int)sizeof ck->log)
		return -ENAMETOOLONG;
	if (ck->fs && ck->fs->mounts) {
		/* X10: the worker's own mount point. */
		snprintf(ck->mnt, sizeof ck->mnt, "%s/mnt%d", workdir, id);
		if (mkdir(ck->mnt, 0700) < 0) {
			ck->mnt[0] = 0;
			return -errno;
		}
	}
	while (environ[n])
		n++;
	ck->env = calloc(n + 2, sizeof *ck->env);
	if (!ck->env)
		return -ENOMEM;
	memcpy(ck->env, environ, n * sizeof *ck->env);
	snprintf(ck->env_img, sizeof ck->env_img, "LOOPD_CRASH_IMAGE=%s", img);
	ck->env[n] = ck->env_img;
	return 0;
}

void check_fini(struct checker *ck)
{
	if (ck->log[0])
		unlink(ck->log);
	if (ck->mnt[0])
		rmdir(ck->mnt);
	free(ck->env);
	ck->env = NULL;
}

/*
 * Check the image.  Returns 0 when the check ran: *pass, or detail says
 * why not; -errno when it could not be run (detail may say why).
 */
int check_run(const struct checker *ck, const struct opts *o, bool *pass,
	      char *detail, size_t len)
{
	detail[0] = 0;
	*pass = false;
	clear_log(ck, true);
	if (ck->fs)
		return ck->fs->run(ck, o->timeout, pass, detail, len);
	return check_cmd(ck, o, pass, detail, len);
}
