/* SPDX-License-Identifier: MIT */
/*
 * compiler.h: the few macros every file may use: branch hints,
 * container_of, ARRAY_SIZE and cpu_relax.
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

/* A busy-wait loop's pause: lets the sibling hyperthread run. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

#endif /* LOOPD_UTIL_COMPILER_H */
