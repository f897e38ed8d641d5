/* SPDX-License-Identifier: MIT */
/*
 * control.c: the control channel (control.h): the server side of
 * `loopd ctl` (serve/ctl.c), TRACE.ctl for `loopd trace mark`, and
 * --stats-file.  One thread of its own polls the sockets, a stop eventfd
 * and the stats file's clock; it never runs on a worker, and the data
 * path never waits for it (the counters are read as N3 in
 * engine/stats.c says).
 *
 * Q1. One request per connection: one line of at most CONTROL_LINE_MAX
 *     bytes, ending in a newline: a command, then its arguments after one
 *     space.  The reply is "ok\n" followed by the command's output, or one
 *     line "error: MESSAGE\n"; then the server closes the connection.  A
 *     line that is too long, has no newline, or names no command gets the
 *     error line, and the server serves on.
 * Q2. Bounded.  Clients are served one at a time by the control thread:
 *     a client has 1 s to send its line and 5 s for each send of the reply
 *     to go out.  A stuck client holds the control channel for that long,
 *     never a worker or the accept loop.
 * Q3. Only the server's owner.  The sockets are made mode 0600 (through the
 *     umask, so no wider mode is ever visible), and a client whose
 *     SO_PEERCRED uid is neither 0 nor the server's effective uid gets
 *     "error: refused" and nothing else.
 * Q4. Commands live in one table, commands[] below: "mark LABEL",
 *     "stats [text|json|prometheus]", "checkpoint [--delete] [--export
 *     EXPORT] NAME" and "checkpoints [--export EXPORT]" (Q9).  A command
 *     is added there, and to ctl.c's table for the command line, never
 *     elsewhere; the list of commands in the unknown-command error comes
 *     from the table.
 * Q5. TRACE.ctl.  While recording, the same thread serves TRACE.ctl, where
 *     the whole line is the label of a mark and the reply is "ok\n": the
 *     protocol `loopd trace mark` has always spoken, so it keeps working.
 *     It is made and removed with the control socket.
 * Q6. The stats file.  At start, every --stats-interval seconds and once
 *     more at the stop, the document (statsdoc.c) is written to a new file
 *     in FILE's directory (mode 0644, for collectors running as other
 *     users), which is then renamed over FILE: a reader sees a whole
 *     document, never a torn one.  A failure is logged once per errno and
 *     the serving goes on; its recovery is logged too.
 * Q7. The socket's path: --control PATH, or by default the pidfile's path
 *     with its ".pid" replaced by ".ctl" (".ctl" appended when it does not
 *     end in ".pid"); no pidfile, no default.  A stale socket (no server
 *     answers on it) is replaced; a live one, or a file that is not a
 *     socket, is refused: an error for --control, one warning line for
 *     the default, which then serves without a control socket.  The
 *     sockets are removed at exit.
 * Q9. Checkpoints (engine/dirty.h).  "checkpoint NAME" makes one on the
 *     export (--export EXPORT, by default the default export) under the
 *     export's lock, so that it splits the writes received exactly (W1 in
 *     engine/dirty.c), then persists the names outside any lock; a failed
 *     persist is an error line (and a log line), the checkpoint staying in
 *     memory, where a crash may lose it (W6).  "--delete NAME" forgets one
 *     (connections reading it keep it until they close) and persists.
 *     "checkpoints" answers one line "NAME DIRTY_BYTES" per checkpoint, in
 *     creation order.  A checkpoint NAME is one word, the line's last;
 *     EXPORT is what lies between "--export " and it.  Each refusal is one
 *     error line: no such export, a read-only export (it has no
 *     checkpoints), a bad name, a name that exists, DIRTY_MAPS_MAX
 *     already, no such checkpoint.
 * Q10. "snapshot" (J1 in serve/snapshots.c) runs on a thread of its own
 *     that takes the connection over (see cmd_snapshot), so that a
 *     snapshot's drain and copy never hold the control channel.
 */
