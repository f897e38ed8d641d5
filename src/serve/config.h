/* SPDX-License-Identifier: MIT */
/*
 * config.h: the `loopd serve` command line, parsed into one struct
 * serve_config, and its usage text (config.c).
 *
 * Parsing checks everything that needs no I/O (syntax, ranges, options
 * that need another option).  What needs the system (files, users, TLS
 * credentials, sockets) is checked by the module that uses it, in the
 * order of cmd_serve() (serve.c).
 */
#ifndef LOOPD_SERVE_CONFIG_H
#define LOOPD_SERVE_CONFIG_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/backend.h"
#include "engine/sched.h"
#include "serve/statsdoc.h"
#include "serve/tls.h"

/* At most this many --unix, this many --listen, and listening sockets. */
#define MAX_LISTENERS 32

struct serve_config {
	/* Exports: the FILE|NAME=FILE operands (argv's), and what --size,
	   --read-only, --cache, --order and --flush set for each of them
	   (the spec of each is left to the caller). */
	struct {
		struct backend_opts bo;
		enum order_mode order;
		enum flush_mode flush;
	} exp;
	char **files;
	unsigned int n_files; /* at least 1 */

	/* Listeners wanted, in the order given.  Without --unix, --listen
	   or inherited sockets, tcp_specs holds the default,
	   127.0.0.1:10809, or with --run private_socket is set (V5). */
	const char *unix_paths[MAX_LISTENERS];
	unsigned int n_unix;
	const char *tcp_specs[MAX_LISTENERS];
	unsigned int n_tcp;
	bool private_socket; /* --run alone: a socket in a private dir */
	mode_t socket_mode; /* --socket-mode, default 0600 */

	/* Limits and timeouts. */
	unsigned int n_queues; /* -q, default one per CPU */
	unsigned int busy_poll_us; /* --busy-poll (E7) */
	unsigned int max_conns; /* --max-connections, 0 = no limit */
	unsigned int handshake_timeout; /* seconds; 0 = none */
	unsigned int shutdown_timeout; /* seconds of grace (E4) */

	/* TLS: the credentials are loaded by cmd_serve(). */
	enum tls_mode tls_mode;
	struct tls_config tls;

	/* The process. */
	const char *user, *group; /* NULL: keep the uid / gid */
	const char *pidfile; /* NULL: none */
	bool foreground; /* -f, --run or --exit-with-parent: no daemon */
	bool exit_with_parent; /* --exit-with-parent (V8) */
	const char *run; /* --run CMD, or NULL (V5-V7) */
	bool verbose; /* -v: log every request */
	const char *record; /* --record TRACE, or NULL */

	/* The control channel (serve/control.c, Q1-Q7). */
	const char *control; /* --control PATH, or NULL: the default */
	const char *stats_file; /* --stats-file FILE, or NULL */
	unsigned int stats_interval; /* --stats-interval, seconds */
	enum stats_format stats_format; /* --stats-format */
	bool stats_interval_set, stats_format_set; /* given: need the file */

	/* Live snapshots and checkpoints (serve/snapshots.c,
	   engine/snapshot.c, engine/dirty.c). */
	uint64_t snapshot_every_ms; /* --snapshot-every; 0: none */
	const char *snapshot_dir; /* --snapshot-dir */
	unsigned int snapshot_keep; /* --snapshot-keep; 0: all */
	bool snapshot_sync; /* --snapshot-sync */
	uint32_t checkpoint_gran; /* --checkpoint-granularity */
	const char *checkpoint_dir; /* --checkpoint-dir, or NULL */
};

/*
 * Parse `loopd serve` (argv[0] is "serve") into *cfg.  n_inherited is the
 * number of sockets taken from socket activation (systemd.h): with any,
 * -U and -l are refused and no default listener is added (V3).  Fault
 * injection rules (LOOPD_INJECT, then each --inject in order) are handed
 * to the engine as they are met, through inject_parse(), which keeps
 * them.  Returns 0 to serve, 1 once --help has been printed (exit status
 * 0), or -1 once a one-line error has been logged (exit status 1).
 */
int config_parse(struct serve_config *cfg, int argc, char **argv,
		 unsigned int n_inherited);

#endif /* LOOPD_SERVE_CONFIG_H */
