/* SPDX-License-Identifier: MIT */
/*
 * worker.h: the I/O engine.  srv->n_queues worker threads, each with its
 * own io_uring, serve connections in the transmission phase.
 */
#ifndef LOOPD_WORKER_H
#define LOOPD_WORKER_H

#include "handshake.h"
#include "server.h"

/* Start the worker threads.  Returns 0 or -errno. */
int workers_start(struct server *srv);

/*
 * Hand a connection that finished its handshake to a worker.  Called from
 * handshake threads.  Takes ownership of fd (closes it if stopping).
 */
void workers_add_conn(int fd, const struct hs_result *hs, bool tcp);

/*
 * Graceful stop: stop reading requests, finish the ones in flight, send
 * their replies, close every connection, join the threads.
 */
void workers_stop(void);

#endif
