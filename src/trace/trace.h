/* SPDX-License-Identifier: MIT */
/*
 * trace.h: the loopd trace format (docs/trace-format.md), a pure codec.
 * No I/O: the recorder writes what these functions encode, and the reader
 * walks a buffer (usually an mmap of the trace file).  Only the payload
 * dedupe table allocates.
 *
 * A trace is a 4096-byte header followed by records.  Every record starts
 * with a 32-byte record header {type, size, seq, t_ns, csum}; size is the
 * whole record, padded to 8 bytes; seq increases by exactly one from
 * record to record; csum is XXH3-64 over the record with the csum field
 * left out.  All integers are little-endian.
 */
#ifndef LOOPD_TRACE_H
#define LOOPD_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/modes.h"

#define TRACE_MAGIC "LOOPDTRC"
#define TRACE_VERSION 1
#define TRACE_HEADER_SIZE 4096
#define TRACE_REC_HDR_SIZE 32
#define TRACE_PATH_MAX 1024
#define TRACE_MARK_MAX 4096 /* longest mark label */

enum trace_type {
	TRACE_DATA = 1, /* a write payload, stored once per content */
	TRACE_RECV, /* a request arrived (before any of its I/O) */
	TRACE_REPLY, /* a reply is about to be sent */
	TRACE_SYNC_BEGIN, /* an fdatasync of the export is issued */
	TRACE_SYNC_END, /* ... and completed */
	TRACE_MARK, /* a named mark */
	TRACE_END, /* totals and the final image hash; the last record */
};

/* How a RECV refers to its payload. */
enum trace_data_kind {
	TRACE_DATA_NONE, /* not a WRITE (or a zero-length one) */
	TRACE_DATA_REF, /* data_ref: file offset of a DATA record */
	TRACE_DATA_ZERO, /* the payload was all zeroes (not stored) */
};

struct trace_header {
	uint64_t size; /* export size in bytes */
	uint32_t min_block; /* advertised minimum block size */
	uint32_t atomic; /* atomic unit A: max(min_block, 512) */
	uint32_t tflags; /* advertised transmission flags */
	uint8_t flush_mode; /* enum flush_mode (util/modes.h) */
	uint8_t order_mode; /* enum order_mode (util/modes.h) */
	uint64_t start_ns; /* CLOCK_REALTIME at start */
	uint8_t base_sha256[32]; /* identity of the base image */
	char base_path[TRACE_PATH_MAX]; /* where the base was captured */
	char version[32]; /* recorder (loopd) version */
};

struct trace_end {
	uint64_t n_records; /* records before END */
	uint64_t n_recv, n_reply, n_writes, n_flushes, n_fua;
	uint64_t bytes_written; /* sum of WRITE/WRITE_ZEROES/TRIM lengths */
	uint64_t data_bytes; /* unique payload bytes stored */
	uint64_t n_marks;
	uint64_t final_size; /* size of the file at END */
	uint32_t flags; /* TRACE_END_* */
	uint8_t final_sha256[32]; /* SHA-256 of the file at END */
};

#define TRACE_END_INCOMPLETE (1u << 0) /* recording stopped early (error) */

struct trace_rec {
	uint16_t type; /* enum trace_type */
	uint32_t size; /* encoded size (set by the codec) */
	uint64_t seq;
	uint64_t t_ns; /* monotonic ns since the recording started */
	uint64_t pos; /* decoding: file offset of the record */
	union {
		struct {
			uint8_t hash[16]; /* XXH3-128 of the bytes */
			uint32_t len;
			const void *bytes;
		} data;
		struct {
			uint32_t conn;
			uint16_t cmd, flags; /* NBD_CMD_*, NBD_CMD_FLAG_* */
			uint64_t cookie, offset;
			uint32_t length;
			uint32_t data_kind; /* enum trace_data_kind */
			uint64_t data_ref; /* TRACE_DATA_REF: DATA's pos */
			const void *data; /* decoding: the payload, or NULL */
		} recv;
		struct {
			uint32_t conn;
			uint16_t cmd;
			uint64_t cookie;
			int32_t status; /* 0 or -errno */
		} reply;
		struct {
			uint64_t id;
			int32_t res; /* SYNC_END: 0 or -errno */
		} sync;
		struct {
			uint32_t len;
			const char *label; /* not NUL-terminated */
		} mark;
		struct trace_end end;
	};
};

/* Encode the header into buf[TRACE_HEADER_SIZE]. */
void trace_encode_header(void *buf, const struct trace_header *h);

