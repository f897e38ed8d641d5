/* SPDX-License-Identifier: MIT */
/*
 * explore.h: what the files of `loopd crash` share, private to src/crash/:
 * the options, the run's context, a job (one state to check), a worker,
 * and the functions each file gives the others.
 *
 * The files, one job each, and the rules each defines (docs/crash.md is
 * the user's guide):
 *   cli.c        the command line, usage, cmd_crash() and its exit status
 *   explore.c    the run: trace, base, plan, producer, per-job steps (X7)
 *   budget.c     how many states each crash point gets (X1, pure)
 *   image.c      state images: dedupe, incremental images, undo (X2-X4)
 *   check.c      a check as a child process, the built-in checks (X5)
 *   mount.c      a state's log replay by mounting it (X10, X11)
 *   pool.c       the -j worker threads and the job queue
 *   report.c     progress bar, text and JSON reports, repro lines
 *   selfcheck.c  the recorder self-check A7 (X6)
 *   isstate.c    --is-state IMG: the membership oracle A8 (trace/oracle.c)
 */
#ifndef LOOPD_CRASH_EXPLORE_H
#define LOOPD_CRASH_EXPLORE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace/states.h"
#include "trace/trace.h"
#include "trace/tracefile.h"

#define QUEUE_CAP 64 /* jobs between the producer and the workers */
#define CHUNK (64 * 1024) /* X4: the unit of comparison and restore */
#define DETAIL_MAX 400 /* why a state failed, as reported */

/* The command line (cli.c). */
struct opts {
	const char *trace, *check, *base, *state_id, *out, *after, *workdir;
	const char *is_state; /* --is-state IMG */
	const char *at; /* --at LABEL: only the point after that mark (S10) */
	enum crash_model model;
	bool served, tear, garbage, json, quiet;
	bool help; /* -h: usage on stdout, nothing else */
	uint64_t max_states, seed;
	uint32_t exhaustive, jobs, timeout, unit;
};

/* One state to check; its ID is point.item (X7). */
struct job {
	uint32_t point;
	uint64_t item;
	const char *kind;
	uint32_t n_chosen, n_pending;
	uint8_t variant;
	bool torn;
	struct crash_extents x; /* where it differs from D(t) */
};

/* A failing state, as the report shows it. */
struct failure {
	uint32_t point;
	uint64_t item;
	const char *kind;
	uint32_t n_chosen, n_pending;
	bool torn;
	char detail[DETAIL_MAX];
};

/* One run of the explorer. */
struct ctx {
	struct opts o;
	struct tracefile tf;
	struct crash_plan *plan;
	const char *base_path;
	int base_fd;
	const uint8_t *base_map;
	uint64_t size;
	uint64_t n_chunks; /* CHUNK-sized pieces of the image */
	uint8_t *base_data; /* per chunk: the base has data there */
	uint8_t *base_zero; /* per chunk: the base reads as zeroes (X8) */
	bool verify; /* LOOPD_CRASH_VERIFY: check every restore */
	char workdir[PATH_MAX];

	pthread_mutex_t lock; /* protects everything below */
	pthread_cond_t cond; /* queue and counters changed */
	struct job *q[QUEUE_CAP];
	size_t q_head, q_len;
	bool produced; /* the producer is done */
	uint64_t planned, dups, done, n_failed;
	uint32_t *pt_states, *pt_failed, *budget;
	struct failure *fails;
	size_t n_fails, cap_fails;
	bool tool_error;
	char tool_msg[512];
};

/* A byte range of an image (X8). */
struct piece {
	uint64_t off, len;
};

