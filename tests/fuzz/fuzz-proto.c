/* SPDX-License-Identifier: MIT */
/*
 * fuzz-proto.c: libFuzzer harness for the pure codec (src/nbd/proto.c).
 *
 * Input: a stream of client messages as they are on the wire, each
 * recognised by its magic:
 *   - a request (NBD_REQUEST_MAGIC, 28 bytes), followed by its payload
 *     when proto_has_payload() says so (as much of it as is there);
 *   - an option (IHAVEOPT, 16 bytes) followed by its data (as much of it
 *     as is there).
 * Anything else is handed to both header decoders, which must refuse it
 * (-EBADMSG), and ends the stream, as it ends a connection.  So the seed
 * corpus is real client traffic: options, then requests.
 *
 * Every message is copied into a buffer of exactly its size before it is
 * decoded, so that ASan catches a decoder reading one byte past the
 * message and not merely past the whole input.
 *
 * What each message goes through, with the checks (abort() on failure):
 *   Requests: proto_decode_request(); the fields re-encode to the same 28
 *     bytes (FP1).  proto_validate_request() against each view of
 *     views[] (negotiated states from bare to everything, read-only,
 *     empty and huge exports): the answer is 0 or one of the documented
 *     errors, and an accepted request obeys the rules of proto.h (FP2);
 *     the answer maps to an NBD error in the NBD set (FP3).  Then the
 *     replies the server could send for it are encoded and decoded back:
 *     simple, chunk, OFFSET_DATA, OFFSET_HOLE, BLOCK_STATUS + extent (FP4).
 *     Any int (here from the cookie) maps to an NBD error too (FP3).
 *   Options: proto_decode_option().  INFO/GO data through
 *     proto_parse_info_opt() and every proto_info_request() (FP5);
 *     LIST/SET_META_CONTEXT data through proto_parse_meta_opt(), whose
 *     callback must see only whole queries inside the data, as many as it
 *     said, covering the data to its last byte, and none at all when it
 *     fails (FP6).  The data of any option,
 *     taken as a string, goes through the string encoders: the error
 *     chunk (capped at 4096 bytes, never cut inside a UTF-8 sequence),
 *     NBD_REP_META_CONTEXT and NBD_REP_SERVER (FP7).  The option's fields
 *     also go through the handshake encoders, which must decode back (FP4).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd.h"
#include "nbd/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-proto: %s:%d: %s\n", __FILE__,   \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MiB (1024u * 1024u)

#define TF_ALL                                                                 \
	(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |        \
	 NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_DF |  \
	 NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_FAST_ZERO |                       \
	 NBD_FLAG_CAN_MULTI_CONN)
#define TF_RO                                                                  \
	(NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH |       \
	 NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE)

/* What a connection may have negotiated; every request meets each one. */
static const struct proto_view views[] = {
	/* loopd's own export with everything negotiated. */
	{MiB, TF_ALL, 1, 64 * MiB, true, true, false},
	/* Read-only, O_DIRECT blocks, simple replies. */
	{MiB, TF_RO, 4096, 64 * MiB, false, false, false},
	/* The baseline: nothing advertised, small payloads. */
	{MiB, NBD_FLAG_HAS_FLAGS, 1, 4096, false, false, false},
	/* Structured replies but no context; DF advertised regardless. */
	{MiB, TF_ALL, 512, 32 * MiB, true, false, false},
	/* Empty export. */
	{0, TF_ALL, 1, 64 * MiB, true, true, false},
	/* The largest export: offset + length can wrap. */
	{UINT64_MAX, TF_ALL, 1, UINT32_MAX, true, true, false},
	/* FUA and DF, but no FLUSH, TRIM, WRITE_ZEROES or CACHE. */
	{MiB, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_DF, 1,
	 64 * MiB, true, true, false},
	/* Only a dirty bitmap selected (qemu:dirty-bitmap:NAME). */
	{MiB, TF_ALL, 4096, 64 * MiB, true, false, true},
};

/* --- Requests --- */

