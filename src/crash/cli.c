/* SPDX-License-Identifier: MIT */
/*
 * cli.c: the command line of `loopd crash`: its usage, the options
 * parsed into one struct opts, and cmd_crash(), which runs the explorer
 * (explore.c) and turns how the run ended into the exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash/crash.h"
#include "crash/explore.h"
#include "util/log.h"

static void usage_crash(FILE *f)
{
	fprintf(f,
		"Usage: loopd crash TRACE --check CMD|ext4|xfs|btrfs "
		"[OPTIONS]\n"
		"       loopd crash TRACE --state ID --out IMG [OPTIONS]\n"
		"       loopd crash TRACE --is-state IMG [OPTIONS]\n"
		"\n"
		"Check every crash state that a recorded trace allows: at "
		"each flush or FUA\n"
		"completion and at the end, the durable writes plus subsets "
		"of the pending ones.\n"
		"\n"
		"Options:\n"
		"  -c, --check CMD       run 'sh -c CMD' on each state; {} is "
		"the image path;\n"
		"                        exit 0 passes.  Built in, each "
		"replaying the log\n"
		"                        first: 'ext4' (e2fsck -p -E "
		"journal_only, then\n"
		"                        e2fsck -fn must be clean), 'xfs' "
		"(mount, umount,\n"
		"                        xfs_repair -n), 'btrfs' (mount, "
		"umount, btrfs\n"
		"                        check --readonly); xfs and btrfs "
		"need root\n"
		"  -m, --model MODEL     served (default: what the recorded "
		"flush mode\n"
		"                        promises), contract, barrier, "
		"no-flush, skip-one-flush\n"
		"  -n, --max-states N    check at most N states (default "
		"10000; 0: no limit)\n"
		"  -s, --seed S          seed of the sampling (default 1)\n"
		"  -E, --exhaustive N    all subsets when at most N writes "
		"are pending (10)\n"
		"      --tear            also tear one write per state at the "
		"atomic unit\n"
		"      --tear-unit N     tear at N bytes instead (a power of "
		"two)\n"
		"      --garbage         also states where units of a pending "
		"write hold\n"
		"                        arbitrary bytes (S9)\n"
		"  -a, --after LABEL     only crash points after the first "
		"mark LABEL\n"
		"  -j, --jobs N          run N checks in parallel (default: "
		"CPUs)\n"
		"  -t, --timeout SECS    per check (default 60)\n"
		"      --json            machine-readable results on stdout\n"
		"      --state ID        materialise state ID (K.I) into "
		"--out IMG\n"
		"  -o, --out IMG         where --state writes the image\n"
		"      --is-state IMG    is IMG a crash state of TRACE under "
		"the model, at\n"
		"                        some crash point?  (A8; the unit: "
		"--tear-unit)\n"
		"      --at LABEL        with --is-state: only at the instant "
		"of mark LABEL,\n"
		"                        such as a live snapshot's \"snapshot "
		"NAME\" (S10)\n"
		"  -b, --base PATH       the base image (default: the path "
		"in the trace)\n"
		"  -w, --workdir DIR     where working images go (default: "
		"/dev/shm if they\n"
		"                        fit, else next to the base)\n"
		"  -q, --quiet           no progress bar\n"
		"  -h, --help            show this help\n"
		"\n"
		"Exit status: 0 every state passed, 1 a state failed, 2 "
		"usage or tool error.\n"
		"With --is-state: 0 IMG is a crash state, 1 it is not, 2 "
		"usage or tool error.\n");
}

/* A decimal number; also the parts of a state ID (X7, explore.c). */
int cli_parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	/* Digits only: strtoull takes blanks, signs and wraps "-1". */
	return errno || *end || *s < '0' || *s > '9' ? -EINVAL : 0;
}

enum {
	OPT_TEAR = 256,
	OPT_TEAR_UNIT,
	OPT_GARBAGE,
	OPT_JSON,
	OPT_STATE,
	OPT_IS_STATE,
	OPT_AT,
};

