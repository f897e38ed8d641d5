/* SPDX-License-Identifier: MIT */
/*
 * selfcheck.c: the recorder self-check A7 of `loopd crash`, run before
 * exploring: does the trace reproduce the file it was recorded from?
 *
 * X6. Self-check (A7): replaying every write of a complete trace onto the
 *     base must give the final file's SHA-256 recorded in END.  TRIM is
 *     tried as zeroes, then as a no-op (both are what loopd may do).
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash/explore.h"
#include "util/io.h"

#define STEP (1u << 20) /* the replay's window */

/* One write's part in one window. */
struct ref {
	uint64_t step;
	uint32_t w;
};

static int cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->step != y->step)
		return x->step < y->step ? -1 : 1;
	return x->w < y->w ? -1 : x->w > y->w; /* receive order */
}

/* Every (window, write) pair, sorted by window then receive order. */
static struct ref *refs_of(const struct crash_plan *p, size_t *n)
{
	struct ref *r;
	size_t k = 0;
	uint32_t i;
	uint64_t s;

	*n = 0;
	for (i = 0; i < p->n_writes; i++)
		*n += (p->writes[i].off + p->writes[i].len - 1) / STEP -
		      p->writes[i].off / STEP + 1;
	r = malloc((*n ? *n : 1) * sizeof *r);
	if (!r)
		return NULL;
	for (i = 0; i < p->n_writes; i++) {
		const struct crash_write *w = &p->writes[i];

		for (s = w->off / STEP; s <= (w->off + w->len - 1) / STEP; s++)
			r[k++] = (struct ref){s, i};
	}
	qsort(r, k, sizeof *r, cmp_ref);
	return r;
}

/*
 * The SHA-256 of the base with every write replayed onto it, one window
 * at a time: memory is one window plus the index, whatever the image
 * size (a private mapping of the whole image kept every page it read).
 */
static int replay_hash(const struct ctx *c, bool trim_zero, uint8_t out[32])
{
	const struct crash_plan *p = c->plan;
	gnutls_hash_hd_t h;
	struct ref *refs;
	uint8_t *buf = malloc(STEP);
	size_t n_refs, k = 0;
	uint64_t off;
	int r = 0;

	refs = refs_of(p, &n_refs);
	if (!buf || !refs || gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
		free(buf);
		free(refs);
		return -ENOMEM;
	}
	for (off = 0; !r && off < c->size; off += STEP) {
		uint64_t n = c->size - off < STEP ? c->size - off : STEP;

		r = pread_full(c->base_fd, buf, n, off);
		for (; !r && k < n_refs && refs[k].step == off / STEP; k++) {
			const struct crash_write *w = &p->writes[refs[k].w];
			uint64_t lo = w->off > off ? w->off : off;
			uint64_t hi = w->off + w->len < off + n
					      ? w->off + w->len
					      : off + n;

			if (w->kind == CRASH_W_DATA)
				memcpy(buf + (lo - off),
				       w->data + (lo - w->off), hi - lo);
			else if (w->kind == CRASH_W_ZERO || trim_zero)
				memset(buf + (lo - off), 0, hi - lo);
		}
		if (!r)
			gnutls_hash(h, buf, n);
	}
	gnutls_hash_deinit(h, out);
	free(buf);
	free(refs);
	return r;
}

/* Returns 0 ok or skipped, -EBADMSG on a mismatch; msg says which. */
int selfcheck(const struct ctx *c, char *msg, size_t len)
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
