/* SPDX-License-Identifier: MIT */
/*
 * compiler.h: the few macros every file may use: branch hints,
 * container_of and ARRAY_SIZE.
 */
#ifndef LOOPD_UTIL_COMPILER_H
#define LOOPD_UTIL_COMPILER_H

#include <stddef.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The struct of type that holds *ptr as its member. */
#define container_of(ptr, type, member)                                        \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* LOOPD_UTIL_COMPILER_H */
