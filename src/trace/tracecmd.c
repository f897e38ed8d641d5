/* SPDX-License-Identifier: MIT */
/*
 * tracecmd.c: `loopd trace dump|stats|mark|plot`.
 *
 * dump and stats read a trace (complete, torn, or still being written)
 * and keep its valid prefix; mark talks to a recording server's control
 * socket TRACE.ctl; plot is plotcmd.c's.  Exit status: 0 done, 1 error,
 * 2 usage.
 */
#include "trace/tracecmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "nbd/proto.h"
#include "trace/plotcmd.h"
#include "trace/states.h"
#include "trace/trace.h"
#include "trace/tracefile.h"
#include "util/log.h"

static void usage_trace(FILE *f)
{
	fprintf(f, "Usage: loopd trace dump TRACE\n"
		   "       loopd trace stats TRACE\n"
		   "       loopd trace mark TRACE LABEL\n"
		   "       loopd trace plot TRACE -o FILE.svg [OPTIONS]\n"
		   "\n"
		   "dump   print every record of a trace, one per line\n"
		   "stats  summarise it: requests, flushes, FUA, crash "
		   "points, bytes\n"
		   "mark   insert a named mark into a trace being recorded "
		   "(through TRACE.ctl)\n"
		   "plot   draw it as SVG: lanes, flushes and what they "
		   "cover, crash points\n"
		   "       ('loopd trace plot --help')\n"
		   "\n"
		   "A torn or corrupt tail is reported and its valid prefix "
		   "is used.\n");
}

static void print_header(const struct tracefile *tf, const char *path)
{
	const struct trace_header *h = &tf->h;
	char hex[65];

	tracefile_hex(h->base_sha256, 32, hex);
	printf("trace %s: %s, export %" PRIu64
	       " bytes, min block %u, atomic unit %u, flags %#x, flush %s, "
	       "order %s\n",
	       path, h->version, h->size, h->min_block, h->atomic, h->tflags,
	       flush_mode_name(h->flush_mode), order_mode_name(h->order_mode));
	printf("base %s sha256 %s\n", h->base_path, hex);
}

static void print_tail(const struct tracefile *tf)
{
	if (tf->why)
		printf("torn tail: %zu bytes dropped after byte %zu (%s)\n",
		       tf->len - tf->valid, tf->valid, tf->why);
	if (!tf->ended)
		printf("no END record: the recording did not finish "
		       "(server killed, or still running)\n");
}

static const char *errno_name(int32_t status)
{
	static char buf[32];

	if (!status)
		return "ok";
	snprintf(buf, sizeof buf, "%s", strerrorname_np(-status) ?: "error");
	return buf;
}

