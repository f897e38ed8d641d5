/* SPDX-License-Identifier: MIT */
/*
 * test-trace.c: unit tests of the trace codec (src/trace/trace.c), rules T1-T5
 * at the top of that file and docs/trace-format.md.
 *
 * Each test builds a small trace in memory with the encoder, then reads
 * it back, damages it (a flipped bit, a cut in the middle of a record)
 * and checks what the reader keeps.
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd.h"
#include "trace/trace.h"

struct buf {
	uint8_t *p;
	size_t len, cap;
	uint64_t seq;
	struct trace_dedupe dd;
};

static void buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_header(struct buf *b)
{
	struct trace_header h = {
		.size = 1 << 20,
		.min_block = 512,
		.atomic = 4096,
		.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
			  NBD_FLAG_SEND_FUA,
		.flush_mode = FLUSH_BARRIER,
		.order_mode = ORDER_RELAXED,
		.start_ns = 42,
	};
	uint8_t hb[TRACE_HEADER_SIZE];

	memset(h.base_sha256, 0xab, 32);
	strcpy(h.base_path, "/tmp/x.trace.base");
	strcpy(h.version, "9.9.9");
	trace_encode_header(hb, &h);
	buf_put(b, hb, sizeof hb);
}

static void put_rec(struct buf *b, struct trace_rec *r)
{
	uint8_t *tmp = malloc(trace_rec_size(r));

	assert_non_null(tmp);
	r->seq = ++b->seq;
	r->t_ns = r->seq * 1000;
	trace_encode_rec(tmp, r);
	buf_put(b, tmp, r->size);
	free(tmp);
}

/* A WRITE as the recorder writes it: DATA once per content, then RECV. */
static void put_write(struct buf *b, uint32_t conn, uint64_t cookie,
		      uint64_t off, const void *data, uint32_t len)
{
	struct trace_rec r = {.type = TRACE_RECV};
	uint8_t h[16];

	r.recv.conn = conn;
	r.recv.cmd = NBD_CMD_WRITE;
	r.recv.cookie = cookie;
	r.recv.offset = off;
	r.recv.length = len;
	if (trace_is_zero(data, len)) {
		r.recv.data_kind = TRACE_DATA_ZERO;
	} else {
		trace_payload_hash(data, len, h);
		r.recv.data_kind = TRACE_DATA_REF;
		r.recv.data_ref = trace_dedupe_find(&b->dd, h, len);
		if (!r.recv.data_ref) {
			struct trace_rec d = {.type = TRACE_DATA};

			memcpy(d.data.hash, h, 16);
			d.data.len = len;
			d.data.bytes = data;
			r.recv.data_ref = b->len;
			assert_int_equal(
				trace_dedupe_add(&b->dd, h, len, b->len), 0);
			put_rec(b, &d);
		}
	}
	put_rec(b, &r);
}

static void put_reply(struct buf *b, uint32_t conn, uint64_t cookie,
		      uint16_t cmd, int32_t status)
{
	struct trace_rec r = {.type = TRACE_REPLY};

	r.reply.conn = conn;
	r.reply.cookie = cookie;
	r.reply.cmd = cmd;
	r.reply.status = status;
	put_rec(b, &r);
}

static void put_mark(struct buf *b, const char *label)
{
	struct trace_rec r = {.type = TRACE_MARK};

	r.mark.label = label;
	r.mark.len = (uint32_t)strlen(label);
	put_rec(b, &r);
}

static void put_end(struct buf *b)
{
	struct trace_rec r = {.type = TRACE_END};

	r.end.n_records = b->seq;
	r.end.n_writes = 3;
	r.end.final_size = 1 << 20;
	memset(r.end.final_sha256, 0x5a, 32);
	put_rec(b, &r);
}

static uint8_t pa[4096], pb[8192], pz[4096];

