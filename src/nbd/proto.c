/* SPDX-License-Identifier: MIT */
/*
 * proto.c: the NBD codec.
 *
 * Design: this file is the only place where wire bytes become host values
 * and back, and the only place that decides whether a request is legal.
 * It does no I/O, allocates nothing and keeps no state, so every malformed
 * case of the protocol can be reached from a unit test with a byte array
 * (tests/unit/test-proto.c) instead of a socket.
 *
 * Decoders never trust a length from the wire: every length is checked
 * against the bytes actually present, in 64-bit arithmetic so that a
 * hostile u32 cannot wrap the check, before anything is read through it.
 *
 * Request validation is table driven: one row per command says which
 * flags the command may carry, which transmission flag must have been
 * advertised for it, and whether it writes.  proto_validate_request() then
 * applies the checks in a fixed order (see the comment on that function)
 * so that a request breaking several rules at once always gets the same
 * answer, and the most useful one.
 */
#include "nbd/proto.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "nbd/nbd.h"

/* Longest string the spec allows on the wire (error messages, names). */
#define PROTO_MAX_STRING 4096

struct cmd_rule {
	const char *name;
	uint16_t flags; /* NBD_CMD_FLAG_* valid on this command */
	uint16_t needs; /* NBD_FLAG_SEND_* the server must have advertised */
	bool writes; /* modifies the export: EPERM when read-only */
	bool ranged; /* offset/length address the export */
};

/*
 * FUA is listed on every command, DISC included: the spec makes it valid
 * on all commands once SEND_FUA is advertised (clients set it on reads
 * too), and a server MUST accept it everywhere.  On DISC it is a no-op.
 */
/* clang-format off */
static const struct cmd_rule cmd_rules[] = {
	[NBD_CMD_READ] = {
		.name = "READ",
		.flags = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF,
		.ranged = true,
	},
	[NBD_CMD_WRITE] = {
		.name = "WRITE",
		.flags = NBD_CMD_FLAG_FUA,
		.writes = true,
		.ranged = true,
	},
	[NBD_CMD_DISC] = {
		.name = "DISC",
		.flags = NBD_CMD_FLAG_FUA,
	},
	[NBD_CMD_FLUSH] = {
		.name = "FLUSH",
		.flags = NBD_CMD_FLAG_FUA,
		.needs = NBD_FLAG_SEND_FLUSH,
	},
	[NBD_CMD_TRIM] = {
		.name = "TRIM",
		.flags = NBD_CMD_FLAG_FUA,
		.needs = NBD_FLAG_SEND_TRIM,
		.writes = true,
		.ranged = true,
	},
	/* No .needs: SEND_CACHE only matters for flags, see check_flags(). */
	[NBD_CMD_CACHE] = {
		.name = "CACHE",
		.flags = NBD_CMD_FLAG_FUA,
		.ranged = true,
	},
	[NBD_CMD_WRITE_ZEROES] = {
		.name = "WRITE_ZEROES",
		.flags = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
			 NBD_CMD_FLAG_FAST_ZERO,
		.needs = NBD_FLAG_SEND_WRITE_ZEROES,
		.writes = true,
		.ranged = true,
	},
	[NBD_CMD_BLOCK_STATUS] = {
		.name = "BLOCK_STATUS",
		.flags = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE,
		.ranged = true,
	},
};
/* clang-format on */

#define N_CMDS (sizeof(cmd_rules) / sizeof(cmd_rules[0]))

static const struct cmd_rule *cmd_rule(uint16_t type)
{
	if (type >= N_CMDS || !cmd_rules[type].name)
		return NULL;
	return &cmd_rules[type];
}

const char *proto_cmd_name(uint16_t type)
{
	const struct cmd_rule *r = cmd_rule(type);

	return r ? r->name : "UNKNOWN";
}

bool proto_cmd_is_write(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
	       type == NBD_CMD_WRITE_ZEROES;
}

