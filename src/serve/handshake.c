/* SPDX-License-Identifier: MIT */
/*
 * handshake.c: fixed-newstyle option negotiation, on a blocking socket.
 *
 * Method: handshake_run() sends the greeting, checks the client flags, then
 * loops: read one option (header and all its data), answer it with the
 * option's handler, repeat until an option enters transmission (GO,
 * EXPORT_NAME) or ends the connection.  All byte order work is done by
 * proto.c; this file only moves bytes and keeps the negotiation state.
 *
 * Rules (referred to by number below):
 *
 * H1. The greeting advertises FIXED_NEWSTYLE and NO_ZEROES and nothing
 *     else.  A client flag outside those two MUST drop the connection.
 *     A client that does not set FIXED_NEWSTYLE is still served; it gets
 *     the same answers as everyone else (we always reply to options).
 *
 * H2. An option's data is read in full before it is judged, so a rejected
 *     option never desynchronises the stream and the loop always goes on
 *     to the next option.
 *
 * H3. Hard disconnects happen only where the spec allows them: bad option
 *     magic, bad client flags, an EXPORT_NAME we cannot serve (it cannot
 *     carry an error), ABORT, and two denial-of-service limits:
 *     HS_MAX_OPTIONS options per connection and HS_MAX_OPTLEN bytes of
 *     data per option (we refuse to read a giant option).  Everything else
 *     is answered with an NBD_REP_ERR_* reply, maybe with a short message.
 *
 * H4. Strings from the client longer than NBD_MAX_STRING (4096, a MUST of
 *     the spec) are invalid: ERR_INVALID, or a disconnect for EXPORT_NAME.
 *
 * H5. INFO and GO share one handler and their answer depends only on the
 *     export and on whether structured replies were acked, so a GO after
 *     an identical INFO sends the same information.  NBD_INFO_BLOCK_SIZE
 *     is always sent (the spec lets the server volunteer it); clients that
 *     ignore it, or use EXPORT_NAME, are still served correctly because
 *     the data path bounce-buffers unaligned requests.
 *
 * H6. The metadata contexts are base:allocation and, for each checkpoint
 *     NAME of the export (engine/dirty.h; a read-only export has none),
 *     qemu:dirty-bitmap:NAME, the name qemu-nbd gives a dirty bitmap.  SET
 *     needs structured replies, replaces the previous selection even when
 *     it fails, and selects only exact names ("base:", "qemu:" and
 *     "qemu:dirty-bitmap:" alone are ignored): base:allocation (id 1)
 *     and at most one checkpoint (id 2), the first query that names one
 *     that exists; later checkpoints are ignored, and a context asked for
 *     twice is answered once, so ids are unique in a selection.  LIST
 *     treats "base:", "qemu:" and "qemu:dirty-bitmap:" as wildcards of
 *     what they begin, and lists everything when given no query.  The
 *     selection is bound to the export it was made for: entering
 *     transmission on another export drops it.
 *
 * H7. TLS (tls.c), in the spec's three modes.  --tls=off (NOTLS):
 *     STARTTLS gets ERR_POLICY, never TLS_REQD.  --tls=on: STARTTLS is
 *     accepted, plaintext clients are served too.  --tls=require
 *     (FORCEDTLS): before STARTTLS every option but STARTTLS and ABORT gets
 *     ERR_TLS_REQD, and EXPORT_NAME (which cannot carry an error) ends the
 *     connection.  STARTTLS with data, or a second one, gets ERR_INVALID.
 *     After its ACK the TLS handshake starts at once; if it fails the
 *     connection ends.  A successful upgrade forgets everything negotiated
 *     in plaintext (structured replies, the metadata selection).
 *
 * H8. EXTENDED_HEADERS and unknown options get ERR_UNSUP.
 *
 * H9. Once the server stops, every option but ABORT gets ERR_SHUTDOWN
 *     and the connection ends (EXPORT_NAME, which cannot carry an error,
 *     just ends it).  Admission (G1 in engine/server.c) is taken before the first
 *     byte of GO's or EXPORT_NAME's answer and given back if that answer
 *     cannot be sent, so a client that was told "go" is always served.
 *
 * H10. A selected checkpoint is held by a reference (dirty_get) from the
 *     SET that selected it.  Entering transmission on its export hands the
 *     reference to the connection (conn_params.meta_dirty), which lets it
 *     go when it closes (engine/conn.c) or is never served
 *     (server_params_put); everything else gives it back at once with
 *     dirty_put(): a later SET or a STARTTLS (the selection is replaced),
 *     transmission on another export (H6), a failed handshake.  So a
 *     checkpoint deleted meanwhile stays readable by the connections that
 *     selected it, and no new connection can select it.
 *
 * Logging: each protocol violation by the peer is logged once, on one
 * line; per-option details only with -v (log_verbose).  Client strings are
 * sanitised before they reach a log line or an error message.
 *
 * Context: runs in the connection's thread; touches only immutable export
 * fields, and the export's checkpoints through engine/dirty.h, whose
 * calls take the set's own lock for a moment.  Nothing is sent while a
 * lock is held: LIST copies the names first.
 */