/* The sample trace: three writes (two identical), a flush, a mark. */
static void sample(struct buf *b)
{
	memset(b, 0, sizeof *b);
	memset(pa, 0x11, sizeof pa);
	memset(pb, 0x22, sizeof pb);
	put_header(b);
	put_write(b, 1, 100, 0, pa, sizeof pa);
	put_write(b, 2, 200, 8192, pb, sizeof pb);
	put_write(b, 1, 101, 65536, pa, sizeof pa); /* same payload */
	put_write(b, 1, 102, 4096, pz, sizeof pz); /* zeroes */
	put_reply(b, 1, 100, NBD_CMD_WRITE, 0);
	put_reply(b, 2, 200, NBD_CMD_WRITE, -5);
	put_mark(b, "after writes");
	{
		struct trace_rec r = {.type = TRACE_SYNC_BEGIN};

		r.sync.id = 7;
		put_rec(b, &r);
		r.type = TRACE_SYNC_END;
		r.sync.res = -28;
		put_rec(b, &r);
	}
	put_end(b);
}

static void sample_free(struct buf *b)
{
	free(b->p);
	trace_dedupe_free(&b->dd);
}

/* Read everything; return the number of records and the last result. */
static int read_all(const struct buf *b, size_t len, struct trace_rec *out,
		    size_t max, size_t *n, struct trace_reader *rd)
{
	struct trace_header h;
	int r;

	*n = 0;
	assert_int_equal(trace_reader_init(rd, b->p, len, &h), 0);
	while ((r = trace_next(rd, &out[*n])) == 1)
		if (++*n == max)
			break;
	return r;
}

static void test_header_round_trip(void **state)
{
	struct buf b = {0};
	struct trace_header h;

	put_header(&b);
	assert_int_equal(trace_decode_header(b.p, b.len, &h), 0);
	assert_int_equal(h.size, 1 << 20);
	assert_int_equal(h.min_block, 512);
	assert_int_equal(h.atomic, 4096);
	assert_int_equal(h.tflags, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
					   NBD_FLAG_SEND_FUA);
	assert_int_equal(h.flush_mode, FLUSH_BARRIER);
	assert_int_equal(h.order_mode, ORDER_RELAXED);
	assert_int_equal(h.start_ns, 42);
	assert_int_equal(h.base_sha256[31], 0xab);
	assert_string_equal(h.base_path, "/tmp/x.trace.base");
	assert_string_equal(h.version, "9.9.9");

	/* Not a trace, another version, a damaged header. */
	b.p[0] ^= 1;
	assert_int_equal(trace_decode_header(b.p, b.len, &h), -EINVAL);
	b.p[0] ^= 1;
	b.p[8] = 2;
	assert_int_equal(trace_decode_header(b.p, b.len, &h), -EPROTONOSUPPORT);
	b.p[8] = 1;
	b.p[200] ^= 4;
	assert_int_equal(trace_decode_header(b.p, b.len, &h), -EBADMSG);
	b.p[200] ^= 4;
	assert_int_equal(trace_decode_header(b.p, 100, &h), -EINVAL);
	sample_free(&b);
}

static void test_records_round_trip(void **state)
{
	struct trace_rec r[32];
	struct trace_reader rd;
	struct buf b;
	size_t n;

	sample(&b);
	assert_int_equal(read_all(&b, b.len, r, 32, &n, &rd), 0);
	assert_true(rd.ended);
	assert_int_equal(rd.pos, b.len);
	/* DATA a, RECV, DATA b, RECV, RECV (dedup), RECV (zero), 2 REPLY,
	   MARK, SYNC_BEGIN, SYNC_END, END */
	assert_int_equal(n, 12);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(r[i].seq, i + 1);
	assert_int_equal(r[0].type, TRACE_DATA);
	assert_int_equal(r[0].data.len, 4096);
	assert_int_equal(r[1].type, TRACE_RECV);
	assert_int_equal(r[1].recv.conn, 1);
	assert_int_equal(r[1].recv.cookie, 100);
	assert_int_equal(r[1].recv.cmd, NBD_CMD_WRITE);
	assert_int_equal(r[1].recv.length, 4096);
	assert_int_equal(r[1].recv.data_kind, TRACE_DATA_REF);
	assert_memory_equal(r[1].recv.data, pa, sizeof pa);
	assert_int_equal(r[3].recv.offset, 8192);
	assert_memory_equal(r[3].recv.data, pb, sizeof pb);
	assert_int_equal(r[5].recv.data_kind, TRACE_DATA_ZERO);
	assert_null(r[5].recv.data);
	assert_int_equal(r[6].type, TRACE_REPLY);
	assert_int_equal(r[7].reply.status, -5);
	assert_int_equal(r[7].reply.conn, 2);
	assert_int_equal(r[8].type, TRACE_MARK);
	assert_int_equal(r[8].mark.len, strlen("after writes"));
	assert_memory_equal(r[8].mark.label, "after writes", r[8].mark.len);
	assert_int_equal(r[9].type, TRACE_SYNC_BEGIN);
	assert_int_equal(r[9].sync.id, 7);
	assert_int_equal(r[10].sync.res, -28);
	assert_int_equal(r[11].type, TRACE_END);
	assert_int_equal(r[11].end.n_records, 11);
	assert_int_equal(r[11].end.final_sha256[0], 0x5a);
	sample_free(&b);
}