/* FP2: an accepted request obeys every rule of proto_validate_request(). */
static void check_accepted(const struct nbd_request *r,
			   const struct proto_view *v)
{
	uint16_t f = r->flags;

	check(r->type <= NBD_CMD_BLOCK_STATUS);
	check(!(f & NBD_CMD_FLAG_FUA) || (v->tflags & NBD_FLAG_SEND_FUA));
	check(!(f & NBD_CMD_FLAG_DF) ||
	      (r->type == NBD_CMD_READ && v->structured &&
	       (v->tflags & NBD_FLAG_SEND_DF)));
	check(!(f & NBD_CMD_FLAG_NO_HOLE) || r->type == NBD_CMD_WRITE_ZEROES);
	check(!(f & NBD_CMD_FLAG_FAST_ZERO) ||
	      (r->type == NBD_CMD_WRITE_ZEROES &&
	       (v->tflags & NBD_FLAG_SEND_FAST_ZERO)));
	check(!(f & NBD_CMD_FLAG_REQ_ONE) || r->type == NBD_CMD_BLOCK_STATUS);
	check(!(f &
		~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF |
		  NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO)));

	switch (r->type) {
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		check(!(v->tflags & NBD_FLAG_READ_ONLY));
		break;
	default:
		break;
	}
	switch (r->type) {
	case NBD_CMD_TRIM:
		check(v->tflags & NBD_FLAG_SEND_TRIM);
		break;
	case NBD_CMD_WRITE_ZEROES:
		check(v->tflags & NBD_FLAG_SEND_WRITE_ZEROES);
		break;
	case NBD_CMD_FLUSH:
		check(v->tflags & NBD_FLAG_SEND_FLUSH);
		__attribute__((fallthrough));
	case NBD_CMD_DISC:
		check(r->offset == 0 && r->length == 0);
		return;
	case NBD_CMD_BLOCK_STATUS:
		check(v->structured && (v->meta_alloc || v->meta_dirty) &&
		      r->length > 0);
		break;
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		check(r->length <= v->max_payload);
		break;
	case NBD_CMD_CACHE:
		check(!f || (v->tflags & NBD_FLAG_SEND_CACHE));
		break;
	default:
		break;
	}
	/* Ranged commands: inside the export, no wrap. */
	check(r->offset <= v->size && r->length <= v->size - r->offset);
}

/* FP3: any errno, of either sign, maps into the NBD set. */
static void check_nbd_error(int err, bool fast_zero)
{
	uint32_t e = proto_nbd_error(err, fast_zero);

	check(e == 0 || e == NBD_EPERM || e == NBD_EIO || e == NBD_ENOMEM ||
	      e == NBD_EINVAL || e == NBD_ENOSPC || e == NBD_EOVERFLOW ||
	      e == NBD_ENOTSUP || e == NBD_ESHUTDOWN);
	check((e == 0) == (err == 0));
	check(e != NBD_ENOTSUP || fast_zero);
}

/* FP4: a reply header decodes back to what was encoded. */
static void check_chunk(const uint8_t *b, uint16_t flags, uint16_t type,
			uint64_t cookie, uint32_t len)
{
	check(proto_get_be32(b) == NBD_STRUCTURED_REPLY_MAGIC);
	check(proto_get_be16(b + 4) == flags);
	check(proto_get_be16(b + 6) == type);
	check(proto_get_be64(b + 8) == cookie);
	check(proto_get_be32(b + 16) == len);
}