#include "serve/handshake.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "engine/dirty.h"
#include "nbd/proto.h"
#include "serve/tls.h"
#include "util/io.h"
#include "util/log.h"

/* H3: denial-of-service limits. */
#define HS_MAX_OPTIONS 256
#define HS_MAX_OPTLEN 65536

/* H6: the metadata contexts, and their ids once selected. */
#define META_ALLOC_NAME "base:allocation"
#define META_ALLOC_ID 1
#define META_DIRTY_ID 2 /* the one qemu:dirty-bitmap:NAME */
#define META_DIRTY_NAME_MAX (sizeof(DIRTY_CONTEXT_PREFIX) - 1 + DIRTY_NAME_MAX)

/* Handler results, besides a negative errno that ends the connection. */
#define OPT_NEXT 0 /* read the next option */
#define OPT_DONE 1 /* enter transmission; *res is filled */

/* Bytes of a client string shown in logs and error messages. */
#define SHOW_MAX 64

struct hs {
	int fd;
	struct tls_conn *tls; /* after STARTTLS: all I/O goes through it */
	struct server *srv;
	struct hs_result *res;

	/* Negotiation state. */
	bool no_zeroes; /* client set NBD_FLAG_C_NO_ZEROES */
	bool structured; /* NBD_OPT_STRUCTURED_REPLY was acked */
	/* The metadata selection (H6), made for meta_exp (NULL: none). */
	struct export *meta_exp;
	bool meta_alloc; /* base:allocation */
	struct dirty_map *meta_map; /* a checkpoint, held (H10), or NULL */
	unsigned int n_options; /* options received so far (H3) */

	/* The option being handled. */
	uint32_t opt;
	uint32_t len;
	uint8_t *data; /* len bytes (never NULL while handling) */
};

/* --- Socket I/O --- */

/* Read or write through TLS once it is on (H7). */
static int hs_read(struct hs *hs, void *buf, size_t len)
{
	if (hs->tls)
		return tls_conn_read(hs->tls, buf, len);
	return recv_full(hs->fd, buf, len);
}

static int hs_write(struct hs *hs, const void *buf, size_t len, bool more)
{
	if (hs->tls)
		return tls_conn_write(hs->tls, buf, len);
	/* MSG_MORE lets TCP coalesce a reply header with its payload. */
	return send_full(hs->fd, buf, len, more ? MSG_MORE : 0);
}

/* --- Replies --- */

/* Send one option reply whose payload is a followed by b (either empty). */
static int send_reply2(struct hs *hs, uint32_t type, const void *a, size_t alen,
		       const void *b, size_t blen)
{
	uint8_t hdr[sizeof(struct nbd_fixed_new_option_reply)];
	size_t n;
	int ret;

	n = proto_encode_option_reply(hdr, hs->opt, type,
				      (uint32_t)(alen + blen));
	ret = hs_write(hs, hdr, n, alen + blen > 0);
	if (ret == 0 && alen > 0)
		ret = hs_write(hs, a, alen, blen > 0);
	if (ret == 0 && blen > 0)
		ret = hs_write(hs, b, blen, false);
	return ret;
}

