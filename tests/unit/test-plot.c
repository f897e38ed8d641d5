/* SPDX-License-Identifier: MIT */
/*
 * test-plot.c: the picture of a trace (src/trace/plotdata.c, plot.c,
 * svg.c; rules Y1-Y9): matching replies and lanes, what each flush covers,
 * a crash state's kept and dropped writes, positions, row packing, bins
 * and their levels, the size bound on a worst case, and escaping.
 *
 * A trace is written as a line of tokens, in server (seq) order:
 *   W<id>[f]@<unit>+<n>[/conn]  WRITE of n units of 512 bytes (f: FUA)
 *   Z<id>@u+n, T<id>@u+n        WRITE_ZEROES, TRIM
 *   R<id>[/conn], F<id>[/conn]  READ, FLUSH
 *   C<id>, E<id>                reply to request id: OK, or EIO
 *   S<id>, s<id>                SYNC_BEGIN, SYNC_END of sync id
 *   M                           a mark "m<seq>"
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd.h"
#include "trace/plot.h"
#include "trace/states.h"
#include "trace/svg.h"

#define UNIT 512
#define MAXREC 512

static uint8_t payload[64 * UNIT];

struct tr {
	struct trace_header h;
	struct trace_rec *r;
	size_t n, cap;
	uint32_t conn_of[256];
	uint16_t cmd_of[256];
	char labels[128][16];
	size_t n_labels;
};

static struct trace_rec *next_rec(struct tr *t)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : MAXREC;
		t->r = realloc(t->r, t->cap * sizeof *t->r);
		assert_non_null(t->r);
	}
	memset(&t->r[t->n], 0, sizeof t->r[t->n]);
	t->r[t->n].seq = t->n + 1;
	t->r[t->n].t_ns = (t->n + 1) * 1000;
	return &t->r[t->n++];
}

static void tr_init(struct tr *t, uint64_t units)
{
	memset(t, 0, sizeof *t);
	t->h.size = units * UNIT;
	t->h.min_block = UNIT;
	t->h.atomic = UNIT;
	t->h.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		      NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
		      NBD_FLAG_SEND_WRITE_ZEROES;
}

/* One request's RECV (cookie = id). */
static void recv_rec(struct tr *t, uint16_t cmd, unsigned int id,
		     unsigned int conn, uint64_t off, uint32_t len, bool fua)
{
	struct trace_rec *r = next_rec(t);

	r->type = TRACE_RECV;
	r->recv.cmd = cmd;
	r->recv.cookie = id;
	r->recv.conn = conn;
	r->recv.offset = off;
	r->recv.length = len;
	r->recv.flags = fua ? NBD_CMD_FLAG_FUA : 0;
	if (cmd == NBD_CMD_WRITE) {
		r->recv.data_kind = TRACE_DATA_REF;
		assert_true(len <= sizeof payload);
		r->recv.data = payload;
	}
	t->conn_of[id % 256] = conn;
	t->cmd_of[id % 256] = cmd;
}

static void reply_rec(struct tr *t, unsigned int id, int32_t status)
{
	struct trace_rec *r = next_rec(t);

	r->type = TRACE_REPLY;
	r->reply.conn = t->conn_of[id % 256];
	r->reply.cookie = id;
	r->reply.cmd = t->cmd_of[id % 256];
	r->reply.status = status;
}

