/* SPDX-License-Identifier: MIT */
/*
 * listen.c: the listeners of `loopd serve` (listen.h): Unix sockets
 * through util/io.c's unix_listen(), TCP on each address of HOST:PORT,
 * the sockets of socket activation (taken by systemd.c, V3), their URIs
 * and "listening on" hints, and the accept loop.  Each
 * handshake runs in its own short-lived thread, so a slow client cannot
 * hold up others; transmission goes to the workers.
 */
#include "serve/listen.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/worker.h"
#include "serve/handshake.h"
#include "serve/tls.h"
#include "util/io.h"
#include "util/log.h"

#define HOST_MAX 256 /* --listen HOST, with its NUL */
#define PORT_MAX 32

/* ---------------------------------------------------------------- */
/* Listeners.                                                        */

static int too_many(void)
{
	log_msg("too many listeners (max %d)", MAX_LISTENERS);
	return -1;
}

static int add_unix(struct listeners *ls, const char *path, mode_t mode)
{
	struct listener *l;
	int fd;

	if (ls->n == MAX_LISTENERS)
		return too_many();
	/* Created with --socket-mode, with no window in which a wider mode
	 * is visible; a stale socket of a dead server is replaced. */
	fd = unix_listen(path, mode, 0);
	if (fd == -ENAMETOOLONG)
		log_msg("%s: Unix socket path too long", path);
	else if (fd == -EADDRINUSE)
		log_msg("%s: in use by another server", path);
	else if (fd == -EEXIST)
		log_msg("%s: exists and is not a socket", path);
	else if (fd < 0)
		log_msg("%s: %s", path, strerror(-fd));
	if (fd < 0)
		return -1;
	l = &ls->l[ls->n++];
	*l = (struct listener){.fd = fd, .unix_path = strdup(path)};
	snprintf(l->uri, sizeof l->uri, "nbd+unix:///?socket=%s", path);
	return 0;
}

/* Split --listen HOST:PORT or [IPV6]:PORT into host and port. */
static int split_spec(const char *spec, char host[HOST_MAX],
		      char port[PORT_MAX])
{
	const char *colon;

	if (strlen(spec) >= HOST_MAX) {
		log_msg("--listen %s: too long", spec);
		return -1;
	}
	if (spec[0] == '[') {
		colon = strchr(spec, ']');
		if (!colon || colon[1] != ':') {
			log_msg("--listen %s: expected [IPV6]:PORT", spec);
			return -1;
		}
		snprintf(host, HOST_MAX, "%.*s", (int)(colon - spec - 1),
			 spec + 1);
		colon++;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || colon == spec) {
			log_msg("--listen %s: expected HOST:PORT", spec);
			return -1;
		}
		snprintf(host, HOST_MAX, "%.*s", (int)(colon - spec), spec);
	}
	snprintf(port, PORT_MAX, "%s", colon + 1);
	if (!*port || strspn(port, "0123456789") != strlen(port)) {
		log_msg("--listen %s: bad port", spec);
		return -1;
	}
	return 0;
}

/* The nbd:// URI and the port of the TCP listener l, from its bound
   address.  0, or -1 if it cannot be read. */
static int tcp_uri(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char h[NI_MAXHOST], p[NI_MAXSERV];

	memset(&ss, 0, sizeof ss); /* for the analyzer: getsockname fills it */
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p, sizeof p,
			NI_NUMERICHOST | NI_NUMERICSERV))
		return -1;
	l->tcp = true;
	l->port = (int)strtol(p, NULL, 10); /* NI_NUMERICSERV: digits */
	if (ss.ss_family == AF_INET6)
		snprintf(l->uri, sizeof l->uri, "nbd://[%s]:%s", h, p);
	else
		snprintf(l->uri, sizeof l->uri, "nbd://%s:%s", h, p);
	return 0;
}

/*
 * Listen on one address of a --listen.  0, or the errno that makes this
 * address unusable (the caller tries the next), or -1 once a fatal error
 * is logged.
 */
static int bind_tcp(struct listeners *ls, const char *spec,
		    const struct addrinfo *a)
{
	struct listener *l = &ls->l[ls->n];
	int fd, one = 1, err;

	fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
		    a->ai_protocol);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (a->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		err = errno;
		close(fd);
		return err;
	}
	*l = (struct listener){.fd = fd};
	if (tcp_uri(l) < 0) {
		log_msg("--listen %s: cannot read the bound address", spec);
		close(fd);
		return -1;
	}
	ls->n++;
	return 0;
}