/* Identical payloads are stored once; the second RECV points at the
   first DATA record, and all-zero payloads are not stored at all. */
static void test_dedupe(void **state)
{
	struct trace_rec r[32];
	struct trace_reader rd;
	struct buf b;
	size_t n, i, n_data = 0;

	sample(&b);
	assert_int_equal(read_all(&b, b.len, r, 32, &n, &rd), 0);
	for (i = 0; i < n; i++)
		n_data += r[i].type == TRACE_DATA;
	assert_int_equal(n_data, 2);
	assert_int_equal(r[4].recv.data_ref, r[0].pos);
	assert_ptr_equal(r[4].recv.data, r[1].recv.data);
	assert_int_equal(b.dd.n, 2);

	/* The table survives growth. */
	for (i = 0; i < 5000; i++) {
		uint8_t h[16];
		uint32_t v = (uint32_t)i;

		trace_payload_hash(&v, sizeof v, h);
		assert_int_equal(trace_dedupe_add(&b.dd, h, 4, 4096 + 8 * i),
				 0);
	}
	for (i = 0; i < 5000; i++) {
		uint8_t h[16];
		uint32_t v = (uint32_t)i;

		trace_payload_hash(&v, sizeof v, h);
		assert_int_equal(trace_dedupe_find(&b.dd, h, 4), 4096 + 8 * i);
		/* Same hash, other length: another payload. */
		assert_int_equal(trace_dedupe_find(&b.dd, h, 5), 0);
	}
	sample_free(&b);
}

static uint64_t key_find(const struct trace_dedupe *d, uint64_t k)
{
	uint8_t h[16];

	trace_payload_hash(&k, sizeof k, h);
	return trace_dedupe_find(d, h, sizeof k);
}

/* Adding key k (there, at 8 + 8k) again with another pos changes nothing. */
static void readd(struct trace_dedupe *d, uint64_t k)
{
	uint8_t h[16];

	trace_payload_hash(&k, sizeof k, h);
	assert_int_equal(trace_dedupe_add(d, h, sizeof k, 12345), 0);
	assert_int_equal(key_find(d, k), 8 + 8 * k);
}

/*
 * The dedupe table grows without a rehash at once (trace.c): the table
 * it outgrew stays beside the new one and is searched too, and each add
 * moves a few of its slots, so it is gone within cap/32 adds.  Every key
 * is found, wherever it is, at every step, and adding a key that is there
 * (in the old table, or just as the table would grow) changes nothing.
 */