static void parse(struct tr *t, const char *s)
{
	char tok[64];
	int used;

	while (sscanf(s, " %63s%n", tok, &used) == 1) {
		unsigned int id, u = 0, n = 0, conn = 1;
		char c = tok[0];
		const char *p = tok + 1;
		bool fua = false;
		uint16_t cmd;

		s += used;
		id = (unsigned int)strtoul(p, (char **)&p, 10);
		switch (c) {
		case 'M': {
			struct trace_rec *r = next_rec(t);

			assert_true(t->n_labels < 128);
			snprintf(t->labels[t->n_labels], 16, "m%zu", t->n);
			r->type = TRACE_MARK;
			r->mark.label = t->labels[t->n_labels];
			r->mark.len = (uint32_t)strlen(r->mark.label);
			t->n_labels++;
			continue;
		}
		case 'C':
		case 'E':
			reply_rec(t, id, c == 'C' ? 0 : -EIO);
			continue;
		case 'S':
		case 's': {
			struct trace_rec *r = next_rec(t);

			r->type = c == 'S' ? TRACE_SYNC_BEGIN : TRACE_SYNC_END;
			r->sync.id = id;
			continue;
		}
		case 'W':
			cmd = NBD_CMD_WRITE;
			break;
		case 'Z':
			cmd = NBD_CMD_WRITE_ZEROES;
			break;
		case 'T':
			cmd = NBD_CMD_TRIM;
			break;
		case 'R':
			cmd = NBD_CMD_READ;
			break;
		case 'F':
			cmd = NBD_CMD_FLUSH;
			break;
		default:
			fail_msg("bad token %s", tok);
			return;
		}
		if (*p == 'f') {
			fua = true;
			p++;
		}
		if (*p == '@') {
			assert_int_equal(sscanf(p, "@%u+%u", &u, &n), 2);
			p = strchr(p, '/');
		}
		if (p && *p == '/')
			conn = (unsigned int)atoi(p + 1);
		if (cmd == NBD_CMD_READ && !n)
			n = 1;
		recv_rec(t, cmd, id, conn, (uint64_t)u * UNIT, n * UNIT, fua);
	}
}

static void build(struct tr *t, const char *s, uint64_t units,
		  struct plot_trace *pt)
{
	tr_init(t, units);
	parse(t, s);
	assert_int_equal(plot_trace_build(&t->h, t->r, t->n, pt), 0);
}

static const struct plot_req *req_by_recv(const struct plot_trace *pt,
					  uint64_t seq)
{
	size_t i = 0;

	while (i < pt->n_reqs && pt->reqs[i].recv != seq)
		i++;
	assert_true(i < pt->n_reqs);
	return &pt->reqs[i];
}

/* ------------------------------------------------------------------ */

/* Y1: each REPLY ends the latest RECV of its (conn, cookie); lanes by
   connection number; syncs by id; marks. */
static void test_y1_requests_and_lanes(void **state)
{
	struct plot_trace pt;
	struct tr t;

	/* seq: 1 W1/3, 2 W1/3 again (same cookie), 3 C1, 4 C1, 5 R2/1,
	   6 S7, 7 C2, 8 s7, 9 M, 10 F3/2 (never replied). */
	build(&t, "W1@0+1/3 W1@1+1/3 C1 C1 R2/1 S7 C2 s7 M F3/2", 64, &pt);
	assert_int_equal(pt.n_reqs, 4);
	assert_int_equal(pt.n_lanes, 3);
	assert_int_equal(pt.lane_conn[0], 1);
	assert_int_equal(pt.lane_conn[1], 2);
	assert_int_equal(pt.lane_conn[2], 3);
	/* The later RECV takes the first REPLY. */
	assert_int_equal(req_by_recv(&pt, 2)->reply, 3);
	assert_int_equal(req_by_recv(&pt, 1)->reply, 4);
	assert_int_equal(req_by_recv(&pt, 1)->lane, 2);
	assert_int_equal(req_by_recv(&pt, 5)->kind, PLOT_K_READ);
	assert_int_equal(req_by_recv(&pt, 5)->reply, 7);
	assert_int_equal(req_by_recv(&pt, 5)->lane, 0);
	assert_true(req_by_recv(&pt, 10)->reply == PLOT_NEVER);
	assert_int_equal(req_by_recv(&pt, 10)->status, -EINPROGRESS);
	assert_int_equal(pt.n_syncs, 1);
	assert_int_equal(pt.syncs[0].begin, 6);
	assert_int_equal(pt.syncs[0].end, 8);
	assert_int_equal(pt.n_marks, 1);
	assert_int_equal(pt.marks[0].seq, 9);
	assert_int_equal(pt.first_seq, 1);
	assert_int_equal(pt.last_seq, 10);
	plot_trace_free(&pt);
	free(t.r);
}

