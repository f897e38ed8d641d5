/* SPDX-License-Identifier: MIT */
/*
 * isstate.c: `loopd crash TRACE --is-state IMG`, the membership oracle A8:
 * is IMG (a snapshot, a disk after a power cut, an image from --state)
 * one of the crash states the trace allows under the model?  It maps IMG,
 * lets trace/oracle.c decide (O1-O5) and says why: the earliest crash
 * point and the pending writes IMG holds, or the first unit that no
 * state explains and the writes that cover it.  The exit status comes
 * from struct outcome: 0 a state, 1 not one; an error is -errno after
 * one line (exit status 2).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash/explore.h"
#include "nbd/nbd.h"
#include "trace/oracle.h"
#include "util/log.h"

#define LIST_MAX 20 /* writes listed per answer */

/* IMG, read-only, of the export's size: a file or a block device. */
static int map_image(const struct ctx *c, const uint8_t **map)
{
	const char *path = c->o.is_state;
	struct stat st;
	uint64_t size;
	int fd, r = 0;

	*map = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		log_msg("--is-state %s: %s", path, strerror(errno));
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0) {
		r = -errno;
		log_msg("--is-state %s: %s", path, strerror(errno));
		goto out;
	}
	if (size != c->size) {
		log_msg("--is-state %s: %" PRIu64
			" bytes, the export had %" PRIu64,
			path, size, c->size);
		r = -EINVAL;
		goto out;
	}
	if (!size)
		goto out;
	*map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (*map == MAP_FAILED) {
		r = -errno;
		*map = NULL;
		log_msg("--is-state %s: mmap: %s", path, strerror(errno));
		goto out;
	}
	/* O3 reads IMG mostly in offset order. */
	madvise((void *)*map, size, MADV_SEQUENTIAL);
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static const char *cmd_name(uint16_t cmd)
{
	switch (cmd) {
	case NBD_CMD_WRITE:
		return "WRITE";
	case NBD_CMD_WRITE_ZEROES:
		return "WRITE_ZEROES";
	case NBD_CMD_TRIM:
		return "TRIM";
	default:
		return "?";
	}
}

/* "seq S WRITE off=O len=L" and how it ended. */
static void print_write(const struct crash_plan *p, uint32_t w)
{
	const struct crash_write *cw = &p->writes[w];

	printf("seq %" PRIu64 " %s%s off=%" PRIu64 " len=%" PRIu64, cw->recv,
	       cmd_name(cw->cmd), cw->fua ? " FUA" : "", cw->off, cw->len);
	if (cw->reply == CRASH_NEVER)
		printf(" (never replied)");
	else if (cw->status)
		printf(" (failed: %s)", strerror(-cw->status));
}

/* Where the crash is: just before the reply that raises the guarantee. */
static void print_point(const struct ctx *c, uint32_t k)
{
	const struct crash_point *pt = &c->plan->points[k];
	static const char *const where[] = {
		[CRASH_AT_FLUSH] = "before a FLUSH reply",
		[CRASH_AT_FUA] = "before a FUA write's reply",
		[CRASH_AT_WRITE] = "before a write's reply",
		[CRASH_AT_END] = "at the end of the trace",
		[CRASH_AT_SNAPSHOT] = "at a snapshot's instant",
	};

	printf("crash point %u of %u, %s (seq %" PRIu64 ")", k,
	       c->plan->n_points,
	       pt->why <= CRASH_AT_SNAPSHOT ? where[pt->why] : "?", pt->t);
	if (pt->mark >= 0)
		printf(", after mark \"%s\"", c->plan->marks[pt->mark].label);
	printf(": |D(t)| = %u, |P(t)| = %u\n", pt->n_durable, pt->n_pending);
}

static const char *model_arg(const struct ctx *c)
{
	return c->o.served ? "served" : crash_model_name(c->o.model);
}

/* O5: an accepted image, its point and the pending writes it holds. */
static int report_member(const struct ctx *c, const uint8_t *img,
			 const struct oracle_result *res)
{
	const struct crash_plan *p = c->plan;
	struct oracle_presence *pr = calloc(p->n_writes + 1, sizeof *pr);
	uint64_t differ, whole = 0, part = 0, absent = 0, none = 0, listed;
	uint32_t w, n_recv = p->points[res->point].n_recv;
	int r;

	if (!pr)
		return -ENOMEM;
	r = oracle_presence(p, c->base_map, img, res->point, pr, &differ);
	if (r < 0)
		goto out;
	printf("%s: a crash state of %s under model %s (%s), unit %u "
	       "bytes\n",
	       c->o.is_state, c->o.trace, crash_model_name(c->o.model),
	       model_arg(c), p->opts.unit);
	printf("the earliest that allows it is ");
	print_point(c, res->point);
	for (w = 0; w < n_recv; w++) {
		if (crash_durable(p, res->point, w))
			continue;
		if (!pr[w].can)
			none++;
		else if (pr[w].shown == pr[w].can)
			whole++;
		else if (pr[w].shown)
			part++;
		else
			absent++;
	}
	printf("%" PRIu64 " units differ from D(t); pending writes: %" PRIu64
	       " present whole, %" PRIu64 " in part, %" PRIu64
	       " absent, %" PRIu64 " that cannot change D(t) there\n",
	       differ, whole, part, absent, none);
	for (w = 0, listed = 0; w < n_recv; w++) {
		if (crash_durable(p, res->point, w) || !pr[w].shown)
			continue;
		if (listed++ == LIST_MAX) {
			printf("  ... and %" PRIu64 " more\n",
			       whole + part - LIST_MAX);
			break;
		}
		printf("  ");
		print_write(p, w);
		if (pr[w].shown == pr[w].can)
			printf(": whole\n");
		else
			printf(": in part, on %" PRIu64 " of its %" PRIu64
			       " units that may change\n",
			       pr[w].shown, pr[w].can);
	}
out:
	free(pr);
	return r;
}

