/* SPDX-License-Identifier: MIT */
/* size.c: parsing and printing byte sizes (size.h). */
#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <strings.h>

int size_parse(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned int shift = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX >> 1) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	switch (toupper((unsigned char)*p)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case 'P':
		shift = 50;
		break;
	default:
		return -EINVAL;
	}
	if (*p) {
		p++;
		if (strcasecmp(p, "") && strcasecmp(p, "B") &&
		    strcasecmp(p, "iB"))
			return -EINVAL;
	}
	if (shift && v > ((UINT64_MAX >> 1) >> shift))
		return -ERANGE;
	if (v > (UINT64_MAX >> 1))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

char *size_format(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = {"B",   "KiB", "MiB",
					    "GiB", "TiB", "PiB"};
	unsigned int u = 0;
	double d = (double)v;

	while (d >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
	return buf;
}
