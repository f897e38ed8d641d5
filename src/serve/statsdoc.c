/* SPDX-License-Identifier: MIT */
/*
 * statsdoc.c: the statistics document (statsdoc.h): one read of the
 * engine's counters (stats_collect, N3 in engine/stats.c) written in one
 * of three forms, all from that one read:
 *
 *   text        a table per export, then one line per connection;
 *   json        built with json-c, never by hand, so names from the
 *               command line are escaped as JSON wants;
 *   prometheus  the text exposition format of node_exporter's textfile
 *               collector: loopd_* metrics with an export="NAME" label,
 *               each with HELP and TYPE, label values escaped (\\, \",
 *               \n), latencies as a cumulative histogram in seconds.
 *
 * docs/stats.md lists every field.  No I/O: the caller writes the bytes.
 */
#include "serve/statsdoc.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/export.h"
#include "engine/stats.h"
#include "util/clock.h"
#include "util/size.h"

const char *const stats_format_names[STATS_FORMATS] = {"text", "json",
						       "prometheus"};

/* Command slots (STATS_CMDS), by NBD type; DISC is never replied to. */
static const char *const cmd_names[STATS_CMDS] = {
	"READ",	 "WRITE",	 "DISC",	 "FLUSH", "TRIM",
	"CACHE", "WRITE_ZEROES", "BLOCK_STATUS", "other"};

static bool cmd_shown(const struct stats_sum *s, unsigned int t)
{
	return t != NBD_CMD_DISC || s->c[ST_REQ(t)];
}

static uint64_t requests_total(const struct stats_sum *s)
{
	uint64_t n = 0;
	unsigned int t;

	for (t = 0; t < STATS_CMDS; t++)
		n += s->c[ST_REQ(t)];
	return n;
}

static uint64_t errors_total(const struct stats_sum *s)
{
	uint64_t n = 0;
	unsigned int e;

	for (e = 0; e < STATS_ERRNOS; e++)
		n += s->c[ST_ERR(e)];
	return n;
}

/* "EIO" for an errno slot; "other" for the last one. */
static const char *errno_name(unsigned int e, char *buf, size_t len)
{
	const char *n;

	if (e == STATS_ERRNOS - 1)
		return "other";
	n = strerrorname_np((int)e);
	if (n)
		return n;
	snprintf(buf, len, "E%u", e);
	return buf;
}

/* The bucket under which a fraction q of command t's requests took, or
   -1 with none (N5). */
static int quantile(const struct stats_sum *s, unsigned int t, double q)
{
	uint64_t n = s->c[ST_REQ(t)], acc = 0;
	unsigned int b;

	if (!n)
		return -1;
	for (b = 0; b < STATS_BUCKETS; b++) {
		acc += s->c[ST_LAT_B(t, b)];
		if ((double)acc >= q * (double)n)
			return (int)b;
	}
	return STATS_BUCKETS - 1;
}

static double seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* ---------------------------------------------------------------- */
/* JSON.                                                             */

