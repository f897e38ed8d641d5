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
#include <string.h>
#include <sys/mman.h>

#include "crash/explore.h"

/* The SHA-256 of the base with every write replayed onto it. */
static int replay_hash(const struct ctx *c, bool trim_zero, uint8_t out[32])
{
	const struct crash_plan *p = c->plan;
	uint8_t *mem;
	uint32_t i;

	mem = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		   c->base_fd, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	for (i = 0; i < p->n_writes; i++) {
		const struct crash_write *w = &p->writes[i];

		if (w->kind == CRASH_W_DATA)
			memcpy(mem + w->off, w->data, w->len);
		else if (w->kind == CRASH_W_ZERO || trim_zero)
			memset(mem + w->off, 0, w->len);
	}
	gnutls_hash_fast(GNUTLS_DIG_SHA256, mem, c->size, out);
	munmap(mem, c->size);
	return 0;
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
