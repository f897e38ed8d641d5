/* SPDX-License-Identifier: MIT */
/*
 * plotcmd.c: `loopd trace plot TRACE -o FILE.svg`: its command line, the
 * trace, the crash plan under the model `loopd crash` would use (its
 * points are drawn as ticks; --state K.I rebuilds that state with the
 * same options, X7), then plotdata.c, plot.c and svg.c, and the file.
 * The picture is docs/plot.md's.  Exit status as `loopd trace`: 0 done,
 * 1 error (a trace that cannot be read, a file that cannot be written),
 * 2 usage (a bad option, a state, mark or seq the trace does not have).
 */
#include "trace/plotcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "trace/plot.h"
#include "trace/states.h"
#include "trace/svg.h"
#include "trace/tracefile.h"
#include "util/io.h"
#include "util/log.h"

/* The command line. */
struct pargs {
	const char *trace, *out, *after, *state;
	uint64_t from, to, seed;
	uint32_t width, exhaustive, unit;
	enum crash_model model;
	bool served, tear, garbage, help;
};

static void usage_plot(FILE *f)
{
	fprintf(f,
		"Usage: loopd trace plot TRACE -o FILE.svg [OPTIONS]\n"
		"\n"
		"Draw the requests of a trace over time as SVG: one lane per "
		"connection,\n"
		"the writes over their range of the disk, syncs, the writes "
		"each flush\n"
		"covers, marks and crash points.  x is the trace's seq.\n"
		"\n"
		"Options:\n"
		"  -o, --out FILE.svg   where the SVG goes ('-': stdout)\n"
		"  -w, --width PX       width of the picture (default 1200, "
		"400-16384)\n"
		"      --from SEQ       first seq shown\n"
		"      --to SEQ         last seq shown\n"
		"  -a, --after LABEL    from the first mark LABEL on\n"
		"      --state ID       highlight crash state ID (K.I, as "
		"`loopd crash` prints\n"
		"                       it): the writes it kept and dropped\n"
		"The state and the crash points depend on these, as for "
		"`loopd crash`:\n"
		"  -m, --model MODEL    served (default), contract, barrier, "
		"no-flush,\n"
		"                       skip-one-flush\n"
		"  -s, --seed S         seed (default 1)\n"
		"  -E, --exhaustive N   all subsets up to N pending writes "
		"(10)\n"
		"      --tear, --tear-unit N, --garbage\n"
		"\n"
		"PNG: convert the SVG, e.g. rsvg-convert -o t.png t.svg "
		"(Debian: librsvg2-bin).\n"
		"Exit status: 0 done, 1 error, 2 usage.\n");
}

/* Digits only: strtoull takes blanks, signs and wraps "-1". */
static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || *end || *s < '0' || *s > '9' ? -EINVAL : 0;
}

/* X7: a state ID, "POINT.ITEM". */
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

/* The names `loopd crash --model` takes (crash/cli.c). */
static int parse_model(const char *arg, struct pargs *a)
{
	static const struct {
		const char *name;
		enum crash_model m;
	} models[] = {
		{"contract", CRASH_CONTRACT},
		{"barrier", CRASH_BARRIER},
		{"no-flush", CRASH_NOFLUSH},
		{"skip-one-flush", CRASH_SKIP1},
	};
	size_t i;

	a->served = !strcmp(arg, "served");
	if (a->served)
		return 0;
	for (i = 0; i < sizeof models / sizeof models[0]; i++)
		if (!strcmp(arg, models[i].name)) {
			a->model = models[i].m;
			return 0;
		}
	log_msg("trace plot: --model %s: expected served, contract, barrier, "
		"no-flush or skip-one-flush",
		arg);
	return -EINVAL;
}

enum {
	OPT_FROM = 256,
	OPT_TO,
	OPT_STATE,
	OPT_TEAR,
	OPT_TEAR_UNIT,
	OPT_GARBAGE,
};