/* Y2: a flush shows the OK writes replied before it arrived that no
   earlier flush covers, on any connection. */
static void test_y2_coverage(void **state)
{
	struct plot_trace pt;
	struct tr t;
	const struct plot_req *f;

	/* 1 W1, 2 C1, 3 W2/2, 4 F3 (covers W1; W2 not replied), 5 C2,
	   6 C3, 7 W4, 8 E4 (failed), 9 W5, 10 C5, 11 F6/2 (W2, W5), 12 C6,
	   13 F7 (nothing new), 14 C7. */
	build(&t,
	      "W1@0+1 C1 W2@1+1/2 F3 C2 C3 W4@2+1 E4 W5@3+1 C5 F6/2 C6 F7 "
	      "C7",
	      64, &pt);
	f = req_by_recv(&pt, 4);
	assert_int_equal(f->cov_n, 1);
	assert_int_equal(f->cov_from, 1);
	f = req_by_recv(&pt, 11);
	assert_int_equal(f->cov_n, 2);
	assert_int_equal(f->cov_from, 3); /* W2's RECV */
	f = req_by_recv(&pt, 13);
	assert_int_equal(f->cov_n, 0);
	plot_trace_free(&pt);
	free(t.r);
}

static struct crash_plan *plan_of(struct tr *t)
{
	struct crash_opts o = {.model = CRASH_CONTRACT,
			       .seed = 1,
			       .exhaustive = 10,
			       .unit = UNIT};
	struct crash_plan *p;
	const char *why;

	assert_int_equal(crash_plan_build(&t->h, t->r, t->n, &o, &p, &why), 0);
	return p;
}

/* The point whose t is seq. */
static uint32_t point_at(const struct crash_plan *p, uint64_t seq)
{
	uint32_t k;

	for (k = 0; k < p->n_points; k++)
		if (p->points[k].t == seq)
			return k;
	fail_msg("no crash point at seq %llu", (unsigned long long)seq);
	return 0;
}

/* Y3: durable, kept, dropped, after, from the state's chosen set. */
static void test_y3_highlight(void **state)
{
	struct crash_scratch *s;
	struct crash_state st = {0};
	struct crash_plan *p;
	struct plot_trace pt;
	struct tr t;
	uint32_t k;

	/* 1 W1, 2 C1, 3 F2, 4 C2 (W1 durable), 5 W3, 6 W4, 7 C3, 8 C4,
	   9 F5, 10 W6, 11 C5 (the point: W3, W4, W6 pending), 12 C6. */
	build(&t, "W1@0+1 C1 F2 C2 W3@1+1 W4@2+1 C3 C4 F5 W6@3+1 C5 C6", 64,
	      &pt);
	p = plan_of(&t);
	assert_int_equal(plot_points(&pt, p), 0);
	assert_int_equal(pt.n_points, p->n_points);
	k = point_at(p, 11);
	s = crash_scratch_new(p);
	assert_non_null(s);
	crash_point_open(p, s, k);
	/* Item 2: all of P; item 3: none (S5). */
	assert_int_equal(crash_state_get(p, s, 2, &st), 0);
	assert_int_equal(plot_highlight(&pt, p, k, &st), 0);
	assert_int_equal(req_by_recv(&pt, 1)->hl, PLOT_HL_DURABLE);
	assert_int_equal(req_by_recv(&pt, 5)->hl, PLOT_HL_KEPT);
	assert_int_equal(req_by_recv(&pt, 6)->hl, PLOT_HL_KEPT);
	assert_int_equal(req_by_recv(&pt, 10)->hl, PLOT_HL_KEPT);
	assert_int_equal(req_by_recv(&pt, 3)->hl, PLOT_HL_NONE); /* flush */
	assert_int_equal(pt.n_kept, 3);
	assert_int_equal(pt.n_dropped, 0);
	assert_int_equal(pt.n_pending, 3);
	assert_true(pt.state);
	assert_int_equal(pt.crash_t, 11);
	crash_state_free(&st);
	assert_int_equal(crash_state_get(p, s, 3, &st), 0);
	assert_int_equal(plot_highlight(&pt, p, k, &st), 0);
	assert_int_equal(req_by_recv(&pt, 5)->hl, PLOT_HL_DROPPED);
	assert_int_equal(req_by_recv(&pt, 6)->hl, PLOT_HL_DROPPED);
	assert_int_equal(req_by_recv(&pt, 10)->hl, PLOT_HL_DROPPED);
	assert_int_equal(pt.n_kept, 0);
	assert_int_equal(pt.n_dropped, 3);
	crash_state_free(&st);
	/* The point before F2's reply: W1 pending, W6 after it. */
	k = point_at(p, 4);
	crash_point_open(p, s, k);
	assert_int_equal(crash_state_get(p, s, 2, &st), 0);
	assert_int_equal(plot_highlight(&pt, p, k, &st), 0);
	assert_int_equal(req_by_recv(&pt, 1)->hl, PLOT_HL_KEPT);
	assert_int_equal(req_by_recv(&pt, 10)->hl, PLOT_HL_AFTER);
	crash_state_free(&st);
	crash_scratch_free(s);
	crash_plan_free(p);
	plot_trace_free(&pt);
	free(t.r);
}

