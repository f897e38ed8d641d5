/* SPDX-License-Identifier: MIT */
/*
 * server.c: the serving process's exports, and admission to transmission.
 *
 * G1. A connection enters transmission only through server_admit(), which
 *     the handshake calls before it sends the reply that starts
 *     transmission (GO's final ACK, EXPORT_NAME's answer).  Once
 *     server_stop() has run, server_admit() says no, so a client never
 *     gets a GO success from a server that will not serve it.
 * G2. server_admit() counts first and reads the stop flag second, and
 *     server_stop() sets the flag before anyone reads the count (both
 *     sequentially consistent), so either the admitter sees the flag and
 *     backs out, or whoever checks for "nothing admitted" sees its count.
 * G3. The engine's workers exit only once the server is stopping and
 *     nothing admitted is left (E4 in worker.c): while a connection lives,
 *     any worker may still be handed one of its requests.
 */
#include "engine/server.h"

#include <string.h>

#include "engine/dirty.h"

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

bool server_admit(struct server *srv)
{
	atomic_fetch_add(&srv->n_admitted, 1); /* G2: count first */
	if (atomic_load(&srv->stopping)) {
		server_release(srv);
		return false;
	}
	return true;
}

void server_release(struct server *srv)
{
	if (atomic_fetch_sub(&srv->n_admitted, 1) == 1 &&
	    atomic_load(&srv->stopping) && srv->on_idle)
		srv->on_idle(srv); /* G3 */
}

void server_stop(struct server *srv)
{
	atomic_store(&srv->stopping, true);
}

bool server_stopping(struct server *srv)
{
	return atomic_load(&srv->stopping);
}

unsigned int server_admitted(struct server *srv)
{
	return atomic_load(&srv->n_admitted);
}

void server_params_put(struct conn_params *p)
{
	if (p->meta_dirty) /* H10 in serve/handshake.c */
		dirty_put(p->exp->dirty, p->meta_dirty);
	p->meta_dirty = NULL;
}