static void test_dedupe_grows(void **state)
{
	struct trace_dedupe d = {0};
	size_t cap = 0, grown_at = 0, growths = 0;
	uint64_t i, j;

	for (i = 0; i < 100000; i++) {
		uint8_t h[16];

		if (i && 2 * (d.n + 1) > d.cap) {
			/* a key that is there, when an add would grow */
			readd(&d, 0);
			assert_int_equal(d.cap, cap);
		}
		trace_payload_hash(&i, sizeof i, h);
		assert_int_equal(trace_dedupe_find(&d, h, sizeof i), 0);
		assert_int_equal(trace_dedupe_add(&d, h, sizeof i, 8 + 8 * i),
				 0);
		assert_true(2 * d.n <= d.cap);
		if (d.cap != cap) {
			/* the old table is moved later, not now */
			if (cap)
				assert_non_null(d.old);
			cap = d.cap;
			grown_at = i;
			growths++;
			readd(&d, i / 2); /* a key in the old table */
		}
		if (d.old)
			assert_true(i - grown_at <= d.cap / 32);
		if (i % 101 == 0 || d.old)
			for (j = 0; j <= i; j += 1 + i / 64)
				assert_int_equal(key_find(&d, j), 8 + 8 * j);
	}
	assert_true(growths >= 8);
	for (j = 0; j < i; j++)
		assert_int_equal(key_find(&d, j), 8 + 8 * j);
	readd(&d, 7);
	trace_dedupe_free(&d);
}

/*
 * An owner that adds under a lock (hand_off: the recorder, K2) does the
 * table's allocations and frees outside it.  trace_dedupe_upkeep asks for
 * the next table once v is 3/8 full; a table given then is the one the
 * growth uses, and every table moved out comes back through upkeep to be
 * freed, never freed inside an add.  Upkeep runs every 64 adds here, as
 * the recorder's writer runs once per trace buffer.
 */
static void test_dedupe_hand_off(void **state)
{
	struct trace_dedupe d = {.hand_off = true};
	struct trace_dedupe_ent *given = NULL, *prev_v = NULL, *dead;
	size_t cap = 0, want, spares_used = 0, deads = 0;
	uint64_t i, j;

	(void)state;
	for (i = 0; i < 100000; i++) {
		uint8_t h[16];

		trace_payload_hash(&i, sizeof i, h);
		assert_int_equal(trace_dedupe_add(&d, h, sizeof i, 8 + 8 * i),
				 0);
		if (d.cap != cap) {
			if (given) {
				/* the growth took the table we gave */
				assert_ptr_equal(d.v, given);
				assert_null(d.spare);
				spares_used++;
				given = NULL;
			}
			if (cap)
				assert_ptr_equal(d.old, prev_v);
			prev_v = d.v;
			cap = d.cap;
		}
		if (i % 64)
			continue;
		want = trace_dedupe_upkeep(&d, &dead);
		if (dead) {
			assert_ptr_not_equal(dead, d.v);
			assert_ptr_not_equal(dead, d.old);
			free(dead);
			deads++;
		}
		if (want) {
			struct trace_dedupe_ent *v =
				trace_dedupe_table_new(want);

			assert_int_equal(want, 2 * d.cap);
			assert_true(8 * d.n >= 3 * d.cap);
			/* not for a table of another size */
			assert_ptr_equal(trace_dedupe_give(&d, v, want / 2), v);
			assert_null(trace_dedupe_give(&d, v, want));
			given = v;
			/* asked once only */
			assert_int_equal(trace_dedupe_upkeep(&d, &dead), 0);
		}
	}
	/* from 4096 slots on, 3/8 full came 64 adds or more before the growth */
	assert_true(spares_used >= 5);
	assert_true(deads >= 5);
	for (j = 0; j < i; j++)
		assert_int_equal(key_find(&d, j), 8 + 8 * j);
	trace_dedupe_free(&d); /* frees a spare or dead table still held */
}

/* T2: one flipped bit anywhere in a record rejects it and all after. */
static void test_flipped_bit(void **state)
{
	struct trace_rec r[32], ok[32];
	struct trace_reader rd;
	size_t n, n_ok, rec, bit;
	struct buf b;

	sample(&b);
	assert_int_equal(read_all(&b, b.len, ok, 32, &n_ok, &rd), 0);
	for (rec = 0; rec < n_ok; rec++) {
		for (bit = 0; bit < (size_t)ok[rec].size * 8; bit += 37) {
			size_t at = ok[rec].pos + bit / 8;

			b.p[at] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(read_all(&b, b.len, r, 32, &n, &rd),
					 -EBADMSG);
			assert_int_equal(n, rec);
			assert_int_equal(rd.pos, ok[rec].pos);
			b.p[at] ^= (uint8_t)(1u << (bit % 8));
		}
	}
	sample_free(&b);
}

