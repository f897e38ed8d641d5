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
 *     permission denied, nobody listening, no answer in 10 s (a
 *     snapshot may take as long as its copy), not a
 *     loopd control socket (an answer that is neither "ok" nor
 *     "error: "), or the server's own error line.
 */
#include "serve/ctl.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
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
	bool waits; /* the answer may take long: no 10 s limit */
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

/*
 * checkpoint's and checkpoints' options: [--delete] (with_delete) and
 * [--export EXPORT], in any order, before the one NAME when want_name;
 * then the request line (Q9 in control.c: --delete first, the name
 * last).  0, or 2 once the usage error is logged.
 */
static int checkpoint_args(const char *cmd, int argc, char **argv,
			   bool want_name, char *line, size_t len)
{
	const char *exp = NULL, *name = NULL;
	bool del = false;
	int i, n;

	for (i = 0; i < argc; i++) {
		if (want_name && !strcmp(argv[i], "--delete")) {
			del = true;
		} else if (!strcmp(argv[i], "--export") && i + 1 < argc) {
			exp = argv[++i];
		} else if (!strncmp(argv[i], "--export=", 9)) {
			exp = argv[i] + 9;
		} else if (!strncmp(argv[i], "--", 2) || !want_name || name) {
			log_msg("ctl: %s: unexpected '%.100s' (usage: %s)", cmd,
				argv[i],
				want_name ? "checkpoint [--delete] [--export "
					    "EXPORT] NAME"
					  : "checkpoints [--export EXPORT]");
			return 2;
		} else {
			name = argv[i];
		}
	}
	if (want_name && (!name || !*name || strpbrk(name, " \n"))) {
		log_msg("ctl: checkpoint needs one NAME: 1 to 128 bytes of "
			"A-Z a-z 0-9 . _ @ : + - (try 'loopd ctl --help')");
		return 2;
	}
	if (exp && strchr(exp, '\n')) {
		log_msg("ctl: %s: an export name is one line", cmd);
		return 2;
	}
	n = snprintf(line, len, "%s%s%s%s%s%s\n", cmd, del ? " --delete" : "",
		     exp ? " --export " : "", exp ? exp : "", name ? " " : "",
		     name ? name : "");
	if (n < 0 || (size_t)n >= len || (size_t)n > CONTROL_LINE_MAX) {
		log_msg("ctl: %s: the export name is too long", cmd);
		return 2;
	}
	return 0;
}

static int checkpoint_line(int argc, char **argv, char *line, size_t len)
{
	return checkpoint_args("checkpoint", argc, argv, true, line, len);
}

static int checkpoints_line(int argc, char **argv, char *line, size_t len)
{
	return checkpoint_args("checkpoints", argc, argv, false, line, len);
}

/*
 * J1: "snapshot [--export NAME] [--sync] [--no-wait] DEST", DEST made
 * absolute here (the server's directory is not the caller's), unless it
 * is an RBD snapshot's @NAME.
 */
static int snapshot_line(int argc, char **argv, char *line, size_t len)
{
	char opts[512] = "", dir[PATH_MAX], *copy, *slash;
	const char *dest = NULL, *base;
	int i, n;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--sync") ||
		    !strcmp(argv[i], "--no-wait")) {
			strcat(opts, " ");
			strcat(opts, argv[i]);
		} else if (!strcmp(argv[i], "--export") && i + 1 < argc &&
			   !strchr(argv[i + 1], ' ') &&
			   strlen(argv[i + 1]) < 256) {
			strcat(opts, " --export ");
			strcat(opts, argv[++i]);
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			log_msg("ctl: snapshot: unknown option '%.100s' "
				"(--export NAME, --sync, --no-wait)",
				argv[i]);
			return 2;
		} else if (!dest) {
			dest = argv[i];
		} else {
			log_msg("ctl: snapshot takes one DEST");
			return 2;
		}
	}
	if (!dest || !*dest || strchr(dest, '\n')) {
		log_msg("ctl: snapshot needs one DEST: a path, or @NAME for an "
			"RBD export (try 'loopd ctl --help')");
		return 2;
	}
	if (dest[0] == '@' || dest[0] == '/') {
		n = snprintf(line, len, "snapshot%s %s\n", opts, dest);
	} else {
		copy = strdup(dest);
		if (!copy)
			return 2;
		slash = strrchr(copy, '/');
		base = slash ? slash + 1 : copy;
		if (slash)
			*slash = 0;
		if (!*base ||
		    !realpath(slash ? (*copy ? copy : "/") : ".", dir)) {
			log_msg("ctl: snapshot: %s: %s", dest,
				*base ? strerror(errno) : "not a file name");
			free(copy);
			return 2;
		}
		n = snprintf(line, len, "snapshot%s %s/%s\n", opts,
			     strcmp(dir, "/") ? dir : "", base);
		free(copy);
	}
	if (n < 0 || (size_t)n >= len) {
		log_msg("ctl: snapshot: DEST is too long");
		return 2;
	}
	return 0;
}

/* The command line's side of Q4: one row per command of control.c. */
static const struct ctl_cmd ctl_cmds[] = {
	{"mark", "LABEL",
	 "add a mark named LABEL to the trace being recorded (--record)",
	 mark_line, false},
	{"stats", "[--json|--prometheus]",
	 "what every export and connection has served (docs/stats.md)",
	 stats_line, false},
	{"checkpoint", "[--delete] [--export EXPORT] NAME",
	 "make (or delete) checkpoint NAME: from now on, the export's\n"
	 "changed blocks, read as the NBD meta context "
	 "qemu:dirty-bitmap:NAME",
	 checkpoint_line, false},
	{"checkpoints", "[--export EXPORT]",
	 "list the checkpoints and their dirty bytes", checkpoints_line, false},
	{"snapshot", "[--export EXPORT] [--sync] [--no-wait] DEST",
	 "a live snapshot as DEST (a new file; @NAME for RBD): a crash\n"
	 "state at one instant, with checkpoint DEST's name "
	 "(docs/snapshots.md)",
	 snapshot_line, true},
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
	for (i = 0; i < N_CMDS; i++) {
		const char *h = ctl_cmds[i].help, *nl;

		fprintf(f, "  %s %s\n", ctl_cmds[i].name, ctl_cmds[i].args);
		for (; (nl = strchr(h, '\n')); h = nl + 1)
			fprintf(f, "      %.*s\n", (int)(nl - h), h);
		fprintf(f, "      %s\n", h);
	}
	fprintf(f, "\n"
		   "--export EXPORT names the export (by default the first "
		   "one served).\n");
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
	char names[96] = "";
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
		for (i = 0; i < N_CMDS; i++) /* Q4: from the table */
			snprintf(names + strlen(names),
				 sizeof names - strlen(names), "%s%s",
				 i ? ", " : "", ctl_cmds[i].name);
		log_msg("ctl: unknown command '%.100s' (commands: %s; try "
			"'loopd ctl --help')",
			argv[2], names);
		return 2;
	}
	r = cmd->line(argc - 3, argv + 3, line, sizeof line);
	if (r)
		return r;
	fd = ctl_connect(argv[1]);
	if (fd < 0)
		return 1;
	if (!cmd->waits)
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
