/* SPDX-License-Identifier: MIT */
/*
 * report.c: what `loopd crash` shows: the plan before the run, the
 * results it records as states pass or fail, the progress bar on
 * stderr, and the report on stdout (text, or JSON with --json), each
 * failure with the command that rebuilds its state (X7).
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "crash/explore.h"

/* Seconds on a monotonic clock, for the rate and the time taken. */
double report_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The trace, the plan and the options, before anything runs. */
void report_plan(const struct ctx *c)
{
	const struct tracefile *tf = &c->tf;
	const struct crash_plan *p = c->plan;

	if (c->o.json || c->o.state_id)
		return;
	printf("trace %s: %zu records%s, %u writes, %u flushes, %u "
	       "FUA, "
	       "%u crash points, flush mode %s\n",
	       c->o.trace, tf->n,
	       !tf->ended ? " (no END)"
	       : tf->end->flags & TRACE_END_INCOMPLETE
		       ? " (INCOMPLETE: the recording stopped early)"
		       : "",
	       p->n_writes, p->n_flushes, p->n_fua, p->n_points,
	       flush_mode_name(tf->h.flush_mode));
	printf("model %s%s, seed %" PRIu64 ", E=%u, max states %" PRIu64
	       "%s, check %s\n",
	       crash_model_name(c->o.model), c->o.served ? " (served)" : "",
	       c->o.seed, c->o.exhaustive, c->o.max_states,
	       c->o.tear ? ", tearing" : "", c->o.check);
	if (p->n_conc_pairs)
		printf("note: %u pairs of concurrent overlapping "
		       "writes; both orders are explored\n",
		       p->n_conc_pairs);
	fflush(stdout);
}

/* The result of the self-check (X6), before exploring. */
void report_selfcheck(const struct ctx *c, const char *msg)
{
	if (!c->o.json)
		printf("self-check (A7): %s\n", msg);
}

void report_start(const struct ctx *c)
{
	if (!c->o.json)
		printf("exploring %" PRIu64 " states at most, in %s, -j %u\n",
		       c->planned, c->workdir, c->o.jobs);
}

