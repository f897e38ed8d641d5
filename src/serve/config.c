/* SPDX-License-Identifier: MIT */
/*
 * config.c: the `loopd serve` command line: its usage text, its options
 * parsed into struct serve_config, and the checks that need no I/O
 * (config.h).  Every error is one line naming the option, logged here;
 * the caller only returns the exit status.
 */
#include "serve/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/inject.h"
#include "engine/sched.h"
#include "util/log.h"
#include "util/size.h"

#define DEFAULT_LISTEN "127.0.0.1:10809"

enum {
	OPT_CACHE = 256,
	OPT_ORDER,
	OPT_FLUSH,
	OPT_INJECT,
	OPT_RECORD,
	OPT_MAXCONN,
	OPT_HSTIMEOUT,
	OPT_SHUTDOWNTIMEOUT,
	OPT_BUSYPOLL,
	OPT_SOCKMODE,
	OPT_TLS,
	OPT_TLSCERTS,
	OPT_TLSVERIFY,
	OPT_TLSPSK,
	OPT_USER,
	OPT_GROUP,
	OPT_CEPHCONF,
	OPT_CEPHID,
	OPT_CEPHTIMEOUT,
	OPT_RUN,
	OPT_EXITWITHPARENT,
	OPT_CONTROL,
	OPT_STATSFILE,
	OPT_STATSINTERVAL,
	OPT_STATSFORMAT,
	OPT_SNAPEVERY,
	OPT_SNAPDIR,
	OPT_SNAPKEEP,
	OPT_SNAPSYNC,
	OPT_CKPTGRAN,
	OPT_CKPTDIR,
};