int proto_decode_request(const void *buf, struct nbd_request *req)
{
	const uint8_t *b = buf;

	if (proto_get_be32(b) != NBD_REQUEST_MAGIC)
		return -EBADMSG;
	req->flags = proto_get_be16(b + 4);
	req->type = proto_get_be16(b + 6);
	req->cookie = proto_get_be64(b + 8);
	req->offset = proto_get_be64(b + 16);
	req->length = proto_get_be32(b + 24);
	return 0;
}

/* Rule (b): flags the command does not know, or that were not negotiated. */
static int check_flags(const struct nbd_request *req, const struct cmd_rule *r,
		       const struct proto_view *v)
{
	uint16_t f = req->flags;

	if (f & ~r->flags)
		return -EINVAL;
	if ((f & NBD_CMD_FLAG_FUA) && !(v->tflags & NBD_FLAG_SEND_FUA))
		return -EINVAL;
	/* DF only means something with structured replies (one chunk). */
	if ((f & NBD_CMD_FLAG_DF) &&
	    (!v->structured || !(v->tflags & NBD_FLAG_SEND_DF)))
		return -EINVAL;
	if ((f & NBD_CMD_FLAG_FAST_ZERO) &&
	    !(v->tflags & NBD_FLAG_SEND_FAST_ZERO))
		return -EINVAL;
	/*
	 * Clients may send CACHE even when SEND_CACHE is not advertised
	 * (checklist 1.5), but then only without flags.
	 */
	if (req->type == NBD_CMD_CACHE && f &&
	    !(v->tflags & NBD_FLAG_SEND_CACHE))
		return -EINVAL;
	return 0;
}

/*
 * Order (tests/unit/test-proto.c pins it, "order_*" cases):
 *   a. unknown command                                  EINVAL
 *   b. flag unknown, inapplicable or not negotiated     EINVAL
 *   c. WRITE/TRIM/WRITE_ZEROES on a read-only export    EPERM
 *   d. TRIM/WRITE_ZEROES/FLUSH not advertised           EINVAL
 *   e. FLUSH/DISC with offset or length                 EINVAL
 *   f. BLOCK_STATUS without any context, or length 0    EINVAL
 *   g. READ/WRITE longer than max_payload               EINVAL
 *   h. offset + length overflows                        EINVAL
 *   i. past the end                 ENOSPC (WRITE/WRITE_ZEROES), EINVAL
 * The alignment to min_block is deliberately not checked (bounce buffer).
 */
int proto_validate_request(const struct nbd_request *req,
			   const struct proto_view *v)
{
	const struct cmd_rule *r = cmd_rule(req->type);
	uint64_t end;
	int ret;

	if (!r)
		return -EINVAL;

	ret = check_flags(req, r, v);
	if (ret)
		return ret;

	/*
	 * Read-only before "not advertised": a read-only export never
	 * advertises TRIM or WRITE_ZEROES, yet EPERM is the more useful
	 * answer there (the spec says SHOULD EPERM for both).
	 */
	if (r->writes && (v->tflags & NBD_FLAG_READ_ONLY))
		return -EPERM;

	if (r->needs && !(v->tflags & r->needs))
		return -EINVAL;

	if (!r->ranged && (req->offset || req->length))
		return -EINVAL;

	if (req->type == NBD_CMD_BLOCK_STATUS) {
		if (!v->structured || !(v->meta_alloc || v->meta_dirty))
			return -EINVAL;
		/* Zero length cannot be answered with >= 1 descriptor. */
		if (!req->length)
			return -EINVAL;
	}

	/*
	 * Before the range check, so that an oversized WRITE gets EINVAL
	 * like an oversized READ rather than ENOSPC.
	 */
	if ((req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE) &&
	    req->length > v->max_payload)
		return -EINVAL;

	if (req->offset > UINT64_MAX - req->length)
		return -EINVAL;
	end = req->offset + req->length;

	/* end >= offset, so this also catches zero-length past the end. */
	if (end > v->size) {
		/* The spec asks ENOSPC of writes; TRIM is only a hint. */
		if (req->type == NBD_CMD_WRITE ||
		    req->type == NBD_CMD_WRITE_ZEROES)
			return -ENOSPC;
		return -EINVAL;
	}

	return 0;
}

