/* SPDX-License-Identifier: MIT */
/*
 * trace.c: encode and decode the loopd trace format (docs/trace-format.md).
 *
 * Pure: no I/O; only the payload dedupe table allocates.  The rules the reader enforces, cited as
 * T1..T5:
 *
 * T1. A record is accepted only if its size is at least the record header,
 *     a multiple of 8, and fits in what is left of the buffer.  A shorter
 *     remainder is a torn tail.
 * T2. Its checksum (XXH3-64 over the record without the checksum field)
 *     matches.  One flipped bit anywhere in the record rejects it.
 * T3. Its seq is exactly one more than the previous record's (the first
 *     record has seq 1), so a dropped or reordered record is detected.
 * T4. Its type is known and its size matches the type's layout.  A RECV
 *     that references a payload must point at a DATA record that lies
 *     before it, in the valid prefix, with the same length.
 * T5. END is the last record: any bytes after it are an error.
 * The first record that breaks a rule ends the valid prefix; the caller
 * reports how many bytes were dropped and keeps everything before.
 */
#include "trace/trace.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/le.h"
#include "util/xxh.h"

/* Header field offsets (docs/trace-format.md, "Header"). */
#define H_MAGIC 0
#define H_VERSION 8
#define H_HDRLEN 12
#define H_SIZE 16
#define H_MINBLOCK 24
#define H_ATOMIC 28
#define H_TFLAGS 32
#define H_FLUSH 36
#define H_ORDER 37
#define H_START 40
#define H_SHA 48
#define H_VERSTR 80
#define H_PATH 112
#define H_CSUM (TRACE_HEADER_SIZE - 8)

/* Record header offsets. */
#define R_TYPE 0
#define R_SIZE 4
#define R_SEQ 8
#define R_TNS 16
#define R_CSUM 24

/* Fixed body sizes per type (after the 32-byte record header). */
#define B_DATA 24
#define B_RECV 40
#define B_REPLY 24
#define B_SYNC 16
#define B_MARK 8
#define B_END 120

static const uint8_t zeroes[64];

bool trace_is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len >= sizeof zeroes) {
		if (memcmp(b, zeroes, sizeof zeroes))
			return false;
		b += sizeof zeroes;
		len -= sizeof zeroes;
	}
	return !len || !memcmp(b, zeroes, len);
}

void trace_encode_header(void *buf, const struct trace_header *h)
{
	uint8_t *b = buf;

	memset(b, 0, TRACE_HEADER_SIZE);
	memcpy(b + H_MAGIC, TRACE_MAGIC, 8);
	put32(b + H_VERSION, TRACE_VERSION);
	put32(b + H_HDRLEN, TRACE_HEADER_SIZE);
	put64(b + H_SIZE, h->size);
	put32(b + H_MINBLOCK, h->min_block);
	put32(b + H_ATOMIC, h->atomic);
	put32(b + H_TFLAGS, h->tflags);
	b[H_FLUSH] = h->flush_mode;
	b[H_ORDER] = h->order_mode;
	put64(b + H_START, h->start_ns);
	memcpy(b + H_SHA, h->base_sha256, 32);
	memcpy(b + H_VERSTR, h->version, strnlen(h->version, 31));
	memcpy(b + H_PATH, h->base_path,
	       strnlen(h->base_path, TRACE_PATH_MAX - 1));
	put64(b + H_CSUM, XXH3_64bits(b, H_CSUM));
}

int trace_decode_header(const void *buf, size_t len, struct trace_header *h)
{
	const uint8_t *b = buf;

	if (len < TRACE_HEADER_SIZE || memcmp(b + H_MAGIC, TRACE_MAGIC, 8))
		return -EINVAL;
	if (get32(b + H_VERSION) != TRACE_VERSION ||
	    get32(b + H_HDRLEN) != TRACE_HEADER_SIZE)
		return -EPROTONOSUPPORT;
	if (get64(b + H_CSUM) != XXH3_64bits(b, H_CSUM))
		return -EBADMSG;
	memset(h, 0, sizeof *h);
	h->size = get64(b + H_SIZE);
	h->min_block = get32(b + H_MINBLOCK);
	h->atomic = get32(b + H_ATOMIC);
	h->tflags = get32(b + H_TFLAGS);
	h->flush_mode = b[H_FLUSH];
	h->order_mode = b[H_ORDER];
	h->start_ns = get64(b + H_START);
	memcpy(h->base_sha256, b + H_SHA, 32);
	memcpy(h->version, b + H_VERSTR, 31);
	memcpy(h->base_path, b + H_PATH, TRACE_PATH_MAX - 1);
	if (!h->atomic || (h->atomic & (h->atomic - 1)))
		return -EBADMSG;
	return 0;
}