/* Y3: a TRIM the state keeps as the old data (S4) is marked so. */
static void test_y3_trim_old(void **state)
{
	struct crash_scratch *s;
	struct crash_state st = {0};
	struct crash_plan *p;
	struct plot_trace pt;
	struct tr t;
	uint64_t item;
	uint32_t k;
	int seen_old = 0, seen_zero = 0;

	build(&t, "W1@0+2 C1 F2 C2 T3@0+2 C3 F4 C4", 64, &pt);
	p = plan_of(&t);
	k = point_at(p, 8); /* before F4's reply: T3 pending */
	s = crash_scratch_new(p);
	assert_non_null(s);
	crash_point_open(p, s, k);
	for (item = 0; item < p->points[k].items; item++) {
		const struct plot_req *q;

		assert_int_equal(crash_state_get(p, s, item, &st), 0);
		assert_int_equal(plot_highlight(&pt, p, k, &st), 0);
		q = req_by_recv(&pt, 5);
		if (q->hl == PLOT_HL_KEPT) {
			bool old = st.trim_old && (st.trim_old[0] & 1);

			assert_int_equal(q->trim_old, old);
			seen_old += old;
			seen_zero += !old;
		} else {
			assert_false(q->trim_old);
		}
		crash_state_free(&st);
	}
	assert_true(seen_old > 0 && seen_zero > 0);
	crash_scratch_free(s);
	crash_plan_free(p);
	plot_trace_free(&pt);
	free(t.r);
}

/* ------------------------------------------------------------------ */

static size_t count_style(const struct plot_fig *f, uint8_t style, bool titled)
{
	size_t i, n = 0;

	for (i = 0; i < f->n_rects; i++)
		n += f->rects[i].style == style &&
		     (!titled || f->rects[i].title);
	return n;
}

static bool has_text(const struct plot_fig *f, const char *s)
{
	size_t i;

	for (i = 0; i < f->n_texts; i++)
		if (!strcmp(plot_str(f, f->texts[i].s), s))
			return true;
	return false;
}