/* T1: a trace cut anywhere keeps every whole record before the cut. */
static void test_torn_tail(void **state)
{
	struct trace_rec r[32], ok[32];
	struct trace_reader rd;
	size_t n, n_ok, cut, want;
	struct buf b;
	int ret;

	sample(&b);
	assert_int_equal(read_all(&b, b.len, ok, 32, &n_ok, &rd), 0);
	for (cut = TRACE_HEADER_SIZE; cut < b.len; cut++) {
		ret = read_all(&b, cut, r, 32, &n, &rd);
		for (want = 0;
		     want < n_ok && ok[want].pos + ok[want].size <= cut; want++)
			;
		assert_int_equal(n, want);
		assert_int_equal(rd.pos,
				 want ? ok[want - 1].pos + ok[want - 1].size
				      : TRACE_HEADER_SIZE);
		/* A cut exactly between records is a clean (END-less) end. */
		assert_int_equal(ret, rd.pos == cut ? 0 : -EBADMSG);
		assert_false(rd.ended);
	}
	sample_free(&b);
}

/* T3, T4, T5: a sequence gap, a bad payload reference, data after END. */
static void test_structure(void **state)
{
	struct trace_rec r[32];
	struct trace_reader rd;
	struct buf b;
	size_t n;

	/* Data after END. */
	sample(&b);
	put_mark(&b, "late");
	assert_int_equal(read_all(&b, b.len, r, 32, &n, &rd), -EBADMSG);
	assert_int_equal(n, 12);
	assert_string_equal(rd.why, "data after END");
	sample_free(&b);

	/* A gap in seq. */
	memset(&b, 0, sizeof b);
	put_header(&b);
	put_mark(&b, "one");
	b.seq++;
	put_mark(&b, "three");
	assert_int_equal(read_all(&b, b.len, r, 32, &n, &rd), -EBADMSG);
	assert_int_equal(n, 1);
	assert_string_equal(rd.why, "sequence gap");
	sample_free(&b);

	/* A RECV whose reference is not a DATA record. */
	memset(&b, 0, sizeof b);
	put_header(&b);
	put_mark(&b, "not data");
	{
		struct trace_rec w = {.type = TRACE_RECV};

		w.recv.cmd = NBD_CMD_WRITE;
		w.recv.length = 8;
		w.recv.data_kind = TRACE_DATA_REF;
		w.recv.data_ref = TRACE_HEADER_SIZE;
		put_rec(&b, &w);
		w.recv.data_ref = 1 << 20;
		put_rec(&b, &w);
	}
	assert_int_equal(read_all(&b, b.len, r, 32, &n, &rd), -EBADMSG);
	assert_int_equal(n, 1);
	sample_free(&b);
}

static void test_sizes(void **state)
{
	struct trace_rec r = {.type = TRACE_MARK};

	r.mark.len = 1;
	r.mark.label = "x";
	assert_int_equal(trace_rec_size(&r), 32 + 8 + 8);
	assert_int_equal(trace_rec_pad(&r), 7);
	r.type = TRACE_RECV;
	assert_int_equal(trace_rec_size(&r), 72);
	r.type = TRACE_END;
	assert_int_equal(trace_rec_size(&r) % 8, 0);
	assert_true(trace_is_zero(pz, sizeof pz));
	assert_true(trace_is_zero(pz, 0));
	pz[4000] = 1;
	assert_false(trace_is_zero(pz, sizeof pz));
	pz[4000] = 0;
	assert_string_equal(trace_type_name(TRACE_SYNC_END), "SYNC_END");
	assert_string_equal(trace_type_name(99), "UNKNOWN");
	assert_string_equal(flush_mode_name(FLUSH_UNSAFE), "unsafe");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_records_round_trip),
		cmocka_unit_test(test_dedupe),
		cmocka_unit_test(test_dedupe_grows),
		cmocka_unit_test(test_dedupe_hand_off),
		cmocka_unit_test(test_flipped_bit),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
