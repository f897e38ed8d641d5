/* SPDX-License-Identifier: MIT */
/*
 * plot.h: the picture of a trace (`loopd trace plot`, docs/plot.md), pure:
 * no I/O.  Four steps, each testable on its own:
 *
 *   plot_trace_build()  decoded records -> requests with their lanes,
 *                       syncs, marks, and what each flush covers (Y1, Y2)
 *   plot_points()       the crash points of a plan (states.h), as ticks
 *   plot_highlight()    one crash state: which writes it kept or dropped
 *                       (Y3)
 *   plot_layout()       all that -> a figure of rectangles, lines and
 *                       texts in pixels (Y4-Y8), bounded in size
 *
 * The first three are plotdata.c, the layout plot.c.
 * svg.c turns the figure into SVG text; plotcmd.c is the command line.
 */
#ifndef LOOPD_TRACE_PLOT_H
#define LOOPD_TRACE_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace/states.h"
#include "trace/trace.h"

#define PLOT_NEVER UINT64_MAX /* no reply (or SYNC_END) in the trace */

enum plot_kind {
	PLOT_K_WRITE,
	PLOT_K_ZERO, /* WRITE_ZEROES */
	PLOT_K_TRIM,
	PLOT_K_READ,
	PLOT_K_FLUSH,
	PLOT_K_OTHER, /* CACHE, BLOCK_STATUS, DISC, unknown */
	PLOT_KINDS
};

/* Y3: what a crash state made of a write. */
enum plot_hl {
	PLOT_HL_NONE, /* no state, or not a write of the plan */
	PLOT_HL_DURABLE, /* in D(t) */
	PLOT_HL_KEPT, /* pending, present in the state */
	PLOT_HL_DROPPED, /* pending, absent */
	PLOT_HL_TORN, /* pending, present in part (torn or garbage) */
	PLOT_HL_AFTER, /* received at or after t: never present */
};

struct plot_req {
	uint64_t recv, reply; /* seqs; reply PLOT_NEVER if none */
	uint64_t t_recv, t_reply; /* ns since the recording started */
	uint64_t off;
	uint32_t len;
	uint32_t conn, lane;
	int32_t status; /* reply status, -EINPROGRESS without a reply */
	uint8_t kind; /* enum plot_kind */
	uint8_t hl; /* enum plot_hl */
	bool fua;
	bool trim_old; /* Y3: a TRIM the state keeps as the old data (S4) */
	/* Y2, a flush: the writes it covers that no earlier flush covers. */
	uint32_t cov_n;
	uint64_t cov_from; /* the first RECV among them */
};

struct plot_sync {
	uint64_t begin, end; /* SYNC_BEGIN, SYNC_END (or PLOT_NEVER) */
	uint64_t id;
	int32_t res; /* SYNC_END's result */
};

struct plot_mark {
	uint64_t seq;
	const char *label; /* not NUL-terminated: the trace's bytes */
	uint32_t len;
};

struct plot_point {
	uint64_t t; /* crash just before this seq */
	uint8_t why; /* enum crash_why */
	uint32_t n_pending, n_durable;
};

/* What the picture shows; the records must outlive it (mark labels). */
struct plot_trace {
	struct plot_req *reqs; /* in receive order */
	size_t n_reqs;
	struct plot_sync *syncs;
	size_t n_syncs;
	struct plot_mark *marks;
	size_t n_marks;
	uint32_t *lane_conn; /* lane i shows connection lane_conn[i] */
	uint32_t n_lanes;
	struct plot_point *points;
	uint32_t n_points;
	uint64_t first_seq, last_seq; /* 0, 0 for a trace without records */
	uint64_t size; /* export size */
	/* Y3, after plot_highlight(): the state's crash point. */
	bool state;
	uint64_t crash_t;
	uint32_t n_kept, n_dropped, n_torn, n_pending;
};

int plot_trace_build(const struct trace_header *h, const struct trace_rec *recs,
		     size_t n, struct plot_trace *t);
void plot_trace_free(struct plot_trace *t);

