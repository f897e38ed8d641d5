/* SPDX-License-Identifier: MIT */
/*
 * explore.c: one run of `loopd crash TRACE --check CMD|ext4|...`, the crash
 * explorer: it opens the trace and its base image, has states.c plan the
 * crash points and the states each allows under a model, shares the
 * budget among them (X1, budget.c), produces the states in point order
 * for the -j workers (pool.c), which materialise each one (image.c) and
 * check it (check.c), and reports (report.c).  --state ID --out IMG
 * rebuilds one state instead; --is-state IMG asks the membership oracle
 * (isstate.c) whether IMG is a state at all.  The files and their rules
 * are listed in explore.h; docs/crash.md is the user's guide.
 *
 * X7. IDs.  A state is "K.I": point K of the plan, item I of its list.
 *     It depends on the trace, model, seed, E and --tear only, so
 *     `--state K.I --out IMG` rebuilds it under the same options.
 */
#include "crash/explore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "crash/budget.h"
#include "util/log.h"

/* X7: a state ID, "POINT.ITEM". */
static int parse_state_id(const char *id, uint64_t *point, uint64_t *item)
{
	const char *dot = strchr(id, '.');
	char head[24];

	if (!dot || (size_t)(dot - id) >= sizeof head)
		return -EINVAL;
	memcpy(head, id, (size_t)(dot - id));
	head[dot - id] = 0;
	return cli_parse_u64(head, point) < 0 ? -EINVAL
					      : cli_parse_u64(dot + 1, item);
}

/* ------------------------------------------------------------------ */
/* The trace, the plan and the base.                                   */

static int open_trace(struct ctx *c)
{
	char err[512];
	int r;

	r = tracefile_open(c->o.trace, &c->tf, err, sizeof err);
	if (r < 0) {
		log_msg("%s", err);
		return r;
	}
	if (c->tf.why)
		log_msg("%s: torn tail: %zu bytes dropped (%s); using the "
			"valid prefix",
			c->o.trace, c->tf.len - c->tf.valid, c->tf.why);
	return 0;
}

/* The model (served: what the recorded flush mode promises), the tearing
   unit, then the plan. */
static int build_plan(struct ctx *c)
{
	struct opts *o = &c->o;
	const struct trace_header *h = &c->tf.h;
	struct crash_opts co;
	const char *why = NULL;
	int r;

	if (o->served)
		o->model = h->flush_mode == FLUSH_BARRIER  ? CRASH_BARRIER
			   : h->flush_mode == FLUSH_UNSAFE ? CRASH_NOFLUSH
							   : CRASH_CONTRACT;
	if (!o->unit)
		o->unit = h->atomic;
	if (o->tear && o->unit < h->atomic)
		log_msg("warning: tearing at %u bytes, below the advertised "
			"atomic unit %u: failures may be no device bug",
			o->unit, h->atomic);
	co = (struct crash_opts){.model = o->model,
				 .seed = o->seed,
				 .exhaustive = o->exhaustive,
				 .tear = o->tear,
				 .garbage = o->garbage,
				 .unit = o->unit};
	r = crash_plan_build(h, c->tf.recs, c->tf.n, &co, &c->plan, &why);
	if (r < 0)
		log_msg("%s: %s", o->trace, why ? why : strerror(-r));
	return r;
}

