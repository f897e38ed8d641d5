/* SPDX-License-Identifier: MIT */
/*
 * server.h: the serving process: its exports, listeners and workers.
 */
#ifndef LOOPD_SERVER_H
#define LOOPD_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "tls.h"

struct server {
	struct export **exports; /* exports[0] is the default export */
	size_t n_exports;
	bool verbose; /* -v: log each request */
	unsigned int n_queues; /* worker threads, each with its own ring */
	unsigned int max_conns; /* --max-connections */
	atomic_uint n_conns; /* accepted and not yet closed */
	struct tls_ctx *tls; /* NULL: --tls=off */
	bool tls_require; /* --tls=require */
};

/*
 * Find an export by name.  The empty name selects exports[0].  name need
 * not be NUL-terminated.  Returns NULL if there is none.
 */
struct export *server_find_export(struct server *srv, const char *name,
				  size_t len);

#endif /* LOOPD_SERVER_H */
