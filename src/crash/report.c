/* SPDX-License-Identifier: MIT */
/*
 * report.c: what `loopd crash` shows: the plan before the run, the
 * results it records as states pass or fail, the progress bar on
 * stderr, and the report on stdout (text, or JSON with --json), each
 * failure with the command that rebuilds its state (X7).
 */
#include <inttypes.h>
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

/* --json: the totals. */
static void json_head(const struct ctx *c, uint32_t n_sel, double secs,
		      double rate, const char *selfcheck, bool interrupted)
{
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
	       flush_mode_name(c->plan->hdr.flush_mode), c->o.seed,
	       c->o.max_states, c->o.exhaustive, c->o.tear ? "true" : "false",
	       c->o.unit, c->plan->n_points, n_sel, c->done,
	       c->done - c->n_failed, c->n_failed, c->dups, secs, rate,
	       c->o.jobs);
	json_str(stdout, selfcheck);
	printf(",\"interrupted\":%s", interrupted ? "true" : "false");
}

/* --json: the points that had states checked. */
static void json_points(const struct ctx *c)
{
	const struct crash_plan *p = c->plan;
	uint32_t k, i = 0;

	printf(",\"by_point\":[");
	for (k = 0; k < p->n_points; k++) {
		const struct crash_point *pt = &p->points[k];

		if (!c->pt_states[k])
			continue;
		printf("%s{\"point\":%u,\"seq\":%" PRIu64
		       ",\"event\":\"%s\",\"mark\":",
		       i++ ? "," : "", k, pt->t, crash_why_name(pt->why));
		json_str(stdout, mark_of(c, pt));
		printf(",\"pending\":%u,\"durable\":%u,\"exhaustive\":%"
		       "s,"
		       "\"states\":%u,\"failed\":%u}",
		       pt->n_pending, pt->n_durable,
		       pt->exhaustive ? "true" : "false", c->pt_states[k],
		       c->pt_failed[k]);
	}
	printf("]");
}

/* --json: the failing states, with their IDs (X7). */
static void json_failures(const struct ctx *c)
{
	const struct crash_plan *p = c->plan;
	size_t i;

	printf(",\"failures\":[");
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
		json_head(c, n_sel, secs, rate, selfcheck, interrupted);
		json_points(c);
		json_failures(c);
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
