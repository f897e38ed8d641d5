/* SPDX-License-Identifier: MIT */
/*
 * tls.c: TLS for NBD connections, through GnuTLS (see tls.h).
 *
 * Rules:
 * L1. TLS 1.2 or later only (the NBD spec's MUST).  PSK key exchanges are
 *     enabled only when a PSK file is configured.
 * L2. A failed handshake ends the connection (the spec's MUST after the
 *     STARTTLS ACK); nothing is sent in plaintext after the ACK.
 * L3. With --tls-verify-peer a client must present a certificate that
 *     chains to ca-cert.pem (and is not in ca-crl.pem); GnuTLS checks it
 *     during the handshake.
 * L4. The relay never reorders or drops bytes: one thread per direction,
 *     each a plain loop.  The worker's end closing ends the session with
 *     close_notify; the client's end closing (or any TLS error) is an EOF
 *     on the worker's end, which then finishes outstanding requests as on
 *     any disconnect.  A client that stops reading blocks only its own
 *     relay and its own connection.
 * L5. At shutdown the relays get what is left of the grace period to pass
 *     on the last replies and close_notify; then tls_proxy_abort() shuts
 *     every client socket down, which ends a relay blocked in a send to a
 *     client that does not read.
 * L6. During negotiation the handshake timeout bounds every TLS read and
 *     write (GNUTLS_E_AGAIN is the timeout expiring, never a retry).
 */
#include "serve/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/io.h"
#include "util/list.h"
#include "util/log.h"

struct tls_ctx {
	gnutls_certificate_credentials_t x509; /* NULL without cert_dir */
	gnutls_psk_server_credentials_t psk; /* NULL without psk_file */
	gnutls_priority_t prio;
	bool verify_peer;
};

struct tls_conn {
	gnutls_session_t s;
	int fd; /* the client's socket (relay only) */
	int plain; /* the relay's end of the socketpair */
	atomic_int refs; /* relay threads still running */
	char peer[256]; /* "PSK user NAME", "X.509 DN" or "anonymous" */
	struct list_node node; /* in relays, under relay_lock */
};

/* Relays still running, so shutdown can let them deliver the last replies,
   or end them once the grace period is over (L5). */
static pthread_mutex_t relay_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t relay_cond = PTHREAD_COND_INITIALIZER;
static unsigned int n_relays;
static struct list_node relays = {&relays, &relays};

/* --- Credentials --- */

static bool file_exists(const char *dir, const char *name, char *path,
			size_t len)
{
	snprintf(path, len, "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static int load_x509(struct tls_ctx *ctx, const struct tls_config *cfg,
		     char *err, size_t errlen)
{
	char cert[4096], key[4096], path[4096];
	struct stat st;
	int r;

	if (stat(cfg->cert_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "--tls-certificates %s: not a directory",
			 cfg->cert_dir);
		return -1;
	}
	if (!file_exists(cfg->cert_dir, "server-cert.pem", cert, sizeof cert) ||
	    !file_exists(cfg->cert_dir, "server-key.pem", key, sizeof key)) {
		snprintf(err, errlen,
			 "--tls-certificates %s: needs server-cert.pem and "
			 "server-key.pem",
			 cfg->cert_dir);
		return -1;
	}
	r = gnutls_certificate_allocate_credentials(&ctx->x509);
	if (r < 0)
		goto gnutls_err;
	r = gnutls_certificate_set_x509_key_file(ctx->x509, cert, key,
						 GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		snprintf(err, errlen, "%s, %s: %s", cert, key,
			 gnutls_strerror(r));
		return -1;
	}
	if (file_exists(cfg->cert_dir, "ca-cert.pem", path, sizeof path)) {
		r = gnutls_certificate_set_x509_trust_file(ctx->x509, path,
							   GNUTLS_X509_FMT_PEM);
		if (r <= 0) {
			snprintf(err, errlen, "%s: %s", path,
				 r < 0 ? gnutls_strerror(r)
				       : "no certificate in it");
			return -1;
		}
	} else if (cfg->verify_peer) {
		snprintf(err, errlen,
			 "--tls-verify-peer needs %s/ca-cert.pem to check "
			 "client certificates against",
			 cfg->cert_dir);
		return -1;
	}
	if (file_exists(cfg->cert_dir, "ca-crl.pem", path, sizeof path)) {
		r = gnutls_certificate_set_x509_crl_file(ctx->x509, path,
							 GNUTLS_X509_FMT_PEM);
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path,
				 gnutls_strerror(r));
			return -1;
		}
	}
	gnutls_certificate_set_known_dh_params(ctx->x509,
					       GNUTLS_SEC_PARAM_MEDIUM);
	return 0;