/* O4: the writes that cover the refuted piece, how each stands at point
   k (or, for a piece no point explains, at its own first point). */
static void report_writes(const struct ctx *c, const uint8_t *img,
			  const struct oracle_result *res)
{
	const struct crash_plan *p = c->plan;
	uint32_t n, i, hider;
	const uint32_t *cw = oracle_writes_at(p, res->bad_off, &n);

	if (!n) {
		printf("  no write covers it, and it differs from the base "
		       "image\n");
		return;
	}
	printf("  %u write%s cover%s it%s:\n", n, n > 1 ? "s" : "",
	       n > 1 ? "" : "s", n > LIST_MAX ? " (the last ones listed)" : "");
	for (i = n > LIST_MAX ? n - LIST_MAX : 0; i < n; i++) {
		uint32_t w = cw[i];
		uint32_t k = res->never ? oracle_first_point(p, w) : res->point;
		bool same =
			oracle_carries(p, w, img, res->bad_off, res->bad_len);

		printf("    ");
		print_write(p, w);
		printf(": %s; ", same ? "these bytes" : "other bytes");
		if (k >= p->n_points || w >= p->points[k].n_recv)
			printf("not received before crash point %u\n", k);
		else if (!oracle_may_show(p, k, w, res->bad_off, &hider))
			printf("at crash point %u, hidden by durable seq "
			       "%" PRIu64 " (it is hb-before it)\n",
			       k, p->writes[hider].recv);
		else
			printf("%s at crash point %u\n",
			       crash_durable(p, k, w) ? "durable" : "pending",
			       k);
	}
}

/* O4: a refused image, the first piece no legal state explains. */
static void report_refused(const struct ctx *c, const uint8_t *img,
			   const struct oracle_result *res)
{
	const struct crash_plan *p = c->plan;
	uint64_t u = res->bad_off / p->opts.unit;

	printf("%s: NOT a crash state of %s under model %s (%s), unit %u "
	       "bytes\n",
	       c->o.is_state, c->o.trace, crash_model_name(c->o.model),
	       model_arg(c), p->opts.unit);
	if (res->never) {
		printf("unit %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
		       ") holds what no crash point allows (%" PRIu64
		       " such unit%s in all)\n",
		       u, res->bad_off, res->bad_off + res->bad_len - 1,
		       res->n_never, res->n_never > 1 ? "s" : "");
	} else {
		printf("each unit is allowed at some crash point, but no "
		       "point allows them all; the closest leaves %" PRIu64
		       " unit%s unexplained: ",
		       res->n_bad, res->n_bad > 1 ? "s" : "");
		print_point(c, res->point);
		printf("unit %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
		       ") is the first it does not allow\n",
		       u, res->bad_off, res->bad_off + res->bad_len - 1);
	}
	report_writes(c, img, res);
}

int isstate_run(struct ctx *c, struct outcome *out)
{
	struct oracle_result res;
	const uint8_t *img;
	uint64_t *per_point = NULL;
	int64_t at = -1;
	int r;

	r = map_image(c, &img);
	if (r < 0)
		return r;
	if (c->o.at) { /* S10 */
		at = crash_point_at_mark(c->plan, c->o.at);
		per_point = calloc(c->plan->n_points, sizeof *per_point);
		if (at < 0)
			log_msg("--at %s: no such mark in %s", c->o.at,
				c->o.trace);
		if (at < 0 || !per_point) {
			r = at < 0 ? -ENOENT : -ENOMEM;
			goto out;
		}
	}
	r = oracle_check(c->plan, c->base_map, img, &res, per_point);
	if (r == -ENOTSUP)
		log_msg("--is-state: under model %s, D(t) shrinks between "
			"crash points; the oracle cannot answer",
			crash_model_name(c->o.model));
	else if (r < 0)
		log_msg("--is-state: %s", strerror(-r));
	if (!r && at >= 0 && res.member && per_point[at]) {
		/* S10: a state, but not of that instant. */
		printf("%s: a crash state of %s, but NOT at mark \"%s\" "
		       "(crash point %" PRId64 "): %" PRIu64
		       " units differ from every state of that instant; ",
		       c->o.is_state, c->o.trace, c->o.at, at, per_point[at]);
		print_point(c, res.point);
		res.member = false;
	} else if (!r && at >= 0 && res.member) {
		res.point = (uint32_t)at;
		r = report_member(c, img, &res);
	} else if (!r && res.member) {
		r = report_member(c, img, &res);
	} else if (!r) {
		report_refused(c, img, &res);
	}
	out->failed = !r && !res.member;
out:
	free(per_point);
	if (img)
		munmap((void *)img, c->size);
	return r;
}
