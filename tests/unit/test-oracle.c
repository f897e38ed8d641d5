/* SPDX-License-Identifier: MIT */
/*
 * test-oracle.c: the membership oracle (src/trace/oracle.c, rules O1-O5,
 * acceptance test A8) on hand-written traces with known answers: the A0
 * litmus sets of crash-model.md, accepted exactly at their point; every
 * state the explorer (states.c) builds, accepted no later than its point;
 * a direct per-point evaluation of O2 on random traces and images, equal
 * to the oracle's sweep (O3); refutations naming the right piece (O4);
 * presence of pending writes (O5).
 *
 * Traces are written as in test-states.c, one token per record:
 *   W<id>[f]@<unit>+<n>[/conn]  WRITE of n units at unit (f: FUA); every
 *                               byte of it is 'A' + id - 1
 *   W<id>@b<off>+<len>          the same in bytes (unaligned)
 *   Z<id>@u+n, T<id>@u+n        WRITE_ZEROES, TRIM
 *   F<id>[/conn]                FLUSH received
 *   C<id>, E<id>                reply to request id: OK, or EIO
 *   M                           a mark
 * The export has `units` units of 512 bytes; the base image is all '.'.
 * An image is written one character per unit: '.' the base, '0' zeroes,
 * 'z' bytes no write carries, a letter a write's bytes.
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
#include "trace/oracle.h"
#include "trace/states.h"
#include "trace/trace.h"

#define MAXU 8
#define TRACETEXT_MAXU MAXU
#include "tracetext.h"
#define SIZE (MAXU * UNIT)
#define FOREIGN 'z'

static struct crash_plan *plan_of(const struct tr *t, enum crash_model m,
				  bool tear, bool garbage)
{
	struct crash_opts o = {.model = m,
			       .seed = 1,
			       .exhaustive = 10,
			       .tear = tear,
			       .garbage = garbage,
			       .unit = UNIT};
	struct crash_plan *p;
	const char *why;

	assert_int_equal(crash_plan_build(&t->h, t->r, t->n, &o, &p, &why), 0);
	return p;
}

static uint8_t base[SIZE];

/* An image from one character per unit (see the top). */
static void image_of(const char *s, uint8_t *img)
{
	size_t i, n = strlen(s);

	memset(img, '.', SIZE);
	for (i = 0; i < n; i++)
		memset(img + i * UNIT, s[i] == '0' ? 0 : s[i], UNIT);
}

/* oracle_check, with its counts per point (calloc'd, to be freed). */
static uint64_t *check(const struct crash_plan *p, const uint8_t *img,
		       struct oracle_result *res)
{
	uint64_t *per = calloc(p->n_points, sizeof *per);

	assert_non_null(per);
	assert_int_equal(oracle_check(p, base, img, res, per), 0);
	if (res->member) {
		assert_int_equal(per[res->point], 0);
		for (uint32_t k = 0; k < res->point; k++)
			assert_true(per[k] > 0);
	} else {
		assert_int_equal(per[res->point], res->n_bad);
		for (uint32_t k = 0; k < p->n_points; k++)
			assert_true(per[k] >= res->n_bad);
	}
	return per;
}

/* ------------------------------------------------------------------ */
/* O2: the litmus sets, exactly.                                       */

struct litmus {
	const char *name;
	const char *trace;
	unsigned int units;
	bool send_flush;
	enum crash_model model;
	int point; /* -1: the end */
	const char *want; /* the legal images, sorted, comma-separated */
};