#include "serve/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "engine/dirty.h"
#include "engine/recorder.h"
#include "serve/snapshots.h"
#include "util/clock.h"
#include "util/io.h"
#include "util/log.h"

#define RECV_TIMEOUT_S 1 /* Q2 */
#define SEND_TIMEOUT_S 5 /* Q2 */
#define LABEL_MAX 4096 /* TRACE_MARK_MAX, what a trace keeps */

struct control {
	struct server *srv;
	struct recorder *rec;
	int fd; /* the control socket, or -1 */
	int mark_fd; /* TRACE.ctl, or -1 (Q5) */
	int stop_fd; /* eventfd: stop the thread */
	char *path, *mark_path;
	char *stats_file;
	unsigned int interval; /* seconds */
	enum stats_format format;
	int file_err; /* Q6: the errno last logged, 0 when fine */
	int path_err; /* Q7: the default path could not be used */
	uint64_t start_ns; /* CLOCK_REALTIME */
	pthread_t thread;
	bool running;
	char msg[512]; /* a command's error line, built (Q1) */
	/* Q10: snapshots running on threads of their own. */
	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_cond;
	unsigned int jobs;
};

/* ---------------------------------------------------------------- */
/* Commands (Q4).                                                    */

/*
 * A command: 0 once it has replied, -1 with *err (the error line), or 1
 * when it has taken the connection over (Q10: it replies and closes it).
 */
struct command {
	const char *name;
	int (*fn)(struct control *c, int fd, const char *args,
		  const char **err);
};

static int reply(int fd, const char *head, const char *body, size_t len)
{
	int r = send_full(fd, head, strlen(head), len ? MSG_MORE : 0);

	if (r == 0 && len)
		r = send_full(fd, body, len, 0);
	return r;
}

static int reply_error(int fd, const char *msg)
{
	char line[512];

	snprintf(line, sizeof line, "error: %.500s\n", msg);
	return reply(fd, line, NULL, 0);
}

/* Q5: TRACE.ctl's whole line is the label, which may be empty. */
static int do_mark(struct control *c, int fd, const char *label,
		   const char **err)
{
	if (!c->rec) {
		*err = "not recording (mark needs loopd serve --record TRACE)";
		return -1;
	}
	if (strlen(label) > LABEL_MAX) {
		*err = "mark: the label must be at most 4096 bytes";
		return -1;
	}
	recorder_mark(c->rec, label);
	(void)reply(fd, "ok\n", NULL, 0); /* a client gone is its business */
	return 0;
}

static int cmd_mark(struct control *c, int fd, const char *label,
		    const char **err)
{
	if (!*label) {
		*err = "mark: needs a LABEL";
		return -1;
	}
	return do_mark(c, fd, label, err);
}

static int do_stats(struct control *c, int fd, const char *args,
		    const char **err)
{
	enum stats_format f = STATS_TEXT;
	size_t len;
	char *doc;
	int i;

	if (*args) {
		for (i = 0; i < STATS_FORMATS; i++)
			if (!strcmp(args, stats_format_names[i]))
				break;
		if (i == STATS_FORMATS) {
			*err = "stats: expected text, json or prometheus";
			return -1;
		}
		f = (enum stats_format)i;
	}
	if (statsdoc_render(c->srv, c->start_ns, f, &doc, &len) < 0) {
		*err = "stats: out of memory";
		return -1;
	}
	(void)reply(fd, "ok\n", doc, len); /* a client gone is its business */
	free(doc);
	return 0;
}

/* A client's bytes for an error line: printable, at most max of them. */
static const char *shown(const char *s, char *out, size_t max)
{
	size_t i;

	for (i = 0; i < max && s[i]; i++)
		out[i] = s[i] >= ' ' && s[i] <= '~' ? s[i] : '?';
	out[i] = 0;
	return out;
}

