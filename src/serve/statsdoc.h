/* SPDX-License-Identifier: MIT */
/*
 * statsdoc.h: the statistics document of a running server (statsdoc.c):
 * one read of the engine's counters (engine/stats.h) written as a table
 * for people, as JSON (json-c) or in Prometheus' text format (for
 * node_exporter's textfile collector).  `loopd ctl PATH stats` and
 * --stats-file write it (serve/control.c); docs/stats.md describes every
 * field.
 */
#ifndef LOOPD_SERVE_STATSDOC_H
#define LOOPD_SERVE_STATSDOC_H

#include <stddef.h>
#include <stdint.h>

#include "engine/server.h"

enum stats_format { STATS_TEXT, STATS_JSON, STATS_PROMETHEUS, STATS_FORMATS };

/* "text", "json", "prometheus", by enum stats_format. */
extern const char *const stats_format_names[STATS_FORMATS];

/*
 * The document of srv's counters now, in format f, into a malloc'd,
 * NUL-terminated *out of *len bytes.  start_ns is the server's start
 * (CLOCK_REALTIME).  0 or -ENOMEM.  Context: any thread but a worker,
 * while srv's exports exist.
 */
int statsdoc_render(struct server *srv, uint64_t start_ns, enum stats_format f,
		    char **out, size_t *len);

#endif /* LOOPD_SERVE_STATSDOC_H */