static uint32_t fixed_body(uint16_t type)
{
	switch (type) {
	case TRACE_DATA:
		return B_DATA;
	case TRACE_RECV:
		return B_RECV;
	case TRACE_REPLY:
		return B_REPLY;
	case TRACE_SYNC_BEGIN:
	case TRACE_SYNC_END:
		return B_SYNC;
	case TRACE_MARK:
		return B_MARK;
	case TRACE_END:
		return B_END;
	}
	return 0;
}

/* Length of the variable tail and a pointer to it. */
static uint32_t tail_of(const struct trace_rec *r, const void **p)
{
	*p = NULL;
	if (r->type == TRACE_DATA) {
		*p = r->data.bytes;
		return r->data.len;
	}
	if (r->type == TRACE_MARK) {
		*p = r->mark.label;
		return r->mark.len;
	}
	return 0;
}

static uint32_t pad8(uint32_t n)
{
	return (n + 7) & ~7u;
}

uint32_t trace_rec_size(const struct trace_rec *r)
{
	const void *t;
	uint32_t n = TRACE_REC_HDR_SIZE + fixed_body(r->type);

	return pad8(n + tail_of(r, &t));
}

uint32_t trace_rec_pad(const struct trace_rec *r)
{
	const void *t;
	uint32_t n = TRACE_REC_HDR_SIZE + fixed_body(r->type) + tail_of(r, &t);

	return pad8(n) - n;
}

size_t trace_encode_prefix(void *buf, struct trace_rec *r)
{
	uint8_t *b = buf, *d = b + TRACE_REC_HDR_SIZE;
	const struct trace_end *e = &r->end;
	uint32_t fixed = fixed_body(r->type), tlen;
	XXH3_state_t st;
	const void *tail;
	size_t n;

	tlen = tail_of(r, &tail);
	r->size = trace_rec_size(r);
	memset(b, 0, TRACE_REC_HDR_SIZE + fixed);
	put16(b + R_TYPE, r->type);
	put32(b + R_SIZE, r->size);
	put64(b + R_SEQ, r->seq);
	put64(b + R_TNS, r->t_ns);
	switch (r->type) {
	case TRACE_DATA:
		memcpy(d, r->data.hash, 16);
		put32(d + 16, r->data.len);
		break;
	case TRACE_RECV:
		put32(d, r->recv.conn);
		put16(d + 4, r->recv.cmd);
		put16(d + 6, r->recv.flags);
		put64(d + 8, r->recv.cookie);
		put64(d + 16, r->recv.offset);
		put32(d + 24, r->recv.length);
		put32(d + 28, r->recv.data_kind);
		put64(d + 32, r->recv.data_ref);
		break;
	case TRACE_REPLY:
		put32(d, r->reply.conn);
		put16(d + 4, r->reply.cmd);
		put64(d + 8, r->reply.cookie);
		put32(d + 16, (uint32_t)r->reply.status);
		break;
	case TRACE_SYNC_BEGIN:
	case TRACE_SYNC_END:
		put64(d, r->sync.id);
		put32(d + 8, (uint32_t)r->sync.res);
		break;
	case TRACE_MARK:
		put32(d, r->mark.len);
		break;
	case TRACE_END:
		put64(d, e->n_records);
		put64(d + 8, e->n_recv);
		put64(d + 16, e->n_reply);
		put64(d + 24, e->n_writes);
		put64(d + 32, e->n_flushes);
		put64(d + 40, e->n_fua);
		put64(d + 48, e->bytes_written);
		put64(d + 56, e->data_bytes);
		put64(d + 64, e->n_marks);
		put64(d + 72, e->final_size);
		put32(d + 80, e->flags);
		memcpy(d + 88, e->final_sha256, 32);
		break;
	default:
		/* Encoding an unknown type is a caller bug. */
		__builtin_trap();
	}
	n = TRACE_REC_HDR_SIZE + fixed;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, b, R_CSUM);
	XXH3_64bits_update(&st, b + TRACE_REC_HDR_SIZE, fixed);
	if (tlen)
		XXH3_64bits_update(&st, tail, tlen);
	XXH3_64bits_update(&st, zeroes, r->size - n - tlen);
	put64(b + R_CSUM, XXH3_64bits_digest(&st));
	return n;
}