/* A worker's working image and its in-memory D(t) (image.c, X3, X4). */
struct image {
	const struct ctx *c;
	char path[PATH_MAX + 32];
	int fd;
	const uint8_t *map; /* the image, shared mapping (compare only) */
	uint8_t *dmem; /* D(t), private mapping of the base */
	uint32_t cur; /* the point dmem and the image hold */
	struct crash_scratch *s;
	struct crash_extents d;
	uint8_t *dirty; /* per chunk: dmem was written there */
	uint32_t *seen, stamp; /* per chunk: compared in this restore */
	uint8_t *dz, *db; /* X8, per chunk: D(t) is zero, D(t) is the base */
	struct piece *w; /* X8: what the state wrote, for X4's undo */
	uint8_t *gbuf; /* S9: garbage bytes, CHUNK of them */
	size_t n_w, cap_w;
};

/* How a worker runs its check (check.c, X5). */
struct checker {
	char *img; /* the image to check (the worker's struct image) */
	const struct builtin *fs; /* --check ext4|xfs|btrfs; NULL: CMD */
	char log[PATH_MAX + 32];
	char mnt[PATH_MAX + 32]; /* X10: the worker's mount point, or "" */
	char **env; /* environ + LOOPD_CRASH_IMAGE=img */
	char env_img[PATH_MAX + 64];
};

/* One of the -j workers: a thread (pool.c) with its own image and log. */
struct worker {
	struct ctx *c;
	pthread_t th;
	int id;
	struct image im;
	struct checker ck;
};

/* How a run ended, for the exit status (cmd_crash). */
struct outcome {
	bool failed; /* a state failed its check */
	bool interrupted; /* SIGINT or SIGTERM stopped the run */
};

/* cli.c */
int cli_parse_u64(const char *s, uint64_t *v);

/* explore.c */
int explore_run(const struct opts *o, struct outcome *out);
void explore_job(struct worker *w, const struct job *j);

/* image.c */
int image_base_map(struct ctx *c);
int image_job(const struct ctx *c, struct crash_scratch *s,
	      struct trace_dedupe *seen, uint32_t k, uint64_t item,
	      struct job **out);
int image_open(struct image *im, const struct ctx *c, int id);
void image_close(struct image *im);
int image_advance(struct image *im, uint32_t k);
int image_apply(struct image *im, const struct job *j);
int image_restore(struct image *im, const struct job *j);
int image_verify(const struct image *im);
int image_write_state(const struct ctx *c, struct crash_scratch *s, uint32_t k,
		      const struct crash_state *st, const char *path);

/* check.c */
int check_ready(const struct opts *o);
int check_init(struct checker *ck, const struct opts *o, const char *workdir,
	       int id, char *img);
void check_fini(struct checker *ck);
int check_run(const struct checker *ck, const struct opts *o, bool *pass,
	      char *detail, size_t len);
int check_exec(char *const argv[], const struct checker *ck, uint32_t timeout,
	       int *status);
void check_clear_log(const struct checker *ck);
void check_quote_log(const struct checker *ck, const char *first, char *out,
		     size_t len);

/* mount.c */
int mount_ready(const char *check);
int mount_replay(const struct checker *ck, const char *fstype, const char *opts,
		 uint32_t timeout, bool *ok, char *detail, size_t len);

/* pool.c */
void pool_catch_signals(void);
bool pool_interrupted(void);
int pool_start(struct worker *w);
int pool_push(struct ctx *c, struct job *j, double t0);
void pool_drain(struct ctx *c, double t0);
void pool_stop(struct ctx *c, struct worker *w, uint32_t n);
void pool_fail(struct ctx *c, const char *what, int err);

/* report.c */
double report_clock(void);
void report_plan(const struct ctx *c);
void report_selfcheck(const struct ctx *c, const char *msg);
void report_start(const struct ctx *c);
void report_record(struct ctx *c, const struct job *j, bool pass,
		   const char *detail);
void report_progress(struct ctx *c, double t0, bool final);
void report_results(struct ctx *c, const bool *sel, double secs,
		    const char *selfcheck, bool interrupted);
void report_state(const struct ctx *c, uint32_t k,
		  const struct crash_state *st);

/* selfcheck.c */
int selfcheck(const struct ctx *c, char *msg, size_t len);

/* isstate.c */
int isstate_run(struct ctx *c, struct outcome *out);

#endif /* LOOPD_CRASH_EXPLORE_H */
