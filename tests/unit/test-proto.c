/* SPDX-License-Identifier: MIT */
/*
 * test-proto.c: unit tests of the pure NBD codec (src/nbd/proto.c).
 *
 * Rules proved here: NBD checklist 1.2 (option data layout, INFO/GO and
 * META_CONTEXT parsing, NBD_REP_SERVER), 1.4 (request/reply framing),
 * 1.5 (which flags each command takes), 1.6 (size constraints, out of
 * range), 1.7 (error values) and every row of table 1.10, plus the
 * validation order a-j of proto_validate_request(); P1 (a BLOCK_STATUS
 * chunk per context, DONE on the last) and P2 (rounding, for
 * base:allocation and for dirty bitmaps).
 *
 * Validation cases are one table row each, and each row is registered as
 * its own cmocka test named after the case, so a failure names the rule.
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "nbd/proto.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MiB (1024u * 1024u)

/* Filler that no encoder writes, to catch writes past the returned size. */
#define CANARY 0xa5

/* --- Views: what a connection negotiated --- */

#define TF_ALL                                                                 \
	(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |        \
	 NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_DF |  \
	 NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_FAST_ZERO |                       \
	 NBD_FLAG_CAN_MULTI_CONN)

/* Everything advertised and negotiated. */
static const struct proto_view v_full = {
	.size = MiB,
	.tflags = TF_ALL,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

/* Baseline: nothing but HAS_FLAGS, simple replies only. */
static const struct proto_view v_bare = {
	.size = MiB,
	.tflags = NBD_FLAG_HAS_FLAGS,
	.min_block = 1,
	.max_payload = 32 * MiB,
};

/* Read-only export: TRIM and WRITE_ZEROES are not advertised. */
static const struct proto_view v_ro = {
	.size = MiB,
	.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY |
		  NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_DF |
		  NBD_FLAG_SEND_CACHE,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

/* SEND_DF advertised (wrongly) without structured replies. */
static const struct proto_view v_df_nosr = {
	.size = MiB,
	.tflags = TF_ALL,
	.min_block = 1,
	.max_payload = 32 * MiB,
};

/* Structured replies, but SEND_DF not advertised. */
static const struct proto_view v_sr_nodf = {
	.size = MiB,
	.tflags = TF_ALL & ~NBD_FLAG_SEND_DF,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

/* Structured replies but no meta context selected. */
static const struct proto_view v_sr_nometa = {
	.size = MiB,
	.tflags = TF_ALL,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
};

/* Only a dirty bitmap selected (qemu:dirty-bitmap:NAME): enough. */
static const struct proto_view v_dirty = {
	.size = MiB,
	.tflags = TF_ALL,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_dirty = true,
};

/* A dirty bitmap recorded without structured replies: not enough. */
static const struct proto_view v_dirty_nosr = {
	.size = MiB,
	.tflags = TF_ALL & ~NBD_FLAG_SEND_DF,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.meta_dirty = true,
};

/* Both contexts. */
static const struct proto_view v_both = {
	.size = MiB,
	.tflags = TF_ALL,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
	.meta_dirty = true,
};

/* A context recorded without structured replies: must not be enough. */
static const struct proto_view v_meta_nosr = {
	.size = MiB,
	.tflags = TF_ALL & ~NBD_FLAG_SEND_DF,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.meta_alloc = true,
};

/* Everything but FAST_ZERO, CACHE and FUA respectively. */
static const struct proto_view v_nofz = {
	.size = MiB,
	.tflags = TF_ALL & ~NBD_FLAG_SEND_FAST_ZERO,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

static const struct proto_view v_nocache = {
	.size = MiB,
	.tflags = TF_ALL & ~NBD_FLAG_SEND_CACHE,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

static const struct proto_view v_nofua = {
	.size = MiB,
	.tflags = TF_ALL & ~NBD_FLAG_SEND_FUA,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

/* 64 MiB payload limit on a 1 GiB export. */
static const struct proto_view v_64m = {
	.size = 1024ull * MiB,
	.tflags = TF_ALL,
	.min_block = 1,
	.max_payload = 64 * MiB,
	.structured = true,
	.meta_alloc = true,
};

/* An export as large as a u64 allows: only the overflow check can fire. */
static const struct proto_view v_huge = {
	.size = UINT64_MAX,
	.tflags = TF_ALL,
	.min_block = 1,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

/* 512-byte minimum block: unaligned requests must still be accepted. */
static const struct proto_view v_512 = {
	.size = MiB,
	.tflags = TF_ALL,
	.min_block = 512,
	.max_payload = 32 * MiB,
	.structured = true,
	.meta_alloc = true,
};

/* --- Validation table --- */

struct vcase {
	const char *name;
	const struct proto_view *view;
	uint16_t type;
	uint16_t flags;
	uint64_t offset;
	uint32_t length;
	int want;
};

#define FUA NBD_CMD_FLAG_FUA
#define NO_HOLE NBD_CMD_FLAG_NO_HOLE
#define DF NBD_CMD_FLAG_DF
#define REQ_ONE NBD_CMD_FLAG_REQ_ONE
#define FAST_ZERO NBD_CMD_FLAG_FAST_ZERO
#define READ NBD_CMD_READ
#define WRITE NBD_CMD_WRITE
#define DISC NBD_CMD_DISC
#define FLUSH NBD_CMD_FLUSH
#define TRIM NBD_CMD_TRIM
#define CACHE NBD_CMD_CACHE
#define WZ NBD_CMD_WRITE_ZEROES
#define BS NBD_CMD_BLOCK_STATUS

/* clang-format off */
static const struct vcase vcases[] = {
	/* j: plain valid requests, one per command. */
	{ "valid_read", &v_full, READ, 0, 0, 4096, 0 },
	{ "valid_write", &v_full, WRITE, 0, 4096, 4096, 0 },
	{ "valid_disc", &v_full, DISC, 0, 0, 0, 0 },
	{ "valid_disc_bare", &v_bare, DISC, 0, 0, 0, 0 },
	{ "valid_flush", &v_full, FLUSH, 0, 0, 0, 0 },
	{ "valid_trim", &v_full, TRIM, 0, 0, 4096, 0 },
	{ "valid_cache", &v_full, CACHE, 0, 0, 4096, 0 },
	{ "valid_write_zeroes", &v_full, WZ, 0, 0, 4096, 0 },
	{ "valid_block_status", &v_full, BS, 0, 0, 4096, 0 },
	{ "valid_read_bare", &v_bare, READ, 0, 0, 4096, 0 },
	{ "valid_write_bare", &v_bare, WRITE, 0, 0, 4096, 0 },
	{ "valid_read_whole_export", &v_full, READ, 0, 0, MiB, 0 },
	{ "valid_read_last_byte", &v_full, READ, 0, MiB - 1, 1, 0 },
	{ "valid_write_last_byte", &v_full, WRITE, 0, MiB - 1, 1, 0 },
	{ "valid_read_df", &v_full, READ, DF, 0, 65536, 0 },
	{ "valid_read_fua_df", &v_full, READ, FUA | DF, 0, 512, 0 },
	{ "valid_wz_no_hole", &v_full, WZ, NO_HOLE, 0, 4096, 0 },
	{ "valid_wz_fast_zero", &v_full, WZ, FAST_ZERO, 0, 4096, 0 },
	{ "valid_wz_all_flags", &v_full, WZ, FUA | NO_HOLE | FAST_ZERO,
	  0, 4096, 0 },
	{ "valid_bs_req_one", &v_full, BS, REQ_ONE, 0, 4096, 0 },
	{ "valid_bs_fua_req_one", &v_full, BS, FUA | REQ_ONE, 0, 4096, 0 },
	{ "valid_bs_dirty_only", &v_dirty, BS, 0, 0, 4096, 0 },
	{ "valid_bs_dirty_req_one", &v_dirty, BS, REQ_ONE, 0, 4096, 0 },
	{ "valid_bs_both_contexts", &v_both, BS, 0, 0, 4096, 0 },
	/* max_payload bounds payloads only, not effect lengths (1.6). */
	{ "valid_trim_longer_than_max_payload", &v_huge, TRIM, 0, 0,
	  64 * MiB, 0 },
	{ "valid_wz_longer_than_max_payload", &v_huge, WZ, 0, 0, UINT32_MAX,
	  0 },
	{ "valid_cache_longer_than_max_payload", &v_huge, CACHE, 0, 0,
	  64 * MiB, 0 },
	{ "valid_bs_longer_than_max_payload", &v_huge, BS, 0, 0, UINT32_MAX,
	  0 },
	{ "valid_read_ro", &v_ro, READ, 0, 0, 4096, 0 },
	{ "valid_flush_ro", &v_ro, FLUSH, 0, 0, 0, 0 },
	{ "valid_cache_ro", &v_ro, CACHE, 0, 0, 4096, 0 },
	{ "valid_block_status_ro", &v_ro, BS, 0, 0, 4096, 0 },
	{ "valid_read_fua_ro", &v_ro, READ, FUA, 0, 4096, 0 },
	/* CACHE without SEND_CACHE: clients send it, flags must be 0. */
	{ "valid_cache_without_send_cache", &v_bare, CACHE, 0, 0, 4096, 0 },
	{ "valid_cache_without_send_cache_sr", &v_nocache, CACHE, 0, 0,
	  4096, 0 },

	/* FUA is accepted on every command (but DISC) with SEND_FUA. */
	{ "fua_read", &v_full, READ, FUA, 0, 4096, 0 },
	{ "fua_write", &v_full, WRITE, FUA, 0, 4096, 0 },
	{ "fua_flush", &v_full, FLUSH, FUA, 0, 0, 0 },
	{ "fua_trim", &v_full, TRIM, FUA, 0, 4096, 0 },
	{ "fua_cache", &v_full, CACHE, FUA, 0, 4096, 0 },
	{ "fua_write_zeroes", &v_full, WZ, FUA, 0, 4096, 0 },
	{ "fua_block_status", &v_full, BS, FUA, 0, 4096, 0 },

	/* Zero-length requests are valid (1.5: SHOULD NOT disconnect). */
	{ "zero_len_read", &v_full, READ, 0, 0, 0, 0 },
	{ "zero_len_write", &v_full, WRITE, 0, 0, 0, 0 },
	{ "zero_len_trim", &v_full, TRIM, 0, 0, 0, 0 },
	{ "zero_len_write_zeroes", &v_full, WZ, 0, 0, 0, 0 },
	{ "zero_len_cache", &v_full, CACHE, 0, 0, 0, 0 },
	{ "zero_len_read_at_size", &v_full, READ, 0, MiB, 0, 0 },
	{ "zero_len_write_at_size", &v_full, WRITE, 0, MiB, 0, 0 },
	{ "zero_len_read_bare", &v_bare, READ, 0, 4096, 0, 0 },

	/* Unaligned requests are served through a bounce buffer. */
	{ "unaligned_read", &v_512, READ, 0, 1, 511, 0 },
	{ "unaligned_write", &v_512, WRITE, 0, 513, 1000, 0 },
	{ "unaligned_trim", &v_512, TRIM, 0, 7, 9, 0 },
	{ "unaligned_write_zeroes", &v_512, WZ, 0, 100, 3, 0 },
	{ "unaligned_block_status", &v_512, BS, 0, 1, 1, 0 },

	/* 1.10 / a: unknown command. */
	{ "unknown_cmd_8", &v_full, 8, 0, 0, 0, -EINVAL },
	{ "unknown_cmd_9_with_len", &v_full, 9, 0, 0, 4096, -EINVAL },
	{ "unknown_cmd_0xffff", &v_full, 0xffff, 0, 0, 0, -EINVAL },
	{ "unknown_cmd_ro", &v_ro, 8, 0, 0, 0, -EINVAL },

	/* 1.10 / b: unknown flag. */
	{ "unknown_flag_bit5_read", &v_full, READ, 1u << 5, 0, 4096,
	  -EINVAL },
	{ "unknown_flag_bit15_write", &v_full, WRITE, 1u << 15, 0, 4096,
	  -EINVAL },
	{ "unknown_flag_all_bits_wz", &v_full, WZ, 0xffff, 0, 4096,
	  -EINVAL },

	/* 1.10 / b: flag not applicable to the command. */
	{ "inapplicable_read_no_hole", &v_full, READ, NO_HOLE, 0, 4096,
	  -EINVAL },
	{ "inapplicable_read_req_one", &v_full, READ, REQ_ONE, 0, 4096,
	  -EINVAL },
	{ "inapplicable_read_fast_zero", &v_full, READ, FAST_ZERO, 0, 4096,
	  -EINVAL },
	{ "inapplicable_write_df", &v_full, WRITE, DF, 0, 4096, -EINVAL },
	{ "inapplicable_write_no_hole", &v_full, WRITE, NO_HOLE, 0, 4096,
	  -EINVAL },
	{ "inapplicable_write_fast_zero", &v_full, WRITE, FAST_ZERO, 0, 4096,
	  -EINVAL },
	{ "inapplicable_write_req_one", &v_full, WRITE, REQ_ONE, 0, 4096,
	  -EINVAL },
	{ "inapplicable_flush_no_hole", &v_full, FLUSH, NO_HOLE, 0, 0,
	  -EINVAL },
	{ "inapplicable_flush_df", &v_full, FLUSH, DF, 0, 0, -EINVAL },
	{ "inapplicable_trim_no_hole", &v_full, TRIM, NO_HOLE, 0, 4096,
	  -EINVAL },
	{ "inapplicable_trim_fast_zero", &v_full, TRIM, FAST_ZERO, 0, 4096,
	  -EINVAL },
	{ "inapplicable_cache_df", &v_full, CACHE, DF, 0, 4096, -EINVAL },
	{ "inapplicable_cache_req_one", &v_full, CACHE, REQ_ONE, 0, 4096,
	  -EINVAL },
	{ "inapplicable_wz_df", &v_full, WZ, DF, 0, 4096, -EINVAL },
	{ "inapplicable_wz_req_one", &v_full, WZ, REQ_ONE, 0, 4096, -EINVAL },
	{ "inapplicable_bs_df", &v_full, BS, DF, 0, 4096, -EINVAL },
	{ "inapplicable_bs_no_hole", &v_full, BS, NO_HOLE, 0, 4096, -EINVAL },
	{ "inapplicable_bs_fast_zero", &v_full, BS, FAST_ZERO, 0, 4096,
	  -EINVAL },
	{ "disc_fua_accepted", &v_full, DISC, FUA, 0, 0, 0 },
	{ "inapplicable_disc_no_hole", &v_full, DISC, NO_HOLE, 0, 0,
	  -EINVAL },

	/* 1.10 / b: flag used without negotiation. */
	{ "fua_without_send_fua_read", &v_nofua, READ, FUA, 0, 4096,
	  -EINVAL },
	{ "fua_without_send_fua_write", &v_nofua, WRITE, FUA, 0, 4096,
	  -EINVAL },
	{ "fua_without_send_fua_flush", &v_nofua, FLUSH, FUA, 0, 0, -EINVAL },
	{ "fua_without_send_fua_bare", &v_bare, WRITE, FUA, 0, 4096,
	  -EINVAL },
	{ "df_without_structured", &v_df_nosr, READ, DF, 0, 4096, -EINVAL },
	{ "df_without_structured_bare", &v_bare, READ, DF, 0, 4096,
	  -EINVAL },
	{ "df_without_send_df", &v_sr_nodf, READ, DF, 0, 4096, -EINVAL },
	{ "fast_zero_without_send_fast_zero", &v_nofz, WZ, FAST_ZERO, 0, 4096,
	  -EINVAL },
	{ "cache_without_send_cache_fua", &v_nocache, CACHE, FUA, 0, 4096,
	  -EINVAL },

	/* c: read-only export. */
	{ "ro_write", &v_ro, WRITE, 0, 0, 4096, -EPERM },
	{ "ro_write_fua", &v_ro, WRITE, FUA, 0, 4096, -EPERM },
	{ "ro_write_zero_len", &v_ro, WRITE, 0, 0, 0, -EPERM },
	{ "ro_trim_not_advertised_is_eperm", &v_ro, TRIM, 0, 0, 4096,
	  -EPERM },
	{ "ro_wz_not_advertised_is_eperm", &v_ro, WZ, 0, 0, 4096, -EPERM },
	/* Order: b before c (EINVAL wins over EPERM). */
	{ "order_b_before_c_ro_write_df", &v_ro, WRITE, DF, 0, 4096,
	  -EINVAL },
	{ "order_b_before_c_ro_wz_fast_zero", &v_ro, WZ, FAST_ZERO, 0, 4096,
	  -EINVAL },
	/* Order: c before g, h and i (EPERM wins over EINVAL/ENOSPC). */
	{ "order_c_before_g_ro_write_too_big", &v_ro, WRITE, 0, 0,
	  32 * MiB + 1, -EPERM },
	{ "order_c_before_h_ro_write_overflow", &v_ro, WRITE, 0, UINT64_MAX,
	  1, -EPERM },
	{ "order_c_before_i_ro_write_beyond", &v_ro, WRITE, 0, MiB, 1,
	  -EPERM },

	/* d: command not advertised. */
	{ "trim_not_advertised", &v_bare, TRIM, 0, 0, 4096, -EINVAL },
	{ "wz_not_advertised", &v_bare, WZ, 0, 0, 4096, -EINVAL },
	{ "flush_not_advertised", &v_bare, FLUSH, 0, 0, 0, -EINVAL },
	/* Order: d before i (EINVAL, not ENOSPC, for a WZ past the end). */
	{ "order_d_before_i_wz_beyond", &v_bare, WZ, 0, MiB, 4096, -EINVAL },

	/* 1.10 / e: FLUSH and DISC with offset/length != 0. */
	{ "flush_offset_nonzero", &v_full, FLUSH, 0, 512, 0, -EINVAL },
	{ "flush_length_nonzero", &v_full, FLUSH, 0, 0, 512, -EINVAL },
	{ "flush_fua_length_nonzero", &v_full, FLUSH, FUA, 0, 1, -EINVAL },
	{ "disc_offset_nonzero", &v_full, DISC, 0, 1, 0, -EINVAL },
	{ "disc_length_nonzero", &v_full, DISC, 0, 0, 1, -EINVAL },

	/* 1.10 / f: BLOCK_STATUS without structured replies or context. */
	{ "bs_without_structured", &v_bare, BS, 0, 0, 4096, -EINVAL },
	{ "bs_without_meta_context", &v_sr_nometa, BS, 0, 0, 4096, -EINVAL },
	{ "bs_meta_without_structured", &v_meta_nosr, BS, 0, 0, 4096,
	  -EINVAL },
	{ "bs_dirty_without_structured", &v_dirty_nosr, BS, 0, 0, 4096,
	  -EINVAL },
	{ "bs_dirty_zero_length", &v_dirty, BS, 0, 0, 0, -EINVAL },
	{ "beyond_bs_dirty", &v_dirty, BS, 0, MiB - 1, 2, -EINVAL },
	{ "bs_zero_length", &v_full, BS, 0, 0, 0, -EINVAL },

	/* 1.10 / g: READ/WRITE longer than max_payload. */
	{ "read_at_max_payload", &v_huge, READ, 0, 0, 32 * MiB, 0 },
	{ "write_at_max_payload", &v_huge, WRITE, 0, 0, 32 * MiB, 0 },
	{ "read_over_max_payload", &v_huge, READ, 0, 0, 32 * MiB + 1,
	  -EINVAL },
	{ "write_over_max_payload", &v_huge, WRITE, 0, 0, 32 * MiB + 1,
	  -EINVAL },
	{ "write_64m_at_64m_max", &v_64m, WRITE, 0, 0, 64 * MiB, 0 },
	{ "read_64m_at_64m_max", &v_64m, READ, 0, 0, 64 * MiB, 0 },
	{ "write_64m_plus_1_at_64m_max", &v_64m, WRITE, 0, 0, 64 * MiB + 1,
	  -EINVAL },
	{ "read_64m_plus_1_at_64m_max", &v_64m, READ, 0, 0, 64 * MiB + 1,
	  -EINVAL },
	{ "write_u32_max_length", &v_huge, WRITE, 0, 0, UINT32_MAX, -EINVAL },
	/* Order: g before i (oversized WRITE past the end is EINVAL). */
	{ "order_g_before_i_write_too_big_beyond", &v_full, WRITE, 0, MiB,
	  32 * MiB + 1, -EINVAL },

	/* h: offset + length overflows u64. */
	{ "overflow_read", &v_huge, READ, 0, UINT64_MAX - 1, 2, -EINVAL },
	{ "overflow_write", &v_huge, WRITE, 0, UINT64_MAX, 1, -EINVAL },
	{ "overflow_trim", &v_huge, TRIM, 0, UINT64_MAX - 10, 4096,
	  -EINVAL },
	{ "overflow_cache", &v_huge, CACHE, 0, UINT64_MAX, 1, -EINVAL },
	{ "overflow_wz", &v_huge, WZ, 0, UINT64_MAX, UINT32_MAX, -EINVAL },
	{ "overflow_bs", &v_huge, BS, 0, UINT64_MAX, 1, -EINVAL },
	{ "no_overflow_read_to_u64_max", &v_huge, READ, 0, UINT64_MAX - 1, 1,
	  0 },
	/* Order: h before i (EINVAL, not ENOSPC, on a small export). */
	{ "order_h_before_i_write_overflow", &v_full, WRITE, 0, UINT64_MAX,
	  1, -EINVAL },
	{ "order_h_before_i_wz_overflow", &v_full, WZ, 0, UINT64_MAX - 1,
	  4096, -EINVAL },

	/* 1.10 / i: beyond the end of the export. */
	{ "beyond_read", &v_full, READ, 0, MiB - 1, 2, -EINVAL },
	{ "beyond_read_offset", &v_full, READ, 0, MiB, 1, -EINVAL },
	{ "beyond_write", &v_full, WRITE, 0, MiB - 1, 2, -ENOSPC },
	{ "beyond_write_fua", &v_full, WRITE, FUA, MiB, 4096, -ENOSPC },
	{ "beyond_write_zeroes", &v_full, WZ, 0, MiB - 512, 1024, -ENOSPC },
	{ "beyond_trim", &v_full, TRIM, 0, MiB, 1, -EINVAL },
	{ "beyond_cache", &v_full, CACHE, 0, MiB, 1, -EINVAL },
	{ "beyond_block_status", &v_full, BS, 0, MiB - 1, 2, -EINVAL },
	{ "beyond_zero_len_read_past_size", &v_full, READ, 0, MiB + 1, 0,
	  -EINVAL },
	{ "beyond_zero_len_write_past_size", &v_full, WRITE, 0, MiB + 1, 0,
	  -ENOSPC },
	{ "beyond_zero_len_trim_past_size", &v_full, TRIM, 0, MiB + 1, 0,
	  -EINVAL },
};
/* clang-format on */

static void test_validate_case(void **state)
{
	const struct vcase *c = *state;
	const struct nbd_request req = {
		.flags = c->flags,
		.type = c->type,
		.cookie = 0x0123456789abcdefULL,
		.offset = c->offset,
		.length = c->length,
	};
	int ret = proto_validate_request(&req, c->view);

	if (ret != c->want)
		print_error(
			"%s: %s flags=%#x off=%llu len=%u: got %d want %d\n",
			c->name, proto_cmd_name(c->type), c->flags,
			(unsigned long long)c->offset, c->length, ret, c->want);
	assert_int_equal(ret, c->want);
}

/* --- Request decoding --- */

/* WRITE|FUA, cookie 0x0102..08, offset 0x1122..88, length 0x00010000. */
static const uint8_t req_bytes[PROTO_REQUEST_SIZE] = {
	0x25, 0x60, 0x95, 0x13, 0x00, 0x01, 0x00, 0x01, 0x01, 0x02,
	0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x11, 0x22, 0x33, 0x44,
	0x55, 0x66, 0x77, 0x88, 0x00, 0x01, 0x00, 0x00,
};

static void test_decode_request(void **state)
{
	struct nbd_request req;

	memset(&req, 0xff, sizeof(req));
	assert_int_equal(proto_decode_request(req_bytes, &req), 0);
	assert_int_equal(req.flags, NBD_CMD_FLAG_FUA);
	assert_int_equal(req.type, NBD_CMD_WRITE);
	assert_true(req.cookie == 0x0102030405060708ULL);
	assert_true(req.offset == 0x1122334455667788ULL);
	assert_int_equal(req.length, 0x10000);
	assert_true(proto_has_payload(&req));
}

static void test_decode_request_high_bits(void **state)
{
	uint8_t b[PROTO_REQUEST_SIZE];
	struct nbd_request req;

	/* All-ones fields must not sign-extend or truncate. */
	memset(b, 0xff, sizeof(b));
	proto_put_be32(b, NBD_REQUEST_MAGIC);
	assert_int_equal(proto_decode_request(b, &req), 0);
	assert_int_equal(req.flags, 0xffff);
	assert_int_equal(req.type, 0xffff);
	assert_true(req.cookie == UINT64_MAX);
	assert_true(req.offset == UINT64_MAX);
	assert_true(req.length == UINT32_MAX);
}

static void test_decode_request_bad_magic(void **state)
{
	uint8_t b[PROTO_REQUEST_SIZE];
	struct nbd_request req;
	size_t i;

	/* Any corrupted magic byte, and the simple-reply magic. */
	for (i = 0; i < 4; i++) {
		memcpy(b, req_bytes, sizeof(b));
		b[i] ^= 0x01;
		assert_int_equal(proto_decode_request(b, &req), -EBADMSG);
	}
	memcpy(b, req_bytes, sizeof(b));
	proto_put_be32(b, NBD_SIMPLE_REPLY_MAGIC);
	assert_int_equal(proto_decode_request(b, &req), -EBADMSG);
	memset(b, 0, sizeof(b));
	assert_int_equal(proto_decode_request(b, &req), -EBADMSG);
}

/* 1.10 "rejected WRITE": its payload must still be read off the socket. */
static void test_has_payload(void **state)
{
	struct nbd_request req = {.type = NBD_CMD_WRITE, .length = 4096};
	uint16_t t;

	assert_true(proto_has_payload(&req));
	/* Rejected (read-only) but the payload is still there. */
	assert_int_equal(proto_validate_request(&req, &v_ro), -EPERM);
	assert_true(proto_has_payload(&req));
	/* Rejected (too long) but the payload is still there. */
	req.length = 32 * MiB + 1;
	assert_int_equal(proto_validate_request(&req, &v_full), -EINVAL);
	assert_true(proto_has_payload(&req));

	for (t = 0; t < 16; t++) {
		req.type = t;
		assert_int_equal(proto_has_payload(&req), t == NBD_CMD_WRITE);
	}
}

static void test_cmd_name(void **state)
{
	assert_string_equal(proto_cmd_name(NBD_CMD_READ), "READ");
	assert_string_equal(proto_cmd_name(NBD_CMD_WRITE), "WRITE");
	assert_string_equal(proto_cmd_name(NBD_CMD_DISC), "DISC");
	assert_string_equal(proto_cmd_name(NBD_CMD_FLUSH), "FLUSH");
	assert_string_equal(proto_cmd_name(NBD_CMD_TRIM), "TRIM");
	assert_string_equal(proto_cmd_name(NBD_CMD_CACHE), "CACHE");
	assert_string_equal(proto_cmd_name(NBD_CMD_WRITE_ZEROES),
			    "WRITE_ZEROES");
	assert_string_equal(proto_cmd_name(NBD_CMD_BLOCK_STATUS),
			    "BLOCK_STATUS");
	assert_string_equal(proto_cmd_name(8), "UNKNOWN");
	assert_string_equal(proto_cmd_name(0xffff), "UNKNOWN");
}

/* --- Error mapping (1.7) --- */

struct ecase {
	int err;
	bool fast_zero;
	uint32_t want;
};

static const struct ecase ecases[] = {
	{0, false, 0},
	{0, true, 0},
	{EPERM, false, NBD_EPERM},
	{EROFS, false, NBD_EPERM},
	{EIO, false, NBD_EIO},
	{EIO, true, NBD_EIO},
	{ENOMEM, false, NBD_ENOMEM},
	{EINVAL, false, NBD_EINVAL},
	{EINVAL, true, NBD_EINVAL},
	{EFAULT, false, NBD_EINVAL},
	{EBADMSG, false, NBD_EINVAL},
	{ENOSPC, false, NBD_ENOSPC},
	{EDQUOT, false, NBD_ENOSPC},
	{EFBIG, false, NBD_ENOSPC},
	{EOVERFLOW, false, NBD_EOVERFLOW},
	{ENOTSUP, true, NBD_ENOTSUP},
	{ENOTSUP, false, NBD_EINVAL},
	{EOPNOTSUPP, true, NBD_ENOTSUP},
	{EOPNOTSUPP, false, NBD_EINVAL},
	{ESHUTDOWN, false, NBD_ESHUTDOWN},
	/* Anything else is EIO: raw errnos never reach the wire. */
	{EBADF, false, NBD_EIO},
	{ENOENT, false, NBD_EIO},
	{EAGAIN, false, NBD_EIO},
	{ETIMEDOUT, true, NBD_EIO},
	{EXDEV, false, NBD_EIO},
	{9999, false, NBD_EIO},
	{INT_MAX, false, NBD_EIO},
};

static void test_nbd_error(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ecases); i++) {
		const struct ecase *e = &ecases[i];
		uint32_t pos = proto_nbd_error(e->err, e->fast_zero);
		uint32_t neg = proto_nbd_error(-e->err, e->fast_zero);

		if (pos != e->want || neg != e->want)
			print_error(
				"errno %d fast_zero=%d: got %u/%u want %u\n",
				e->err, e->fast_zero, pos, neg, e->want);
		assert_int_equal(pos, e->want);
		assert_int_equal(neg, e->want);
	}
	assert_int_equal(proto_nbd_error(INT_MIN, false), NBD_EIO);
	assert_int_equal(proto_nbd_error(INT_MIN, true), NBD_EIO);
}

/* --- Encoders: exact bytes against hand-built big-endian arrays --- */

/*
 * Fill buf with CANARY, run the encoder, then check the returned size,
 * the bytes, and that nothing past the returned size was touched.
 */
static void check_bytes(const uint8_t *buf, size_t bufsize, size_t got,
			const uint8_t *want, size_t wantlen)
{
	size_t i;

	assert_int_equal(got, wantlen);
	assert_memory_equal(buf, want, wantlen);
	for (i = wantlen; i < bufsize; i++)
		assert_int_equal(buf[i], CANARY);
}

static void test_encode_simple_reply(void **state)
{
	static const uint8_t want[] = {
		0x67, 0x44, 0x66, 0x98, 0x00, 0x00, 0x00, 0x1c,
		0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04,
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_simple_reply(buf, 0xdeadbeef01020304ULL,
					      NBD_ENOSPC),
		    want, sizeof(want));
}

static void test_encode_chunk(void **state)
{
	static const uint8_t want[] = {
		0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, 0x00, 0x00, 0xff, 0xee,
		0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x00, 0x00, 0x00, 0x00,
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_chunk(buf, NBD_REPLY_FLAG_DONE,
				       NBD_REPLY_TYPE_NONE,
				       0xffeeddccbbaa9988ULL, 0),
		    want, sizeof(want));
}

static void test_encode_offset_data(void **state)
{
	/* Chunk length = 8 (offset) + data_len. */
	static const uint8_t want[] = {
		0x66, 0x8e, 0x33, 0xef, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x01, 0x00, 0x08,
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x10, 0x00,
	};
	uint8_t buf[40];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(
		buf, sizeof(buf),
		proto_encode_offset_data(buf, 0, 42, 0x100001000ULL, 0x10000),
		want, sizeof(want));
}

static void test_encode_offset_hole(void **state)
{
	static const uint8_t want[] = {
		0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, 0x00, 0x02,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
		0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x02, 0x00, 0x00, 0x20, 0x00, 0x00,
	};
	uint8_t buf[40];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_offset_hole(buf, NBD_REPLY_FLAG_DONE, 7, 512,
					     0x200000),
		    want, sizeof(want));
}

static void test_encode_error_chunk(void **state)
{
	/* DONE, type ERROR (0x8001), length 6 + 4, EIO, msglen 4, "boom". */
	static const uint8_t want[] = {
		0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, 0x80, 0x01, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x0a,
		0x00, 0x00, 0x00, 0x05, 0x00, 0x04, 'b',  'o',	'o',  'm',
	};
	uint8_t buf[64];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_error_chunk(buf, 5, NBD_EIO, "boom"), want,
		    sizeof(want));
}

static void test_encode_error_chunk_no_msg(void **state)
{
	static const uint8_t want[] = {
		0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, 0x80, 0x01, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00,
		0x00, 0x06, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00,
	};
	uint8_t buf[64];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_error_chunk(buf, 9, NBD_EINVAL, NULL), want,
		    sizeof(want));
	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_error_chunk(buf, 9, NBD_EINVAL, ""), want,
		    sizeof(want));
}

static void test_encode_error_chunk_cap(void **state)
{
	static char msg[5000];
	static uint8_t buf[PROTO_ERROR_CHUNK_MAX + 16];
	size_t n;

	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	memset(buf, CANARY, sizeof(buf));
	n = proto_encode_error_chunk(buf, 1, NBD_EIO, msg);
	assert_int_equal(n, PROTO_ERROR_CHUNK_MAX);
	assert_int_equal(proto_get_be32(buf + 16), 6 + 4096);
	assert_int_equal(proto_get_be16(buf + 24), 4096);
	assert_memory_equal(buf + 26, msg, 4096);
	assert_int_equal(buf[PROTO_ERROR_CHUNK_MAX], CANARY);

	/* Exactly 4096 bytes is not cut. */
	msg[4096] = '\0';
	assert_int_equal(proto_encode_error_chunk(buf, 1, NBD_EIO, msg),
			 PROTO_ERROR_CHUNK_MAX);

	/*
	 * A 3-byte UTF-8 character (U+20AC) straddling the cap is dropped
	 * whole rather than cut, keeping the message valid UTF-8.
	 */
	memset(msg, 'x', sizeof(msg) - 1);
	msg[4095] = (char)0xe2;
	msg[4096] = (char)0x82;
	msg[4097] = (char)0xac;
	n = proto_encode_error_chunk(buf, 1, NBD_EIO, msg);
	assert_int_equal(n, 26 + 4095);
	assert_int_equal(proto_get_be16(buf + 24), 4095);
	assert_int_equal(proto_get_be32(buf + 16), 6 + 4095);

	/* A 4-byte character (U+1F600) with its lead 3 bytes before the cap. */
	memset(msg, 'x', sizeof(msg) - 1);
	msg[4093] = (char)0xf0;
	msg[4094] = (char)0x9f;
	msg[4095] = (char)0x98;
	msg[4096] = (char)0x80;
	n = proto_encode_error_chunk(buf, 1, NBD_EIO, msg);
	assert_int_equal(n, 26 + 4093);
	assert_int_equal(proto_get_be16(buf + 24), 4093);

	/* The same character ending exactly at the cap is kept whole. */
	memset(msg, 'x', sizeof(msg) - 1);
	msg[4092] = (char)0xf0;
	msg[4093] = (char)0x9f;
	msg[4094] = (char)0x98;
	msg[4095] = (char)0x80;
	n = proto_encode_error_chunk(buf, 1, NBD_EIO, msg);
	assert_int_equal(n, PROTO_ERROR_CHUNK_MAX);
	assert_memory_equal(buf + 26 + 4092, "\xf0\x9f\x98\x80", 4);
}

static void test_encode_block_status(void **state)
{
	/* Length = 4 (context id) + 8 * 3 descriptors = 28. */
	static const uint8_t want[] = {
		0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, 0x00, 0x05,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
		0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x02,
	};
	static const uint8_t want_ext[] = {
		0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(
		buf, sizeof(buf),
		proto_encode_block_status(buf, NBD_REPLY_FLAG_DONE, 3, 2, 3),
		want, sizeof(want));
	memset(buf, CANARY, sizeof(buf));
	check_bytes(
		buf, sizeof(buf),
		proto_encode_extent(buf, MiB, NBD_STATE_HOLE | NBD_STATE_ZERO),
		want_ext, sizeof(want_ext));
}

static void test_encode_greeting(void **state)
{
	static const uint8_t want[] = {
		'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C',	 'I',
		'H', 'A', 'V', 'E', 'O', 'P', 'T', 0x00, 0x03,
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_greeting(buf, NBD_FLAG_FIXED_NEWSTYLE |
						       NBD_FLAG_NO_ZEROES),
		    want, sizeof(want));
}

static void test_encode_option_reply(void **state)
{
	static const uint8_t want[] = {
		0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, 0x00, 0x00,
		0x00, 0x07, 0x80, 0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0x02,
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_option_reply(buf, NBD_OPT_GO,
					      NBD_REP_ERR_UNKNOWN, 0x102),
		    want, sizeof(want));
}

static void test_decode_option(void **state)
{
	uint8_t b[16] = {
		'I',  'H',  'A',  'V',	'E',  'O',  'P',  'T',
		0x00, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x00, 0x20,
	};
	uint32_t opt = 0, len = 0;

	assert_int_equal(proto_decode_option(b, &opt, &len), 0);
	assert_int_equal(opt, NBD_OPT_SET_META_CONTEXT);
	assert_int_equal(len, 0x10020);

	b[7] = 'X';
	assert_int_equal(proto_decode_option(b, &opt, &len), -EBADMSG);
	/* NBDMAGIC where IHAVEOPT belongs: out of sync. */
	proto_put_be64(b, NBD_MAGIC);
	assert_int_equal(proto_decode_option(b, &opt, &len), -EBADMSG);
}

static void test_encode_info_export(void **state)
{
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x00, 0x04, 0x4d,
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_info_export(
			    buf, 1ull << 32,
			    NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
				    NBD_FLAG_SEND_FUA |
				    NBD_FLAG_SEND_WRITE_ZEROES |
				    NBD_FLAG_SEND_CACHE),
		    want, sizeof(want));
}

static void test_encode_info_block_size(void **state)
{
	static const uint8_t want[] = {
		0x00, 0x03, 0x00, 0x00, 0x02, 0x00, 0x00,
		0x00, 0x10, 0x00, 0x02, 0x00, 0x00, 0x00,
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_info_block_size(buf, 512, 4096, 32 * MiB),
		    want, sizeof(want));
}

static void test_encode_export_name_reply(void **state)
{
	static const uint8_t head[] = {
		0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x03,
	};
	uint8_t want[134];
	uint8_t buf[160];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_export_name_reply(
			    buf, 1ull << 30,
			    NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY, true),
		    head, sizeof(head));

	/* Without NO_ZEROES: 124 zero bytes, written over the canary. */
	memset(want, 0, sizeof(want));
	memcpy(want, head, sizeof(head));
	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_export_name_reply(
			    buf, 1ull << 30,
			    NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY, false),
		    want, sizeof(want));
}

