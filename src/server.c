/* SPDX-License-Identifier: MIT */
/*
 * server.c: the serving process's exports.
 */
#include "server.h"

#include <string.h>

struct export *server_find_export(struct server *srv, const char *name,
				  size_t len)
{
	size_t i;

	/* The empty name is reserved for the default export. */
	if (len == 0)
		return srv->n_exports > 0 ? srv->exports[0] : NULL;

	/*
	 * Exact byte match.  name comes from the client and may hold a NUL
	 * byte; comparing lengths first means such a name never matches.
	 */
	for (i = 0; i < srv->n_exports; i++) {
		const char *n = srv->exports[i]->name;

		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return srv->exports[i];
	}
	return NULL;
}