/* Every address of HOST (port 0: the first only); the last must work. */
static int add_tcp(struct listeners *ls, const char *spec)
{
	char host[HOST_MAX], port[PORT_MAX];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai, *a;
	int r, err = 0;

	if (split_spec(spec, host, port) < 0)
		return -1;
	r = getaddrinfo(host, port, &hints, &ai);
	if (r) {
		log_msg("--listen %s: %s", spec, gai_strerror(r));
		return -1;
	}
	for (a = ai; a; a = a->ai_next) {
		err = ls->n == MAX_LISTENERS ? too_many()
					     : bind_tcp(ls, spec, a);
		if (err < 0)
			break;
		/* Port 0: the other addresses would get other ports. */
		if (!err && !strcmp(port, "0"))
			break;
	}
	freeaddrinfo(ai);
	if (err > 0)
		log_msg("--listen %s: %s", spec, strerror(err));
	return err ? -1 : 0;
}

int listen_open(struct listeners *ls, const struct serve_config *cfg)
{
	unsigned int i;

	for (i = 0; i < cfg->n_unix; i++)
		if (add_unix(ls, cfg->unix_paths[i], cfg->socket_mode) < 0)
			return -1;
	for (i = 0; i < cfg->n_tcp; i++)
		if (add_tcp(ls, cfg->tcp_specs[i]) < 0)
			return -1;
	return 0;
}

/* V3: the URI of an inherited Unix socket, from its bound address (an
   abstract one is written @NAME, as systemd does). */
static int unix_uri(struct listener *l)
{
	struct sockaddr_un sa;
	socklen_t sl = sizeof sa;
	size_t len;

	memset(&sa, 0, sizeof sa);
	if (getsockname(l->fd, (struct sockaddr *)&sa, &sl) < 0 ||
	    sl <= offsetof(struct sockaddr_un, sun_path))
		return -1;
	len = sl - offsetof(struct sockaddr_un, sun_path);
	if (sa.sun_path[0] == 0)
		sa.sun_path[0] = '@';
	else
		len = strnlen(sa.sun_path, len);
	l->unix_path = strndup(sa.sun_path, len);
	if (!l->unix_path)
		return -1;
	snprintf(l->uri, sizeof l->uri, "nbd+unix:///?socket=%s", l->unix_path);
	return 0;
}

int listen_adopt(struct listeners *ls, const struct inherited *in)
{
	unsigned int i;

	for (i = 0; i < in->n; i++) {
		struct listener *l = &ls->l[ls->n];
		int domain = 0;
		socklen_t dl = sizeof domain;

		if (ls->n == MAX_LISTENERS)
			return too_many();
		*l = (struct listener){.fd = in->fd[i],
				       .inherited = true,
				       .fdname = in->name[i]};
		if (getsockopt(l->fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) <
			    0 ||
		    (domain == AF_UNIX ? unix_uri(l) : tcp_uri(l)) < 0) {
			log_msg("inherited socket fd %d: cannot read its "
				"address: %s",
				l->fd, strerror(errno));
			return -1;
		}
		ls->n++;
	}
	return 0;
}

void listen_log(const struct listeners *ls, const struct server *srv)
{
	unsigned int i;

	for (i = 0; i < ls->n; i++) {
		const struct listener *l = &ls->l[i];
		/* With TLS the hint is the nbds:// form of the same URI. */
		char hint[sizeof l->uri + 1];

		snprintf(hint, sizeof hint, "%s%s", srv->tls ? "nbds" : "nbd",
			 l->uri + 3);
		if (l->inherited)
			log_msg("listening on inherited socket fd %d%s%s%s "
				"(%s)",
				l->fd, *l->fdname ? " \"" : "", l->fdname,
				*l->fdname ? "\"" : "", hint);
		else if (i > 0)
			log_msg("listening on %s", hint);
		else if (srv->tls)
			log_msg("listening on %s  (TLS %s; try: nbdinfo "
				"'%s%stls-certificates=DIR')",
				hint, srv->tls_require ? "required" : "offered",
				hint, l->tcp ? "/?" : "&");
		else if (l->tcp)
			log_msg("listening on %s  (try: qemu-img info %s  or  "
				"nbdinfo %s)",
				hint, hint, hint);
		else
			log_msg("listening on %s  (try: nbdinfo '%s')", hint,
				hint);
	}
}

void listen_close(struct listeners *ls)
{
	unsigned int i;

	for (i = 0; i < ls->n; i++) {
		close(ls->l[i].fd);
		if (ls->l[i].unix_path && !ls->l[i].inherited)
			unlink(ls->l[i].unix_path); /* V3: never systemd's */
		free(ls->l[i].unix_path);
		ls->l[i].unix_path = NULL;
	}
}

/* ---------------------------------------------------------------- */
/* Connections.                                                      */

struct hs_arg {
	struct server *srv;
	int fd;
	bool tcp;
	char peer[STATS_PEER_MAX];
};

/* Who is at the other end of fd, for the counters (N3): "ADDR:PORT",
   "[ADDR6]:PORT", or "unix pid N uid N" from the peer's credentials. */