static void test_encode_meta_context(void **state)
{
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x01, 'b', 'a', 's', 'e', ':', 'a',
		'l',  'l',  'o',  'c',	'a', 't', 'i', 'o', 'n',
	};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_meta_context(buf, 1, "base:allocation"), want,
		    sizeof(want));
}

static void test_encode_rep_server(void **state)
{
	static const uint8_t want_desc[] = {
		0x00, 0x00, 0x00, 0x04, 'd', 'i', 's', 'k',
		'f',  'a',  's',  't',	' ', 'S', 'S', 'D',
	};
	static const uint8_t want_nodesc[] = {
		0x00, 0x00, 0x00, 0x04, 'd', 'i', 's', 'k',
	};
	static const uint8_t want_empty[] = {0x00, 0x00, 0x00, 0x00};
	uint8_t buf[32];

	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_rep_server(buf, "disk", "fast SSD"), want_desc,
		    sizeof(want_desc));
	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf),
		    proto_encode_rep_server(buf, "disk", NULL), want_nodesc,
		    sizeof(want_nodesc));
	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf), proto_encode_rep_server(buf, "disk", ""),
		    want_nodesc, sizeof(want_nodesc));
	/* The default export has an empty name. */
	memset(buf, CANARY, sizeof(buf));
	check_bytes(buf, sizeof(buf), proto_encode_rep_server(buf, "", NULL),
		    want_empty, sizeof(want_empty));
}