/* Y4: a bar from x(RECV) to x(REPLY + 1), clipped to the view. */
static void test_y4_positions(void **state)
{
	struct plot_opts o = {.width = 1112}; /* 1000 px of plot */
	struct plot_trace pt;
	struct plot_fig f;
	struct tr t;
	size_t i;
	int seen = 0;

	/* 100 records: W1 at 1, its reply at 50, then reads. */
	tr_init(&t, 64);
	parse(&t, "W1@0+1");
	for (i = 2; i < 50; i++)
		parse(&t, "M");
	parse(&t, "C1");
	while (t.n < 100)
		parse(&t, "M");
	assert_int_equal(plot_trace_build(&t.h, t.r, t.n, &pt), 0);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	for (i = 0; i < f.n_rects; i++) {
		const struct plot_rect *r = &f.rects[i];

		if (r->style != PS_WRITE || !r->title)
			continue;
		/* Seqs 1..50 of 100: the first half of 1000 px. */
		assert_float_equal(r->x, 96, 0.01);
		assert_float_equal(r->w, 500, 0.01);
		seen++;
	}
	assert_int_equal(seen, 2); /* its lane bar and its offset bar */
	plot_fig_free(&f);
	/* The view [41, 60]: the bar starts at the view's left edge. */
	o.from = 41;
	o.to = 60;
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	for (i = 0; i < f.n_rects; i++)
		if (f.rects[i].style == PS_WRITE && f.rects[i].title) {
			assert_float_equal(f.rects[i].x, 96, 0.01);
			assert_float_equal(f.rects[i].w, 500, 0.01);
		}
	plot_fig_free(&f);
	/* After the write: not in view. */
	o.from = 51;
	o.to = 100;
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(count_style(&f, PS_WRITE, true), 0);
	plot_fig_free(&f);
	plot_trace_free(&pt);
	free(t.r);
	assert_int_equal(plot_tick_step(1000, 800), 100);
	assert_int_equal(plot_tick_step(413601, 1088), 50000);
	assert_int_equal(plot_tick_step(7, 1000), 1);
}

/* Y5: requests overlapping in time take rows; sequential ones share. */
static void test_y5_rows(void **state)
{
	struct plot_opts o = {.width = 1200};
	struct plot_trace pt;
	struct plot_fig f;
	struct tr t;
	float ys[8] = {0};
	size_t i, n = 0;

	/* Three concurrent writes, then one after they all ended. */
	build(&t, "W1@0+1 W2@1+1 W3@2+1 C1 C2 C3 W4@3+1 C4", 64, &pt);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(f.reqs_drawn, 4);
	assert_int_equal(f.lanes_binned, 0);
	/* The lane's bars come first, in receive order. */
	for (i = 0; i < f.n_rects && n < 4; i++)
		if (f.rects[i].style == PS_WRITE && f.rects[i].title)
			ys[n++] = f.rects[i].y;
	assert_int_equal(n, 4);
	assert_true(ys[0] < ys[1] && ys[1] < ys[2]);
	assert_float_equal(ys[3], ys[0], 0.01); /* row 0 is free again */
	plot_fig_free(&f);
	plot_trace_free(&pt);
	free(t.r);
}

/* Y5, Y6: a lane with more requests than pixel columns is binned. */
static void test_y5_binned_lane(void **state)
{
	struct plot_opts o = {.width = 400}; /* 288 px of plot */
	struct plot_trace pt, pt2;
	struct plot_fig f;
	struct tr t, t2;
	unsigned int i;

	tr_init(&t, 1024);
	tr_init(&t2, 1024);
	for (i = 0; i < 2000; i++) {
		recv_rec(&t, NBD_CMD_WRITE, i % 200, 1, (i % 1000) * UNIT, UNIT,
			 i % 10 == 0);
		reply_rec(&t, i % 200, 0);
		if (i < 100) {
			recv_rec(&t2, NBD_CMD_READ, i, 2, 0, UNIT, false);
			reply_rec(&t2, i, 0);
		}
	}
	assert_int_equal(plot_trace_build(&t.h, t.r, t.n, &pt), 0);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(f.lanes_binned, 1);
	assert_int_equal(f.reqs_drawn, 0);
	assert_int_equal(f.lane_bin, 1);
	assert_true(count_style(&f, PS_WRITE, false) > 0);
	assert_true(count_style(&f, PS_FUA, false) > 0); /* its strip */
	/* Y7: 2000 writes are drawn one by one in the offset panel. */
	assert_int_equal(f.off_bin_w, 0);
	plot_fig_free(&f);
	plot_trace_free(&pt);
	/* 100 reads fit in 288 columns: drawn one by one. */
	assert_int_equal(plot_trace_build(&t2.h, t2.r, t2.n, &pt2), 0);
	assert_int_equal(plot_layout(&pt2, &o, &f), 0);
	assert_int_equal(f.lanes_binned, 0);
	assert_int_equal(f.reqs_drawn, 100);
	assert_int_equal(count_style(&f, PS_READ, true), 100);
	plot_fig_free(&f);
	plot_trace_free(&pt2);
	free(t.r);
	free(t2.r);
}

