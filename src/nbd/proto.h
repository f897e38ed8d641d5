/* SPDX-License-Identifier: MIT */
/*
 * proto.h: pure NBD codec.  No I/O, no sockets, no allocation.
 *
 * Everything that turns bytes into structs (and back), validates a request
 * against what was negotiated, or maps an errno to an NBD error lives here,
 * so that tests/unit/test-proto.c reaches every malformed case.
 *
 * Conventions: functions return 0 or a negative errno (as liburing does);
 * encoders return the number of bytes written into a caller buffer that
 * is at least the documented size.
 */
#ifndef LOOPD_PROTO_H
#define LOOPD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbd/nbd.h"

/* A decoded transmission request (host byte order). */
struct nbd_request {
	uint16_t flags; /* NBD_CMD_FLAG_* */
	uint16_t type; /* NBD_CMD_* */
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
};

/*
 * What the connection negotiated, and what the export is: everything
 * proto_validate_request() needs to judge a request.
 */
struct proto_view {
	uint64_t size; /* export size in bytes */
	uint16_t tflags; /* transmission flags advertised (NBD_FLAG_*) */
	uint32_t min_block; /* advertised minimum block size (1 if none) */
	uint32_t max_payload; /* largest READ/WRITE payload accepted */
	bool structured; /* NBD_OPT_STRUCTURED_REPLY was acked */
	bool meta_alloc; /* base:allocation was selected */
	bool meta_dirty; /* a qemu:dirty-bitmap:NAME context was selected */
};

/* Size of a request header on the wire. */
#define PROTO_REQUEST_SIZE 28

/*
 * Decode a 28-byte request header.  Returns 0, or -EBADMSG if the magic is
 * wrong (the caller must then disconnect: the stream is out of sync).
 */
int proto_decode_request(const void *buf, struct nbd_request *req);

/*
 * Validate a decoded request against the negotiated view.  Checks run in
 * the order listed below; the first failing one gives the answer.  Returns 0 if the request may run, or a
 * negative errno giving the answer to send:
 *   -EINVAL   unknown command; unknown flag or flag not valid for the
 *             command or not negotiated (FUA without SEND_FUA, DF without
 *             structured replies, FAST_ZERO without SEND_FAST_ZERO, ...);
 *             FLUSH or DISC with non-zero offset/length; offset+length
 *             overflow; READ/CACHE/BLOCK_STATUS/TRIM beyond the export;
 *             BLOCK_STATUS without structured replies or without a
 *             selected meta context (base:allocation or a dirty
 *             bitmap); READ/WRITE longer than max_payload.
 *   -ENOSPC   WRITE or WRITE_ZEROES beyond the end of the export.
 *   -EPERM    WRITE, TRIM or WRITE_ZEROES on a read-only export.
 * Unaligned requests (to min_block) are NOT rejected: loopd serves them
 * with a bounce buffer, so clients that ignore block sizes still work.
 * Zero-length READ/WRITE/TRIM/WRITE_ZEROES are valid.
 * FUA is accepted on every command when SEND_FUA is advertised.
 * NBD_CMD_CACHE is accepted without SEND_CACHE only when flags == 0.
 * DISC is valid (returns 0) when offset and length are 0.
 */
int proto_validate_request(const struct nbd_request *req,
			   const struct proto_view *v);

/*
 * Whether a request carries a payload the server must read off the socket
 * (true only for NBD_CMD_WRITE), even when the request is rejected: the
 * payload must still be consumed to stay in sync.
 */
bool proto_has_payload(const struct nbd_request *req);

/*
 * The one errno -> NBD error mapping.  err is a positive or negative errno
 * (sign ignored); 0 maps to 0.  EPERM/EROFS -> NBD_EPERM; EIO -> NBD_EIO;
 * ENOMEM -> NBD_ENOMEM; EINVAL, EFAULT, EBADMSG -> NBD_EINVAL;
 * ENOSPC, EDQUOT, EFBIG -> NBD_ENOSPC; EOVERFLOW -> NBD_EOVERFLOW;
 * ENOTSUP/EOPNOTSUPP -> NBD_ENOTSUP only if fast_zero, else NBD_EINVAL;
 * ESHUTDOWN -> NBD_ESHUTDOWN; anything else -> NBD_EIO.
 */
uint32_t proto_nbd_error(int err, bool fast_zero);

/* Name of a command for logs ("READ", ... , "UNKNOWN"). */
const char *proto_cmd_name(uint16_t type);

