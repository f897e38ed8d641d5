/* SPDX-License-Identifier: MIT */
/*
 * fuzz-handshake.c: libFuzzer harness for the option negotiation
 * (handshake_run() in src/serve/handshake.c), over a real socket.
 *
 * Input: the bytes a client sends after the server's greeting, as they
 * would be on the wire: the 32-bit client flags, then options (IHAVEOPT,
 * option, length, data), in any number and any shape.
 *
 * Method: one AF_UNIX socketpair per input.  handshake_run() runs on one
 * end, in the fuzzer's thread, exactly as a connection thread runs it.  A
 * peer thread plays the client on the other end: it writes the input,
 * shuts its write side (so a short input ends in EOF, never in a hang),
 * and reads everything the server sends until the server closes, so the
 * server never blocks on a full socket.  The peer polls both directions,
 * so neither side can fill its buffer while the other waits.
 *
 * The server has two exports built by hand (no file, no disk I/O per
 * input): "disk", the default, read-write, with a description; and "ro",
 * read-only, with 4 KiB blocks and no description.  log_msg() is replaced
 * by one that formats every message and drops it, and log_verbose is on,
 * so every log line's format is exercised without flooding the output.
 *
 * Checks, besides ASan/UBSan/LSan (any failure calls abort()).  The harness
 * replays the input through a model of the negotiation, written from the
 * spec (checklist 1.2) and the rules H1-H7 of handshake.c, and walks the
 * server's output alongside it:
 *   FH1  handshake_run() returns what the model says: 0 on entering
 *       transmission, -EPROTO on a bad flag, bad magic or a limit,
 *       -ENOENT for an unknown EXPORT_NAME, -ECONNRESET on EOF or ABORT.
 *   FH2  the output is the greeting, then for each option well-framed
 *       replies that echo its code (INFO payloads of the right length,
 *       block sizes the spec allows, strings inside their reply, without
 *       NUL) ending in the ACK or the error the model expects: LIST lists
 *       every export; STRUCTURED_REPLY is acked once; STARTTLS is refused
 *       (no TLS configured); INFO and GO give the export's size and flags,
 *       its block sizes, and its name and description when asked;
 *       META_CONTEXT matches base:allocation exactly as the spec says;
 *       unknown options get ERR_UNSUP.  After a successful EXPORT_NAME,
 *       the 10- or 134-byte export reply.
 *   FH3  nothing follows what the model accounts for: the ACK of a GO, the
 *       export reply, the ACK of ABORT, the last complete option.
 *   FH4  on entering transmission the result names the right export, with
 *       its flags (SEND_DF iff structured replies), and base:allocation
 *       only if SET selected it for that very export (H6).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/export.h"
#include "serve/handshake.h"
#include "util/log.h"
#include "nbd/nbd.h"
#include "nbd/proto.h"
#include "engine/server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keep at most this much of the server's output for the checks. */
#define OUT_MAX (1u << 20)

#define check(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz-handshake: %s:%d: %s\n",         \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

/* --- log.h, without the output --- */

bool log_verbose = true;

void log_msg(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
}

/* --- The client side --- */

struct peer {
	int fd;
	const uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_cap;
};

/*
 * One peer thread for the whole run, handed one connection at a time:
 * creating a thread per input cost more than the handshake itself.
 */
static struct peer peer;
static sem_t peer_go, peer_done;

static void peer_keep(struct peer *p, const uint8_t *buf, size_t n)
{
	if (n > OUT_MAX - p->out_len)
		n = OUT_MAX - p->out_len;
	if (p->out_len + n > p->out_cap) {
		size_t cap = p->out_cap ? p->out_cap * 2 : 4096;

		while (cap < p->out_len + n)
			cap *= 2;
		p->out = realloc(p->out, cap);
		check(p->out);
		p->out_cap = cap;
	}
	memcpy(p->out + p->out_len, buf, n);
	p->out_len += n;
}

