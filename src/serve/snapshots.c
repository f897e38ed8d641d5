/* SPDX-License-Identifier: MIT */
/*
 * snapshots.c: the server side of live snapshots (snapshots.h): the
 * control command `snapshot` (control.c's table, Q4) and the schedule of
 * `loopd serve --snapshot-every`.  The snapshot itself is
 * engine/snapshot.c (I1-I9).
 *
 * J1. The command's line is "snapshot [--export NAME] [--sync]
 *     [--no-wait] DEST": options first, DEST the rest of the line (a path
 *     may hold spaces; `loopd ctl` made it absolute, or it is an RBD
 *     snapshot's @NAME).  The answer is one "name: value" line per figure,
 *     so that people and scripts read the same text.
 * J2. The schedule.  Every --snapshot-every, one thread takes a snapshot
 *     of every export that can: into --snapshot-dir as
 *     EXPORT.YYYYmmddTHHMMSS.mmmZ (UTC; names sort by time), or for an
 *     RBD export as the image snapshot loopd.YYYYmmddTHHMMSS.mmmZ.  Each
 *     makes its checkpoint, named after it (T-rules in engine/dirty.c).
 *     It does not wait for a copy-before-write copy: the next snapshot of
 *     that export does (I7).  A failure is logged, and the schedule goes
 *     on.
 * J3. Rotation.  With --snapshot-keep N, once an export has more than N
 *     snapshots of the schedule (those in the directory that match its
 *     pattern, found at start, and those taken since), the oldest are
 *     removed, with their checkpoints.  Snapshots taken with `loopd ctl`
 *     are never removed.
 * J4. Stop: the schedule stops first (a snapshot under way ends), then a
 *     running copy is abandoned (I8).
 */
#include "serve/snapshots.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/dirty.h"
#include "engine/export.h"
#include "engine/snapshot.h"
#include "util/clock.h"
#include "util/log.h"

/* ---------------------------------------------------------------- */
/* The command (J1).                                                  */

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static char *format_result(const char *dest, const struct export *exp,
			   const struct snapshot_result *r, size_t *len)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	if (!f)
		return NULL;
	fprintf(f, "snapshot: %s\n", dest);
	fprintf(f, "export: %s\n", exp->name);
	fprintf(f, "method: %s\n", r->method ? r->method : "?");
	fprintf(f, "checkpoint: %s\n",
		r->checkpoint[0] ? r->checkpoint : "(none)");
	if (r->note[0])
		fprintf(f, "note: %s\n", r->note);
	fprintf(f, "writes held: %" PRIu64 "\n", r->held_writes);
	fprintf(f, "longest hold: %.3f ms\n", ms(r->hold_ns));
	fprintf(f, "drain: %.3f ms\n", ms(r->drain_ns));
	fprintf(f, "capture: %.3f ms\n", ms(r->capture_ns));
	if (r->pending)
		fprintf(f, "complete: no, the copy goes on in the "
			   "background (DEST appears when it is done)\n");
	else
		fprintf(f, "complete after: %.3f ms\n", ms(r->total_ns));
	if (r->method && !strcmp(r->method, "copy-before-write") && !r->pending)
		fprintf(f,
			"copied: %" PRIu64 " bytes (%" PRIu64
			" before writes)\n",
			r->copied, r->copied_by_writes);
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	*len = n;
	return out;
}

/* One word of args into word; returns what follows it, or NULL. */
static const char *next_word(const char *args, char *word, size_t len)
{
	const char *sp = strchr(args, ' ');
	size_t n = sp ? (size_t)(sp - args) : strlen(args);

	if (!sp || n >= len)
		return NULL;
	memcpy(word, args, n);
	word[n] = 0;
	return sp + 1;
}

static struct export *find_export(struct server *srv, const char *name)
{
	/* The empty name is the default export, as everywhere. */
	return server_find_export(srv, name ? name : "",
				  name ? strlen(name) : 0);
}