/*
 * Q9: the export of "[--export EXPORT] REST": EXPORT ends at the last
 * space when a REST must follow (more), else at the end; without
 * --export, the default export.  *args is moved to REST.  NULL with
 * c->msg set.
 */
static struct export *checkpoint_export(struct control *c, const char *cmd,
					const char **args, bool more)
{
	const char *a = *args, *end;
	struct export *exp;
	size_t len;
	char s[68];

	if (strncmp(a, "--export ", 9))
		return server_find_export(c->srv, "", 0);
	a += 9;
	end = more ? strrchr(a, ' ') : a + strlen(a);
	if (!end) {
		snprintf(c->msg, sizeof c->msg,
			 "%s: expected [--delete] [--export EXPORT] NAME", cmd);
		return NULL;
	}
	len = (size_t)(end - a);
	exp = server_find_export(c->srv, a, len);
	if (!exp) {
		snprintf(c->msg, sizeof c->msg, "%s: no export named \"%s%s\"",
			 cmd, shown(a, s, len < 64 ? len : 64),
			 len > 64 ? "..." : "");
		return NULL;
	}
	*args = *end ? end + 1 : end;
	return exp;
}

/* Q9: the export's checkpoints, or NULL with c->msg (read-only). */
static struct dirty_set *checkpoint_set(struct control *c, const char *cmd,
					const struct export *exp)
{
	if (!exp->dirty)
		snprintf(c->msg, sizeof c->msg,
			 "%s: export \"%.100s\" is read-only: it has no "
			 "checkpoints",
			 cmd, exp->name);
	return exp->dirty;
}

/* Q9: "checkpoint [--delete] [--export EXPORT] NAME". */
static int cmd_checkpoint(struct control *c, int fd, const char *args,
			  const char **err)
{
	bool del = !strncmp(args, "--delete ", 9);
	struct dirty_set *ds;
	struct export *exp;
	const char *name;
	char s[DIRTY_NAME_MAX + 4];
	int r;

	*err = c->msg;
	if (del)
		args += 9;
	if (!(exp = checkpoint_export(c, "checkpoint", &args, true)))
		return -1;
	if (!(ds = checkpoint_set(c, "checkpoint", exp)))
		return -1;
	name = args;
	if (!*name || strchr(name, ' ') || !strncmp(name, "--", 2)) {
		snprintf(c->msg, sizeof c->msg,
			 "checkpoint: expected [--delete] [--export EXPORT] "
			 "NAME");
		return -1;
	}
	if (del) {
		r = dirty_delete(ds, name);
	} else {
		pthread_mutex_lock(&exp->lock); /* Q9: W1 in engine/dirty.c */
		r = dirty_create(ds, name);
		pthread_mutex_unlock(&exp->lock);
	}
	shown(name, s, DIRTY_NAME_MAX);
	switch (r) {
	case 0:
		break;
	case -EINVAL:
		snprintf(c->msg, sizeof c->msg,
			 "checkpoint: bad name \"%.64s%s\" (1 to %d bytes of "
			 "A-Z a-z 0-9 . _ @ : + -)",
			 s, strlen(s) > 64 ? "..." : "", DIRTY_NAME_MAX);
		return -1;
	case -EEXIST:
		snprintf(c->msg, sizeof c->msg,
			 "checkpoint: \"%s\" exists on export \"%.100s\"", s,
			 exp->name);
		return -1;
	case -ENOSPC:
		snprintf(
			c->msg, sizeof c->msg,
			"checkpoint: export \"%.100s\" has %d checkpoints, the "
			"most it may have (delete one first)",
			exp->name, DIRTY_MAPS_MAX);
		return -1;
	case -ENOENT:
		snprintf(
			c->msg, sizeof c->msg,
			"checkpoint: no checkpoint \"%s\" on export \"%.100s\"",
			s, exp->name);
		return -1;
	default:
		snprintf(c->msg, sizeof c->msg, "checkpoint: %s", strerror(-r));
		return -1;
	}
	r = dirty_set_persist(ds); /* Q9: outside the lock */
	if (r) {
		log_msg("export \"%s\": checkpoint %s %s, but its names could "
			"not be saved: %s (a crash may %s)",
			exp->name, s, del ? "deleted" : "made", strerror(-r),
			del ? "bring it back" : "lose it");
		snprintf(c->msg, sizeof c->msg,
			 "checkpoint: \"%s\" %s, but the checkpoint file "
			 "could not be written: %s (a crash may %s)",
			 s, del ? "deleted" : "made", strerror(-r),
			 del ? "bring it back" : "lose it");
		return -1;
	}
	(void)reply(fd, "ok\n", NULL, 0); /* a client gone is its business */
	return 0;
}

