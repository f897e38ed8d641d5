/* SPDX-License-Identifier: MIT */
/*
 * serve.c: `loopd serve` (serve.h): the order in which the server is
 * put together (socket activation -> config -> daemon -> signals ->
 * exports -> recorder -> listeners -> workers -> pidfile -> privileges ->
 * ready -> --run's CMD -> accept loop), and the graceful stop (E4): the
 * grace period, the exports' final sync and the exit status, which under
 * --run is CMD's (V6, V7 in captive.c).
 *
 * Start-up order matters for users: the daemon forks before it opens
 * anything (a backend may start threads, which a fork would lose), but it
 * keeps the terminal's stderr and the launching process waits for its
 * readiness: everything that can fail because of the command line (bad
 * option, missing file, file in use, busy port) still reaches the
 * terminal as one line and a non-zero exit, and the launching process
 * exits 0 only once the server is listening, so `loopd serve ... &&
 * client` works.
 *
 * Errors: each step logs one line and returns -1; cmd_serve() returns 1
 * (closing the exports opened so far, until the workers start), leaving
 * to main() the end of the process.
 */
#include "serve/serve.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/dirty.h"
#include "engine/export.h"
#include "engine/inject.h"
#include "engine/recorder.h"
#include "engine/sched.h"
#include "engine/server.h"
#include "engine/snapshot.h"
#include "engine/stats.h"
#include "engine/worker.h"
#include "nbd/nbd.h"
#include "serve/captive.h"
#include "serve/config.h"
#include "serve/control.h"
#include "serve/daemon.h"
#include "serve/listen.h"
#include "serve/snapshots.h"
#include "serve/systemd.h"
#include "serve/tls.h"
#include "util/log.h"
#include "util/size.h"

/* Static, not on cmd_serve()'s stack: detached handshake threads may
   still use it while the process ends. */
static struct server srv;
/* The control channel (control.c); stopped by serve_stop, or by
   cmd_serve after a failed start. */
static struct control *ctl;

/* ---------------------------------------------------------------- */
/* Start.                                                            */

/* The server's settings from the command line, and its TLS credentials. */
static int setup_server(const struct serve_config *cfg)
{
	char err[512];

	srv.n_queues = cfg->n_queues;
	srv.busy_poll_us = cfg->busy_poll_us;
	srv.max_conns = cfg->max_conns;
	log_verbose = cfg->verbose;
	if (cfg->tls_mode != TLS_OFF) {
		srv.tls = tls_ctx_new(&cfg->tls, err, sizeof err);
		if (!srv.tls) {
			log_msg("%s", err);
			return -1;
		}
		srv.tls_require = cfg->tls_mode == TLS_REQUIRE;
	}
	return 0;
}

static bool name_used(const char *name)
{
	size_t i;

	for (i = 0; i < srv.n_exports; i++)
		if (!strcmp(srv.exports[i]->name, name))
			return true;
	return false;
}

/* The export name of NAME=SPEC, or the backend's default for SPEC. */
static const char *name_of(const char *arg, const char **spec, char *name,
			   size_t len)
{
	const char *eq = strchr(arg, '=');
	const struct backend_ops *ops;

	/* NAME=SPEC, unless the '=' is part of a path. */
	if (eq && !memchr(arg, '/', (size_t)(eq - arg)) && eq != arg) {
		snprintf(name, len, "%.*s", (int)(eq - arg), arg);
		*spec = eq + 1;
		return name;
	}
	*spec = arg;
	name[0] = 0;
	ops = backend_find(arg);
	if (ops)
		ops->default_name(arg, name, len);
	return name;
}

/*
 * The export's checkpoints (engine/dirty.h): kept in --checkpoint-dir as
 * NAME.checkpoints, or next to a file as FILE.checkpoints; in memory only
 * for other backends without --checkpoint-dir.
 */
static int open_checkpoints(const struct serve_config *cfg, struct export *exp,
			    const char *spec)
{
	char side[PATH_MAX], note[256], err[512], safe[NBD_MAX_STRING + 2];
	const char *sidecar = NULL;
	struct stat st;
	size_t i;

	if (exp->read_only)
		return 0;
	if (cfg->checkpoint_dir) {
		snprintf(safe, sizeof safe, "%s",
			 *exp->name ? exp->name : "default");
		for (i = 0; safe[i]; i++)
			if (safe[i] == '/')
				safe[i] = '_';
		if ((size_t)snprintf(side, sizeof side, "%s/%s.checkpoints",
				     cfg->checkpoint_dir,
				     safe) >= sizeof side) {
			log_msg("--checkpoint-dir: path too long");
			return -1;
		}
		sidecar = side;
	} else if (!strcmp(exp->b->ops->name, "file") && stat(spec, &st) == 0 &&
		   S_ISREG(st.st_mode)) {
		/* A device's checkpoints are kept in memory only: never a
		   file beside it in /dev. */
		if ((size_t)snprintf(side, sizeof side, "%s.checkpoints",
				     spec) >= sizeof side) {
			log_msg("%s: path too long", spec);
			return -1;
		}
		sidecar = side;
	}
	if (dirty_set_open(exp->size, cfg->checkpoint_gran, sidecar,
			   &exp->dirty, note, sizeof note, err,
			   sizeof err) < 0) {
		log_msg("export \"%s\": checkpoints: %s", exp->name, err);
		return -1;
	}
	if (*note)
		log_msg("export \"%s\": checkpoints: %s", exp->name, note);
	return 0;
}

