/* SPDX-License-Identifier: MIT */
/* size.h: parsing and printing byte sizes ("1G", "512K", "4096"). */
#ifndef LOOPD_SIZE_H
#define LOOPD_SIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse a size: decimal digits with an optional K, M, G, T or P suffix
 * (powers of 1024, case-insensitive, optional trailing "iB"/"B").
 * Returns 0 or -EINVAL (not a size) / -ERANGE (overflows 63 bits).
 */
int size_parse(const char *s, uint64_t *out);

/* Human-readable size into buf ("1.0 GiB", "512 B"). Returns buf. */
char *size_format(uint64_t v, char *buf, size_t len);

#endif
