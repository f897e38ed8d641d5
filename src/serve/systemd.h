/* SPDX-License-Identifier: MIT */
/*
 * systemd.h: systemd's two service protocols, with no systemd library
 * (systemd.c): socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES)
 * and readiness notification (NOTIFY_SOCKET).  Rules V1-V4.
 */
#ifndef LOOPD_SERVE_SYSTEMD_H
#define LOOPD_SERVE_SYSTEMD_H

#include "serve/config.h"

/* The listening sockets loopd was started with (fds 3..3+n-1). */
struct inherited {
	int fd[MAX_LISTENERS];
	char name[MAX_LISTENERS][256]; /* LISTEN_FDNAMES, or "" */
	unsigned int n;
};

/*
 * V1, V2: take the sockets that LISTEN_PID and LISTEN_FDS pass to this
 * process, checked and made close-on-exec and non-blocking, and unset
 * the three variables.  Must run before any fork.  0 (in->n is 0 when
 * none were passed), or -1 once a one-line error has been logged.
 */
int sd_listen_take(struct inherited *in);

/*
 * V4: read NOTIFY_SOCKET and unset it.  0 (also when it is not set), or
 * -1 once a one-line error has been logged (a malformed address).
 */
int sd_notify_take(void);

/*
 * V4: send one notification ("READY=1\nSTATUS=...") to the socket taken
 * by sd_notify_take(); nothing if there was none.  A failure is logged,
 * never fatal.
 */
void sd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* LOOPD_SERVE_SYSTEMD_H */
