/* SPDX-License-Identifier: MIT */
/*
 * captive.c: captive mode, `loopd serve --run CMD` (captive.h): loopd
 * serves while CMD runs, and exits with it, as nbdkit --run does
 * (nbdkit-captive(1)), so that one command line serves a disk to one
 * client and cleans up after it:
 *
 *     loopd serve --run 'qemu-img convert -n src.qcow2 "$uri"' disk.img
 *
 * This file owns the private socket, starting CMD, and its end; serve.c
 * decides when each happens.
 *
 * V5. CMD runs with /bin/sh -c once the server is ready (after
 *     signal_ready(): its first connection is answered), never before.
 *     Its environment is loopd's (without LISTEN_* and NOTIFY_SOCKET, V1
 *     and V4) plus nbdkit's names: uri and nbd (the same URI of the
 *     first listener, nbds:// under TLS, for the default export), port
 *     (its TCP port, or empty), unixsocket (its path, or empty),
 *     exportname (empty: the URI's default export) and tls (1 for
 *     --tls=on, 2 for --tls=require; unset when off).  Its signal mask
 *     and dispositions are the defaults, not loopd's; it keeps loopd's
 *     stdin, stdout, stderr and process group (Ctrl-C reaches both), and
 *     no other fd (every fd of loopd is close-on-exec).  Without -U, -l
 *     or inherited sockets, loopd listens on a private socket,
 *     $TMPDIR/loopd-run.XXXXXX/sock (directory 0700, socket 0600), removed
 *     with its directory at exit.
 * V6. When CMD exits, the server stops as on SIGTERM (E4: in-flight
 *     requests finish, every export is synced) and loopd exits with CMD's
 *     status, 128+N if signal N killed it (as a shell reports it); or 1
 *     if the stop failed (a failed final sync, a latched export, an
 *     unfinished trace), which CMD could not have seen.
 * V7. When the server stops first (SIGINT or SIGTERM, --exit-with-parent,
 *     a failure), CMD's shell gets SIGTERM as the stop begins; after the
 *     stop, loopd waits for it for up to --shutdown-timeout seconds (or
 *     until another signal), then sends SIGKILL.  The exit status is
 *     still V6's.
 */
#include "serve/captive.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h> /* environ, with _GNU_SOURCE */

#include "util/log.h"

void captive_init(struct captive *c)
{
	c->pid = 0;
	c->pidfd = -1;
	c->status = 1;
	c->dir[0] = 0;
	c->sock[0] = 0;
}

/* ---------------------------------------------------------------- */
/* The private socket (V5).                                          */

int captive_private(struct captive *c)
{
	const char *t = getenv("TMPDIR");

	if (!t || !*t)
		t = "/tmp";
	if ((size_t)snprintf(c->dir, sizeof c->dir, "%s/loopd-run.XXXXXX", t) >=
		    sizeof c->dir ||
	    !mkdtemp(c->dir)) {
		log_msg("--run: cannot make a private directory in %s: %s", t,
			errno ? strerror(errno) : "path too long");
		c->dir[0] = 0;
		return -1;
	}
	snprintf(c->sock, sizeof c->sock, "%s/sock", c->dir);
	return 0;
}

void captive_private_remove(struct captive *c)
{
	if (!c->dir[0])
		return;
	unlink(c->sock); /* listen_close() did, unless we failed first */
	if (rmdir(c->dir) < 0)
		log_msg("--run: cannot remove %s: %s", c->dir, strerror(errno));
	c->dir[0] = 0;
}

/* ---------------------------------------------------------------- */
/* CMD.                                                              */

/* nbdkit's names (V5), which CMD gets from loopd and never from its own
   environment. */
static const char *const vars[] = {"uri",	 "nbd",	       "port",
				   "unixsocket", "exportname", "tls"};
#define N_VARS (sizeof vars / sizeof vars[0])

static bool is_var(const char *e)
{
	size_t i, n;

	for (i = 0; i < N_VARS; i++) {
		n = strlen(vars[i]);
		if (!strncmp(e, vars[i], n) && e[n] == '=')
			return true;
	}
	return false;
}

/* V5: set[] gets "name=value" for each variable CMD gets; returns how
   many. */
static size_t make_vars(char set[N_VARS][1300], const struct listener *l,
			enum tls_mode tls)
{
	const char *scheme = tls != TLS_OFF ? "nbds" : "nbd";
	size_t k = 0;