/* The base image: the one the trace recorded (SHA-256), of its size. */
static int open_base(struct ctx *c)
{
	uint8_t h[32];
	struct stat st;
	int r;

	c->base_path = c->o.base ? c->o.base : c->tf.h.base_path;
	c->size = c->tf.h.size;
	r = tracefile_sha256(c->base_path, h, NULL);
	if (r < 0) {
		log_msg("base image %s: %s", c->base_path, strerror(-r));
		return r;
	}
	if (memcmp(h, c->tf.h.base_sha256, 32)) {
		log_msg("base image %s is not the one recorded (its SHA-256 "
			"differs)",
			c->base_path);
		return -EINVAL;
	}
	c->base_fd = open(c->base_path, O_RDONLY | O_CLOEXEC);
	if (c->base_fd < 0 || fstat(c->base_fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != c->size) {
		log_msg("base image %s: %lld bytes, the export had %" PRIu64,
			c->base_path, (long long)st.st_size, c->size);
		return -EINVAL;
	}
	return image_base_map(c);
}

/* ------------------------------------------------------------------ */
/* --state ID --out IMG.                                               */

/* X7: rebuild state ID into --out. */
static int explore_state(struct ctx *c)
{
	struct crash_scratch *s = crash_scratch_new(c->plan);
	struct crash_state st = {0};
	uint64_t point, item;
	uint32_t k;
	int r;

	if (!s)
		return -ENOMEM;
	r = parse_state_id(c->o.state_id, &point, &item);
	if (r < 0 || point >= c->plan->n_points) {
		log_msg("--state %s: expected POINT.ITEM with POINT < %u",
			c->o.state_id, c->plan->n_points);
		r = -EINVAL;
		goto out;
	}
	k = (uint32_t)point;
	crash_point_open(c->plan, s, k);
	r = crash_state_get(c->plan, s, item, &st);
	if (r < 0) {
		log_msg("--state %s: point %u has %" PRIu64 " states",
			c->o.state_id, k, c->plan->points[k].items);
		goto out;
	}
	r = image_write_state(c, s, k, &st, c->o.out);
	if (r < 0) {
		log_msg("--out %s: %s", c->o.out, strerror(-r));
		goto out;
	}
	report_state(c, k, &st);
out:
	crash_state_free(&st);
	crash_scratch_free(s);
	return r;
}

/* ------------------------------------------------------------------ */
/* Exploring.                                                          */

/* The self-check (X6); a trace that fails it is not explored. */
static int run_selfcheck(const struct ctx *c, char *msg, size_t len)
{
	int r = selfcheck(c, msg, len);

	report_selfcheck(c, msg);
	if (r < 0)
		log_msg("the recorder self-check failed: the trace does not "
			"reproduce the final file");
	return r;
}

/* --after LABEL: the seq of the first mark LABEL (0 without --after). */
static int find_after(const struct ctx *c, uint64_t *seq)
{
	const struct crash_plan *p = c->plan;
	uint32_t i;

	*seq = 0;
	if (!c->o.after)
		return 0;
	for (i = 0; i < p->n_marks; i++)
		if (!strcmp(p->marks[i].label, c->o.after))
			break;
	if (i == p->n_marks) {
		log_msg("--after %s: no such mark", c->o.after);
		return -ENOENT;
	}
	*seq = p->marks[i].seq;
	return 0;
}

/* X1: the points after --after are selected (sel), each gets its budget;
   the states planned in all. */
static int plan_budget(struct ctx *c, bool *sel, uint64_t after_seq)
{
	const struct crash_plan *p = c->plan;
	struct budget_point *bp = calloc(p->n_points + 1, sizeof *bp);
	uint32_t k;

	if (!bp)
		return -ENOMEM;
	for (k = 0; k < p->n_points; k++) {
		sel[k] = p->points[k].t > after_seq;
		bp[k].demand = sel[k] ? budget_demand(&p->points[k]) : 0;
		bp[k].n_pending = p->points[k].n_pending;
	}
	budget_allocate(bp, p->n_points, c->o.max_states, c->o.seed, c->budget);
	for (k = 0; k < p->n_points; k++)
		c->planned += c->budget[k];
	free(bp);
	return 0;
}

/*
 * X9. The working images go where checks run fastest: --workdir if given;
 *     else /dev/shm (tmpfs: e2fsck on an image there took 10 ms against
 *     17 ms on ext4) when the images fit, using at most half of its free
 *     space; else next to the base; else $TMPDIR.  An image costs what the
 *     base holds plus what the states write, estimated as the base's
 *     allocated bytes plus the size of the trace (its payloads), per job.
 */
static bool fits_in_shm(const struct ctx *c)
{
	struct statvfs sv;
	struct stat st;
	uint64_t need, jobs = c->o.jobs ? c->o.jobs : 1;

	if (fstat(c->base_fd, &st) < 0 || statvfs("/dev/shm", &sv) < 0)
		return false;
	need = ((uint64_t)st.st_blocks * 512 + c->tf.len + (16u << 20)) *
	       (jobs + 1);
	return need <= (uint64_t)sv.f_bavail * sv.f_frsize / 2;
}

static int make_workdir(struct ctx *c)
{
	char tmp[PATH_MAX];

	if (c->o.workdir) {
		snprintf(c->workdir, sizeof c->workdir, "%s/loopd-crash.XXXXXX",
			 c->o.workdir);
		return mkdtemp(c->workdir) ? 0 : -errno;
	}
	if (fits_in_shm(c)) {
		snprintf(c->workdir, sizeof c->workdir,
			 "/dev/shm/loopd-crash.XXXXXX");
		if (mkdtemp(c->workdir))
			return 0;
	}
	snprintf(tmp, sizeof tmp, "%s", c->base_path);
	snprintf(c->workdir, sizeof c->workdir, "%s/.loopd-crash.XXXXXX",
		 dirname(tmp));
	if (mkdtemp(c->workdir))
		return 0;
	snprintf(c->workdir, sizeof c->workdir, "%s/loopd-crash.XXXXXX",
		 getenv("TMPDIR") ?: "/tmp");
	return mkdtemp(c->workdir) ? 0 : -errno;
}

/*
 * X1, X2: the states of each selected point, in point order, as jobs for
 * the workers, up to the point's budget of distinct images.  Returns 0
 * (also when the run stops early) or -ENOMEM.
 */
static int produce_point(struct ctx *c, struct crash_scratch *s, uint32_t k,
			 double t0)
{
	const struct crash_point *pt = &c->plan->points[k];
	struct trace_dedupe seen = {0};
	uint64_t item, unique = 0;
	uint64_t limit = 20 * (uint64_t)c->budget[k] + 1000;
	struct job *j;
	int r = 0;

	crash_point_open(c->plan, s, k);
	for (item = 0;
	     item < pt->items && unique < c->budget[k] && item < limit;
	     item++) {
		r = image_job(c, s, &seen, k, item, &j);
		if (r < 0)
			break;
		if (!j) {
			pthread_mutex_lock(&c->lock);
			c->dups++;
			pthread_mutex_unlock(&c->lock);
			continue;
		}
		unique++;
		r = pool_push(c, j, t0);
		if (r < 0) {
			crash_extents_free(&j->x);
			free(j);
			break;
		}
	}
	/* What the point could not fill is not planned any more. */
	if (!r) {
		pthread_mutex_lock(&c->lock);
		c->planned -= c->budget[k] - unique;
		pthread_mutex_unlock(&c->lock);
	}
	trace_dedupe_free(&seen);
	return r;
}

static int produce(struct ctx *c, const bool *sel, double t0)
{
	struct crash_scratch *s = crash_scratch_new(c->plan);
	uint32_t k;
	int r = 0;

	if (!s)
		return -ENOMEM;
	for (k = 0; k < c->plan->n_points && !r; k++)
		if (sel[k] && c->budget[k])
			r = produce_point(c, s, k, t0);
	crash_scratch_free(s);
	return r == -ECANCELED ? 0 : r;
}

/* One job on worker w: X3 (materialise), X5 (check), X4 (restore). */
void explore_job(struct worker *w, const struct job *j)
{
	struct ctx *c = w->c;
	char detail[DETAIL_MAX];
	bool pass;
	int r;

	r = image_advance(&w->im, j->point);
	if (r < 0) {
		pool_fail(c, "advancing a working image", r);
		return;
	}
	r = image_apply(&w->im, j);
	if (r < 0) {
		pool_fail(c, "writing a working image", r);
		return;
	}
	r = check_run(&w->ck, &c->o, &pass, detail, sizeof detail);
	if (r < 0) {
		char msg[DETAIL_MAX + 64];

		snprintf(msg, sizeof msg, "cannot run the check%s%s",
			 detail[0] ? ": " : "", detail);
		pool_fail(c, msg, r);
		return;
	}
	report_record(c, j, pass, detail);
	r = image_restore(&w->im, j);
	if (r < 0)
		pool_fail(c, "restoring a working image", r);
	/* Testing aid: prove X4 on every state. */
	if (!r && c->verify && image_verify(&w->im) < 0)
		pool_fail(c,
			  "LOOPD_CRASH_VERIFY: the restored image is not "
			  "D(t)",
			  -EIO);
}

static int worker_init(struct worker *w)
{
	int r = image_open(&w->im, w->c, w->id);

	return r < 0 ? r
		     : check_init(&w->ck, &w->c->o, w->c->workdir, w->id,
				  w->im.path);
}

static void worker_fini(struct worker *w)
{
	image_close(&w->im);
	check_fini(&w->ck);
}

/* Start the workers; the number started is in *started. */
static int start_workers(struct ctx *c, struct worker *w, uint32_t *started)
{
	uint32_t i;
	int r;

	for (i = 0; i < c->o.jobs; i++) {
		w[i].c = c;
		w[i].id = (int)i;
		r = worker_init(&w[i]);
		if (r < 0)
			log_msg("working image %s: %s", w[i].im.path,
				strerror(-r));
		if (!r)
			r = pool_start(&w[i]);
		if (r < 0) {
			worker_fini(&w[i]);
			return r;
		}
		(*started)++;
	}
	return 0;
}

/* The workers run the states the producer gives them; *t0 is the start. */
static int run_states(struct ctx *c, const bool *sel, struct worker *w,
		      double *t0)
{
	uint32_t i, started = 0;
	int r;

	r = start_workers(c, w, &started);
	if (!r) {
		*t0 = report_clock();
		r = produce(c, sel, *t0);
		if (r < 0)
			pool_fail(c, "producing states", r);
		pool_drain(c, *t0);
		r = 0;
	}
	pool_stop(c, w, started);
	for (i = 0; i < started; i++)
		worker_fini(&w[i]);
	if (c->workdir[0])
		rmdir(c->workdir);
	return r;
}

/* The end of a run: the progress bar's last line, then the report. */
static int finish(struct ctx *c, const bool *sel, double t0,
		  const char *selfmsg, struct outcome *out)
{
	double secs = report_clock() - t0;

	report_progress(c, t0, true);
	out->interrupted = pool_interrupted();
	if (c->tool_error) {
		log_msg("%s", c->tool_msg);
		return -EIO;
	}
	report_results(c, sel, secs, selfmsg, out->interrupted);
	out->failed = c->n_failed > 0;
	return 0;
}

/* Explore the selected points' states; 0 when the report was made. */
static int explore(struct ctx *c, struct outcome *out)
{
	const uint32_t n = c->plan->n_points;
	struct worker *w = NULL;
	uint64_t after_seq;
	char selfmsg[512];
	bool *sel = NULL;
	double t0 = 0;
	int r;

	/* X5: a built-in check without its tools stops here. */
	r = check_ready(&c->o);
	if (!r)
		r = run_selfcheck(c, selfmsg, sizeof selfmsg);
	if (!r)
		r = find_after(c, &after_seq);
	if (r < 0)
		return r;
	sel = calloc(n + 1, sizeof *sel);
	c->budget = calloc(n + 1, sizeof *c->budget);
	c->pt_states = calloc(n + 1, sizeof *c->pt_states);
	c->pt_failed = calloc(n + 1, sizeof *c->pt_failed);
	w = calloc(c->o.jobs, sizeof *w);
	if (!sel || !c->budget || !c->pt_states || !c->pt_failed || !w)
		r = -ENOMEM;
	if (!r)
		r = plan_budget(c, sel, after_seq);
	if (!r) {
		r = make_workdir(c);
		if (r < 0)
			log_msg("cannot make a working directory: %s",
				strerror(-r));
	}
	if (!r) {
		report_start(c);
		r = run_states(c, sel, w, &t0);
	}
	if (!r)
		r = finish(c, sel, t0, selfmsg, out);
	free(sel);
	free(w);
	return r;
}

/* ------------------------------------------------------------------ */

/*
 * The run that cmd_crash() asked for: explore, or rebuild one state.
 * Returns 0 (out says how it ended) or -errno after saying why.
 */
int explore_run(const struct opts *o, struct outcome *out)
{
	struct ctx c = {.o = *o, .base_fd = -1};
	int r;

	c.verify = getenv("LOOPD_CRASH_VERIFY") != NULL;
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	r = open_trace(&c);
	if (r < 0)
		goto out_sync;
	r = build_plan(&c);
	if (!r)
		r = open_base(&c);
	if (!r && c.o.is_state) {
		r = isstate_run(&c, out);
	} else if (!r) {
		report_plan(&c);
		if (c.o.state_id) {
			r = explore_state(&c);
		} else {
			pool_catch_signals();
			r = explore(&c, out);
		}
	}
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
	free(c.base_zero);
	tracefile_close(&c.tf);
out_sync:
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
	return r;
}
