/* SPDX-License-Identifier: MIT */
/*
 * captive.h: `loopd serve --run CMD` (captive.c): the private socket, CMD
 * started with nbdkit's variables, and its end.  Rules V5-V7.
 */
#ifndef LOOPD_SERVE_CAPTIVE_H
#define LOOPD_SERVE_CAPTIVE_H

#include <limits.h>
#include <sys/types.h>

#include "serve/listen.h"
#include "serve/tls.h"

struct captive {
	pid_t pid; /* CMD's shell; 0 before it starts and once reaped */
	int pidfd; /* readable once it has exited; -1 */
	int status; /* its exit status once reaped (V6) */
	char dir[PATH_MAX]; /* the private socket's directory, or "" */
	char sock[PATH_MAX + 8]; /* dir/sock */
};

/* An empty struct captive: no CMD, no private socket. */
void captive_init(struct captive *c);

/*
 * V5: make a private directory ($TMPDIR or /tmp, mode 0700) for --run's
 * socket, c->sock.  0, or -1 once a one-line error has been logged.
 */
int captive_private(struct captive *c);

/* Remove the private socket and its directory, if made. */
void captive_private_remove(struct captive *c);

/*
 * V5: start cmd with /bin/sh -c, with the variables of listener l (the
 * first one) in its environment.  0, or -1 once a one-line error has been
 * logged.
 */
int captive_start(struct captive *c, const char *cmd, const struct listener *l,
		  enum tls_mode tls);

/* The fd that becomes readable when CMD exits, or -1 if none runs. */
int captive_fd(const struct captive *c);

/* V7: the server stops first: send CMD SIGTERM (if it still runs). */
void captive_kill(struct captive *c);

/*
 * Wait for CMD to exit, for at most timeout_ms or until the signalfd sfd
 * (-1: none) is readable; then SIGKILL it.  Reap it and log how it ended.
 * Returns its exit status as a shell gives it (V6: 128+N when killed by
 * signal N), or 1 if CMD never started.  Again after that: the same.
 */
int captive_wait(struct captive *c, int sfd, int timeout_ms);

#endif /* LOOPD_SERVE_CAPTIVE_H */