/* The plan's crash points as t->points.  Returns 0 or -ENOMEM. */
int plot_points(struct plot_trace *t, const struct crash_plan *p);

/*
 * Y3: mark every write of the plan with what state st (of point k, open
 * in the plan's scratch) made of it.  Returns 0.
 */
int plot_highlight(struct plot_trace *t, const struct crash_plan *p, uint32_t k,
		   const struct crash_state *st);

/* The figure: pixels, styles (in paint order), strings in one pool. */
enum plot_style {
	PS_BG,
	PS_PANEL, /* a panel's background */
	PS_GRID,
	PS_WRITE, /* the kinds, in enum plot_kind order */
	PS_ZERO,
	PS_TRIM,
	PS_READ,
	PS_FLUSH,
	PS_OTHER,
	PS_SYNC,
	PS_FAILED, /* a red underline: the request failed */
	PS_FUA, /* the cap at a FUA write's reply */
	PS_KEPT,
	PS_DROPPED,
	PS_TORN,
	PS_AFTER, /* the shade over what comes after the crash */
	PS_BRACKET, /* a flush's covered writes */
	PS_HOVER, /* invisible: where a bracket's title shows */
	PS_TICK, /* a crash point */
	PS_MARK, /* a user's mark */
	PS_CRASH, /* the highlighted state's crash point */
	PS_AXIS,
	PS_TEXT,
	PS_SMALL,
	PS_TITLE,
	PS_MARKTEXT,
	PS_CRASHTEXT,
	PLOT_STYLES
};

#define PLOT_LEVELS 8 /* Y6: opacity steps of a bin */

struct plot_rect {
	float x, y, w, h;
	uint8_t style;
	uint8_t level; /* 0 solid, 1..PLOT_LEVELS: a bin's opacity */
	uint32_t title; /* pool offset + 1, or 0 */
};

struct plot_line {
	float x1, y1, x2, y2;
	uint8_t style;
};

enum plot_anchor { PA_START, PA_MIDDLE, PA_END };

struct plot_text {
	float x, y;
	uint8_t style, anchor;
	uint32_t s; /* pool offset */
	uint32_t title; /* pool offset + 1, or 0 */
};

struct plot_fig {
	uint32_t width, height;
	struct plot_rect *rects;
	size_t n_rects, cap_rects;
	struct plot_line *lines;
	size_t n_lines, cap_lines;
	struct plot_text *texts;
	size_t n_texts, cap_texts;
	char *pool; /* NUL-terminated strings */
	size_t pool_len, pool_cap;
	/* How the figure was made, for the caller's note and the tests. */
	uint32_t lanes; /* Y5: lanes drawn */
	uint32_t lanes_binned; /* lanes drawn as bins */
	uint32_t lane_bin; /* Y6: their bin width in px */
	uint32_t off_bin_w, off_bin_h; /* Y7: 0 when drawn write by write */
	uint64_t reqs_drawn; /* requests drawn one by one */
	uint32_t brackets; /* Y2: brackets drawn */
	bool brackets_omitted; /* too many flushes in view */
};

struct plot_opts {
	uint32_t width; /* of the whole figure, px */
	uint64_t from, to; /* Y4: the view, seqs; 0: the trace's ends */
	const char *title; /* first line */
	const char *state_line; /* with a state: what it is */
};

#define PLOT_WIDTH_MIN 400
#define PLOT_WIDTH_MAX 16384

/* Y4-Y8.  Returns 0 or -ENOMEM (f is then freed). */
int plot_layout(const struct plot_trace *t, const struct plot_opts *o,
		struct plot_fig *f);
void plot_fig_free(struct plot_fig *f);

/* The string at a pool offset. */
static inline const char *plot_str(const struct plot_fig *f, uint32_t off)
{
	return f->pool + off;
}

/* Y6 and the axis's ticks, exposed for the tests. */
uint32_t plot_level(uint64_t count, uint64_t max);
uint64_t plot_tick_step(uint64_t span, uint32_t px);

#endif /* LOOPD_TRACE_PLOT_H */