bool proto_has_payload(const struct nbd_request *req)
{
	return req->type == NBD_CMD_WRITE;
}

uint32_t proto_nbd_error(int err, bool fast_zero)
{
	/* -INT_MIN does not exist; no errno is that large anyway. */
	if (err == INT_MIN)
		return NBD_EIO;
	if (err < 0)
		err = -err;

	switch (err) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case EIO:
		return NBD_EIO;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
	case EFAULT:
	case EBADMSG:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	/*
	 * NBD_ENOTSUP is reserved for a FAST_ZERO request that cannot be
	 * fast; anywhere else a client would not expect it.
	 */
	case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
	case EOPNOTSUPP:
#endif
		return fast_zero ? NBD_ENOTSUP : NBD_EINVAL;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		/* Never leak a raw errno: clients only know the NBD set. */
		return NBD_EIO;
	}
}

/* --- Reply encoders --- */

size_t proto_encode_simple_reply(void *buf, uint64_t cookie, uint32_t nbd_error)
{
	uint8_t *b = buf;

	proto_put_be32(b, NBD_SIMPLE_REPLY_MAGIC);
	proto_put_be32(b + 4, nbd_error);
	proto_put_be64(b + 8, cookie);
	return 16;
}

size_t proto_encode_chunk(void *buf, uint16_t flags, uint16_t type,
			  uint64_t cookie, uint32_t payload_len)
{
	uint8_t *b = buf;

	proto_put_be32(b, NBD_STRUCTURED_REPLY_MAGIC);
	proto_put_be16(b + 4, flags);
	proto_put_be16(b + 6, type);
	proto_put_be64(b + 8, cookie);
	proto_put_be32(b + 16, payload_len);
	return 20;
}

size_t proto_encode_offset_data(void *buf, uint16_t flags, uint64_t cookie,
				uint64_t offset, uint32_t data_len)
{
	uint8_t *b = buf;

	/*
	 * The chunk length counts the offset too; the caller keeps data_len
	 * <= UINT32_MAX - 8 (the spec's reason for splitting large reads).
	 */
	proto_encode_chunk(b, flags, NBD_REPLY_TYPE_OFFSET_DATA, cookie,
			   data_len + 8);
	proto_put_be64(b + 20, offset);
	return 28;
}