static int dump(const char *path)
{
	struct tracefile tf;
	char err[512], hex[65];
	size_t i;

	if (tracefile_open(path, &tf, err, sizeof err) < 0) {
		log_msg("%s", err);
		return 1;
	}
	print_header(&tf, path);
	for (i = 0; i < tf.n; i++) {
		const struct trace_rec *r = &tf.recs[i];

		printf("%" PRIu64 " %" PRIu64 ".%06" PRIu64 " %s", r->seq,
		       r->t_ns / 1000000000u, r->t_ns / 1000 % 1000000,
		       trace_type_name(r->type));
		switch (r->type) {
		case TRACE_DATA:
			tracefile_hex(r->data.hash, 16, hex);
			printf(" @%" PRIu64 " len=%u xxh128=%s", r->pos,
			       r->data.len, hex);
			break;
		case TRACE_RECV:
			printf(" conn=%u %s cookie=%#" PRIx64 " off=%" PRIu64
			       " len=%u%s",
			       r->recv.conn, proto_cmd_name(r->recv.cmd),
			       r->recv.cookie, r->recv.offset, r->recv.length,
			       r->recv.flags & NBD_CMD_FLAG_FUA ? " FUA" : "");
			if (r->recv.flags & ~NBD_CMD_FLAG_FUA)
				printf(" flags=%#x", r->recv.flags);
			if (r->recv.data_kind == TRACE_DATA_REF)
				printf(" data=@%" PRIu64, r->recv.data_ref);
			else if (r->recv.data_kind == TRACE_DATA_ZERO)
				printf(" data=zero");
			break;
		case TRACE_REPLY:
			printf(" conn=%u %s cookie=%#" PRIx64 " %s",
			       r->reply.conn, proto_cmd_name(r->reply.cmd),
			       r->reply.cookie, errno_name(r->reply.status));
			break;
		case TRACE_SYNC_BEGIN:
			printf(" id=%" PRIu64, r->sync.id);
			break;
		case TRACE_SYNC_END:
			printf(" id=%" PRIu64 " %s", r->sync.id,
			       errno_name(r->sync.res));
			break;
		case TRACE_MARK:
			printf(" \"%.*s\"", (int)r->mark.len, r->mark.label);
			break;
		case TRACE_END:
			tracefile_hex(r->end.final_sha256, 32, hex);
			printf(" records=%" PRIu64 " requests=%" PRIu64
			       " replies=%" PRIu64 " writes=%" PRIu64
			       " flushes=%" PRIu64 " fua=%" PRIu64
			       " bytes=%" PRIu64 " data=%" PRIu64
			       " marks=%" PRIu64 " size=%" PRIu64
			       "%s sha256=%s",
			       r->end.n_records, r->end.n_recv, r->end.n_reply,
			       r->end.n_writes, r->end.n_flushes, r->end.n_fua,
			       r->end.bytes_written, r->end.data_bytes,
			       r->end.n_marks, r->end.final_size,
			       r->end.flags & TRACE_END_INCOMPLETE
				       ? " INCOMPLETE"
				       : "",
			       hex);
			break;
		}
		putchar('\n');
	}
	print_tail(&tf);
	tracefile_close(&tf);
	return 0;
}

/* The crash points of the trace under the contract model (states.c). */
static void print_crash_points(const struct tracefile *tf)
{
	struct crash_opts o = {.model = CRASH_CONTRACT,
			       .exhaustive = 10,
			       .unit = tf->h.atomic};
	struct crash_plan *plan = NULL;
	uint32_t fl_pts = 0, fua_pts = 0, k, max_p = 0;
	const char *why = NULL;

	if (crash_plan_build(&tf->h, tf->recs, tf->n, &o, &plan, &why) < 0) {
		printf("crash points:   unknown (%s)\n",
		       why ? why : "out of memory");
		return;
	}
	for (k = 0; k < plan->n_points; k++) {
		fl_pts += plan->points[k].why == CRASH_AT_FLUSH;
		fua_pts += plan->points[k].why == CRASH_AT_FUA;
		if (plan->points[k].n_pending > max_p)
			max_p = plan->points[k].n_pending;
	}
	printf("crash points:   %u epochs (flush %u, fua %u, end or write %u); "
	       "largest pending set %u (contract model)\n",
	       plan->n_points, fl_pts, fua_pts,
	       plan->n_points - fl_pts - fua_pts, max_p);
	crash_plan_free(plan);
}