static const struct option long_opts[] = {
	{"out", required_argument, NULL, 'o'},
	{"width", required_argument, NULL, 'w'},
	{"from", required_argument, NULL, OPT_FROM},
	{"to", required_argument, NULL, OPT_TO},
	{"after", required_argument, NULL, 'a'},
	{"state", required_argument, NULL, OPT_STATE},
	{"model", required_argument, NULL, 'm'},
	{"seed", required_argument, NULL, 's'},
	{"exhaustive", required_argument, NULL, 'E'},
	{"tear", no_argument, NULL, OPT_TEAR},
	{"tear-unit", required_argument, NULL, OPT_TEAR_UNIT},
	{"garbage", no_argument, NULL, OPT_GARBAGE},
	{"help", no_argument, NULL, 'h'},
	{0},
};

/* The options that take a number, each in its range. */
static int parse_number(int ch, const char *arg, struct pargs *a)
{
	uint64_t v;

	if (parse_u64(arg, &v) < 0 ||
	    (ch == 'w' && (v < PLOT_WIDTH_MIN || v > PLOT_WIDTH_MAX)) ||
	    (ch == 'E' && v > 20) || ((ch == OPT_FROM || ch == OPT_TO) && !v) ||
	    (ch == OPT_TEAR_UNIT &&
	     (v < 1 || v > (1u << 30) || (v & (v - 1))))) {
		log_msg("trace plot: bad option value '%s' (try 'loopd trace "
			"--help')",
			arg);
		return -EINVAL;
	}
	if (ch == 'w')
		a->width = (uint32_t)v;
	else if (ch == 'E')
		a->exhaustive = (uint32_t)v;
	else if (ch == 's')
		a->seed = v;
	else if (ch == OPT_FROM)
		a->from = v;
	else if (ch == OPT_TO)
		a->to = v;
	else
		a->unit = (uint32_t)v;
	return 0;
}

static int parse_opt(int ch, const char *arg, struct pargs *a, char **argv)
{
	switch (ch) {
	case 'o':
		a->out = arg;
		return 0;
	case 'a':
		a->after = arg;
		return 0;
	case OPT_STATE:
		a->state = arg;
		return 0;
	case 'm':
		return parse_model(arg, a);
	case 'w':
	case 's':
	case 'E':
	case OPT_FROM:
	case OPT_TO:
	case OPT_TEAR_UNIT:
		return parse_number(ch, arg, a);
	case OPT_TEAR:
		a->tear = true;
		return 0;
	case OPT_GARBAGE:
		a->garbage = true;
		return 0;
	case 'h':
		a->help = true;
		return 0;
	case ':':
		log_msg("trace plot: option '%s' needs a value (try 'loopd "
			"trace --help')",
			argv[optind - 1]);
		return -EINVAL;
	default:
		if (optopt)
			log_msg("trace plot: unknown option '-%c' (try 'loopd "
				"trace --help')",
				optopt);
		else
			log_msg("trace plot: unknown option '%s' (try 'loopd "
				"trace --help')",
				argv[optind - 1]);
		return -EINVAL;
	}
}

/* Whether name ends in suffix, case aside. */
static bool ends_with(const char *name, const char *suffix)
{
	size_t n = strlen(name), m = strlen(suffix);

	return n >= m && !strcasecmp(name + n - m, suffix);
}

