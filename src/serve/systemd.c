/* SPDX-License-Identifier: MIT */
/*
 * systemd.c: systemd's two service protocols, spoken with no systemd
 * library (systemd.h): socket activation, as sd_listen_fds(3) describes
 * it, and readiness notification, as sd_notify(3) does.  qemu-nbd and
 * nbdkit speak the same, so the same units and tools start all three.
 *
 * V1. LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are read first thing in
 *     cmd_serve(), before any fork (a daemon has another PID), and are for
 *     loopd only if LISTEN_PID is its own PID; otherwise they are
 *     ignored, with one line in the log.  Either way all three are
 *     unset once read, so that no child (the CMD of --run) takes the
 *     sockets for its own.
 * V2. Sockets passed to loopd are taken exactly as given or not at all:
 *     LISTEN_FDS must be a number from 1 to MAX_LISTENERS, each of the
 *     fds 3..3+N-1 a listening stream socket (SO_ACCEPTCONN) of AF_UNIX,
 *     AF_INET or AF_INET6, and LISTEN_FDNAMES, if set, must name each one.
 *     Anything else is a one-line error and exit status 1: never a silent
 *     fallback to the default port.  Each fd is made close-on-exec and
 *     non-blocking (accept_one() in listen.c takes EAGAIN as "nothing").
 * V3. Inherited sockets stay systemd's: loopd never binds, chmods or
 *     unlinks them (--socket-mode does not apply), -U and -l cannot be
 *     added to them (config.c), and no default listener is opened.
 * V4. NOTIFY_SOCKET is read and unset at start, like LISTEN_*.  loopd
 *     sends "READY=1" (with MAINPID and STATUS) once, at the moment it
 *     would tell a launching process that it is ready (signal_ready():
 *     listening, workers started, pidfile written, privileges dropped),
 *     and "STOPPING=1" when the stop begins.  The address is an absolute
 *     path or an abstract name written "@name"; a malformed one is a
 *     one-line error at start.  A failed send is logged, never fatal.
 */
#include "serve/systemd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

#define SD_LISTEN_FDS_START 3

/* ---------------------------------------------------------------- */
/* Socket activation (V1-V3).                                        */

/* A plain decimal number from 1 to max: no sign, blank or suffix. */
static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!s || !*s || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || *out == 0 || *out > max ? -1 : 0;
}

/* V2: fd must be an open, listening stream socket of a family we serve. */
static int check_fd(const char *fds, int fd)
{
	int type = 0, domain = 0, acc = 0, fl;
	socklen_t l = sizeof type;

	if (fcntl(fd, F_GETFD) < 0) {
		log_msg("LISTEN_FDS=%s: fd %d is not open", fds, fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0) {
		log_msg("LISTEN_FDS=%s: fd %d is not a socket", fds, fd);
		return -1;
	}
	l = sizeof domain;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0 ||
	    (domain != AF_UNIX && domain != AF_INET && domain != AF_INET6) ||
	    type != SOCK_STREAM) {
		log_msg("LISTEN_FDS=%s: fd %d is not a Unix, IPv4 or IPv6 "
			"stream socket",
			fds, fd);
		return -1;
	}
	l = sizeof acc;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0 || !acc) {
		log_msg("LISTEN_FDS=%s: fd %d is not a listening socket", fds,
			fd);
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fl < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		log_msg("LISTEN_FDS=%s: fd %d: %s", fds, fd, strerror(errno));
		return -1;
	}
	return 0;
}

/* V2: LISTEN_FDNAMES, if set, names every socket, separated by ':'. */
static int take_names(struct inherited *in, const char *names)
{
	const char *p;
	unsigned int i, n = 1;

	if (!names)
		return 0;
	for (p = names; *p; p++)
		n += *p == ':';
	if (n != in->n) {
		log_msg("LISTEN_FDNAMES=%s: expected %u name%s separated by "
			"':', one per socket of LISTEN_FDS",
			names, in->n, in->n == 1 ? "" : "s");
		return -1;
	}
	for (p = names, i = 0; i < n; i++) {
		size_t len = strcspn(p, ":");

		if (len >= sizeof in->name[i]) {
			log_msg("LISTEN_FDNAMES: name %u is longer than %zu "
				"bytes",
				i + 1, sizeof in->name[i] - 1);
			return -1;
		}
		memcpy(in->name[i], p, len);
		in->name[i][len] = 0;
		p += len + (p[len] == ':');
	}
	return 0;
}

static int take(struct inherited *in, const char *pid_s, const char *fds,
		const char *names)
{
	unsigned long pid, n;
	unsigned int i;

	if (parse_count(pid_s, 0x7fffffff, &pid) < 0) {
		log_msg("LISTEN_PID=%s: expected a process ID", pid_s);
		return -1;
	}
	if ((pid_t)pid != getpid()) {
		/* V1: for another process; say so, since it is not ours. */
		if (fds)
			log_msg("ignoring LISTEN_FDS=%s: LISTEN_PID=%s is not "
				"this process (%d)",
				fds, pid_s, (int)getpid());
		return 0;
	}
	if (!fds) {
		log_msg("LISTEN_PID is loopd's PID but LISTEN_FDS is not set");
		return -1;
	}
	if (parse_count(fds, MAX_LISTENERS, &n) < 0) {
		log_msg("LISTEN_FDS=%s: expected a number of sockets from 1 "
			"to %d",
			fds, MAX_LISTENERS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		in->fd[i] = SD_LISTEN_FDS_START + (int)i;
		if (check_fd(fds, in->fd[i]) < 0)
			return -1;
	}
	in->n = (unsigned int)n;
	return take_names(in, names);
}

int sd_listen_take(struct inherited *in)
{
	const char *pid_s = getenv("LISTEN_PID");
	int r = 0;

	*in = (struct inherited){.n = 0};
	if (pid_s)
		r = take(in, pid_s, getenv("LISTEN_FDS"),
			 getenv("LISTEN_FDNAMES"));
	/* V1: read once, and gone for every child. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}

/* ---------------------------------------------------------------- */
/* Readiness (V4).                                                   */

static struct sockaddr_un notify_sa;
static socklen_t notify_len; /* 0: no NOTIFY_SOCKET */
static char notify_name[sizeof notify_sa.sun_path];

int sd_notify_take(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t len;

	if (!e)
		return 0;
	len = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || len < 2 ||
	    len >= sizeof notify_sa.sun_path) {
		log_msg("NOTIFY_SOCKET=%s: expected the absolute path of a "
			"Unix datagram socket, or @NAME for an abstract one",
			e);
		return -1;
	}
	memcpy(notify_name, e, len + 1);
	notify_sa.sun_family = AF_UNIX;
	memcpy(notify_sa.sun_path, e, len);
	if (e[0] == '@')
		notify_sa.sun_path[0] = 0; /* abstract: exactly len bytes */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	unsetenv("NOTIFY_SOCKET");
	return 0;
}

void sd_notify(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int fd, n;

	if (!notify_len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof msg)
		n = (int)strlen(msg);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    sendto(fd, msg, (size_t)n, MSG_NOSIGNAL,
		   (const struct sockaddr *)&notify_sa, notify_len) != n)
		log_msg("NOTIFY_SOCKET=%s: cannot send \"%.*s\": %s",
			notify_name, (int)strcspn(msg, "\n"), msg,
			strerror(errno));
	if (fd >= 0)
		close(fd);
}