static int stats(const char *path)
{
	uint64_t n_cmd[8] = {0}, n_fua = 0, bytes = 0, data = 0, n_data = 0;
	uint64_t n_reply = 0, n_err = 0, n_marks = 0, n_syncs = 0, n_other = 0;
	struct tracefile tf;
	char err[512];
	size_t i;

	if (tracefile_open(path, &tf, err, sizeof err) < 0) {
		log_msg("%s", err);
		return 1;
	}
	for (i = 0; i < tf.n; i++) {
		const struct trace_rec *r = &tf.recs[i];

		switch (r->type) {
		case TRACE_DATA:
			n_data++;
			data += r->data.len;
			break;
		case TRACE_RECV:
			if (r->recv.cmd < 8)
				n_cmd[r->recv.cmd]++;
			else
				n_other++;
			if (proto_cmd_is_write(r->recv.cmd)) {
				bytes += r->recv.length;
				n_fua += !!(r->recv.flags & NBD_CMD_FLAG_FUA);
			}
			break;
		case TRACE_REPLY:
			n_reply++;
			n_err += r->reply.status != 0;
			break;
		case TRACE_SYNC_BEGIN:
			n_syncs++;
			break;
		case TRACE_MARK:
			n_marks++;
			break;
		}
	}
	print_header(&tf, path);
	printf("records:        %zu (%zu bytes valid of %zu)\n", tf.n, tf.valid,
	       tf.len);
	printf("requests:       %" PRIu64 " (writes %" PRIu64
	       ", write_zeroes %" PRIu64 ", trims %" PRIu64 ", flushes %" PRIu64
	       ", reads %" PRIu64 ", other %" PRIu64 ")\n",
	       n_cmd[NBD_CMD_WRITE] + n_cmd[NBD_CMD_WRITE_ZEROES] +
		       n_cmd[NBD_CMD_TRIM] + n_cmd[NBD_CMD_FLUSH] +
		       n_cmd[NBD_CMD_READ] + n_cmd[NBD_CMD_CACHE] +
		       n_cmd[NBD_CMD_BLOCK_STATUS] + n_cmd[NBD_CMD_DISC] +
		       n_other,
	       n_cmd[NBD_CMD_WRITE], n_cmd[NBD_CMD_WRITE_ZEROES],
	       n_cmd[NBD_CMD_TRIM], n_cmd[NBD_CMD_FLUSH], n_cmd[NBD_CMD_READ],
	       n_cmd[NBD_CMD_CACHE] + n_cmd[NBD_CMD_BLOCK_STATUS] +
		       n_cmd[NBD_CMD_DISC] + n_other);
	printf("writes:         %" PRIu64 "\n", n_cmd[NBD_CMD_WRITE]);
	printf("flushes:        %" PRIu64 "\n", n_cmd[NBD_CMD_FLUSH]);
	printf("fua:            %" PRIu64 "\n", n_fua);
	printf("replies:        %" PRIu64 " (%" PRIu64 " errors)\n", n_reply,
	       n_err);
	printf("syncs:          %" PRIu64 "\n", n_syncs);
	printf("bytes written:  %" PRIu64 "\n", bytes);
	printf("unique payload: %" PRIu64 " bytes in %" PRIu64 " records\n",
	       data, n_data);
	printf("marks:          %" PRIu64 "\n", n_marks);
	print_crash_points(&tf);
	printf("flush mode:     %s\n", flush_mode_name(tf.h.flush_mode));
	printf("end:            %s\n",
	       tf.ended ? (tf.end->flags & TRACE_END_INCOMPLETE
				   ? "present, recording incomplete"
				   : "present")
			: "missing");
	printf("torn tail:      %zu bytes%s%s\n", tf.len - tf.valid,
	       tf.why ? " dropped: " : "", tf.why ? tf.why : "");
	tracefile_close(&tf);
	return 0;
}

static int mark(const char *path, const char *label)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	char reply[128];
	size_t len = 0;
	ssize_t n;
	int fd;

	if (strchr(label, '\n') || strlen(label) > TRACE_MARK_MAX) {
		log_msg("trace mark: the label must be one line "
			"of at most 4096 bytes");
		return 2;
	}
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s.ctl", path) >=
	    sizeof sa.sun_path) {
		log_msg("%s.ctl: path too long", path);
		return 1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		log_msg("%s: %s (is a server recording into %s?)", sa.sun_path,
			strerror(errno), path);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (send(fd, label, strlen(label), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		log_msg("%s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return 1;
	}
	while (len < sizeof reply - 1 &&
	       (n = recv(fd, reply + len, sizeof reply - 1 - len, 0)) > 0)
		len += (size_t)n;
	reply[len] = 0;
	close(fd);
	if (strcmp(reply, "ok\n")) {
		reply[strcspn(reply, "\n")] = 0; /* its first line */
		log_msg("trace mark: the server answered \"%s\"",
			len ? reply : "nothing");
		return 1;
	}
	return 0;
}

int cmd_trace(int argc, char **argv)
{
	if (argc >= 2 &&
	    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage_trace(stdout);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "dump"))
		return dump(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "stats"))
		return stats(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "mark"))
		return mark(argv[2], argv[3]);
	if (argc >= 2 && !strcmp(argv[1], "plot"))
		return plotcmd_run(argc - 1, argv + 1);
	usage_trace(stderr);
	return 2;
}