/* Open FILE or NAME=SPEC with the options common to every export. */
static int add_export(const struct serve_config *cfg, const char *arg)
{
	struct backend_opts bo = cfg->exp.bo;
	char err[512], name[NBD_MAX_STRING + 2];
	struct export *exp, **exports;
	struct backend *b;

	name_of(arg, &bo.spec, name, sizeof name);
	if (!*bo.spec) {
		log_msg("%s: empty file name", arg);
		return -1;
	}
	if (strlen(name) > NBD_MAX_STRING) {
		log_msg("%s: export name longer than %d bytes", arg,
			NBD_MAX_STRING);
		return -1;
	}
	if (name_used(name)) {
		log_msg("%s: export name \"%s\" is used twice (use NAME=FILE)",
			arg, name);
		return -1;
	}
	if (backend_open(&bo, &b, err, sizeof err) < 0) {
		log_msg("%s", err);
		return -1;
	}
	exports = /* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers */
		realloc(srv.exports, (srv.n_exports + 1) * sizeof *srv.exports);
	if (exports)
		srv.exports = exports; /* the old array is gone either way */
	if (!exports ||
	    export_create(name, b, cfg->exp.order, cfg->exp.flush, &exp) < 0) {
		log_msg("out of memory");
		b->ops->close(b);
		return -1;
	}
	srv.exports[srv.n_exports++] = exp;
	return open_checkpoints(cfg, exp, bo.spec);
}

static int open_exports(const struct serve_config *cfg)
{
	unsigned int i;

	for (i = 0; i < cfg->n_files; i++)
		if (add_export(cfg, cfg->files[i]) < 0)
			return -1;
	return 0;
}

/* --record: config.c has checked that there is one export. */
static int open_recorder(const struct serve_config *cfg, struct recorder **rec)
{
	char err[512];

	if (!cfg->record)
		return 0;
	if (recorder_open(cfg->record, srv.exports[0], rec, err, sizeof err) <
	    0) {
		log_msg("--record %s: %s", cfg->record, err);
		return -1;
	}
	srv.exports[0]->rec = *rec;
	log_msg("recording into %s (flush mode %s); mark with: loopd trace "
		"mark %s LABEL",
		cfg->record, flush_mode_name(cfg->exp.flush), cfg->record);
	return 0;
}

/* The control socket, TRACE.ctl and the stats file (Q5-Q7). */
static int open_control(const struct serve_config *cfg, struct recorder *rec)
{
	struct control_config cc = {
		.path = cfg->control,
		.pidfile = cfg->pidfile,
		.record = cfg->record,
		.stats_file = cfg->stats_file,
		.stats_interval = cfg->stats_interval,
		.stats_format = cfg->stats_format,
	};

	return control_open(&ctl, &cc, &srv, rec);
}

static void log_warnings(const struct serve_config *cfg)
{
	if (cfg->exp.flush == FLUSH_UNSAFE)
		log_msg("warning: --flush=unsafe: FLUSH and FUA are "
			"acknowledged without syncing; a crash or power loss "
			"can lose acknowledged writes");
	if (inject_enabled)
		log_msg("warning: fault injection is on (testing only)");
}

static void log_exports(void)
{
	char sz[32];
	size_t i;

	for (i = 0; i < srv.n_exports; i++) {
		struct export *e = srv.exports[i];

		log_msg("serving %s (%s, %s%s) as export \"%s\"%s",
			e->description, size_format(e->size, sz, sizeof sz),
			e->b->info.how, e->read_only ? ", read-only" : "",
			e->name, i == 0 ? " (default)" : "");
	}
}

/* ---------------------------------------------------------------- */
/* Stop (E4).                                                        */

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
 * E4: wait for the workers to finish what is in flight, for at most the
 * grace period (--shutdown-timeout) or until a second signal; then close
 * whatever is left.  TLS relays get what remains of the period to pass on
 * the last replies.  -1 if poll() failed (logged).
 */