/*
 * Option parsers get untrusted lengths: put the option data right before
 * a PROT_NONE page, so that reading even one byte past len faults (and
 * cmocka reports the test as failed) instead of passing by luck.
 */
struct guarded {
	uint8_t *map;
	size_t page;
	uint8_t *data;
};

static void guard_setup(struct guarded *g, const void *data, uint32_t len)
{
	g->page = (size_t)sysconf(_SC_PAGESIZE);
	assert_true(len <= g->page);
	g->map = mmap(NULL, 2 * g->page, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->map != MAP_FAILED);
	assert_int_equal(mprotect(g->map + g->page, g->page, PROT_NONE), 0);
	g->data = g->map + g->page - len;
	memcpy(g->data, data, len);
}

static void guard_teardown(struct guarded *g)
{
	munmap(g->map, 2 * g->page);
}

/* --- NBD_OPT_INFO / NBD_OPT_GO parser --- */

/* name "disk", 2 requests: NAME, BLOCK_SIZE. */
static const uint8_t info_good[] = {
	0x00, 0x00, 0x00, 0x04, 'd',  'i',  's',
	'k',  0x00, 0x02, 0x00, 0x01, 0x00, 0x03,
};

static void test_info_opt_good(void **state)
{
	struct guarded g;
	const char *name = NULL;
	uint32_t namelen = 99;
	uint16_t n = 99;

	guard_setup(&g, info_good, sizeof(info_good));
	assert_int_equal(proto_parse_info_opt(g.data, sizeof(info_good), &name,
					      &namelen, &n),
			 0);
	assert_ptr_equal(name, (const char *)g.data + 4);
	assert_int_equal(namelen, 4);
	assert_memory_equal(name, "disk", 4);
	assert_int_equal(n, 2);
	assert_int_equal(proto_info_request(g.data, namelen, 0), NBD_INFO_NAME);
	assert_int_equal(proto_info_request(g.data, namelen, 1),
			 NBD_INFO_BLOCK_SIZE);
	guard_teardown(&g);
}

