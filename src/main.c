/* SPDX-License-Identifier: MIT */
/*
 * main.c: command line, listeners, daemonising, signals.  The only file
 * that may exit().
 *
 * Start-up order matters for users: everything that can fail because of
 * the command line (bad option, missing file, file in use, busy port) is
 * checked in the foreground, before daemonising, so it reaches the
 * terminal as one line and a non-zero exit.  The launching process exits
 * only once the server is listening, so `loopd serve ... && client` works.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/export.h"
#include "nbd/handshake.h"
#include "engine/inject.h"
#include "util/log.h"
#include "trace/recorder.h"
#include "engine/sched.h"
#include "serve/config.h"
#include "serve/daemon.h"
#include "serve/server.h"
#include "util/io.h"
#include "util/size.h"
#include "engine/worker.h"

struct listener {
	int fd;
	bool tcp;
	char *unix_path; /* to unlink at exit */
	char uri[1200]; /* how a client reaches it */
};

static struct listener listeners[MAX_LISTENERS];
static unsigned int n_listeners;
static struct server srv;

static void usage_main(FILE *f)
{
	fprintf(f, "Usage: loopd COMMAND [OPTIONS]\n"
		   "\n"
		   "loopd serves a file as a block device over NBD, with exact "
		   "FLUSH/FUA durability.\n"
		   "\n"
		   "Commands:\n"
		   "  serve     serve files as NBD exports (see 'loopd serve "
		   "--help')\n"
		   "  trace     dump, summarise or mark a recorded trace\n"
		   "  crash     check every crash state of a recorded trace\n"
		   "\n"
		   "Options:\n"
		   "  -h, --help     show this help\n"
		   "  -V, --version  show the version\n"
		   "\n"
		   "Example:\n"
		   "  loopd serve --size 1G disk.img\n"
		   "  qemu-img info nbd://127.0.0.1:10809\n"
		   "\n"
		   "See loopd(1) and docs/ for the durability contract.\n");
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_msg("%s", buf);
	exit(1);
}

/* ---------------------------------------------------------------- */
/* Listeners.                                                        */

static void add_unix(const char *path, mode_t mode)
{
	struct listener *l = &listeners[n_listeners];
	int fd;

	if (n_listeners == MAX_LISTENERS)
		die("too many listeners (max %d)", MAX_LISTENERS);
	/* Created with --socket-mode, with no window in which a wider mode
	 * is visible; a stale socket of a dead server is replaced. */
	fd = unix_listen(path, mode, 0);
	if (fd == -ENAMETOOLONG)
		die("%s: Unix socket path too long", path);
	if (fd == -EADDRINUSE)
		die("%s: in use by another server", path);
	if (fd == -EEXIST)
		die("%s: exists and is not a socket", path);
	if (fd < 0)
		die("%s: %s", path, strerror(-fd));
	l->fd = fd;
	l->unix_path = strdup(path);
	snprintf(l->uri, sizeof l->uri, "nbd+unix:///?socket=%s", path);
	n_listeners++;
}

static void add_tcp(const char *spec)
{
	char host[256], port[32], *colon;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai, *a;
	int r, fd = -1, one = 1, err = 0;

	if (strlen(spec) >= sizeof host)
		die("--listen %s: too long", spec);
	if (spec[0] == '[') {
		const char *close_b = strchr(spec, ']');

		if (!close_b || close_b[1] != ':')
			die("--listen %s: expected [IPV6]:PORT", spec);
		snprintf(host, sizeof host, "%.*s", (int)(close_b - spec - 1),
			 spec + 1);
		snprintf(port, sizeof port, "%s", close_b + 2);
	} else {
		colon = strrchr(spec, ':');
		if (!colon || colon == spec)
			die("--listen %s: expected HOST:PORT", spec);
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
		snprintf(port, sizeof port, "%s", colon + 1);
	}
	if (!*port || strspn(port, "0123456789") != strlen(port))
		die("--listen %s: bad port", spec);
	r = getaddrinfo(host, port, &hints, &ai);
	if (r)
		die("--listen %s: %s", spec, gai_strerror(r));
	for (a = ai; a; a = a->ai_next) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		char h[NI_MAXHOST], p[NI_MAXSERV];
		struct listener *l;

		if (n_listeners == MAX_LISTENERS)
			die("too many listeners (max %d)", MAX_LISTENERS);
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (a->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof one);
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 ||
		    listen(fd, SOMAXCONN) < 0) {
			err = errno;
			close(fd);
			continue;
		}
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
		    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p,
				sizeof p, NI_NUMERICHOST | NI_NUMERICSERV))
			die("--listen %s: cannot read the bound address", spec);
		l = &listeners[n_listeners++];
		l->fd = fd;
		l->tcp = true;
		if (a->ai_family == AF_INET6)
			snprintf(l->uri, sizeof l->uri, "nbd://[%s]:%s", h, p);
		else
			snprintf(l->uri, sizeof l->uri, "nbd://%s:%s", h, p);
		err = 0;
		if (!port[0] || strcmp(port, "0") != 0)
			continue;
		/* Port 0: the other addresses would get other ports. */
		break;
	}
	freeaddrinfo(ai);
	if (err)
		die("--listen %s: %s", spec, strerror(err));
}