int snapshots_command(struct server *srv, const char *args, char **out,
		      size_t *outlen, char *err, size_t errlen)
{
	struct snapshot_opts o = {0};
	struct snapshot_result res;
	char word[256], ename[256];
	const char *export_name = NULL, *rest = args, *after;
	struct export *exp;
	bool to_files;

	/* J1: options, then DEST. */
	while (rest[0] == '-' && rest[1] == '-') {
		after = next_word(rest, word, sizeof word);
		if (!after)
			break;
		if (!strcmp(word, "--sync")) {
			o.sync = true;
		} else if (!strcmp(word, "--no-wait")) {
			o.no_wait = true;
		} else if (!strcmp(word, "--export")) {
			after = next_word(after, ename, sizeof ename);
			if (!after) {
				snprintf(err, errlen,
					 "snapshot: --export "
					 "needs a NAME and a "
					 "DEST");
				return -EINVAL;
			}
			export_name = ename;
		} else {
			snprintf(err, errlen,
				 "snapshot: unknown option \"%.60s\"", word);
			return -EINVAL;
		}
		rest = after;
	}
	if (!*rest) {
		snprintf(err, errlen, "snapshot: needs a DEST");
		return -EINVAL;
	}
	o.dest = rest;
	exp = find_export(srv, export_name);
	if (!exp) {
		snprintf(err, errlen, "snapshot: no export named \"%.100s\"",
			 export_name ? export_name : "");
		return -ENOENT;
	}
	/* J1: a path for a file export, @NAME for an RBD one; an export
	   that cannot be snapshotted is snapshot_take()'s to refuse. */
	if (snapshot_supported(exp, &to_files) &&
	    (to_files ? o.dest[0] != '/' : strchr(o.dest, '/') != NULL)) {
		if (to_files)
			snprintf(err, errlen,
				 "snapshot: DEST must be an absolute path "
				 "(loopd ctl makes it one)");
		else
			snprintf(err, errlen,
				 "snapshot: export \"%s\" takes RBD snapshots: "
				 "DEST is @NAME",
				 exp->name);
		return -EINVAL;
	}
	if (snapshot_take(exp, &o, &res, err, errlen) < 0)
		return -EIO;
	*out = format_result(o.dest, exp, &res, outlen);
	if (!*out) {
		snprintf(err, errlen,
			 "snapshot: out of memory (the snapshot "
			 "was taken)");
		return -ENOMEM;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* The schedule (J2-J4).                                              */

struct taken {
	char **names; /* oldest first: paths, or RBD snapshot names */
	size_t n, cap;
};

static struct {
	struct server *srv;
	struct snapshots_config cfg;
	struct taken *taken; /* per export */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running, stop;
} sched = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static int taken_add(struct taken *t, const char *name)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **v = realloc(t->names, cap * sizeof *v);

		if (!v)
			return -ENOMEM;
		t->names = v;
		t->cap = cap;
	}
	t->names[t->n] = strdup(name);
	if (!t->names[t->n])
		return -ENOMEM;
	t->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* J2: the export's name as a file name. */
static void safe_name(const char *name, char *out, size_t len)
{
	size_t i;

	snprintf(out, len, "%s", *name ? name : "default");
	for (i = 0; out[i]; i++)
		if (out[i] == '/' || out[i] < ' ')
			out[i] = '_';
}

/* J3: the schedule's earlier snapshots of exp in the directory. */
static void find_existing(struct export *exp, struct taken *t)
{
	char prefix[300], path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	safe_name(exp->name, prefix, sizeof prefix - 1);
	strcat(prefix, ".");
	d = opendir(sched.cfg.dir);
	if (!d)
		return;
	/* readdir_r is deprecated; this stream is ours alone. */
	// cppcheck-suppress readdirCalled
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		/* EXPORT.YYYYmmddTHHMMSS.mmmZ, and not a .part */
		if (strncmp(de->d_name, prefix, strlen(prefix)) ||
		    n != strlen(prefix) + 20 || de->d_name[n - 1] != 'Z')
			continue;
		snprintf(path, sizeof path, "%s/%s", sched.cfg.dir, de->d_name);
		(void)taken_add(t, path);
	}
	closedir(d);
	if (t->n)
		qsort(t->names, t->n, sizeof *t->names, cmp_str);
}

static void stamp(char *out, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char day[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);

	strftime(day, sizeof day, "%Y%m%dT%H%M%S", &tm);
	snprintf(out, len, "%.15s.%03uZ", day,
		 (unsigned int)(ts.tv_nsec / 1000000) % 1000);
}