static int wait_workers(int sfd, unsigned int shutdown_timeout)
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
		if (n < 0) {
			log_msg("poll: %s", strerror(errno));
			return -1;
		}
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
	return 0;
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
		bool latched;
		int s = export_finish(e, &latched);

		if (s < 0) {
			log_msg("%s: fdatasync at exit failed: %s",
				e->description, strerror(-s));
			status = 1;
		}
		if (latched) {
			log_msg("%s: export \"%s\" latched after a failed sync "
				"or FUA write (R5): writes acknowledged "
				"before it may be lost",
				e->description, e->name);
			status = 1;
		}
	}
	return status;
}

/* W7: a clean stop writes the checkpoints' maps.  0 or -1 once logged. */
static int close_checkpoints(void)
{
	int r = 0;
	size_t i;

	for (i = 0; i < srv.n_exports; i++) {
		struct export *e = srv.exports[i];
		int s = dirty_set_save(e->dirty); /* freed with the export */

		if (s < 0) {
			log_msg("export \"%s\": cannot save its checkpoints: "
				"%s; they will read as wholly dirty",
				e->name, strerror(-s));
			r = -1;
		}
	}
	return r;
}

static void close_exports(void)
{
	size_t i;

	for (i = 0; i < srv.n_exports; i++)
		export_close(srv.exports[i]);
	free(srv.exports);
	srv.exports = NULL;
	srv.n_exports = 0;
}

/* After the first SIGINT/SIGTERM.  Returns the exit status. */
static int serve_stop(const struct serve_config *cfg, struct listeners *ls,
		      int sfd, struct recorder *rec)
{
	int status;

	log_msg("stopping: finishing in-flight requests (up to %u s; a "
		"second signal closes the clients at once)",
		cfg->shutdown_timeout);
	snapshots_stop(&srv); /* J4: no new snapshot; copies abandoned */
	sd_notify("STOPPING=1\nSTATUS=stopping"); /* V4 */
	server_stop(&srv); /* H9: handshakes still going are refused */
	listen_close(ls);
	workers_stop();
	if (wait_workers(sfd, cfg->shutdown_timeout) < 0)
		return 1;
	status = finish_exports();
	control_stop(ctl); /* Q6: the final figures; then the sockets go */
	ctl = NULL;
	if (close_checkpoints() < 0)
		status = 1;
	if (rec && recorder_close(rec) < 0) {
		log_msg("--record %s: could not finish the trace", cfg->record);
		status = 1;
	}
	close_exports(); /* after the recorder, which hashes them */
	if (cfg->pidfile)
		pidfile_remove(cfg->pidfile);
	log_msg("stopped");
	return status;
}

/* ---------------------------------------------------------------- */

/* V4: READY=1 for a service manager, with a status line. */
static void notify_ready(const struct listeners *ls)
{
	sd_notify("READY=1\nMAINPID=%d\nSTATUS=serving %zu export%s on %s",
		  (int)getpid(), srv.n_exports, srv.n_exports == 1 ? "" : "s",
		  ls->l[0].uri);
}

/* The listeners: systemd's (V3), or --unix, --listen and the private
   socket of --run (V5). */
static int open_listeners(struct serve_config *cfg, struct listeners *ls,
			  const struct inherited *in, struct captive *cap)
{
	if (cfg->private_socket) {
		if (captive_private(cap) < 0)
			return -1;
		cfg->unix_paths[cfg->n_unix++] = cap->sock;
	}
	if (listen_adopt(ls, in) < 0 || listen_open(ls, cfg) < 0)
		return -1;
	return 0;
}

/* From the accept loop to the exit status, with --run's CMD (V6, V7). */
static int serve_run(const struct serve_config *cfg, struct listeners *ls,
		     int sfd, struct recorder *rec, struct captive *cap)
{
	int r, status, cmd_status;

	r = listen_loop(ls, &srv, cfg->handshake_timeout, sfd, captive_fd(cap));
	if (r == 1)
		captive_wait(cap, -1, 0); /* V6: it ended; log how */
	else
		captive_kill(cap); /* V7: the server stops first */
	if (r < 0) {
		captive_wait(cap, sfd, (int)cfg->shutdown_timeout * 1000);
		return 1;
	}
	status = serve_stop(cfg, ls, sfd, rec);
	if (!cfg->run)
		return status;
	cmd_status = captive_wait(cap, sfd, (int)cfg->shutdown_timeout * 1000);
	if (status && cmd_status != status)
		log_msg("--run: exit status %d, not the command's %d: the stop "
			"failed",
			status, cmd_status);
	return status ? status : cmd_status; /* V6 */
}

/* J2: --snapshot-every needs --snapshot-dir for file exports; checked
   before anything listens.  0, or -1 once logged. */
