/* SPDX-License-Identifier: MIT */
/*
 * worker.h: the I/O engine.  srv->n_queues worker threads, each with its
 * own io_uring, serve connections in the transmission phase.
 */
#ifndef LOOPD_WORKER_H
#define LOOPD_WORKER_H

#include "engine/server.h"

/* Start the worker threads.  Returns 0 or -errno. */
int workers_start(struct server *srv);

/*
 * Hand a connection that finished its handshake to a worker.  Called from
 * handshake threads.  Takes ownership of fd and of the connection's
 * admission (server_admit), which is released when the connection closes.
 */
void workers_add_conn(int fd, const struct conn_params *params, bool tcp);

/*
 * Shutdown (E4): workers_stop() makes every worker stop reading requests,
 * finish the ones in flight and send their replies; each worker exits once
 * no admitted connection is left.  workers_done_fd() becomes readable when
 * all have exited.  workers_force() ends the grace period: every remaining
 * connection is shut down, its unsent replies dropped (I/O in flight still
 * completes).  workers_join() waits for the threads.
 */
void workers_stop(void);
void workers_force(void);
int workers_done_fd(void);
void workers_join(void);

#endif
