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
#include "serve/listen.h"
#include "serve/server.h"
#include "util/io.h"
#include "util/size.h"
#include "engine/worker.h"

static struct listeners listeners;
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

	if (listen_open(&listeners, &cfg) < 0)
		return 1;

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
	listen_log(&listeners, &srv);

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

	if (listen_loop(&listeners, &srv, cfg.handshake_timeout, sfd, rec) < 0)
		return 1;

	/* Graceful stop (E6). */
	log_msg("stopping: finishing in-flight requests (up to %u s; a "
		"second signal closes the clients at once)",
		cfg.shutdown_timeout);
	server_stop(&srv); /* H9: handshakes still going are refused */
	listen_close(&listeners);
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