/* Whether a command changes data: WRITE, TRIM, WRITE_ZEROES. */
bool proto_cmd_is_write(uint16_t type);

/*
 * The reply to a request (P1, proto.c): which header, and what follows it.
 * Encodes the header into hdr (PROTO_REPLY_HDR_MAX bytes) and returns its
 * length; *payload says what the caller sends after it: the READ's data,
 * the rest of a BLOCK_STATUS reply (proto_encode_status_payload), or
 * nothing.  A successful BLOCK_STATUS is one chunk per selected context:
 * st[0..n_st) gives each chunk's context id and number of descriptors,
 * in the order sent (st is not read for other replies).
 */
enum proto_payload {
	PROTO_PAYLOAD_NONE,
	PROTO_PAYLOAD_DATA,
	PROTO_PAYLOAD_EXTENTS,
};
#define PROTO_REPLY_HDR_MAX 32
#define PROTO_STATUS_CHUNKS 2 /* contexts one connection may select */

/* One BLOCK_STATUS chunk of a reply: a context and its descriptors. */
struct proto_status_chunk {
	uint32_t id; /* the context's id (SET_META_CONTEXT) */
	uint32_t n_extents; /* descriptors, at least 1 */
};

size_t proto_encode_reply(void *hdr, const struct nbd_request *req,
			  uint32_t nbd_error, bool structured,
			  const struct proto_status_chunk *st, uint32_t n_st,
			  enum proto_payload *payload);

/*
 * One extent of block status: its length and NBD_STATE_* flags.  Raw
 * extents (as a backend found them) are turned into the descriptors sent
 * by proto_align_extents() (P2).
 */
struct proto_extent {
	uint64_t len;
	uint32_t flags; /* NBD_STATE_HOLE | NBD_STATE_ZERO, or 0: data */
};

/*
 * P2: round raw extents covering [off, off + sum of lengths) to the
 * minimum block size, conservatively: a hole shrinks to whole blocks, data
 * grows.  Only the end of the export may be unaligned (end is the
 * request's end, at most the export size).  Writes at most max extents
 * into out and returns how many.
 */
uint32_t proto_align_extents(const struct proto_extent *in, uint32_t n_in,
			     uint64_t off, uint64_t end, uint32_t min_block,
			     struct proto_extent *out, uint32_t max);

/*
 * P2 for a dirty bitmap, whose flags are NBD_STATE_DIRTY or 0: the other
 * way round, clean shrinks to whole blocks and dirty grows, so a change
 * is never reported clean.
 */
uint32_t proto_align_dirty(const struct proto_extent *in, uint32_t n_in,
			   uint64_t off, uint64_t end, uint32_t min_block,
			   struct proto_extent *out, uint32_t max);

/*
 * P1: what follows the header of a successful BLOCK_STATUS reply: the
 * descriptors of st[0] (ext[0]), then for each later chunk its header
 * (24 bytes, DONE on the last one only) and its descriptors.  Every
 * extent's len must fit in 32 bits.  buf holds
 * proto_status_payload_size(total descriptors, n_st) bytes; returns the
 * bytes written.
 */
static inline size_t proto_status_payload_size(uint32_t n_ext, uint32_t n_st)
{
	return 8 * (size_t)n_ext + 24 * ((size_t)n_st - 1);
}
size_t proto_encode_status_payload(void *buf, uint64_t cookie,
				   const struct proto_status_chunk *st,
				   const struct proto_extent *const *ext,
				   uint32_t n_st);

/* --- Reply encoders (transmission phase) --- */

/* Simple reply header: 16 bytes. */
size_t proto_encode_simple_reply(void *buf, uint64_t cookie,
				 uint32_t nbd_error);

/* Structured chunk header: 20 bytes. */
size_t proto_encode_chunk(void *buf, uint16_t flags, uint16_t type,
			  uint64_t cookie, uint32_t payload_len);

/*
 * OFFSET_DATA chunk header plus the 8-byte offset: 28 bytes.  data_len
 * bytes of data follow it on the wire (the caller sends them).
 */
size_t proto_encode_offset_data(void *buf, uint16_t flags, uint64_t cookie,
				uint64_t offset, uint32_t data_len);

/* OFFSET_HOLE chunk (header + offset + size): 32 bytes. */
size_t proto_encode_offset_hole(void *buf, uint16_t flags, uint64_t cookie,
				uint64_t offset, uint32_t hole_len);

