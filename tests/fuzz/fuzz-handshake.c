/* SPDX-License-Identifier: MIT */
/*
 * fuzz-handshake.c: libFuzzer harness for the option negotiation
 * (handshake_run() in src/handshake.c), over a real socket.
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
 * Checks, besides ASan/UBSan/LSan (any failure calls abort()):
 *   C1  handshake_run() returns 0 or one of its documented errors.
 *   C2  the output is the greeting, then well-framed option replies (known
 *       reply types; INFO payloads of the right length; NBD_REP_SERVER and
 *       error strings within their reply, without NUL bytes), then, only
 *       after EXPORT_NAME succeeded, the 10- or 134-byte export reply.
 *   C3  nothing follows the ACK of a GO or the export reply, and entering
 *       transmission is exactly when handshake_run() returned 0.
 *   C4  on success the result is consistent: a real export, HAS_FLAGS,
 *       SEND_DF iff structured replies, base:allocation only with
 *       structured replies, READ_ONLY for the read-only export.
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

#include "export.h"
#include "handshake.h"
#include "log.h"
#include "nbd.h"
#include "proto.h"
#include "server.h"

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
static char path_disk[] = "/var/lib/loopd/disk.img";
static char path_ro[] = "/var/lib/loopd/ro.img";

static struct export exp_disk, exp_ro;
static struct export *exp_list[] = {&exp_disk, &exp_ro};
static struct server srv;
static pthread_t peer_thread;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* The fields export_open() sets that the handshake reads. */
	exp_disk.name = name_disk;
	exp_disk.path = path_disk;
	exp_disk.description = desc_disk;
	exp_disk.fd = -1;
	exp_disk.size = 64u << 20;
	exp_disk.align = exp_disk.mem_align = 1;
	exp_disk.min_block = 1;
	exp_disk.pref_block = 4096;
	exp_disk.max_payload = EXPORT_MAX_PAYLOAD;
	exp_disk.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
			  NBD_FLAG_SEND_FUA | NBD_FLAG_CAN_MULTI_CONN |
			  NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_TRIM |
			  NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;

	exp_ro.name = name_ro;
	exp_ro.path = path_ro;
	exp_ro.description = desc_ro;
	exp_ro.fd = -1;
	exp_ro.size = 1u << 20;
	exp_ro.read_only = true;
	exp_ro.direct = true;
	exp_ro.align = exp_ro.mem_align = 4096;
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

/* C2: one NBD_REP_INFO payload. */
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

/* C2, C3: the whole output, given what handshake_run() returned. */
static void check_output(const uint8_t *o, size_t len, int ret,
			 const struct hs_result *res, bool no_zeroes)
{
	uint8_t greeting[18];
	size_t pos;
	bool done = false;

	/* The greeting is sent before anything is read. */
	proto_encode_greeting(greeting,
			      NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	check(len >= sizeof greeting);
	check(memcmp(o, greeting, sizeof greeting) == 0);
	pos = sizeof greeting;

	while (pos < len) {
		const uint8_t *h = o + pos, *d;
		uint32_t opt, type, rlen;

		check(!done); /* C3 */
		if (len - pos < 20 || proto_get_be64(h) != NBD_REP_MAGIC) {
			/* C2: only the EXPORT_NAME reply has no header. */
			uint8_t want[134];
			size_t n;

			check(ret == 0 && res->exp);
			n = proto_encode_export_name_reply(
				want, res->exp->size, res->tflags, no_zeroes);
			check(len - pos == n);
			check(memcmp(h, want, n) == 0);
			return;
		}
		opt = proto_get_be32(h + 8);
		type = proto_get_be32(h + 12);
		rlen = proto_get_be32(h + 16);
		check(rlen <= len - pos - 20);
		d = h + 20;
		pos += 20 + (size_t)rlen;

		switch (type) {
		case NBD_REP_ACK:
			check(rlen == 0);
			if (opt == NBD_OPT_GO)
				done = true;
			break;
		case NBD_REP_SERVER:
			check(opt == NBD_OPT_LIST);
			check(rlen >= 4 && proto_get_be32(d) <= rlen - 4);
			check(!has_nul(d + 4, rlen - 4));
			break;
		case NBD_REP_INFO:
			check(opt == NBD_OPT_INFO || opt == NBD_OPT_GO);
			check_info(d, rlen);
			break;
		case NBD_REP_META_CONTEXT:
			check(opt == NBD_OPT_LIST_META_CONTEXT ||
			      opt == NBD_OPT_SET_META_CONTEXT);
			check(rlen > 4 && !has_nul(d + 4, rlen - 4));
			/* SET gives a real id; LIST's SHOULD be 0. */
			check((opt == NBD_OPT_SET_META_CONTEXT) ==
			      (proto_get_be32(d) != 0));
			break;
		default:
			/* Errors: bit 31 and a known code, a short string. */
			check(type & NBD_REP_ERR(0));
			check(type >= NBD_REP_ERR_UNSUP &&
			      type <= NBD_REP_ERR_TOO_BIG);
			check(rlen <= 4096 && !has_nul(d, rlen));
			break;
		}
	}
	/* C3: transmission was entered iff the GO was acked. */
	check(done == (ret == 0));
}

/* C4 */
static void check_result(const struct hs_result *res)
{
	uint16_t f = res->tflags;

	check(res->exp == &exp_disk || res->exp == &exp_ro);
	check(f & NBD_FLAG_HAS_FLAGS);
	check(!!(f & NBD_FLAG_SEND_DF) == res->structured);
	check(!res->meta_alloc || res->structured);
	check(res->meta_alloc == (res->meta_alloc_id != 0));
	check(!!(f & NBD_FLAG_READ_ONLY) == res->exp->read_only);
	check(f == handshake_tflags(res->exp, res->structured));
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

	/* C1 */
	check(ret == 0 || ret == -ECONNRESET || ret == -EPROTO ||
	      ret == -ENOENT || ret == -ENOMEM);
	if (p->out_len < OUT_MAX)
		check_output(p->out, p->out_len, ret, &res,
			     size >= 4 && (proto_get_be32(data) &
					   NBD_FLAG_C_NO_ZEROES));
	if (ret == 0)
		check_result(&res);
	return 0;
}