size_t proto_encode_offset_hole(void *buf, uint16_t flags, uint64_t cookie,
				uint64_t offset, uint32_t hole_len)
{
	uint8_t *b = buf;

	proto_encode_chunk(b, flags, NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
	proto_put_be64(b + 20, offset);
	proto_put_be32(b + 28, hole_len);
	return 32;
}

/*
 * Length of msg capped at max bytes without splitting a UTF-8 sequence:
 * the spec wants strings to be valid UTF-8, and a cut in the middle of a
 * multi-byte character would not be.
 */
static size_t utf8_capped_len(const char *msg, size_t max)
{
	size_t n = strnlen(msg, max + 1);

	if (n <= max)
		return n;
	/*
	 * Back off over continuation bytes (10xxxxxx) to a lead byte; a
	 * character has at most 3 of them, so more means the message is not
	 * UTF-8 anyway and the plain cut is as good as any.
	 */
	for (n = max; n >= max - 3; n--)
		if (((unsigned char)msg[n] & 0xc0) != 0x80)
			return n;
	return max;
}

size_t proto_encode_error_chunk(void *buf, uint64_t cookie, uint32_t nbd_error,
				const char *msg)
{
	uint8_t *b = buf;
	size_t msglen = msg ? utf8_capped_len(msg, PROTO_MAX_STRING) : 0;

	proto_encode_chunk(b, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie,
			   (uint32_t)(6 + msglen));
	proto_put_be32(b + 20, nbd_error);
	proto_put_be16(b + 24, (uint16_t)msglen);
	if (msglen)
		memcpy(b + 26, msg, msglen);
	return 26 + msglen;
}

size_t proto_encode_block_status(void *buf, uint16_t flags, uint64_t cookie,
				 uint32_t context_id, uint32_t n_extents)
{
	uint8_t *b = buf;

	proto_encode_chunk(b, flags, NBD_REPLY_TYPE_BLOCK_STATUS, cookie,
			   4 + 8 * n_extents);
	proto_put_be32(b + 20, context_id);
	return 24;
}

size_t proto_encode_extent(void *buf, uint32_t length, uint32_t status)
{
	uint8_t *b = buf;

	proto_put_be32(b, length);
	proto_put_be32(b + 4, status);
	return 8;
}

/* --- Handshake --- */

size_t proto_encode_greeting(void *buf, uint16_t gflags)
{
	uint8_t *b = buf;

	proto_put_be64(b, NBD_MAGIC);
	proto_put_be64(b + 8, NBD_IHAVEOPT);
	proto_put_be16(b + 16, gflags);
	return 18;
}

size_t proto_encode_option_reply(void *buf, uint32_t option, uint32_t reply,
				 uint32_t len)
{
	uint8_t *b = buf;

	proto_put_be64(b, NBD_REP_MAGIC);
	proto_put_be32(b + 8, option);
	proto_put_be32(b + 12, reply);
	proto_put_be32(b + 16, len);
	return 20;
}

int proto_decode_option(const void *buf, uint32_t *option, uint32_t *len)
{
	const uint8_t *b = buf;

	if (proto_get_be64(b) != NBD_IHAVEOPT)
		return -EBADMSG;
	*option = proto_get_be32(b + 8);
	*len = proto_get_be32(b + 12);
	return 0;
}

size_t proto_encode_info_export(void *buf, uint64_t size, uint16_t tflags)
{
	uint8_t *b = buf;

	proto_put_be16(b, NBD_INFO_EXPORT);
	proto_put_be64(b + 2, size);
	proto_put_be16(b + 10, tflags);
	return 12;
}

size_t proto_encode_info_block_size(void *buf, uint32_t min, uint32_t pref,
				    uint32_t max)
{
	uint8_t *b = buf;

	proto_put_be16(b, NBD_INFO_BLOCK_SIZE);
	proto_put_be32(b + 2, min);
	proto_put_be32(b + 6, pref);
	proto_put_be32(b + 10, max);
	return 14;
}

size_t proto_encode_export_name_reply(void *buf, uint64_t size, uint16_t tflags,
				      bool no_zeroes)
{
	uint8_t *b = buf;

	proto_put_be64(b, size);
	proto_put_be16(b + 8, tflags);
	if (no_zeroes)
		return 10;
	/* Old clients read a fixed 134 bytes; the pad must be zero. */
	memset(b + 10, 0, 124);
	return 134;
}

int proto_parse_info_opt(const void *data, uint32_t len, const char **name,
			 uint32_t *namelen, uint16_t *n_info)
{
	const uint8_t *b = data;
	uint32_t nlen;
	uint16_t n;

	/* u32 namelen + u16 count is the smallest valid option. */
	if (len < 6)
		return -EINVAL;
	nlen = proto_get_be32(b);
	if (nlen > len - 6)
		return -EINVAL;
	n = proto_get_be16(b + 4 + nlen);
	/* Exact: a short list and trailing garbage are equally malformed. */
	if ((uint64_t)4 + nlen + 2 + 2 * (uint64_t)n != len)
		return -EINVAL;

	*name = (const char *)(b + 4);
	*namelen = nlen;
	*n_info = n;
	return 0;
}

uint16_t proto_info_request(const void *data, uint32_t namelen, uint16_t i)
{
	const uint8_t *b = data;

	return proto_get_be16(b + 4 + (size_t)namelen + 2 + 2 * (size_t)i);
}

/*
 * Walk the queries of a meta-context option starting at pos.  With cb
 * NULL it only checks that every length fits; the caller runs it once
 * that way so that a malformed option triggers no callback at all.
 */
static int walk_meta_queries(
	const uint8_t *b, uint32_t len, uint64_t pos, uint32_t nq,
	void (*cb)(const char *q, uint32_t qlen, void *opaque), void *opaque)
{
	uint32_t i, qlen;

	/* Each query costs >= 4 bytes, so a huge nq fails fast here. */
	for (i = 0; i < nq; i++) {
		if (pos + 4 > len)
			return -EINVAL;
		qlen = proto_get_be32(b + pos);
		pos += 4;
		if (qlen > len - pos)
			return -EINVAL;
		if (cb)
			cb((const char *)(b + pos), qlen, opaque);
		pos += qlen;
	}
	/* Bytes left over mean the client and we disagree on the layout. */
	if (pos != len)
		return -EINVAL;
	return 0;
}

int proto_parse_meta_opt(const void *data, uint32_t len, const char **name,
			 uint32_t *namelen, uint32_t *n_queries,
			 void (*cb)(const char *q, uint32_t qlen, void *opaque),
			 void *opaque)
{
	const uint8_t *b = data;
	uint32_t nlen, nq;
	int ret;

	/* u32 namelen + u32 query count is the smallest valid option. */
	if (len < 8)
		return -EINVAL;
	nlen = proto_get_be32(b);
	if (nlen > len - 8)
		return -EINVAL;
	nq = proto_get_be32(b + 4 + nlen);

	ret = walk_meta_queries(b, len, (uint64_t)8 + nlen, nq, NULL, NULL);
	if (ret)
		return ret;

	*name = (const char *)(b + 4);
	*namelen = nlen;
	*n_queries = nq;
	if (cb)
		walk_meta_queries(b, len, (uint64_t)8 + nlen, nq, cb, opaque);
	return 0;
}

size_t proto_encode_meta_context(void *buf, uint32_t id, const char *name)
{
	uint8_t *b = buf;
	size_t n = strlen(name);

	proto_put_be32(b, id);
	memcpy(b + 4, name, n);
	return 4 + n;
}

size_t proto_encode_rep_server(void *buf, const char *name, const char *desc)
{
	uint8_t *b = buf;
	size_t n = strlen(name);
	size_t d = desc ? strlen(desc) : 0;

	proto_put_be32(b, (uint32_t)n);
	memcpy(b + 4, name, n);
	if (d)
		memcpy(b + 4 + n, desc, d);
	return 4 + n + d;
}

/*
 * P1: structured READs answer with one OFFSET_DATA chunk (an empty NONE
 * chunk for a zero-length READ) or an ERROR chunk; BLOCK_STATUS with one
 * BLOCK_STATUS chunk per selected context, in the order of st, only the
 * last with DONE (the others' headers are in the payload,
 * proto_encode_status_payload), or with one ERROR chunk for them all;
 * everything else, and READ without structured replies, with a simple
 * reply.
 */
size_t proto_encode_reply(void *hdr, const struct nbd_request *req,
			  uint32_t nbd_error, bool structured,
			  const struct proto_status_chunk *st, uint32_t n_st,
			  enum proto_payload *payload)
{
	bool ok = nbd_error == 0;

	*payload = PROTO_PAYLOAD_NONE;
	if (req->type == NBD_CMD_BLOCK_STATUS ||
	    (structured && req->type == NBD_CMD_READ)) {
		if (!ok)
			return proto_encode_error_chunk(hdr, req->cookie,
							nbd_error, NULL);
		if (req->type == NBD_CMD_BLOCK_STATUS) {
			*payload = PROTO_PAYLOAD_EXTENTS;
			return proto_encode_block_status(
				hdr, n_st > 1 ? 0 : NBD_REPLY_FLAG_DONE,
				req->cookie, st[0].id, st[0].n_extents);
		}
		if (req->length == 0)
			return proto_encode_chunk(hdr, NBD_REPLY_FLAG_DONE,
						  NBD_REPLY_TYPE_NONE,
						  req->cookie, 0);
		*payload = PROTO_PAYLOAD_DATA;
		return proto_encode_offset_data(hdr, NBD_REPLY_FLAG_DONE,
						req->cookie, req->offset,
						req->length);
	}
	if (ok && req->type == NBD_CMD_READ && req->length)
		*payload = PROTO_PAYLOAD_DATA;
	return proto_encode_simple_reply(hdr, req->cookie, nbd_error);
}

size_t proto_encode_status_payload(void *buf, uint64_t cookie,
				   const struct proto_status_chunk *st,
				   const struct proto_extent *const *ext,
				   uint32_t n_st)
{
	uint8_t *b = buf;
	size_t pos = 0;
	uint32_t i, j;

	for (i = 0; i < n_st; i++) {
		if (i > 0) /* P1: the first chunk's header is the reply's */
			pos += proto_encode_block_status(
				b + pos,
				i + 1 == n_st ? NBD_REPLY_FLAG_DONE : 0, cookie,
				st[i].id, st[i].n_extents);
		for (j = 0; j < st[i].n_extents; j++)
			pos += proto_encode_extent(b + pos,
						   (uint32_t)ext[i][j].len,
						   ext[i][j].flags);
	}
	return pos;
}

/*
 * P2: walk the raw extents; at each boundary inside the request that is
 * not on a block, an extent in any state but safe that would still hold a
 * whole block ends at the block below, and anything else becomes safe up
 * to the block above.  safe is the state that may always be reported:
 * data (0) for base:allocation, so a hole is never reported where data may
 * be; dirty for a dirty bitmap, so a change is never reported clean.
 * Where the raw extents stop before end, the last boundary is treated the
 * same way (safe beyond is the safe guess).
 */
static uint32_t align(const struct proto_extent *in, uint32_t n_in,
		      uint64_t off, uint64_t end, uint32_t min_block,
		      uint32_t safe, struct proto_extent *out, uint32_t max)
{
	uint64_t pos = off, raw_end = off, b = min_block ? min_block : 1;
	uint32_t i = 0, n = 0;

	while (pos < end && n < max && i < n_in) {
		uint64_t stop;
		uint32_t flags;

		/* The raw extent holding pos. */
		while (i < n_in && raw_end + in[i].len <= pos)
			raw_end += in[i++].len;
		if (i == n_in)
			break;
		stop = raw_end + in[i].len;
		flags = in[i].flags;
		if (stop > end)
			stop = end;
		if (stop < end && stop % b) {
			uint64_t down = stop / b * b;

			if (flags != safe && down > pos) {
				stop = down;
			} else {
				flags = safe;
				stop = down + b < end ? down + b : end;
			}
		}
		out[n].len = stop - pos;
		out[n++].flags = flags;
		pos = stop;
	}
	return n;
}

uint32_t proto_align_extents(const struct proto_extent *in, uint32_t n_in,
			     uint64_t off, uint64_t end, uint32_t min_block,
			     struct proto_extent *out, uint32_t max)
{
	return align(in, n_in, off, end, min_block, 0, out, max);
}

uint32_t proto_align_dirty(const struct proto_extent *in, uint32_t n_in,
			   uint64_t off, uint64_t end, uint32_t min_block,
			   struct proto_extent *out, uint32_t max)
{
	return align(in, n_in, off, end, min_block, NBD_STATE_DIRTY, out, max);
}