/* ---------------------------------------------------------------- */
/* Connections: each handshake runs in its own short-lived thread, so a
 * slow client cannot hold up others; transmission goes to the workers. */

struct hs_arg {
	int fd;
	bool tcp;
};

static void *handshake_thread(void *arg)
{
	struct hs_arg a = *(struct hs_arg *)arg;
	struct hs_result res;

	free(arg);
	if (handshake_run(a.fd, &srv, &res) == 0) {
		/* Transmission has no idle limit: clients may sit idle. */
		struct timeval none = {0};

		setsockopt(a.fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
		setsockopt(a.fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
		if (res.tls) {
			/* The workers see plaintext; tls.c relays (T4). */
			int plain = tls_proxy_start(res.tls, a.fd);

			if (plain < 0) {
				log_msg("TLS relay: %s", strerror(-plain));
				atomic_fetch_sub(&srv.n_conns, 1);
				server_release(&srv);
				return NULL;
			}
			a.fd = plain;
			a.tcp = false;
		}
		workers_add_conn(a.fd, &res, a.tcp);
	} else {
		/* Free the slot first: the client may reconnect on EOF. */
		atomic_fetch_sub(&srv.n_conns, 1);
		close(a.fd);
	}
	return NULL;
}

static void accept_one(struct listener *l, unsigned int handshake_timeout)
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
	if (srv.max_conns &&
	    atomic_fetch_add(&srv.n_conns, 1) >= srv.max_conns) {
		atomic_fetch_sub(&srv.n_conns, 1);
		log_msg("refusing a connection: %u already open "
			"(--max-connections)",
			srv.max_conns);
		close(fd);
		return;
	}
	if (!srv.max_conns)
		atomic_fetch_add(&srv.n_conns, 1);
	/* A client that stalls in negotiation is dropped (its thread too). */
	if (handshake_timeout) {
		struct timeval tv = {.tv_sec = handshake_timeout};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	a = malloc(sizeof *a);
	if (!a) {
		close(fd);
		atomic_fetch_sub(&srv.n_conns, 1);
		return;
	}
	a->fd = fd;
	a->tcp = l->tcp;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = pthread_create(&t, &attr, handshake_thread, a);
	pthread_attr_destroy(&attr);
	if (r) {
		log_msg("cannot start a connection thread: %s", strerror(r));
		free(a);
		close(fd);
		atomic_fetch_sub(&srv.n_conns, 1);
	}
}

static void add_export(struct export_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char err[512], *copy, *base;
	struct export *exp;
	size_t i;
	int r;

	/* NAME=FILE, unless the '=' is part of a path. */
	if (eq && !memchr(arg, '/', (size_t)(eq - arg)) && eq != arg) {
		copy = strndup(arg, (size_t)(eq - arg));
		o->path = eq + 1;
		o->name = copy;
	} else {
		copy = strdup(arg);
		base = basename(copy);
		o->path = arg;
		o->name = base;
	}
	if (!*o->path)
		die("%s: empty file name", arg);
	if (strlen(o->name) > 4096) /* the NBD limit for strings */
		die("%s: export name longer than 4096 bytes", arg);
	for (i = 0; i < srv.n_exports; i++)
		if (!strcmp(srv.exports[i]->name, o->name))
			die("%s: export name \"%s\" is used twice (use "
			    "NAME=FILE)",
			    arg, o->name);
	r = export_open(o, &exp, err, sizeof err);
	if (r < 0)
		die("%s", err);
	free(copy);
	srv.exports = /* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers */
		realloc(srv.exports, (srv.n_exports + 1) * sizeof *srv.exports);
	if (!srv.exports)
		die("out of memory");
	srv.exports[srv.n_exports++] = exp;
}

/* Milliseconds of the grace period left after start. */
static int grace_left(const struct timespec *start,
		      unsigned int shutdown_timeout)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)shutdown_timeout * 1000 -
	     ((long long)(now.tv_sec - start->tv_sec) * 1000 +
	      (now.tv_nsec - start->tv_nsec) / 1000000);
	return ms < 0 ? 0 : (int)ms;
}