/* A growing text for "checkpoints". */
struct list_out {
	char *buf;
	size_t len, cap;
	bool nomem;
};

static void list_one(const char *name, uint64_t dirty_bytes, void *opaque)
{
	struct list_out *o = opaque;
	size_t need = strlen(name) + 24;
	char *nb;
	int n;

	if (o->nomem)
		return;
	if (o->len + need > o->cap) {
		nb = realloc(o->buf, o->cap + need + 1024);
		if (!nb) {
			o->nomem = true;
			return;
		}
		o->buf = nb;
		o->cap += need + 1024;
	}
	n = snprintf(o->buf + o->len, o->cap - o->len, "%s %llu\n", name,
		     (unsigned long long)dirty_bytes);
	if (n > 0)
		o->len += (size_t)n;
}

/* Q9: "checkpoints [--export EXPORT]": "NAME DIRTY_BYTES" lines. */
static int cmd_checkpoints(struct control *c, int fd, const char *args,
			   const char **err)
{
	struct list_out o = {0};
	struct dirty_set *ds;
	struct export *exp;

	*err = c->msg;
	if (!(exp = checkpoint_export(c, "checkpoints", &args, false)))
		return -1;
	if (*args) {
		snprintf(c->msg, sizeof c->msg,
			 "checkpoints: expected [--export EXPORT]");
		return -1;
	}
	if (!(ds = checkpoint_set(c, "checkpoints", exp)))
		return -1;
	dirty_list(ds, list_one, &o);
	if (o.nomem) {
		free(o.buf);
		*err = "checkpoints: out of memory";
		return -1;
	}
	(void)reply(fd, "ok\n", o.buf, o.len); /* a client gone: its own */
	free(o.buf);
	return 0;
}

/*
 * Q10.  A snapshot may wait long (J1: its drain, its copy), and a
 * control channel that waited with it would answer nothing else (Q2).  So
 * "snapshot" runs on a thread of its own, which takes the connection over,
 * replies and closes it; the control thread serves on.  control_stop()
 * waits for these threads; by then the schedule has abandoned running
 * copies and the workers have drained every write (J4), so they end.
 */
struct snapjob {
	struct control *c;
	int fd;
	char args[];
};

static void linger_close(int fd);

static void *snapjob_main(void *arg)
{
	struct snapjob *j = arg;
	struct control *c = j->c;
	char *out = NULL, err[512];
	size_t len = 0;

	if (snapshots_command(c->srv, j->args, &out, &len, err, sizeof err) < 0)
		(void)reply_error(j->fd, err);
	else
		(void)reply(j->fd, "ok\n", out,
			    len); /* a client gone: its own */
	free(out);
	linger_close(j->fd);
	free(j);
	pthread_mutex_lock(&c->jobs_lock);
	c->jobs--;
	pthread_cond_broadcast(&c->jobs_cond);
	pthread_mutex_unlock(&c->jobs_lock);
	return NULL;
}

/* J1 (serve/snapshots.c): "snapshot [--export NAME] [--sync] [--no-wait]
   DEST", on a thread of its own (Q10). */