static const struct option opts[] = {
	{"size", required_argument, NULL, 's'},
	{"read-only", no_argument, NULL, 'r'},
	{"unix", required_argument, NULL, 'U'},
	{"listen", required_argument, NULL, 'l'},
	{"cache", required_argument, NULL, OPT_CACHE},
	{"order", required_argument, NULL, OPT_ORDER},
	{"flush", required_argument, NULL, OPT_FLUSH},
	{"queues", required_argument, NULL, 'q'},
	{"foreground", no_argument, NULL, 'f'},
	{"pidfile", required_argument, NULL, 'P'},
	{"verbose", no_argument, NULL, 'v'},
	{"inject", required_argument, NULL, OPT_INJECT},
	{"record", required_argument, NULL, OPT_RECORD},
	{"max-connections", required_argument, NULL, OPT_MAXCONN},
	{"handshake-timeout", required_argument, NULL, OPT_HSTIMEOUT},
	{"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWNTIMEOUT},
	{"busy-poll", required_argument, NULL, OPT_BUSYPOLL},
	{"socket-mode", required_argument, NULL, OPT_SOCKMODE},
	{"tls", required_argument, NULL, OPT_TLS},
	{"tls-certificates", required_argument, NULL, OPT_TLSCERTS},
	{"tls-verify-peer", no_argument, NULL, OPT_TLSVERIFY},
	{"tls-psk", required_argument, NULL, OPT_TLSPSK},
	{"user", required_argument, NULL, OPT_USER},
	{"group", required_argument, NULL, OPT_GROUP},
	{"ceph-conf", required_argument, NULL, OPT_CEPHCONF},
	{"ceph-id", required_argument, NULL, OPT_CEPHID},
	{"ceph-timeout", required_argument, NULL, OPT_CEPHTIMEOUT},
	{"run", required_argument, NULL, OPT_RUN},
	{"exit-with-parent", no_argument, NULL, OPT_EXITWITHPARENT},
	{"control", required_argument, NULL, OPT_CONTROL},
	{"stats-file", required_argument, NULL, OPT_STATSFILE},
	{"stats-interval", required_argument, NULL, OPT_STATSINTERVAL},
	{"stats-format", required_argument, NULL, OPT_STATSFORMAT},
	{"snapshot-every", required_argument, NULL, OPT_SNAPEVERY},
	{"snapshot-dir", required_argument, NULL, OPT_SNAPDIR},
	{"snapshot-keep", required_argument, NULL, OPT_SNAPKEEP},
	{"snapshot-sync", no_argument, NULL, OPT_SNAPSYNC},
	{"checkpoint-granularity", required_argument, NULL, OPT_CKPTGRAN},
	{"checkpoint-dir", required_argument, NULL, OPT_CKPTDIR},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static const char *const cache_names[] = {"buffered", "direct"};
static const char *const tls_names[] = {"off", "on", "require"};
static const char *const file_formats[] = {"json", "prometheus"};

/* The help text: one printf of adjacent literals, long but flat. */
static void usage_serve(FILE *f)
{
	fprintf(f,
		"Usage: loopd serve [OPTIONS] FILE|NAME=FILE...\n"
		"\n"
		"Serve each FILE as an NBD export named after its basename (or "
		"NAME).\n"
		"The first FILE is also the default export (empty name).\n"
		"A FILE may be a regular file or a block device; mem:SIZE "
		"serves "
		"a scratch\n"
		"disk in memory (lost at exit), for tests"
#ifdef LOOPD_HAVE_RBD
		"; rbd:POOL/IMAGE serves an image\n"
		"of a Ceph cluster (named IMAGE)"
#endif
		".\n"
		"\n"
		"Options:\n"
		"  -s, --size SIZE         create a missing FILE sparse, or "
		"grow a smaller one\n"
		"                          (suffixes K M G T, powers of 1024)\n"
		"  -r, --read-only         refuse writes (EPERM)\n"
		"  -U, --unix PATH         listen on a Unix socket "
		"(repeatable)\n"
		"  -l, --listen HOST:PORT  listen on TCP (repeatable; port 0 "
		"picks one)\n"
		"                          default: " DEFAULT_LISTEN
		" (never all interfaces\n"
		"                          unless asked, e.g. 0.0.0.0:10809)\n"
		"      --cache MODE        buffered (default: the page "
		"cache) or direct\n"
		"                          (O_DIRECT where supported)\n"
		"      --order MODE        overlap (default: overlapping "
		"requests run in arrival\n"
		"                          order, R3) or relaxed (the bare "
		"NBD contract)\n"
		"      --flush MODE        sync (default: exact FLUSH/FUA), "
		"barrier (a flush waits\n"
		"                          for all earlier requests and holds "
		"later ones, R4) or\n"
		"                          unsafe (no syncs: scratch disks "
		"only)\n"
		"      --socket-mode MODE  mode of --unix sockets (default "
		"0600: "
		"owner only)\n"
		"      --max-connections N  refuse connections beyond N "
		"(default 1024, 0 = no limit)\n"
		"      --handshake-timeout SECS  drop clients that stall in "
		"negotiation\n"
		"                          (default 60, 0 = never)\n"
		"      --shutdown-timeout SECS  on SIGINT/SIGTERM, wait this "
		"long for clients\n"
		"                          to take their replies, then close "
		"them (default 10)\n"
		"      --tls MODE          off (default), on (offer TLS; "
		"plaintext allowed) or\n"
		"                          require (refuse clients that do "
		"not start TLS)\n"
		"      --tls-certificates DIR  X.509: DIR/server-cert.pem, "
		"server-key.pem and\n"
		"                          optional ca-cert.pem, ca-crl.pem\n"
		"      --tls-verify-peer   require a client certificate "
		"signed by DIR/ca-cert.pem\n"
		"      --tls-psk FILE      pre-shared keys, USER:HEXKEY lines "
		"(see psktool)\n"
		"      --user USER         switch to USER (and its groups) "
		"once "
		"listening\n"
		"      --group GROUP       switch to GROUP once listening\n"
#ifdef LOOPD_HAVE_RBD
		"      --ceph-conf FILE    rbd: the cluster's ceph.conf "
		"(default: $CEPH_CONF,\n"
		"                          /etc/ceph/ceph.conf, ...)\n"
		"      --ceph-id NAME      rbd: connect as client.NAME "
		"(default admin)\n"
		"      --ceph-timeout SECS  rbd: connecting, and each "
		"operation, fail (EIO)\n"
		"                          after this long (default 30)\n"
#endif
		"  -q, --queues N          worker threads, each with its own "
		"io_uring\n"
		"                          (default: one per CPU)\n"
		"      --busy-poll USEC    while requests are served from "
		"memory, or a QD1\n"
		"                          client waits on the device, a "
		"worker polls this\n"
		"                          long before it sleeps (default 50, "
		"0 = never)\n"
		"  -f, --foreground        do not daemonise\n"
		"      --run CMD           once listening, run CMD with "
		"/bin/sh "
		"-c and $uri, $nbd,\n"
		"                          $port, $unixsocket, $exportname, "
		"$tls set; when it\n"
		"                          exits, stop and exit with its "
		"status "
		"(implies -f;\n"
		"                          without -U or -l: a private Unix "
		"socket)\n"
		"      --exit-with-parent  stop as on SIGTERM when the parent "
		"process exits\n"
		"                          (implies -f)\n"
		"  -P, --pidfile FILE      write the server's PID to FILE\n"
		"      --control PATH      the control socket 'loopd ctl PATH' "
		"talks to (default:\n"
		"                          the pidfile's path with .ctl for "
		".pid; none without -P)\n"
		"      --stats-file FILE   write the statistics to FILE "
		"(atomically) at start,\n"
		"                          every --stats-interval and at "
		"exit\n"
		"      --stats-interval SECS  seconds between two writes "
		"(default 10)\n"
		"      --stats-format FMT  json (default) or prometheus "
		"(node_exporter's textfile)\n"
		"      --snapshot-every DURATION  take a live snapshot of "
		"every "
		"export each\n"
		"                          DURATION (500ms, 30s, 5m, 1h; "
		"docs/snapshots.md)\n"
		"      --snapshot-dir DIR  where they go, as "
		"EXPORT.YYYYmmddTHHMMSS.mmmZ\n"
		"      --snapshot-keep N   keep the N newest of them (default: "
		"all)\n"
		"      --snapshot-sync     sync the export before each (and "
		"the copy after)\n"
		"      --checkpoint-granularity SIZE  the dirty maps' block "
		"(default 64K)\n"
		"      --checkpoint-dir DIR  where the maps are kept across "
		"restarts (default:\n"
		"                          next to the FILE, as "
		"FILE.checkpoints)\n"
		"  -v, --verbose           log every request to stderr\n"
		"      --record TRACE      record every request into TRACE "
		"for 'loopd crash'\n"
		"      --inject SPEC       fault injection, FOR TESTING ONLY "
		"(or LOOPD_INJECT):\n"
		"                          delay=MS:OP[@START-END][*N], "
		"error=EIO|ENOSPC:OP[...]\n"
		"  -h, --help              show this help\n"
		"\n"
		"Without -f, loopd returns once it is listening. SIGINT or "
		"SIGTERM stop it:\n"
		"in-flight requests finish and are answered (a second signal, "
		"or the end of\n"
		"--shutdown-timeout, closes the clients that have not taken "
		"their replies),\n"
		"every export is synced, and the exit status is 0, or 1 if a "
		"sync failed\n"
		"or an export stopped claiming durability after an I/O "
		"error.\n"
		"\n"
		"Started with LISTEN_PID and LISTEN_FDS (socket activation), "
		"loopd serves the\n"
		"sockets it was given instead of opening its own; with "
		"NOTIFY_SOCKET set, it\n"
		"sends READY=1 once listening (see loopd(1) and "
		"docs/service.md).\n");
}

/* ---------------------------------------------------------------- */
/* Parse helpers: each returns 0 (or an index), or -1 once it has
 * logged the option's one-line error. */

/* The index of val in names[n] (n <= 3). */
static int parse_enum(const char *opt, const char *val,
		      const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(val, names[i]))
			return i;
	log_msg("--%s %s: expected one of %s%s%s%s%s", opt, val, names[0],
		n > 1 ? ", " : "", n > 1 ? names[1] : "", n > 2 ? ", " : "",
		n > 2 ? names[2] : "");
	return -1;
}

static int parse_uint(const char *opt, const char *val, unsigned long lo,
		      unsigned long hi, unsigned int *out)
{
	char *end;
	unsigned long v = strtoul(val, &end, 10);

	if (!*val || *end || v < lo || v > hi || *val == '-') {
		log_msg("--%s %s: expected a number from %lu to %lu", opt, val,
			lo, hi);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

static int parse_size(const char *val, uint64_t *out)
{
	if (size_parse(val, out) < 0 || *out == 0) {
		log_msg("--size %s: expected a size such as 1G, 512M or "
			"1048576",
			val);
		return -1;
	}
	return 0;
}

static int parse_mode(const char *val, mode_t *out)
{
	char *end;
	unsigned long m = strtoul(val, &end, 8);

	if (!*val || *end || m > 0777) {
		log_msg("--socket-mode %s: expected an octal mode such as 0600 "
			"or 0660",
			val);
		return -1;
	}
	*out = (mode_t)m;
	return 0;
}

/* One more --unix or --listen, of which there are at most MAX_LISTENERS. */
static int add_wanted(const char **list, unsigned int *n, const char *opt,
		      const char *val)
{
	if (*n == MAX_LISTENERS) {
		log_msg("too many %s options", opt);
		return -1;
	}
	list[(*n)++] = val;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Options: 0, or -1 once the option's error is logged. */

/* --stats-file, --stats-interval, --stats-format (Q6 in control.c). */
static int parse_stats_option(struct serve_config *cfg, int c, const char *arg)
{
	int v;

	switch (c) {
	case OPT_STATSFILE:
		if (!*arg) {
			log_msg("--stats-file: empty file name");
			return -1;
		}
		cfg->stats_file = arg;
		return 0;
	case OPT_STATSINTERVAL:
		cfg->stats_interval_set = true;
		return parse_uint("stats-interval", arg, 1, 86400,
				  &cfg->stats_interval);
	case OPT_STATSFORMAT:
		v = parse_enum("stats-format", arg, file_formats, 2);
		if (v < 0)
			return -1;
		cfg->stats_format = v ? STATS_PROMETHEUS : STATS_JSON;
		cfg->stats_format_set = true;
		return 0;
	default:
		return 0;
	}
}

/* --snapshot-every: N[ms|s|m|h], plain N in seconds; 100 ms to 7 days. */
static int parse_duration(const char *opt, const char *val, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"", 1000},
		     {"ms", 1},
		     {"s", 1000},
		     {"m", 60000},
		     {"h", 3600000}};
	char *end;
	unsigned long long v;
	size_t i;

	errno = 0;
	v = strtoull(val, &end, 10);
	for (i = 0; !errno && end != val && *val >= '0' && *val <= '9' &&
		    i < sizeof units / sizeof units[0];
	     i++) {
		if (strcmp(end, units[i].unit))
			continue;
		if (v > 7ull * 86400 * 1000 / units[i].ms ||
		    v * units[i].ms < 100)
			break;
		*ms = v * units[i].ms;
		return 0;
	}
	log_msg("--%s: expected a duration from 100ms to 7 days, such as "
		"500ms, 30s, 5m or 1h, not '%.100s'",
		opt, val);
	return -1;
}

/* Live snapshots and checkpoints (serve/snapshots.c, engine/dirty.c). */
static int parse_snapshot_option(struct serve_config *cfg, int c,
				 const char *arg)
{
	uint64_t v;

	switch (c) {
	case OPT_SNAPEVERY:
		return parse_duration("snapshot-every", arg,
				      &cfg->snapshot_every_ms);
	case OPT_SNAPDIR:
	case OPT_CKPTDIR:
		if (!*arg) {
			log_msg("--%s: empty directory name",
				c == OPT_SNAPDIR ? "snapshot-dir"
						 : "checkpoint-dir");
			return -1;
		}
		if (c == OPT_SNAPDIR)
			cfg->snapshot_dir = arg;
		else
			cfg->checkpoint_dir = arg;
		return 0;
	case OPT_SNAPKEEP:
		return parse_uint("snapshot-keep", arg, 1, 100000,
				  &cfg->snapshot_keep);
	case OPT_SNAPSYNC:
		cfg->snapshot_sync = true;
		return 0;
	case OPT_CKPTGRAN:
		if (size_parse(arg, &v) < 0 || v < 4096 || v > (1u << 30) ||
		    (v & (v - 1))) {
			log_msg("--checkpoint-granularity: expected a power of "
				"two from 4K to 1G, not '%.100s'",
				arg);
			return -1;
		}
		cfg->checkpoint_gran = (uint32_t)v;
		return 0;
	default:
		return parse_stats_option(cfg, c, arg);
	}
}

/* The options of the listeners, TLS and the process. */
static int parse_server_option(struct serve_config *cfg, int c, const char *arg)
{
	int v = 0;

	switch (c) {
	case 'U':
		return add_wanted(cfg->unix_paths, &cfg->n_unix, "--unix", arg);
	case 'l':
		return add_wanted(cfg->tcp_specs, &cfg->n_tcp, "--listen", arg);
	case OPT_SOCKMODE:
		return parse_mode(arg, &cfg->socket_mode);
	case OPT_MAXCONN:
		return parse_uint("max-connections", arg, 0, 1000000,
				  &cfg->max_conns);
	case OPT_HSTIMEOUT:
		return parse_uint("handshake-timeout", arg, 0, 86400,
				  &cfg->handshake_timeout);
	case OPT_SHUTDOWNTIMEOUT:
		return parse_uint("shutdown-timeout", arg, 0, 86400,
				  &cfg->shutdown_timeout);
	case OPT_TLS:
		v = parse_enum("tls", arg, tls_names, 3);
		if (v >= 0)
			cfg->tls_mode = (enum tls_mode)v;
		break;
	case OPT_TLSCERTS:
		cfg->tls.cert_dir = arg;
		break;
	case OPT_TLSVERIFY:
		cfg->tls.verify_peer = true;
		break;
	case OPT_TLSPSK:
		cfg->tls.psk_file = arg;
		break;
	case OPT_USER:
		cfg->user = arg;
		break;
	case OPT_GROUP:
		cfg->group = arg;
		break;
	case 'q':
		return parse_uint("queues", arg, 1, 256, &cfg->n_queues);
	case OPT_BUSYPOLL:
		return parse_uint("busy-poll", arg, 0, 10000,
				  &cfg->busy_poll_us);
	case 'f':
		cfg->foreground = true;
		break;
	case 'P':
		cfg->pidfile = arg;
		break;
	case 'v':
		cfg->verbose = true;
		break;
	case OPT_RUN:
		if (cfg->run) {
			log_msg("--run: given twice (one command; use "
				"'CMD1 && CMD2')");
			return -1;
		}
		if (!arg[strspn(arg, " \t\n")]) {
			log_msg("--run: empty command");
			return -1;
		}
		cfg->run = arg;
		break;
	case OPT_EXITWITHPARENT:
		cfg->exit_with_parent = true;
		break;
	case OPT_CONTROL:
		if (!*arg) {
			log_msg("--control: empty path");
			return -1;
		}
		cfg->control = arg;
		break;
	default:
		return parse_snapshot_option(cfg, c, arg);
	}
	return v < 0 ? -1 : 0;
}

/* The options of the exports: how they are opened, served and traced;
 * the others go on to parse_server_option(). */
static int parse_option(struct serve_config *cfg, int c, const char *arg)
{
	char err[512];
	int v = 0;

	switch (c) {
	case 's':
		return parse_size(arg, &cfg->exp.bo.create_size);
	case 'r':
		cfg->exp.bo.read_only = true;
		break;
	case OPT_CACHE:
		v = parse_enum("cache", arg, cache_names, 2);
		if (v >= 0)
			cfg->exp.bo.direct = v == 1;
		break;
	case OPT_ORDER:
		v = parse_enum("order", arg, order_mode_names, ORDER_MODES);
		if (v >= 0)
			cfg->exp.order = (enum order_mode)v;
		break;
	case OPT_FLUSH:
		v = parse_enum("flush", arg, flush_mode_names, FLUSH_MODES);
		if (v >= 0)
			cfg->exp.flush = (enum flush_mode)v;
		break;
	case OPT_RECORD:
		cfg->record = arg;
		break;
	case OPT_CEPHCONF:
		cfg->exp.bo.ceph_conf = arg;
		break;
	case OPT_CEPHID:
		cfg->exp.bo.ceph_id = arg;
		break;
	case OPT_CEPHTIMEOUT:
		return parse_uint("ceph-timeout", arg, 1, 3600,
				  &cfg->exp.bo.ceph_timeout);
	case OPT_INJECT:
		v = inject_parse(arg, err, sizeof err);
		if (v < 0)
			log_msg("%s", err);
		break;
	default:
		return parse_server_option(cfg, c, arg);
	}
	return v < 0 ? -1 : 0;
}

static void set_defaults(struct serve_config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	*cfg = (struct serve_config){
		.exp = {.bo = {.direct = false, .ceph_timeout = 30},
			.order = ORDER_OVERLAP,
			.flush = FLUSH_SYNC},
		.socket_mode = 0600,
		.n_queues = ncpu > 0 ? (unsigned int)ncpu : 1,
		.max_conns = 1024,
		.handshake_timeout = 60,
		.shutdown_timeout = 10,
		.busy_poll_us = 50,
		.tls_mode = TLS_OFF,
		.stats_interval = 10,
		.stats_format = STATS_JSON,
		.checkpoint_gran = 64u << 10,
	};
}

/* What no single option can say: operands and combinations. */
static int check_config(struct serve_config *cfg, int argc, char **argv,
			unsigned int n_inherited)
{
	if (optind >= argc) {
		log_msg("serve: no FILE given (try 'loopd serve --help')");
		return -1;
	}
	cfg->files = argv + optind;
	cfg->n_files = (unsigned int)(argc - optind);
	if (cfg->tls_mode == TLS_OFF &&
	    (cfg->tls.cert_dir || cfg->tls.psk_file || cfg->tls.verify_peer)) {
		log_msg("--tls-certificates, --tls-psk and --tls-verify-peer "
			"need --tls=on or --tls=require");
		return -1;
	}
	if (!cfg->stats_file &&
	    (cfg->stats_interval_set || cfg->stats_format_set)) {
		log_msg("--stats-interval and --stats-format need "
			"--stats-file FILE");
		return -1;
	}
	if (!cfg->snapshot_every_ms &&
	    (cfg->snapshot_dir || cfg->snapshot_keep || cfg->snapshot_sync)) {
		log_msg("--snapshot-dir, --snapshot-keep and --snapshot-sync "
			"need --snapshot-every DURATION");
		return -1;
	}
	if (cfg->record && cfg->n_files != 1) {
		log_msg("--record: serve exactly one FILE when recording");
		return -1;
	}
	if (n_inherited && (cfg->n_unix || cfg->n_tcp)) {
		/* V3: systemd's sockets or ours, never both. */
		log_msg("-U/--unix and -l/--listen cannot be used with the %u "
			"socket%s passed by LISTEN_FDS (socket activation)",
			n_inherited, n_inherited == 1 ? "" : "s");
		return -1;
	}
	/* Captive and --exit-with-parent: the parent must stay ours. */
	if (cfg->run || cfg->exit_with_parent)
		cfg->foreground = true;
	if (!cfg->n_unix && !cfg->n_tcp && !n_inherited) {
		if (cfg->run)
			cfg->private_socket = true; /* V5 */
		else
			cfg->tcp_specs[cfg->n_tcp++] = DEFAULT_LISTEN;
	}
	return 0;
}

int config_parse(struct serve_config *cfg, int argc, char **argv,
		 unsigned int n_inherited)
{
	const char *env = getenv("LOOPD_INJECT");
	char err[512];
	int c;

	set_defaults(cfg);
	if (env && *env && inject_parse(env, err, sizeof err) < 0) {
		log_msg("LOOPD_INJECT: %s", err);
		return -1;
	}
	opterr = 0; /* our own one-line messages */
	while ((c = getopt_long(argc, argv, ":s:rU:l:q:fP:vh", opts, NULL)) !=
	       -1) {
		if (c == 'h') {
			usage_serve(stdout);
			return 1;
		}
		if (c == ':') {
			log_msg("serve: option '%s' needs a value (try 'loopd "
				"serve --help')",
				argv[optind - 1]);
			return -1;
		}
		if (c == '?') {
			log_msg("serve: unknown option '%s' (try 'loopd serve "
				"--help')",
				argv[optind - 1]);
			return -1;
		}
		if (parse_option(cfg, c, optarg) < 0)
			return -1;
	}
	return check_config(cfg, argc, argv, n_inherited);
}
