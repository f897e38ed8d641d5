/* SPDX-License-Identifier: MIT */
/*
 * handshake.h: the fixed-newstyle option negotiation, on a blocking socket.
 */
#ifndef LOOPD_HANDSHAKE_H
#define LOOPD_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/server.h"
#include "serve/tls.h"

struct hs_result {
	struct conn_params conn; /* for the engine (engine/server.h) */
	struct tls_conn *tls; /* non-NULL if the client started TLS */
};

/*
 * Run the handshake on fd (a connected, blocking stream socket) until the
 * client enters transmission (returns 0 and fills *res) or the connection
 * must end: any negative errno means "close it" (-ECONNRESET when the
 * client went away or sent NBD_OPT_ABORT, -EPROTO when it broke a MUST of
 * the protocol, -ENOENT for an unknown NBD_OPT_EXPORT_NAME, -ENOMEM).
 * -EACCES when TLS is required and the client did not start it,
 * -ESHUTDOWN when the server is stopping (H9).  Never exits the process;
 * logs protocol violations with log_msg().  On success the connection holds
 * an admission (server_admit), which the caller hands to the engine or
 * gives back with server_release(); with res->tls set, the caller owns the
 * TLS session (tls_proxy_start).
 */
int handshake_run(int fd, struct server *srv, struct hs_result *res);

/* Transmission flags for exp on a connection (SEND_DF iff structured). */
uint16_t handshake_tflags(const struct export *exp, bool structured);

#endif /* LOOPD_HANDSHAKE_H */