	snprintf(set[k++], sizeof set[0], "uri=%s%s", scheme, l->uri + 3);
	snprintf(set[k++], sizeof set[0], "nbd=%s%s", scheme, l->uri + 3);
	if (l->tcp)
		snprintf(set[k++], sizeof set[0], "port=%d", l->port);
	else
		snprintf(set[k++], sizeof set[0], "port=");
	snprintf(set[k++], sizeof set[0], "unixsocket=%s",
		 l->tcp ? "" : l->unix_path);
	snprintf(set[k++], sizeof set[0], "exportname=");
	if (tls != TLS_OFF)
		snprintf(set[k++], sizeof set[0], "tls=%d",
			 tls == TLS_REQUIRE ? 2 : 1);
	return k;
}

static int spawn(struct captive *c, const char *cmd, char **env)
{
	char sh[] = "sh", dash_c[] = "-c";
	char *argv[] = {sh, dash_c, (char *)cmd, NULL};
	posix_spawnattr_t attr;
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	r = posix_spawnattr_init(&attr);
	if (r)
		return r;
	/* V5: not loopd's blocked SIGINT/SIGTERM, nor its ignored SIGPIPE. */
	r = posix_spawnattr_setsigmask(&attr, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&attr, &all);
	if (!r)
		r = posix_spawnattr_setflags(
			&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawn(&c->pid, "/bin/sh", NULL, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	return r;
}

int captive_start(struct captive *c, const char *cmd, const struct listener *l,
		  enum tls_mode tls)
{
	char set[N_VARS][1300];
	size_t n = 0, k = 0, i, n_set = make_vars(set, l, tls);
	char **env;
	int r;

	while (environ[n])
		n++;
	env = calloc(n + N_VARS + 1, sizeof *env);
	if (!env) {
		log_msg("out of memory");
		return -1;
	}
	for (i = 0; i < n; i++)
		if (!is_var(environ[i]))
			env[k++] = environ[i];
	for (i = 0; i < n_set; i++)
		env[k++] = set[i];
	/* A SIGCHLD ignored by whoever started loopd would reap CMD for us,
	   and its status would be lost. */
	signal(SIGCHLD, SIG_DFL);
	r = spawn(c, cmd, env);
	free(env);
	if (r) {
		log_msg("--run: cannot start /bin/sh: %s", strerror(r));
		c->pid = 0;
		return -1;
	}
	/* A pidfd, not SIGCHLD: the signalfd stays SIGINT and SIGTERM's. */
	c->pidfd = pidfd_open(c->pid, 0);
	if (c->pidfd < 0) {
		log_msg("--run: pidfd_open: %s", strerror(errno));
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
		return -1;
	}
	log_msg("--run: started the command (PID %d) with %s", (int)c->pid,
		set[0]);
	return 0;
}

int captive_fd(const struct captive *c)
{
	return c->pid ? c->pidfd : -1;
}

/* True once CMD has exited (its pidfd is readable). */
static bool exited(const struct captive *c)
{
	struct pollfd p = {.fd = c->pidfd, .events = POLLIN};

	return poll(&p, 1, 0) == 1;
}

void captive_kill(struct captive *c)
{
	if (!c->pid || exited(c))
		return;
	log_msg("--run: sending SIGTERM to the command (PID %d)", (int)c->pid);
	if (pidfd_send_signal(c->pidfd, SIGTERM, NULL, 0) < 0)
		log_msg("--run: cannot signal PID %d: %s", (int)c->pid,
			strerror(errno));
}

/* Wait (bounded) for the pidfd; false on a timeout or a signal. */
static bool wait_exit(struct captive *c, int sfd, int timeout_ms)
{
	struct pollfd p[2] = {{.fd = c->pidfd, .events = POLLIN},
			      {.fd = sfd, .events = POLLIN}};
	int n;

	do
		n = poll(p, 2, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n > 0 && p[0].revents;
}

int captive_wait(struct captive *c, int sfd, int timeout_ms)
{
	const char *name;
	int ws, r;

	if (!c->pid)
		return c->status;
	if (!wait_exit(c, sfd, timeout_ms)) {
		log_msg("--run: the command (PID %d) has not exited; sending "
			"SIGKILL",
			(int)c->pid);
		pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
	}
	do
		r = waitpid(c->pid, &ws, 0);
	while (r < 0 && errno == EINTR);
	close(c->pidfd);
	c->pidfd = -1;
	c->pid = 0;
	if (r < 0) {
		log_msg("--run: waitpid: %s", strerror(errno));
		c->status = 1;
	} else if (WIFSIGNALED(ws)) {
		/* V6: as a shell reports it. */
		c->status = 128 + WTERMSIG(ws);
		name = sigabbrev_np(WTERMSIG(ws));
		log_msg("--run: the command was killed by signal %d (SIG%s)",
			WTERMSIG(ws), name ? name : "?");
	} else {
		c->status = WEXITSTATUS(ws);
		log_msg("--run: the command exited with status %d", c->status);
	}
	return c->status;
}