static void test_info_opt_empty(void **state)
{
	/* Default export, no info requests: the smallest valid option. */
	static const uint8_t b[] = {0, 0, 0, 0, 0, 0};
	const char *name = NULL;
	uint32_t namelen = 99;
	uint16_t n = 99;

	assert_int_equal(
		proto_parse_info_opt(b, sizeof(b), &name, &namelen, &n), 0);
	assert_int_equal(namelen, 0);
	assert_int_equal(n, 0);
}

struct bad_opt {
	const char *name;
	uint8_t data[24];
	uint32_t len;
};

/* clang-format off */
static const struct bad_opt info_bad[] = {
	{ "info_len_0", { 0 }, 0 },
	{ "info_len_5", { 0, 0, 0, 0, 0 }, 5 },
	/* namelen = len - 5: the u16 count would straddle the end. */
	{ "info_namelen_too_big_by_1", { 0, 0, 0, 4, 'd', 'i', 's', 'k', 0 },
	  9 },
	{ "info_namelen_way_too_big", { 0, 0, 1, 0, 'd', 'i', 0, 0 }, 8 },
	/* 4 + 0xffffffff + 2 wraps a 32-bit sum. */
	{ "info_namelen_u32_max", { 0xff, 0xff, 0xff, 0xff, 0, 0 }, 6 },
	{ "info_namelen_u32_wrap", { 0xff, 0xff, 0xff, 0xfa, 0, 0 }, 6 },
	/* Count says 3 requests, 2 present. */
	{ "info_count_overrun", { 0, 0, 0, 1, 'a', 0, 3, 0, 1, 0, 3 }, 11 },
	{ "info_count_u16_max", { 0, 0, 0, 0, 0xff, 0xff, 0, 0 }, 8 },
	/* Trailing garbage after the last request. */
	{ "info_trailing_byte", { 0, 0, 0, 1, 'a', 0, 1, 0, 3, 0xee }, 10 },
	{ "info_trailing_request", { 0, 0, 0, 1, 'a', 0, 1, 0, 3, 0, 1 },
	  11 },
	{ "info_odd_tail_no_count", { 0, 0, 0, 1, 'a', 0, 0, 0xee }, 8 },
};
/* clang-format on */