size_t trace_encode_rec(void *buf, struct trace_rec *r)
{
	uint8_t *b = buf;
	const void *tail;
	uint32_t tlen = tail_of(r, &tail);
	size_t n = trace_encode_prefix(b, r);

	if (tlen)
		memcpy(b + n, tail, tlen);
	memset(b + n + tlen, 0, r->size - n - tlen);
	return r->size;
}

int trace_reader_init(struct trace_reader *rd, const void *buf, size_t len,
		      struct trace_header *h)
{
	int r = trace_decode_header(buf, len, h);

	memset(rd, 0, sizeof *rd);
	rd->buf = buf;
	rd->len = len;
	rd->pos = TRACE_HEADER_SIZE;
	rd->next_seq = 1;
	return r;
}

static int reject(struct trace_reader *rd, const char *why)
{
	rd->why = why;
	return -EBADMSG;
}

/* T4: a RECV's payload reference. */
static int resolve_data(struct trace_reader *rd, struct trace_rec *r)
{
	uint64_t ref = r->recv.data_ref;
	const uint8_t *d;
	uint32_t size;

	if (ref < TRACE_HEADER_SIZE || ref % 8 ||
	    ref + TRACE_REC_HDR_SIZE + B_DATA > rd->pos)
		return reject(rd, "payload reference out of range");
	d = rd->buf + ref;
	size = get32(d + R_SIZE);
	if (get16(d + R_TYPE) != TRACE_DATA || ref + size > rd->pos ||
	    get32(d + TRACE_REC_HDR_SIZE + 16) != r->recv.length)
		return reject(rd, "payload reference is not a matching DATA");
	r->recv.data = d + TRACE_REC_HDR_SIZE + B_DATA;
	return 0;
}

/*
 * Long on purpose: the checks T1-T5 in order, then one case per record
 * type, so that the reader's rules read as one list.
 */
int trace_next(struct trace_reader *rd, struct trace_rec *r)
{
	const uint8_t *b = rd->buf + rd->pos, *d;
	size_t left = rd->len - rd->pos;
	uint32_t size, fixed, tlen = 0;
	XXH3_state_t st;

	if (!left)
		return 0;
	if (rd->ended)
		return reject(rd, "data after END");
	/* T1 */
	if (left < TRACE_REC_HDR_SIZE)
		return reject(rd, "torn record header");
	size = get32(b + R_SIZE);
	if (size < TRACE_REC_HDR_SIZE || size % 8)
		return reject(rd, "bad record size");
	if (size > left)
		return reject(rd, "torn record");
	/* T2 */
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, b, R_CSUM);
	XXH3_64bits_update(&st, b + TRACE_REC_HDR_SIZE,
			   size - TRACE_REC_HDR_SIZE);
	if (XXH3_64bits_digest(&st) != get64(b + R_CSUM))
		return reject(rd, "checksum mismatch");
	/* T3 */
	memset(r, 0, sizeof *r);
	r->type = get16(b + R_TYPE);
	r->size = size;
	r->seq = get64(b + R_SEQ);
	r->t_ns = get64(b + R_TNS);
	r->pos = rd->pos;
	if (r->seq != rd->next_seq)
		return reject(rd, "sequence gap");
	/* T4 */
	fixed = fixed_body(r->type);
	if (!fixed)
		return reject(rd, "unknown record type");
	if (size < TRACE_REC_HDR_SIZE + fixed)
		return reject(rd, "record too short for its type");
	d = b + TRACE_REC_HDR_SIZE;
	switch (r->type) {
	case TRACE_DATA:
		memcpy(r->data.hash, d, 16);
		r->data.len = tlen = get32(d + 16);
		r->data.bytes = d + B_DATA;
		break;
	case TRACE_RECV:
		r->recv.conn = get32(d);
		r->recv.cmd = get16(d + 4);
		r->recv.flags = get16(d + 6);
		r->recv.cookie = get64(d + 8);
		r->recv.offset = get64(d + 16);
		r->recv.length = get32(d + 24);
		r->recv.data_kind = get32(d + 28);
		r->recv.data_ref = get64(d + 32);
		break;
	case TRACE_REPLY:
		r->reply.conn = get32(d);
		r->reply.cmd = get16(d + 4);
		r->reply.cookie = get64(d + 8);
		r->reply.status = (int32_t)get32(d + 16);
		break;
	case TRACE_SYNC_BEGIN:
	case TRACE_SYNC_END:
		r->sync.id = get64(d);
		r->sync.res = (int32_t)get32(d + 8);
		break;
	case TRACE_MARK:
		r->mark.len = tlen = get32(d);
		r->mark.label = (const char *)d + B_MARK;
		if (tlen > TRACE_MARK_MAX)
			return reject(rd, "mark label too long");
		break;
	case TRACE_END:
		r->end.n_records = get64(d);
		r->end.n_recv = get64(d + 8);
		r->end.n_reply = get64(d + 16);
		r->end.n_writes = get64(d + 24);
		r->end.n_flushes = get64(d + 32);
		r->end.n_fua = get64(d + 40);
		r->end.bytes_written = get64(d + 48);
		r->end.data_bytes = get64(d + 56);
		r->end.n_marks = get64(d + 64);
		r->end.final_size = get64(d + 72);
		r->end.flags = get32(d + 80);
		memcpy(r->end.final_sha256, d + 88, 32);
		break;
	}
	if (((uint64_t)TRACE_REC_HDR_SIZE + fixed + tlen + 7) / 8 * 8 != size)
		return reject(rd, "record size does not match its contents");
	if (r->type == TRACE_RECV && r->recv.data_kind == TRACE_DATA_REF &&
	    resolve_data(rd, r) < 0)
		return -EBADMSG;
	if (r->type == TRACE_RECV && r->recv.data_kind > TRACE_DATA_ZERO)
		return reject(rd, "unknown payload kind");
	rd->pos += size;
	rd->next_seq++;
	if (r->type == TRACE_END)
		rd->ended = true; /* T5 */
	return 1;
}