static int send_reply(struct hs *hs, uint32_t type, const void *buf, size_t len)
{
	return send_reply2(hs, type, buf, len, NULL, 0);
}

static int send_ack(struct hs *hs)
{
	return send_reply(hs, NBD_REP_ACK, NULL, 0);
}

/*
 * Send an error reply (type has bit 31 set) with a printf-style message.
 * Returns OPT_NEXT, or a negative errno if the reply could not be sent.
 */
static int send_error(struct hs *hs, uint32_t type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int send_error(struct hs *hs, uint32_t type, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	return send_reply(hs, type, msg, (size_t)n);
}

/* --- Helpers --- */

/*
 * Copy a client string into out[SHOW_MAX + 4] for a log line or an error
 * message: printable ASCII is kept, every other byte becomes '?' (so the
 * result is valid UTF-8 and cannot forge log lines), long strings end in
 * "...".
 */
static const char *show(const void *s, size_t len, char *out)
{
	const uint8_t *p = s;
	size_t i, n = len > SHOW_MAX ? SHOW_MAX : len;

	for (i = 0; i < n; i++)
		out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	if (len > n) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static const char *opt_name(uint32_t opt)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return "EXPORT_NAME";
	case NBD_OPT_ABORT:
		return "ABORT";
	case NBD_OPT_LIST:
		return "LIST";
	case NBD_OPT_STARTTLS:
		return "STARTTLS";
	case NBD_OPT_INFO:
		return "INFO";
	case NBD_OPT_GO:
		return "GO";
	case NBD_OPT_STRUCTURED_REPLY:
		return "STRUCTURED_REPLY";
	case NBD_OPT_LIST_META_CONTEXT:
		return "LIST_META_CONTEXT";
	case NBD_OPT_SET_META_CONTEXT:
		return "SET_META_CONTEXT";
	case NBD_OPT_EXTENDED_HEADERS:
		return "EXTENDED_HEADERS";
	default:
		return "unknown";
	}
}

