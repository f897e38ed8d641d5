/* SPDX-License-Identifier: MIT */
/*
 * control.h: the control channel of `loopd serve` (control.c): the
 * control socket (--control) that `loopd ctl` talks to, the recorder's
 * TRACE.ctl, and the periodic --stats-file, all served by one thread of
 * their own.  The protocol and its rules are Q1-Q7 in control.c.
 */
#ifndef LOOPD_SERVE_CONTROL_H
#define LOOPD_SERVE_CONTROL_H

#include <stdbool.h>

#include "engine/server.h"
#include "serve/statsdoc.h"

struct recorder;
struct control;

/* The longest request line (Q1): "mark " and a label of 4096 bytes. */
#define CONTROL_LINE_MAX 4200

struct control_config {
	const char *path; /* --control PATH, or NULL */
	const char *pidfile; /* for the default path (Q7), or NULL */
	const char *record; /* --record TRACE: TRACE.ctl (Q5), or NULL */
	const char *stats_file; /* --stats-file, or NULL */
	unsigned int stats_interval; /* seconds */
	enum stats_format stats_format;
};

/*
 * Make the sockets (Q7) and remember what to serve; nothing runs yet.
 * rec is the recorder that `mark` writes to (NULL when not recording).
 * 0, or -1 once a one-line error has been logged.
 */
int control_open(struct control **out, const struct control_config *cc,
		 struct server *srv, struct recorder *rec);

/*
 * Start the control thread: after stats_init() (engine/stats.h), before
 * the server says it is ready.  Writes the stats file at once (Q6).  0,
 * or -1 once an error has been logged.
 */
int control_start(struct control *c);

/*
 * Stop: after the workers have exited and before the recorder and the
 * exports are closed.  Writes the stats file a last time (Q6), removes
 * the sockets, frees c.  Safe on NULL and on a control never started.
 */
void control_stop(struct control *c);

#endif /* LOOPD_SERVE_CONTROL_H */
