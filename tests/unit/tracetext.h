/* SPDX-License-Identifier: MIT */
/*
 * tracetext.h: hand-written traces for the unit tests of the crash model
 * (test-states.c, test-oracle.c), one token per record, in server (seq)
 * order:
 *   W<id>[f]@<unit>+<n>[/conn]  WRITE of n units at unit (f: FUA); every
 *                               byte of it is 'A' + id - 1
 *   W<id>@b<off>+<len>          the same in bytes (unaligned)
 *   Z<id>@u+n, T<id>@u+n        WRITE_ZEROES, TRIM
 *   F<id>[/conn]                FLUSH received
 *   C<id>, E<id>                reply to request id: OK, or EIO
 *   M                           a mark
 * The export has `units` units of UNIT (512) bytes, at most
 * TRACETEXT_MAXU (define it before including; default 16).  Include after
 * cmocka.h.
 */
#ifndef LOOPD_TESTS_TRACETEXT_H
#define LOOPD_TESTS_TRACETEXT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd.h"
#include "trace/trace.h"

#ifndef TRACETEXT_MAXU
#define TRACETEXT_MAXU 16
#endif
#define UNIT 512
#define MAXREC 256

struct tr {
	struct trace_header h;
	struct trace_rec r[MAXREC];
	size_t n;
	uint8_t data[MAXREC][TRACETEXT_MAXU * UNIT];
	uint32_t conn_of[64];
	uint16_t cmd_of[64];
};

static void parse(struct tr *t, const char *s, unsigned int units,
		  bool send_flush)
{
	char tok[64];
	int used;

	memset(t, 0, sizeof *t);
	t->h.size = (uint64_t)units * UNIT;
	t->h.min_block = UNIT;
	t->h.atomic = UNIT;
	t->h.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FUA |
		      NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
	if (send_flush)
		t->h.tflags |= NBD_FLAG_SEND_FLUSH;
	while (sscanf(s, " %63s%n", tok, &used) == 1) {
		struct trace_rec *r = &t->r[t->n];
		unsigned int id, u = 0, n = 0, conn = 1, scale = UNIT;
		char c = tok[0];
		const char *p = tok + 1;

		s += used;
		assert_true(t->n < MAXREC);
		r->seq = t->n + 1;
		id = (unsigned int)strtoul(p, (char **)&p, 10);
		assert_true(id < 64);
		if (c == 'M') {
			r->type = TRACE_MARK;
			r->mark.label = "mark";
			r->mark.len = 4;
			t->n++;
			continue;
		}
		if (c == 'C' || c == 'E') {
			r->type = TRACE_REPLY;
			r->reply.conn = t->conn_of[id];
			r->reply.cookie = id;
			r->reply.cmd = t->cmd_of[id];
			r->reply.status = c == 'C' ? 0 : -EIO;
			t->n++;
			continue;
		}
		r->type = TRACE_RECV;
		r->recv.cookie = id;
		if (*p == 'f') {
			r->recv.flags |= NBD_CMD_FLAG_FUA;
			p++;
		}
		if (*p == '@' && p[1] == 'b') {
			scale = 1;
			assert_int_equal(sscanf(p, "@b%u+%u", &u, &n), 2);
			p = strchr(p, '/');
		} else if (*p == '@') {
			assert_int_equal(sscanf(p, "@%u+%u", &u, &n), 2);
			p = strchr(p, '/');
		}
		if (p && *p == '/')
			conn = (unsigned int)atoi(p + 1);
		r->recv.conn = conn;
		r->recv.offset = (uint64_t)u * scale;
		r->recv.length = n * scale;
		assert_true(r->recv.offset + r->recv.length <=
			    (uint64_t)TRACETEXT_MAXU * UNIT);
		switch (c) {
		case 'W':
			r->recv.cmd = NBD_CMD_WRITE;
			r->recv.data_kind = TRACE_DATA_REF;
			memset(t->data[t->n], 'A' + (int)id - 1, n * scale);
			r->recv.data = t->data[t->n];
			break;
		case 'Z':
			r->recv.cmd = NBD_CMD_WRITE_ZEROES;
			break;
		case 'T':
			r->recv.cmd = NBD_CMD_TRIM;
			break;
		case 'F':
			r->recv.cmd = NBD_CMD_FLUSH;
			break;
		default:
			fail_msg("bad token %s", tok);
		}
		t->conn_of[id] = conn;
		t->cmd_of[id] = r->recv.cmd;
		t->n++;
	}
}

#endif /* LOOPD_TESTS_TRACETEXT_H */