/* A state was checked (by any worker): count it, keep a failure. */
void report_record(struct ctx *c, const struct job *j, bool pass,
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

/* The progress bar on stderr (a terminal only), at most 5 times a second
   unless final. */
void report_progress(struct ctx *c, double t0, bool final)
{
	static double last;
	double t = report_clock(), rate, eta;
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

/* X7: the command that rebuilds a failing state. */
static void print_repro(const struct ctx *c, const struct failure *f)
{
	printf("    reproduce: loopd crash %s --model %s --seed %" PRIu64,
	       c->o.trace, model_arg(c), c->o.seed);
	if (c->o.exhaustive != 10)
		printf(" -E %u", c->o.exhaustive);
	if (c->o.tear)
		printf(" --tear --tear-unit %u", c->o.unit);
	if (c->o.garbage)
		printf(" --garbage");
	printf(" --state %u.%" PRIu64 " --out IMG\n", f->point, f->item);
}

static int cmp_fail(const void *a, const void *b)
{
	const struct failure *x = a, *y = b;

	if (x->point != y->point)
		return x->point < y->point ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

/* --json (json-c): the totals. */
static void json_head(struct json_object *o, const struct ctx *c,
		      uint32_t n_sel, double secs, double rate,
		      const char *selfcheck, bool interrupted)
{
#define ADD(k, v) json_object_object_add(o, k, v)
	ADD("trace", json_object_new_string(c->o.trace));
	ADD("model", json_object_new_string(crash_model_name(c->o.model)));
	ADD("served_flush_mode",
	    json_object_new_string(flush_mode_name(c->plan->hdr.flush_mode)));
	ADD("seed", json_object_new_uint64(c->o.seed));
	ADD("max_states", json_object_new_uint64(c->o.max_states));
	ADD("exhaustive", json_object_new_int64(c->o.exhaustive));
	ADD("tear", json_object_new_boolean(c->o.tear));
	ADD("tear_unit", json_object_new_int64(c->o.unit));
	ADD("garbage", json_object_new_boolean(c->o.garbage));
	ADD("points", json_object_new_int64(c->plan->n_points));
	ADD("points_selected", json_object_new_int64(n_sel));
	ADD("states", json_object_new_uint64(c->done));
	ADD("passed", json_object_new_uint64(c->done - c->n_failed));
	ADD("failed", json_object_new_uint64(c->n_failed));
	ADD("duplicates", json_object_new_uint64(c->dups));
	ADD("seconds", json_object_new_double(secs));
	ADD("states_per_second", json_object_new_double(rate));
	ADD("jobs", json_object_new_int64(c->o.jobs));
	ADD("selfcheck", json_object_new_string(selfcheck ? selfcheck : ""));
	ADD("interrupted", json_object_new_boolean(interrupted));
#undef ADD
}

/* --json: the points that had states checked. */
static struct json_object *json_points(const struct ctx *c)
{
	const struct crash_plan *p = c->plan;
	struct json_object *a = json_object_new_array();
	uint32_t k;

	for (k = 0; k < p->n_points; k++) {
		const struct crash_point *pt = &p->points[k];
		struct json_object *o;

		if (!c->pt_states[k])
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "point", json_object_new_int64(k));
		json_object_object_add(o, "seq", json_object_new_uint64(pt->t));
		json_object_object_add(
			o, "event",
			json_object_new_string(crash_why_name(pt->why)));
		json_object_object_add(o, "mark",
				       json_object_new_string(mark_of(c, pt)));
		json_object_object_add(o, "pending",
				       json_object_new_int64(pt->n_pending));
		json_object_object_add(o, "durable",
				       json_object_new_int64(pt->n_durable));
		json_object_object_add(o, "exhaustive",
				       json_object_new_boolean(pt->exhaustive));
		json_object_object_add(o, "states",
				       json_object_new_int64(c->pt_states[k]));
		json_object_object_add(o, "failed",
				       json_object_new_int64(c->pt_failed[k]));
		json_object_array_add(a, o);
	}
	return a;
}

/* --json: the failing states, with their IDs (X7). */
static struct json_object *json_failures(const struct ctx *c)
{
	const struct crash_plan *p = c->plan;
	struct json_object *a = json_object_new_array();
	char id[48];
	size_t i;

	for (i = 0; i < c->n_fails; i++) {
		const struct failure *f = &c->fails[i];
		struct json_object *o = json_object_new_object();

		snprintf(id, sizeof id, "%u.%" PRIu64, f->point, f->item);
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "point",
				       json_object_new_int64(f->point));
		json_object_object_add(
			o, "seq",
			json_object_new_uint64(p->points[f->point].t));
		json_object_object_add(o, "kind",
				       json_object_new_string(f->kind));
		json_object_object_add(o, "chosen",
				       json_object_new_int64(f->n_chosen));
		json_object_object_add(o, "pending",
				       json_object_new_int64(f->n_pending));
		json_object_object_add(o, "torn",
				       json_object_new_boolean(f->torn));
		json_object_object_add(o, "mark",
				       json_object_new_string(mark_of(
					       c, &p->points[f->point])));
		json_object_object_add(o, "detail",
				       json_object_new_string(f->detail));
		json_object_array_add(a, o);
	}
	return a;
}

/* Text: one line per failing state, and how to rebuild it. */
static void text_failures(const struct ctx *c)
{
	const struct crash_plan *p = c->plan;
	size_t i;

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
}

/* Text: the table by crash point. */
static void text_points(const struct ctx *c, uint32_t n_sel,
			uint32_t n_fail_pts)
{
	const struct crash_plan *p = c->plan;
	uint32_t k, shown = 0, with_states = 0;

	printf("summary by crash point (%u points, %u selected):\n",
	       p->n_points, n_sel);
	printf("  %6s %10s %6s %8s %8s %7s %7s  %s\n", "point", "seq", "event",
	       "pending", "durable", "states", "failed", "mark");
	for (k = 0; k < p->n_points; k++) {
		const struct crash_point *pt = &p->points[k];

		if (!c->pt_states[k])
			continue;
		with_states++;
		/* All points with failures; the others up to 40 lines. */
		if (!c->pt_failed[k] && shown >= 40 + n_fail_pts)
			continue;
		shown++;
		printf("  %6u %10" PRIu64 " %6s %8u %8u %7u %7u  %s\n", k,
		       pt->t, crash_why_name(pt->why), pt->n_pending,
		       pt->n_durable, c->pt_states[k], c->pt_failed[k],
		       mark_of(c, pt));
	}
	if (with_states > shown)
		printf("  ... %u more points, all passed\n",
		       with_states - shown);
}

/* The report at the end of the run, on stdout. */
void report_results(struct ctx *c, const bool *sel, double secs,
		    const char *selfcheck, bool interrupted)
{
	const struct crash_plan *p = c->plan;
	double rate = secs > 0 ? (double)c->done / secs : 0;
	uint32_t k, n_sel = 0, n_fail_pts = 0;

	if (c->n_fails > 1)
		qsort(c->fails, c->n_fails, sizeof *c->fails, cmp_fail);
	for (k = 0; k < p->n_points; k++) {
		n_sel += sel[k];
		n_fail_pts += c->pt_failed[k] > 0;
	}
	if (c->o.json) {
		struct json_object *o = json_object_new_object();

		json_head(o, c, n_sel, secs, rate, selfcheck, interrupted);
		json_object_object_add(o, "by_point", json_points(c));
		json_object_object_add(o, "failures", json_failures(c));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return;
	}
	text_failures(c);
	text_points(c, n_sel, n_fail_pts);
	printf("self-check (A7): %s\n", selfcheck);
	printf("states: %" PRIu64 " checked, %" PRIu64 " passed, %" PRIu64
	       " failed (%" PRIu64 " duplicates skipped); model %s%s%s, "
	       "%.1f s, %.1f states/s, -j %u%s\n",
	       c->done, c->done - c->n_failed, c->n_failed, c->dups,
	       crash_model_name(c->o.model), c->o.served ? " (served)" : "",
	       c->o.tear ? ", torn" : "", secs, rate, c->o.jobs,
	       interrupted ? ", INTERRUPTED" : "");
}

/* --state ID --out IMG: what was written. */
void report_state(const struct ctx *c, uint32_t k, const struct crash_state *st)
{
	const struct crash_point *pt = &c->plan->points[k];

	printf("state %s: crash %s (seq %" PRIu64
	       "), %s state, %u of %u pending writes present%s, variant %u; "
	       "written to %s\n",
	       c->o.state_id, crash_where(pt), pt->t, st->kind, st->n_chosen,
	       st->n_pending, st->torn != UINT32_MAX ? " (one torn)" : "",
	       st->variant, c->o.out);
}