static int check_args(int argc, char **argv, struct pargs *a)
{
	if (optind + 1 != argc) {
		log_msg("trace plot: expected one TRACE (try 'loopd trace "
			"--help')");
		return -EINVAL;
	}
	a->trace = argv[optind];
	if (!a->out) {
		log_msg("trace plot: -o FILE.svg is required");
		return -EINVAL;
	}
	if (ends_with(a->out, ".png")) {
		int n = (int)strlen(a->out) - 4;

		log_msg("trace plot: -o %s: loopd writes SVG only: plot to "
			"%.*s.svg, then rsvg-convert -o %s %.*s.svg (Debian: "
			"librsvg2-bin)",
			a->out, n, a->out, a->out, n, a->out);
		return -EINVAL;
	}
	if (strcmp(a->out, "-") && !ends_with(a->out, ".svg")) {
		log_msg("trace plot: -o %s: the picture is SVG; name it "
			"*.svg (or '-' for stdout)",
			a->out);
		return -EINVAL;
	}
	if (a->after && a->from) {
		log_msg("trace plot: --after and --from both set where the "
			"view starts; give one");
		return -EINVAL;
	}
	if (a->from && a->to && a->from > a->to) {
		log_msg("trace plot: --from %" PRIu64 " is after --to %" PRIu64,
			a->from, a->to);
		return -EINVAL;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct pargs *a)
{
	int ch, r;

	memset(a, 0, sizeof *a);
	a->served = true;
	a->seed = 1;
	a->exhaustive = 10;
	a->width = 1200;
	optind = 1;
	opterr = 0; /* one line of our own instead */
	while ((ch = getopt_long(argc, argv, ":o:w:a:m:s:E:h", long_opts,
				 NULL)) != -1) {
		r = parse_opt(ch, optarg, a, argv);
		if (r < 0 || a->help)
			return r;
	}
	return check_args(argc, argv, a);
}

/* ------------------------------------------------------------------ */

/* The plan as `loopd crash` builds it (explore.c): served is what the
   recorded flush mode promises; the unit defaults to the atomic one. */
static int build_plan(const struct tracefile *tf, struct pargs *a,
		      struct crash_plan **plan)
{
	const struct trace_header *h = &tf->h;
	struct crash_opts co;
	const char *why = NULL;
	int r;

	if (a->served)
		a->model = h->flush_mode == FLUSH_BARRIER  ? CRASH_BARRIER
			   : h->flush_mode == FLUSH_UNSAFE ? CRASH_NOFLUSH
							   : CRASH_CONTRACT;
	co = (struct crash_opts){.model = a->model,
				 .seed = a->seed,
				 .exhaustive = a->exhaustive,
				 .tear = a->tear,
				 .garbage = a->garbage,
				 .unit = a->unit ? a->unit : h->atomic};
	r = crash_plan_build(h, tf->recs, tf->n, &co, plan, &why);
	if (r < 0)
		log_msg("%s: %s", a->trace, why ? why : strerror(-r));
	return r;
}

/* --after LABEL, --from, --to against the trace: the view, or -EINVAL. */
static int find_view(const struct plot_trace *t, struct pargs *a)
{
	size_t i;

	if (a->after) {
		for (i = 0; i < t->n_marks; i++)
			if (t->marks[i].len == strlen(a->after) &&
			    !memcmp(t->marks[i].label, a->after,
				    t->marks[i].len))
				break;
		if (i == t->n_marks) {
			log_msg("trace plot: --after %s: no such mark",
				a->after);
			return -EINVAL;
		}
		a->from = t->marks[i].seq;
	}
	if (a->from > t->last_seq) {
		log_msg("trace plot: the view starts at seq %" PRIu64
			", after the trace's last record (%" PRIu64 ")",
			a->from, t->last_seq);
		return -EINVAL;
	}
	if (a->to && a->from > a->to) {
		log_msg("trace plot: the view starts at seq %" PRIu64
			", after --to %" PRIu64,
			a->from, a->to);
		return -EINVAL;
	}
	return 0;
}

static const char *variant_text(const struct crash_state *st)
{
	static char buf[96];

	buf[0] = 0;
	if (st->variant & CRASH_V_SWAP)
		snprintf(buf, sizeof buf, "; concurrent writes in order %u",
			 st->order);
	if (st->variant & CRASH_V_TRIM_OLD)
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf),
			 "; some TRIMs keep the old data");
	return buf;
}

/* --state K.I: rebuild it (X7) and mark its writes (Y3). */
static int highlight(struct plot_trace *t, const struct crash_plan *p,
		     const struct pargs *a, char *line, size_t len)
{
	struct crash_scratch *s;
	struct crash_state st = {0};
	uint64_t point, item;
	uint32_t k;
	int r;

	if (parse_state_id(a->state, &point, &item) < 0 ||
	    point >= p->n_points) {
		log_msg("trace plot: --state %s: expected POINT.ITEM with "
			"POINT < %u",
			a->state, p->n_points);
		return -EINVAL;
	}
	k = (uint32_t)point;
	s = crash_scratch_new(p);
	if (!s)
		return -ENOMEM;
	crash_point_open(p, s, k);
	r = crash_state_get(p, s, item, &st);
	if (r == -ENOENT) {
		log_msg("trace plot: --state %s: point %u has %" PRIu64
			" states",
			a->state, k, p->points[k].items);
		r = -EINVAL;
	}
	if (!r)
		r = plot_highlight(t, p, k, &st);
	if (!r)
		snprintf(line, len,
			 "state %s (%s): crash just before seq %" PRIu64
			 " (%s); of %u pending writes kept %u (green), torn "
			 "%u (amber), dropped %u (red)%s; model %s, seed "
			 "%" PRIu64,
			 a->state, st.kind, p->points[k].t,
			 crash_why_name(p->points[k].why), st.n_pending,
			 t->n_kept, t->n_torn, t->n_dropped, variant_text(&st),
			 crash_model_name(p->opts.model), a->seed);
	crash_state_free(&st);
	crash_scratch_free(s);
	return r;
}

