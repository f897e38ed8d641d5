/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the -j worker threads of `loopd crash` and the bounded job
 * queue that the producer fills in point order (X3 wants that order);
 * stopping them, on the first tool error or on SIGINT/SIGTERM.  What a
 * worker does with a job is explore_job() (explore.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crash/explore.h"

/*
 * Set by the signal handler, read by every thread.  A volatile
 * sig_atomic_t is safe in a handler but is a data race between threads;
 * a lock-free atomic is both.
 */
static atomic_bool stop_requested;
_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "the handler needs lock-free");

static void on_signal(int sig)
{
	(void)sig;
	atomic_store_explicit(&stop_requested, true, memory_order_relaxed);
}

/* The flag orders nothing: the queue's lock does. */
static bool stopping(void)
{
	return atomic_load_explicit(&stop_requested, memory_order_relaxed);
}

/* SIGINT and SIGTERM end the run early, with the report so far. */
void pool_catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool pool_interrupted(void)
{
	return stopping();
}

/* The first tool error is kept for the report, and stops everyone. */
void pool_fail(struct ctx *c, const char *what, int err)
{
	pthread_mutex_lock(&c->lock);
	if (!c->tool_error)
		snprintf(c->tool_msg, sizeof c->tool_msg, "%s: %s", what,
			 strerror(-err));
	c->tool_error = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* The next job, or NULL when the worker is done: the queue is empty and
   the producer finished, or a tool error or a signal stops the run. */
static struct job *pop(struct ctx *c)
{
	struct job *j = NULL;

	pthread_mutex_lock(&c->lock);
	while (!c->q_len && !c->produced && !c->tool_error && !stopping())
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->q_len && !c->tool_error && !stopping()) {
		j = c->q[c->q_head];
		c->q_head = (c->q_head + 1) % QUEUE_CAP;
		c->q_len--;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return j;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct job *j;

	while ((j = pop(w->c))) {
		explore_job(w, j);
		crash_extents_free(&j->x);
		free(j);
	}
	return NULL;
}

int pool_start(struct worker *w)
{
	return -pthread_create(&w->th, NULL, worker_main, w);
}

/*
 * Queue j (the queue takes it), waiting while the queue is full, with the
 * progress bar.  -ECANCELED (j not taken) when the run stops.
 */
int pool_push(struct ctx *c, struct job *j, double t0)
{
	pthread_mutex_lock(&c->lock);
	while (c->q_len == QUEUE_CAP && !c->tool_error && !stopping()) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		pthread_mutex_unlock(&c->lock);
		report_progress(c, t0, false);
		pthread_mutex_lock(&c->lock);
	}
	if (c->tool_error || stopping()) {
		pthread_mutex_unlock(&c->lock);
		return -ECANCELED;
	}
	c->q[(c->q_head + c->q_len) % QUEUE_CAP] = j;
	c->q_len++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* The producer is done: wait until the workers took every job. */
void pool_drain(struct ctx *c, double t0)
{
	pthread_mutex_lock(&c->lock);
	c->produced = true;
	pthread_cond_broadcast(&c->cond);
	while (c->q_len && !c->tool_error && !stopping()) {
		pthread_mutex_unlock(&c->lock);
		report_progress(c, t0, false);
		usleep(100000);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
}

/*
 * Let the n started workers finish their jobs and end; join them.  Jobs
 * still queued (the run stopped early) are dropped.
 */
void pool_stop(struct ctx *c, struct worker *w, uint32_t n)
{
	struct job *j;
	uint32_t i;

	pthread_mutex_lock(&c->lock);
	c->produced = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < n; i++)
		pthread_join(w[i].th, NULL);
	for (; c->q_len; c->q_len--) {
		j = c->q[c->q_head];
		c->q_head = (c->q_head + 1) % QUEUE_CAP;
		crash_extents_free(&j->x);
		free(j);
	}
}
