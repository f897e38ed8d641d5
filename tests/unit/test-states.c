/* SPDX-License-Identifier: MIT */
/*
 * test-states.c: the crash-state enumeration (src/trace/states.c, rules
 * S1-S9) on hand-written traces whose legal states are known: the A0
 * litmus tests of crash-model.md, plus the models, tearing, sampling and
 * the stability of state IDs.
 *
 * A trace is written as a line of tokens, in server (seq) order:
 *   W<id>[f]@<unit>+<n>[/conn]  WRITE of n units at unit (f: FUA); every
 *                               byte of it is 'A' + id - 1
 *   Z<id>@u+n, T<id>@u+n        WRITE_ZEROES, TRIM
 *   F<id>[/conn]                FLUSH received
 *   C<id>, E<id>                reply to request id: OK, or EIO
 *   M                           a mark
 * The export has `units` units of 512 bytes; the base image is all '.'.
 * An image is shown as one character per unit, and a point's legal set as
 * the sorted, comma-separated list of the distinct images of all its
 * states.
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

#include "trace/states.h"
#include "nbd/nbd.h"
#include "trace/trace.h"

#define MAXU 16
#define TRACETEXT_MAXU MAXU
#include "tracetext.h"

static struct crash_plan *plan_opts(struct tr *t, struct crash_opts o)
{
	struct crash_plan *p;
	const char *why;

	assert_int_equal(crash_plan_build(&t->h, t->r, t->n, &o, &p, &why), 0);
	return p;
}

static struct crash_plan *plan_of(struct tr *t, enum crash_model m, bool tear,
				  uint32_t e)
{
	return plan_opts(t, (struct crash_opts){.model = m,
						.seed = 1,
						.exhaustive = e,
						.tear = tear,
						.unit = UNIT});
}

static void apply(const struct crash_plan *p, uint8_t *img,
		  const struct crash_extents *x)
{
	for (size_t i = 0; i < x->n; i++) {
		const struct crash_extent *e = &x->v[i];

		if (e->src == CRASH_SRC_BASE)
			memset(img + e->off, '.', e->len);
		else if (e->src == CRASH_SRC_ZERO)
			memset(img + e->off, 0, e->len);
		else
			memcpy(img + e->off, crash_src_data(p, e), e->len);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The legal set of point k (k < 0: counted from the end) as a string.
 * Also checks that states with equal keys have equal images (S7), and
 * returns the number of distinct keys in *n_keys.
 */
static char *legal(const struct crash_plan *p, int k, size_t *n_keys)
{
	struct crash_scratch *s = crash_scratch_new(p);
	struct crash_extents d = {0}, x = {0};
	uint32_t units = (uint32_t)(p->hdr.size / UNIT), pt;
	size_t n_img = 0, i, len = 0, nk = 0;
	static uint8_t dimg[MAXU * UNIT], img[MAXU * UNIT];
	char **imgs, *out;
	uint64_t *keys;
	char **key_img;
	uint64_t item;

	assert_non_null(s);
	pt = k < 0 ? p->n_points + (uint32_t)k : (uint32_t)k;
	assert_true(pt < p->n_points);
	assert_true(p->points[pt].exhaustive);
	imgs = calloc(p->points[pt].items, sizeof *imgs);
	keys = calloc(p->points[pt].items, sizeof *keys);
	key_img = calloc(p->points[pt].items, sizeof *key_img);
	memset(dimg, '.', sizeof dimg);
	assert_int_equal(crash_durable_diff(p, s, CRASH_BASE, pt, &d), 0);
	apply(p, dimg, &d);
	assert_int_equal(crash_point_open(p, s, pt), 0);
	for (item = 0;; item++) {
		struct crash_state st;
		char *str;

		if (crash_state_get(p, s, item, &st) == -ENOENT)
			break;
		assert_int_equal(crash_state_extents(p, s, &st, &x), 0);
		memcpy(img, dimg, sizeof img);
		apply(p, img, &x);
		str = calloc(units + 1, 1);
		for (i = 0; i < units; i++) {
			uint8_t c = img[i * UNIT];

			/* Units are never split by an untorn state. */
			for (size_t j = 1; j < UNIT; j++)
				assert_int_equal(img[i * UNIT + j], c);
			str[i] = c ? (char)c : '0';
		}
		for (i = 0; i < nk; i++)
			if (keys[i] == x.key) {
				assert_string_equal(key_img[i], str);
				break;
			}
		if (i == nk) {
			keys[nk] = x.key;
			key_img[nk++] = strdup(str);
		}
		for (i = 0; i < n_img; i++)
			if (!strcmp(imgs[i], str))
				break;
		if (i == n_img)
			imgs[n_img++] = str;
		else
			free(str);
		crash_state_free(&st);
	}
	assert_int_equal(item, p->points[pt].items);
	qsort(imgs, n_img, sizeof *imgs, cmp_str);
	out = calloc(n_img * (units + 1) + 1, 1);
	for (i = 0; i < n_img; i++) {
		len += (size_t)sprintf(out + len, "%s%s", i ? "," : "",
				       imgs[i]);
		free(imgs[i]);
	}
	for (i = 0; i < nk; i++)
		free(key_img[i]);
	if (n_keys)
		*n_keys = nk;
	free(imgs);
	free(keys);
	free(key_img);
	crash_extents_free(&d);
	crash_extents_free(&x);
	crash_scratch_free(s);
	return out;
}