/* Y5: lanes for the connections with requests in view, at most 32: the
   last one holds the rest. */
static void test_y5_lanes_in_view(void **state)
{
	struct plot_opts o = {.width = 1200};
	struct plot_trace pt;
	struct plot_fig f;
	struct tr t;
	unsigned int i;

	tr_init(&t, 64);
	for (i = 1; i <= 40; i++) {
		recv_rec(&t, NBD_CMD_WRITE, i, i, 0, UNIT, false);
		reply_rec(&t, i, 0);
	}
	assert_int_equal(plot_trace_build(&t.h, t.r, t.n, &pt), 0);
	assert_int_equal(pt.n_lanes, 40);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(f.lanes, 32);
	assert_true(has_text(&f, "conn 31"));
	assert_false(has_text(&f, "conn 32"));
	assert_true(has_text(&f, "conns 32-40 (9)"));
	assert_int_equal(f.reqs_drawn, 40);
	plot_fig_free(&f);
	/* Seqs 5-6: connection 3's write and reply only. */
	o.from = 5;
	o.to = 6;
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(f.lanes, 1);
	assert_true(has_text(&f, "conn 3"));
	assert_false(has_text(&f, "conn 1"));
	plot_fig_free(&f);
	plot_trace_free(&pt);
	free(t.r);
}

/* Y6: levels 1..8 on a log scale, 0 for an empty bin. */
static void test_y6_levels(void **state)
{
	uint64_t c;
	uint32_t prev = 0;

	assert_int_equal(plot_level(0, 100), 0);
	assert_int_equal(plot_level(1, 1), PLOT_LEVELS);
	assert_int_equal(plot_level(1, 100), 1);
	assert_int_equal(plot_level(100, 100), PLOT_LEVELS);
	assert_int_equal(plot_level(200, 100), PLOT_LEVELS);
	/* About halfway on a log scale: 10 of 100. */
	assert_in_range(plot_level(10, 100), 4, 5);
	for (c = 1; c <= 1000; c++) {
		uint32_t lv = plot_level(c, 1000);

		assert_in_range(lv, 1, PLOT_LEVELS);
		assert_true(lv >= prev);
		prev = lv;
	}
}

/* Y7, Y8: more writes than OFF_DETAIL are binned; the worst case stays
   under 5 MB of SVG at the widest: 64 connections, 100k requests of
   which a third are flushes, each replied 200 records later, syncs,
   marks with 4096-byte labels, a state with 66k pending writes.  (The
   flushes are never replied and the FUA writes fail, so the plan has one
   crash point, the end, whose P is every write.) */