static void test_info_opt_bad(void **state)
{
	const struct bad_opt *c = *state;
	struct guarded g;
	const char *name = NULL;
	uint32_t namelen = 0;
	uint16_t n = 0;

	guard_setup(&g, c->data, c->len);
	assert_int_equal(
		proto_parse_info_opt(g.data, c->len, &name, &namelen, &n),
		-EINVAL);
	guard_teardown(&g);
}

/* --- NBD_OPT_{LIST,SET}_META_CONTEXT parser --- */

struct seen {
	unsigned int calls;
	const char *q[4];
	uint32_t qlen[4];
};

static void record_query(const char *q, uint32_t qlen, void *opaque)
{
	struct seen *s = opaque;

	if (s->calls < ARRAY_SIZE(s->q)) {
		s->q[s->calls] = q;
		s->qlen[s->calls] = qlen;
	}
	s->calls++;
}

/* name "disk", queries "base:allocation", "" and "qemu:x". */
static const uint8_t meta_good[] = {
	0x00, 0x00, 0x00, 0x04, 'd', 'i', 's', 'k',  0x00, 0x00, 0x00, 0x03,
	0x00, 0x00, 0x00, 0x0f, 'b', 'a', 's', 'e',  ':',  'a',	 'l',  'l',
	'o',  'c',  'a',  't',	'i', 'o', 'n', 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x06, 'q',	'e', 'm', 'u', ':',  'x',
};