static void encode_replies(const struct nbd_request *r, int ret)
{
	uint8_t *b = malloc(32);
	uint16_t done = r->flags & NBD_REPLY_FLAG_DONE;
	uint32_t err = proto_nbd_error(ret, false);

	check(b);
	check(proto_encode_simple_reply(b, r->cookie, err) == 16);
	check(proto_get_be32(b) == NBD_SIMPLE_REPLY_MAGIC);
	check(proto_get_be32(b + 4) == err);
	check(proto_get_be64(b + 8) == r->cookie);

	check(proto_encode_chunk(b, done, NBD_REPLY_TYPE_NONE, r->cookie, 0) ==
	      20);
	check_chunk(b, done, NBD_REPLY_TYPE_NONE, r->cookie, 0);

	/* The caller keeps data_len <= UINT32_MAX - 8 (proto.c). */
	if (r->length <= UINT32_MAX - 8) {
		check(proto_encode_offset_data(b, done, r->cookie, r->offset,
					       r->length) == 28);
		check_chunk(b, done, NBD_REPLY_TYPE_OFFSET_DATA, r->cookie,
			    r->length + 8);
		check(proto_get_be64(b + 20) == r->offset);
	}

	check(proto_encode_offset_hole(b, done, r->cookie, r->offset,
				       r->length) == 32);
	check_chunk(b, done, NBD_REPLY_TYPE_OFFSET_HOLE, r->cookie, 12);
	check(proto_get_be64(b + 20) == r->offset);
	check(proto_get_be32(b + 28) == r->length);

	/* n_extents: the worker caps it far below this. */
	check(proto_encode_block_status(b, done, r->cookie, 1,
					r->length & 0xffff) == 24);
	check_chunk(b, done, NBD_REPLY_TYPE_BLOCK_STATUS, r->cookie,
		    4 + 8 * (r->length & 0xffff));
	check(proto_get_be32(b + 20) == 1);
	check(proto_encode_extent(b + 24, r->length, r->flags) == 8);
	check(proto_get_be32(b + 24) == r->length);
	check(proto_get_be32(b + 28) == r->flags);
	free(b);
}

/* One request header at h (exactly 28 readable bytes). */
static void do_request(const uint8_t *h)
{
	struct nbd_request r;
	uint8_t again[PROTO_REQUEST_SIZE];
	size_t i;

	check(proto_decode_request(h, &r) == 0);
	check(proto_cmd_name(r.type) != NULL);

	/* FP1: nothing lost or moved. */
	proto_put_be32(again, NBD_REQUEST_MAGIC);
	proto_put_be16(again + 4, r.flags);
	proto_put_be16(again + 6, r.type);
	proto_put_be64(again + 8, r.cookie);
	proto_put_be64(again + 16, r.offset);
	proto_put_be32(again + 24, r.length);
	check(memcmp(again, h, sizeof again) == 0);

	check(proto_has_payload(&r) == (r.type == NBD_CMD_WRITE));

	for (i = 0; i < ARRAY_SIZE(views); i++) {
		const struct proto_view *v = &views[i];
		int ret = proto_validate_request(&r, v);

		/* FP2 */
		check(ret == 0 || ret == -EINVAL || ret == -ENOSPC ||
		      ret == -EPERM);
		if (ret == 0)
			check_accepted(&r, v);
		if (ret == -ENOSPC)
			check(r.type == NBD_CMD_WRITE ||
			      r.type == NBD_CMD_WRITE_ZEROES);
		if (ret == -EPERM)
			check(v->tflags & NBD_FLAG_READ_ONLY);
		check_nbd_error(ret, (r.flags & NBD_CMD_FLAG_FAST_ZERO) != 0);
		check_nbd_error(-EOPNOTSUPP,
				(r.flags & NBD_CMD_FLAG_FAST_ZERO) != 0);
		if (i == 0)
			encode_replies(&r, ret);
	}
	/* FP3 again, on errnos no validation returns (the cookie's halves). */
	check_nbd_error((int)r.cookie, r.flags & NBD_CMD_FLAG_FAST_ZERO);
	check_nbd_error((int)(r.cookie >> 32), r.flags & 1);
}

/* --- Options --- */

struct meta_seen {
	const uint8_t *data;
	uint32_t len;
	uint32_t calls;
	uint64_t used; /* bytes of the queries, length words included */
	uint32_t sum;
};

/* FP6: the query lies within the option data; read every byte of it. */
static void meta_cb(const char *q, uint32_t qlen, void *opaque)
{
	struct meta_seen *m = opaque;
	const uint8_t *p = (const uint8_t *)q;
	uint32_t i;

	check(p >= m->data + 8 && p <= m->data + m->len);
	check(qlen <= (uint32_t)(m->data + m->len - p));
	for (i = 0; i < qlen; i++)
		m->sum += p[i];
	m->calls++;
	m->used += 4 + (uint64_t)qlen;
}