struct litmus {
	const char *name;
	const char *trace;
	unsigned int units;
	bool send_flush;
	enum crash_model model;
	int point; /* -1: the end */
	const char *want;
	uint32_t n_points; /* 0: not checked */
};

/* clang-format off */
static const struct litmus litmus[] = {
	/* A0: W1 C1 F CF | crash -> W1 present in all states. */
	{"a0_completed_then_flushed", "W1@0+1 C1 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "A.", 2},
	{"a0_before_flush_reply_optional", "W1@0+1 C1 F9 C9", 2, true,
	 CRASH_CONTRACT, 0, "..,A.", 2},
	/* W1 F C1 CF: completed after the flush was received -> optional. */
	{"a0_completed_after_flush_recv", "W1@0+1 F9 C1 C9", 2, true,
	 CRASH_CONTRACT, -1, "..,A.", 0},
	/* W1(FUA) C1 -> present. */
	{"a0_fua_completed", "W1f@0+1 C1", 2, true, CRASH_CONTRACT, -1, "A.",
	 2},
	{"a0_fua_in_flight", "W1f@0+1 C1", 2, true, CRASH_CONTRACT, 0,
	 "..,A.", 0},
	/* W1 W2 C1 C2, overlapping and concurrent -> either value. */
	{"a0_concurrent_overlap_flushed", "W1@0+1 W2@0+1 C1 C2 F9 C9", 2,
	 true, CRASH_CONTRACT, -1, "A.,B.", 0},
	{"a0_concurrent_overlap_pending", "W1@0+1 W2@0+1 C1 C2", 2, true,
	 CRASH_CONTRACT, -1, "..,A.,B.", 0},
	/* W1 C1 W2 C2, W1 ->hb W2, F CF -> only W2. */
	{"a0_hb_overlap_flushed", "W1@0+1 C1 W2@0+1 C2 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "B.", 0},
	/* ... and before the flush: W2 may be missing, then W1 may show. */
	{"a0_hb_overlap_pending", "W1@0+1 C1 W2@0+1 C2", 2, true,
	 CRASH_CONTRACT, -1, "..,A.,B.", 0},
	/* A pending write hb-before a durable (FUA) write cannot show. */
	{"a0_pending_hb_before_durable", "W1@0+1 C1 W2f@0+1 C2", 2, true,
	 CRASH_CONTRACT, -1, "B.", 0},
	/* A concurrent pending write may land after the durable one. */
	{"a0_pending_concurrent_with_durable", "W1@0+1 W2f@0+1 C2 C1", 2,
	 true, CRASH_CONTRACT, -1, "A.,B.", 0},
	/* TRIM -> old or 0. */
	{"a0_trim_old_or_zero", "W1@0+2 C1 F8 C8 T2@0+1 C2 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "0A,AA", 0},
	{"a0_trim_pending", "W1@0+2 C1 F8 C8 T2@0+1 C2", 2, true,
	 CRASH_CONTRACT, -1, "0A,AA", 0},
	{"a0_write_zeroes", "Z1@0+1 C1 F9 C9", 2, true, CRASH_CONTRACT, -1,
	 "0.", 0},
	/* No SEND_FLUSH: completed writes are always present. */
	{"a0_no_send_flush", "W1@0+1 C1 W2@1+1", 2, false, CRASH_CONTRACT,
	 -1, "A.,AB", 2},
	{"a0_no_send_flush_in_flight", "W1@0+1 C1 W2@1+1", 2, false,
	 CRASH_CONTRACT, 0, "..,A.", 0},
	/* Cross-connection: a flush on conn 2 covers a write replied on
	   conn 1 before the flush arrived, and only that. */
	{"a0_cross_connection_covered", "W1@0+1/1 C1 F9/2 C9", 2, true,
	 CRASH_CONTRACT, -1, "A.", 0},
	{"a0_cross_connection_not_covered", "W1@0+1/1 F9/2 C1 C9", 2, true,
	 CRASH_CONTRACT, -1, "..,A.", 0},
	{"a0_cross_connection_two_writes",
	 "W1@0+1/1 W2@1+1/2 C1 F9/3 C2 C9", 2, true, CRASH_CONTRACT, -1,
	 "A.,AB", 0},
	/* A failed write stays possible; a failed flush adds nothing. */
	{"a0_failed_write", "W1@0+1 E1 F9 C9", 2, true, CRASH_CONTRACT, -1,
	 "..,A.", 0},
	{"a0_failed_flush", "W1@0+1 C1 F9 E9", 2, true, CRASH_CONTRACT, -1,
	 "..,A.", 0},
	/* Models. */
	{"barrier_covers_received", "W1@0+1 F9 C1 C9", 2, true,
	 CRASH_BARRIER, -1, "A.", 0},
	{"noflush_persists_nothing", "W1@0+1 C1 F9 C9", 2, true,
	 CRASH_NOFLUSH, -1, "..,A.", 0},
	{"noflush_ignores_fua", "W1f@0+1 C1", 2, true, CRASH_NOFLUSH, -1,
	 "..,A.", 0},
	{"contract_two_epochs", "W1@0+1 C1 F8 C8 W2@1+1 C2 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "AB", 3},
	{"skip1_last_flush_ignored", "W1@0+1 C1 F8 C8 W2@1+1 C2 F9 C9", 2,
	 true, CRASH_SKIP1, -1, "A.,AB", 3},
	{"contract_before_second_flush", "W1@0+1 C1 F8 C8 W2@1+1 C2 F9 C9", 2,
	 true, CRASH_CONTRACT, 1, "A.,AB", 0},
	{"skip1_before_second_flush", "W1@0+1 C1 F8 C8 W2@1+1 C2 F9 C9", 2,
	 true, CRASH_SKIP1, 1, "..,.B,A.,AB", 0},
	/* S4: each TRIM is old or zero on its own, durable ones too. */
	{"s4_trim_per_trim", "W1@0+2 C1 F8 C8 T2@0+1 C2 T3@1+1 C3 F9 C9", 2,
	 true, CRASH_CONTRACT, -1, "00,0A,A0,AA", 0},
	{"s4_trim_per_trim_pending", "W1@0+2 C1 F8 C8 T2@0+1 C2 T3@1+1 C3", 2,
	 true, CRASH_CONTRACT, -1, "00,0A,A0,AA", 0},
	/* S8: three concurrent overlapping writes: any may land last,
	   the middle one too (every linear extension). */
	{"s8_three_concurrent_flushed", "W1@0+1 W2@0+1 W3@0+1 C1 C2 C3 F9 C9",
	 2, true, CRASH_CONTRACT, -1, "A.,B.,C.", 0},
	/* ... but never one that is hb-before another chosen writer. */
	{"s8_concurrent_with_hb", "W1@0+1 C1 W2@0+1 W3@0+1 C2 C3 F9 C9", 2,
	 true, CRASH_CONTRACT, -1, "B.,C.", 0},
	/* S1: a flush that covers nothing new adds no point. */
	{"duplicate_points_dropped", "W1@0+1 C1 F8 C8 F9 C9", 2, true,
	 CRASH_CONTRACT, -1, "A.", 2},
};
/* clang-format on */

static void test_litmus(void **state)
{
	const struct litmus *l = *state;
	struct crash_plan *p;
	struct tr *t = malloc(sizeof *t);
	char *got;

	parse(t, l->trace, l->units, l->send_flush);
	p = plan_of(t, l->model, false, 10);
	got = legal(p, l->point, NULL);
	if (strcmp(got, l->want))
		fail_msg("%s: legal set {%s}, want {%s}", l->trace, got,
			 l->want);
	if (l->n_points)
		assert_int_equal(p->n_points, l->n_points);
	free(got);
	crash_plan_free(p);
	free(t);
}

/* n independent pending writes: 2^n states, not n!. */
static void test_two_to_the_n(void **state)
{
	char trace[256];
	size_t len = 0, keys;
	struct crash_plan *p;
	struct tr *t = malloc(sizeof *t);
	char *got;
	unsigned int i, n;

	for (n = 1; n <= 10; n++) {
		len = 0;
		for (i = 0; i < n; i++)
			len += (size_t)sprintf(trace + len, "W%u@%u+1 ", i + 1,
					       i);
		parse(t, trace, n, true);
		p = plan_of(t, CRASH_CONTRACT, false, 10);
		assert_int_equal(p->points[p->n_points - 1].combos, 1u << n);
		got = legal(p, -1, &keys);
		assert_int_equal(keys, 1u << n);
		assert_int_equal(strlen(got), (n + 1) * (1u << n) - 1);
		free(got);
		crash_plan_free(p);
	}
	free(t);
}

/* S7: states that differ only in writes that cannot show dedupe. */
static void test_dedupe_keys(void **state)
{
	struct tr *t = malloc(sizeof *t);
	struct crash_plan *p;
	size_t keys;
	char *got;

	/* W2 hides W1 whenever both are chosen: 4 subsets, 3 images. */
	parse(t, "W1@0+1 C1 W2@0+1 C2", 1, true);
	p = plan_of(t, CRASH_CONTRACT, false, 10);
	got = legal(p, -1, &keys);
	assert_string_equal(got, ".,A,B");
	assert_int_equal(keys, 3);
	free(got);
	crash_plan_free(p);
	free(t);
}

/*
 * S7: a key depends only on the state's extents, never on what the memory
 * that receives them held before (the key hashes them as bytes).
 */
static void test_key_stable(void **state)
{
	struct tr *t = malloc(sizeof *t);
	struct crash_plan *p;
	struct crash_scratch *s;
	uint32_t pt;
	uint64_t item;

	parse(t, "W1@0+1 C1 W2@1+1 C2 W3@0+2", 2, true);
	p = plan_of(t, CRASH_CONTRACT, true, 10);
	s = crash_scratch_new(p);
	pt = p->n_points - 1;
	assert_int_equal(crash_point_open(p, s, pt), 0);
	assert_true(p->points[pt].items > 1);
	for (item = 0; item < p->points[pt].items; item++) {
		struct crash_extents x[2] = {{0}};
		struct crash_state st;

		assert_int_equal(crash_state_get(p, s, item, &st), 0);
		for (int i = 0; i < 2; i++) {
			x[i].cap = 64;
			x[i].v = malloc(x[i].cap * sizeof *x[i].v);
			memset(x[i].v, i ? 0xa5 : 0, x[i].cap * sizeof *x[i].v);
			assert_int_equal(crash_state_extents(p, s, &st, &x[i]),
					 0);
		}
		assert_true(x[0].key == x[1].key);
		crash_extents_free(&x[0]);
		crash_extents_free(&x[1]);
		crash_state_free(&st);
	}
	crash_scratch_free(s);
	crash_plan_free(p);
	free(t);
}

/* S6: --tear splits one write at the unit, never below it. */
static void test_tear(void **state)
{
	struct tr *t = malloc(sizeof *t);
	struct crash_plan *p;
	char *got;

	parse(t, "W1@0+2", 2, true);
	p = plan_of(t, CRASH_CONTRACT, false, 10);
	got = legal(p, -1, NULL);
	assert_string_equal(got, "..,AA");
	free(got);
	crash_plan_free(p);
	p = plan_of(t, CRASH_CONTRACT, true, 10);
	got = legal(p, -1, NULL);
	assert_string_equal(got, "..,.A,A.,AA");
	free(got);
	crash_plan_free(p);
	free(t);
}

/*
 * Sampling past E: every state is legal (each unit holds the base or its
 * own write), the list holds the structured states, and items are stable.
 */
static void test_sampled(void **state)
{
	struct tr *t = malloc(sizeof *t);
	struct crash_state st, st2;
	struct crash_scratch *s;
	struct crash_plan *p;
	char trace[512];
	size_t len = 0;
	unsigned int i;
	bool seen_prefix = false, seen_omit = false, seen_keep = false;
	bool seen_complete = false, seen_empty = false;
	uint64_t item;

	for (i = 0; i < 16; i++)
		len += (size_t)sprintf(trace + len, "W%u@%u+1 ", i + 1, i);
	parse(t, trace, 16, true);
	p = plan_of(t, CRASH_CONTRACT, false, 10);
	assert_false(p->points[0].exhaustive);
	s = crash_scratch_new(p);
	assert_int_equal(crash_point_open(p, s, 0), 0);
	for (item = 0; item < p->points[0].items; item++) {
		assert_int_equal(crash_state_get(p, s, item, &st), 0);
		assert_int_equal(crash_state_get(p, s, item, &st2), 0);
		assert_memory_equal(st.chosen, st2.chosen, sizeof(uint64_t));
		assert_string_equal(st.kind, st2.kind);
		seen_prefix |= !strcmp(st.kind, "prefix-recv");
		seen_omit |= !strcmp(st.kind, "omit-one") && st.n_chosen == 15;
		seen_keep |= !strcmp(st.kind, "keep-one") && st.n_chosen == 1;
		seen_complete |= st.n_chosen == 16;
		seen_empty |= st.n_chosen == 0;
		if (!strcmp(st.kind, "prefix-recv")) {
			/* A prefix: chosen bits are contiguous from 0. */
			uint64_t m = st.chosen[0];

			assert_int_equal(m & (m + 1), 0);
		}
		crash_state_free(&st);
		crash_state_free(&st2);
	}
	assert_true(seen_prefix && seen_omit && seen_keep && seen_complete &&
		    seen_empty);
	/* Another seed gives another random state 0. */
	{
		struct crash_opts o = p->opts;
		struct crash_plan *q;
		struct crash_scratch *s2;
		const char *why;

		o.seed = 2;
		assert_int_equal(
			crash_plan_build(&t->h, t->r, t->n, &o, &q, &why), 0);
		s2 = crash_scratch_new(q);
		crash_point_open(q, s2, 0);
		crash_state_get(p, s, 0, &st);
		crash_state_get(q, s2, 0, &st2);
		assert_true(st.chosen[0] != st2.chosen[0]);
		crash_state_free(&st);
		crash_state_free(&st2);
		crash_scratch_free(s2);
		crash_plan_free(q);
	}
	assert_int_equal(crash_state_get(p, s, p->points[0].items, &st),
			 -ENOENT);
	crash_scratch_free(s);
	crash_plan_free(p);
	free(t);
}

/* crash_durable_diff moves D forward and back. */
static void test_durable_diff(void **state)
{
	struct tr *t = malloc(sizeof *t);
	struct crash_extents x = {0};
	struct crash_scratch *s;
	struct crash_plan *p;

	parse(t, "W1@0+1 C1 F8 C8 W2@1+1 C2 F9 C9", 2, true);
	p = plan_of(t, CRASH_CONTRACT, false, 10);
	s = crash_scratch_new(p);
	assert_int_equal(crash_durable_diff(p, s, CRASH_BASE, 0, &x), 0);
	assert_int_equal(x.n, 0);
	assert_int_equal(crash_durable_diff(p, s, 0, 2, &x), 0);
	assert_int_equal(x.n, 2); /* W1 and W2: one extent each */
	assert_int_equal(x.v[0].len, UNIT);
	assert_int_equal(x.v[1].off, UNIT);
	assert_int_equal(crash_durable_diff(p, s, 1, 2, &x), 0);
	assert_int_equal(x.n, 1);
	assert_int_equal(x.v[0].off, UNIT);
	assert_int_equal(crash_durable_diff(p, s, 2, 1, &x), 0);
	assert_int_equal(x.n, 1);
	assert_int_equal(x.v[0].src, CRASH_SRC_BASE);
	crash_extents_free(&x);
	crash_scratch_free(s);
	crash_plan_free(p);
	free(t);
}

/*
 * S9: with --garbage, some state of a pending write holds garbage in a
 * unit (crash_garbage's bytes, whole units, never outside the write);
 * without it, none does.
 */
static void test_garbage(void **state)
{
	struct tr *t = malloc(sizeof *t);
	uint8_t g[UNIT];
	bool on;

	parse(t, "W1@1+2 C1", 4, true);
	for (on = false;; on = true) {
		struct crash_plan *p = plan_opts(
			t, (struct crash_opts){.model = CRASH_CONTRACT,
					       .seed = 1,
					       .exhaustive = 10,
					       .garbage = on,
					       .unit = UNIT});
		struct crash_scratch *s = crash_scratch_new(p);
		uint32_t pt = p->n_points - 1;
		unsigned int found[4] = {0};
		uint64_t item;

		assert_int_equal(crash_point_open(p, s, pt), 0);
		for (item = 0; item < p->points[pt].items; item++) {
			struct crash_extents x = {0};
			struct crash_state st;

			assert_int_equal(crash_state_get(p, s, item, &st), 0);
			assert_int_equal(crash_state_extents(p, s, &st, &x), 0);
			for (size_t i = 0; i < x.n; i++) {
				const struct crash_extent *e = &x.v[i];

				if (e->src != CRASH_SRC_GARBAGE)
					continue;
				assert_true(on);
				assert_int_equal(e->off % UNIT, 0);
				assert_int_equal(e->len % UNIT, 0);
				assert_true(e->off >= UNIT &&
					    e->off + e->len <= 3 * UNIT);
				for (uint64_t u = e->off; u < e->off + e->len;
				     u += UNIT)
					found[u / UNIT]++;
			}
			crash_extents_free(&x);
			crash_state_free(&st);
		}
		if (on) /* both units of W1 hold garbage in some state */
			assert_true(found[1] && found[2]);
		crash_scratch_free(s);
		crash_plan_free(p);
		if (on)
			break;
	}
	/* Never garbage under a later durable write: W1 is pending, the FUA
	   W2 replied after it covers the same unit. */
	parse(t, "W1@0+1 C1 W2f@0+1 C2 W3@1+1", 2, true);
	{
		struct crash_plan *p = plan_opts(
			t, (struct crash_opts){.model = CRASH_CONTRACT,
					       .seed = 1,
					       .exhaustive = 10,
					       .garbage = true,
					       .unit = UNIT});
		struct crash_scratch *s = crash_scratch_new(p);
		uint32_t pt = p->n_points - 1;
		unsigned int garbled = 0;

		assert_int_equal(crash_point_open(p, s, pt), 0);
		for (uint64_t item = 0; item < p->points[pt].items; item++) {
			struct crash_extents x = {0};
			struct crash_state st;

			assert_int_equal(crash_state_get(p, s, item, &st), 0);
			assert_int_equal(crash_state_extents(p, s, &st, &x), 0);
			for (size_t i = 0; i < x.n; i++)
				if (x.v[i].src == CRASH_SRC_GARBAGE) {
					/* only W3's unit, never W2's */
					assert_int_equal(x.v[i].off, UNIT);
					garbled++;
				}
			crash_extents_free(&x);
			crash_state_free(&st);
		}
		assert_true(garbled > 0);
		crash_scratch_free(s);
		crash_plan_free(p);
	}
	/* A fixed function of the offset, not all zero or one byte. */
	crash_garbage(UNIT, UNIT, g);
	assert_true(g[0] != g[1] || g[1] != g[2]);
	{
		uint8_t h[UNIT / 2];

		crash_garbage(UNIT + UNIT / 2, UNIT / 2, h);
		assert_memory_equal(h, g + UNIT / 2, UNIT / 2);
	}
	free(t);
}

/*
 * Every item of a point can be built, with --tear and --garbage, for many
 * seeds: the write that a torn or garbage item picks is always one of the
 * point's (an item past the number of candidates used to send bij() into
 * a cycle with no end).
 */
static void test_every_item_terminates(void **state)
{
	struct tr *t = malloc(sizeof *t);
	uint64_t seed;

	parse(t, "W1@0+2 W2@2+2 W3@4+2 W4@6+3 W5@9+2 C1", 12, true);
	for (seed = 1; seed <= 64; seed++) {
		struct crash_plan *p = plan_opts(
			t, (struct crash_opts){.model = CRASH_CONTRACT,
					       .seed = seed,
					       .exhaustive = seed & 1 ? 10 : 2,
					       .tear = true,
					       .garbage = true,
					       .unit = UNIT});
		struct crash_scratch *s = crash_scratch_new(p);
		uint32_t k;

		for (k = 0; k < p->n_points; k++) {
			uint64_t item;

			assert_int_equal(crash_point_open(p, s, k), 0);
			for (item = 0; item < p->points[k].items; item++) {
				struct crash_state st;

				assert_int_equal(
					crash_state_get(p, s, item, &st), 0);
				crash_state_free(&st);
			}
		}
		crash_scratch_free(s);
		crash_plan_free(p);
	}
	free(t);
}

int main(void)
{
	struct CMUnitTest tests[sizeof litmus / sizeof litmus[0] + 10];
	size_t n = 0, i;

	for (i = 0; i < sizeof litmus / sizeof litmus[0]; i++)
		tests[n++] =
			(struct CMUnitTest){litmus[i].name, test_litmus, NULL,
					    NULL, (void *)&litmus[i]};
	tests[n++] = (struct CMUnitTest){"two_to_the_n", test_two_to_the_n,
					 NULL, NULL, NULL};
	tests[n++] = (struct CMUnitTest){"dedupe_keys", test_dedupe_keys, NULL,
					 NULL, NULL};
	tests[n++] = (struct CMUnitTest){"key_stable", test_key_stable, NULL,
					 NULL, NULL};
	tests[n++] = (struct CMUnitTest){"tear", test_tear, NULL, NULL, NULL};
	tests[n++] =
		(struct CMUnitTest){"sampled", test_sampled, NULL, NULL, NULL};
	tests[n++] = (struct CMUnitTest){"durable_diff", test_durable_diff,
					 NULL, NULL, NULL};
	tests[n++] =
		(struct CMUnitTest){"garbage", test_garbage, NULL, NULL, NULL};
	tests[n++] = (struct CMUnitTest){"every_item_terminates",
					 test_every_item_terminates, NULL, NULL,
					 NULL};
	return _cmocka_run_group_tests("states", tests, n, NULL, NULL);
}
