/* SPDX-License-Identifier: MIT */
/*
 * main.c: the loopd command: the subcommand dispatch (serve, ctl, trace,
 * crash), --help and --version.  Each subcommand returns its exit status,
 * which main() returns: the process ends here and nowhere else (no
 * exit() in the serve code).
 */
#include <stdio.h>
#include <string.h>

#include "crash/crash.h"
#include "serve/ctl.h"
#include "serve/serve.h"
#include "trace/tracecmd.h"
#include "util/log.h"

static void usage_main(FILE *f)
{
	fprintf(f, "Usage: loopd COMMAND [OPTIONS]\n"
		   "\n"
		   "loopd serves a file as a block device over NBD, with exact "
		   "FLUSH/FUA durability.\n"
		   "\n"
		   "Commands:\n"
		   "  serve     serve files as NBD exports (see 'loopd serve "
		   "--help')\n"
		   "  ctl       ask a running server: statistics, marks (see "
		   "'loopd ctl --help')\n"
		   "  trace     dump, summarise or mark a recorded trace\n"
		   "  crash     check every crash state of a recorded trace\n"
		   "\n"
		   "Options:\n"
		   "  -h, --help     show this help\n"
		   "  -V, --version  show the version\n"
		   "\n"
		   "Example:\n"
		   "  loopd serve --size 1G disk.img\n"
		   "  qemu-img info nbd://127.0.0.1:10809\n"
		   "\n"
		   "See loopd(1) and docs/ for the durability contract.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage_main(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("loopd %s\n", LOOPD_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	if (!strcmp(argv[1], "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (!strcmp(argv[1], "crash"))
		return cmd_crash(argc - 1, argv + 1);
	log_msg("unknown command '%s' (try 'loopd --help')", argv[1]);
	return 1;
}