void trace_payload_hash(const void *p, size_t len, uint8_t out[16])
{
	XXH128_hash_t h = XXH3_128bits(p, len);

	put64(out, h.low64);
	put64(out + 8, h.high64);
}

/*
 * The dedupe table: open addressing with linear probing, at most half
 * full.  Growing it rehashes nothing at once: a table twice the size
 * becomes v, the old one stays readable beside it, and every add first
 * moves MOVE_SLOTS of the old table's slots into v.  A lookup that misses
 * in v looks in the old table.  The recorder adds under the export's lock,
 * where a whole rehash of a table of millions of entries held every
 * request for a substantial part of a second (bench/README.md).  Since an
 * add moves MOVE_SLOTS slots, the old table (cap/2 slots, at most cap/4
 * entries) is gone after cap/(2 * MOVE_SLOTS) adds, long before v is half
 * full again: v then holds at most cap/4 + cap/32 + 1 entries.
 *
 * An owner that adds under a lock (hand_off) also keeps the table's
 * memory work out of it: the next table is allocated and its pages
 * touched by the owner beforehand (trace_dedupe_upkeep, once v is 3/8
 * full), and a moved-out old table is left in dead for the owner to free.
 * In a recorded run the first touches of fresh table pages were most of
 * loopd's page faults, and the free of a table of tens of MiB the longest
 * pause of an add (bench/README.md).  Without a spare, a growth allocates
 * as before.
 */
#define MOVE_SLOTS 16
#define PAGE_BYTES 4096

static size_t slot_in(const struct trace_dedupe_ent *v, size_t cap, uint64_t lo,
		      uint64_t hi, uint32_t len, bool *found)
{
	size_t i = (size_t)(lo ^ (hi >> 7)) & (cap - 1);

	for (;; i = (i + 1) & (cap - 1)) {
		const struct trace_dedupe_ent *e = &v[i];

		if (!e->pos) {
			*found = false;
			return i;
		}
		if (e->lo == lo && e->hi == hi && e->len == len) {
			*found = true;
			return i;
		}
	}
}

/* Put e into v unless it is there.  v is never full (at most half). */
static void put_ent(struct trace_dedupe *d, const struct trace_dedupe_ent *e)
{
	bool found;
	size_t i = slot_in(d->v, d->cap, e->lo, e->hi, e->len, &found);

	if (!found) {
		d->v[i] = *e;
		d->n++;
	}
}

