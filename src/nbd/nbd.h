/* SPDX-License-Identifier: MIT */
/*
 * nbd.h: NBD wire protocol constants and structures.
 *
 * Values are from the NBD protocol document (NetworkBlockDevice/nbd,
 * doc/proto.md).  All multi-byte fields on the wire are big-endian;
 * byte order is converted only in proto.c.
 */
#ifndef LOOPD_NBD_H
#define LOOPD_NBD_H

#include <stdint.h>

/* Handshake magics. */
#define NBD_MAGIC 0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_IHAVEOPT 0x49484156454F5054ULL /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x0003e889045565a9ULL /* option reply magic */

/* Handshake flags (server -> client, 16 bits). */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)

/* Client flags (client -> server, 32 bits). */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)

/* Options. */
#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT 2
#define NBD_OPT_LIST 3
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_INFO 6
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10
#define NBD_OPT_EXTENDED_HEADERS 11

/* Option reply types. */
#define NBD_REP_ACK 1
#define NBD_REP_SERVER 2
#define NBD_REP_INFO 3
#define NBD_REP_META_CONTEXT 4
/* The longest string (export name, query) the spec allows: a MUST. */
#define NBD_MAX_STRING 4096

#define NBD_REP_ERR(x) ((1u << 31) | (x))
#define NBD_REP_ERR_UNSUP NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG NBD_REP_ERR(9)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT 0
#define NBD_INFO_NAME 1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE 3

/* Transmission flags (16 bits). */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_RESIZE (1u << 9)
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)

/* Request and reply magics. */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* Commands. */
#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_DISC 2
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_CMD_CACHE 5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7

/* Command flags. */
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* Structured reply chunk flags and types. */
#define NBD_REPLY_FLAG_DONE (1u << 0)
#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR ((1u << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1u << 15) + 2)

/* base:allocation flags. */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* qemu:dirty-bitmap:NAME flags (qemu's docs/interop/nbd.txt). */
#define NBD_STATE_DIRTY (1u << 0)

/* NBD error codes (the only values that may go on the wire). */
#define NBD_EPERM 1
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP 95
#define NBD_ESHUTDOWN 108

/* Wire structures, all big-endian, packed. */
struct nbd_new_handshake {
	uint64_t nbdmagic; /* NBD_MAGIC */
	uint64_t version; /* NBD_IHAVEOPT */
	uint16_t gflags; /* handshake flags */
} __attribute__((packed));

struct nbd_option {
	uint64_t version; /* NBD_IHAVEOPT */
	uint32_t option; /* NBD_OPT_* */
	uint32_t optlen; /* length of option data that follows */
} __attribute__((packed));

struct nbd_fixed_new_option_reply {
	uint64_t magic; /* NBD_REP_MAGIC */
	uint32_t option; /* option being replied to */
	uint32_t reply; /* NBD_REP_* */
	uint32_t replylen; /* length of reply data that follows */
} __attribute__((packed));

/* Reply to NBD_OPT_EXPORT_NAME (124 zero bytes follow unless NO_ZEROES). */
struct nbd_export_name_reply {
	uint64_t exportsize;
	uint16_t eflags;
} __attribute__((packed));

struct nbd_request_wire {
	uint32_t magic; /* NBD_REQUEST_MAGIC */
	uint16_t flags; /* NBD_CMD_FLAG_* */
	uint16_t type; /* NBD_CMD_* */
	uint64_t cookie; /* opaque, echoed in the reply */
	uint64_t offset;
	uint32_t count;
} __attribute__((packed));

struct nbd_simple_reply_wire {
	uint32_t magic; /* NBD_SIMPLE_REPLY_MAGIC */
	uint32_t error; /* NBD_E* */
	uint64_t cookie;
} __attribute__((packed));

struct nbd_structured_reply_wire {
	uint32_t magic; /* NBD_STRUCTURED_REPLY_MAGIC */
	uint16_t flags; /* NBD_REPLY_FLAG_* */
	uint16_t type; /* NBD_REPLY_TYPE_* */
	uint64_t cookie;
	uint32_t length; /* length of payload that follows */
} __attribute__((packed));

_Static_assert(sizeof(struct nbd_request_wire) == 28, "request size");
_Static_assert(sizeof(struct nbd_simple_reply_wire) == 16, "simple size");
_Static_assert(sizeof(struct nbd_structured_reply_wire) == 20, "chunk size");
_Static_assert(sizeof(struct nbd_option) == 16, "option size");
_Static_assert(sizeof(struct nbd_fixed_new_option_reply) == 20, "optrep");

#endif /* LOOPD_NBD_H */