/*
 * ERROR chunk with an optional message (may be NULL): 20 + 6 + msglen
 * bytes; msglen is capped at 4096.  DONE flag is set.
 */
size_t proto_encode_error_chunk(void *buf, uint64_t cookie, uint32_t nbd_error,
				const char *msg);

/* Maximum bytes proto_encode_error_chunk() writes. */
#define PROTO_ERROR_CHUNK_MAX (20 + 6 + 4096)

/*
 * BLOCK_STATUS chunk header + context id: 24 bytes; it is followed by
 * n descriptors of 8 bytes each, encoded with proto_encode_extent().
 */
size_t proto_encode_block_status(void *buf, uint16_t flags, uint64_t cookie,
				 uint32_t context_id, uint32_t n_extents);
size_t proto_encode_extent(void *buf, uint32_t length, uint32_t status);

/* --- Handshake encoders and option parsers --- */

/* Server greeting: 18 bytes (NBDMAGIC, IHAVEOPT, gflags). */
size_t proto_encode_greeting(void *buf, uint16_t gflags);

/* Option reply header: 20 bytes. */
size_t proto_encode_option_reply(void *buf, uint32_t option, uint32_t reply,
				 uint32_t len);

/* Decode a 16-byte option header; -EBADMSG if the magic is wrong. */
int proto_decode_option(const void *buf, uint32_t *option, uint32_t *len);

/* NBD_INFO_EXPORT payload: 12 bytes. */
size_t proto_encode_info_export(void *buf, uint64_t size, uint16_t tflags);
/* NBD_INFO_BLOCK_SIZE payload: 14 bytes. */
size_t proto_encode_info_block_size(void *buf, uint32_t min, uint32_t pref,
				    uint32_t max);
/* Reply to NBD_OPT_EXPORT_NAME: 10 bytes, plus 124 zeroes if !no_zeroes. */
size_t proto_encode_export_name_reply(void *buf, uint64_t size, uint16_t tflags,
				      bool no_zeroes);

/*
 * Parse the data of NBD_OPT_INFO / NBD_OPT_GO:
 *   u32 namelen, name[namelen], u16 n, u16 info[n].
 * On success *name points into data (not NUL-terminated), *n_info is the
 * count and the info requests can be read with
 * proto_info_request(data, namelen, i).
 * Returns -EINVAL if the lengths are inconsistent with len.
 */
int proto_parse_info_opt(const void *data, uint32_t len, const char **name,
			 uint32_t *namelen, uint16_t *n_info);
uint16_t proto_info_request(const void *data, uint32_t namelen, uint16_t i);

/*
 * Parse the data of NBD_OPT_LIST_META_CONTEXT / SET_META_CONTEXT:
 *   u32 namelen, name, u32 nqueries, { u32 len, query }...
 * Calls cb(query, qlen, opaque) for each query.  Returns -EINVAL if any
 * length overruns the option (the whole option is then invalid and no
 * callback is made), else 0.  name and namelen give the export name.
 */
int proto_parse_meta_opt(const void *data, uint32_t len, const char **name,
			 uint32_t *namelen, uint32_t *n_queries,
			 void (*cb)(const char *q, uint32_t qlen, void *opaque),
			 void *opaque);

/* Encode the NBD_REP_META_CONTEXT payload: u32 id + name (buffer: 4 +
 * strlen(name) bytes; names are at most 4096 bytes by the spec). */
size_t proto_encode_meta_context(void *buf, uint32_t id, const char *name);

/* Encode the NBD_REP_SERVER payload: u32 len + name [+ description]
 * (buffer: 4 + strlen(name) + strlen(desc) bytes; desc may be NULL). */
size_t proto_encode_rep_server(void *buf, const char *name, const char *desc);

/* Big-endian helpers shared by the codec's users. */
static inline uint16_t proto_get_be16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)((b[0] << 8) | b[1]);
}
static inline uint32_t proto_get_be32(const void *p)
{
	const uint8_t *b = p;
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
	       ((uint32_t)b[2] << 8) | b[3];
}
static inline uint64_t proto_get_be64(const void *p)
{
	const uint8_t *b = p;
	return ((uint64_t)proto_get_be32(b) << 32) | proto_get_be32(b + 4);
}
static inline void proto_put_be16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static inline void proto_put_be32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}
static inline void proto_put_be64(void *p, uint64_t v)
{
	proto_put_be32(p, (uint32_t)(v >> 32));
	proto_put_be32((uint8_t *)p + 4, (uint32_t)v);
}

#endif /* LOOPD_PROTO_H */
