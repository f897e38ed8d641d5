/* SPDX-License-Identifier: MIT */
/*
 * test-size.c: unit tests of size_parse() and size_format() (src/size.c).
 *
 * size_parse() reads the --size style arguments: decimal digits, an
 * optional K/M/G/T/P suffix in powers of 1024 (case-insensitive), an
 * optional "B" or "iB" after the suffix; -EINVAL for anything that is not
 * a size, -ERANGE past 63 bits (the limit of an off_t).
 *
 * Each table row is its own cmocka test, named after the input.
 */
#undef NDEBUG
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "util/size.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)
#define PiB (1ULL << 50)

struct pcase {
	const char *name;
	const char *in;
	int want;
	uint64_t value; /* checked only when want == 0 */
};

/* clang-format off */
static const struct pcase pcases[] = {
	{ "parse_0", "0", 0, 0 },
	{ "parse_4096", "4096", 0, 4096 },
	{ "parse_1K", "1K", 0, KiB },
	{ "parse_1k", "1k", 0, KiB },
	{ "parse_1M", "1M", 0, MiB },
	{ "parse_1G", "1G", 0, GiB },
	{ "parse_1T", "1T", 0, TiB },
	{ "parse_1P", "1P", 0, PiB },
	{ "parse_2g", "2g", 0, 2 * GiB },
	{ "parse_512K", "512K", 0, 512 * KiB },
	{ "parse_1GiB", "1GiB", 0, GiB },
	{ "parse_1gib", "1gib", 0, GiB },
	{ "parse_1MiB", "1MiB", 0, MiB },
	/* "GB" is taken as binary too: disks are sized in GiB anyway. */
	{ "parse_1GB", "1GB", 0, GiB },
	{ "parse_1kb", "1kb", 0, KiB },
	{ "parse_0K", "0K", 0, 0 },
	{ "parse_leading_zeroes", "0010", 0, 10 },
	{ "parse_63bit_max", "9223372036854775807", 0, INT64_MAX },
	{ "parse_8191P", "8191P", 0, 8191 * PiB },
	{ "parse_8388607T", "8388607T", 0, 8388607 * TiB },

	{ "parse_empty", "", -EINVAL, 0 },
	{ "parse_abc", "abc", -EINVAL, 0 },
	{ "parse_1X", "1X", -EINVAL, 0 },
	{ "parse_minus_1", "-1", -EINVAL, 0 },
	{ "parse_plus_1", "+1", -EINVAL, 0 },
	{ "parse_1.5G", "1.5G", -EINVAL, 0 },
	{ "parse_leading_space", " 1G", -EINVAL, 0 },
	{ "parse_space_before_unit", "1 G", -EINVAL, 0 },
	{ "parse_trailing_space", "1G ", -EINVAL, 0 },
	{ "parse_unit_only", "G", -EINVAL, 0 },
	{ "parse_two_units", "1GM", -EINVAL, 0 },
	{ "parse_1Gi", "1Gi", -EINVAL, 0 },
	{ "parse_1GiBx", "1GiBx", -EINVAL, 0 },
	{ "parse_hex", "0x10", -EINVAL, 0 },

	{ "parse_20_nines", "99999999999999999999", -ERANGE, 0 },
	{ "parse_2pow63", "9223372036854775808", -ERANGE, 0 },
	{ "parse_2pow64", "18446744073709551616", -ERANGE, 0 },
	{ "parse_16384P", "16384P", -ERANGE, 0 },
	{ "parse_8192P", "8192P", -ERANGE, 0 },
	{ "parse_8388608T", "8388608T", -ERANGE, 0 },
	{ "parse_huge_G", "99999999999G", -ERANGE, 0 },
};
/* clang-format on */

static void test_parse_case(void **state)
{
	const struct pcase *c = *state;
	uint64_t v = 0xdeadbeef;
	int ret = size_parse(c->in, &v);

	if (ret != c->want)
		print_error("size_parse(\"%s\") = %d, want %d\n", c->in, ret,
			    c->want);
	assert_int_equal(ret, c->want);
	if (c->want == 0)
		assert_true(v == c->value);
}

struct fcase {
	const char *name;
	uint64_t in;
	const char *want;
};

static const struct fcase fcases[] = {
	{"format_0", 0, "0 B"},
	{"format_512", 512, "512 B"},
	{"format_1023", 1023, "1023 B"},
	{"format_1K", KiB, "1.0 KiB"},
	{"format_1536", 1536, "1.5 KiB"},
	{"format_1M", MiB, "1.0 MiB"},
	{"format_1G", GiB, "1.0 GiB"},
	{"format_10G", 10 * GiB, "10.0 GiB"},
	{"format_1T", TiB, "1.0 TiB"},
	{"format_1P", PiB, "1.0 PiB"},
	/* PiB is the largest unit: bigger sizes stay in PiB. */
	{"format_2pow63", 1ULL << 63, "8192.0 PiB"},
};

static void test_format_case(void **state)
{
	const struct fcase *c = *state;
	char buf[32];

	memset(buf, 'z', sizeof(buf));
	assert_ptr_equal(size_format(c->in, buf, sizeof(buf)), buf);
	assert_string_equal(buf, c->want);
}

/* size_format() must truncate, NUL-terminated, to the given length. */
static void test_format_truncates(void **state)
{
	char buf[8];

	memset(buf, 'z', sizeof(buf));
	size_format(GiB, buf, 4);
	assert_string_equal(buf, "1.0");
	assert_int_equal(buf[4], 'z');
}

/* Whatever size_format() prints for a round size parses back to it. */
static void test_round_trip(void **state)
{
	static const uint64_t v[] = {0, 1, 4096, KiB, MiB, GiB, TiB, PiB};
	char buf[32], num[32];
	uint64_t out;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(v); i++) {
		size_format(v[i], buf, sizeof(buf));
		/* "1.0 GiB" -> "1GiB"; "4096 B" -> "4096". */
		if (strstr(buf, ".0 ")) {
			size_t d = (size_t)(strchr(buf, '.') - buf);

			memcpy(num, buf, d);
			strcpy(num + d, buf + d + 3);
		} else {
			strcpy(num, buf);
			*strchr(num, ' ') = '\0';
		}
		assert_int_equal(size_parse(num, &out), 0);
		assert_true(out == v[i]);
	}
}

static struct CMUnitTest all_tests[ARRAY_SIZE(pcases) + ARRAY_SIZE(fcases) + 2];

int main(void)
{
	size_t n = 0, i;

	for (i = 0; i < ARRAY_SIZE(pcases); i++)
		all_tests[n++] =
			(struct CMUnitTest){pcases[i].name, test_parse_case,
					    NULL, NULL, (void *)&pcases[i]};
	for (i = 0; i < ARRAY_SIZE(fcases); i++)
		all_tests[n++] =
			(struct CMUnitTest){fcases[i].name, test_format_case,
					    NULL, NULL, (void *)&fcases[i]};
	all_tests[n++] =
		(struct CMUnitTest){"test_format_truncates",
				    test_format_truncates, NULL, NULL, NULL};
	all_tests[n++] = (struct CMUnitTest){"test_round_trip", test_round_trip,
					     NULL, NULL, NULL};
	assert_int_equal(n, ARRAY_SIZE(all_tests));
	return _cmocka_run_group_tests("size", all_tests, n, NULL, NULL);
}