/* Write the input, read the output, until the server closes. */
static void peer_run(struct peer *p)
{
	size_t sent = 0;
	bool writing = true;
	uint8_t buf[16384];

	check(fcntl(p->fd, F_SETFL, O_NONBLOCK) == 0);
	if (p->in_len == 0) {
		shutdown(p->fd, SHUT_WR);
		writing = false;
	}
	for (;;) {
		struct pollfd pfd = {
			.fd = p->fd,
			.events = POLLIN | (writing ? POLLOUT : 0),
		};
		ssize_t n;

		if (poll(&pfd, 1, -1) < 0) {
			check(errno == EINTR);
			continue;
		}
		if (writing && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = send(p->fd, p->in + sent, p->in_len - sent,
				 MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			/* EPIPE: the server closed before reading it all. */
			if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
			    sent == p->in_len) {
				shutdown(p->fd, SHUT_WR);
				writing = false;
			}
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			n = recv(p->fd, buf, sizeof buf, 0);
			if (n > 0)
				peer_keep(p, buf, (size_t)n);
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				break; /* the server closed its end */
		}
	}
}

static void *peer_main(void *arg)
{
	for (;;) {
		while (sem_wait(&peer_go) < 0)
			check(errno == EINTR);
		peer_run(&peer);
		check(sem_post(&peer_done) == 0);
	}
	return arg;
}

/* --- The server --- */

static char name_disk[] = "disk", name_ro[] = "ro";
static char desc_disk[] = "/var/lib/loopd/disk.img", desc_ro[] = "";

static struct export exp_disk, exp_ro;
static struct export *exp_list[] = {&exp_disk, &exp_ro};
static struct server srv;
static pthread_t peer_thread;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* The fields export_create() sets that the handshake reads. */
	exp_disk.name = name_disk;
	exp_disk.description = desc_disk;
	exp_disk.size = 64u << 20;
	exp_disk.io_align = 1;
	exp_disk.min_block = 1;
	exp_disk.pref_block = 4096;
	exp_disk.max_payload = EXPORT_MAX_PAYLOAD;
	exp_disk.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
			  NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN |
			  NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_TRIM |
			  NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;

	exp_ro.name = name_ro;
	exp_ro.description = desc_ro;
	exp_ro.size = 1u << 20;
	exp_ro.read_only = true;
	exp_ro.io_align = 4096;
	exp_ro.min_block = 4096;
	exp_ro.pref_block = 4096;
	exp_ro.max_payload = EXPORT_MAX_PAYLOAD;
	exp_ro.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
			NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN |
			NBD_FLAG_SEND_CACHE | NBD_FLAG_READ_ONLY;

	/* Zeroed first: fields added later (a TLS context) stay off. */
	memset(&srv, 0, sizeof srv);
	srv.exports = exp_list;
	srv.n_exports = sizeof exp_list / sizeof exp_list[0];
	srv.n_queues = 1;
	srv.max_conns = 1;

	/* The peer writes to a socket the server may have closed. */
	signal(SIGPIPE, SIG_IGN);

	check(sem_init(&peer_go, 0, 0) == 0 && sem_init(&peer_done, 0, 0) == 0);
	check(pthread_create(&peer_thread, NULL, peer_main, NULL) == 0);
	return 0;
}

/* --- The checks on what the server sent --- */

