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

#include "engine/export.h"
#include "engine/stats.h"

struct tls_ctx; /* serve/tls.h: the engine only carries it */
struct dirty_map; /* engine/dirty.h */

/* What a connection negotiated that transmission needs (the handshake
   fills it in serve/). */
struct conn_params {
	struct export *exp; /* the export chosen by GO / EXPORT_NAME */
	bool structured; /* NBD_OPT_STRUCTURED_REPLY was acked */
	bool meta_alloc; /* base:allocation was selected for exp */
	uint32_t meta_alloc_id; /* its context id */
	/* The checkpoint whose qemu:dirty-bitmap:NAME was selected for exp,
	   or NULL: a reference (dirty_get), which the connection owns and
	   lets go with dirty_put() (H10 in serve/handshake.c). */
	struct dirty_map *meta_dirty;
	uint32_t meta_dirty_id; /* its context id */
	uint16_t tflags; /* transmission flags sent to the client */
	char peer[STATS_PEER_MAX]; /* who it is, for the counters: "ADDR:PORT"
				      or "unix pid N uid N" (serve/listen.c) */
};

struct server {
	struct export **exports; /* exports[0] is the default export */
	size_t n_exports;
	unsigned int n_queues; /* worker threads, each with its own ring */
	unsigned int busy_poll_us; /* E7: --busy-poll, 0 = never */
	unsigned int max_conns; /* --max-connections */
	atomic_uint n_conns; /* accepted and not yet closed */
	struct tls_ctx *tls; /* NULL: --tls=off */
	bool tls_require; /* --tls=require */

	/*
	 * Admission to transmission (G1-G3 in server.c).  n_admitted counts
	 * the connections admitted and not yet closed; once stopping is set
	 * nothing more is admitted.  on_idle, if set, is called when the
	 * last admitted connection goes while stopping (the engine wakes
	 * its workers so that they can exit).
	 */
	atomic_uint n_admitted;
	atomic_bool stopping;
	void (*on_idle)(struct server *srv);
};

/*
 * Find an export by name.  The empty name selects exports[0].  name need
 * not be NUL-terminated.  Returns NULL if there is none.
 */
struct export *server_find_export(struct server *srv, const char *name,
				  size_t len);

/*
 * Admit a connection to transmission.  False once the server is stopping:
 * the caller refuses the client (NBD_REP_ERR_SHUTDOWN, or a close after
 * EXPORT_NAME).  Each true answer is matched by one server_release() when
 * the connection ends.  Thread-safe.
 */
bool server_admit(struct server *srv);
void server_release(struct server *srv);

/* Stop admitting.  Thread-safe; called once, by the main thread. */
void server_stop(struct server *srv);
bool server_stopping(struct server *srv);

/* Connections admitted and not yet released. */
unsigned int server_admitted(struct server *srv);

/*
 * Let go of what p holds (its checkpoint, H10 in serve/handshake.c):
 * when its connection closes, or will never be served.  Idempotent.
 */
void server_params_put(struct conn_params *p);

#endif /* LOOPD_SERVER_H */