/* The SVG to -o (a file, or stdout for "-"). */
static int write_out(const char *path, const struct svg_out *o)
{
	int fd = 1, r;

	if (strcmp(path, "-")) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			log_msg("trace plot: %s: %s", path, strerror(errno));
			return -errno;
		}
	}
	r = write_full(fd, o->p, o->len);
	if (r < 0)
		log_msg("trace plot: %s: %s", path, strerror(-r));
	if (fd != 1 && close(fd) < 0 && !r) {
		r = -errno;
		log_msg("trace plot: %s: %s", path, strerror(-r));
	}
	return r;
}

/* Everything after the command line; 0, or 1 or 2 as the exit status. */
static int plot(struct pargs *a)
{
	struct plot_trace t = {0};
	struct crash_plan *plan = NULL;
	struct svg_out out = {0};
	struct plot_fig fig = {0};
	struct tracefile tf;
	char err[512], title[1200], line[512];
	struct plot_opts po;
	int rc = 1;

	if (tracefile_open(a->trace, &tf, err, sizeof err) < 0) {
		log_msg("%s", err);
		return 1;
	}
	if (tf.why)
		log_msg("%s: torn tail: %zu bytes dropped (%s); plotting the "
			"valid prefix",
			a->trace, tf.len - tf.valid, tf.why);
	if (build_plan(&tf, a, &plan) < 0 ||
	    plot_trace_build(&tf.h, tf.recs, tf.n, &t) < 0 ||
	    plot_points(&t, plan) < 0)
		goto out;
	rc = 2;
	if (find_view(&t, a) < 0 ||
	    (a->state && highlight(&t, plan, a, line, sizeof line) < 0))
		goto out;
	rc = 1;
	snprintf(title, sizeof title, "%s: crash points under model %s",
		 a->trace, crash_model_name(plan->opts.model));
	po = (struct plot_opts){.width = a->width,
				.from = a->from,
				.to = a->to,
				.title = title,
				.state_line = a->state ? line : NULL};
	if (plot_layout(&t, &po, &fig) < 0 || svg_render(&fig, &out) < 0) {
		log_msg("trace plot: out of memory");
		goto out;
	}
	if (write_out(a->out, &out) < 0)
		goto out;
	if (a->state && (t.crash_t < (a->from ? a->from : t.first_seq) ||
			 (a->to && t.crash_t > a->to + 1)))
		log_msg("note: state %s crashes at seq %" PRIu64
			", outside the view",
			a->state, t.crash_t);
	if (strcmp(a->out, "-"))
		printf("%s: %ux%u px, %zu bytes; %" PRIu32
		       " lane%s (%u binned), %" PRIu64
		       " requests drawn one by one, %u flush brackets%s\n",
		       a->out, fig.width, fig.height, out.len, fig.lanes,
		       fig.lanes == 1 ? "" : "s", fig.lanes_binned,
		       fig.reqs_drawn, fig.brackets,
		       fig.brackets_omitted ? " (omitted: too many flushes)"
					    : "");
	rc = 0;
out:
	svg_out_free(&out);
	plot_fig_free(&fig);
	plot_trace_free(&t);
	crash_plan_free(plan);
	tracefile_close(&tf);
	return rc;
}

int plotcmd_run(int argc, char **argv)
{
	struct pargs a;

	if (parse_args(argc, argv, &a) < 0)
		return 2;
	if (a.help) {
		usage_plot(stdout);
		return 0;
	}
	return plot(&a);
}