/* clang-format off */
static const struct litmus litmus[] = {
	/* crash-model.md §2.4 and test-states.c's A0 sets. */
	{"a0_completed_then_flushed", "W1@0+1 C1 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "A."},
	{"a0_before_flush_reply_optional", "W1@0+1 C1 F9 C9", 2, true,
	 CRASH_CONTRACT, 0, "..,A."},
	{"a0_completed_after_flush_recv", "W1@0+1 F9 C1 C9", 2, true,
	 CRASH_CONTRACT, -1, "..,A."},
	{"a0_fua_completed", "W1f@0+1 C1", 2, true, CRASH_CONTRACT, -1, "A."},
	{"a0_concurrent_overlap_flushed", "W1@0+1 W2@0+1 C1 C2 F9 C9", 2,
	 true, CRASH_CONTRACT, -1, "A.,B."},
	{"a0_concurrent_overlap_pending", "W1@0+1 W2@0+1 C1 C2", 2, true,
	 CRASH_CONTRACT, -1, "..,A.,B."},
	{"a0_hb_overlap_flushed", "W1@0+1 C1 W2@0+1 C2 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "B."},
	{"a0_hb_overlap_pending", "W1@0+1 C1 W2@0+1 C2", 2, true,
	 CRASH_CONTRACT, -1, "..,A.,B."},
	{"a0_pending_hb_before_durable", "W1@0+1 C1 W2f@0+1 C2", 2, true,
	 CRASH_CONTRACT, -1, "B."},
	{"a0_pending_concurrent_with_durable", "W1@0+1 W2f@0+1 C2 C1", 2,
	 true, CRASH_CONTRACT, -1, "A.,B."},
	{"a0_trim_old_or_zero", "W1@0+2 C1 F8 C8 T2@0+1 C2 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "0A,AA"},
	{"a0_write_zeroes", "Z1@0+1 C1 F9 C9", 2, true, CRASH_CONTRACT, -1,
	 "0."},
	{"a0_no_send_flush", "W1@0+1 C1 W2@1+1", 2, false, CRASH_CONTRACT,
	 -1, "A.,AB"},
	{"a0_cross_connection_two_writes",
	 "W1@0+1/1 W2@1+1/2 C1 F9/3 C2 C9", 2, true, CRASH_CONTRACT, -1,
	 "A.,AB"},
	{"a0_failed_write", "W1@0+1 E1 F9 C9", 2, true, CRASH_CONTRACT, -1,
	 "..,A."},
	{"a0_failed_flush", "W1@0+1 C1 F9 E9", 2, true, CRASH_CONTRACT, -1,
	 "..,A."},
	{"barrier_covers_received", "W1@0+1 F9 C1 C9", 2, true,
	 CRASH_BARRIER, -1, "A."},
	{"noflush_persists_nothing", "W1@0+1 C1 F9 C9", 2, true,
	 CRASH_NOFLUSH, -1, "..,A."},
	{"skip1_before_second_flush", "W1@0+1 C1 F8 C8 W2@1+1 C2 F9 C9", 2,
	 true, CRASH_SKIP1, 1, "..,.B,A.,AB"},
	{"s4_trim_per_trim", "W1@0+2 C1 F8 C8 T2@0+1 C2 T3@1+1 C3 F9 C9", 2,
	 true, CRASH_CONTRACT, -1, "00,0A,A0,AA"},
	{"s8_three_concurrent_flushed", "W1@0+1 W2@0+1 W3@0+1 C1 C2 C3 F9 C9",
	 2, true, CRASH_CONTRACT, -1, "A.,B.,C."},
	{"s8_concurrent_with_hb", "W1@0+1 C1 W2@0+1 W3@0+1 C2 C3 F9 C9", 2,
	 true, CRASH_CONTRACT, -1, "B.,C."},
	/* O1: units choose independently: a write torn at every unit. */
	{"o1_torn_in_flight", "W1@0+2", 2, true, CRASH_CONTRACT, -1,
	 "..,.A,A.,AA"},
	/* O2 (a): a durable TRIM left old hides nothing, not even the base
	   or a pending write hb-before it. */
	{"o2_trim_old_hides_nothing", "W1@0+1 C1 T2f@0+1 C2", 2, true,
	 CRASH_CONTRACT, -1, "..,0.,A."},
	/* O2 (b): a write received after the crash never shows. */
	{"o2_not_yet_received", "W1@0+1 C1 F9 C9 W2@1+1", 2, true,
	 CRASH_CONTRACT, 0, "..,A."},
};
/* clang-format on */

/* Every image over the alphabet, in order: the next one, or false. */
static bool next_image(char *s, unsigned int units, const char *alpha)
{
	for (unsigned int i = units; i-- > 0;) {
		const char *c = strchr(alpha, s[i]);

		if (c[1]) {
			s[i] = c[1];
			return true;
		}
		s[i] = alpha[0];
	}
	return false;
}

static void test_litmus(void **state)
{
	const struct litmus *l = *state;
	const char *alpha = ".0ABCDz";
	struct tr *t = malloc(sizeof *t);
	struct crash_plan *p;
	static uint8_t img[SIZE];
	char s[MAXU + 1] = {0}, want[256];
	uint32_t k;

	parse(t, l->trace, l->units, l->send_flush);
	p = plan_of(t, l->model, false, false);
	k = l->point < 0 ? p->n_points - 1 : (uint32_t)l->point;
	memset(s, alpha[0], l->units);
	do {
		struct oracle_result res;
		uint64_t *per;
		bool legal;

		snprintf(want, sizeof want, ",%s,", l->want);
		legal = strstr(want, s) && strstr(want, s)[-1] == ',' &&
			strstr(want, s)[l->units] == ',';
		image_of(s, img);
		per = check(p, img, &res);
		if ((per[k] == 0) != legal)
			fail_msg("%s: image %s at point %u: oracle says %s",
				 l->trace, s, k, per[k] ? "no" : "yes");
		free(per);
	} while (next_image(s, l->units, alpha));
	crash_plan_free(p);
	free(t);
}

/* ------------------------------------------------------------------ */
/* O1, O2: every state the explorer builds is accepted.                */

static void apply(const struct crash_plan *p, uint8_t *img,
		  const struct crash_extents *x)
{
	for (size_t i = 0; i < x->n; i++) {
		const struct crash_extent *e = &x->v[i];

		if (e->src == CRASH_SRC_BASE)
			memcpy(img + e->off, base + e->off, e->len);
		else if (e->src == CRASH_SRC_ZERO)
			memset(img + e->off, 0, e->len);
		else if (e->src == CRASH_SRC_GARBAGE)
			crash_garbage(e->off, e->len, img + e->off);
		else
			memcpy(img + e->off, crash_src_data(p, e), e->len);
	}
}

/* Every item of every point of p (at most 512 per point, spread over a
   longer list): accepted, at its point or before. */
static uint64_t all_states_accepted(const struct crash_plan *p)
{
	struct crash_scratch *s = crash_scratch_new(p);
	struct crash_extents d = {0}, x = {0};
	static uint8_t dimg[SIZE], img[SIZE];
	uint64_t n = 0;

	assert_non_null(s);
	for (uint32_t k = 0; k < p->n_points; k++) {
		uint64_t items = p->points[k].items;
		uint64_t step = items > 512 ? items / 512 : 1;

		memcpy(dimg, base, SIZE);
		assert_int_equal(crash_durable_diff(p, s, CRASH_BASE, k, &d),
				 0);
		apply(p, dimg, &d);
		assert_int_equal(crash_point_open(p, s, k), 0);
		for (uint64_t item = 0; item < items; item += step) {
			struct oracle_result res;
			struct crash_state st;
			uint64_t *per;

			assert_int_equal(crash_state_get(p, s, item, &st), 0);
			assert_int_equal(crash_state_extents(p, s, &st, &x), 0);
			memcpy(img, dimg, SIZE);
			apply(p, img, &x);
			per = check(p, img, &res);
			if (!res.member || per[k] || res.point > k)
				fail_msg(
					"state %u.%llu (%s): oracle: member %d "
					"point %u, %llu pieces unexplained "
					"at %u",
					k, (unsigned long long)item, st.kind,
					res.member, res.point,
					(unsigned long long)per[k], k);
			free(per);
			crash_state_free(&st);
			n++;
		}
	}
	crash_extents_free(&d);
	crash_extents_free(&x);
	crash_scratch_free(s);
	return n;
}

/* A random trace of up to n requests over units units: overlapping,
   unaligned, concurrent, FUA, failed, TRIM, WRITE_ZEROES, flushes. */
static void random_trace(char *out, size_t len, uint64_t *rng, int n,
			 unsigned int units)
{
	int open[64], n_open = 0, id = 1;
	size_t at = 0;

	while (id < n || n_open) {
		uint64_t r;

		*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
		r = *rng >> 33;
		if (id < n && (!n_open || r % 3)) {
			unsigned int u = (unsigned int)(r >> 4) % units;
			unsigned int c = 1 + (unsigned int)(r >> 8) % 2;
			unsigned int m =
				1 + (unsigned int)(r >> 10) % (units - u);
			const char *f = (r >> 13) % 5 ? "" : "f";

			switch ((r >> 16) % 10) {
			case 0:
				at += (size_t)snprintf(out + at, len - at,
						       "F%d/%u ", id, c);
				break;
			case 1:
				at += (size_t)snprintf(out + at, len - at,
						       "T%d@%u+%u/%u ", id, u,
						       m, c);
				break;
			case 2:
				at += (size_t)snprintf(out + at, len - at,
						       "Z%d%s@%u+%u/%u ", id, f,
						       u, m, c);
				break;
			case 3: {
				unsigned int b = u * UNIT + (r >> 20) % 700;
				unsigned int l = 1 + (r >> 5) % 900;

				if (b >= units * UNIT)
					b = units * UNIT - 1;

				if (b + l > units * UNIT)
					l = units * UNIT - b;
				at += (size_t)snprintf(out + at, len - at,
						       "W%d%s@b%u+%u/%u ", id,
						       f, b, l, c);
				break;
			}
			default:
				at += (size_t)snprintf(out + at, len - at,
						       "W%d%s@%u+%u/%u ", id, f,
						       u, m, c);
			}
			open[n_open++] = id++;
			continue;
		}
		{
			int i = (int)((r >> 3) % (uint64_t)n_open);

			if ((r >> 20) % 8 == 0 && id >= n) {
				n_open--; /* never replied */
				open[i] = open[n_open];
				continue;
			}
			at += (size_t)snprintf(out + at, len - at, "%c%d ",
					       (r >> 24) % 12 ? 'C' : 'E',
					       open[i]);
			open[i] = open[--n_open];
		}
	}
}

static const enum crash_model models[] = {CRASH_CONTRACT, CRASH_BARRIER,
					  CRASH_NOFLUSH, CRASH_SKIP1};

static void test_o1_explorer_states_accepted(void **state)
{
	struct tr *t = malloc(sizeof *t);
	uint64_t rng = 14, n = 0;
	char trace[4096];

	for (size_t i = 0; i < sizeof litmus / sizeof *litmus; i++) {
		parse(t, litmus[i].trace, litmus[i].units,
		      litmus[i].send_flush);
		for (size_t m = 0; m < 4; m++) {
			struct crash_plan *p =
				plan_of(t, models[m], true, true);

			n += all_states_accepted(p);
			crash_plan_free(p);
		}
	}
	for (int i = 0; i < 60; i++) {
		random_trace(trace, sizeof trace, &rng, 4 + i % 9, 4);
		parse(t, trace, 4, i % 7 != 0);
		for (size_t m = 0; m < 4; m++) {
			struct crash_plan *p =
				plan_of(t, models[m], i % 2, i % 3 == 0);

			n += all_states_accepted(p);
			crash_plan_free(p);
		}
	}
	print_message("%llu explorer states accepted\n", (unsigned long long)n);
	free(t);
}

/* ------------------------------------------------------------------ */
/* O3: the sweep equals O2 evaluated point by point.                   */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The pieces of O1: cut at every write boundary and every unit. */
static size_t pieces(const struct crash_plan *p, uint64_t *b)
{
	size_t n = 0, m = 0;

	for (uint64_t x = 0; x <= p->hdr.size; x += UNIT)
		b[n++] = x;
	for (uint32_t w = 0; w < p->n_writes; w++) {
		b[n++] = p->writes[w].off;
		b[n++] = p->writes[w].off + p->writes[w].len;
	}
	qsort(b, n, sizeof *b, cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (!m || b[m - 1] != b[i])
			b[m++] = b[i];
	return m;
}

static bool carries(const struct crash_write *w, const uint8_t *v, uint64_t x0,
		    uint64_t len)
{
	if (w->kind != CRASH_W_DATA)
		return trace_is_zero(v, len);
	return !memcmp(v, w->data + (x0 - w->off), len);
}

/* O2 written out for one point: the pieces img does not explain. */
static uint64_t ref_bad(const struct crash_plan *p, const uint8_t *img,
			uint32_t k, const uint64_t *b, size_t nb)
{
	uint32_t n_recv = p->points[k].n_recv;
	uint64_t bad = 0;

	for (size_t i = 0; i + 1 < nb; i++) {
		uint64_t x0 = b[i], len = b[i + 1] - b[i], rmax = 0;
		bool ok, pend = false;

		for (uint32_t w = 0; w < n_recv; w++) {
			const struct crash_write *cw = &p->writes[w];

			if (cw->off > x0 || cw->off + cw->len <= x0)
				continue;
			if (!crash_durable(p, k, w))
				pend = true;
			else if (cw->kind != CRASH_W_TRIM && cw->recv > rmax)
				rmax = cw->recv;
		}
		ok = (p->opts.garbage && pend) ||
		     (!rmax && !memcmp(img + x0, base + x0, len));
		for (uint32_t w = 0; w < p->n_writes; w++) {
			const struct crash_write *cw = &p->writes[w];

			if (cw->off > x0 || cw->off + cw->len <= x0)
				continue;
			if (w < n_recv && cw->reply > rmax &&
			    carries(cw, img + x0, x0, len))
				ok = true;
		}
		bad += !ok;
	}
	return bad;
}

/* A random image of p: per piece the base, zeroes, foreign bytes or the
   bytes of a write that covers it. */
static void random_image(const struct crash_plan *p, uint8_t *img,
			 const uint64_t *b, size_t nb, uint64_t *rng)
{
	memcpy(img, base, SIZE);
	for (size_t i = 0; i + 1 < nb; i++) {
		uint64_t x0 = b[i], len = b[i + 1] - b[i], r;
		uint32_t cov[MAXREC], n = 0;

		*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
		r = *rng >> 33;
		for (uint32_t w = 0; w < p->n_writes; w++)
			if (p->writes[w].off <= x0 &&
			    p->writes[w].off + p->writes[w].len > x0)
				cov[n++] = w;
		if (r % 16 == 0) {
			memset(img + x0, FOREIGN, len);
		} else if (r % 16 == 1) {
			memset(img + x0, 0, len);
		} else if (n && r % 16 > 4) {
			const struct crash_write *w =
				&p->writes[cov[(r >> 4) % n]];

			if (w->kind == CRASH_W_DATA)
				memcpy(img + x0, w->data + (x0 - w->off), len);
			else
				memset(img + x0, 0, len);
		}
	}
}

static void test_o3_sweep_equals_o2(void **state)
{
	struct tr *t = malloc(sizeof *t);
	static uint8_t img[SIZE];
	uint64_t rng = 3, b[4 * MAXREC + MAXU + 2], members = 0, runs = 0;
	char trace[4096];

	for (int i = 0; i < 300; i++) {
		random_trace(trace, sizeof trace, &rng, 3 + i % 14, 4);
		parse(t, trace, 4, i % 5 != 0);
		for (size_t m = 0; m < 4; m++) {
			struct crash_plan *p =
				plan_of(t, models[m], false, i % 4 == 0);
			size_t nb = pieces(p, b);

			for (int j = 0; j < 8; j++) {
				struct oracle_result res;
				uint64_t *per;

				random_image(p, img, b, nb, &rng);
				per = check(p, img, &res);
				for (uint32_t k = 0; k < p->n_points; k++)
					if (per[k] != ref_bad(p, img, k, b, nb))
						fail_msg("%s (model %s) point "
							 "%u: "
							 "oracle %llu, O2 %llu",
							 trace,
							 crash_model_name(
								 models[m]),
							 k,
							 (unsigned long long)
								 per[k],
							 (unsigned long long)
								 ref_bad(p, img,
									 k, b,
									 nb));
				members += res.member;
				runs++;
				free(per);
			}
			crash_plan_free(p);
		}
	}
	/* Both answers were exercised. */
	assert_true(members > runs / 20 && members < runs - runs / 20);
	free(t);
}

/* ------------------------------------------------------------------ */
/* Known answers: O1, O4, O5.                                          */

/* A state after a flush, with pending writes present, one torn. */
static void test_o5_after_flush_pending_present(void **state)
{
	struct tr *t = malloc(sizeof *t);
	struct oracle_presence pr[8];
	static uint8_t img[SIZE];
	struct oracle_result res;
	struct crash_plan *p;
	uint64_t differ, *per;

	/* W1 flushed; W2 completed after the flush, W3 in flight. */
	parse(t, "W1@0+1 C1 F9 C9 W2@1+1 C2 W3@2+2", 4, true);
	p = plan_of(t, CRASH_CONTRACT, false, false);
	assert_int_equal(p->n_points, 2);
	image_of("AB.C", img);
	per = check(p, img, &res);
	assert_true(res.member);
	assert_int_equal(res.point, 1); /* W2, W3 arrived after point 0 */
	assert_int_equal(per[0], 2);
	free(per);
	assert_int_equal(oracle_presence(p, base, img, 1, pr, &differ), 0);
	assert_int_equal(differ, 2);
	assert_int_equal(pr[0].can, 0); /* durable */
	assert_int_equal(pr[1].can, 1); /* W2: whole */
	assert_int_equal(pr[1].shown, 1);
	assert_int_equal(pr[2].can, 2); /* W3: in part */
	assert_int_equal(pr[2].shown, 1);
	/* W1 absent: explained at point 0 (unit 0), never with B: refused,
	   the closest point is 0 and its first unexplained unit is 1. */
	image_of(".B..", img);
	per = check(p, img, &res);
	assert_false(res.member);
	assert_false(res.never);
	assert_int_equal(res.point, 0);
	assert_int_equal(res.n_bad, 1);
	assert_int_equal(res.bad_off, UNIT);
	assert_int_equal(res.bad_len, UNIT);
	free(per);
	crash_plan_free(p);
	free(t);
}

/* O4: one unit of foreign data is refused, and named. */
static void test_o4_foreign_unit_named(void **state)
{
	struct tr *t = malloc(sizeof *t);
	static uint8_t img[SIZE];
	struct oracle_result res;
	struct crash_plan *p;
	const uint32_t *cw;
	uint32_t n;
	uint64_t *per;

	parse(t, "W1@0+4 C1 F9 C9 W2@1+2 C2", 4, true);
	p = plan_of(t, CRASH_CONTRACT, true, false);
	image_of("ABBA", img);
	per = check(p, img, &res);
	assert_true(res.member);
	free(per);
	img[2 * UNIT + 100] = FOREIGN; /* one byte of unit 2 */
	per = check(p, img, &res);
	assert_false(res.member);
	assert_true(res.never);
	assert_int_equal(res.n_never, 1);
	assert_int_equal(res.bad_off, 2 * UNIT);
	assert_int_equal(res.bad_len, UNIT);
	free(per);
	/* The writes that could have put data there. */
	cw = oracle_writes_at(p, res.bad_off, &n);
	assert_int_equal(n, 2);
	assert_int_equal(cw[0], 0);
	assert_int_equal(cw[1], 1);
	assert_null(oracle_writes_at(p, p->hdr.size, &n));
	assert_int_equal(n, 0);
	/* Bytes no write covers must be the base's. */
	parse(t, "W1@0+1 C1", 4, true);
	crash_plan_free(p);
	p = plan_of(t, CRASH_CONTRACT, false, false);
	image_of("A..z", img);
	per = check(p, img, &res);
	assert_false(res.member);
	assert_true(res.never);
	assert_int_equal(res.bad_off, 3 * UNIT);
	assert_null(oracle_writes_at(p, res.bad_off, &n));
	free(per);
	crash_plan_free(p);
	free(t);
}

/* O2 (a), (b): TRIM old or zero per unit; a no-flush state refused under
   the contract and accepted under no-flush. */
static void test_o2_trim_and_models(void **state)
{
	struct tr *t = malloc(sizeof *t);
	static uint8_t img[SIZE];
	struct oracle_result res;
	struct crash_plan *p;
	uint32_t hider;
	uint64_t *per;

	parse(t, "W1@0+2 C1 F8 C8 T2@0+2 C2 F9 C9", 2, true);
	p = plan_of(t, CRASH_CONTRACT, false, false);
	image_of("0A", img); /* TRIM zero on unit 0, old on unit 1 */
	per = check(p, img, &res);
	assert_true(res.member);
	assert_int_equal(res.point, 1); /* the TRIM arrived after point 0 */
	free(per);
	image_of("0.", img); /* zero needs the TRIM, '.' needs no W1 */
	per = check(p, img, &res);
	assert_false(res.member);
	assert_false(res.never);
	assert_int_equal(res.point, 0);
	assert_int_equal(res.bad_off, 0);
	free(per);
	crash_plan_free(p);

	/* W2 after the first flush, W1 before it: only no-flush loses W1
	   while keeping W2. */
	parse(t, "W1@0+1 C1 F8 C8 W2@1+1 C2 F9 C9", 2, true);
	image_of(".B", img);
	p = plan_of(t, CRASH_CONTRACT, false, false);
	per = check(p, img, &res);
	assert_false(res.member);
	free(per);
	crash_plan_free(p);
	p = plan_of(t, CRASH_NOFLUSH, false, false);
	per = check(p, img, &res);
	assert_true(res.member);
	free(per);
	crash_plan_free(p);

	/* A pending write hb-before a durable one: may not show, and the
	   report names the durable one. */
	parse(t, "W1@0+1 C1 W2f@0+1 C2", 2, true);
	p = plan_of(t, CRASH_CONTRACT, false, false);
	assert_false(oracle_may_show(p, p->n_points - 1, 0, 0, &hider));
	assert_int_equal(hider, 1);
	assert_true(oracle_may_show(p, p->n_points - 1, 1, 0, &hider));
	assert_int_equal(oracle_first_point(p, 1), 0);
	crash_plan_free(p);
	free(t);
}

/* O1: pieces cut at write boundaries inside a unit; O2 (c) garbage. */
static void test_o1_unaligned_and_garbage(void **state)
{
	struct tr *t = malloc(sizeof *t);
	static uint8_t img[SIZE];
	struct oracle_result res;
	struct crash_plan *p;
	uint64_t *per;

	/* W1 covers unit 0, W2 bytes [100, 300) of it; both in flight. */
	parse(t, "W1@0+1 W2@b100+200", 1, true);
	p = plan_of(t, CRASH_CONTRACT, false, false);
	memset(img, '.', SIZE);
	memset(img, 'A', UNIT);
	memset(img + 100, 'B', 200);
	per = check(p, img, &res);
	assert_true(res.member);
	free(per);
	memset(img + 100, '.', 200); /* W1's piece [100, 300) left out */
	per = check(p, img, &res);
	assert_true(res.member);
	free(per);
	memset(img + 150, FOREIGN, 10);
	per = check(p, img, &res);
	assert_false(res.member);
	assert_true(res.never);
	assert_int_equal(res.bad_off, 100);
	assert_int_equal(res.bad_len, 200);
	free(per);
	crash_plan_free(p);
	/* Garbage: foreign bytes under a pending write, only with it. */
	p = plan_of(t, CRASH_CONTRACT, false, true);
	per = check(p, img, &res);
	assert_true(res.member);
	free(per);
	crash_plan_free(p);
	/* ... while it is pending, not once it is durable. */
	parse(t, "W1f@0+1 C1", 1, true);
	p = plan_of(t, CRASH_CONTRACT, false, true);
	memset(img, 'A', UNIT);
	img[7] = FOREIGN;
	per = check(p, img, &res);
	assert_true(res.member);
	assert_int_equal(res.point, 0); /* in flight before its reply */
	assert_int_equal(per[1], 1); /* durable at the end */
	free(per);
	crash_plan_free(p);
	free(t);
}

int main(void)
{
	struct CMUnitTest tests[sizeof litmus / sizeof litmus[0] + 8];
	size_t n = 0, i;

	memset(base, '.', sizeof base);
	for (i = 0; i < sizeof litmus / sizeof litmus[0]; i++)
		tests[n++] =
			(struct CMUnitTest){litmus[i].name, test_litmus, NULL,
					    NULL, (void *)&litmus[i]};
	tests[n++] = (struct CMUnitTest){"o1_explorer_states_accepted",
					 test_o1_explorer_states_accepted, NULL,
					 NULL, NULL};
	tests[n++] =
		(struct CMUnitTest){"o3_sweep_equals_o2",
				    test_o3_sweep_equals_o2, NULL, NULL, NULL};
	tests[n++] = (struct CMUnitTest){"o5_after_flush_pending_present",
					 test_o5_after_flush_pending_present,
					 NULL, NULL, NULL};
	tests[n++] = (struct CMUnitTest){"o4_foreign_unit_named",
					 test_o4_foreign_unit_named, NULL, NULL,
					 NULL};
	tests[n++] =
		(struct CMUnitTest){"o2_trim_and_models",
				    test_o2_trim_and_models, NULL, NULL, NULL};
	tests[n++] = (struct CMUnitTest){"o1_unaligned_and_garbage",
					 test_o1_unaligned_and_garbage, NULL,
					 NULL, NULL};
	return _cmocka_run_group_tests("oracle", tests, n, NULL, NULL);
}
