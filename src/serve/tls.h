/* SPDX-License-Identifier: MIT */
/*
 * tls.h: TLS for NBD connections, through GnuTLS.
 *
 * The option haggling upgrades a connection with NBD_OPT_STARTTLS
 * (tls_conn_start), then reads and writes through the session.  The
 * transmission phase runs on io_uring in the workers, which see plaintext:
 * tls_proxy_start() hands them one end of a socketpair and runs two threads
 * that move bytes between it and the TLS session (one per direction; GnuTLS
 * allows one sender and one receiver on a session at the same time).
 */
#ifndef LOOPD_TLS_H
#define LOOPD_TLS_H

#include <stdbool.h>
#include <stddef.h>

enum tls_mode {
	TLS_OFF, /* NBD_OPT_STARTTLS is refused (ERR_POLICY) */
	TLS_ON, /* offered; plaintext clients are served too */
	TLS_REQUIRE, /* options before STARTTLS get ERR_TLS_REQD */
};

struct tls_config {
	const char *cert_dir; /* server-cert.pem, server-key.pem, ca-cert.pem */
	const char *psk_file; /* psktool format: "username:hexkey" lines */
	bool verify_peer; /* require a client certificate signed by the CA */
};

struct tls_ctx;
struct tls_conn;

/*
 * Load the credentials.  On failure returns NULL and writes a one-line
 * reason into err.
 */
struct tls_ctx *tls_ctx_new(const struct tls_config *cfg, char *err,
			    size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * Run the server side of a TLS handshake on fd (blocking; its SO_RCVTIMEO
 * bounds each read).  0 and *out on success; a negative errno if the
 * connection must end (the reason is logged).
 */
int tls_conn_start(struct tls_ctx *ctx, int fd, struct tls_conn **out);

/* Read or write exactly len bytes.  -ETIMEDOUT when the socket's timeout
   expired (L6), -ECONNRESET on EOF or any other error. */
int tls_conn_read(struct tls_conn *c, void *buf, size_t len);
int tls_conn_write(struct tls_conn *c, const void *buf, size_t len);

/* End a connection that never reached transmission (does not close fd). */
void tls_conn_free(struct tls_conn *c);

/*
 * Start relaying c (over fd, now owned by the relay) to a new plaintext
 * socket, whose other end is returned for the worker: closing it ends the
 * TLS session with close_notify.  A negative errno on failure, in which
 * case c and fd are freed and closed.
 */
int tls_proxy_start(struct tls_conn *c, int fd);

/*
 * At shutdown, after the workers closed their connections: wait up to ms
 * milliseconds for the relays to pass on the last replies and close_notify.
 * True when none is left.
 */
bool tls_proxy_drain(int ms);

/* End every relay now: shut down each client socket (L5). */
void tls_proxy_abort(void);

#endif /* LOOPD_TLS_H */