/*
 * E6: wait for the workers to finish what is in flight, for at most the
 * grace period (--shutdown-timeout) or until a second signal; then close
 * whatever is left.  TLS relays get what remains of the period to pass on
 * the last replies.
 */
static void wait_workers(int sfd, unsigned int shutdown_timeout)
{
	struct pollfd pfd[2] = {{.fd = workers_done_fd(), .events = POLLIN},
				{.fd = sfd, .events = POLLIN}};
	struct signalfd_siginfo si;
	struct timespec start;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		n = poll(pfd, 2, grace_left(&start, shutdown_timeout));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("poll: %s", strerror(errno));
		if (pfd[0].revents)
			break;
		if (pfd[1].revents) {
			if (read(sfd, &si, sizeof si) < 0)
				log_msg("signalfd: %s", strerror(errno));
			log_msg("second signal: closing %u connections now",
				server_admitted(&srv));
		} else {
			log_msg("grace period of %u s is over: closing %u "
				"connections that have not taken their "
				"replies",
				shutdown_timeout, server_admitted(&srv));
		}
		workers_force();
		if (srv.tls)
			tls_proxy_abort();
		break;
	}
	workers_join();
	if (srv.tls && !tls_proxy_drain(grace_left(&start, shutdown_timeout))) {
		tls_proxy_abort();
		(void)tls_proxy_drain(1000);
	}
}

/*
 * Sync every export and say which ones no longer claim durability (R5):
 * after a latch the final fdatasync may "succeed" on data already lost,
 * so the exit status says it instead.  Returns the exit status.
 */
static int finish_exports(void)
{
	int status = 0;
	size_t i;

	for (i = 0; i < srv.n_exports; i++) {
		struct export *e = srv.exports[i];
		int s = export_sync(e);
		bool latched;

		if (s < 0) {
			log_msg("%s: fdatasync at exit failed: %s", e->path,
				strerror(-s));
			status = 1;
		}
		pthread_mutex_lock(&e->lock);
		latched = sched_failed(&e->sched);
		pthread_mutex_unlock(&e->lock);
		if (latched) {
			log_msg("%s: export \"%s\" latched after a failed sync "
				"or FUA write (R5): writes acknowledged "
				"before it may be lost",
				e->path, e->name);
			status = 1;
		}
	}
	return status;
}

