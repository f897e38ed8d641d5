/* SPDX-License-Identifier: MIT */
/*
 * plot.c: the layout of the picture of a trace (`loopd trace plot`): what
 * plotdata.c extracted, placed in pixels as rectangles, lines and texts
 * (struct plot_fig), which svg.c writes out.  Pure: no I/O.
 *
 * From top to bottom: the title, the state line (--state), the legend,
 * the labels of the marks, one lane per connection, the syncs, the flush
 * brackets, the crash points, the writes by disk offset, the x axis and
 * a note on what was binned.  Marks and the state's crash point are
 * vertical lines through every panel.
 *
 * Y4. The x axis is the trace's seq, the one order of the crash model
 *     (coverage and crash points are defined on it); times are in the
 *     titles.  The view is [from, to] (--from, --to, --after), whole by
 *     default.  Event seq s occupies [x(s), x(s + 1)): a request's bar
 *     runs from x(RECV) to x(REPLY + 1), at least 1 px wide, clipped to
 *     the view; one without a reply runs to the view's end.  A crash
 *     point t is a line at x(t), "just before" event t.  A request is in
 *     view when its bar meets it.
 * Y5. Lanes.  Each connection with requests in view has a lane, in
 *     ascending number, at most MAX_LANES: the last one then holds the
 *     requests of all the others.  A lane is drawn request by request when
 *     it has at most as
 *     many requests in view as the plot has pixel columns, and the whole
 *     figure no more than DETAIL_REQS so far (lanes in order); requests
 *     overlapping in time take rows of the lane, the first row free, at
 *     most MAX_ROWS (then the row that frees first).  Any other lane is
 *     binned: one strip per kind present (and FUA), each pixel column
 *     (bin) shaded by the number of its requests in flight there.
 * Y6. Bins.  A bin's level is 1 + 7 * log(count) / log(max), 1..8, max the
 *     busiest bin of the panel; svg.c turns the level into opacity.  Runs
 *     of bins of one level are one rectangle.  While a panel's runs
 *     exceed its budget, its bins double in width (the offset panel's in
 *     width and height in turn), so its size is bounded whatever the trace.
 * Y7. Writes by offset.  WRITE, WRITE_ZEROES and TRIM as rectangles over
 *     time (as in Y4) and their byte range, at least 1 px each way; one
 *     by one when at most OFF_DETAIL are in view, else binned per kind
 *     (Y6).  With a state, its kept, dropped and torn writes are drawn on
 *     top, one by one when at most OFF_DETAIL, else binned in their
 *     colours.
 * Y8. The figure is bounded: requests drawn one by one (each with a
 *     title) <= DETAIL_REQS + 2 * OFF_DETAIL, syncs <= SYNC_DETAIL,
 *     brackets <= MAX_BRACKETS (more flushes in view: none, and a note
 *     says so), bins <= LANE_RUNS + OFF_RUNS runs, crash point ticks <=
 *     MAX_TICKS, mark labels <= MAX_MARK_LABELS, mark lines <= MAX_TICKS.
 *     That keeps the SVG under 5 MB for any trace (test-plot checks a
 *     worst case).
 */
#include "trace/plot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/size.h"

#define LEFT 96 /* room for lane labels */
#define RIGHT 16
#define ROW_H 7 /* a request bar */
#define ROW_PITCH 8
#define MAX_ROWS 8 /* Y5 */
#define MAX_LANES 32
#define STRIP_H 7 /* a binned strip */
#define LANE_PAD 6
#define OFF_H 200 /* the offset panel */
#define LINE_H 14 /* a line of text */

#define DETAIL_REQS 5000 /* Y8 */
#define OFF_DETAIL 3000
#define SYNC_DETAIL 2000
#define MAX_BRACKETS 1000
#define LANE_RUNS 25000
#define OFF_RUNS 40000
#define MAX_TICKS 2000
#define MAX_MARK_LABELS 200
#define MARK_CHARS 24 /* shown of a mark's label */
#define TITLE_MAX 512 /* bytes of a title */

#define STRIPS (PLOT_KINDS + 1) /* the kinds, then FUA */

struct lay {
	const struct plot_trace *t;
	const struct plot_opts *o;
	struct plot_fig *f;
	int err; /* sticky: the first -ENOMEM */
	uint64_t from, to; /* the view, inclusive */
	double x0, pw; /* the plot area */
	double y; /* the next free line */
	double lines_top; /* where mark lines start */
	uint32_t *idx; /* requests in view, by lane, in receive order */
	uint32_t *lane_start; /* idx[lane_start[l] .. lane_start[l + 1]) */
	uint32_t n_disp; /* Y5: lanes drawn */
	uint32_t *disp_lo, *disp_hi, *disp_n; /* their connections */
	char *note; /* what was binned, for the last line */
	size_t note_len;
};

/* ------------------------------------------------------------------ */
/* The figure's primitives.                                            */

static void *grow(void *v, size_t *cap, size_t n, size_t size, int *err)
{
	size_t c = *cap ? *cap * 2 : 256;
	void *p;

	if (n < *cap)
		return v;
	while (c < n + 1)
		c *= 2;
	p = realloc(v, c * size);
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	*cap = c;
	return p;
}

/* A string into the pool; its offset, or UINT32_MAX after an error. */
static uint32_t pool_add(struct lay *l, const char *s, size_t len)
{
	struct plot_fig *f = l->f;
	size_t need = f->pool_len + len + 1;
	uint32_t off;

	if (l->err)
		return UINT32_MAX;
	if (need > f->pool_cap) {
		size_t c = f->pool_cap ? f->pool_cap : 4096;
		char *p;

		while (c < need)
			c *= 2;
		p = realloc(f->pool, c);
		if (!p) {
			l->err = -ENOMEM;
			return UINT32_MAX;
		}
		f->pool = p;
		f->pool_cap = c;
	}
	off = (uint32_t)f->pool_len;
	memcpy(f->pool + off, s, len);
	f->pool[off + len] = 0;
	f->pool_len = need;
	return off;
}