static void test_meta_opt_good(void **state)
{
	struct guarded g;
	struct seen s = {0};
	const char *name = NULL;
	uint32_t namelen = 99, nq = 99;

	guard_setup(&g, meta_good, sizeof(meta_good));
	assert_int_equal(proto_parse_meta_opt(g.data, sizeof(meta_good), &name,
					      &namelen, &nq, record_query, &s),
			 0);
	assert_ptr_equal(name, (const char *)g.data + 4);
	assert_int_equal(namelen, 4);
	assert_int_equal(nq, 3);
	/* In order, pointing into the option, lengths exact. */
	assert_int_equal(s.calls, 3);
	assert_int_equal(s.qlen[0], 15);
	assert_memory_equal(s.q[0], "base:allocation", 15);
	assert_ptr_equal(s.q[0], (const char *)g.data + 16);
	assert_int_equal(s.qlen[1], 0);
	assert_int_equal(s.qlen[2], 6);
	assert_memory_equal(s.q[2], "qemu:x", 6);
	assert_ptr_equal(s.q[2], (const char *)g.data + 39);
	guard_teardown(&g);
}

static void test_meta_opt_no_queries(void **state)
{
	/* Default export, zero queries (SET: select none; LIST: all). */
	static const uint8_t b[] = {0, 0, 0, 0, 0, 0, 0, 0};
	struct seen s = {0};
	const char *name = NULL;
	uint32_t namelen = 99, nq = 99;

	assert_int_equal(proto_parse_meta_opt(b, sizeof(b), &name, &namelen,
					      &nq, record_query, &s),
			 0);
	assert_int_equal(namelen, 0);
	assert_int_equal(nq, 0);
	assert_int_equal(s.calls, 0);
}