static int cmd_serve(int argc, char **argv)
{
	struct serve_config cfg;
	struct ids ids = {0};
	unsigned int i;
	struct recorder *rec = NULL;
	char err[512], sz[32];
	int sfd, r, status;

	r = config_parse(&cfg, argc, argv);
	if (r)
		return r < 0 ? 1 : 0;
	srv.n_queues = cfg.n_queues;
	srv.max_conns = cfg.max_conns;
	srv.verbose = cfg.verbose;
	log_verbose = cfg.verbose;
	if (cfg.tls_mode != TLS_OFF) {
		srv.tls = tls_ctx_new(&cfg.tls, err, sizeof err);
		if (!srv.tls)
			die("%s", err);
		srv.tls_require = cfg.tls_mode == TLS_REQUIRE;
	}
	if ((cfg.user || cfg.group) &&
	    lookup_ids(cfg.user, cfg.group, &ids) < 0)
		return 1;
	for (i = 0; i < cfg.n_files; i++)
		add_export(&cfg.exp, cfg.files[i]);

	if (cfg.record) {
		if (srv.n_exports != 1)
			die("--record: serve exactly one FILE when recording");
		if (recorder_open(cfg.record, srv.exports[0], &rec, err,
				  sizeof err) < 0)
			die("--record %s: %s", cfg.record, err);
		srv.exports[0]->rec = rec;
		log_msg("recording into %s (flush mode %s); mark with: loopd "
			"trace mark %s LABEL",
			cfg.record, sched_flush_mode_name(cfg.exp.flush),
			cfg.record);
	}
	if (cfg.exp.flush == SCHED_FLUSH_UNSAFE)
		log_msg("warning: --flush=unsafe: FLUSH and FUA are "
			"acknowledged without syncing; a crash or power loss "
			"can lose acknowledged writes");
	if (inject_enabled)
		log_msg("warning: fault injection is on (testing only)");

	for (i = 0; i < cfg.n_unix; i++)
		add_unix(cfg.unix_paths[i], cfg.socket_mode);
	for (i = 0; i < cfg.n_tcp; i++)
		add_tcp(cfg.tcp_specs[i]);

	for (i = 0; i < srv.n_exports; i++) {
		struct export *e = srv.exports[i];

		log_msg("serving %s (%s, %s%s) as export \"%s\"%s", e->path,
			size_format(e->size, sz, sizeof sz),
			e->direct	? "O_DIRECT"
			: e->mem_backed ? "buffered, in memory"
					: "buffered",
			e->read_only ? ", read-only" : "", e->name,
			i == 0 ? " (default)" : "");
	}
	for (i = 0; i < n_listeners; i++) {
		/* With TLS the hint is the nbds:// form of the same URI. */
		char hint[sizeof listeners[i].uri + 1];

		snprintf(hint, sizeof hint, "%s%s", srv.tls ? "nbds" : "nbd",
			 listeners[i].uri + 3);
		if (i > 0)
			log_msg("listening on %s", hint);
		else if (srv.tls)
			log_msg("listening on %s  (TLS %s; try: nbdinfo "
				"'%s%stls-certificates=DIR')",
				hint, srv.tls_require ? "required" : "offered",
				hint, listeners[i].tcp ? "/?" : "&");
		else if (listeners[i].tcp)
			log_msg("listening on %s  (try: qemu-img info %s  or  "
				"nbdinfo %s)",
				hint, hint, hint);
		else
			log_msg("listening on %s  (try: nbdinfo '%s')", hint,
				hint);
	}

	if (!cfg.foreground) {
		r = daemonise(&status);
		if (r)
			return r < 0 ? 1 : status;
	}
	/* Signals are taken synchronously by this thread only. */
	sfd = signals_block();
	if (sfd < 0)
		return 1;

	r = workers_start(&srv);
	if (r < 0)
		die("cannot start workers: %s", strerror(-r));
	if (cfg.pidfile && pidfile_write(cfg.pidfile) < 0)
		return 1;
	/* Everything that needs root is done: sockets, files, workers. */
	if ((cfg.user || cfg.group) && drop_privileges(&ids) < 0)
		return 1;
	signal_ready();

	for (;;) {
		struct pollfd pfd[MAX_LISTENERS + 2];

		for (i = 0; i < n_listeners; i++) {
			pfd[i].fd = listeners[i].fd;
			pfd[i].events = POLLIN;
		}
		pfd[n_listeners].fd = sfd;
		pfd[n_listeners].events = POLLIN;
		pfd[n_listeners + 1].fd = rec ? recorder_ctl_fd(rec) : -1;
		pfd[n_listeners + 1].events = POLLIN;
		pfd[n_listeners + 1].revents = 0;
		if (poll(pfd, n_listeners + 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (pfd[n_listeners].revents) {
			struct signalfd_siginfo si;

			/* Taken, so that only a second signal cuts the
			   grace period short (E6). */
			if (read(sfd, &si, sizeof si) < 0)
				log_msg("signalfd: %s", strerror(errno));
			break;
		}
		if (pfd[n_listeners + 1].revents)
			recorder_ctl_handle(rec);
		for (i = 0; i < n_listeners; i++)
			if (pfd[i].revents)
				accept_one(&listeners[i],
					   cfg.handshake_timeout);
	}

	/* Graceful stop (E6). */
	log_msg("stopping: finishing in-flight requests (up to %u s; a "
		"second signal closes the clients at once)",
		cfg.shutdown_timeout);
	server_stop(&srv); /* H9: handshakes still going are refused */
	for (i = 0; i < n_listeners; i++) {
		close(listeners[i].fd);
		if (listeners[i].unix_path)
			unlink(listeners[i].unix_path);
	}
	workers_stop();
	wait_workers(sfd, cfg.shutdown_timeout);
	r = finish_exports();
	if (rec && recorder_close(rec) < 0) {
		log_msg("--record %s: could not finish the trace", cfg.record);
		r = 1;
	}
	if (cfg.pidfile)
		pidfile_remove(cfg.pidfile);
	log_msg("stopped");
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("loopd %s\n", LOOPD_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (!strcmp(argv[1], "crash"))
		return cmd_crash(argc - 1, argv + 1);
	log_msg("unknown command '%s' (try 'loopd --help')", argv[1]);
	return 1;
}