gnutls_err:
	snprintf(err, errlen, "TLS: %s", gnutls_strerror(r));
	return -1;
}

/* Check the PSK file now, so a typo fails at start, not at the first
 * client: GnuTLS reads it at each handshake. */
static int load_psk(struct tls_ctx *ctx, const struct tls_config *cfg,
		    char *err, size_t errlen)
{
	char line[1024];
	unsigned int n = 0;
	FILE *f;
	int r;

	f = fopen(cfg->psk_file, "re");
	if (!f) {
		snprintf(err, errlen, "--tls-psk %s: %s", cfg->psk_file,
			 strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		size_t hex;

		if (line[0] == '\n' || line[0] == '#')
			continue;
		hex = colon ? strspn(colon + 1, "0123456789abcdefABCDEF") : 0;
		if (!colon || colon == line || hex == 0 || hex % 2) {
			fclose(f);
			snprintf(err, errlen,
				 "--tls-psk %s: line %u is not "
				 "USERNAME:HEXKEY (make keys with psktool)",
				 cfg->psk_file, n + 1);
			return -1;
		}
		n++;
	}
	fclose(f);
	if (n == 0) {
		snprintf(err, errlen, "--tls-psk %s: no keys in it",
			 cfg->psk_file);
		return -1;
	}
	r = gnutls_psk_allocate_server_credentials(&ctx->psk);
	if (r == 0)
		r = gnutls_psk_set_server_credentials_file(ctx->psk,
							   cfg->psk_file);
	if (r < 0) {
		snprintf(err, errlen, "--tls-psk %s: %s", cfg->psk_file,
			 gnutls_strerror(r));
		return -1;
	}
	gnutls_psk_set_server_known_dh_params(ctx->psk,
					      GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

struct tls_ctx *tls_ctx_new(const struct tls_config *cfg, char *err,
			    size_t errlen)
{
	/* L1 */
	static const char prio_x509[] =
		"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
	static const char prio_psk[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:"
				       "+VERS-TLS1.2:+ECDHE-PSK:+DHE-PSK:+PSK";
	struct tls_ctx *ctx;
	const char *where;
	int r;

	if (!cfg->cert_dir && !cfg->psk_file) {
		snprintf(err, errlen,
			 "TLS needs --tls-certificates DIR or --tls-psk FILE");
		return NULL;
	}
	if (cfg->verify_peer && !cfg->cert_dir) {
		snprintf(err, errlen,
			 "--tls-verify-peer needs --tls-certificates DIR");
		return NULL;
	}
	ctx = calloc(1, sizeof *ctx);
	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctx->verify_peer = cfg->verify_peer;
	if (cfg->cert_dir && load_x509(ctx, cfg, err, errlen) < 0)
		goto fail;
	if (cfg->psk_file && load_psk(ctx, cfg, err, errlen) < 0)
		goto fail;
	r = gnutls_priority_init(&ctx->prio,
				 cfg->psk_file ? prio_psk : prio_x509, &where);
	if (r < 0) {
		snprintf(err, errlen, "TLS priority: %s", gnutls_strerror(r));
		goto fail;
	}
	return ctx;

fail:
	tls_ctx_free(ctx);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->prio)
		gnutls_priority_deinit(ctx->prio);
	if (ctx->x509)
		gnutls_certificate_free_credentials(ctx->x509);
	if (ctx->psk)
		gnutls_psk_free_server_credentials(ctx->psk);
	free(ctx);
}

/* --- Sessions --- */

static void describe_peer(struct tls_conn *c)
{
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn;
	unsigned int n = 0;

	snprintf(c->peer, sizeof c->peer, "anonymous");
	if (gnutls_auth_get_type(c->s) == GNUTLS_CRD_PSK) {
		const char *u = gnutls_psk_server_get_username(c->s);

		snprintf(c->peer, sizeof c->peer, "PSK user %s", u ? u : "?");
		return;
	}
	certs = gnutls_certificate_get_peers(c->s, &n);
	if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
	    gnutls_x509_crt_get_dn2(crt, &dn) == 0) {
		snprintf(c->peer, sizeof c->peer, "X.509 %.*s", (int)dn.size,
			 (const char *)dn.data);
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
}

int tls_conn_start(struct tls_ctx *ctx, int fd, struct tls_conn **out)
{
	struct tls_conn *c;
	int r;

	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->fd = c->plain = -1;
	r = gnutls_init(&c->s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
	if (r < 0) {
		free(c);
		log_msg("TLS: %s", gnutls_strerror(r));
		return -ENOMEM;
	}
	gnutls_priority_set(c->s, ctx->prio);
	if (ctx->x509)
		gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, ctx->x509);
	if (ctx->psk)
		gnutls_credentials_set(c->s, GNUTLS_CRD_PSK, ctx->psk);
	if (ctx->verify_peer) { /* L3 */
		gnutls_certificate_server_set_request(c->s,
						      GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(c->s, NULL, 0);
	}
	gnutls_transport_set_int(c->s, fd);

	do
		r = gnutls_handshake(c->s);
	while (r == GNUTLS_E_INTERRUPTED);
	if (r < 0) { /* L2; E_AGAIN is the handshake timeout expiring */
		log_msg("TLS handshake failed: %s%s",
			r == GNUTLS_E_AGAIN ? "timed out"
			: r == GNUTLS_E_PULL_ERROR ||
					r == GNUTLS_E_PREMATURE_TERMINATION
				? "the client hung up (does it trust our "
				  "certificate?)"
				: gnutls_strerror(r),
			r == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER && ctx->psk
				? " (with PSK: an unknown user or a wrong key)"
				: "");
		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t why;
			unsigned int st =
				gnutls_session_get_verify_cert_status(c->s);

			if (gnutls_certificate_verification_status_print(
				    st, GNUTLS_CRT_X509, &why, 0) == 0) {
				log_msg("TLS: client certificate: %s",
					(const char *)why.data);
				gnutls_free(why.data);
			}
		}
		tls_conn_free(c);
		return -ECONNRESET;
	}
	describe_peer(c);
	if (log_verbose) {
		char *desc = gnutls_session_get_desc(c->s);

		log_msg("TLS: %s, %s", c->peer, desc ? desc : "?");
		gnutls_free(desc);
	}
	*out = c;
	return 0;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	gnutls_deinit(c->s);
	free(c);
}

/*
 * L6: on these blocking sockets GNUTLS_E_AGAIN means that SO_RCVTIMEO or
 * SO_SNDTIMEO (the handshake timeout) expired: the client stalled, and the
 * connection ends like any other stalled negotiation.
 */
int tls_conn_read(struct tls_conn *c, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = gnutls_record_recv(c->s, p, len);

		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_AGAIN)
			return -ETIMEDOUT; /* L6 */
		if (n <= 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tls_conn_write(struct tls_conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = gnutls_record_send(c->s, p, len);

		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_AGAIN)
			return -ETIMEDOUT; /* L6 */
		if (n <= 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* --- The relay (L4) --- */

static void relay_put(struct tls_conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	/* Off the list before its fd closes: tls_proxy_abort() uses it. */
	pthread_mutex_lock(&relay_lock);
	list_del(&c->node);
	if (--n_relays == 0)
		pthread_cond_broadcast(&relay_cond);
	pthread_mutex_unlock(&relay_lock);
	close(c->fd);
	close(c->plain);
	tls_conn_free(c);
}

/* Client -> worker: decrypt each record and pass it on. */
static void *relay_in(void *arg)
{
	struct tls_conn *c = arg;
	uint8_t *buf = malloc(16384);

	while (buf) {
		ssize_t n = gnutls_record_recv(c->s, buf, 16384);

		if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
			continue;
		if (n < 0 && log_verbose && n != GNUTLS_E_PREMATURE_TERMINATION)
			log_msg("TLS: %s: %s", c->peer,
				gnutls_strerror((int)n));
		if (n <= 0 || send_full(c->plain, buf, (size_t)n, 0) < 0)
			break;
	}
	free(buf);
	/* EOF for the worker: it finishes what is in flight, then closes. */
	shutdown(c->plain, SHUT_WR);
	relay_put(c);
	return NULL;
}

/* Worker -> client: encrypt replies; the worker's EOF ends the session. */
static void *relay_out(void *arg)
{
	const size_t bufsize = 256 * 1024;
	struct tls_conn *c = arg;
	uint8_t *buf = malloc(bufsize);
	bool client_gone = buf == NULL;

	while (!client_gone) {
		ssize_t n = recv(c->plain, buf, bufsize, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		client_gone = tls_conn_write(c, buf, (size_t)n) < 0;
	}
	free(buf);
	if (client_gone) {
		/* The worker sees its replies fail, as with a plain socket. */
		shutdown(c->plain, SHUT_RDWR);
	} else {
		struct timeval tv = {.tv_sec = 5};

		/* close_notify, without waiting on a client that won't read */
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		gnutls_bye(c->s, GNUTLS_SHUT_WR);
	}
	/* Wakes relay_in if it is still waiting for the client. */
	shutdown(c->fd, SHUT_RDWR);
	relay_put(c);
	return NULL;
}

int tls_proxy_start(struct tls_conn *c, int fd)
{
	pthread_attr_t attr;
	pthread_t t;
	int sv[2], err;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		err = -errno;
		goto fail;
	}
	c->fd = fd;
	c->plain = sv[0];
	atomic_init(&c->refs, 2);
	pthread_mutex_lock(&relay_lock);
	n_relays++;
	list_add_tail(&relays, &c->node);
	pthread_mutex_unlock(&relay_lock);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = -pthread_create(&t, &attr, relay_out, c);
	if (err) {
		/* No thread runs yet: undo by hand. */
		pthread_attr_destroy(&attr);
		close(sv[1]);
		atomic_store(&c->refs, 1);
		relay_put(c);
		return err;
	}
	err = -pthread_create(&t, &attr, relay_in, c);
	pthread_attr_destroy(&attr);
	if (err) {
		/* relay_out sees EOF once sv[1] closes, and cleans up. */
		close(sv[1]);
		relay_put(c);
		return err;
	}
	return sv[1];

fail:
	tls_conn_free(c);
	close(fd);
	return err;
}

bool tls_proxy_drain(int ms)
{
	struct timespec until;
	bool done;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&relay_lock);
	while (n_relays > 0 &&
	       pthread_cond_timedwait(&relay_cond, &relay_lock, &until) == 0)
		;
	done = n_relays == 0;
	pthread_mutex_unlock(&relay_lock);
	return done;
}

void tls_proxy_abort(void)
{
	struct list_node *n;

	pthread_mutex_lock(&relay_lock);
	list_for_each(n, &relays)
	{
		shutdown(list_entry(n, struct tls_conn, node)->fd,
			 SHUT_RDWR); /* L5 */
	}
	pthread_mutex_unlock(&relay_lock);
}