static const struct option long_opts[] = {
	{"check", required_argument, NULL, 'c'},
	{"model", required_argument, NULL, 'm'},
	{"max-states", required_argument, NULL, 'n'},
	{"seed", required_argument, NULL, 's'},
	{"exhaustive", required_argument, NULL, 'E'},
	{"tear", no_argument, NULL, OPT_TEAR},
	{"garbage", no_argument, NULL, OPT_GARBAGE},
	{"tear-unit", required_argument, NULL, OPT_TEAR_UNIT},
	{"after", required_argument, NULL, 'a'},
	{"jobs", required_argument, NULL, 'j'},
	{"timeout", required_argument, NULL, 't'},
	{"json", no_argument, NULL, OPT_JSON},
	{"state", required_argument, NULL, OPT_STATE},
	{"is-state", required_argument, NULL, OPT_IS_STATE},
	{"at", required_argument, NULL, OPT_AT},
	{"out", required_argument, NULL, 'o'},
	{"base", required_argument, NULL, 'b'},
	{"workdir", required_argument, NULL, 'w'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{0},
};

static int parse_model(const char *arg, struct opts *o)
{
	o->served = false;
	if (!strcmp(arg, "served"))
		o->served = true;
	else if (!strcmp(arg, "contract"))
		o->model = CRASH_CONTRACT;
	else if (!strcmp(arg, "barrier"))
		o->model = CRASH_BARRIER;
	else if (!strcmp(arg, "no-flush"))
		o->model = CRASH_NOFLUSH;
	else if (!strcmp(arg, "skip-one-flush"))
		o->model = CRASH_SKIP1;
	else {
		log_msg("--model %s: expected served, contract, barrier, "
			"no-flush or skip-one-flush",
			arg);
		return -EINVAL;
	}
	return 0;
}

/* The options that take a number, each in its range. */
static int parse_number(int ch, const char *arg, struct opts *o)
{
	uint64_t v;

	if (cli_parse_u64(arg, &v) < 0 || (ch == 'E' && v > 20) ||
	    (ch == 'j' && (v < 1 || v > 256)) ||
	    (ch == 't' && (v < 1 || v > 86400)) ||
	    (ch == OPT_TEAR_UNIT &&
	     (v < 1 || v > (1u << 30) || (v & (v - 1))))) {
		log_msg("crash: bad option value '%s' (try 'loopd crash "
			"--help')",
			arg);
		return -EINVAL;
	}
	if (ch == 'n')
		o->max_states = v;
	else if (ch == 's')
		o->seed = v;
	else if (ch == 'E')
		o->exhaustive = (uint32_t)v;
	else if (ch == 'j')
		o->jobs = (uint32_t)v;
	else if (ch == 't')
		o->timeout = (uint32_t)v;
	else
		o->unit = (uint32_t)v;
	return 0;
}

/* One option from getopt_long(). */
static int parse_opt(int ch, const char *arg, struct opts *o)
{
	switch (ch) {
	case 'c':
		o->check = arg;
		return 0;
	case 'm':
		return parse_model(arg, o);
	case 'n':
	case 's':
	case 'E':
	case 'j':
	case 't':
	case OPT_TEAR_UNIT:
		return parse_number(ch, arg, o);
	case OPT_GARBAGE:
		o->garbage = true;
		return 0;
	case OPT_TEAR:
		o->tear = true;
		return 0;
	case 'a':
		o->after = arg;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_STATE:
		o->state_id = arg;
		return 0;
	case OPT_IS_STATE:
		o->is_state = arg;
		return 0;
	case OPT_AT:
		o->at = arg;
		return 0;
	case 'o':
		o->out = arg;
		return 0;
	case 'b':
		o->base = arg;
		return 0;
	case 'w':
		o->workdir = arg;
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	case 'h':
		o->help = true;
		return 0;
	default:
		/* getopt_long() said what was wrong. */
		fprintf(stderr, "Try 'loopd crash --help'.\n");
		return -EINVAL;
	}
}

/* The operand and the options that need each other. */
static int check_args(int argc, char **argv, struct opts *o)
{
	if (optind + 1 != argc) {
		log_msg("crash: expected one TRACE (try 'loopd crash --help')");
		return -EINVAL;
	}
	o->trace = argv[optind];
	if (!o->state_id && !o->check && !o->is_state) {
		log_msg("crash: --check CMD|ext4|xfs|btrfs, --state ID --out "
			"IMG or --is-state IMG is required");
		return -EINVAL;
	}
	if (o->is_state && (o->check || o->state_id || o->json)) {
		log_msg("crash: --is-state goes without --check, --state and "
			"--json");
		return -EINVAL;
	}
	if (o->at && !o->is_state) {
		log_msg("crash: --at goes with --is-state");
		return -EINVAL;
	}
	if (o->state_id && !o->out) {
		log_msg("crash: --state needs --out IMG");
		return -EINVAL;
	}
	return 0;
}

/* The command line into o; -h stops at once (o->help). */
static int parse_args(int argc, char **argv, struct opts *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int ch, r;

	memset(o, 0, sizeof *o);
	o->served = true;
	o->max_states = 10000;
	o->seed = 1;
	o->exhaustive = 10;
	o->jobs = cpus > 0 ? (uint32_t)cpus : 1;
	o->timeout = 60;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:m:n:s:E:a:j:t:o:b:w:qh",
				 long_opts, NULL)) != -1) {
		r = parse_opt(ch, optarg, o);
		if (r < 0 || o->help)
			return r;
	}
	return check_args(argc, argv, o);
}

int cmd_crash(int argc, char **argv)
{
	struct outcome out = {0};
	struct opts o;
	int r;

	r = parse_args(argc, argv, &o);
	if (r < 0)
		return 2;
	if (o.help) {
		usage_crash(stdout);
		return 0;
	}
	r = explore_run(&o, &out);
	if (r < 0)
		return 2;
	return out.failed ? 1 : out.interrupted ? 2 : 0;
}