static int check_snapshots(const struct serve_config *cfg)
{
	bool to_files;
	size_t i;

	for (i = 0; cfg->snapshot_every_ms && i < srv.n_exports; i++)
		if (snapshot_supported(srv.exports[i], &to_files) && to_files &&
		    !cfg->snapshot_dir) {
			log_msg("--snapshot-every: export \"%s\" takes its "
				"snapshots as files: give --snapshot-dir DIR",
				srv.exports[i]->name);
			return -1;
		}
	return 0;
}

/* J2: --snapshot-every, once the workers run. */
static int start_snapshots(const struct serve_config *cfg)
{
	struct snapshots_config sc = {
		.every_ms = cfg->snapshot_every_ms,
		.dir = cfg->snapshot_dir,
		.keep = cfg->snapshot_keep,
		.sync = cfg->snapshot_sync,
	};

	return snapshots_start(&srv, &sc);
}

/* cmd_serve() once the command line is parsed. */
static int serve(struct serve_config *cfg, struct listeners *ls,
		 const struct inherited *in, struct captive *cap, pid_t parent)
{
	struct recorder *rec = NULL;
	struct ids ids = {0};
	int r, sfd, status;

	if (setup_server(cfg) < 0)
		return 1;
	if ((cfg->user || cfg->group) &&
	    lookup_ids(cfg->user, cfg->group, &ids) < 0)
		return 1;
	/*
	 * Fork before opening anything: a backend may start threads (librados
	 * does), and they would not follow into the daemon, nor would they
	 * block the signals that this thread takes.  The daemon keeps
	 * stderr, and the launching process exits 1 unless it gets ready.
	 */
	if (!cfg->foreground) {
		r = daemonise(&status);
		if (r) /* 1: the launching process, done */
			return r < 0 ? 1 : status;
	}
	/* Signals are taken synchronously by this thread only: blocked
	   before any thread starts, which inherits the mask. */
	sfd = signals_block();
	if (sfd < 0)
		return 1;
	if (cfg->exit_with_parent && parent_watch(parent) < 0) /* V8 */
		return 1;
	/* Until the workers run, a failed start closes what it opened: an
	   RBD image left open keeps its watch on the cluster for 30 s. */
	if (open_exports(cfg) < 0 || check_snapshots(cfg) < 0 ||
	    open_recorder(cfg, &rec) < 0 || open_control(cfg, rec) < 0)
		goto fail_exports;
	log_warnings(cfg);
	if (open_listeners(cfg, ls, in, cap) < 0)
		goto fail_exports;
	log_exports();
	listen_log(ls, &srv);

	r = stats_init(&srv);
	if (r == 0)
		r = workers_start(&srv);
	if (r < 0) { /* workers may have started: nothing is closed */
		log_msg("cannot start workers: %s", strerror(-r));
		return 1;
	}
	if (control_start(ctl) < 0 || start_snapshots(cfg) < 0)
		return 1;
	if (cfg->pidfile && pidfile_write(cfg->pidfile) < 0)
		return 1;
	/* Everything that needs root is done: sockets, files, workers. */
	if ((cfg->user || cfg->group) && drop_privileges(&ids) < 0)
		return 1;
	/* V8: a change of credentials cleared the death signal. */
	if (cfg->exit_with_parent && (cfg->user || cfg->group) &&
	    parent_watch(parent) < 0)
		return 1;
	signal_ready();
	notify_ready(ls);
	if (cfg->run &&
	    captive_start(cap, cfg->run, &ls->l[0], cfg->tls_mode) < 0) {
		serve_stop(cfg, ls, sfd, rec);
		return 1;
	}
	return serve_run(cfg, ls, sfd, rec, cap);

fail_exports:
	close_exports();
	return 1;
}

int cmd_serve(int argc, char **argv)
{
	/* Not on the stack: 40 KB of URIs, 8 KB of socket names. */
	static struct listeners ls;
	static struct inherited in;
	static struct captive cap;
	struct serve_config cfg;
	pid_t parent = getppid(); /* V8 */
	int r;

	/* V1, V4: before anything can fork (LISTEN_PID must be our PID),
	   and before the command line, which depends on the sockets. */
	if (sd_listen_take(&in) < 0 || sd_notify_take() < 0)
		return 1;
	r = config_parse(&cfg, argc, argv, in.n);
	if (r)
		return r < 0 ? 1 : 0; /* 1: --help was printed */
	captive_init(&cap);
	r = serve(&cfg, &ls, &in, &cap, parent);
	captive_private_remove(&cap); /* V5 */
	control_stop(ctl); /* a failed start: the sockets go (Q7) */
	ctl = NULL;
	return r;
}
