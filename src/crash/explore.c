/* SPDX-License-Identifier: MIT */
/*
 * explore.c: `loopd crash TRACE --check CMD|ext4`, the crash explorer.
 *
 * It reads a trace and its base image, asks states.c for the crash points
 * and the states each allows under a model, materialises every chosen
 * state as an image file and runs the check on it.  docs/crash.md is the
 * user's guide; this block is the design.
 *
 * X1. Budget: how --max-states is shared by the crash points, in
 *     budget.c (pure, tested by tests/unit/test-budget.c).
 * X2. Dedupe.  Within a point, states with the same extents key are one
 *     image (states.c S7) and are checked once.
 * X3. Incremental materialisation.  Each of the -j workers owns one image
 *     file (a reflink or sparse copy of the base, made once) and an
 *     in-memory copy of D(t) (a private mapping of the base, so untouched
 *     pages cost nothing).  States arrive in point order.  Moving to a
 *     later point applies crash_durable_diff() to both.  A state writes
 *     only its extents (where it differs from D(t)).
 * X4. Undo.  Before a check the image's mtime is set to a sentinel.  If
 *     the check did not write (mtime unchanged), the state's extents are
 *     restored from D(t).  If it did (e2fsck replaying the journal, a
 *     mount), the image is compared with D(t) in 64 KiB chunks and the
 *     chunks that differ are written back: every chunk of the image's
 *     data extents (SEEK_DATA), and, in its holes, the chunks where D(t)
 *     may hold data (the base's data, or a diff's).  Either way the image
 *     is D(t) again, without a full copy, at a cost that follows the
 *     data, not the export size.
 * X5. Checks run as child processes (posix_spawn, own process group, no
 *     shell for ext4) with a timeout; stdout and stderr go to a per-worker
 *     log whose start is quoted for a failing state.  A check that cannot
 *     be started is a tool error (exit 2), not a failing state.
 * X6. Self-check (A7): replaying every write of a complete trace onto the
 *     base must give the final file's SHA-256 recorded in END.  TRIM is
 *     tried as zeroes, then as a no-op (both are what loopd may do).
 * X7. IDs.  A state is "K.I": point K of the plan, item I of its list.
 *     It depends on the trace, model, seed, E and --tear only, so
 *     `--state K.I --out IMG` rebuilds it under the same options.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crash/budget.h"
#include "crash/states.h"
#include "trace/tracefile.h"
#include "trace/recorder.h"
#include "trace/trace.h"

#define QUEUE_CAP 64
#define CHUNK (64 * 1024)
#define DETAIL_MAX 400

struct opts {
	const char *trace, *check, *base, *state_id, *out, *after, *workdir;
	enum crash_model model;
	bool served, tear, json, quiet, ext4;
	uint64_t max_states, seed;
	uint32_t exhaustive, jobs, timeout, unit;
};

struct job {
	uint32_t point;
	uint64_t item;
	const char *kind;
	uint32_t n_chosen, n_pending;
	uint8_t variant;
	bool torn;
	struct crash_extents x;
};

struct failure {
	uint32_t point;
	uint64_t item;
	const char *kind;
	uint32_t n_chosen, n_pending;
	bool torn;
	char detail[DETAIL_MAX];
};

struct ctx {
	struct opts o;
	struct tracefile tf;
	struct crash_plan *plan;
	const char *base_path;
	int base_fd;
	const uint8_t *base_map;
	uint64_t size;
	uint64_t n_chunks; /* CHUNK-sized pieces of the image */
	uint8_t *base_data; /* per chunk: the base has data there */
	bool verify; /* LOOPD_CRASH_VERIFY: check every restore */
	char workdir[PATH_MAX];

	pthread_mutex_t lock; /* protects everything below */
	pthread_cond_t cond; /* queue and counters changed */
	struct job *q[QUEUE_CAP];
	size_t q_head, q_len;
	bool produced; /* the producer is done */
	uint64_t planned, dups, done, n_failed;
	uint32_t *pt_states, *pt_failed, *budget;
	struct failure *fails;
	size_t n_fails, cap_fails;
	bool tool_error;
	char tool_msg[512];
};