/* Move up to max of the old table's slots into v.  Once all are moved,
   free it, or leave it in dead for a hand_off owner to free. */
static void move_old(struct trace_dedupe *d, size_t max)
{
	while (d->old && max--) {
		if (d->old[d->moved].pos)
			put_ent(d, &d->old[d->moved]);
		if (++d->moved == d->old_cap) {
			if (d->hand_off) {
				free(d->dead); /* not collected: rare */
				d->dead = d->old;
			} else {
				free(d->old);
			}
			d->old = NULL;
			d->old_cap = d->moved = 0;
		}
	}
}

uint64_t trace_dedupe_find(const struct trace_dedupe *d, const uint8_t hash[16],
			   uint32_t len)
{
	uint64_t lo = get64(hash), hi = get64(hash + 8);
	bool found;
	size_t i;

	if (!d->cap)
		return 0;
	i = slot_in(d->v, d->cap, lo, hi, len, &found);
	if (found)
		return d->v[i].pos;
	if (!d->old)
		return 0;
	i = slot_in(d->old, d->old_cap, lo, hi, len, &found);
	return found ? d->old[i].pos : 0;
}

int trace_dedupe_add(struct trace_dedupe *d, const uint8_t hash[16],
		     uint32_t len, uint64_t pos)
{
	struct trace_dedupe_ent e = {get64(hash), get64(hash + 8), pos, len};
	bool found = false;

	/* There already?  put_ent() looks in v; the old table, here. */
	if (d->old)
		slot_in(d->old, d->old_cap, e.lo, e.hi, e.len, &found);
	if (found)
		return 0;
	move_old(d, MOVE_SLOTS);
	if (2 * (d->n + 1) > d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 1024;
		struct trace_dedupe_ent *v;

		/* v becomes the old table, which put_ent() does not see */
		if (d->cap)
			slot_in(d->v, d->cap, e.lo, e.hi, e.len, &found);
		if (found)
			return 0;
		if (d->spare) { /* given for this growth: cap slots */
			v = d->spare;
			d->spare = NULL;
		} else {
			v = calloc(cap, sizeof *v);
			if (!v)
				return -ENOMEM;
		}
		move_old(d, SIZE_MAX); /* only if adds outran the moves */
		d->old = d->v; /* NULL at the first growth */
		d->old_cap = d->cap;
		d->moved = 0;
		d->v = v;
		d->cap = cap;
		d->n = 0;
	}
	put_ent(d, &e);
	return 0;
}

void trace_dedupe_free(struct trace_dedupe *d)
{
	free(d->v);
	free(d->old);
	free(d->spare);
	free(d->dead);
	memset(d, 0, sizeof *d);
}

size_t trace_dedupe_upkeep(struct trace_dedupe *d,
			   struct trace_dedupe_ent **dead)
{
	*dead = d->dead;
	d->dead = NULL;
	if (d->spare || !d->cap || 8 * d->n < 3 * d->cap)
		return 0;
	return 2 * d->cap;
}

struct trace_dedupe_ent *trace_dedupe_table_new(size_t cap)
{
	struct trace_dedupe_ent *v = calloc(cap, sizeof *v);
	volatile uint8_t *p = (volatile uint8_t *)v;
	size_t i;

	/* fault its pages in now, not at first use (the zero stays) */
	for (i = 0; v && i < cap * sizeof *v; i += PAGE_BYTES)
		p[i] = 0;
	return v;
}

struct trace_dedupe_ent *trace_dedupe_give(struct trace_dedupe *d,
					   struct trace_dedupe_ent *v,
					   size_t cap)
{
	if (!v || d->spare || cap != 2 * d->cap)
		return v;
	d->spare = v;
	return NULL;
}

const char *trace_type_name(uint16_t type)
{
	static const char *const names[] = {
		[TRACE_DATA] = "DATA",
		[TRACE_RECV] = "RECV",
		[TRACE_REPLY] = "REPLY",
		[TRACE_SYNC_BEGIN] = "SYNC_BEGIN",
		[TRACE_SYNC_END] = "SYNC_END",
		[TRACE_MARK] = "MARK",
		[TRACE_END] = "END",
	};

	if (type < sizeof names / sizeof names[0] && names[type])
		return names[type];
	return "UNKNOWN";
}
