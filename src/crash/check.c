/* SPDX-License-Identifier: MIT */
/*
 * check.c: running the check of `loopd crash` on a state's image: the
 * user's command (`sh -c CMD`, {} expanded) or the built-in ext4 check,
 * as a child process with a timeout, its output in the worker's log and
 * the start of that log quoted for a failing state.
 *
 * X5. Checks run as child processes (posix_spawn, own process group, no
 *     shell for ext4) with a timeout; stdout and stderr go to a per-worker
 *     log whose start is quoted for a failing state.  A check that cannot
 *     be started is a tool error (exit 2), not a failing state.
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
#include <sys/wait.h>
#include <unistd.h>

#include "crash/explore.h"

int check_init(struct checker *ck, const char *workdir, int id, char *img)
{
	size_t n = 0;

	ck->img = img;
	if (snprintf(ck->log, sizeof ck->log, "%s/check%d.log", workdir, id) >=
	    (int)sizeof ck->log)
		return -ENAMETOOLONG;
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
	free(ck->env);
	ck->env = NULL;
}

/* Empty the log (create it when create is set). */
static void clear_log(const struct checker *ck, bool create)
{
	int fd = open(ck->log,
		      O_WRONLY | O_TRUNC | O_CLOEXEC | (create ? O_CREAT : 0),
		      0644);

	if (fd >= 0)
		close(fd);
}

/*
 * Run argv with stdout and stderr appended to log.  Returns 0 with the
 * wait status, -ETIMEDOUT (killed), or -errno (could not start).
 */
static int run(char *const argv[], const char *log, char *const envp[],
	       uint32_t timeout, int *status)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct pollfd pfd;
	pid_t pid;
	int r, pfdn;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log,
					 O_WRONLY | O_APPEND | O_CREAT, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	r = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
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
 * The start of the log, on one line, for the report; e2fsck's banner and
 * "Pass N" lines are left out, so the first error shows.
 */
static void quote_log(const char *log, char *out, size_t len)
{
	char buf[8192], *line, *save = NULL;
	size_t j = strlen(out);
	bool first = true;
	ssize_t n;
	int fd = open(log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (line = strtok_r(buf, "\n", &save); line && j + 4 < len;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "e2fsck 1.", 9) ||
		    !strncmp(line, "Pass ", 5) || !*line)
			continue;
		const char *sep = first ? ": " : " | ";

		first = false;
		for (; *sep; sep++)
			out[j++] = *sep;
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

/* --check ext4: replay the journal (exit 0 or 1), then e2fsck -fn. */
static int check_ext4(const struct checker *ck, uint32_t timeout, bool *pass,
		      char *detail, size_t len)
{
	char *replay[] = {"e2fsck", "-p", "-E", "journal_only", ck->img, NULL};
	char *fsck[] = {"e2fsck", "-fn", ck->img, NULL};
	int st, r;

	r = run(replay, ck->log, ck->env, timeout, &st);
	if (r == -ETIMEDOUT) {
		snprintf(detail, len, "journal replay timed out");
		return 0;
	}
	if (r < 0)
		return r;
	/* run() set st: it returns 0 only after waitpid().  The
	   analyzer thinks posix_spawnp() may return < 0. */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) {
		snprintf(detail, len,
			 "journal replay (e2fsck -p -E journal_only) "
			 "exit %d",
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128);
		quote_log(ck->log, detail, len);
		return 0;
	}
	clear_log(ck, false);
	r = run(fsck, ck->log, ck->env, timeout, &st);
	if (r == -ETIMEDOUT) {
		snprintf(detail, len, "e2fsck -fn timed out");
		return 0;
	}
	if (r < 0)
		return r;
	*pass = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (*pass)
		return 0;
	snprintf(detail, len, "e2fsck -fn exit %d",
		 WIFEXITED(st) ? WEXITSTATUS(st) : 128);
	quote_log(ck->log, detail, len);
	return 0;
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
	r = run(argv, ck->log, ck->env, o->timeout, &st);
	free(cmd);
	if (r == -ETIMEDOUT) {
		snprintf(detail, len, "timed out after %u s", o->timeout);
		return 0;
	}
	if (r < 0)
		return r;
	/* As in check_ext4(): run() set st. */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	*pass = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (*pass)
		return 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		snprintf(detail, len, "check command not found");
		quote_log(ck->log, detail, len);
		return -ENOENT;
	}
	if (WIFEXITED(st))
		snprintf(detail, len, "exit %d", WEXITSTATUS(st));
	else
		snprintf(detail, len, "killed by signal %d", WTERMSIG(st));
	quote_log(ck->log, detail, len);
	return 0;
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
	if (o->ext4)
		return check_ext4(ck, o->timeout, pass, detail, len);
	return check_cmd(ck, o, pass, detail, len);
}