static void test_y8_worst_case_bound(void **state)
{
	struct plot_opts o = {.width = PLOT_WIDTH_MAX, .title = "worst"};
	struct crash_opts co = {.model = CRASH_CONTRACT,
				.seed = 1,
				.exhaustive = 10,
				.unit = UNIT};
	struct svg_out out = {0};
	struct crash_scratch *s;
	struct crash_state st = {0};
	struct crash_plan *p;
	struct plot_trace pt;
	struct plot_fig f;
	const char *why;
	uint64_t x = 88172645463325252ull;
	char *label = malloc(5000);
	struct tr t;
	unsigned int i;

	assert_non_null(label);
	memset(label, 'x', 4096);
	tr_init(&t, 1u << 21); /* 1 GiB */
	for (i = 0; i < 100000; i++) {
		unsigned int id = i % 256, conn = 1 + i % 64;
		uint64_t off;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = (x % ((1u << 21) - 64)) * UNIT;
		recv_rec(&t, i % 3 == 2 ? NBD_CMD_FLUSH : NBD_CMD_WRITE, id,
			 conn, off, i % 3 == 2 ? 0 : (1 + x % 64) * UNIT,
			 i % 7 == 0);
		if (i >= 200 && (i - 200) % 3 != 2)
			reply_rec(&t, (i - 200) % 256,
				  (i - 200) % 7 == 0 ? -EIO : 0);
		if (i % 50 == 0) {
			struct trace_rec *r = next_rec(&t);

			r->type = TRACE_SYNC_BEGIN;
			r->sync.id = i;
			r = next_rec(&t);
			r->type = TRACE_SYNC_END;
			r->sync.id = i;
		}
		if (i % 200 == 0) {
			struct trace_rec *r = next_rec(&t);

			r->type = TRACE_MARK;
			r->mark.label = label;
			r->mark.len = 4096;
		}
	}
	assert_int_equal(plot_trace_build(&t.h, t.r, t.n, &pt), 0);
	assert_int_equal(crash_plan_build(&t.h, t.r, t.n, &co, &p, &why), 0);
	assert_int_equal(plot_points(&pt, p), 0);
	s = crash_scratch_new(p);
	assert_non_null(s);
	crash_point_open(p, s, p->n_points - 1);
	assert_int_equal(crash_state_get(p, s, 0, &st), 0);
	assert_int_equal(plot_highlight(&pt, p, p->n_points - 1, &st), 0);
	assert_true(pt.n_kept + pt.n_dropped > 3000);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(svg_render(&f, &out), 0);
	print_message("worst case: %zu bytes of SVG, %zu rects, %zu lines, "
		      "%zu texts; %u lanes binned\n",
		      out.len, f.n_rects, f.n_lines, f.n_texts, f.lanes_binned);
	assert_true(out.len < 5u << 20);
	/* Y5: 32 lanes, the last for connections 32-64; DETAIL_REQS: the
	   first 3 are drawn request by request. */
	assert_int_equal(f.lanes, 32);
	assert_int_equal(f.lanes_binned, 29);
	assert_true(f.off_bin_w > 0);
	assert_true(count_style(&f, PS_KEPT, false) > 0);
	assert_true(count_style(&f, PS_DROPPED, false) > 0);
	svg_out_free(&out);
	plot_fig_free(&f);
	crash_state_free(&st);
	crash_scratch_free(s);
	crash_plan_free(p);
	plot_trace_free(&pt);
	free(t.r);
	free(label);
}

/* Y2 drawn: brackets, mark labels cut to 24 characters, the state. */
static void test_y2_brackets_and_marks(void **state)
{
	struct plot_opts o = {.width = 1200};
	struct plot_trace pt;
	struct plot_fig f;
	struct tr t;
	char want[64];

	build(&t, "W1@0+1 C1 M F2 C2 W3@1+1 C3 F4 C4 F5 C5", 64, &pt);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(f.brackets, 2); /* F5 covers nothing new */
	assert_int_equal(count_style(&f, PS_HOVER, true), 2);
	assert_true(has_text(&f, "m3"));
	plot_fig_free(&f);
	plot_trace_free(&pt);
	free(t.r);

	/* A long label is cut, by characters, not bytes. */
	tr_init(&t, 64);
	{
		struct trace_rec *r = next_rec(&t);
		static const char lbl[] = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
					  "abcdefghijklmnopqrstuvwxyz";

		r->type = TRACE_MARK;
		r->mark.label = lbl;
		r->mark.len = sizeof lbl - 1;
	}
	assert_int_equal(plot_trace_build(&t.h, t.r, t.n, &pt), 0);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	snprintf(want, sizeof want, "%s",
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "abcdefghijklmnopqrst...");
	assert_true(has_text(&f, want));
	plot_fig_free(&f);
	plot_trace_free(&pt);
	free(t.r);
}

