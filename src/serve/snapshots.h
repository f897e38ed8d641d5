/* SPDX-License-Identifier: MIT */
/*
 * snapshots.h: live snapshots as the server offers them (snapshots.c,
 * rules J1-J4): the control command `snapshot` and the schedule of
 * --snapshot-every, on top of engine/snapshot.h.
 */
#ifndef LOOPD_SERVE_SNAPSHOTS_H
#define LOOPD_SERVE_SNAPSHOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/server.h"

struct snapshots_config {
	uint64_t every_ms; /* --snapshot-every; 0: no schedule */
	const char *dir; /* --snapshot-dir (file exports) */
	unsigned int keep; /* --snapshot-keep; 0: keep them all */
	bool sync; /* --snapshot-sync */
};

/*
 * J1: run "snapshot ARGS" (the control thread).  0 with the answer's body
 * in *out (malloc'd), or -errno with one line in err.
 */
int snapshots_command(struct server *srv, const char *args, char **out,
		      size_t *outlen, char *err, size_t errlen);

/* J2: start the schedule once the workers run (nothing without
   every_ms).  0, or -1 once logged. */
int snapshots_start(struct server *srv, const struct snapshots_config *cfg);

/* J4: stop the schedule, then abandon running copies.  First at stop. */
void snapshots_stop(struct server *srv);

#endif /* LOOPD_SERVE_SNAPSHOTS_H */