/* FP7: the option data, as a C string, through the string encoders. */
static void do_strings(const uint8_t *d, uint32_t len)
{
	char *s = malloc((size_t)len + 1);
	uint8_t *b;
	size_t n, slen, mlen;

	check(s);
	memcpy(s, d, len);
	s[len] = '\0';
	slen = strlen(s);

	b = malloc(PROTO_ERROR_CHUNK_MAX);
	check(b);
	n = proto_encode_error_chunk(b, 7, NBD_EINVAL, s);
	check(n >= 26 && n <= PROTO_ERROR_CHUNK_MAX);
	mlen = n - 26;
	check_chunk(b, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 7,
		    (uint32_t)(6 + mlen));
	check(proto_get_be32(b + 20) == NBD_EINVAL);
	check(proto_get_be16(b + 24) == mlen);
	check(mlen <= 4096 && mlen <= slen);
	check(memcmp(b + 26, s, mlen) == 0);
	if (slen <= 4096) {
		check(mlen == slen);
	} else if (mlen < 4093) {
		check(!"backed off more than a UTF-8 sequence");
	} else if (((unsigned char)s[mlen] & 0xc0) == 0x80) {
		/* Cut before a continuation byte: only when it gave up. */
		check(mlen == 4096);
		for (n = 4093; n <= 4096; n++)
			check(((unsigned char)s[n] & 0xc0) == 0x80);
	}
	free(b);

	/* The encoders' buffer contract: 4 + strlen(name) [+ desc]. */
	b = malloc(4 + 2 * slen + 1);
	check(b);
	check(proto_encode_meta_context(b, 1, s) == 4 + slen);
	check(proto_get_be32(b) == 1 && memcmp(b + 4, s, slen) == 0);
	check(proto_encode_rep_server(b, s, s) == 4 + 2 * slen);
	check(proto_get_be32(b) == slen);
	check(proto_encode_rep_server(b, s, NULL) == 4 + slen);
	free(b);
	free(s);
}

/*
 * FP4 for the handshake encoders, on values taken from the option: each
 * writes exactly what it returns, into a buffer of exactly that size.
 */
static void encode_handshake(uint32_t opt, uint32_t hlen, uint64_t v)
{
	uint8_t *b = malloc(134);
	size_t i;

	check(b);
	check(proto_encode_greeting(b, (uint16_t)opt) == 18);
	check(proto_get_be64(b) == NBD_MAGIC);
	check(proto_get_be64(b + 8) == NBD_IHAVEOPT);
	check(proto_get_be16(b + 16) == (uint16_t)opt);

	check(proto_encode_option_reply(b, opt, hlen, (uint32_t)v) == 20);
	check(proto_get_be64(b) == NBD_REP_MAGIC);
	check(proto_get_be32(b + 8) == opt && proto_get_be32(b + 12) == hlen);
	check(proto_get_be32(b + 16) == (uint32_t)v);

	check(proto_encode_info_export(b, v, (uint16_t)hlen) == 12);
	check(proto_get_be16(b) == NBD_INFO_EXPORT);
	check(proto_get_be64(b + 2) == v);
	check(proto_get_be16(b + 10) == (uint16_t)hlen);

	check(proto_encode_info_block_size(b, opt, hlen, (uint32_t)v) == 14);
	check(proto_get_be16(b) == NBD_INFO_BLOCK_SIZE);
	check(proto_get_be32(b + 2) == opt && proto_get_be32(b + 6) == hlen);
	check(proto_get_be32(b + 10) == (uint32_t)v);

	check(proto_encode_export_name_reply(b, v, (uint16_t)opt, true) == 10);
	check(proto_get_be64(b) == v && proto_get_be16(b + 8) == (uint16_t)opt);
	memset(b + 10, 0xa5, 124);
	check(proto_encode_export_name_reply(b, v, (uint16_t)opt, false) ==
	      134);
	check(proto_get_be64(b) == v && proto_get_be16(b + 8) == (uint16_t)opt);
	for (i = 10; i < 134; i++)
		check(b[i] == 0);
	free(b);
}