/* clang-format off */
static const struct bad_opt meta_bad[] = {
	{ "meta_len_0", { 0 }, 0 },
	{ "meta_len_7", { 0, 0, 0, 0, 0, 0, 0 }, 7 },
	/* namelen leaves no room for the u32 query count. */
	{ "meta_namelen_no_room_for_count", { 0, 0, 0, 4, 'd', 'i', 's', 'k',
	  0, 0, 0 }, 11 },
	{ "meta_namelen_u32_max", { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0 }, 8 },
	{ "meta_namelen_u32_wrap", { 0xff, 0xff, 0xff, 0xf9, 0, 0, 0, 0 }, 8 },
	/* 1 query announced, nothing follows. */
	{ "meta_query_missing", { 0, 0, 0, 0, 0, 0, 0, 1 }, 8 },
	/* Query length header cut short. */
	{ "meta_query_len_cut", { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 }, 11 },
	/* Query says 5 bytes, 4 present. */
	{ "meta_query_overrun", { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5,
	  'b', 'a', 's', 'e' }, 16 },
	{ "meta_query_len_u32_max", { 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff,
	  0xff, 0xff, 'b' }, 13 },
	/* 2 queries announced, first fine, second overruns. */
	{ "meta_second_query_overrun", { 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1,
	  'a', 0, 0, 0, 9, 'b' }, 18 },
	{ "meta_nqueries_u32_max", { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0,
	  0, 0 }, 12 },
	/* Bytes after the last query. */
	{ "meta_trailing_garbage", { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'a',
	  0xee }, 14 },
	{ "meta_trailing_after_zero_queries", { 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	  9 },
};
/* clang-format on */

static void test_meta_opt_bad(void **state)
{
	const struct bad_opt *c = *state;
	struct guarded g;
	struct seen s = {0};
	const char *name = NULL;
	uint32_t namelen = 0, nq = 0;

	guard_setup(&g, c->data, c->len);
	assert_int_equal(proto_parse_meta_opt(g.data, c->len, &name, &namelen,
					      &nq, record_query, &s),
			 -EINVAL);
	guard_teardown(&g);
	/* A malformed option selects nothing, not a prefix of it. */
	assert_int_equal(s.calls, 0);
}

/* --- Reply selection (P1) --- */

static void expect_reply(uint16_t type, uint32_t len, uint32_t err,
			 bool structured, size_t want_len, uint16_t want_kind,
			 enum proto_payload want_payload)
{
	static const struct proto_status_chunk st = {.id = 1, .n_extents = 3};
	struct nbd_request r = {
		.type = type, .cookie = 7, .offset = 4096, .length = len};
	uint8_t hdr[PROTO_REPLY_HDR_MAX];
	enum proto_payload pay;
	size_t n = proto_encode_reply(hdr, &r, err, structured, &st, 1, &pay);

	assert_int_equal(n, want_len);
	assert_int_equal(pay, want_payload);
	if (want_len == 16) {
		assert_int_equal(proto_get_be32(hdr), NBD_SIMPLE_REPLY_MAGIC);
	} else { /* structured: the chunk type at bytes 6-7 */
		assert_int_equal(proto_get_be32(hdr),
				 NBD_STRUCTURED_REPLY_MAGIC);
		assert_int_equal(proto_get_be16(hdr + 6), want_kind);
		/* One chunk: it is the last. */
		assert_int_equal(proto_get_be16(hdr + 4), NBD_REPLY_FLAG_DONE);
	}
}

static void test_reply_selection(void **state)
{
	(void)state;
	/* Simple replies: no structured replies, or not a READ. */
	expect_reply(NBD_CMD_READ, 512, 0, false, 16, 0, PROTO_PAYLOAD_DATA);
	expect_reply(NBD_CMD_READ, 0, 0, false, 16, 0, PROTO_PAYLOAD_NONE);
	expect_reply(NBD_CMD_READ, 512, NBD_EIO, false, 16, 0,
		     PROTO_PAYLOAD_NONE);
	expect_reply(NBD_CMD_WRITE, 512, 0, true, 16, 0, PROTO_PAYLOAD_NONE);
	expect_reply(NBD_CMD_FLUSH, 0, NBD_EIO, true, 16, 0,
		     PROTO_PAYLOAD_NONE);
	/* Structured READ: OFFSET_DATA, NONE when empty, ERROR. */
	expect_reply(NBD_CMD_READ, 512, 0, true, 28, NBD_REPLY_TYPE_OFFSET_DATA,
		     PROTO_PAYLOAD_DATA);
	expect_reply(NBD_CMD_READ, 0, 0, true, 20, NBD_REPLY_TYPE_NONE,
		     PROTO_PAYLOAD_NONE);
	expect_reply(NBD_CMD_READ, 512, NBD_EIO, true, 26, NBD_REPLY_TYPE_ERROR,
		     PROTO_PAYLOAD_NONE);
	/* BLOCK_STATUS: its chunk with descriptors, or ERROR. */
	expect_reply(NBD_CMD_BLOCK_STATUS, 512, 0, true, 24,
		     NBD_REPLY_TYPE_BLOCK_STATUS, PROTO_PAYLOAD_EXTENTS);
	expect_reply(NBD_CMD_BLOCK_STATUS, 512, NBD_EINVAL, true, 26,
		     NBD_REPLY_TYPE_ERROR, PROTO_PAYLOAD_NONE);
}

/*
 * P1: base:allocation (id 1, 2 descriptors) and a dirty bitmap (id 2, 1
 * descriptor): two BLOCK_STATUS chunks, the second's header inside the
 * payload, DONE on it alone; the bytes on the wire are exactly two
 * well-formed chunks.
 */
static void test_p1_two_status_chunks(void **state)
{
	static const struct proto_status_chunk st[] = {{1, 2}, {2, 1}};
	static const struct proto_extent alloc[] = {
		{MiB, 0}, {4096, NBD_STATE_HOLE | NBD_STATE_ZERO}};
	static const struct proto_extent dirty[] = {
		{MiB + 4096, NBD_STATE_DIRTY}};
	const struct proto_extent *ext[] = {alloc, dirty};
	static const uint8_t want_hdr[] = {
		0x66, 0x8e, 0x33, 0xef, 0x00, 0x00, 0x00, 0x05, /* no DONE */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01,
	};
	/* alloc: 1 MiB data, 4 KiB hole|zero; the dirty chunk's header
	   (DONE, id 2, length 4 + 8); dirty: 1 MiB + 4 KiB dirty. */
	static const uint8_t want_pay[] = {
		0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x10, 0x00, 0x00, 0x00, 0x00, 0x03, 0x66, 0x8e, 0x33, 0xef,
		0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x09, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x02,
		0x00, 0x10, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01,
	};
	struct nbd_request r = {.type = NBD_CMD_BLOCK_STATUS,
				.cookie = 9,
				.offset = 0,
				.length = MiB + 4096};
	uint8_t hdr[PROTO_REPLY_HDR_MAX], pay[64];
	enum proto_payload p;
	size_t n;

	(void)state;
	memset(hdr, CANARY, sizeof(hdr));
	n = proto_encode_reply(hdr, &r, 0, true, st, 2, &p);
	check_bytes(hdr, sizeof(hdr), n, want_hdr, sizeof(want_hdr));
	assert_int_equal(p, PROTO_PAYLOAD_EXTENTS);
	assert_int_equal(proto_status_payload_size(3, 2), sizeof(want_pay));
	memset(pay, CANARY, sizeof(pay));
	n = proto_encode_status_payload(pay, 9, st, ext, 2);
	check_bytes(pay, sizeof(pay), n, want_pay, sizeof(want_pay));

	/* An error is one ERROR chunk for both contexts. */
	n = proto_encode_reply(hdr, &r, NBD_EIO, true, st, 2, &p);
	assert_int_equal(n, 26);
	assert_int_equal(proto_get_be16(hdr + 4), NBD_REPLY_FLAG_DONE);
	assert_int_equal(proto_get_be16(hdr + 6), NBD_REPLY_TYPE_ERROR);
	assert_int_equal(p, PROTO_PAYLOAD_NONE);
}

/* P1: one chunk (the dirty bitmap alone): the payload is descriptors. */
static void test_p1_one_status_chunk_payload(void **state)
{
	static const struct proto_status_chunk st = {2, 2};
	static const struct proto_extent dirty[] = {{65536, NBD_STATE_DIRTY},
						    {131072, 0}};
	const struct proto_extent *ext[] = {dirty};
	static const uint8_t want[] = {
		0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	uint8_t pay[32];

	(void)state;
	memset(pay, CANARY, sizeof(pay));
	assert_int_equal(proto_status_payload_size(2, 1), sizeof(want));
	check_bytes(pay, sizeof(pay),
		    proto_encode_status_payload(pay, 1, &st, ext, 1), want,
		    sizeof(want));
}

static void test_cmd_is_write(void **state)
{
	(void)state;
	assert_true(proto_cmd_is_write(NBD_CMD_WRITE));
	assert_true(proto_cmd_is_write(NBD_CMD_TRIM));
	assert_true(proto_cmd_is_write(NBD_CMD_WRITE_ZEROES));
	assert_false(proto_cmd_is_write(NBD_CMD_READ));
	assert_false(proto_cmd_is_write(NBD_CMD_FLUSH));
	assert_false(proto_cmd_is_write(NBD_CMD_BLOCK_STATUS));
	assert_false(proto_cmd_is_write(NBD_CMD_CACHE));
}

/* --- Extent alignment (P2) --- */

#define HOLE (NBD_STATE_HOLE | NBD_STATE_ZERO)

/* One aligner (proto_align_extents or proto_align_dirty) against want. */
typedef uint32_t (*align_fn)(const struct proto_extent *in, uint32_t n_in,
			     uint64_t off, uint64_t end, uint32_t min_block,
			     struct proto_extent *out, uint32_t max);

static void expect_aligned(align_fn align, const struct proto_extent *in,
			   uint32_t n_in, uint64_t off, uint64_t end,
			   uint32_t b, const struct proto_extent *want,
			   uint32_t n_want, uint32_t max)
{
	struct proto_extent out[16];
	uint32_t n, i;

	n = align(in, n_in, off, end, b, out, max);
	for (i = 0; i < n && i < n_want; i++)
		if (out[i].len != want[i].len || out[i].flags != want[i].flags)
			break;
	if (n != n_want || i != n) {
		for (i = 0; i < n; i++)
			print_error("  got %llu/%u\n",
				    (unsigned long long)out[i].len,
				    out[i].flags);
		fail();
	}
}

#define expect_extents(...) expect_aligned(proto_align_extents, __VA_ARGS__)

static void test_align_extents(void **state)
{
	(void)state;
	{ /* Aligned boundaries pass unchanged. */
		const struct proto_extent in[] = {{8192, 0}, {4096, HOLE}};
		expect_extents(in, 2, 0, 12288, 4096, in, 2, 16);
	}
	{ /* A hole shrinks, data grows: never a hole over data. */
		const struct proto_extent in[] = {
			{5000, 0}, {10000, HOLE}, {1384, 0}};
		const struct proto_extent want[] = {
			{8192, 0}, {4096, HOLE}, {4096, 0}};
		expect_extents(in, 3, 0, 16384, 4096, want, 3, 16);
	}
	{ /* A hole smaller than a block becomes data. */
		const struct proto_extent in[] = {
			{4096, 0}, {1000, HOLE}, {3096, 0}, {4096, HOLE}};
		const struct proto_extent want[] = {
			{4096, 0}, {4096, 0}, {4096, HOLE}};
		expect_extents(in, 4, 0, 12288, 4096, want, 3, 16);
	}
	{ /* The export's unaligned end may end an extent. */
		const struct proto_extent in[] = {{4096, HOLE}, {100, 0}};
		expect_extents(in, 2, 0, 4196, 4096, in, 2, 16);
	}
	{ /* Raw extents that stop early: data beyond is the safe guess. */
		const struct proto_extent in[] = {{6000, HOLE}};
		const struct proto_extent want[] = {{4096, HOLE}, {4096, 0}};
		expect_extents(in, 1, 0, 65536, 4096, want, 2, 16);
	}
	{ /* max (REQ_ONE) cuts the answer. */
		const struct proto_extent in[] = {{4096, 0}, {4096, HOLE}};
		expect_extents(in, 2, 0, 8192, 4096, in, 1, 1);
	}
	{ /* Byte granularity: nothing to round. */
		const struct proto_extent in[] = {{1, 0}, {2, HOLE}, {3, 0}};
		expect_extents(in, 3, 100, 106, 1, in, 3, 16);
	}
}

/* --- Extent alignment of a dirty bitmap (P2) --- */

#define DIRTY NBD_STATE_DIRTY

#define expect_dirty(...) expect_aligned(proto_align_dirty, __VA_ARGS__)

static void test_p2_align_dirty(void **state)
{
	(void)state;
	{ /* Granules on block boundaries pass unchanged. */
		const struct proto_extent in[] = {
			{65536, DIRTY}, {131072, 0}, {65536, DIRTY}};
		expect_dirty(in, 3, 0, 262144, 4096, in, 3, 16);
	}
	{ /* Clean shrinks, dirty grows: never clean over a change. */
		const struct proto_extent in[] = {
			{5000, 0}, {10000, DIRTY}, {1384, 0}};
		const struct proto_extent want[] = {
			{4096, 0}, {4096, DIRTY}, {8192, DIRTY}};
		expect_dirty(in, 3, 0, 16384, 4096, want, 3, 16);
	}
	{ /* Clean smaller than a block becomes dirty. */
		const struct proto_extent in[] = {
			{4096, DIRTY}, {1000, 0}, {3096, DIRTY}, {4096, 0}};
		const struct proto_extent want[] = {
			{4096, DIRTY}, {4096, DIRTY}, {4096, 0}};
		expect_dirty(in, 4, 0, 12288, 4096, want, 3, 16);
	}
	{ /* An unaligned start: the first extent ends on a block. */
		const struct proto_extent in[] = {{3000, 0}, {8192, DIRTY}};
		const struct proto_extent want[] = {{3000, 0}, {8192, DIRTY}};
		expect_dirty(in, 2, 1096, 12288, 4096, want, 2, 16);
	}
	{ /* The export's unaligned end may end an extent. */
		const struct proto_extent in[] = {{4096, 0}, {100, DIRTY}};
		expect_dirty(in, 2, 0, 4196, 4096, in, 2, 16);
	}
	{ /* Raw extents that stop early: dirty beyond is the safe guess. */
		const struct proto_extent in[] = {{6000, 0}};
		const struct proto_extent want[] = {{4096, 0}, {4096, DIRTY}};
		expect_dirty(in, 1, 0, 65536, 4096, want, 2, 16);
	}
	{ /* max (REQ_ONE) cuts the answer. */
		const struct proto_extent in[] = {{65536, 0}, {65536, DIRTY}};
		expect_dirty(in, 2, 0, 131072, 4096, in, 1, 1);
	}
	{ /* The same input as base:allocation rounds the other way. */
		const struct proto_extent in[] = {{5000, 0}, {3192, DIRTY}};
		const struct proto_extent want_dirty[] = {{4096, 0},
							  {4096, DIRTY}};
		const struct proto_extent want_alloc[] = {{8192, 0}};
		struct proto_extent out[4];

		expect_dirty(in, 2, 0, 8192, 4096, want_dirty, 2, 16);
		assert_int_equal(
			proto_align_extents(in, 2, 0, 8192, 4096, out, 4), 1);
		assert_int_equal(out[0].len, want_alloc[0].len);
		assert_int_equal(out[0].flags, want_alloc[0].flags);
	}
}

/* --- Registration --- */

#define PLAIN(f)                                                               \
	{                                                                      \
#f, f, NULL, NULL, NULL                                        \
	}

static const struct CMUnitTest plain_tests[] = {
	PLAIN(test_decode_request),
	PLAIN(test_decode_request_high_bits),
	PLAIN(test_decode_request_bad_magic),
	PLAIN(test_has_payload),
	PLAIN(test_cmd_name),
	PLAIN(test_nbd_error),
	PLAIN(test_encode_simple_reply),
	PLAIN(test_encode_chunk),
	PLAIN(test_encode_offset_data),
	PLAIN(test_encode_offset_hole),
	PLAIN(test_encode_error_chunk),
	PLAIN(test_encode_error_chunk_no_msg),
	PLAIN(test_encode_error_chunk_cap),
	PLAIN(test_encode_block_status),
	PLAIN(test_encode_greeting),
	PLAIN(test_encode_option_reply),
	PLAIN(test_decode_option),
	PLAIN(test_encode_info_export),
	PLAIN(test_encode_info_block_size),
	PLAIN(test_encode_export_name_reply),
	PLAIN(test_encode_meta_context),
	PLAIN(test_encode_rep_server),
	PLAIN(test_info_opt_good),
	PLAIN(test_info_opt_empty),
	PLAIN(test_meta_opt_good),
	PLAIN(test_meta_opt_no_queries),
	PLAIN(test_reply_selection),
	PLAIN(test_p1_two_status_chunks),
	PLAIN(test_p1_one_status_chunk_payload),
	PLAIN(test_cmd_is_write),
	PLAIN(test_align_extents),
	PLAIN(test_p2_align_dirty),
};

/* One cmocka test per table row, named after the row. */
static struct CMUnitTest all_tests[ARRAY_SIZE(plain_tests) +
				   ARRAY_SIZE(vcases) + ARRAY_SIZE(info_bad) +
				   ARRAY_SIZE(meta_bad)];

int main(void)
{
	size_t n = 0, i;

	for (i = 0; i < ARRAY_SIZE(plain_tests); i++)
		all_tests[n++] = plain_tests[i];
	for (i = 0; i < ARRAY_SIZE(vcases); i++)
		all_tests[n++] =
			(struct CMUnitTest){vcases[i].name, test_validate_case,
					    NULL, NULL, (void *)&vcases[i]};
	for (i = 0; i < ARRAY_SIZE(info_bad); i++)
		all_tests[n++] =
			(struct CMUnitTest){info_bad[i].name, test_info_opt_bad,
					    NULL, NULL, (void *)&info_bad[i]};
	for (i = 0; i < ARRAY_SIZE(meta_bad); i++)
		all_tests[n++] =
			(struct CMUnitTest){meta_bad[i].name, test_meta_opt_bad,
					    NULL, NULL, (void *)&meta_bad[i]};
	assert_int_equal(n, ARRAY_SIZE(all_tests));
	return _cmocka_run_group_tests("proto", all_tests, n, NULL, NULL);
}
