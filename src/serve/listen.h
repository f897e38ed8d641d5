/* SPDX-License-Identifier: MIT */
/*
 * listen.h: the listening side of `loopd serve` (listen.c): the Unix and
 * TCP listeners and the URIs clients reach them by, the accept loop, and
 * one short-lived thread per connection for its handshake.
 */
#ifndef LOOPD_SERVE_LISTEN_H
#define LOOPD_SERVE_LISTEN_H

#include <stdbool.h>

#include "serve/config.h"
#include "serve/systemd.h"
#include "engine/server.h"

struct listener {
	int fd;
	bool tcp;
	bool inherited; /* from socket activation: never unlinked (V3) */
	const char *fdname; /* inherited: its LISTEN_FDNAMES name, or "" */
	int port; /* TCP: the port bound */
	char *unix_path; /* Unix: the path (unlinked at exit unless inherited) */
	char uri[1200]; /* how a client reaches it */
};

struct listeners {
	struct listener l[MAX_LISTENERS];
	unsigned int n;
};

/*
 * Bind every listener cfg wants, --unix ones first (with
 * cfg->socket_mode), then --listen ones.  0, or -1 once a one-line error
 * has been logged.
 */
int listen_open(struct listeners *ls, const struct serve_config *cfg);

/*
 * Serve the sockets taken from socket activation (V3) instead.  0, or -1
 * once a one-line error has been logged.
 */
int listen_adopt(struct listeners *ls, const struct inherited *in);

/* Log "listening on URI" for each, the first with a client to try. */
void listen_log(const struct listeners *ls, const struct server *srv);

/*
 * Serve until SIGINT or SIGTERM: poll the listeners, the signalfd sfd and
 * child_fd (the pidfd of --run's CMD, or -1); accept each connection,
 * note its peer for the counters, and hand it to a handshake
 * thread, which drops it after handshake_timeout seconds of stalling (0:
 * never).  0 once a signal was taken, 1 once child_fd is readable (CMD
 * has exited), -1 if poll() failed (logged).
 */
int listen_loop(struct listeners *ls, struct server *srv,
		unsigned int handshake_timeout, int sfd, int child_fd);

/* Close the listeners and unlink the Unix sockets. */
void listen_close(struct listeners *ls);

#endif /* LOOPD_SERVE_LISTEN_H */