/* One option: header at h (16 bytes), then len bytes at d. */
static void do_option(const uint8_t *h, const uint8_t *d, uint32_t len)
{
	struct meta_seen m = {.data = d, .len = len};
	const char *name = NULL;
	uint32_t opt, hlen, namelen = 0, nq = 0;
	uint16_t n_info = 0, i;
	int ret;

	check(proto_decode_option(h, &opt, &hlen) == 0);
	check(proto_get_be32(h + 8) == opt && proto_get_be32(h + 12) == hlen);

	switch (opt) {
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		ret = proto_parse_info_opt(d, len, &name, &namelen, &n_info);
		check(ret == 0 || ret == -EINVAL);
		if (ret)
			break;
		/* FP5: name, count and every request inside the data. */
		check((const uint8_t *)name == d + 4);
		check((uint64_t)4 + namelen + 2 + 2 * (uint64_t)n_info == len);
		check(proto_get_be16(d + 4 + namelen) == n_info);
		for (i = 0; i < n_info; i++)
			check(proto_info_request(d, namelen, i) ==
			      proto_get_be16(d + 4 + namelen + 2 + 2 * i));
		break;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		ret = proto_parse_meta_opt(d, len, &name, &namelen, &nq,
					   meta_cb, &m);
		check(ret == 0 || ret == -EINVAL);
		if (ret) {
			check(m.calls == 0); /* FP6 */
			break;
		}
		check((const uint8_t *)name == d + 4);
		check(namelen <= len - 8);
		check(m.calls == nq);
		/* Exact: no byte left over after the last query. */
		check(8 + (uint64_t)namelen + m.used == len);
		break;
	default:
		break;
	}
	do_strings(d, len);
	encode_handshake(opt, hlen, len >= 8 ? proto_get_be64(d) : len);
}

/* --- The stream --- */

/* A copy of n bytes in a buffer of exactly n bytes (ASan bounds). */
static uint8_t *exact(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	check(c);
	memcpy(c, p, n);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;

	while (pos < size) {
		size_t left = size - pos;
		uint8_t *h, *d;

		if (left >= PROTO_REQUEST_SIZE &&
		    proto_get_be32(data + pos) == NBD_REQUEST_MAGIC) {
			struct nbd_request r;
			size_t skip;

			h = exact(data + pos, PROTO_REQUEST_SIZE);
			do_request(h);
			check(proto_decode_request(h, &r) == 0);
			free(h);
			pos += PROTO_REQUEST_SIZE;
			if (proto_has_payload(&r)) {
				skip = r.length < size - pos ? r.length
							     : size - pos;
				pos += skip;
			}
		} else if (left >= sizeof(struct nbd_option) &&
			   proto_get_be64(data + pos) == NBD_IHAVEOPT) {
			uint32_t len = proto_get_be32(data + pos + 12);

			h = exact(data + pos, sizeof(struct nbd_option));
			pos += sizeof(struct nbd_option);
			if (len > size - pos)
				len = (uint32_t)(size - pos);
			d = exact(data + pos, len);
			pos += len;
			do_option(h, d, len);
			free(d);
			free(h);
		} else {
			uint32_t opt, len;
			struct nbd_request r;

			/* Out of sync: both decoders must refuse it. */
			if (left >= PROTO_REQUEST_SIZE) {
				h = exact(data + pos, PROTO_REQUEST_SIZE);
				check(proto_decode_request(h, &r) == -EBADMSG);
				free(h);
			}
			if (left >= sizeof(struct nbd_option)) {
				h = exact(data + pos,
					  sizeof(struct nbd_option));
				check(proto_decode_option(h, &opt, &len) ==
				      -EBADMSG);
				free(h);
			}
			break;
		}
	}
	return 0;
}