__attribute__((format(printf, 2, 3))) static uint32_t pool_printf(
	struct lay *l, const char *fmt, ...)
{
	char buf[TITLE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	return pool_add(l, buf,
			(size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A title's handle: pool offset + 1, 0 for none. */
static uint32_t title_of(uint32_t off)
{
	return off == UINT32_MAX ? 0 : off + 1;
}

static void rect(struct lay *l, double x, double y, double w, double h,
		 uint8_t style, uint8_t level, uint32_t title)
{
	struct plot_fig *f = l->f;
	struct plot_rect *v;

	if (l->err)
		return;
	v = grow(f->rects, &f->cap_rects, f->n_rects, sizeof *v, &l->err);
	if (!v)
		return;
	f->rects = v;
	v[f->n_rects++] = (struct plot_rect){.x = (float)x,
					     .y = (float)y,
					     .w = (float)w,
					     .h = (float)h,
					     .style = style,
					     .level = level,
					     .title = title};
}

static void line(struct lay *l, double x1, double y1, double x2, double y2,
		 uint8_t style)
{
	struct plot_fig *f = l->f;
	struct plot_line *v;

	if (l->err)
		return;
	v = grow(f->lines, &f->cap_lines, f->n_lines, sizeof *v, &l->err);
	if (!v)
		return;
	f->lines = v;
	v[f->n_lines++] = (struct plot_line){.x1 = (float)x1,
					     .y1 = (float)y1,
					     .x2 = (float)x2,
					     .y2 = (float)y2,
					     .style = style};
}

static void text(struct lay *l, double x, double y, uint8_t style,
		 uint8_t anchor, uint32_t s, uint32_t title)
{
	struct plot_fig *f = l->f;
	struct plot_text *v;

	if (l->err || s == UINT32_MAX)
		return;
	v = grow(f->texts, &f->cap_texts, f->n_texts, sizeof *v, &l->err);
	if (!v)
		return;
	f->texts = v;
	v[f->n_texts++] = (struct plot_text){.x = (float)x,
					     .y = (float)y,
					     .style = style,
					     .anchor = anchor,
					     .s = s,
					     .title = title};
}

__attribute__((format(printf, 6, 7))) static void textf(struct lay *l, double x,
							double y, uint8_t style,
							uint8_t anchor,
							const char *fmt, ...)
{
	char buf[TITLE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	text(l, x, y, style, anchor,
	     pool_add(l, buf,
		      (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1),
	     0);
}

/* Add to the note of the last line. */
__attribute__((format(printf, 2, 3))) static void notef(struct lay *l,
							const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || l->err)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	p = realloc(l->note, l->note_len + (size_t)n + 3);
	if (!p) {
		l->err = -ENOMEM;
		return;
	}
	l->note = p;
	if (l->note_len) {
		memcpy(p + l->note_len, "; ", 2);
		l->note_len += 2;
	}
	memcpy(p + l->note_len, buf, (size_t)n);
	l->note_len += (size_t)n;
	p[l->note_len] = 0;
}

void plot_fig_free(struct plot_fig *f)
{
	free(f->rects);
	free(f->lines);
	free(f->texts);
	free(f->pool);
	memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------ */
/* Y4: positions.                                                      */

static double x_of(const struct lay *l, uint64_t seq)
{
	if (seq < l->from)
		seq = l->from;
	if (seq > l->to + 1)
		seq = l->to + 1;
	return l->x0 +
	       (double)(seq - l->from) * l->pw / (double)(l->to - l->from + 1);
}

/* One past the last event of a request, for its bar. */
static uint64_t end_of(const struct lay *l, uint64_t reply)
{
	return reply == PLOT_NEVER || reply > l->to ? l->to + 1 : reply + 1;
}

static bool in_view(const struct lay *l, uint64_t a, uint64_t b)
{
	return a <= l->to && (b == PLOT_NEVER || b >= l->from);
}

/* A bar [x(a), x(end)), at least 1 px. */
static void bar_x(const struct lay *l, uint64_t a, uint64_t end, double *x,
		  double *w)
{
	*x = x_of(l, a);
	*w = x_of(l, end) - *x;
	if (*w < 1)
		*w = 1;
}

/* Column of seq among ncols, for bins. */
static uint32_t col_of(const struct lay *l, uint64_t seq, uint32_t ncols)
{
	double c;

	if (seq < l->from)
		return 0;
	if (seq > l->to)
		return ncols - 1;
	c = (double)(seq - l->from) * ncols / (double)(l->to - l->from + 1);
	return c >= ncols ? ncols - 1 : (uint32_t)c;
}

uint64_t plot_tick_step(uint64_t span, uint32_t px)
{
	uint64_t want = px >= 80 ? (uint64_t)((double)span * 80 / px) : span;
	uint64_t s = 1;

	for (;;) {
		if (s >= want)
			return s;
		if (2 * s >= want)
			return 2 * s;
		if (5 * s >= want)
			return 5 * s;
		if (s > UINT64_MAX / 100)
			return s * 10;
		s *= 10;
	}
}

/* ------------------------------------------------------------------ */
/* Y6: bins.                                                           */

/* log2 of x >= 1, within 0.09: the bit length plus the mantissa. */
static double log2ish(uint64_t x)
{
	int e = 63 - __builtin_clzll(x);

	return e + ((double)x / (double)(1ull << e) - 1);
}

uint32_t plot_level(uint64_t count, uint64_t max)
{
	uint32_t lv;

	if (!count)
		return 0;
	if (max <= 1 || count >= max)
		return PLOT_LEVELS;
	lv = 1 + (uint32_t)((PLOT_LEVELS - 1) * log2ish(count) / log2ish(max));
	return lv > PLOT_LEVELS ? PLOT_LEVELS : lv;
}

/* Runs of one level in a row of counts. */
static size_t count_runs(const uint32_t *c, uint32_t n, uint64_t max)
{
	uint32_t i, prev = 0;
	size_t runs = 0;

	for (i = 0; i < n; i++) {
		uint32_t lv = plot_level(c[i], max);

		if (lv && lv != prev)
			runs++;
		prev = lv;
	}
	return runs;
}

/* Emit a row of counts as runs, bins of bw px from x0. */
static void emit_runs(struct lay *l, const uint32_t *c, uint32_t n,
		      uint64_t max, double x0, double bw, double xmax, double y,
		      double h, uint8_t style)
{
	uint32_t i = 0;

	while (i < n) {
		uint32_t lv = plot_level(c[i], max), j = i + 1;
		double x, w;

		while (j < n && plot_level(c[j], max) == lv)
			j++;
		x = x0 + i * bw;
		w = (j * bw > xmax - x0 ? xmax - x0 : j * bw) - i * bw;
		if (lv && w > 0)
			rect(l, x, y, w, h, style, (uint8_t)lv, 0);
		i = j;
	}
}

/* A prefix sum turns a difference row into counts. */
static void prefix_sum(const int64_t *d, uint32_t *c, uint32_t n)
{
	int64_t run = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		run += d[i];
		c[i] = run > 0 ? (uint32_t)(run > UINT32_MAX ? UINT32_MAX : run)
			       : 0;
	}
}

/* ------------------------------------------------------------------ */
/* Titles.                                                             */

static const char *const kind_names[PLOT_KINDS] = {
	"WRITE", "WRITE_ZEROES", "TRIM", "READ", "FLUSH", "request"};

static const char *hl_text(uint8_t hl)
{
	switch (hl) {
	case PLOT_HL_DURABLE:
		return "; durable at the crash";
	case PLOT_HL_KEPT:
		return "; pending, KEPT by the state";
	case PLOT_HL_DROPPED:
		return "; pending, DROPPED by the state";
	case PLOT_HL_TORN:
		return "; pending, TORN by the state (in part)";
	case PLOT_HL_AFTER:
		return "; received after the crash";
	default:
		return "";
	}
}

static uint32_t req_title(struct lay *l, const struct plot_req *r)
{
	char st[48], tail[96] = "";

	if (r->reply == PLOT_NEVER)
		snprintf(st, sizeof st, "no reply");
	else if (r->status)
		snprintf(st, sizeof st, "error %s",
			 strerrorname_np(-r->status) ?: "?");
	else
		snprintf(st, sizeof st, "ok");
	if (r->kind == PLOT_K_FLUSH && r->cov_n)
		snprintf(tail, sizeof tail,
			 "; covers %" PRIu32 " writes no earlier flush did",
			 r->cov_n);
	if (r->reply == PLOT_NEVER)
		return title_of(pool_printf(
			l,
			"%s conn %" PRIu32 " off %" PRIu64 " len %" PRIu32
			"%s, seq %" PRIu64 " (%.6f s), %s%s%s%s",
			kind_names[r->kind], r->conn, r->off, r->len,
			r->fua ? " FUA" : "", r->recv, (double)r->t_recv / 1e9,
			st, tail, hl_text(r->hl),
			r->trim_old ? ", as the old data (S4)" : ""));
	return title_of(pool_printf(
		l,
		"%s conn %" PRIu32 " off %" PRIu64 " len %" PRIu32
		"%s, seq %" PRIu64 "-%" PRIu64 " (%.6f-%.6f s), %s%s%s%s",
		kind_names[r->kind], r->conn, r->off, r->len,
		r->fua ? " FUA" : "", r->recv, r->reply,
		(double)r->t_recv / 1e9, (double)r->t_reply / 1e9, st, tail,
		hl_text(r->hl), r->trim_old ? ", as the old data (S4)" : ""));
}

/* The style of a write: its state class, else its kind. */
static uint8_t req_style(const struct plot_req *r)
{
	switch (r->hl) {
	case PLOT_HL_KEPT:
		return PS_KEPT;
	case PLOT_HL_DROPPED:
		return PS_DROPPED;
	case PLOT_HL_TORN:
		return PS_TORN;
	default:
		return (uint8_t)(PS_WRITE + r->kind);
	}
}

static bool highlighted(const struct plot_req *r)
{
	return r->hl == PLOT_HL_KEPT || r->hl == PLOT_HL_DROPPED ||
	       r->hl == PLOT_HL_TORN;
}

/* ------------------------------------------------------------------ */
/* Y5: lanes.                                                          */

/* Y5: the lanes drawn: connections with requests in view, the last one
   taking the rest; disp[lane] for each lane of the trace (or UINT32_MAX). */
static int display_lanes(struct lay *l, const uint32_t *cnt, uint32_t *disp)
{
	const struct plot_trace *t = l->t;
	uint32_t lane, k = 0;

	for (lane = 0; lane < t->n_lanes; lane++)
		k += cnt[lane] > 0;
	l->n_disp = k < MAX_LANES ? k : MAX_LANES;
	l->disp_lo = calloc(l->n_disp + 1, sizeof *l->disp_lo);
	l->disp_hi = calloc(l->n_disp + 1, sizeof *l->disp_hi);
	l->disp_n = calloc(l->n_disp + 1, sizeof *l->disp_n);
	if (!l->disp_lo || !l->disp_hi || !l->disp_n)
		return -ENOMEM;
	for (k = 0, lane = 0; lane < t->n_lanes; lane++) {
		uint32_t d = k < MAX_LANES ? k : MAX_LANES - 1;

		disp[lane] = UINT32_MAX;
		if (!cnt[lane])
			continue;
		disp[lane] = d;
		if (!l->disp_n[d]++)
			l->disp_lo[d] = t->lane_conn[lane];
		l->disp_hi[d] = t->lane_conn[lane];
		k++;
	}
	return 0;
}

/* The requests in view, grouped by lane drawn (a counting sort). */
static int index_lanes(struct lay *l)
{
	const struct plot_trace *t = l->t;
	uint32_t *cnt, *disp, *pos;
	size_t i;
	int r;

	l->idx = malloc((t->n_reqs ? t->n_reqs : 1) * sizeof *l->idx);
	cnt = calloc(t->n_lanes + 1, sizeof *cnt);
	disp = calloc(t->n_lanes + 1, sizeof *disp);
	pos = calloc(MAX_LANES + 1, sizeof *pos);
	l->lane_start = calloc(MAX_LANES + 2, sizeof *l->lane_start);
	r = !l->idx || !cnt || !disp || !pos || !l->lane_start ? -ENOMEM : 0;
	for (i = 0; !r && i < t->n_reqs; i++)
		cnt[t->reqs[i].lane] +=
			in_view(l, t->reqs[i].recv, t->reqs[i].reply);
	if (!r)
		r = display_lanes(l, cnt, disp);
	for (i = 0; !r && i < t->n_lanes; i++)
		if (disp[i] != UINT32_MAX)
			l->lane_start[disp[i] + 1] += cnt[i];
	for (i = 0; !r && i < l->n_disp; i++)
		l->lane_start[i + 1] += l->lane_start[i];
	for (i = 0; !r && i < t->n_reqs; i++) {
		const struct plot_req *q = &t->reqs[i];
		uint32_t d = disp[q->lane];

		if (in_view(l, q->recv, q->reply))
			l->idx[l->lane_start[d] + pos[d]++] = (uint32_t)i;
	}
	free(cnt);
	free(disp);
	free(pos);
	return r;
}

/* Y5: rows for a detailed lane; returns how many rows it needs. */
static uint32_t pack_rows(const struct lay *l, const uint32_t *idx, size_t n,
			  uint8_t *row)
{
	uint64_t free_at[MAX_ROWS] = {0};
	uint32_t used = 1, k;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct plot_req *r = &l->t->reqs[idx[i]];
		uint32_t best = 0;

		for (k = 0; k < MAX_ROWS; k++) {
			if (free_at[k] <= r->recv) {
				best = k;
				break;
			}
			if (free_at[k] < free_at[best])
				best = k;
		}
		row[i] = (uint8_t)best;
		free_at[best] = end_of(l, r->reply);
		if (best + 1 > used)
			used = best + 1;
	}
	return used;
}

static void draw_req(struct lay *l, const struct plot_req *r, double y)
{
	double x, w;

	bar_x(l, r->recv, end_of(l, r->reply), &x, &w);
	rect(l, x, y, w, ROW_H, req_style(r), 0, req_title(l, r));
	if (r->fua)
		rect(l, x + w - (w > 3 ? 2 : 1), y - 1, w > 3 ? 2 : 1,
		     ROW_H + 2, PS_FUA, 0, 0);
	if (r->status && r->reply != PLOT_NEVER)
		rect(l, x, y + ROW_H - 2, w, 2, PS_FAILED, 0, 0);
}

static void lane_label(struct lay *l, uint32_t lane, double y, double h,
		       bool binned)
{
	if (l->disp_n[lane] == 1)
		textf(l, l->x0 - 6, y + h / 2 + 4, PS_TEXT, PA_END,
		      "conn %" PRIu32, l->disp_lo[lane]);
	else
		textf(l, l->x0 - 6, y + h / 2 + 4, PS_TEXT, PA_END,
		      "conns %" PRIu32 "-%" PRIu32 " (%" PRIu32 ")",
		      l->disp_lo[lane], l->disp_hi[lane], l->disp_n[lane]);
	if (binned && h >= 30)
		textf(l, l->x0 - 6, y + h / 2 + 14, PS_SMALL, PA_END,
		      "(binned)");
}

static int draw_detailed_lane(struct lay *l, uint32_t lane)
{
	const uint32_t *idx = l->idx + l->lane_start[lane];
	size_t i, n = l->lane_start[lane + 1] - l->lane_start[lane];
	uint8_t *row = malloc(n ? n : 1);
	uint32_t rows;
	double y0 = l->y, h;

	if (!row)
		return -ENOMEM;
	rows = pack_rows(l, idx, n, row);
	h = rows * ROW_PITCH + LANE_PAD;
	rect(l, l->x0, y0, l->pw, h, PS_PANEL, 0, 0);
	for (i = 0; i < n; i++)
		draw_req(l, &l->t->reqs[idx[i]],
			 y0 + LANE_PAD / 2.0 + row[i] * ROW_PITCH);
	lane_label(l, lane, y0, h, false);
	l->f->reqs_drawn += n;
	l->y += h + 2;
	free(row);
	return 0;
}

/* Whether request r counts in strip s of a binned lane. */
static bool in_strip(const struct plot_req *r, uint32_t s)
{
	return s == PLOT_KINDS ? r->fua : r->kind == s;
}

/*
 * Y5, Y6: counts[lane][strip][col] of the binned lanes at bins of bw px;
 * returns the panel's max.  counts holds nb * STRIPS * ncols.
 */
static uint64_t bin_lanes(const struct lay *l, const uint32_t *lanes,
			  uint32_t nb, uint32_t ncols, uint32_t *counts,
			  int64_t *diff)
{
	uint64_t max = 0;
	uint32_t b, s, c;

	for (b = 0; b < nb; b++) {
		uint32_t lane = lanes[b];
		size_t i, lo = l->lane_start[lane],
			  hi = l->lane_start[lane + 1];

		for (s = 0; s < STRIPS; s++) {
			uint32_t *row =
				counts + ((size_t)b * STRIPS + s) * ncols;

			memset(diff, 0, (ncols + 1) * sizeof *diff);
			for (i = lo; i < hi; i++) {
				const struct plot_req *r =
					&l->t->reqs[l->idx[i]];
				uint64_t last = end_of(l, r->reply) - 1;

				if (!in_strip(r, s))
					continue;
				diff[col_of(l, r->recv, ncols)]++;
				diff[col_of(l, last, ncols) + 1]--;
			}
			prefix_sum(diff, row, ncols);
			for (c = 0; c < ncols; c++)
				if (row[c] > max)
					max = row[c];
		}
	}
	return max;
}

static int draw_binned_lanes(struct lay *l, const uint32_t *lanes, uint32_t nb,
			     const double *lane_y)
{
	uint32_t bw = 1, ncols, b, s;
	uint32_t *counts = NULL;
	int64_t *diff = NULL;
	uint64_t max;

	for (;;) {
		size_t runs = 0;

		ncols = (uint32_t)((l->pw + bw - 1) / bw);
		free(counts);
		free(diff);
		counts = malloc((size_t)nb * STRIPS * ncols * sizeof *counts);
		diff = malloc((ncols + 1) * sizeof *diff);
		if (!counts || !diff) {
			free(counts);
			free(diff);
			return -ENOMEM;
		}
		max = bin_lanes(l, lanes, nb, ncols, counts, diff);
		for (b = 0; b < (size_t)nb * STRIPS; b++)
			runs += count_runs(counts + (size_t)b * ncols, ncols,
					   max);
		if (runs <= LANE_RUNS || bw >= l->pw)
			break;
		bw *= 2;
	}
	for (b = 0; b < nb; b++) {
		double y = lane_y[b] + LANE_PAD / 2.0;

		for (s = 0; s < STRIPS; s++) {
			const uint32_t *row =
				counts + ((size_t)b * STRIPS + s) * ncols;
			uint32_t c;

			for (c = 0; c < ncols && !row[c]; c++)
				;
			if (c == ncols)
				continue; /* no request of this kind */
			emit_runs(l, row, ncols, max, l->x0, bw, l->x0 + l->pw,
				  y, STRIP_H,
				  (uint8_t)(s == PLOT_KINDS ? PS_FUA
							    : PS_WRITE + s));
			y += STRIP_H + 1;
		}
	}
	l->f->lane_bin = bw;
	notef(l,
	      "%" PRIu32 " lane%s binned in %" PRIu32
	      " px columns: shade = requests running in a column (log scale, "
	      "max %" PRIu64 ")",
	      nb, nb == 1 ? "" : "s", bw, max);
	free(counts);
	free(diff);
	return 0;
}

/* Strips a binned lane needs: the kinds present, and FUA. */
static uint32_t lane_strips(const struct lay *l, uint32_t lane)
{
	bool seen[STRIPS] = {false};
	uint32_t n = 0, s;
	size_t i;

	for (i = l->lane_start[lane]; i < l->lane_start[lane + 1]; i++) {
		const struct plot_req *r = &l->t->reqs[l->idx[i]];

		seen[r->kind] = true;
		seen[PLOT_KINDS] |= r->fua;
	}
	for (s = 0; s < STRIPS; s++)
		n += seen[s];
	return n ? n : 1;
}

static int draw_lanes(struct lay *l)
{
	uint32_t *binned = calloc(l->n_disp + 1, sizeof *binned);
	double *bin_y = calloc(l->n_disp + 1, sizeof *bin_y);
	uint64_t drawn = 0;
	uint32_t lane, nb = 0;
	int r = 0;

	if (!binned || !bin_y) {
		r = -ENOMEM;
		goto out;
	}
	for (lane = 0; lane < l->n_disp && !r; lane++) {
		size_t n = l->lane_start[lane + 1] - l->lane_start[lane];
		double h;

		if (n <= l->pw && drawn + n <= DETAIL_REQS) {
			drawn += n;
			r = draw_detailed_lane(l, lane);
			continue;
		}
		h = lane_strips(l, lane) * (STRIP_H + 1) + LANE_PAD;
		rect(l, l->x0, l->y, l->pw, h, PS_PANEL, 0, 0);
		lane_label(l, lane, l->y, h, true);
		binned[nb] = lane;
		bin_y[nb++] = l->y;
		l->y += h + 2;
	}
	if (!r && nb)
		r = draw_binned_lanes(l, binned, nb, bin_y);
	l->f->lanes_binned = nb;
	l->f->lanes = l->n_disp;
out:
	free(binned);
	free(bin_y);
	return r;
}

/* ------------------------------------------------------------------ */
/* Syncs, brackets (Y2 in plotdata.c), crash points.                   */

static int draw_syncs(struct lay *l)
{
	const struct plot_trace *t = l->t;
	double y, x, w;
	size_t i, n = 0;

	for (i = 0; i < t->n_syncs; i++)
		n += in_view(l, t->syncs[i].begin, t->syncs[i].end);
	if (!n)
		return 0;
	l->y += 2;
	y = l->y + 2;
	rect(l, l->x0, l->y, l->pw, ROW_H + 4, PS_PANEL, 0, 0);
	textf(l, l->x0 - 6, l->y + ROW_H + 2, PS_TEXT, PA_END, "syncs");
	if (n <= SYNC_DETAIL && n <= l->pw) {
		for (i = 0; i < t->n_syncs; i++) {
			const struct plot_sync *s = &t->syncs[i];

			if (!in_view(l, s->begin, s->end))
				continue;
			bar_x(l, s->begin, end_of(l, s->end), &x, &w);
			rect(l, x, y, w, ROW_H, PS_SYNC, 0,
			     title_of(pool_printf(
				     l,
				     "sync %" PRIu64 ", seq %" PRIu64
				     "-%" PRIu64 ", %s",
				     s->id, s->begin, s->end,
				     s->end == PLOT_NEVER ? "not finished"
				     : s->res		  ? "failed"
							  : "ok")));
		}
	} else {
		uint32_t ncols = (uint32_t)l->pw, c;
		int64_t *d = calloc(ncols + 1, sizeof *d);
		uint32_t *cnt = calloc(ncols, sizeof *cnt);
		uint64_t max = 0;

		if (!d || !cnt) {
			free(d);
			free(cnt);
			return -ENOMEM;
		}
		for (i = 0; i < t->n_syncs; i++) {
			const struct plot_sync *s = &t->syncs[i];

			if (!in_view(l, s->begin, s->end))
				continue;
			d[col_of(l, s->begin, ncols)]++;
			d[col_of(l, end_of(l, s->end) - 1, ncols) + 1]--;
		}
		prefix_sum(d, cnt, ncols);
		for (c = 0; c < ncols; c++)
			max = cnt[c] > max ? cnt[c] : max;
		emit_runs(l, cnt, ncols, max, l->x0, 1, l->x0 + l->pw, y, ROW_H,
			  PS_SYNC);
		notef(l, "%zu syncs binned in 1 px columns", n);
		free(d);
		free(cnt);
	}
	l->y += ROW_H + 6;
	return 0;
}

/* Y2: a bracket under the lanes from the first covered write's RECV to
   the flush's RECV, on two alternating rows. */
static void draw_brackets(struct lay *l)
{
	const struct plot_trace *t = l->t;
	size_t i, n = 0, k = 0;

	for (i = 0; i < t->n_reqs; i++)
		n += t->reqs[i].kind == PLOT_K_FLUSH && t->reqs[i].cov_n &&
		     t->reqs[i].recv >= l->from && t->reqs[i].recv <= l->to;
	if (!n)
		return;
	textf(l, l->x0 - 6, l->y + 10, PS_TEXT, PA_END, "flush covers");
	if (n > MAX_BRACKETS || n > l->pw / 4) {
		l->f->brackets_omitted = true;
		textf(l, l->x0 + 4, l->y + 10, PS_SMALL, PA_START,
		      "%zu flushes in view: brackets omitted (narrow the "
		      "view with --from/--to)",
		      n);
		l->y += 16;
		return;
	}
	for (i = 0; i < t->n_reqs; i++) {
		const struct plot_req *f = &t->reqs[i];
		double x1, x2, y;

		if (f->kind != PLOT_K_FLUSH || !f->cov_n || f->recv < l->from ||
		    f->recv > l->to)
			continue;
		x1 = x_of(l, f->cov_from);
		x2 = x_of(l, f->recv);
		y = l->y + 4 + (double)(k++ % 2) * 6;
		line(l, x1, y, x2, y, PS_BRACKET);
		line(l, x1, y - 3, x1, y + 1, PS_BRACKET);
		line(l, x2, y - 3, x2, y + 1, PS_BRACKET);
		/* A hover target over the bracket. */
		rect(l, x1, y - 3, x2 - x1 > 1 ? x2 - x1 : 1, 5, PS_HOVER, 0,
		     title_of(pool_printf(
			     l,
			     "FLUSH conn %" PRIu32 " at seq %" PRIu64
			     " covers %" PRIu32
			     " writes that no earlier flush covers (replied "
			     "before it arrived), received from seq %" PRIu64,
			     f->conn, f->recv, f->cov_n, f->cov_from)));
		l->f->brackets++;
	}
	l->y += 18;
}

static const char *why_name(uint8_t why)
{
	switch (why) {
	case CRASH_AT_FLUSH:
		return "a flush reply";
	case CRASH_AT_FUA:
		return "a FUA write reply";
	case CRASH_AT_WRITE:
		return "a write reply";
	case CRASH_AT_SNAPSHOT:
		return "a snapshot's instant";
	default:
		return "the end";
	}
}

/* The crash points in view from k on that share k's column; the last. */
static uint32_t same_column(const struct lay *l, uint32_t k, uint32_t ncols)
{
	const struct plot_trace *t = l->t;
	uint32_t c = col_of(l, t->points[k].t, ncols), j = k;

	while (j + 1 < t->n_points && t->points[j + 1].t <= l->to + 1 &&
	       col_of(l, t->points[j + 1].t, ncols) == c)
		j++;
	return j;
}

static bool point_in_view(const struct lay *l, uint32_t k)
{
	return l->t->points[k].t >= l->from && l->t->points[k].t <= l->to + 1;
}

/* Y8: one tick per column, shaded by its number of points (Y6) when
   some column has several. */
static void draw_points(struct lay *l)
{
	const struct plot_trace *t = l->t;
	uint32_t ncols = l->pw > MAX_TICKS ? MAX_TICKS : (uint32_t)l->pw;
	double bw = l->pw / ncols;
	uint32_t k, max = 1;

	if (!t->n_points)
		return;
	textf(l, l->x0 - 6, l->y + 9, PS_TEXT, PA_END, "crash points");
	for (k = 0; k < t->n_points; k++)
		if (point_in_view(l, k)) {
			uint32_t j = same_column(l, k, ncols);

			max = j - k + 1 > max ? j - k + 1 : max;
			k = j;
		}
	k = 0;
	while (k < t->n_points) {
		uint32_t c, j;
		uint8_t lv;

		if (!point_in_view(l, k)) {
			k++;
			continue;
		}
		c = col_of(l, t->points[k].t, ncols);
		j = same_column(l, k, ncols);
		lv = max > 1 ? (uint8_t)plot_level(j - k + 1, max) : 0;
		if (j == k)
			rect(l, x_of(l, t->points[k].t), l->y + 1,
			     bw < 1 ? 1 : bw, 10, PS_TICK, lv,
			     title_of(pool_printf(l,
						  "crash point %" PRIu32
						  ": just before seq %" PRIu64
						  " (%s); %" PRIu32
						  " pending, %" PRIu32
						  " durable writes",
						  k, t->points[k].t,
						  why_name(t->points[k].why),
						  t->points[k].n_pending,
						  t->points[k].n_durable)));
		else
			rect(l, l->x0 + c * bw, l->y + 1, bw < 1 ? 1 : bw, 10,
			     PS_TICK, lv,
			     title_of(pool_printf(
				     l,
				     "crash points %" PRIu32 "-%" PRIu32
				     ": just before seqs %" PRIu64 "-%" PRIu64,
				     k, j, t->points[k].t, t->points[j].t)));
		k = j + 1;
	}
	l->y += 14;
}

/* ------------------------------------------------------------------ */
/* Y7: writes by offset.                                               */

static bool write_in_view(const struct lay *l, const struct plot_req *r)
{
	return r->kind <= PLOT_K_TRIM && r->len &&
	       in_view(l, r->recv, r->reply);
}

static double y_of_off(const struct lay *l, double y0, uint64_t off)
{
	uint64_t size = l->t->size ? l->t->size : 1;

	if (off > size)
		off = size;
	return y0 + (double)off * OFF_H / (double)size;
}

static void draw_write(struct lay *l, const struct plot_req *r, double y0)
{
	double x, w, y = y_of_off(l, y0, r->off),
		     h = y_of_off(l, y0, r->off + r->len) - y;

	bar_x(l, r->recv, end_of(l, r->reply), &x, &w);
	if (h < 1)
		h = 1;
	rect(l, x, y, w, h, req_style(r), 0, req_title(l, r));
}

/* The layers binned in the offset panel: the kinds, then the state's. */
enum { OL_WRITE, OL_ZERO, OL_TRIM, OL_KEPT, OL_DROPPED, OL_TORN, OLAYERS };

static int layer_of(const struct plot_req *r, bool hl)
{
	if (!hl)
		return r->kind;
	switch (r->hl) {
	case PLOT_HL_KEPT:
		return OL_KEPT;
	case PLOT_HL_DROPPED:
		return OL_DROPPED;
	case PLOT_HL_TORN:
		return OL_TORN;
	default:
		return -1;
	}
}

/* 2-D counts of writes per (row, col) for layers [l0, l1). */
static uint64_t bin_offsets(const struct lay *l, uint32_t ncols, uint32_t nrows,
			    int l0, int l1, bool hl, uint32_t *counts,
			    int64_t *d)
{
	const struct plot_trace *t = l->t;
	size_t cells = (size_t)ncols * nrows, i;
	uint64_t max = 0;
	int ly;

	for (ly = l0; ly < l1; ly++) {
		uint32_t *c = counts + (size_t)(ly - l0) * cells;
		uint32_t row, col;

		memset(d, 0, (size_t)(ncols + 1) * (nrows + 1) * sizeof *d);
		for (i = 0; i < t->n_reqs; i++) {
			const struct plot_req *r = &t->reqs[i];
			uint32_t c0, c1, r0, r1;
			uint64_t size = t->size ? t->size : 1;
			uint64_t last = r->off + r->len - 1;

			if (!write_in_view(l, r) || layer_of(r, hl) != ly)
				continue;
			c0 = col_of(l, r->recv, ncols);
			c1 = col_of(l, end_of(l, r->reply) - 1, ncols);
			r0 = (uint32_t)((double)(r->off < size ? r->off
							       : size - 1) *
					nrows / (double)size);
			r1 = (uint32_t)((double)(last < size ? last
							     : size - 1) *
					nrows / (double)size);
			r0 = r0 >= nrows ? nrows - 1 : r0;
			r1 = r1 >= nrows ? nrows - 1 : r1;
			d[(size_t)r0 * (ncols + 1) + c0]++;
			d[(size_t)r0 * (ncols + 1) + c1 + 1]--;
			d[(size_t)(r1 + 1) * (ncols + 1) + c0]--;
			d[(size_t)(r1 + 1) * (ncols + 1) + c1 + 1]++;
		}
		/* Down the rows, then along each row. */
		for (row = 1; row < nrows; row++)
			for (col = 0; col <= ncols; col++)
				d[(size_t)row * (ncols + 1) + col] +=
					d[(size_t)(row - 1) * (ncols + 1) +
					  col];
		for (row = 0; row < nrows; row++) {
			prefix_sum(d + (size_t)row * (ncols + 1),
				   c + (size_t)row * ncols, ncols);
			for (col = 0; col < ncols; col++)
				if (c[(size_t)row * ncols + col] > max)
					max = c[(size_t)row * ncols + col];
		}
	}
	return max;
}

static int draw_binned_offsets(struct lay *l, double y0, int l0, int l1,
			       bool hl)
{
	uint32_t bw = 1, bh = 1, ncols, nrows, ly;
	uint32_t *counts = NULL;
	int64_t *d = NULL;
	uint64_t max;
	size_t cells;

	for (;;) {
		size_t runs = 0, i;

		ncols = (uint32_t)((l->pw + bw - 1) / bw);
		nrows = (OFF_H + bh - 1) / bh;
		cells = (size_t)ncols * nrows;
		free(counts);
		free(d);
		counts = calloc(cells * (size_t)(l1 - l0), sizeof *counts);
		d = malloc((size_t)(ncols + 1) * (nrows + 1) * sizeof *d);
		if (!counts || !d) {
			free(counts);
			free(d);
			return -ENOMEM;
		}
		max = bin_offsets(l, ncols, nrows, l0, l1, hl, counts, d);
		for (i = 0; i < (size_t)(l1 - l0) * nrows; i++)
			runs += count_runs(counts + i * ncols, ncols, max);
		if (runs <= OFF_RUNS || (bw >= l->pw && bh >= OFF_H))
			break;
		if (bw <= bh)
			bw *= 2;
		else
			bh *= 2;
	}
	for (ly = (uint32_t)l0; ly < (uint32_t)l1; ly++) {
		static const uint8_t style[OLAYERS] = {PS_WRITE,   PS_ZERO,
						       PS_TRIM,	   PS_KEPT,
						       PS_DROPPED, PS_TORN};
		uint32_t row;

		for (row = 0; row < nrows; row++) {
			double y = y0 + (double)row * bh;

			emit_runs(l,
				  counts + (ly - l0) * cells +
					  (size_t)row * ncols,
				  ncols, max, l->x0, bw, l->x0 + l->pw, y,
				  y + bh > y0 + OFF_H ? y0 + OFF_H - y : bh,
				  style[ly]);
		}
	}
	if (!hl) {
		l->f->off_bin_w = bw;
		l->f->off_bin_h = bh;
	}
	notef(l,
	      "%s binned in %" PRIu32 "x%" PRIu32
	      " px cells: shade = writes (log scale, max %" PRIu64 ")",
	      hl ? "the state's writes" : "writes by offset", bw, bh, max);
	free(counts);
	free(d);
	return 0;
}

static void offset_axis(struct lay *l, double y0)
{
	uint32_t q;

	for (q = 0; q <= 4; q++) {
		char sz[32];
		double y = y0 + OFF_H * q / 4.0;

		size_format(l->t->size * q / 4, sz, sizeof sz);
		line(l, l->x0 - 3, y, l->x0, y, PS_AXIS);
		textf(l, l->x0 - 6,
		      y + (q == 0   ? 9
			   : q == 4 ? -2
				    : 4),
		      PS_SMALL, PA_END, "%s", sz);
	}
	textf(l, l->x0 - 6, y0 + OFF_H / 2.0 - 14, PS_TEXT, PA_END, "offset");
}

static int draw_offsets(struct lay *l)
{
	const struct plot_trace *t = l->t;
	double y0 = l->y + 4;
	size_t i, n = 0, nh = 0;
	int r = 0;

	for (i = 0; i < t->n_reqs; i++) {
		n += write_in_view(l, &t->reqs[i]);
		nh += write_in_view(l, &t->reqs[i]) && highlighted(&t->reqs[i]);
	}
	rect(l, l->x0, y0, l->pw, OFF_H, PS_PANEL, 0, 0);
	offset_axis(l, y0);
	if (n <= OFF_DETAIL) {
		/* The state's writes last, on top. */
		for (i = 0; i < t->n_reqs; i++)
			if (write_in_view(l, &t->reqs[i]) &&
			    !highlighted(&t->reqs[i]))
				draw_write(l, &t->reqs[i], y0);
		for (i = 0; i < t->n_reqs; i++)
			if (write_in_view(l, &t->reqs[i]) &&
			    highlighted(&t->reqs[i]))
				draw_write(l, &t->reqs[i], y0);
	} else {
		r = draw_binned_offsets(l, y0, OL_WRITE, OL_TRIM + 1, false);
		if (!r && nh > OFF_DETAIL)
			r = draw_binned_offsets(l, y0, OL_KEPT, OL_TORN + 1,
						true);
		else
			for (i = 0; i < t->n_reqs && !r; i++)
				if (write_in_view(l, &t->reqs[i]) &&
				    highlighted(&t->reqs[i]))
					draw_write(l, &t->reqs[i], y0);
	}
	l->y = y0 + OFF_H + 4;
	return r;
}

/* ------------------------------------------------------------------ */
/* Marks, the state, the axis, the legend.                             */

/* At most n code points of s (UTF-8), with "..." if cut. */
static uint32_t short_label(struct lay *l, const char *s, size_t len, size_t n)
{
	char buf[MARK_CHARS * 4 + 4];
	size_t i, cps = 0;

	for (i = 0; i < len && i < MARK_CHARS * 4; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && cps++ == n)
			break;
	if (i == len)
		return pool_add(l, s, len);
	memcpy(buf, s, i);
	memcpy(buf + i, "...", 3);
	return pool_add(l, buf, i + 3);
}

static uint32_t label_title(struct lay *l, const char *s, size_t len)
{
	/* Cut at TITLE_MAX bytes; svg.c replaces a broken last character. */
	return title_of(pool_add(l, s, len < TITLE_MAX ? len : TITLE_MAX));
}

static void draw_marks(struct lay *l, double top, double bottom)
{
	const struct plot_trace *t = l->t;
	size_t i, labels = 0;
	double last_x = -1;

	for (i = 0; i < t->n_marks; i++) {
		const struct plot_mark *m = &t->marks[i];
		double x;

		if (m->seq < l->from || m->seq > l->to)
			continue;
		x = x_of(l, m->seq);
		/* Y8: one line per pixel column. */
		if (x - last_x >= 1 || last_x < 0)
			line(l, x, top, x, bottom, PS_MARK);
		last_x = x;
		if (labels >= MAX_MARK_LABELS)
			continue;
		text(l, x + 2, top + 10 + (double)(labels % 3) * 11,
		     PS_MARKTEXT, PA_START,
		     short_label(l, m->label, m->len, MARK_CHARS),
		     label_title(l, m->label, m->len));
		labels++;
	}
	if (labels == MAX_MARK_LABELS)
		notef(l, "only the first %d marks in view are labelled",
		      MAX_MARK_LABELS);
}

static void draw_state(struct lay *l, double top, double lanes_top,
		       double bottom)
{
	const struct plot_trace *t = l->t;
	double x;

	if (!t->state || t->crash_t > l->to + 1)
		return;
	x = x_of(l, t->crash_t);
	/* What comes after the crash never happened. */
	rect(l, x, lanes_top, l->x0 + l->pw - x, bottom - lanes_top, PS_AFTER,
	     0, 0);
	if (t->crash_t < l->from)
		return;
	line(l, x, top, x, bottom, PS_CRASH);
	if (x - 40 < l->x0)
		textf(l, x + 3, top + 10, PS_CRASHTEXT, PA_START, "crash");
	else
		textf(l, x - 3, top + 10, PS_CRASHTEXT, PA_END, "crash");
}

static void draw_axis(struct lay *l)
{
	uint64_t span = l->to - l->from + 1;
	uint64_t step = plot_tick_step(span, (uint32_t)l->pw);
	uint64_t s = (l->from + step - 1) / step * step;
	double y = l->y;

	line(l, l->x0, y, l->x0 + l->pw, y, PS_AXIS);
	for (; s <= l->to; s += step) {
		double x = x_of(l, s);

		line(l, x, y, x, y + 4, PS_AXIS);
		textf(l, x, y + 15, PS_SMALL, PA_MIDDLE, "%" PRIu64, s);
		if (s > UINT64_MAX - step)
			break;
	}
	textf(l, l->x0 - 30, y + 15, PS_TEXT, PA_END, "seq");
	l->y += 22;
}

static void legend_item(struct lay *l, double *x, uint8_t style,
			const char *name)
{
	if (*x + 16 + 7.0 * (double)strlen(name) > l->x0 + l->pw) {
		*x = l->x0;
		l->y += LINE_H;
	}
	rect(l, *x, l->y - 8, 10, 8, style, 0, 0);
	textf(l, *x + 13, l->y, PS_SMALL, PA_START, "%s", name);
	*x += 22 + 6.0 * (double)strlen(name);
}

static void draw_legend(struct lay *l)
{
	static const struct {
		uint8_t style;
		const char *name;
	} items[] = {
		{PS_WRITE, "WRITE"},
		{PS_ZERO, "WRITE_ZEROES"},
		{PS_TRIM, "TRIM"},
		{PS_READ, "READ"},
		{PS_FLUSH, "FLUSH"},
		{PS_OTHER, "other"},
		{PS_FUA, "FUA (at the reply)"},
		{PS_FAILED, "failed"},
		{PS_SYNC, "sync"},
		{PS_BRACKET, "writes a flush covers"},
		{PS_TICK, "crash point"},
		{PS_MARK, "mark"},
	};
	static const struct {
		uint8_t style;
		const char *name;
	} state_items[] = {
		{PS_KEPT, "kept"},
		{PS_DROPPED, "dropped"},
		{PS_TORN, "torn"},
		{PS_CRASH, "the crash"},
	};
	double x = l->x0;
	size_t i;

	for (i = 0; i < sizeof items / sizeof items[0]; i++)
		legend_item(l, &x, items[i].style, items[i].name);
	if (l->t->state)
		for (i = 0; i < sizeof state_items / sizeof state_items[0]; i++)
			legend_item(l, &x, state_items[i].style,
				    state_items[i].name);
	l->y += LINE_H;
}

/* ------------------------------------------------------------------ */

static void draw_head(struct lay *l)
{
	const struct plot_trace *t = l->t;
	char sz[32];

	l->y = 18;
	textf(l, 8, l->y, PS_TITLE, PA_START, "%s",
	      l->o->title ? l->o->title : "trace");
	l->y += LINE_H + 2;
	size_format(t->size, sz, sizeof sz);
	textf(l, 8, l->y, PS_SMALL, PA_START,
	      "export %s; %zu requests on %" PRIu32
	      " connections; view: seq %" PRIu64 "-%" PRIu64 " of %" PRIu64
	      "-%" PRIu64 "; x = trace seq (record order)",
	      sz, t->n_reqs, t->n_lanes, l->from, l->to, t->first_seq,
	      t->last_seq);
	l->y += LINE_H;
	if (l->o->state_line) {
		textf(l, 8, l->y, PS_CRASHTEXT, PA_START, "%s",
		      l->o->state_line);
		l->y += LINE_H;
	}
	l->y += 6;
	draw_legend(l);
	l->y += 4;
}

int plot_layout(const struct plot_trace *t, const struct plot_opts *o,
		struct plot_fig *f)
{
	struct lay l = {.t = t, .o = o, .f = f};
	double marks_top, lanes_top;
	uint32_t width = o->width ? o->width : 1200;
	int r;

	memset(f, 0, sizeof *f);
	if (width < PLOT_WIDTH_MIN)
		width = PLOT_WIDTH_MIN;
	if (width > PLOT_WIDTH_MAX)
		width = PLOT_WIDTH_MAX;
	f->width = width;
	l.from = o->from ? o->from : t->first_seq;
	l.to = o->to ? o->to : t->last_seq;
	if (l.to < l.from)
		l.to = l.from;
	l.x0 = LEFT;
	l.pw = width - LEFT - RIGHT;
	rect(&l, 0, 0, width, 0, PS_BG, 0, 0); /* its height comes last */
	draw_head(&l);
	r = index_lanes(&l);
	if (r < 0)
		goto out;
	marks_top = l.y;
	l.y += t->n_marks || t->state ? 3 * 11 + 8 : 0;
	lanes_top = l.y;
	r = draw_lanes(&l);
	if (!r)
		r = draw_syncs(&l);
	if (!r) {
		draw_brackets(&l);
		draw_points(&l);
		r = draw_offsets(&l);
	}
	if (r < 0)
		goto out;
	draw_marks(&l, marks_top, l.y);
	draw_state(&l, marks_top, lanes_top, l.y);
	draw_axis(&l);
	if (l.note_len) {
		l.y += 4;
		textf(&l, 8, l.y, PS_SMALL, PA_START, "binned: %s", l.note);
		l.y += LINE_H;
	}
	f->height = (uint32_t)(l.y + 8);
	if (!l.err)
		f->rects[0].h = (float)f->height;
	r = l.err;
out:
	free(l.idx);
	free(l.lane_start);
	free(l.disp_lo);
	free(l.disp_hi);
	free(l.disp_n);
	free(l.note);
	if (r < 0)
		plot_fig_free(f);
	return r;
}