/*
 * Decode and check a header.  Returns 0, -EINVAL (not a loopd trace),
 * -EPROTONOSUPPORT (another version) or -EBADMSG (checksum).
 */
int trace_decode_header(const void *buf, size_t len, struct trace_header *h);

/* Encoded size of r (sets nothing). */
uint32_t trace_rec_size(const struct trace_rec *r);

/*
 * Encode the fixed part of r (record header and fixed body) into buf,
 * which must hold TRACE_REC_PREFIX_MAX bytes.  The variable tail (DATA
 * bytes, MARK label) and zero padding up to r->size follow it; the
 * checksum already covers them.  Sets r->size; returns the prefix length.
 */
#define TRACE_REC_PREFIX_MAX 256
size_t trace_encode_prefix(void *buf, struct trace_rec *r);

/* Encode all of r into buf (trace_rec_size(r) bytes).  Returns the size. */
size_t trace_encode_rec(void *buf, struct trace_rec *r);

/* Number of zero bytes that pad a record's variable tail. */
uint32_t trace_rec_pad(const struct trace_rec *r);

/* Whether len bytes at p are all zero. */
bool trace_is_zero(const void *p, size_t len);

/*
 * Sequential reader over a whole trace in memory.  trace_next() returns
 * 1 with the next record, 0 at the end of the data, or -EBADMSG at the
 * first record that is torn or corrupt (bad size, checksum, seq, type or
 * data reference): the valid prefix ends at rd->pos, and rd->len - rd->pos
 * bytes are dropped.  After END, any further bytes are also an error.
 */
struct trace_reader {
	const uint8_t *buf;
	size_t len;
	size_t pos; /* end of the valid prefix so far */
	uint64_t next_seq;
	bool ended; /* END was read */
	const char *why; /* why the last record was rejected */
};

int trace_reader_init(struct trace_reader *rd, const void *buf, size_t len,
		      struct trace_header *h);
int trace_next(struct trace_reader *rd, struct trace_rec *r);

/*
 * Payload dedupe (the recorder stores identical payloads once): a hash
 * table from (XXH3-128, length) to the file offset of the DATA record.
 * It grows without a pause: a table twice the size takes over, and each
 * later add moves a few slots of the old one into it (trace.c).
 */
struct trace_dedupe_ent {
	uint64_t lo, hi; /* XXH3-128 */
	uint64_t pos; /* 0: empty slot (a DATA record is never at 0) */
	uint32_t len;
};
struct trace_dedupe {
	struct trace_dedupe_ent *v;
	size_t n, cap; /* entries in v; cap is 0 or a power of two */
	struct trace_dedupe_ent *old; /* being moved into v, or NULL */
	size_t old_cap, moved; /* old's slots below moved are in v */
	/* Owners that add under a lock (the recorder, K2) set hand_off and
	   do the table's allocations outside it: see trace_dedupe_upkeep. */
	bool hand_off;
	struct trace_dedupe_ent *spare; /* zeroed, 2 * cap slots: the next v */
	struct trace_dedupe_ent *dead; /* a moved-out old table, to free */
};

/* XXH3-128 of a payload, in the byte order the DATA record stores. */
void trace_payload_hash(const void *p, size_t len, uint8_t out[16]);

/* The DATA record holding a payload with this hash, or 0 if none. */
uint64_t trace_dedupe_find(const struct trace_dedupe *d, const uint8_t hash[16],
			   uint32_t len);

/* Remember that pos holds this payload.  Returns 0 or -ENOMEM. */
int trace_dedupe_add(struct trace_dedupe *d, const uint8_t hash[16],
		     uint32_t len, uint64_t pos);
void trace_dedupe_free(struct trace_dedupe *d);

/*
 * For a hand_off owner, the table work that may run outside its lock.
 * Under the lock, trace_dedupe_upkeep() takes the table to free (*dead,
 * or NULL) and says what capacity the next growth will need, if it is
 * near and no spare is ready (else 0).  Outside the lock the owner frees
 * *dead, and makes the spare with trace_dedupe_table_new(); under the lock
 * again, trace_dedupe_give() hands it over; it returns the table if it
 * is no longer wanted (the table grew meanwhile), for the owner to free
 * outside the lock.
 */
size_t trace_dedupe_upkeep(struct trace_dedupe *d,
			   struct trace_dedupe_ent **dead);
struct trace_dedupe_ent *trace_dedupe_table_new(size_t cap);
struct trace_dedupe_ent *trace_dedupe_give(struct trace_dedupe *d,
					   struct trace_dedupe_ent *v,
					   size_t cap);

const char *trace_type_name(uint16_t type);

#endif /* LOOPD_TRACE_H */
