/* SPDX-License-Identifier: MIT */
/* log.h: one-line messages on stderr, prefixed "loopd: ". */
#ifndef LOOPD_LOG_H
#define LOOPD_LOG_H

#include <stdbool.h>

#include "util/compiler.h"

extern bool log_verbose; /* -v; test it with unlikely() on hot paths */

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* LOOPD_LOG_H */