static void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof ss;
	char a[INET6_ADDRSTRLEN];
	struct ucred cr;
	socklen_t cl = sizeof cr;

	snprintf(out, len, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		if (inet_ntop(AF_INET, &in->sin_addr, a, sizeof a))
			snprintf(out, len, "%s:%u", a, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
			(const struct sockaddr_in6 *)&ss;

		if (inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof a))
			snprintf(out, len, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else if (ss.ss_family == AF_UNIX &&
		   getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
		snprintf(out, len, "unix pid %d uid %u", (int)cr.pid,
			 (unsigned int)cr.uid);
	}
}

static void *handshake_thread(void *arg)
{
	struct hs_arg a = *(struct hs_arg *)arg;
	struct hs_result res;

	free(arg);
	if (handshake_run(a.fd, a.srv, &res) == 0) {
		memcpy(res.conn.peer, a.peer, sizeof res.conn.peer);
		/* Transmission has no idle limit: clients may sit idle. */
		struct timeval none = {0};

		setsockopt(a.fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
		setsockopt(a.fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
		if (res.tls) {
			/* The workers see plaintext; tls.c relays (L4). */
			int plain = tls_proxy_start(res.tls, a.fd);

			if (plain < 0) {
				log_msg("TLS relay: %s", strerror(-plain));
				server_params_put(&res.conn); /* H10 */
				atomic_fetch_sub(&a.srv->n_conns, 1);
				server_release(a.srv);
				return NULL;
			}
			a.fd = plain;
			a.tcp = false;
		}
		workers_add_conn(a.fd, &res.conn, a.tcp);
	} else {
		/* Free the slot first: the client may reconnect on EOF. */
		atomic_fetch_sub(&a.srv->n_conns, 1);
		close(a.fd);
	}
	return NULL;
}

/* Take a slot of --max-connections; false (and the client closed) if
   none is left. */
static bool take_slot(struct server *srv, int fd)
{
	if (srv->max_conns &&
	    atomic_fetch_add(&srv->n_conns, 1) >= srv->max_conns) {
		atomic_fetch_sub(&srv->n_conns, 1);
		log_msg("refusing a connection: %u already open "
			"(--max-connections)",
			srv->max_conns);
		close(fd);
		return false;
	}
	if (!srv->max_conns)
		atomic_fetch_add(&srv->n_conns, 1);
	return true;
}

static void accept_one(struct server *srv, const struct listener *l,
		       unsigned int handshake_timeout)
{
	struct hs_arg *a;
	pthread_attr_t attr;
	pthread_t t;
	int fd, r;

	fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_msg("accept: %s", strerror(errno));
		return;
	}
	if (!take_slot(srv, fd))
		return;
	/* A client that stalls in negotiation is dropped (its thread too). */
	if (handshake_timeout) {
		struct timeval tv = {.tv_sec = handshake_timeout};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	a = malloc(sizeof *a);
	if (!a) {
		close(fd);
		atomic_fetch_sub(&srv->n_conns, 1);
		return;
	}
	*a = (struct hs_arg){.srv = srv, .fd = fd, .tcp = l->tcp};
	peer_name(fd, a->peer, sizeof a->peer);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = pthread_create(&t, &attr, handshake_thread, a);
	pthread_attr_destroy(&attr);
	if (r) {
		log_msg("cannot start a connection thread: %s", strerror(r));
		free(a);
		close(fd);
		atomic_fetch_sub(&srv->n_conns, 1);
	}
}

int listen_loop(struct listeners *ls, struct server *srv,
		unsigned int handshake_timeout, int sfd, int child_fd)
{
	struct pollfd pfd[MAX_LISTENERS + 2];
	struct signalfd_siginfo si;
	unsigned int i, n = ls->n;

	for (;;) {
		for (i = 0; i < n; i++) {
			pfd[i].fd = ls->l[i].fd;
			pfd[i].events = POLLIN;
		}
		pfd[n].fd = sfd;
		pfd[n].events = POLLIN;
		pfd[n + 1].fd = child_fd;
		pfd[n + 1].events = POLLIN;
		pfd[n + 1].revents = 0;
		if (poll(pfd, n + 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_msg("poll: %s", strerror(errno));
			return -1;
		}
		if (pfd[n].revents) {
			/* Taken, so that only a second signal cuts the
			   grace period short (E4). */
			if (read(sfd, &si, sizeof si) < 0)
				log_msg("signalfd: %s", strerror(errno));
			return 0;
		}
		if (pfd[n + 1].revents)
			return 1; /* --run's CMD has exited (V6) */
		for (i = 0; i < n; i++)
			if (pfd[i].revents)
				accept_one(srv, &ls->l[i], handshake_timeout);
	}
}
