/* SPDX-License-Identifier: MIT */
/*
 * ctl.c: `loopd ctl PATH COMMAND [ARGS]` (ctl.h): its commands (one table,
 * ctl_cmds[], the command-line side of control.c's Q4), the request line
 * each one sends (Q1 in control.c), and what the answer becomes.
 *
 * Q8. Exit status: 0 when the server answered "ok" (its output goes to
 *     stdout as it came); 2 for a usage error, an unknown command
 *     included; 1 when the server could not be asked or said no, with
 *     one line on stderr saying which: no such socket, not a socket,
 *     permission denied, nobody listening, no answer in 10 s, not a
 *     loopd control socket (an answer that is neither "ok" nor
 *     "error: "), or the server's own error line.
 */
#include "serve/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "serve/control.h"
#include "util/io.h"
#include "util/log.h"

#define ANSWER_TIMEOUT_S 10
#define ANSWER_MAX ((size_t)256 << 20)

struct ctl_cmd {
	const char *name;
	const char *args; /* for the usage text */
	const char *help;
	/* The request line for argv (the command's own arguments), into
	   line; 0, or 2 once a one-line usage error has been logged. */
	int (*line)(int argc, char **argv, char *line, size_t len);
};

static int mark_line(int argc, char **argv, char *line, size_t len)
{
	if (argc != 1 || !*argv[0]) {
		log_msg("ctl: mark needs one LABEL (try 'loopd ctl --help')");
		return 2;
	}
	if (strchr(argv[0], '\n') || strlen(argv[0]) > 4096) {
		log_msg("ctl: mark: the label must be one line of at most "
			"4096 bytes");
		return 2;
	}
	snprintf(line, len, "mark %s\n", argv[0]);
	return 0;
}

static int stats_line(int argc, char **argv, char *line, size_t len)
{
	const char *f = "text";

	if (argc > 1) {
		log_msg("ctl: stats takes at most one of --json, --prometheus, "
			"--text");
		return 2;
	}
	if (argc == 1) {
		if (!strcmp(argv[0], "--json"))
			f = "json";
		else if (!strcmp(argv[0], "--prometheus"))
			f = "prometheus";
		else if (strcmp(argv[0], "--text")) {
			log_msg("ctl: stats: unknown option '%.100s' (--json, "
				"--prometheus or --text)",
				argv[0]);
			return 2;
		}
	}
	snprintf(line, len, "stats %s\n", f);
	return 0;
}

static const struct ctl_cmd ctl_cmds[] = {
	{"mark", "LABEL",
	 "add a mark named LABEL to the trace being recorded (--record)",
	 mark_line},
	{"stats", "[--json|--prometheus]",
	 "what every export and connection has served (docs/stats.md)",
	 stats_line},
};

#define N_CMDS (sizeof ctl_cmds / sizeof ctl_cmds[0])

static void usage_ctl(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: loopd ctl PATH COMMAND [ARGS]\n"
		   "\n"
		   "Ask a running server through its control socket PATH "
		   "(loopd serve --control\n"
		   "PATH; by default the pidfile's path with .ctl for "
		   ".pid).\n"
		   "\n"
		   "Commands:\n");
	for (i = 0; i < N_CMDS; i++)
		fprintf(f, "  %-5s %-22s %s\n", ctl_cmds[i].name,
			ctl_cmds[i].args, ctl_cmds[i].help);
	fprintf(f, "\n"
		   "Exit status: 0 done, 1 the server could not be asked or "
		   "refused, 2 usage.\n");
}

/* A connected socket to path, or -1 once the reason is logged (Q8). */
static int ctl_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		log_msg("%s: path too long for a Unix socket", path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			log_msg("%s: no such socket (is loopd serving with "
				"--control %s?)",
				path, path);
		else if (errno == EACCES)
			log_msg("%s: permission denied (the control socket "
				"is its owner's only)",
				path);
		else
			log_msg("%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_msg("%s: not a socket (not a loopd control socket)", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_msg("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;

		if (e == ECONNREFUSED)
			log_msg("%s: nobody is listening (the socket of a "
				"server that has stopped?)",
				path);
		else if (e == EACCES || e == EPERM)
			log_msg("%s: permission denied (the control socket "
				"is its owner's only)",
				path);
		else
			log_msg("%s: %s", path, strerror(e));
		close(fd);
		return -1;
	}
	return fd;
}

/* The whole answer, NUL-terminated, into *out; 0 or -1 once logged. */
static int read_answer(int fd, const char *path, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1), *nb;
	ssize_t r;

	if (!buf) {
		log_msg("out of memory");
		return -1;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= ANSWER_MAX) {
				log_msg("%s: answer larger than %zu bytes",
					path, ANSWER_MAX);
				free(buf);
				return -1;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				log_msg("out of memory");
				free(buf);
				return -1;
			}
			buf = nb;
		}
		r = recv(fd, buf + n, cap - n, 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			break; /* what came is the answer, judged by answer() */
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				log_msg("%s: no answer in %d s", path,
					ANSWER_TIMEOUT_S);
			else
				log_msg("%s: %s", path, strerror(errno));
			free(buf);
			return -1;
		}
		n += (size_t)r;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

/* Q8: "ok\n" and the output, "error: ...", or something else. */
static int answer(const char *path, const char *buf, size_t len)
{
	size_t first = strcspn(buf, "\n"), i;
	char said[41];

	if (len >= 3 && !memcmp(buf, "ok\n", 3)) {
		if (len > 3 && fwrite(buf + 3, 1, len - 3, stdout) != len - 3) {
			log_msg("stdout: %s", strerror(errno));
			return 1;
		}
		return fflush(stdout) ? 1 : 0;
	}
	if (len >= 7 && !memcmp(buf, "error: ", 7) && buf[first] == '\n') {
		log_msg("%s: %.*s", path, (int)(first - 7), buf + 7);
		return 1;
	}
	if (!len) {
		log_msg("%s: no answer (not a loopd control socket?)", path);
		return 1;
	}
	for (i = 0; i < first && i < sizeof said - 1; i++) /* one line */
		said[i] = buf[i] >= ' ' && buf[i] < 127 ? buf[i] : '?';
	said[i] = 0;
	log_msg("%s: not a loopd control socket (it answered \"%s\")", path,
		said);
	return 1;
}

int cmd_ctl(int argc, char **argv)
{
	struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};
	char line[CONTROL_LINE_MAX + 8];
	const struct ctl_cmd *cmd = NULL;
	size_t i, len;
	char *buf;
	int fd, r;

	if (argc >= 2 &&
	    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage_ctl(stdout);
		return 0;
	}
	if (argc < 3) {
		log_msg("ctl: expected PATH COMMAND (try 'loopd ctl --help')");
		return 2;
	}
	for (i = 0; i < N_CMDS; i++)
		if (!strcmp(argv[2], ctl_cmds[i].name))
			cmd = &ctl_cmds[i];
	if (!cmd) {
		log_msg("ctl: unknown command '%.100s' (commands: mark, stats; "
			"try 'loopd ctl --help')",
			argv[2]);
		return 2;
	}
	r = cmd->line(argc - 3, argv + 3, line, sizeof line);
	if (r)
		return r;
	fd = ctl_connect(argv[1]);
	if (fd < 0)
		return 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (send_full(fd, line, strlen(line), 0) < 0) {
		log_msg("%s: the server closed the connection", argv[1]);
		close(fd);
		return 1;
	}
	r = read_answer(fd, argv[1], &buf, &len);
	close(fd);
	if (r < 0)
		return 1;
	r = answer(argv[1], buf, len);
	free(buf);
	return r;
}
