/* SPDX-License-Identifier: MIT */
/*
 * daemon.h: the process side of `loopd serve` (daemon.c): daemonising
 * with a readiness pipe, --user/--group, the pidfile, SIGINT/SIGTERM
 * taken through a signalfd, and --exit-with-parent (V8).  Each function
 * that can fail logs one line and returns -1; the caller returns exit
 * status 1.
 */
#ifndef LOOPD_SERVE_DAEMON_H
#define LOOPD_SERVE_DAEMON_H

#include <sys/types.h>

/*
 * Fork into the background, with stdin and stdout on /dev/null (stderr
 * stays).  Returns 0 in the daemon, which goes on and later calls
 * signal_ready(); 1 in the launching process, which must return *status
 * at once (0 once the daemon is ready, 1 if it ended first) and touch
 * nothing the daemon now owns; -1 on failure.
 */
int daemonise(int *status);

/* Tell the launching process that the server is listening (no-op with
   -f or when already told). */
void signal_ready(void);

/* --user / --group: looked up at start, so that a typo fails before
   anything is served; switched to once everything that needs root is
   done. */
struct ids {
	const char *user; /* NULL: keep the uid */
	uid_t uid;
	gid_t gid;
};

int lookup_ids(const char *user, const char *group, struct ids *ids);
int drop_privileges(const struct ids *ids);

/* Write the server's PID into path; remove it at exit. */
int pidfile_write(const char *path);
void pidfile_remove(const char *path);

/*
 * Block SIGINT and SIGTERM (in this thread, so in every thread started
 * after it), ignore SIGPIPE, and return a signalfd that reads the two,
 * or -1.
 */
int signals_block(void);

/*
 * V8, --exit-with-parent: have the kernel send SIGTERM to this process
 * when its parent exits; if parent (the parent PID seen at start) has
 * already gone, send it now.  Call it after signals_block() and again
 * after drop_privileges().  0, or -1 once an error has been logged.
 */
int parent_watch(pid_t parent);

#endif /* LOOPD_SERVE_DAEMON_H */