static void put_u(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static json_object *json_requests(const struct stats_sum *s)
{
	json_object *o = json_object_new_object();
	unsigned int t;

	for (t = 0; t < STATS_CMDS; t++)
		if (cmd_shown(s, t))
			put_u(o, cmd_names[t], s->c[ST_REQ(t)]);
	return o;
}

static json_object *json_errors(const struct stats_sum *s)
{
	json_object *o = json_object_new_object();
	unsigned int e;
	char buf[16];

	for (e = 0; e < STATS_ERRNOS; e++)
		if (s->c[ST_ERR(e)])
			put_u(o, errno_name(e, buf, sizeof buf),
			      s->c[ST_ERR(e)]);
	return o;
}

/* N5: per command with requests, its count, sum, mean and the non-empty
   buckets, each with its bound ("lt_us": shorter than; null: the rest). */
static json_object *json_latency(const struct stats_sum *s)
{
	json_object *o = json_object_new_object();
	unsigned int t, b;

	for (t = 0; t < STATS_CMDS; t++) {
		uint64_t n = s->c[ST_REQ(t)];
		json_object *h, *bk;

		if (!n)
			continue;
		h = json_object_new_object();
		bk = json_object_new_array();
		put_u(h, "count", n);
		put_u(h, "sum_us", s->c[ST_LSUM(t)]);
		json_object_object_add(
			h, "mean_us",
			json_object_new_double((double)s->c[ST_LSUM(t)] /
					       (double)n));
		for (b = 0; b < STATS_BUCKETS; b++) {
			json_object *e;

			if (!s->c[ST_LAT_B(t, b)])
				continue;
			e = json_object_new_object();
			json_object_object_add(
				e, "lt_us",
				b == STATS_BUCKETS - 1
					? NULL
					: json_object_new_uint64(1ull << b));
			put_u(e, "count", s->c[ST_LAT_B(t, b)]);
			json_object_array_add(bk, e);
		}
		json_object_object_add(h, "buckets", bk);
		json_object_object_add(o, cmd_names[t], h);
	}
	return o;
}

/* What both an export and a connection have. */
static void json_common(json_object *o, const struct stats_sum *s)
{
	json_object_object_add(o, "requests", json_requests(s));
	put_u(o, "requests_total", requests_total(s));
	put_u(o, "bytes_read", s->c[ST_BYTES_READ]);
	put_u(o, "bytes_written", s->c[ST_BYTES_WRITTEN]);
	put_u(o, "fua", s->c[ST_FUA]);
	put_u(o, "waited_overlap", s->c[ST_WAITED_OVERLAP]);
	put_u(o, "waited_barrier", s->c[ST_WAITED_BARRIER]);
	put_u(o, "flushes", s->c[ST_REQ(NBD_CMD_FLUSH)]);
	put_u(o, "flushes_synced", s->c[ST_FLUSH_SYNCED]);
	put_u(o, "flushes_joined", s->c[ST_FLUSH_JOINED]);
	put_u(o, "flushes_clean", s->c[ST_FLUSH_CLEAN]);
	json_object_object_add(o, "errors", json_errors(s));
	put_u(o, "errors_total", errors_total(s));
}

static json_object *json_export(const struct stats_export_view *ev)
{
	const struct export *exp = ev->exp;
	const struct stats_sum *s = &ev->sum;
	json_object *o = json_object_new_object(), *l = NULL;
	uint64_t syncs = s->c[ST_SYNCS];
	char buf[16];

	json_object_object_add(o, "name", json_object_new_string(exp->name));
	json_object_object_add(o, "description",
			       json_object_new_string(exp->description));
	put_u(o, "size", exp->size);
	json_object_object_add(o, "read_only",
			       json_object_new_boolean(exp->read_only));
	put_u(o, "connections", ev->conns);
	json_common(o, s);
	put_u(o, "syncs", syncs);
	put_u(o, "early_syncs", ev->early_syncs);
	json_object_object_add(
		o, "flushes_per_sync",
		syncs ? json_object_new_double((double)s->c[ST_FLUSH_SYNCED] /
					       (double)syncs)
		      : NULL);
	put_u(o, "in_flight", ev->in_flight);
	put_u(o, "in_flight_max", ev->in_flight_max);
	json_object_object_add(o, "latched",
			       json_object_new_boolean(ev->latched));
	if (ev->latched) {
		l = json_object_new_object();
		json_object_object_add(
			l, "errno",
			json_object_new_string(errno_name(
				(unsigned int)ev->latch_err, buf, sizeof buf)));
		json_object_object_add(
			l, "error",
			json_object_new_string(strerror(ev->latch_err)));
		json_object_object_add(
			l, "op",
			json_object_new_string(ev->latch_op ? ev->latch_op
							    : "unknown"));
	}
	json_object_object_add(o, "latch", l);
	json_object_object_add(o, "latency_us", json_latency(s));
	return o;
}

static json_object *json_conn(const struct stats_conn_view *cv,
			      const struct server *srv)
{
	json_object *o = json_object_new_object();
	const struct stats_sum *s = &cv->sum;

	put_u(o, "id", cv->id);
	json_object_object_add(
		o, "export",
		json_object_new_string(cv->export < srv->n_exports
					       ? srv->exports[cv->export]->name
					       : "?"));
	json_object_object_add(o, "peer", json_object_new_string(cv->peer));
	json_object_object_add(o, "since",
			       json_object_new_double(seconds(cv->since_ns)));
	json_common(o, s);
	put_u(o, "in_flight", s->c[ST_IN_FLIGHT]);
	put_u(o, "in_flight_max", s->c[ST_IN_FLIGHT_MAX]);
	return o;
}

static char *render_json(const struct stats_view *v, struct server *srv,
			 uint64_t start_ns)
{
	json_object *doc = json_object_new_object(), *a;
	char *out;
	size_t i;

	json_object_object_add(doc, "version",
			       json_object_new_string(LOOPD_VERSION));
	put_u(doc, "pid", (uint64_t)getpid());
	json_object_object_add(
		doc, "time",
		json_object_new_double(seconds(clock_ns(CLOCK_REALTIME))));
	json_object_object_add(doc, "started",
			       json_object_new_double(seconds(start_ns)));
	a = json_object_new_array();
	for (i = 0; i < v->n_exports; i++)
		json_object_array_add(a, json_export(&v->exports[i]));
	json_object_object_add(doc, "exports", a);
	a = json_object_new_array();
	for (i = 0; i < v->n_conns; i++)
		json_object_array_add(a, json_conn(&v->conns[i], srv));
	json_object_object_add(doc, "connections", a);
	out = strdup(json_object_to_json_string_ext(
		doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
	if (!out)
		return NULL;
	/* One document, one line ending: easier to read from a shell. */
	{
		size_t n = strlen(out);
		char *nl = realloc(out, n + 2);

		if (!nl) {
			free(out);
			return NULL;
		}
		memcpy(nl + n, "\n", 2);
		out = nl;
	}
	return out;
}

/* ---------------------------------------------------------------- */
/* Text.                                                             */

static void time_iso(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "?");
}

static void bound(int b, char *buf, size_t len)
{
	if (b < 0)
		snprintf(buf, len, "-");
	else if (b == STATS_BUCKETS - 1)
		snprintf(buf, len, ">=%lluus", 1ull << (STATS_BUCKETS - 2));
	else
		snprintf(buf, len, "<%lluus", 1ull << b);
}

static void text_requests(FILE *f, const struct stats_sum *s)
{
	const char *sep = ": ";
	unsigned int t;

	fprintf(f, "total %llu", (unsigned long long)requests_total(s));
	for (t = 0; t < STATS_CMDS; t++) {
		if (!s->c[ST_REQ(t)])
			continue;
		fprintf(f, "%s%s %llu", sep, cmd_names[t],
			(unsigned long long)s->c[ST_REQ(t)]);
		sep = ", ";
	}
	fputc('\n', f);
}

static void text_errors(FILE *f, const struct stats_sum *s)
{
	const char *sep = "";
	unsigned int e;
	char buf[16];

	if (!errors_total(s)) {
		fprintf(f, "none\n");
		return;
	}
	for (e = 0; e < STATS_ERRNOS; e++) {
		if (!s->c[ST_ERR(e)])
			continue;
		fprintf(f, "%s%s %llu", sep, errno_name(e, buf, sizeof buf),
			(unsigned long long)s->c[ST_ERR(e)]);
		sep = ", ";
	}
	fputc('\n', f);
}

static void text_latency(FILE *f, const struct stats_sum *s)
{
	char p50[24], p99[24], mx[24];
	unsigned int t;
	bool any = false;

	for (t = 0; t < STATS_CMDS; t++) {
		uint64_t n = s->c[ST_REQ(t)];

		if (!n)
			continue;
		if (!any)
			fprintf(f,
				"  latency       %-13s %10s %10s %10s %10s "
				"%10s\n",
				"command", "count", "mean", "p50", "p99",
				"max");
		any = true;
		bound(quantile(s, t, 0.5), p50, sizeof p50);
		bound(quantile(s, t, 0.99), p99, sizeof p99);
		bound(quantile(s, t, 1.0), mx, sizeof mx);
		fprintf(f,
			"                %-13s %10llu %8.0fus %10s %10s %10s\n",
			cmd_names[t], (unsigned long long)n,
			(double)s->c[ST_LSUM(t)] / (double)n, p50, p99, mx);
	}
	if (!any)
		fprintf(f, "  latency       no requests yet\n");
}

static void text_export(FILE *f, const struct stats_export_view *ev)
{
	const struct export *exp = ev->exp;
	const struct stats_sum *s = &ev->sum;
	uint64_t syncs = s->c[ST_SYNCS];
	char sz[32], buf[16];

	fprintf(f, "export \"%s\" (%s, %s%s), %u connection%s\n", exp->name,
		exp->description, size_format(exp->size, sz, sizeof sz),
		exp->read_only ? ", read-only" : "", ev->conns,
		ev->conns == 1 ? "" : "s");
	fprintf(f, "  requests      ");
	text_requests(f, s);
	fprintf(f, "  bytes         read %llu, written %llu; %llu FUA\n",
		(unsigned long long)s->c[ST_BYTES_READ],
		(unsigned long long)s->c[ST_BYTES_WRITTEN],
		(unsigned long long)s->c[ST_FUA]);
	fprintf(f, "  flushes       %llu: %llu by %llu syncs",
		(unsigned long long)s->c[ST_REQ(NBD_CMD_FLUSH)],
		(unsigned long long)s->c[ST_FLUSH_SYNCED],
		(unsigned long long)syncs);
	if (syncs)
		fprintf(f, " (%.2f per sync)",
			(double)s->c[ST_FLUSH_SYNCED] / (double)syncs);
	fprintf(f, ", %llu joined, %llu clean; %llu early syncs\n",
		(unsigned long long)s->c[ST_FLUSH_JOINED],
		(unsigned long long)s->c[ST_FLUSH_CLEAN],
		(unsigned long long)ev->early_syncs);
	fprintf(f,
		"  waited        %llu for an overlap (R3), %llu for a barrier "
		"(R4)\n",
		(unsigned long long)s->c[ST_WAITED_OVERLAP],
		(unsigned long long)s->c[ST_WAITED_BARRIER]);
	fprintf(f, "  in flight     %u now, %u at most\n", ev->in_flight,
		ev->in_flight_max);
	fprintf(f, "  errors        ");
	text_errors(f, s);
	if (ev->latched)
		fprintf(f, "  latched       yes (R5): %s on %s (%s)\n",
			errno_name((unsigned int)ev->latch_err, buf,
				   sizeof buf),
			ev->latch_op ? ev->latch_op : "unknown",
			strerror(ev->latch_err));
	else
		fprintf(f, "  latched       no\n");
	text_latency(f, s);
}

static void text_conns(FILE *f, const struct stats_view *v,
		       const struct server *srv)
{
	size_t i;

	fprintf(f, "\n%zu connection%s\n", v->n_conns,
		v->n_conns == 1 ? "" : "s");
	if (!v->n_conns)
		return;
	fprintf(f, "  %6s  %-12s %-24s %-20s %10s %12s %12s %9s %6s\n", "id",
		"export", "peer", "since", "requests", "read", "written",
		"in flight", "errors");
	for (i = 0; i < v->n_conns; i++) {
		const struct stats_conn_view *cv = &v->conns[i];
		const struct stats_sum *s = &cv->sum;
		char name[16], since[32], fl[24];

		snprintf(name, sizeof name, "\"%.10s\"",
			 cv->export < srv->n_exports
				 ? srv->exports[cv->export]->name
				 : "?");
		time_iso(cv->since_ns, since, sizeof since);
		snprintf(fl, sizeof fl, "%llu (%llu)",
			 (unsigned long long)s->c[ST_IN_FLIGHT],
			 (unsigned long long)s->c[ST_IN_FLIGHT_MAX]);
		fprintf(f,
			"  %6u  %-12s %-24.24s %-20s %10llu %12llu %12llu "
			"%9s %6llu\n",
			cv->id, name, cv->peer, since,
			(unsigned long long)requests_total(s),
			(unsigned long long)s->c[ST_BYTES_READ],
			(unsigned long long)s->c[ST_BYTES_WRITTEN], fl,
			(unsigned long long)errors_total(s));
	}
}

static void render_text(FILE *f, const struct stats_view *v, struct server *srv,
			uint64_t start_ns)
{
	uint64_t up = (clock_ns(CLOCK_REALTIME) - start_ns) / 1000000000u;
	size_t i;

	fprintf(f, "loopd %s, pid %d, up %llus, %zu export%s\n", LOOPD_VERSION,
		(int)getpid(), (unsigned long long)up, v->n_exports,
		v->n_exports == 1 ? "" : "s");
	for (i = 0; i < v->n_exports; i++) {
		fputc('\n', f);
		text_export(f, &v->exports[i]);
	}
	text_conns(f, v, srv);
}

/* ---------------------------------------------------------------- */
/* Prometheus.                                                       */

/* A label value: backslash, double quote and newline escaped. */
static void prom_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void prom_head(FILE *f, const char *name, const char *type,
		      const char *help)
{
	fprintf(f, "# HELP loopd_%s %s\n# TYPE loopd_%s %s\n", name, help, name,
		type);
}

/* One sample: loopd_NAME{export="E"[,KEY="VAL"]} V. */
static void prom_sample(FILE *f, const char *name, const char *exp,
			const char *key, const char *val, uint64_t v)
{
	fprintf(f, "loopd_%s{export=\"", name);
	prom_label(f, exp);
	fputc('"', f);
	if (key) {
		fprintf(f, ",%s=\"", key);
		prom_label(f, val);
		fputc('"', f);
	}
	fprintf(f, "} %llu\n", (unsigned long long)v);
}

/* A metric with one sample per export, from its sum. */
static void prom_per_export(FILE *f, const struct stats_view *v,
			    const char *name, const char *type,
			    const char *help, unsigned int idx)
{
	size_t i;

	prom_head(f, name, type, help);
	for (i = 0; i < v->n_exports; i++)
		prom_sample(f, name, v->exports[i].exp->name, NULL, NULL,
			    v->exports[i].sum.c[idx]);
}

/* N5: a cumulative histogram in seconds, for each command with requests. */
static void prom_latency(FILE *f, const struct stats_view *v)
{
	static const char name[] = "request_duration_seconds";
	size_t i;
	unsigned int t, b;

	prom_head(f, name, "histogram",
		  "Time from a request's arrival to its reply, by command.");
	for (i = 0; i < v->n_exports; i++) {
		const struct stats_sum *s = &v->exports[i].sum;
		const char *en = v->exports[i].exp->name;

		for (t = 0; t < STATS_CMDS; t++) {
			uint64_t acc = 0;

			if (!s->c[ST_REQ(t)])
				continue;
			for (b = 0; b < STATS_BUCKETS; b++) {
				acc += s->c[ST_LAT_B(t, b)];
				fprintf(f, "loopd_%s_bucket{export=\"", name);
				prom_label(f, en);
				if (b == STATS_BUCKETS - 1)
					fprintf(f,
						"\",command=\"%s\",le=\"+Inf\"}"
						" %llu\n",
						cmd_names[t],
						(unsigned long long)acc);
				else
					fprintf(f,
						"\",command=\"%s\",le=\"%.9g\"}"
						" "
						"%llu\n",
						cmd_names[t],
						(double)(1ull << b) / 1e6,
						(unsigned long long)acc);
			}
			fprintf(f, "loopd_%s_sum{export=\"", name);
			prom_label(f, en);
			fprintf(f, "\",command=\"%s\"} %.6f\n", cmd_names[t],
				(double)s->c[ST_LSUM(t)] / 1e6);
			fprintf(f, "loopd_%s_count{export=\"", name);
			prom_label(f, en);
			fprintf(f, "\",command=\"%s\"} %llu\n", cmd_names[t],
				(unsigned long long)s->c[ST_REQ(t)]);
		}
	}
}

static void prom_requests(FILE *f, const struct stats_view *v)
{
	size_t i;
	unsigned int t;

	prom_head(f, "requests_total", "counter",
		  "NBD requests replied to, by command.");
	for (i = 0; i < v->n_exports; i++)
		for (t = 0; t < STATS_CMDS; t++)
			if (cmd_shown(&v->exports[i].sum, t))
				prom_sample(f, "requests_total",
					    v->exports[i].exp->name, "command",
					    cmd_names[t],
					    v->exports[i].sum.c[ST_REQ(t)]);
}

static void prom_errors(FILE *f, const struct stats_view *v)
{
	char buf[16];
	size_t i;
	unsigned int e;

	prom_head(f, "errors_total", "counter",
		  "Requests replied to with an error, by errno.");
	for (i = 0; i < v->n_exports; i++)
		for (e = 0; e < STATS_ERRNOS; e++)
			if (v->exports[i].sum.c[ST_ERR(e)])
				prom_sample(f, "errors_total",
					    v->exports[i].exp->name, "errno",
					    errno_name(e, buf, sizeof buf),
					    v->exports[i].sum.c[ST_ERR(e)]);
}

static void prom_waits(FILE *f, const struct stats_view *v)
{
	size_t i;

	prom_head(f, "waits_total", "counter",
		  "Requests that waited for an overlapping request (R3) or a "
		  "barrier FLUSH (R4).");
	for (i = 0; i < v->n_exports; i++) {
		const struct stats_sum *s = &v->exports[i].sum;

		prom_sample(f, "waits_total", v->exports[i].exp->name, "reason",
			    "overlap", s->c[ST_WAITED_OVERLAP]);
		prom_sample(f, "waits_total", v->exports[i].exp->name, "reason",
			    "barrier", s->c[ST_WAITED_BARRIER]);
	}
}

/* Gauges and counters read from each export's scheduler. */
static void prom_sched(FILE *f, const struct stats_view *v)
{
	char buf[16];
	size_t i;

	prom_head(f, "connections", "gauge", "Open connections.");
	for (i = 0; i < v->n_exports; i++)
		prom_sample(f, "connections", v->exports[i].exp->name, NULL,
			    NULL, v->exports[i].conns);
	prom_head(f, "in_flight", "gauge",
		  "Requests received and not yet replied to.");
	for (i = 0; i < v->n_exports; i++)
		prom_sample(f, "in_flight", v->exports[i].exp->name, NULL, NULL,
			    v->exports[i].in_flight);
	prom_head(f, "in_flight_max", "gauge",
		  "The most requests in flight at once since the start.");
	for (i = 0; i < v->n_exports; i++)
		prom_sample(f, "in_flight_max", v->exports[i].exp->name, NULL,
			    NULL, v->exports[i].in_flight_max);
	prom_head(f, "early_syncs_total", "counter",
		  "Syncs started before a FLUSH asked for one (R7).");
	for (i = 0; i < v->n_exports; i++)
		prom_sample(f, "early_syncs_total", v->exports[i].exp->name,
			    NULL, NULL, v->exports[i].early_syncs);
	prom_head(f, "latched", "gauge",
		  "1 once the export no longer claims durability after a "
		  "failed sync or FUA write (R5).");
	for (i = 0; i < v->n_exports; i++)
		prom_sample(f, "latched", v->exports[i].exp->name, NULL, NULL,
			    v->exports[i].latched);
	prom_head(f, "latch_info", "gauge",
		  "Why a latched export latched: the errno and the operation "
		  "(1 when latched).");
	for (i = 0; i < v->n_exports; i++) {
		const struct stats_export_view *ev = &v->exports[i];

		if (!ev->latched)
			continue;
		fprintf(f, "loopd_latch_info{export=\"");
		prom_label(f, ev->exp->name);
		fprintf(f, "\",errno=\"%s\",op=\"",
			errno_name((unsigned int)ev->latch_err, buf,
				   sizeof buf));
		prom_label(f, ev->latch_op ? ev->latch_op : "unknown");
		fprintf(f, "\"} 1\n");
	}
}

static void render_prometheus(FILE *f, const struct stats_view *v,
			      uint64_t start_ns)
{
	prom_head(f, "start_time_seconds", "gauge",
		  "When the server started, in seconds since the epoch.");
	fprintf(f, "loopd_start_time_seconds %.3f\n", seconds(start_ns));
	prom_requests(f, v);
	prom_per_export(f, v, "read_bytes_total", "counter",
			"Bytes read by READ requests that succeeded.",
			ST_BYTES_READ);
	prom_per_export(f, v, "written_bytes_total", "counter",
			"Bytes written by WRITE requests that succeeded.",
			ST_BYTES_WRITTEN);
	prom_per_export(f, v, "fua_requests_total", "counter",
			"WRITE, TRIM and WRITE_ZEROES requests with FUA.",
			ST_FUA);
	prom_per_export(f, v, "syncs_total", "counter",
			"Batch syncs started for FLUSHes (R1).", ST_SYNCS);
	prom_per_export(f, v, "flushes_synced_total", "counter",
			"FLUSHes answered by a batch sync (R1).",
			ST_FLUSH_SYNCED);
	prom_per_export(f, v, "flushes_joined_total", "counter",
			"FLUSHes that joined a running sync (R7).",
			ST_FLUSH_JOINED);
	prom_per_export(f, v, "flushes_clean_total", "counter",
			"FLUSHes answered with no sync: nothing to make "
			"durable (R7).",
			ST_FLUSH_CLEAN);
	prom_waits(f, v);
	prom_errors(f, v);
	prom_sched(f, v);
	prom_latency(f, v);
}

/* ---------------------------------------------------------------- */

int statsdoc_render(struct server *srv, uint64_t start_ns, enum stats_format f,
		    char **out, size_t *len)
{
	struct stats_view v;
	FILE *mf;
	int r;

	*out = NULL;
	*len = 0;
	r = stats_collect(srv, &v);
	if (r < 0)
		return r;
	if (f == STATS_JSON) {
		*out = render_json(&v, srv, start_ns);
		*len = *out ? strlen(*out) : 0;
		stats_view_free(&v);
		return *out ? 0 : -ENOMEM;
	}
	mf = open_memstream(out, len);
	if (!mf) {
		stats_view_free(&v);
		return -ENOMEM;
	}
	if (f == STATS_PROMETHEUS)
		render_prometheus(mf, &v, start_ns);
	else
		render_text(mf, &v, srv, start_ns);
	r = fclose(mf) ? -ENOMEM : 0;
	stats_view_free(&v);
	if (r < 0) {
		free(*out);
		*out = NULL;
		*len = 0;
	}
	return r;
}