struct worker {
	struct ctx *c;
	pthread_t th;
	int id, fd;
	char img[PATH_MAX + 32], log[PATH_MAX + 32];
	const uint8_t *map; /* the image, shared mapping (compare only) */
	uint8_t *dmem; /* D(t), private mapping of the base */
	uint32_t cur; /* the point dmem and the image hold */
	struct crash_scratch *s;
	struct crash_extents d;
	uint8_t *dirty; /* per chunk: dmem was written there */
	uint32_t *seen, stamp; /* per chunk: compared in this restore */
	char **env; /* environ + LOOPD_CRASH_IMAGE=img, for checks */
	char env_img[PATH_MAX + 64];
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage_crash(FILE *f)
{
	fprintf(f,
		"Usage: loopd crash TRACE --check CMD|ext4 [OPTIONS]\n"
		"       loopd crash TRACE --state ID --out IMG [OPTIONS]\n"
		"\n"
		"Check every crash state that a recorded trace allows: at "
		"each flush or FUA\n"
		"completion and at the end, the durable writes plus subsets "
		"of the pending ones.\n"
		"\n"
		"Options:\n"
		"  -c, --check CMD       run 'sh -c CMD' on each state; {} is "
		"the image path;\n"
		"                        exit 0 passes.  'ext4': e2fsck -p -E "
		"journal_only,\n"
		"                        then e2fsck -fn must be clean\n"
		"  -m, --model MODEL     served (default: what the recorded "
		"flush mode\n"
		"                        promises), contract, barrier, "
		"no-flush, skip-one-flush\n"
		"  -n, --max-states N    check at most N states (default "
		"10000; 0: no limit)\n"
		"  -s, --seed S          seed of the sampling (default 1)\n"
		"  -E, --exhaustive N    all subsets when at most N writes "
		"are pending (10)\n"
		"      --tear            also tear one write per state at the "
		"atomic unit\n"
		"      --tear-unit N     tear at N bytes instead (a power of "
		"two)\n"
		"  -a, --after LABEL     only crash points after the first "
		"mark LABEL\n"
		"  -j, --jobs N          run N checks in parallel (default: "
		"CPUs)\n"
		"  -t, --timeout SECS    per check (default 60)\n"
		"      --json            machine-readable results on stdout\n"
		"      --state ID        materialise state ID (K.I) into "
		"--out IMG\n"
		"  -o, --out IMG         where --state writes the image\n"
		"  -b, --base PATH       the base image (default: the path "
		"in the trace)\n"
		"  -w, --workdir DIR     where working images go (default: "
		"next to the base)\n"
		"  -q, --quiet           no progress bar\n"
		"  -h, --help            show this help\n"
		"\n"
		"Exit status: 0 every state passed, 1 a state failed, 2 "
		"usage or tool error.\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	/* Digits only: strtoull takes blanks, signs and wraps "-1". */
	return errno || *end || *s < '0' || *s > '9' ? -EINVAL : 0;
}

/* A state ID, "POINT.ITEM". */
static int parse_state_id(const char *id, uint64_t *point, uint64_t *item)
{
	const char *dot = strchr(id, '.');
	char head[24];

	if (!dot || (size_t)(dot - id) >= sizeof head)
		return -EINVAL;
	memcpy(head, id, (size_t)(dot - id));
	head[dot - id] = 0;
	return parse_u64(head, point) < 0 ? -EINVAL : parse_u64(dot + 1, item);
}

/* ------------------------------------------------------------------ */
/* Image I/O.                                                          */

static int pwrite_all(int fd, const void *p, size_t len, uint64_t off)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = pwrite(fd, b, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static const uint8_t zero_chunk[CHUNK];

/* Write extent e into fd (if >= 0) and into mem (if not NULL). */
static int put_extent(const struct ctx *c, int fd, uint8_t *mem,
		      const struct crash_extent *e)
{
	const uint8_t *src;
	uint64_t off, n;
	int r;

	if (e->src == CRASH_SRC_ZERO) {
		for (off = e->off; off < e->off + e->len; off += n) {
			n = e->off + e->len - off;
			if (n > CHUNK)
				n = CHUNK;
			if (fd >= 0) {
				r = pwrite_all(fd, zero_chunk, n, off);
				if (r < 0)
					return r;
			}
		}
		if (mem)
			memset(mem + e->off, 0, e->len);
		return 0;
	}
	src = e->src == CRASH_SRC_BASE ? c->base_map + e->off
				       : crash_src_data(c->plan, e);
	if (fd >= 0) {
		r = pwrite_all(fd, src, e->len, e->off);
		if (r < 0)
			return r;
	}
	if (mem)
		memcpy(mem + e->off, src, e->len);
	return 0;
}

/* dirty (may be NULL): chunks of mem that the extents touch are marked. */
static int put_extents(const struct ctx *c, int fd, uint8_t *mem,
		       uint8_t *dirty, const struct crash_extents *x)
{
	size_t i;
	uint64_t k;
	int r;

	for (i = 0; i < x->n; i++) {
		const struct crash_extent *e = &x->v[i];

		r = put_extent(c, fd, mem, e);
		if (r < 0)
			return r;
		for (k = e->off / CHUNK;
		     dirty && k <= (e->off + e->len - 1) / CHUNK; k++)
			dirty[k] = 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Running checks (X5).                                                */

/*
 * Run argv with stdout and stderr appended to log.  Returns 0 with the
 * wait status, -ETIMEDOUT (killed), or -errno (could not start).
 */
static int run(char *const argv[], const char *log, char *const envp[],
	       uint32_t timeout, int *status)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct pollfd pfd;
	pid_t pid;
	int r, pfdn;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log,
					 O_WRONLY | O_APPEND | O_CREAT, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	r = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return -r;
	pfdn = pidfd_open(pid, 0);
	if (pfdn >= 0) {
		pfd.fd = pfdn;
		pfd.events = POLLIN;
		do
			r = poll(&pfd, 1, (int)(timeout * 1000));
		while (r < 0 && errno == EINTR);
		close(pfdn);
		if (r == 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, status, 0);
			return -ETIMEDOUT;
		}
	}
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * The start of the log, on one line, for the report; e2fsck's banner and
 * "Pass N" lines are left out, so the first error shows.
 */
static void quote_log(const char *log, char *out, size_t len)
{
	char buf[8192], *line, *save = NULL;
	size_t j = strlen(out);
	bool first = true;
	ssize_t n;
	int fd = open(log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (line = strtok_r(buf, "\n", &save); line && j + 4 < len;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "e2fsck 1.", 9) ||
		    !strncmp(line, "Pass ", 5) || !*line)
			continue;
		const char *sep = first ? ": " : " | ";

		first = false;
		for (; *sep; sep++)
			out[j++] = *sep;
		for (; *line && j + 1 < len; line++)
			out[j++] = (*line >= 32 && *line < 127) ? *line : '?';
	}
	out[j] = 0;
}

static char *expand(const char *cmd, const char *img)
{
	size_t n = 0, il = strlen(img);
	const char *p;
	char *out, *q;

	for (p = cmd; (p = strstr(p, "{}")); p += 2)
		n++;
	out = malloc(strlen(cmd) + n * il + 1);
	if (!out)
		return NULL;
	for (q = out, p = cmd; *p;) {
		if (p[0] == '{' && p[1] == '}') {
			memcpy(q, img, il);
			q += il;
			p += 2;
		} else {
			*q++ = *p++;
		}
	}
	*q = 0;
	return out;
}

/*
 * Check the image of worker w.  Returns 1 pass, 0 fail (detail says why),
 * or -errno when the check could not be run.
 */
static int check(struct worker *w, char *detail, size_t len)
{
	const struct opts *o = &w->c->o;
	int st, r, fd;

	detail[0] = 0;
	fd = open(w->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	if (o->ext4) {
		char *replay[] = {"e2fsck",	  "-p",	  "-E",
				  "journal_only", w->img, NULL};
		char *fsck[] = {"e2fsck", "-fn", w->img, NULL};

		r = run(replay, w->log, w->env, o->timeout, &st);
		if (r == -ETIMEDOUT) {
			snprintf(detail, len, "journal replay timed out");
			return 0;
		}
		if (r < 0)
			return r;
		/* run() set st: it returns 0 only after waitpid().  The
		   analyzer thinks posix_spawnp() may return < 0. */
		/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
		if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) {
			snprintf(detail, len,
				 "journal replay (e2fsck -p -E journal_only) "
				 "exit %d",
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128);
			quote_log(w->log, detail, len);
			return 0;
		}
		fd = open(w->log, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		r = run(fsck, w->log, w->env, o->timeout, &st);
		if (r == -ETIMEDOUT) {
			snprintf(detail, len, "e2fsck -fn timed out");
			return 0;
		}
		if (r < 0)
			return r;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			return 1;
		snprintf(detail, len, "e2fsck -fn exit %d",
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128);
		quote_log(w->log, detail, len);
		return 0;
	} else {
		char *cmd = expand(o->check, w->img);
		char *argv[] = {"sh", "-c", cmd, NULL};

		if (!cmd)
			return -ENOMEM;
		r = run(argv, w->log, w->env, o->timeout, &st);
		free(cmd);
		if (r == -ETIMEDOUT) {
			snprintf(detail, len, "timed out after %u s",
				 o->timeout);
			return 0;
		}
		if (r < 0)
			return r;
		/* As above: run() set st. */
		/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			return 1;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
			snprintf(detail, len, "check command not found");
			quote_log(w->log, detail, len);
			return -ENOENT;
		}
		if (WIFEXITED(st))
			snprintf(detail, len, "exit %d", WEXITSTATUS(st));
		else
			snprintf(detail, len, "killed by signal %d",
				 WTERMSIG(st));
		quote_log(w->log, detail, len);
		return 0;
	}
}

/* ------------------------------------------------------------------ */
/* Workers (X3, X4).                                                   */

static int worker_init(struct worker *w)
{
	struct ctx *c = w->c;
	bool reflinked;
	int r;

	w->cur = CRASH_BASE;
	w->fd = -1;
	if (snprintf(w->img, sizeof w->img, "%s/state%d.img", c->workdir,
		     w->id) >= (int)sizeof w->img ||
	    snprintf(w->log, sizeof w->log, "%s/check%d.log", c->workdir,
		     w->id) >= (int)sizeof w->log)
		return -ENAMETOOLONG;
	{
		size_t n = 0;

		while (environ[n])
			n++;
		w->env = calloc(n + 2, sizeof *w->env);
		if (!w->env)
			return -ENOMEM;
		memcpy(w->env, environ, n * sizeof *w->env);
		snprintf(w->env_img, sizeof w->env_img, "LOOPD_CRASH_IMAGE=%s",
			 w->img);
		w->env[n] = w->env_img;
	}
	r = tracefile_copy(c->base_path, w->img, &reflinked);
	if (r < 0)
		return r;
	w->fd = open(w->img, O_RDWR | O_CLOEXEC);
	if (w->fd < 0)
		return -errno;
	w->map = mmap(NULL, c->size, PROT_READ, MAP_SHARED, w->fd, 0);
	w->dmem = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		       c->base_fd, 0);
	if (w->map == MAP_FAILED || w->dmem == MAP_FAILED) {
		w->map = w->map == MAP_FAILED ? NULL : w->map;
		w->dmem = w->dmem == MAP_FAILED ? NULL : w->dmem;
		return -ENOMEM;
	}
	w->dirty = calloc(c->n_chunks + 1, 1);
	w->seen = calloc(c->n_chunks + 1, sizeof *w->seen);
	w->s = crash_scratch_new(c->plan);
	return w->s && w->dirty && w->seen ? 0 : -ENOMEM;
}

static void worker_fini(struct worker *w)
{
	if (w->map)
		munmap((void *)w->map, w->c->size);
	if (w->dmem)
		munmap(w->dmem, w->c->size);
	if (w->fd >= 0)
		close(w->fd);
	unlink(w->img);
	unlink(w->log);
	crash_scratch_free(w->s);
	crash_extents_free(&w->d);
	free(w->env);
	free(w->dirty);
	free(w->seen);
}

static const struct timespec sentinel = {.tv_sec = 1, .tv_nsec = 0};

static int restore_chunk(struct worker *w, uint64_t off)
{
	uint64_t n = w->c->size - off < CHUNK ? w->c->size - off : CHUNK;

	if (!memcmp(w->map + off, w->dmem + off, n))
		return 0;
	return pwrite_all(w->fd, w->dmem + off, n, off);
}

/* X4: make the image D(t) again. */
static int restore(struct worker *w, const struct job *j)
{
	const struct ctx *c = w->c;
	struct stat st;
	uint64_t off, n;
	size_t i;
	int r;

	if (fstat(w->fd, &st) < 0)
		return -errno;
	if (st.st_mtim.tv_sec == sentinel.tv_sec &&
	    st.st_mtim.tv_nsec == sentinel.tv_nsec &&
	    (uint64_t)st.st_size == c->size) {
		for (i = 0; i < j->x.n; i++) {
			const struct crash_extent *e = &j->x.v[i];

			r = pwrite_all(w->fd, w->dmem + e->off, e->len, e->off);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if ((uint64_t)st.st_size != c->size &&
	    ftruncate(w->fd, (off_t)c->size) < 0)
		return -errno;
	/* The image's data extents are compared chunk by chunk... */
	if (++w->stamp == 0) {
		memset(w->seen, 0, (c->n_chunks + 1) * sizeof *w->seen);
		w->stamp = 1;
	}
	for (off = 0; off < c->size;) {
		off_t data = lseek(w->fd, (off_t)off, SEEK_DATA), hole;
		uint64_t k;

		if (data < 0)
			break; /* ENXIO: no more data */
		hole = lseek(w->fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > c->size)
			hole = (off_t)c->size;
		for (k = (uint64_t)data / CHUNK; k * CHUNK < (uint64_t)hole;
		     k++) {
			if (w->seen[k] == w->stamp)
				continue;
			w->seen[k] = w->stamp;
			r = restore_chunk(w, k * CHUNK);
			if (r < 0)
				return r;
		}
		off = (uint64_t)hole;
	}
	/* ... and a hole, which reads as zeroes, is right where D(t) is
	   zero: only chunks where the base or a diff put data can differ. */
	for (n = 0; n < c->n_chunks; n++) {
		if (w->seen[n] == w->stamp || !(c->base_data[n] || w->dirty[n]))
			continue;
		if (!trace_is_zero(w->dmem + n * CHUNK,
				   c->size - n * CHUNK < CHUNK
					   ? c->size - n * CHUNK
					   : CHUNK)) {
			r = restore_chunk(w, n * CHUNK);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void tool_error(struct ctx *c, const char *what, int err)
{
	pthread_mutex_lock(&c->lock);
	if (!c->tool_error)
		snprintf(c->tool_msg, sizeof c->tool_msg, "%s: %s", what,
			 strerror(-err));
	c->tool_error = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void record(struct ctx *c, const struct job *j, bool pass,
		   const char *detail)
{
	pthread_mutex_lock(&c->lock);
	c->done++;
	c->pt_states[j->point]++;
	if (!pass) {
		c->n_failed++;
		c->pt_failed[j->point]++;
		if (c->n_fails == c->cap_fails) {
			size_t cap = c->cap_fails ? 2 * c->cap_fails : 64;
			struct failure *v = realloc(c->fails, cap * sizeof *v);

			if (v) {
				c->fails = v;
				c->cap_fails = cap;
			}
		}
		if (c->n_fails < c->cap_fails) {
			struct failure *f = &c->fails[c->n_fails++];

			f->point = j->point;
			f->item = j->item;
			f->kind = j->kind;
			f->n_chosen = j->n_chosen;
			f->n_pending = j->n_pending;
			f->torn = j->torn;
			snprintf(f->detail, sizeof f->detail, "%s", detail);
		}
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ctx *c = w->c;
	const struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, sentinel};
	char detail[DETAIL_MAX];
	struct job *j;
	int r;

	for (;;) {
		pthread_mutex_lock(&c->lock);
		while (!c->q_len && !c->produced && !c->tool_error &&
		       !stop_requested)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!c->q_len || c->tool_error || stop_requested) {
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		j = c->q[c->q_head];
		c->q_head = (c->q_head + 1) % QUEUE_CAP;
		c->q_len--;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);

		if (j->point != w->cur) {
			r = crash_durable_diff(c->plan, w->s, w->cur, j->point,
					       &w->d);
			if (!r)
				r = put_extents(c, w->fd, w->dmem, w->dirty,
						&w->d);
			if (r < 0) {
				tool_error(c, "advancing a working image", r);
				goto next;
			}
			w->cur = j->point;
		}
		r = put_extents(c, w->fd, NULL, NULL, &j->x);
		if (!r && futimens(w->fd, ts) < 0)
			r = -errno;
		if (r < 0) {
			tool_error(c, "writing a working image", r);
			goto next;
		}
		r = check(w, detail, sizeof detail);
		if (r < 0) {
			char msg[DETAIL_MAX + 64];

			snprintf(msg, sizeof msg, "cannot run the check%s%s",
				 detail[0] ? ": " : "", detail);
			tool_error(c, msg, r);
			goto next;
		}
		record(c, j, r == 1, detail);
		r = restore(w, j);
		if (r < 0)
			tool_error(c, "restoring a working image", r);
		/* Testing aid: prove X4 on every state. */
		if (!r && c->verify && memcmp(w->map, w->dmem, c->size))
			tool_error(c,
				   "LOOPD_CRASH_VERIFY: the restored image "
				   "is not D(t)",
				   -EIO);
	next:
		crash_extents_free(&j->x);
		free(j);
	}
}

/* ------------------------------------------------------------------ */
/* The budget (X1, budget.c).                                          */

/* Each selected point's budget, in c->budget. */
static int allocate(struct ctx *c, const bool *sel)
{
	const struct crash_plan *p = c->plan;
	struct budget_point *bp = calloc(p->n_points + 1, sizeof *bp);
	uint32_t k;

	if (!bp)
		return -ENOMEM;
	for (k = 0; k < p->n_points; k++) {
		bp[k].demand = sel[k] ? budget_demand(&p->points[k]) : 0;
		bp[k].n_pending = p->points[k].n_pending;
	}
	budget_allocate(bp, p->n_points, c->o.max_states, c->o.seed, c->budget);
	free(bp);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Progress and output.                                                */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(struct ctx *c, double t0, bool final)
{
	static double last;
	double t = now_s(), rate, eta;
	uint64_t done, total, failed;
	char bar[31];
	int i, fill;

	if (c->o.quiet || !isatty(2))
		return;
	if (!final && t - last < 0.2)
		return;
	last = t;
	pthread_mutex_lock(&c->lock);
	done = c->done;
	failed = c->n_failed;
	total = c->planned;
	pthread_mutex_unlock(&c->lock);
	if (total < done)
		total = done;
	rate = t > t0 ? (double)done / (t - t0) : 0;
	eta = rate > 0 ? (double)(total - done) / rate : 0;
	fill = total ? (int)(30 * done / total) : 30;
	for (i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = 0;
	fprintf(stderr,
		"\r[%s] %" PRIu64 "/%" PRIu64 " states, %.1f/s, ETA %d:%02d, "
		"%" PRIu64 " failed ",
		bar, done, total, rate, (int)eta / 60, (int)eta % 60, failed);
	if (final)
		fputc('\n', stderr);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 32)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* Where the crash is: just before the reply that raises the guarantee. */
static const char *crash_where(const struct crash_point *pt)
{
	switch (pt->why) {
	case CRASH_AT_FLUSH:
		return "before a FLUSH reply";
	case CRASH_AT_FUA:
		return "before a FUA write's reply";
	case CRASH_AT_WRITE:
		return "before a write's reply";
	default:
		return "at the end of the trace";
	}
}

static const char *mark_of(const struct ctx *c, const struct crash_point *pt)
{
	return pt->mark >= 0 ? c->plan->marks[pt->mark].label : "";
}

static const char *model_arg(const struct ctx *c)
{
	return c->o.served ? "served" : crash_model_name(c->o.model);
}

static void print_repro(const struct ctx *c, const struct failure *f)
{
	printf("    reproduce: loopd crash %s --model %s --seed %" PRIu64,
	       c->o.trace, model_arg(c), c->o.seed);
	if (c->o.exhaustive != 10)
		printf(" -E %u", c->o.exhaustive);
	if (c->o.tear)
		printf(" --tear --tear-unit %u", c->o.unit);
	printf(" --state %u.%" PRIu64 " --out IMG\n", f->point, f->item);
}

static int cmp_fail(const void *a, const void *b)
{
	const struct failure *x = a, *y = b;

	if (x->point != y->point)
		return x->point < y->point ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

static void report(struct ctx *c, const bool *sel, double secs,
		   const char *selfcheck, bool interrupted)
{
	const struct crash_plan *p = c->plan;
	double rate = secs > 0 ? (double)c->done / secs : 0;
	uint32_t k, shown = 0, n_sel = 0, n_fail_pts = 0;
	size_t i;

	if (c->n_fails > 1)
		qsort(c->fails, c->n_fails, sizeof *c->fails, cmp_fail);
	for (k = 0; k < p->n_points; k++) {
		n_sel += sel[k];
		n_fail_pts += c->pt_failed[k] > 0;
	}
	if (c->o.json) {
		printf("{\"trace\":");
		json_str(stdout, c->o.trace);
		printf(",\"model\":\"%s\",\"served_flush_mode\":\"%s\","
		       "\"seed\":%" PRIu64 ",\"max_states\":%" PRIu64
		       ",\"exhaustive\":%u,\"tear\":%s,\"tear_unit\":%u,"
		       "\"points\":%u,\"points_selected\":%u,"
		       "\"states\":%" PRIu64 ",\"passed\":%" PRIu64
		       ",\"failed\":%" PRIu64 ",\"duplicates\":%" PRIu64
		       ",\"seconds\":%.3f,\"states_per_second\":%.2f,"
		       "\"jobs\":%u,\"selfcheck\":",
		       crash_model_name(c->o.model),
		       trace_flush_mode_name(p->hdr.flush_mode), c->o.seed,
		       c->o.max_states, c->o.exhaustive,
		       c->o.tear ? "true" : "false", c->o.unit, p->n_points,
		       n_sel, c->done, c->done - c->n_failed, c->n_failed,
		       c->dups, secs, rate, c->o.jobs);
		json_str(stdout, selfcheck);
		printf(",\"interrupted\":%s,\"by_point\":[",
		       interrupted ? "true" : "false");
		for (k = 0, i = 0; k < p->n_points; k++) {
			const struct crash_point *pt = &p->points[k];

			if (!c->pt_states[k])
				continue;
			printf("%s{\"point\":%u,\"seq\":%" PRIu64
			       ",\"event\":\"%s\",\"mark\":",
			       i++ ? "," : "", k, pt->t,
			       crash_why_name(pt->why));
			json_str(stdout, mark_of(c, pt));
			printf(",\"pending\":%u,\"durable\":%u,\"exhaustive\":%"
			       "s,"
			       "\"states\":%u,\"failed\":%u}",
			       pt->n_pending, pt->n_durable,
			       pt->exhaustive ? "true" : "false",
			       c->pt_states[k], c->pt_failed[k]);
		}
		printf("],\"failures\":[");
		for (i = 0; i < c->n_fails; i++) {
			const struct failure *f = &c->fails[i];

			printf("%s{\"id\":\"%u.%" PRIu64 "\",\"point\":%u,"
			       "\"seq\":%" PRIu64 ",\"kind\":\"%s\","
			       "\"chosen\":%u,\"pending\":%u,\"torn\":%s,"
			       "\"mark\":",
			       i ? "," : "", f->point, f->item, f->point,
			       p->points[f->point].t, f->kind, f->n_chosen,
			       f->n_pending, f->torn ? "true" : "false");
			json_str(stdout, mark_of(c, &p->points[f->point]));
			printf(",\"detail\":");
			json_str(stdout, f->detail);
			printf("}");
		}
		printf("]}\n");
		return;
	}
	for (i = 0; i < c->n_fails; i++) {
		const struct failure *f = &c->fails[i];
		const struct crash_point *pt = &p->points[f->point];

		printf("FAIL %u.%" PRIu64 ": crash %s (seq %" PRIu64
		       ")%s%s%s, %s state, %u of %u pending writes%s: %s\n",
		       f->point, f->item, crash_where(pt), pt->t,
		       pt->mark >= 0 ? " after mark \"" : "", mark_of(c, pt),
		       pt->mark >= 0 ? "\"" : "", f->kind, f->n_chosen,
		       f->n_pending, f->torn ? ", one torn" : "", f->detail);
		print_repro(c, f);
	}
	printf("summary by crash point (%u points, %u selected):\n",
	       p->n_points, n_sel);
	printf("  %6s %10s %6s %8s %8s %7s %7s  %s\n", "point", "seq", "event",
	       "pending", "durable", "states", "failed", "mark");
	for (k = 0; k < p->n_points; k++) {
		const struct crash_point *pt = &p->points[k];

		if (!c->pt_states[k])
			continue;
		/* All points with failures; the others up to 40 lines. */
		if (!c->pt_failed[k] && shown >= 40 + n_fail_pts)
			continue;
		shown++;
		printf("  %6u %10" PRIu64 " %6s %8u %8u %7u %7u  %s\n", k,
		       pt->t, crash_why_name(pt->why), pt->n_pending,
		       pt->n_durable, c->pt_states[k], c->pt_failed[k],
		       mark_of(c, pt));
	}
	{
		uint32_t with_states = 0;

		for (k = 0; k < p->n_points; k++)
			with_states += c->pt_states[k] > 0;
		if (with_states > shown)
			printf("  ... %u more points, all passed\n",
			       with_states - shown);
	}
	printf("self-check (A7): %s\n", selfcheck);
	printf("states: %" PRIu64 " checked, %" PRIu64 " passed, %" PRIu64
	       " failed (%" PRIu64 " duplicates skipped); model %s%s%s, "
	       "%.1f s, %.1f states/s, -j %u%s\n",
	       c->done, c->done - c->n_failed, c->n_failed, c->dups,
	       crash_model_name(c->o.model), c->o.served ? " (served)" : "",
	       c->o.tear ? ", torn" : "", secs, rate, c->o.jobs,
	       interrupted ? ", INTERRUPTED" : "");
}

/* ------------------------------------------------------------------ */
/* Self-check (X6).                                                    */

static int replay_hash(struct ctx *c, bool trim_zero, uint8_t out[32])
{
	const struct crash_plan *p = c->plan;
	uint8_t *mem;
	uint32_t i;

	mem = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		   c->base_fd, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	for (i = 0; i < p->n_writes; i++) {
		const struct crash_write *w = &p->writes[i];

		if (w->kind == CRASH_W_DATA)
			memcpy(mem + w->off, w->data, w->len);
		else if (w->kind == CRASH_W_ZERO || trim_zero)
			memset(mem + w->off, 0, w->len);
	}
	gnutls_hash_fast(GNUTLS_DIG_SHA256, mem, c->size, out);
	munmap(mem, c->size);
	return 0;
}

/* Returns 0 ok or skipped, -EBADMSG on a mismatch; msg says which. */
static int selfcheck(struct ctx *c, char *msg, size_t len)
{
	const struct trace_end *e = c->tf.end;
	uint8_t h[32];
	bool has_trim = false;
	uint32_t i;
	int r;

	if (!e) {
		snprintf(msg, len, "skipped (no END record)");
		return 0;
	}
	if (e->flags & TRACE_END_INCOMPLETE) {
		snprintf(msg, len, "skipped (the recording was incomplete)");
		return 0;
	}
	if (c->plan->n_failed) {
		snprintf(msg, len, "skipped (%u writes failed)",
			 c->plan->n_failed);
		return 0;
	}
	if (e->final_size != c->size) {
		snprintf(msg, len,
			 "FAILED: final size %" PRIu64
			 " != export size %" PRIu64,
			 e->final_size, c->size);
		return -EBADMSG;
	}
	for (i = 0; i < c->plan->n_writes; i++)
		has_trim |= c->plan->writes[i].kind == CRASH_W_TRIM;
	r = replay_hash(c, true, h);
	if (!r && memcmp(h, e->final_sha256, 32) && has_trim)
		r = replay_hash(c, false, h);
	if (r < 0) {
		snprintf(msg, len, "skipped (%s)", strerror(-r));
		return 0;
	}
	if (memcmp(h, e->final_sha256, 32)) {
		char a[65], b[65];

		tracefile_hex(h, 32, a);
		tracefile_hex(e->final_sha256, 32, b);
		snprintf(msg, len,
			 "FAILED: replaying %u writes gives sha256 %s, the "
			 "final file had %s",
			 c->plan->n_writes, a, b);
		return -EBADMSG;
	}
	snprintf(msg, len,
		 "ok (%u writes replayed onto the base give the "
		 "final SHA-256)",
		 c->plan->n_writes);
	return 0;
}

/* ------------------------------------------------------------------ */
/* --state ID --out IMG.                                               */

static int materialise(struct ctx *c)
{
	struct crash_scratch *s = crash_scratch_new(c->plan);
	struct crash_extents d = {0}, x = {0};
	struct crash_state st = {0};
	uint64_t point, item;
	unsigned int k;
	bool reflinked;
	int fd = -1, r;

	if (!s)
		return 2;
	if (parse_state_id(c->o.state_id, &point, &item) < 0 ||
	    point >= c->plan->n_points) {
		fprintf(stderr,
			"loopd: --state %s: expected POINT.ITEM with "
			"POINT < %u\n",
			c->o.state_id, c->plan->n_points);
		r = 2;
		goto out;
	}
	k = (unsigned int)point;
	crash_point_open(c->plan, s, k);
	if (crash_state_get(c->plan, s, item, &st) < 0) {
		fprintf(stderr,
			"loopd: --state %s: point %u has %" PRIu64 " states\n",
			c->o.state_id, k, c->plan->points[k].items);
		r = 2;
		goto out;
	}
	r = tracefile_copy(c->base_path, c->o.out, &reflinked);
	if (!r)
		fd = open(c->o.out, O_RDWR | O_CLOEXEC);
	if (!r && fd < 0)
		r = -errno;
	if (!r)
		r = crash_durable_diff(c->plan, s, CRASH_BASE, k, &d);
	if (!r)
		r = put_extents(c, fd, NULL, NULL, &d);
	if (!r)
		r = crash_state_extents(c->plan, s, &st, &x);
	if (!r)
		r = put_extents(c, fd, NULL, NULL, &x);
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		fprintf(stderr, "loopd: --out %s: %s\n", c->o.out,
			strerror(-r));
		r = 2;
		goto out;
	}
	printf("state %s: crash %s (seq %" PRIu64
	       "), %s state, %u of %u pending writes present%s, variant %u; "
	       "written to %s\n",
	       c->o.state_id, crash_where(&c->plan->points[k]),
	       c->plan->points[k].t, st.kind, st.n_chosen, st.n_pending,
	       st.torn != UINT32_MAX ? " (one torn)" : "", st.variant,
	       c->o.out);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	crash_state_free(&st);
	crash_extents_free(&d);
	crash_extents_free(&x);
	crash_scratch_free(s);
	return r;
}

/* ------------------------------------------------------------------ */
/* The producer: states in point order (X1, X2).                       */

static bool push(struct ctx *c, struct job *j, double t0)
{
	pthread_mutex_lock(&c->lock);
	while (c->q_len == QUEUE_CAP && !c->tool_error && !stop_requested) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		pthread_mutex_unlock(&c->lock);
		progress(c, t0, false);
		pthread_mutex_lock(&c->lock);
	}
	if (c->tool_error || stop_requested) {
		pthread_mutex_unlock(&c->lock);
		return false;
	}
	c->q[(c->q_head + c->q_len) % QUEUE_CAP] = j;
	c->q_len++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return true;
}

static int produce(struct ctx *c, const bool *sel, double t0)
{
	struct crash_scratch *s = crash_scratch_new(c->plan);
	uint32_t k;

	if (!s)
		return -ENOMEM;
	for (k = 0; k < c->plan->n_points; k++) {
		const struct crash_point *pt = &c->plan->points[k];
		struct trace_dedupe seen = {0};
		uint64_t item, unique = 0, tries = 0;
		uint64_t limit = 20 * (uint64_t)c->budget[k] + 1000;

		if (!sel[k] || !c->budget[k])
			continue;
		crash_point_open(c->plan, s, k);
		for (item = 0;
		     item < pt->items && unique < c->budget[k] && tries < limit;
		     item++, tries++) {
			struct crash_state st;
			struct job *j = calloc(1, sizeof *j);
			uint8_t key[16] = {0};
			int r;

			if (!j)
				goto out_nomem;
			r = crash_state_get(c->plan, s, item, &st);
			if (!r)
				r = crash_state_extents(c->plan, s, &st, &j->x);
			if (r < 0) {
				crash_state_free(&st);
				free(j);
				goto out_nomem;
			}
			memcpy(key, &j->x.key, sizeof j->x.key);
			if (trace_dedupe_find(&seen, key, 0)) {
				pthread_mutex_lock(&c->lock);
				c->dups++;
				pthread_mutex_unlock(&c->lock);
				crash_extents_free(&j->x);
				free(j);
				crash_state_free(&st);
				continue;
			}
			if (trace_dedupe_add(&seen, key, 0, 1) < 0) {
				crash_state_free(&st);
				crash_extents_free(&j->x);
				free(j);
				goto out_nomem;
			}
			j->point = k;
			j->item = item;
			j->kind = st.kind;
			j->n_chosen = st.n_chosen;
			j->n_pending = st.n_pending;
			j->variant = st.variant;
			j->torn = st.torn != UINT32_MAX;
			crash_state_free(&st);
			unique++;
			if (!push(c, j, t0)) {
				crash_extents_free(&j->x);
				free(j);
				trace_dedupe_free(&seen);
				goto out;
			}
		}
		/* What the point could not fill is not planned any more. */
		pthread_mutex_lock(&c->lock);
		c->planned -= c->budget[k] - unique;
		pthread_mutex_unlock(&c->lock);
		trace_dedupe_free(&seen);
	}
out:
	crash_scratch_free(s);
	return 0;
out_nomem:
	crash_scratch_free(s);
	return -ENOMEM;
}

/* ------------------------------------------------------------------ */

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { OPT_TEAR = 256, OPT_TEAR_UNIT, OPT_JSON, OPT_STATE };
	static const struct option opts[] = {
		{"check", required_argument, NULL, 'c'},
		{"model", required_argument, NULL, 'm'},
		{"max-states", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 's'},
		{"exhaustive", required_argument, NULL, 'E'},
		{"tear", no_argument, NULL, OPT_TEAR},
		{"tear-unit", required_argument, NULL, OPT_TEAR_UNIT},
		{"after", required_argument, NULL, 'a'},
		{"jobs", required_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"json", no_argument, NULL, OPT_JSON},
		{"state", required_argument, NULL, OPT_STATE},
		{"out", required_argument, NULL, 'o'},
		{"base", required_argument, NULL, 'b'},
		{"workdir", required_argument, NULL, 'w'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t v;
	int ch;

	memset(o, 0, sizeof *o);
	o->served = true;
	o->max_states = 10000;
	o->seed = 1;
	o->exhaustive = 10;
	o->jobs = cpus > 0 ? (uint32_t)cpus : 1;
	o->timeout = 60;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:m:n:s:E:a:j:t:o:b:w:qh", opts,
				 NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->check = optarg;
			break;
		case 'm':
			o->served = false;
			if (!strcmp(optarg, "served"))
				o->served = true;
			else if (!strcmp(optarg, "contract"))
				o->model = CRASH_CONTRACT;
			else if (!strcmp(optarg, "barrier"))
				o->model = CRASH_BARRIER;
			else if (!strcmp(optarg, "no-flush"))
				o->model = CRASH_NOFLUSH;
			else if (!strcmp(optarg, "skip-one-flush"))
				o->model = CRASH_SKIP1;
			else {
				fprintf(stderr,
					"loopd: --model %s: expected served, "
					"contract, barrier, no-flush or "
					"skip-one-flush\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'n':
		case 's':
		case 'E':
		case 'j':
		case 't':
		case OPT_TEAR_UNIT:
			if (parse_u64(optarg, &v) < 0 ||
			    (ch == 'E' && v > 20) ||
			    (ch == 'j' && (v < 1 || v > 256)) ||
			    (ch == 't' && (v < 1 || v > 86400)) ||
			    (ch == OPT_TEAR_UNIT &&
			     (v < 1 || v > (1u << 30) || (v & (v - 1))))) {
				fprintf(stderr,
					"loopd: crash: bad option value "
					"'%s' (try 'loopd crash --help')\n",
					optarg);
				return -EINVAL;
			}
			if (ch == 'n')
				o->max_states = v;
			else if (ch == 's')
				o->seed = v;
			else if (ch == 'E')
				o->exhaustive = (uint32_t)v;
			else if (ch == 'j')
				o->jobs = (uint32_t)v;
			else if (ch == 't')
				o->timeout = (uint32_t)v;
			else
				o->unit = (uint32_t)v;
			break;
		case OPT_TEAR:
			o->tear = true;
			break;
		case 'a':
			o->after = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_STATE:
			o->state_id = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'b':
			o->base = optarg;
			break;
		case 'w':
			o->workdir = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage_crash(stdout);
			return 1;
		default:
			fprintf(stderr, "Try 'loopd crash --help'.\n");
			return -EINVAL;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "loopd: crash: expected one TRACE (try 'loopd "
				"crash --help')\n");
		return -EINVAL;
	}
	o->trace = argv[optind];
	if (!o->state_id && !o->check) {
		fprintf(stderr, "loopd: crash: --check CMD|ext4 or --state ID "
				"--out IMG is required\n");
		return -EINVAL;
	}
	if (o->state_id && !o->out) {
		fprintf(stderr, "loopd: crash: --state needs --out IMG\n");
		return -EINVAL;
	}
	o->ext4 = o->check && !strcmp(o->check, "ext4");
	return 0;
}

static int open_base(struct ctx *c)
{
	uint8_t h[32];
	struct stat st;
	int r;

	c->base_path = c->o.base ? c->o.base : c->tf.h.base_path;
	c->size = c->tf.h.size;
	r = tracefile_sha256(c->base_path, h, NULL);
	if (r < 0) {
		fprintf(stderr, "loopd: base image %s: %s\n", c->base_path,
			strerror(-r));
		return r;
	}
	if (memcmp(h, c->tf.h.base_sha256, 32)) {
		fprintf(stderr,
			"loopd: base image %s is not the one recorded (its "
			"SHA-256 differs)\n",
			c->base_path);
		return -EINVAL;
	}
	c->base_fd = open(c->base_path, O_RDONLY | O_CLOEXEC);
	if (c->base_fd < 0 || fstat(c->base_fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != c->size) {
		fprintf(stderr,
			"loopd: base image %s: %lld bytes, the export "
			"had %" PRIu64 "\n",
			c->base_path, (long long)st.st_size, c->size);
		return -EINVAL;
	}
	c->n_chunks = (c->size + CHUNK - 1) / CHUNK;
	c->base_data = calloc(c->n_chunks + 1, 1);
	if (!c->base_data)
		return -ENOMEM;
	for (off_t off = 0, data, hole; off < (off_t)c->size; off = hole) {
		data = lseek(c->base_fd, off, SEEK_DATA);
		if (data < 0)
			break;
		hole = lseek(c->base_fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)c->size;
		for (uint64_t k = (uint64_t)data / CHUNK;
		     k * CHUNK < (uint64_t)hole && k < c->n_chunks; k++)
			c->base_data[k] = 1;
	}
	c->base_map = c->size ? mmap(NULL, c->size, PROT_READ, MAP_SHARED,
				     c->base_fd, 0)
			      : NULL;
	if (c->base_map == MAP_FAILED) {
		c->base_map = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int make_workdir(struct ctx *c)
{
	char tmp[PATH_MAX];

	if (c->o.workdir) {
		snprintf(c->workdir, sizeof c->workdir, "%s/loopd-crash.XXXXXX",
			 c->o.workdir);
	} else {
		snprintf(tmp, sizeof tmp, "%s", c->base_path);
		snprintf(c->workdir, sizeof c->workdir,
			 "%s/.loopd-crash.XXXXXX", dirname(tmp));
	}
	if (mkdtemp(c->workdir))
		return 0;
	if (c->o.workdir)
		return -errno;
	snprintf(c->workdir, sizeof c->workdir, "%s/loopd-crash.XXXXXX",
		 getenv("TMPDIR") ?: "/tmp");
	return mkdtemp(c->workdir) ? 0 : -errno;
}

static int explore(struct ctx *c)
{
	const struct crash_plan *p = c->plan;
	struct worker *w = NULL;
	char selfmsg[512];
	bool *sel = NULL;
	uint32_t k, i, started = 0;
	uint64_t after_seq = 0;
	double t0, secs;
	int r, ret = 2;
	bool interrupted;

	r = selfcheck(c, selfmsg, sizeof selfmsg);
	if (!c->o.json)
		printf("self-check (A7): %s\n", selfmsg);
	if (r < 0) {
		fprintf(stderr, "loopd: the recorder self-check failed: the "
				"trace does not reproduce the final file\n");
		return 2;
	}
	if (c->o.after) {
		for (i = 0; i < p->n_marks; i++)
			if (!strcmp(p->marks[i].label, c->o.after))
				break;
		if (i == p->n_marks) {
			fprintf(stderr, "loopd: --after %s: no such mark\n",
				c->o.after);
			return 2;
		}
		after_seq = p->marks[i].seq;
	}
	sel = calloc(p->n_points + 1, sizeof *sel);
	c->budget = calloc(p->n_points + 1, sizeof *c->budget);
	c->pt_states = calloc(p->n_points + 1, sizeof *c->pt_states);
	c->pt_failed = calloc(p->n_points + 1, sizeof *c->pt_failed);
	w = calloc(c->o.jobs, sizeof *w);
	if (!sel || !c->budget || !c->pt_states || !c->pt_failed || !w)
		goto out;
	for (k = 0; k < p->n_points; k++)
		sel[k] = p->points[k].t > after_seq;
	if (allocate(c, sel) < 0)
		goto out;
	for (k = 0; k < p->n_points; k++)
		c->planned += c->budget[k];
	if (make_workdir(c) < 0) {
		fprintf(stderr, "loopd: cannot make a working directory: %s\n",
			strerror(errno));
		goto out;
	}
	if (!c->o.json)
		printf("exploring %" PRIu64 " states at most, in %s, -j %u\n",
		       c->planned, c->workdir, c->o.jobs);
	for (i = 0; i < c->o.jobs; i++) {
		w[i].c = c;
		w[i].id = (int)i;
		r = worker_init(&w[i]);
		if (r < 0) {
			fprintf(stderr, "loopd: working image %s: %s\n",
				w[i].img, strerror(-r));
			worker_fini(&w[i]);
			goto out_stop;
		}
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i])) {
			worker_fini(&w[i]);
			goto out_stop;
		}
		started++;
	}
	t0 = now_s();
	r = produce(c, sel, t0);
	if (r < 0)
		tool_error(c, "producing states", r);
	pthread_mutex_lock(&c->lock);
	c->produced = true;
	pthread_cond_broadcast(&c->cond);
	while (c->q_len && !c->tool_error && !stop_requested) {
		pthread_mutex_unlock(&c->lock);
		progress(c, t0, false);
		usleep(100000);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	ret = 0;
out_stop:
	pthread_mutex_lock(&c->lock);
	c->produced = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < started; i++) {
		pthread_join(w[i].th, NULL);
		worker_fini(&w[i]);
	}
	if (c->workdir[0])
		rmdir(c->workdir);
	if (ret)
		goto out;
	secs = now_s() - t0;
	progress(c, t0, true);
	interrupted = stop_requested;
	if (c->tool_error) {
		fprintf(stderr, "loopd: %s\n", c->tool_msg);
		ret = 2;
		goto out;
	}
	report(c, sel, secs, selfmsg, interrupted);
	ret = c->n_failed ? 1 : interrupted ? 2 : 0;
out:
	free(sel);
	free(w);
	return ret;
}

int cmd_crash(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct ctx c = {0};
	const char *why;
	char err[512];
	int r, ret = 2;

	r = parse_args(argc, argv, &c.o);
	if (r)
		return r > 0 ? 0 : 2;
	c.base_fd = -1;
	c.verify = getenv("LOOPD_CRASH_VERIFY") != NULL;
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	if (tracefile_open(c.o.trace, &c.tf, err, sizeof err) < 0) {
		fprintf(stderr, "loopd: %s\n", err);
		return 2;
	}
	if (c.tf.why)
		fprintf(stderr,
			"loopd: %s: torn tail: %zu bytes dropped (%s); using "
			"the valid prefix\n",
			c.o.trace, c.tf.len - c.tf.valid, c.tf.why);
	if (c.o.served) {
		c.o.model = c.tf.h.flush_mode == TRACE_FLUSH_BARRIER
				    ? CRASH_BARRIER
			    : c.tf.h.flush_mode == TRACE_FLUSH_UNSAFE
				    ? CRASH_NOFLUSH
				    : CRASH_CONTRACT;
	}
	if (!c.o.unit)
		c.o.unit = c.tf.h.atomic;
	if (c.o.tear && c.o.unit < c.tf.h.atomic)
		fprintf(stderr,
			"loopd: warning: tearing at %u bytes, below the "
			"advertised atomic unit %u: failures may be no "
			"device bug\n",
			c.o.unit, c.tf.h.atomic);
	{
		struct crash_opts co = {.model = c.o.model,
					.seed = c.o.seed,
					.exhaustive = c.o.exhaustive,
					.tear = c.o.tear,
					.unit = c.o.unit};

		r = crash_plan_build(&c.tf.h, c.tf.recs, c.tf.n, &co, &c.plan,
				     &why);
	}
	if (r < 0) {
		fprintf(stderr, "loopd: %s: %s\n", c.o.trace,
			why ? why : strerror(-r));
		goto out;
	}
	if (open_base(&c) < 0)
		goto out;
	if (!c.o.json && !c.o.state_id) {
		printf("trace %s: %zu records%s, %u writes, %u flushes, %u "
		       "FUA, "
		       "%u crash points, flush mode %s\n",
		       c.o.trace, c.tf.n,
		       !c.tf.ended ? " (no END)"
		       : c.tf.end->flags & TRACE_END_INCOMPLETE
			       ? " (INCOMPLETE: the recording stopped early)"
			       : "",
		       c.plan->n_writes, c.plan->n_flushes, c.plan->n_fua,
		       c.plan->n_points,
		       trace_flush_mode_name(c.tf.h.flush_mode));
		printf("model %s%s, seed %" PRIu64 ", E=%u, max states %" PRIu64
		       "%s, check %s\n",
		       crash_model_name(c.o.model),
		       c.o.served ? " (served)" : "", c.o.seed, c.o.exhaustive,
		       c.o.max_states, c.o.tear ? ", tearing" : "", c.o.check);
		if (c.plan->n_conc_pairs)
			printf("note: %u pairs of concurrent overlapping "
			       "writes; both orders are explored\n",
			       c.plan->n_conc_pairs);
		fflush(stdout);
	}
	if (c.o.state_id) {
		ret = materialise(&c);
		goto out;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ret = explore(&c);
out:
	if (c.base_map)
		munmap((void *)c.base_map, c.size);
	if (c.base_fd >= 0)
		close(c.base_fd);
	crash_plan_free(c.plan);
	free(c.budget);
	free(c.pt_states);
	free(c.pt_failed);
	free(c.fails);
	free(c.base_data);
	tracefile_close(&c.tf);
	return ret;
}