static bool has_nul(const uint8_t *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

/* FH2: one NBD_REP_INFO payload. */
static void check_info(const uint8_t *d, uint32_t len)
{
	uint32_t min, pref, max;

	check(len >= 2);
	switch (proto_get_be16(d)) {
	case NBD_INFO_EXPORT:
		check(len == 12);
		check(proto_get_be16(d + 10) & NBD_FLAG_HAS_FLAGS);
		break;
	case NBD_INFO_BLOCK_SIZE:
		check(len == 14);
		min = proto_get_be32(d + 2);
		pref = proto_get_be32(d + 6);
		max = proto_get_be32(d + 10);
		/* checklist 1.6 */
		check(min && !(min & (min - 1)) && min <= 65536);
		check(pref && !(pref & (pref - 1)) && pref >= min &&
		      pref >= 512);
		check(max >= pref);
		break;
	case NBD_INFO_NAME:
	case NBD_INFO_DESCRIPTION:
		check(len - 2 <= 4096 && !has_nul(d + 2, len - 2));
		break;
	default:
		check(!"unknown NBD_REP_INFO type");
	}
}

/* The server's output, read one reply at a time. */
struct out {
	const uint8_t *o;
	size_t len, pos;
};

/* What the replies to one option said (the last one is in type). */
struct answer {
	uint32_t type; /* the final reply: ACK or an error */
	unsigned int n_server, n_meta;
	uint32_t meta_id;
	bool info_export;
	uint64_t size; /* from NBD_INFO_EXPORT */
	uint16_t tflags;
	unsigned int n_block_size;
	const uint8_t *name, *desc; /* NBD_INFO_NAME, _DESCRIPTION, or NULL */
	uint32_t name_len, desc_len;
};

/* FH2: the replies to option opt, up to its final ACK or error. */
static void read_answer(struct out *w, uint32_t opt, struct answer *a)
{
	memset(a, 0, sizeof *a);
	for (;;) {
		const uint8_t *h = w->o + w->pos, *d = h + 20;
		uint32_t type, rlen;

		check(w->len - w->pos >= 20);
		check(proto_get_be64(h) == NBD_REP_MAGIC);
		check(proto_get_be32(h + 8) == opt); /* echoes the option */
		type = proto_get_be32(h + 12);
		rlen = proto_get_be32(h + 16);
		check(rlen <= w->len - w->pos - 20);
		w->pos += 20 + (size_t)rlen;

		switch (type) {
		case NBD_REP_ACK:
			check(rlen == 0);
			a->type = type;
			return;
		case NBD_REP_SERVER:
			check(rlen >= 4 && proto_get_be32(d) <= rlen - 4);
			check(!has_nul(d + 4, rlen - 4));
			a->n_server++;
			break;
		case NBD_REP_INFO:
			check_info(d, rlen);
			switch (proto_get_be16(d)) {
			case NBD_INFO_EXPORT:
				check(!a->info_export);
				a->info_export = true;
				a->size = proto_get_be64(d + 2);
				a->tflags = proto_get_be16(d + 10);
				break;
			case NBD_INFO_BLOCK_SIZE:
				a->n_block_size++;
				break;
			case NBD_INFO_NAME:
				check(!a->name);
				a->name = d + 2;
				a->name_len = rlen - 2;
				break;
			case NBD_INFO_DESCRIPTION:
				check(!a->desc);
				a->desc = d + 2;
				a->desc_len = rlen - 2;
				break;
			}
			break;
		case NBD_REP_META_CONTEXT:
			check(rlen > 4 && !has_nul(d + 4, rlen - 4));
			a->n_meta++;
			a->meta_id = proto_get_be32(d);
			break;
		default:
			/* Errors: bit 31 and a known code, a short string. */
			check(type & NBD_REP_ERR(0));
			check(type >= NBD_REP_ERR_UNSUP &&
			      type <= NBD_REP_ERR_TOO_BIG);
			check(rlen <= 4096 && !has_nul(d, rlen));
			a->type = type;
			return;
		}
	}
}

/* The model's view of the meta-context queries of one option. */
struct meta_model {
	bool list;
	bool match;
};

static void meta_model_query(const char *q, uint32_t qlen, void *opaque)
{
	struct meta_model *m = opaque;
	static const char alloc[] = "base:allocation", base[] = "base:";

	/* checklist 1.2: exact name in SET, "base:" a wildcard in LIST. */
	if ((qlen == strlen(alloc) && memcmp(q, alloc, qlen) == 0) ||
	    (m->list && qlen == strlen(base) && memcmp(q, base, qlen) == 0))
		m->match = true;
}

/*
 * The export an INFO, GO or META_CONTEXT option names, as the spec has
 * it; NULL with *want set to the error the server must answer.
 */
static struct export *model_export(const char *name, uint32_t namelen,
				   uint32_t *want)
{
	struct export *exp = NULL;
	size_t i;

	if (namelen > 4096) { /* H4 */
		*want = NBD_REP_ERR_INVALID;
		return NULL;
	}
	if (namelen == 0)
		exp = srv.exports[0];
	for (i = 0; i < srv.n_exports && !exp; i++)
		if (strlen(srv.exports[i]->name) == namelen &&
		    memcmp(srv.exports[i]->name, name, namelen) == 0)
			exp = srv.exports[i];
	if (!exp)
		*want = NBD_REP_ERR_UNKNOWN;
	return exp;
}

static bool info_asked(const uint8_t *d, uint32_t namelen, uint16_t n_info,
		       uint16_t type)
{
	uint16_t i;

	for (i = 0; i < n_info; i++)
		if (proto_get_be16(d + 4 + namelen + 2 + 2 * i) == type)
			return true;
	return false;
}

/*
 * FH2: NBD_INFO_NAME and _DESCRIPTION come when asked for (a description
 * only if the export has one), hold the export's strings, and come no
 * more than once.  Unknown info requests are ignored.
 */
static void check_info_strings(const struct answer *a, const struct export *exp,
			       const uint8_t *d, uint32_t namelen,
			       uint16_t n_info)
{
	bool want_desc = info_asked(d, namelen, n_info, NBD_INFO_DESCRIPTION) &&
			 exp->description[0];

	if (info_asked(d, namelen, n_info, NBD_INFO_NAME)) {
		check(a->name && a->name_len == strlen(exp->name));
		check(memcmp(a->name, exp->name, a->name_len) == 0);
	} else {
		check(!a->name);
	}
	if (want_desc) {
		check(a->desc && a->desc_len == strlen(exp->description));
		check(memcmp(a->desc, exp->description, a->desc_len) == 0);
	} else {
		check(!a->desc);
	}
}

/* FH4: the result of entering transmission on exp. */
static void check_result(const struct hs_result *res, struct export *exp,
			 bool structured, struct export *meta_exp)
{
	uint16_t f = res->conn.tflags;

	check(res->conn.exp == exp);
	check(res->conn.structured == structured);
	check(f == handshake_tflags(exp, structured));
	check(f & NBD_FLAG_HAS_FLAGS);
	check(!!(f & NBD_FLAG_SEND_DF) == structured);
	check(!!(f & NBD_FLAG_READ_ONLY) == exp->read_only);
	/* H6: only a selection made for this export counts. */
	check(res->conn.meta_alloc == (meta_exp == exp));
	check(res->conn.meta_alloc_id == (res->conn.meta_alloc ? 1u : 0u));
}

/*
 * FH1-FH4: replay the client's bytes through a model of the negotiation
 * and walk the server's output alongside.  Returns with every byte of
 * output accounted for.
 */
static void check_session(const uint8_t *in, size_t in_len, const uint8_t *o,
			  size_t olen, int ret, const struct hs_result *res)
{
	struct out w = {.o = o, .len = olen};
	struct export *exp, *meta_exp = NULL;
	bool structured = false, no_zeroes;
	unsigned int n_options = 0;
	uint8_t greeting[18], want_reply[134];
	size_t ip = 4, n;
	uint32_t cflags;

	/* The greeting is sent before anything is read. */
	proto_encode_greeting(greeting,
			      NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	check(olen >= sizeof greeting);
	check(memcmp(o, greeting, sizeof greeting) == 0);
	w.pos = sizeof greeting;

	/* H1 */
	if (in_len < 4) {
		check(ret == -ECONNRESET);
		goto end;
	}
	cflags = proto_get_be32(in);
	if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		check(ret == -EPROTO);
		goto end;
	}
	no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

	for (;;) {
		struct answer a;
		const uint8_t *d;
		const char *name;
		uint32_t opt, len, namelen, nq, want = 0;
		uint16_t n_info;
		struct meta_model m;

		/* H2, H3: what ends the connection before an answer. */
		if (in_len - ip < 16) {
			check(ret == -ECONNRESET); /* EOF */
			break;
		}
		if (proto_decode_option(in + ip, &opt, &len) < 0 ||
		    ++n_options > 256 || len > 65536) {
			check(ret == -EPROTO);
			break;
		}
		ip += 16;
		if (in_len - ip < len) {
			check(ret == -ECONNRESET); /* EOF inside the data */
			break;
		}
		d = in + ip;
		ip += len;

		if (opt == NBD_OPT_EXPORT_NAME) {
			/* No reply header: the size and flags, or a hang-up. */
			exp = len <= 4096 ? model_export((const char *)d, len,
							 &want)
					  : NULL;
			if (!exp) {
				check(ret == (len > 4096 ? -EPROTO : -ENOENT));
				break;
			}
			check(ret == 0);
			check_result(res, exp, structured, meta_exp);
			n = proto_encode_export_name_reply(
				want_reply, exp->size, res->conn.tflags,
				no_zeroes);
			check(w.len - w.pos >= n);
			check(memcmp(w.o + w.pos, want_reply, n) == 0);
			w.pos += n;
			break;
		}

		/* SET replaces the selection, even when it fails (H6). */
		if (opt == NBD_OPT_SET_META_CONTEXT)
			meta_exp = NULL;

		read_answer(&w, opt, &a);
		switch (opt) {
		case NBD_OPT_ABORT:
			check(a.type == NBD_REP_ACK);
			check(ret == -ECONNRESET);
			goto end;
		case NBD_OPT_LIST:
			if (len) {
				check(a.type == NBD_REP_ERR_INVALID);
			} else {
				check(a.type == NBD_REP_ACK);
				check(a.n_server == srv.n_exports);
			}
			break;
		case NBD_OPT_STRUCTURED_REPLY:
			if (len || structured) {
				check(a.type == NBD_REP_ERR_INVALID);
			} else {
				check(a.type == NBD_REP_ACK);
				structured = true;
			}
			break;
		case NBD_OPT_STARTTLS:
			/* checklist 1.8: NOTLS mode, never TLS_REQD. */
			check(a.type == NBD_REP_ERR_POLICY ||
			      a.type == NBD_REP_ERR_UNSUP);
			break;
		case NBD_OPT_INFO:
		case NBD_OPT_GO:
			exp = NULL;
			if (proto_parse_info_opt(d, len, &name, &namelen,
						 &n_info) < 0)
				want = NBD_REP_ERR_INVALID;
			else
				exp = model_export(name, namelen, &want);
			if (!exp) {
				check(a.type == want);
				break;
			}
			/* H5: the same information for INFO and GO. */
			check(a.type == NBD_REP_ACK && a.info_export);
			check(a.size == exp->size);
			check(a.tflags == handshake_tflags(exp, structured));
			check(a.n_block_size == 1); /* always volunteered */
			check_info_strings(&a, exp, d, namelen, n_info);
			if (opt == NBD_OPT_GO) {
				check(ret == 0);
				check_result(res, exp, structured, meta_exp);
				goto end; /* FH3: transmission */
			}
			break;
		case NBD_OPT_LIST_META_CONTEXT:
		case NBD_OPT_SET_META_CONTEXT:
			m.list = opt == NBD_OPT_LIST_META_CONTEXT;
			m.match = false;
			exp = NULL;
			if (!m.list && !structured)
				want = NBD_REP_ERR_INVALID;
			else if (proto_parse_meta_opt(d, len, &name, &namelen,
						      &nq, meta_model_query,
						      &m) < 0)
				want = NBD_REP_ERR_INVALID;
			else
				exp = model_export(name, namelen, &want);
			if (!exp) {
				check(a.type == want && a.n_meta == 0);
				break;
			}
			/* LIST with no query lists everything. */
			if (m.list && nq == 0)
				m.match = true;
			check(a.type == NBD_REP_ACK);
			check(a.n_meta == (m.match ? 1u : 0u));
			/* A real id in SET; LIST's SHOULD be 0. */
			check(!a.n_meta || (a.meta_id != 0) == !m.list);
			if (!m.list && m.match)
				meta_exp = exp;
			break;
		default: /* H7: EXTENDED_HEADERS and unknown options */
			check(a.type == NBD_REP_ERR_UNSUP);
			break;
		}
	}
end:
	/* FH3: nothing more than the model accounts for. */
	check(w.pos == w.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hs_result res;
	struct peer *p = &peer;
	int sv[2], ret;

	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	p->fd = sv[1];
	p->in = data;
	p->in_len = size;
	p->out_len = 0;
	check(sem_post(&peer_go) == 0);

	memset(&res, 0, sizeof res);
	ret = handshake_run(sv[0], &srv, &res);
	/* The peer reads up to EOF: all the output is in p->out after this. */
	close(sv[0]);
	while (sem_wait(&peer_done) < 0)
		check(errno == EINTR);
	close(sv[1]);

	/* FH1 */
	check(ret == 0 || ret == -ECONNRESET || ret == -EPROTO ||
	      ret == -ENOENT);
	if (p->out_len < OUT_MAX)
		check_session(data, size, p->out, p->out_len, ret, &res);
	return 0;
}