/* ------------------------------------------------------------------ */
/* Y9 and svg.c.                                                       */

static void escaped(const char *in, size_t len, const char *want)
{
	struct svg_out o = {0};

	svg_escape(&o, in, len);
	assert_int_equal(o.err, 0);
	assert_string_equal(o.p ? o.p : "", want);
	svg_out_free(&o);
}

static void test_y9_escape(void **state)
{
	escaped("a&b<c>d\"e'f", 11, "a&amp;b&lt;c&gt;d&quot;e&apos;f");
	escaped("tab\there\n", 9, "tab?here?");
	escaped("del\x7f", 4, "del?");
	escaped("\xc3\xa9t\xc3\xa9", 5, "\xc3\xa9t\xc3\xa9"); /* été */
	escaped("\xe2\x82\xac", 3, "\xe2\x82\xac"); /* the euro sign */
	escaped("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"); /* U+1F600 */
	escaped("\xc0\xaf", 2, "??"); /* overlong */
	escaped("\xe0\x80\xaf", 3, "???"); /* overlong */
	escaped("\xed\xa0\x80", 3, "???"); /* a surrogate */
	escaped("\xef\xbf\xbe", 3, "???"); /* U+FFFE */
	escaped("\xf4\x90\x80\x80", 4, "????"); /* beyond U+10FFFF */
	escaped("\xe2\x82", 2, "??"); /* cut short */
	escaped("\xff\xfe", 2, "??");
	escaped("a\0b", 3, "a?b");
}

/* Untitled rectangles of one style and level are one path; titled ones
   are elements with a <title>. */
static void test_svg_grouping(void **state)
{
	struct plot_opts o = {.width = 1200, .title = "a <title> & more"};
	struct svg_out out = {0};
	struct plot_trace pt;
	struct plot_fig f;
	struct tr t;

	build(&t, "W1@0+1 C1 F2 C2", 64, &pt);
	assert_int_equal(plot_layout(&pt, &o, &f), 0);
	assert_int_equal(svg_render(&f, &out), 0);
	assert_non_null(strstr(out.p, "<svg xmlns=\"http://www.w3.org/2000/"
				      "svg\" width=\"1200\""));
	assert_non_null(strstr(out.p, "a &lt;title&gt; &amp; more"));
	assert_non_null(strstr(out.p, "<rect class=\"write\" x=\"96\""));
	assert_non_null(strstr(out.p, "<title>WRITE conn 1 off 0 len 512, "
				      "seq 1-2"));
	assert_non_null(strstr(out.p, "<path class=\"panel\" d=\"M"));
	assert_non_null(strstr(out.p, "<path class=\"bracket\" d=\"M"));
	assert_null(strstr(out.p + 1, "<?xml"));
	assert_string_equal(out.p + out.len - 7, "</svg>\n");
	assert_string_equal(svg_class(PS_KEPT), "kept");
	assert_string_equal(svg_class(PS_DROPPED), "dropped");
	svg_out_free(&out);
	plot_fig_free(&f);
	plot_trace_free(&pt);
	free(t.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_y1_requests_and_lanes),
		cmocka_unit_test(test_y2_coverage),
		cmocka_unit_test(test_y3_highlight),
		cmocka_unit_test(test_y3_trim_old),
		cmocka_unit_test(test_y4_positions),
		cmocka_unit_test(test_y5_rows),
		cmocka_unit_test(test_y5_binned_lane),
		cmocka_unit_test(test_y5_lanes_in_view),
		cmocka_unit_test(test_y6_levels),
		cmocka_unit_test(test_y8_worst_case_bound),
		cmocka_unit_test(test_y2_brackets_and_marks),
		cmocka_unit_test(test_y9_escape),
		cmocka_unit_test(test_svg_grouping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