/* J3: remove the oldest beyond --snapshot-keep. */
static void rotate(struct export *exp, struct taken *t)
{
	char err[256];

	while (sched.cfg.keep && t->n > sched.cfg.keep) {
		char *old = t->names[0];
		const char *base = strrchr(old, '/');
		int r = 0;

		if (old[0] == '/') {
			if (unlink(old) < 0 && errno != ENOENT)
				r = -errno;
		} else if (exp->b->ops->snapshot_remove) {
			r = exp->b->ops->snapshot_remove(exp->b, old, err,
							 sizeof err);
		}
		if (r < 0)
			log_msg("export \"%s\": cannot remove snapshot %s: %s",
				exp->name, old, strerror(-r));
		if (exp->dirty &&
		    dirty_delete(exp->dirty, base ? base + 1 : old) == 0)
			(void)dirty_set_persist(exp->dirty);
		free(old);
		memmove(t->names, t->names + 1, (t->n - 1) * sizeof *t->names);
		t->n--;
	}
}

static void take_one(struct export *exp, struct taken *t)
{
	struct snapshot_opts o = {.sync = sched.cfg.sync, .no_wait = true};
	struct snapshot_result res;
	char dest[PATH_MAX], name[300], ts[32], err[512];
	bool to_files;

	if (!snapshot_supported(exp, &to_files))
		return;
	stamp(ts, sizeof ts);
	safe_name(exp->name, name, sizeof name);
	if (to_files)
		snprintf(dest, sizeof dest, "%s/%s.%s", sched.cfg.dir, name,
			 ts);
	else
		snprintf(dest, sizeof dest, "loopd.%s", ts);
	o.dest = dest;
	if (snapshot_take(exp, &o, &res, err, sizeof err) < 0) {
		log_msg("export \"%s\": scheduled snapshot %s failed: %s",
			exp->name, dest, err);
		return;
	}
	log_msg("export \"%s\": snapshot %s (%s): %" PRIu64
		" writes held, the longest %.3f ms; drain %.3f ms, capture "
		"%.3f ms",
		exp->name, dest, res.method, res.held_writes, ms(res.hold_ns),
		ms(res.drain_ns), ms(res.capture_ns));
	if (taken_add(t, dest) == 0)
		rotate(exp, t);
}

static void *sched_main(void *arg)
{
	uint64_t next = clock_ns(CLOCK_MONOTONIC);
	size_t i;

	(void)arg;
	for (;;) {
		struct timespec until;
		uint64_t now;

		next += sched.cfg.every_ms * 1000000ull;
		pthread_mutex_lock(&sched.lock);
		while (!sched.stop &&
		       (now = clock_ns(CLOCK_MONOTONIC)) < next) {
			uint64_t left = next - now;

			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += (time_t)(left / 1000000000u);
			until.tv_nsec += (long)(left % 1000000000u);
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&sched.cond, &sched.lock,
					       &until);
		}
		pthread_mutex_unlock(&sched.lock);
		if (sched.stop)
			break;
		for (i = 0; i < sched.srv->n_exports && !sched.stop; i++)
			take_one(sched.srv->exports[i], &sched.taken[i]);
		now = clock_ns(CLOCK_MONOTONIC);
		if (now > next) /* a late tick is not made up for */
			next = now;
	}
	return NULL;
}

int snapshots_start(struct server *srv, const struct snapshots_config *cfg)
{
	pthread_condattr_t ca;
	size_t i;
	int r;

	if (!cfg->every_ms)
		return 0;
	sched.srv = srv;
	sched.cfg = *cfg;
	sched.taken = calloc(srv->n_exports, sizeof *sched.taken);
	if (!sched.taken) {
		log_msg("--snapshot-every: out of memory");
		return -1;
	}
	for (i = 0; i < srv->n_exports; i++)
		if (cfg->dir)
			find_existing(srv->exports[i], &sched.taken[i]);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&sched.cond);
	pthread_cond_init(&sched.cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&sched.thread, NULL, sched_main, NULL);
	if (r) {
		log_msg("--snapshot-every: cannot start: %s", strerror(r));
		return -1;
	}
	sched.running = true;
	return 0;
}

void snapshots_stop(struct server *srv)
{
	size_t i, j;

	if (sched.running) {
		pthread_mutex_lock(&sched.lock);
		sched.stop = true;
		pthread_cond_broadcast(&sched.cond);
		pthread_mutex_unlock(&sched.lock);
		pthread_join(sched.thread, NULL);
		sched.running = false;
	}
	for (i = 0; sched.taken && i < srv->n_exports; i++) {
		for (j = 0; j < sched.taken[i].n; j++)
			free(sched.taken[i].names[j]);
		free(sched.taken[i].names);
	}
	free(sched.taken);
	sched.taken = NULL;
	for (i = 0; i < srv->n_exports; i++) /* J4, I8 */
		snapshot_cancel(srv->exports[i]->snap);
}
