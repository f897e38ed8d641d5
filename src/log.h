/* SPDX-License-Identifier: MIT */
/* log.h: one-line messages on stderr, prefixed "loopd: ". */
#ifndef LOOPD_LOG_H
#define LOOPD_LOG_H

#include <stdbool.h>

extern bool log_verbose; /* -v; test it with unlikely() on hot paths */

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#endif /* LOOPD_LOG_H */