static int cmd_snapshot(struct control *c, int fd, const char *args,
			const char **err)
{
	size_t n = strlen(args) + 1;
	struct snapjob *j = malloc(sizeof *j + n);
	pthread_attr_t attr;
	pthread_t t;
	int r;

	*err = "snapshot: out of memory";
	if (!j)
		return -1;
	j->c = c;
	j->fd = fd;
	memcpy(j->args, args, n);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&c->jobs_lock);
	r = pthread_create(&t, &attr, snapjob_main, j);
	if (!r)
		c->jobs++;
	pthread_mutex_unlock(&c->jobs_lock);
	pthread_attr_destroy(&attr);
	if (r) {
		free(j);
		*err = "snapshot: cannot start a thread";
		return -1;
	}
	return 1;
}

/* Q4: the one table. */
static const struct command commands[] = {
	{"mark", cmd_mark},
	{"stats", do_stats},
	{"checkpoint", cmd_checkpoint},
	{"checkpoints", cmd_checkpoints},
	{"snapshot", cmd_snapshot},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Q1: run one request line. */
/* Q1: 1 when a command took the connection over (Q10), else 0. */
static int dispatch(struct control *c, int fd, char *line)
{
	char msg[160], names[96] = "";
	const char *err = NULL, *args = "";
	char *sp = strchr(line, ' ');
	size_t i;

	if (sp) {
		*sp = 0;
		args = sp + 1;
	}
	for (i = 0; i < N_COMMANDS; i++)
		if (!strcmp(line, commands[i].name))
			break;
	if (i == N_COMMANDS) {
		for (i = 0; i < 40 && line[i]; i++) /* the client's bytes */
			if (line[i] < ' ' || line[i] > '~')
				line[i] = '?';
		for (i = 0; i < N_COMMANDS; i++) /* Q4: from the table */
			snprintf(names + strlen(names),
				 sizeof names - strlen(names), "%s%s",
				 i ? ", " : "", commands[i].name);
		snprintf(msg, sizeof msg,
			 "unknown command \"%.40s\" (commands: %s)", line,
			 names);
		(void)reply_error(fd, msg);
		return 0;
	}
	switch (commands[i].fn(c, fd, args, &err)) {
	case 1:
		return 1;
	case -1:
		(void)reply_error(fd, err);
		break;
	default:
		break;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Clients (Q1-Q3, Q5).                                              */

/* Q3: root, or the server's own user. */
static bool allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* Q1: one line, without its newline, into line; false if there is none. */
static bool read_line(int fd, char *line, size_t max)
{
	size_t len = 0;
	ssize_t n;
	char *nl;

	while (len < max) {
		n = recv(fd, line + len, max - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = 0;
	nl = memchr(line, '\n', len);
	if (!nl)
		return false;
	*nl = 0;
	return true;
}

/*
 * Q1: close without losing the reply.  Closing a socket with unread bytes
 * (a line too long) resets it, and the client would lose the error line:
 * end our side first, then take what the client still sends (bounded by
 * the receive timeout and DRAIN_MAX) until it closes.
 */
#define DRAIN_MAX (64 * 1024)

static void linger_close(int fd)
{
	char buf[4096];
	size_t got = 0;
	ssize_t n;

	shutdown(fd, SHUT_WR);
	while (got < DRAIN_MAX && (n = recv(fd, buf, sizeof buf, 0)) > 0)
		got += (size_t)n;
	close(fd);
}

static void serve_client(struct control *c, int lfd, bool mark_only)
{
	struct timeval rt = {.tv_sec = RECV_TIMEOUT_S},
		       st = {.tv_sec = SEND_TIMEOUT_S};
	static char line[CONTROL_LINE_MAX + 1];
	const char *err = NULL;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof rt);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof st);
	if (!allowed(fd)) { /* Q3 */
		(void)reply_error(fd, "refused: not the server's user");
	} else if (!read_line(fd, line, CONTROL_LINE_MAX)) {
		(void)reply_error(fd, "expected one line ending in a newline, "
				      "of at most 4200 bytes");
	} else if (mark_only) { /* Q5 */
		if (do_mark(c, fd, line, &err) < 0)
			(void)reply_error(fd, err);
	} else if (dispatch(c, fd, line) == 1) {
		return; /* Q10: its thread closes it */
	}
	linger_close(fd);
}

/* ---------------------------------------------------------------- */
/* The stats file (Q6).                                              */

static void file_failed(struct control *c, const char *what, int err)
{
	if (c->file_err != err)
		log_msg("--stats-file %s: %s: %s (serving goes on)",
			c->stats_file, what, strerror(err));
	c->file_err = err;
}

static void write_stats_file(struct control *c)
{
	char *tmp = NULL, *doc = NULL;
	size_t len;
	int fd, r;

	if (statsdoc_render(c->srv, c->start_ns, c->format, &doc, &len) < 0) {
		file_failed(c, "building the document", ENOMEM);
		return;
	}
	if (asprintf(&tmp, "%s.XXXXXX", c->stats_file) < 0) {
		free(doc);
		file_failed(c, "building the document", ENOMEM);
		return;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		file_failed(c, "creating a temporary file", errno);
		goto out;
	}
	r = fchmod(fd, 0644) < 0 ? -errno : write_full(fd, doc, len);
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, c->stats_file) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		file_failed(c, "writing", -r);
		goto out;
	}
	if (c->file_err)
		log_msg("--stats-file %s: written again", c->stats_file);
	c->file_err = 0;
out:
	free(tmp);
	free(doc);
}

/* ---------------------------------------------------------------- */
/* The thread.                                                       */

static void *control_main(void *arg)
{
	struct control *c = arg;
	uint64_t next = 0, now;
	struct pollfd pfd[3];
	int timeout;

	if (c->stats_file)
		next = clock_ns(CLOCK_MONOTONIC) +
		       (uint64_t)c->interval * 1000000000u;
	for (;;) {
		pfd[0] = (struct pollfd){.fd = c->stop_fd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = c->fd, .events = POLLIN};
		pfd[2] = (struct pollfd){.fd = c->mark_fd, .events = POLLIN};
		timeout = -1;
		if (c->stats_file) {
			now = clock_ns(CLOCK_MONOTONIC);
			timeout = now >= next
					  ? 0
					  : (int)((next - now) / 1000000u) + 1;
		}
		if (poll(pfd, 3, timeout) < 0 && errno != EINTR) {
			log_msg("control: poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[1].revents)
			serve_client(c, c->fd, false);
		if (pfd[2].revents)
			serve_client(c, c->mark_fd, true);
		if (c->stats_file && clock_ns(CLOCK_MONOTONIC) >= next) {
			write_stats_file(c);
			next = clock_ns(CLOCK_MONOTONIC) +
			       (uint64_t)c->interval * 1000000000u;
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------- */
/* Open, start, stop.                                                */

/* Q7: PIDFILE with ".pid" replaced by ".ctl", or ".ctl" appended. */
static char *default_path(const char *pidfile)
{
	size_t n = strlen(pidfile);
	char *p = NULL;

	if (n > 4 && !strcmp(pidfile + n - 4, ".pid")) {
		if (asprintf(&p, "%.*s.ctl", (int)(n - 4), pidfile) < 0)
			return NULL;
	} else if (asprintf(&p, "%s.ctl", pidfile) < 0) {
		return NULL;
	}
	return p;
}

static const char *listen_error(int r)
{
	switch (r) {
	case -ENAMETOOLONG:
		return "path too long for a Unix socket";
	case -EADDRINUSE:
		return "a server is already listening there";
	case -EEXIST:
		return "a file that is not a socket is in the way";
	default:
		return strerror(-r);
	}
}

int control_open(struct control **out, const struct control_config *cc,
		 struct server *srv, struct recorder *rec)
{
	struct control *c = calloc(1, sizeof *c);
	int r;

	*out = c;
	if (!c) {
		log_msg("out of memory");
		return -1;
	}
	c->srv = srv;
	c->rec = rec;
	pthread_mutex_init(&c->jobs_lock, NULL);
	pthread_cond_init(&c->jobs_cond, NULL);
	c->fd = c->mark_fd = c->stop_fd = -1;
	c->interval = cc->stats_interval;
	c->format = cc->stats_format;
	c->start_ns = clock_ns(CLOCK_REALTIME);
	if (cc->stats_file && !(c->stats_file = strdup(cc->stats_file)))
		goto out_nomem;
	if (cc->path)
		c->path = strdup(cc->path);
	else if (cc->pidfile)
		c->path = default_path(cc->pidfile);
	if ((cc->path || cc->pidfile) && !c->path)
		goto out_nomem;
	if (cc->record && asprintf(&c->mark_path, "%s.ctl", cc->record) < 0) {
		c->mark_path = NULL;
		goto out_nomem;
	}
	if (c->mark_path) { /* Q5: as --record always made it */
		r = unix_listen(c->mark_path, 0600, SOCK_NONBLOCK);
		if (r < 0) {
			log_msg("--record: %s: %s", c->mark_path,
				listen_error(r));
			free(c->mark_path);
			c->mark_path = NULL;
			return -1;
		}
		c->mark_fd = r;
	}
	if (c->path) {
		r = unix_listen(c->path, 0600, SOCK_NONBLOCK); /* Q3 */
		if (r < 0 && cc->path) {
			log_msg("--control %s: %s", c->path, listen_error(r));
			free(c->path);
			c->path = NULL;
			return -1;
		}
		if (r < 0) /* Q7: the default is a convenience */
			c->path_err = r; /* said by control_start() */
		else
			c->fd = r;
	}
	return 0;

out_nomem:
	log_msg("out of memory");
	return -1;
}

int control_start(struct control *c)
{
	int r;

	/* Said once the start can no longer fail for other reasons, so
	   that a bad command line stays one line. */
	if (c->path_err)
		log_msg("warning: no control socket at %s: %s (--control PATH "
			"chooses another)",
			c->path, listen_error(c->path_err));
	else if (c->fd >= 0)
		log_msg("control socket %s (loopd ctl %s stats)", c->path,
			c->path);

	if (c->fd < 0 && c->mark_fd < 0 && !c->stats_file)
		return 0; /* nothing to serve */
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_fd < 0) {
		log_msg("control: eventfd: %s", strerror(errno));
		return -1;
	}
	if (c->stats_file)
		write_stats_file(c); /* Q6: there from the start */
	r = pthread_create(&c->thread, NULL, control_main, c);
	if (r) {
		log_msg("cannot start the control thread: %s", strerror(r));
		return -1;
	}
	c->running = true;
	return 0;
}

void control_stop(struct control *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (c->running) {
		if (write(c->stop_fd, &one, sizeof one) < 0)
			log_msg("control: eventfd: %s", strerror(errno));
		pthread_join(c->thread, NULL);
		pthread_mutex_lock(&c->jobs_lock); /* Q10 */
		while (c->jobs)
			pthread_cond_wait(&c->jobs_cond, &c->jobs_lock);
		pthread_mutex_unlock(&c->jobs_lock);
		if (c->stats_file)
			write_stats_file(c); /* Q6: the final figures */
	}
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->fd >= 0) {
		close(c->fd);
		unlink(c->path);
	}
	/* c->path without c->fd: a default path not ours to remove (Q7) */
	if (c->mark_fd >= 0) {
		close(c->mark_fd);
		unlink(c->mark_path);
	}
	free(c->path);
	free(c->mark_path);
	free(c->stats_file);
	pthread_mutex_destroy(&c->jobs_lock);
	pthread_cond_destroy(&c->jobs_cond);
	free(c);
}