uint16_t handshake_tflags(const struct export *exp, bool structured)
{
	/* SEND_DF MUST be clear without structured replies (1.3). */
	uint16_t f = exp->tflags & (uint16_t)~NBD_FLAG_SEND_DF;

	if (structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

/* H6, H10: forget the metadata selection, giving back its checkpoint. */
static void meta_clear(struct hs *hs)
{
	if (hs->meta_map)
		dirty_put(hs->meta_exp->dirty, hs->meta_map);
	hs->meta_exp = NULL;
	hs->meta_alloc = false;
	hs->meta_map = NULL;
}

/* Fill *res for transmission on exp (GO or EXPORT_NAME). */
static void fill_result(struct hs *hs, struct export *exp)
{
	struct hs_result *res = hs->res;
	/* H6: a selection made for another export does not apply. */
	bool mine = hs->meta_exp == exp;

	res->conn.exp = exp;
	res->conn.structured = hs->structured;
	res->conn.meta_alloc = mine && hs->meta_alloc;
	res->conn.meta_alloc_id = res->conn.meta_alloc ? META_ALLOC_ID : 0;
	res->conn.meta_dirty = NULL;
	if (mine) { /* H10: the reference goes to the connection */
		res->conn.meta_dirty = hs->meta_map;
		hs->meta_map = NULL;
	}
	res->conn.meta_dirty_id = res->conn.meta_dirty ? META_DIRTY_ID : 0;
	meta_clear(hs); /* H10: else it is given back */
	res->conn.tflags = handshake_tflags(exp, hs->structured);
}

/* --- One handler per option --- */

static int opt_export_name(struct hs *hs)
{
	uint8_t buf[sizeof(struct nbd_export_name_reply) + 124];
	struct export *exp;
	char s[SHOW_MAX + 4];
	size_t n;
	int ret;

	if (hs->len > NBD_MAX_STRING) {
		log_msg("client sent a %u-byte EXPORT_NAME; disconnecting",
			hs->len);
		return -EPROTO;
	}
	exp = server_find_export(hs->srv, (const char *)hs->data, hs->len);
	if (!exp) {
		/* Cannot send an error: the spec says terminate. */
		log_msg("client: EXPORT_NAME '%s': no such export; closing",
			show(hs->data, hs->len, s));
		return -ENOENT;
	}

	/* H9: cannot carry an error, so a stopping server just closes. */
	if (!server_admit(hs->srv))
		return -ESHUTDOWN;
	fill_result(hs, exp);
	n = proto_encode_export_name_reply(buf, exp->size, hs->res->conn.tflags,
					   hs->no_zeroes);
	ret = hs_write(hs, buf, n, false);
	if (ret) {
		server_release(hs->srv);
		return ret;
	}
	if (log_verbose)
		log_msg("client: transmission on '%s' (EXPORT_NAME)",
			show(exp->name, strlen(exp->name), s));
	return OPT_DONE;
}

static int opt_abort(struct hs *hs)
{
	/* MUST ACK; the client may already have closed (EPIPE): ignore. */
	(void)send_ack(hs);
	if (log_verbose)
		log_msg("client sent ABORT");
	return -ECONNRESET;
}

static int opt_list(struct hs *hs)
{
	size_t i;
	int ret;

	if (hs->len != 0) {
		log_msg("client sent LIST with %u bytes of data", hs->len);
		return send_error(hs, NBD_REP_ERR_INVALID,
				  "NBD_OPT_LIST takes no data");
	}

	for (i = 0; i < hs->srv->n_exports; i++) {
		const struct export *exp = hs->srv->exports[i];
		const char *desc = exp->description ? exp->description : "";
		uint8_t *buf;
		size_t n;

		buf = malloc(4 + strlen(exp->name) + strlen(desc));
		if (!buf)
			return -ENOMEM;
		n = proto_encode_rep_server(buf, exp->name, desc);
		ret = send_reply(hs, NBD_REP_SERVER, buf, n);
		free(buf);
		if (ret)
			return ret;
	}
	return send_ack(hs);
}

static int opt_starttls(struct hs *hs)
{
	int ret;

	/* H7 */
	if (!hs->srv->tls) {
		if (log_verbose)
			log_msg("client asked for TLS; refused (--tls=off)");
		return send_error(hs, NBD_REP_ERR_POLICY,
				  "TLS is not enabled on this server");
	}
	if (hs->len != 0) {
		log_msg("client sent STARTTLS with %u bytes of data", hs->len);
		return send_error(hs, NBD_REP_ERR_INVALID,
				  "NBD_OPT_STARTTLS takes no data");
	}
	if (hs->tls) {
		log_msg("client sent STARTTLS twice");
		return send_error(hs, NBD_REP_ERR_INVALID, "TLS is already on");
	}
	ret = send_ack(hs);
	if (ret)
		return ret;
	ret = tls_conn_start(hs->srv->tls, hs->fd, &hs->tls);
	if (ret)
		return ret;
	hs->structured = false;
	meta_clear(hs); /* H10 */
	return OPT_NEXT;
}

static int opt_structured_reply(struct hs *hs)
{
	if (hs->len != 0) {
		log_msg("client sent STRUCTURED_REPLY with %u bytes of data",
			hs->len);
		return send_error(hs, NBD_REP_ERR_INVALID,
				  "NBD_OPT_STRUCTURED_REPLY takes no data");
	}
	if (hs->structured) {
		/* The spec lets a repeated state-changing option fail. */
		if (log_verbose)
			log_msg("client repeated STRUCTURED_REPLY");
		return send_error(hs, NBD_REP_ERR_INVALID,
				  "structured replies already negotiated");
	}
	hs->structured = true;
	return send_ack(hs);
}

/* Send an NBD_REP_INFO whose payload is u16 type + str (NAME, DESCRIPTION). */
static int send_info_string(struct hs *hs, uint16_t type, const char *str)
{
	uint8_t t[2];

	proto_put_be16(t, type);
	return send_reply2(hs, NBD_REP_INFO, t, sizeof t, str, strlen(str));
}

/*
 * The export an INFO, GO or meta-context option names.  Returns it, or NULL
 * after answering the client; *ret then holds the answer's result (0 to go
 * on negotiating, a negative errno to close).
 */
static struct export *find_named_export(struct hs *hs, const char *oname,
					const char *name, uint32_t namelen,
					int *ret)
{
	struct export *exp;
	char s[SHOW_MAX + 4];

	if (namelen > NBD_MAX_STRING) {
		log_msg("client sent %s with a %u-byte export name", oname,
			namelen);
		*ret = send_error(hs, NBD_REP_ERR_INVALID,
				  "export name longer than %d bytes",
				  NBD_MAX_STRING);
		return NULL;
	}
	exp = server_find_export(hs->srv, name, namelen);
	if (!exp) {
		show(name, namelen, s);
		if (log_verbose)
			log_msg("client: %s '%s': no such export", oname, s);
		*ret = send_error(hs, NBD_REP_ERR_UNKNOWN,
				  "no export named '%s'", s);
	}
	return exp;
}

/* An option whose data does not parse (H2: it was read whole). */
static int refuse_malformed(struct hs *hs, const char *oname)
{
	log_msg("client sent a malformed %s (%u bytes)", oname, hs->len);
	return send_error(hs, NBD_REP_ERR_INVALID, "malformed %s request",
			  oname);
}

/* H9: the server is stopping; the option is refused, the connection ends. */
static int refuse_shutdown(struct hs *hs)
{
	if (log_verbose)
		log_msg("client sent %s while the server stops; "
			"ERR_SHUTDOWN",
			opt_name(hs->opt));
	(void)send_error(hs, NBD_REP_ERR_SHUTDOWN, "the server is stopping");
	return -ESHUTDOWN;
}

static int send_info_go(struct hs *hs, const struct export *exp, bool want_name,
			bool want_desc);

/* NBD_OPT_INFO and NBD_OPT_GO (H5). */
static int opt_info_go(struct hs *hs)
{
	const char *oname = opt_name(hs->opt);
	bool want_name = false, want_desc = false;
	struct export *exp;
	const char *name;
	char s[SHOW_MAX + 4];
	uint32_t namelen;
	uint16_t n_info, i;
	int ret;

	ret = proto_parse_info_opt(hs->data, hs->len, &name, &namelen, &n_info);
	if (ret < 0)
		return refuse_malformed(hs, oname);
	exp = find_named_export(hs, oname, name, namelen, &ret);
	if (!exp)
		return ret;

	/* Unknown info requests MUST be ignored. */
	for (i = 0; i < n_info; i++) {
		switch (proto_info_request(hs->data, namelen, i)) {
		case NBD_INFO_NAME:
			want_name = true;
			break;
		case NBD_INFO_DESCRIPTION:
			want_desc = true;
			break;
		default:
			break;
		}
	}

	/* H9: admitted before the first byte of GO's answer. */
	if (hs->opt == NBD_OPT_GO && !server_admit(hs->srv))
		return refuse_shutdown(hs);
	ret = send_info_go(hs, exp, want_name, want_desc);
	if (ret) {
		if (hs->opt == NBD_OPT_GO)
			server_release(hs->srv);
		return ret;
	}
	if (hs->opt == NBD_OPT_INFO)
		return OPT_NEXT;

	fill_result(hs, exp);
	if (log_verbose)
		log_msg("client: transmission on '%s' (structured %d, "
			"base:allocation %d, dirty bitmap %d)",
			show(exp->name, strlen(exp->name), s), hs->structured,
			hs->res->conn.meta_alloc,
			hs->res->conn.meta_dirty != NULL);
	return OPT_DONE;
}

/* The replies to INFO and GO, up to the final ACK (H5). */
static int send_info_go(struct hs *hs, const struct export *exp, bool want_name,
			bool want_desc)
{
	uint8_t buf[16];
	size_t n;
	int ret;

	n = proto_encode_info_export(buf, exp->size,
				     handshake_tflags(exp, hs->structured));
	ret = send_reply(hs, NBD_REP_INFO, buf, n);
	if (ret)
		return ret;

	/* H5: always volunteered. */
	n = proto_encode_info_block_size(buf, exp->min_block, exp->pref_block,
					 exp->max_payload);
	ret = send_reply(hs, NBD_REP_INFO, buf, n);
	if (ret)
		return ret;

	if (want_name) {
		ret = send_info_string(hs, NBD_INFO_NAME, exp->name);
		if (ret)
			return ret;
	}
	if (want_desc && exp->description && exp->description[0]) {
		ret = send_info_string(hs, NBD_INFO_DESCRIPTION,
				       exp->description);
		if (ret)
			return ret;
	}

	return send_ack(hs);
}

/* A checkpoint's name, copied for LIST (H6), and whether a query hit it. */
struct meta_name {
	char name[DIRTY_NAME_MAX + 1];
	bool hit;
};

/* What the queries of a LIST/SET_META_CONTEXT option matched (H6). */
struct meta_match {
	bool list; /* LIST: "base:", "qemu:", "qemu:dirty-bitmap:" are
		      wildcards */
	bool alloc; /* base:allocation matched */
	struct dirty_set *ds; /* the export's checkpoints, or NULL */
	struct meta_name *names; /* LIST: a copy of them */
	size_t n_names;
	struct dirty_map *map; /* SET: the checkpoint selected, held (H10) */
	const char *map_name; /* its name, in the option's data */
	uint32_t map_len;
	unsigned int ignored; /* SET: queries of further checkpoints */
};

static bool is(const char *q, uint32_t qlen, const char *s)
{
	return qlen == strlen(s) && memcmp(q, s, qlen) == 0;
}

static void meta_query(const char *q, uint32_t qlen, void *opaque)
{
	const uint32_t plen = sizeof(DIRTY_CONTEXT_PREFIX) - 1;
	struct meta_match *m = opaque;
	const char *name;
	uint32_t nlen;
	size_t i;

	/* Unknown namespaces and names MUST be ignored. */
	if (is(q, qlen, META_ALLOC_NAME) || (m->list && is(q, qlen, "base:")))
		m->alloc = true;
	if (!m->ds)
		return;
	if (m->list &&
	    (is(q, qlen, "qemu:") || is(q, qlen, DIRTY_CONTEXT_PREFIX))) {
		for (i = 0; i < m->n_names; i++)
			m->names[i].hit = true;
		return;
	}
	if (qlen <= plen || memcmp(q, DIRTY_CONTEXT_PREFIX, plen))
		return;
	name = q + plen;
	nlen = qlen - plen;
	if (m->list) {
		for (i = 0; i < m->n_names; i++)
			if (is(name, nlen, m->names[i].name))
				m->names[i].hit = true;
	} else if (!m->map) {
		m->map = dirty_get(m->ds, name, nlen); /* H10 */
		m->map_name = name;
		m->map_len = nlen;
	} else if (nlen != m->map_len || memcmp(name, m->map_name, nlen)) {
		m->ignored++; /* H6: one checkpoint per selection */
	}
}

/* dirty_list(): copy the names, so that nothing is sent under its lock. */
static void copy_name(const char *name, uint64_t dirty_bytes, void *opaque)
{
	struct meta_match *m = opaque;
	size_t len = strlen(name);

	(void)dirty_bytes;
	if (m->n_names < DIRTY_MAPS_MAX && len <= DIRTY_NAME_MAX)
		memcpy(m->names[m->n_names++].name, name, len + 1);
}

/* Send one NBD_REP_META_CONTEXT: id and "qemu:dirty-bitmap:" name. */
static int send_dirty_context(struct hs *hs, uint32_t id, const char *name,
			      size_t len)
{
	char full[META_DIRTY_NAME_MAX + 1];
	uint8_t buf[4 + META_DIRTY_NAME_MAX];
	size_t n;

	if (len > DIRTY_NAME_MAX) /* not a name dirty_get() finds */
		return 0;
	snprintf(full, sizeof full, "%s%.*s", DIRTY_CONTEXT_PREFIX, (int)len,
		 name);
	n = proto_encode_meta_context(buf, id, full);
	return send_reply(hs, NBD_REP_META_CONTEXT, buf, n);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT (H6). */
static int opt_meta_context(struct hs *hs)
{
	bool set = hs->opt == NBD_OPT_SET_META_CONTEXT;
	struct meta_match m = {.list = !set};
	const char *oname = opt_name(hs->opt);
	uint8_t buf[4 + sizeof(META_ALLOC_NAME)];
	struct export *exp;
	const char *name;
	uint32_t namelen, n_queries;
	size_t n, i, listed = 0;
	int ret;

	/* SET replaces the previous selection, even when it fails. */
	if (set)
		meta_clear(hs); /* H10 */

	if (set && !hs->structured) {
		log_msg("client sent SET_META_CONTEXT before STRUCTURED_REPLY");
		return send_error(hs, NBD_REP_ERR_INVALID,
				  "negotiate structured replies first");
	}
	if (proto_parse_meta_opt(hs->data, hs->len, &name, &namelen, &n_queries,
				 NULL, NULL) < 0)
		return refuse_malformed(hs, oname);
	exp = find_named_export(hs, oname, name, namelen, &ret);
	if (!exp)
		return ret;

	m.ds = exp->dirty;
	if (!set && m.ds) {
		m.names = calloc(DIRTY_MAPS_MAX, sizeof *m.names);
		if (!m.names)
			return -ENOMEM;
		dirty_list(m.ds, copy_name, &m);
	}
	/* Parsed again, now that the export is known: it cannot fail. */
	(void)proto_parse_meta_opt(hs->data, hs->len, &name, &namelen,
				   &n_queries, meta_query, &m);

	/* LIST with no query MUST list everything; SET with none selects none. */
	if (!set && n_queries == 0) {
		m.alloc = true;
		for (i = 0; i < m.n_names; i++)
			m.names[i].hit = true;
	}
	if (set && (m.alloc || m.map)) { /* kept even if a send fails (H10) */
		hs->meta_exp = exp;
		hs->meta_alloc = m.alloc;
		hs->meta_map = m.map;
	}

	ret = 0;
	if (m.alloc) {
		/* LIST: the id is reserved and SHOULD be 0. */
		n = proto_encode_meta_context(buf, set ? META_ALLOC_ID : 0,
					      META_ALLOC_NAME);
		ret = send_reply(hs, NBD_REP_META_CONTEXT, buf, n);
	}
	if (!ret && m.map)
		ret = send_dirty_context(hs, META_DIRTY_ID, m.map_name,
					 m.map_len);
	for (i = 0; !ret && i < m.n_names; i++) {
		if (!m.names[i].hit)
			continue;
		ret = send_dirty_context(hs, 0, m.names[i].name,
					 strlen(m.names[i].name));
		listed++;
	}
	free(m.names);
	if (ret)
		return ret;
	if (log_verbose)
		log_msg("client: %s: %u queries, base:allocation %s, "
			"%zu checkpoints %s%s",
			oname, n_queries, m.alloc ? "matched" : "not matched",
			set ? (size_t)(m.map != NULL) : listed,
			set ? "selected" : "listed",
			m.ignored ? " (further checkpoints ignored)" : "");
	return send_ack(hs);
}

static int opt_unsupported(struct hs *hs)
{
	/* H8; the data was consumed (H2), so the loop goes on. */
	if (log_verbose)
		log_msg("client sent unsupported option %u (%s)", hs->opt,
			opt_name(hs->opt));
	return send_error(hs, NBD_REP_ERR_UNSUP, "option %u not supported",
			  hs->opt);
}

static int handle_option(struct hs *hs)
{
	/* H9: a stopping server negotiates no further. */
	if (server_stopping(hs->srv) && hs->opt != NBD_OPT_ABORT) {
		if (hs->opt == NBD_OPT_EXPORT_NAME)
			return -ESHUTDOWN;
		return refuse_shutdown(hs);
	}
	/* H7: FORCEDTLS. */
	if (hs->srv->tls_require && !hs->tls && hs->opt != NBD_OPT_STARTTLS &&
	    hs->opt != NBD_OPT_ABORT) {
		if (hs->opt == NBD_OPT_EXPORT_NAME) {
			log_msg("client sent EXPORT_NAME without TLS "
				"(--tls=require); closing");
			return -EACCES;
		}
		if (log_verbose)
			log_msg("client sent %s before STARTTLS; TLS_REQD",
				opt_name(hs->opt));
		return send_error(
			hs, NBD_REP_ERR_TLS_REQD,
			"this server requires TLS (NBD_OPT_STARTTLS)");
	}
	switch (hs->opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(hs);
	case NBD_OPT_ABORT:
		return opt_abort(hs);
	case NBD_OPT_LIST:
		return opt_list(hs);
	case NBD_OPT_STARTTLS:
		return opt_starttls(hs);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(hs);
	case NBD_OPT_STRUCTURED_REPLY:
		return opt_structured_reply(hs);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta_context(hs);
	default: /* NBD_OPT_EXTENDED_HEADERS and unknown options */
		return opt_unsupported(hs);
	}
}

/* --- The loop --- */

/* H1: greeting and client flags. */
static int greet(struct hs *hs)
{
	const uint32_t known = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
	uint8_t buf[sizeof(struct nbd_new_handshake)];
	uint32_t cflags;
	size_t n;
	int ret;

	n = proto_encode_greeting(buf,
				  NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	ret = hs_write(hs, buf, n, false);
	if (ret)
		return ret;
	ret = hs_read(hs, buf, 4);
	if (ret)
		return ret;

	cflags = proto_get_be32(buf);
	if (cflags & ~known) {
		log_msg("client set unknown client flags 0x%08x; disconnecting",
			cflags & ~known);
		return -EPROTO;
	}
	hs->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;
	if (log_verbose && !(cflags & NBD_FLAG_C_FIXED_NEWSTYLE))
		log_msg("client did not set FIXED_NEWSTYLE; serving it anyway");
	return 0;
}

/* Read the next option header and its data into hs (H2, H3). */
static int read_option(struct hs *hs)
{
	uint8_t hdr[sizeof(struct nbd_option)];
	int ret;

	ret = hs_read(hs, hdr, sizeof hdr);
	if (ret)
		return ret;
	if (proto_decode_option(hdr, &hs->opt, &hs->len) < 0) {
		log_msg("client sent bad option magic 0x%016llx; disconnecting",
			(unsigned long long)proto_get_be64(hdr));
		return -EPROTO;
	}
	if (++hs->n_options > HS_MAX_OPTIONS) {
		log_msg("client sent more than %d options; disconnecting",
			HS_MAX_OPTIONS);
		return -EPROTO;
	}
	if (hs->len > HS_MAX_OPTLEN) {
		log_msg("client sent option %u with %u bytes; disconnecting",
			hs->opt, hs->len);
		return -EPROTO;
	}
	if (log_verbose)
		log_msg("client option %u (%s), %u bytes", hs->opt,
			opt_name(hs->opt), hs->len);

	hs->data = malloc(hs->len ? hs->len : 1);
	if (!hs->data)
		return -ENOMEM;
	ret = hs_read(hs, hs->data, hs->len);
	if (ret) {
		free(hs->data);
		hs->data = NULL;
	}
	return ret;
}

int handshake_run(int fd, struct server *srv, struct hs_result *res)
{
	struct hs hs = {.fd = fd, .srv = srv, .res = res};
	int ret;

	res->tls = NULL;
	res->conn.meta_dirty = NULL;
	ret = greet(&hs);
	while (ret == 0) {
		ret = read_option(&hs);
		if (ret)
			break;
		ret = handle_option(&hs);
		free(hs.data);
		hs.data = NULL;
		if (ret == OPT_DONE) {
			res->tls = hs.tls;
			return 0;
		}
	}
	meta_clear(&hs); /* H10 */
	server_params_put(&res->conn); /* after EXPORT_NAME's failed send */
	tls_conn_free(hs.tls);
	return ret;
}
