/* SPDX-License-Identifier: MIT */
/*
 * inject.c: fault injection rules (see inject.h).  Used by the tests to
 * make reordering, slow syncs and I/O errors happen on demand, so that no
 * test needs to sleep to provoke a race.
 */
#include "engine/inject.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/size.h"

#define MAX_RULES 16

struct rule {
	unsigned int ops; /* enum inject_op mask */
	uint64_t lo, hi; /* byte range, hi exclusive; 0,UINT64_MAX = all */
	int64_t left; /* matches left, or -1 for unlimited */
	unsigned int delay_ms;
	int error; /* negative errno */
};

bool inject_enabled;
static struct rule rules[MAX_RULES];
static unsigned int n_rules;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const struct {
	const char *name;
	unsigned int op;
} op_names[] = {
	{"read", INJ_READ}, {"write", INJ_WRITE}, {"trim", INJ_TRIM},
	{"zero", INJ_ZERO}, {"cache", INJ_CACHE}, {"status", INJ_STATUS},
	{"sync", INJ_SYNC}, {"any", INJ_ANY},
};

static int parse_errno(const char *s)
{
	if (!strcasecmp(s, "EIO"))
		return -EIO;
	if (!strcasecmp(s, "ENOSPC"))
		return -ENOSPC;
	if (!strcasecmp(s, "EPERM"))
		return -EPERM;
	if (!strcasecmp(s, "EINVAL"))
		return -EINVAL;
	return 0;
}

/* One rule: KIND=ARG:OP[@START-END][*N], in a writable copy. */
static int parse_rule(char *s, struct rule *r, char *err, size_t errlen)
{
	char *arg, *op, *range, *count, *end;
	unsigned int i;

	memset(r, 0, sizeof *r);
	r->hi = UINT64_MAX;
	r->left = -1;
	arg = strchr(s, '=');
	op = arg ? strchr(arg, ':') : NULL;
	if (!arg || !op)
		goto bad;
	*arg++ = '\0';
	*op++ = '\0';
	count = strchr(op, '*');
	if (count) {
		*count++ = '\0';
		r->left = strtoll(count, &end, 10);
		if (*end || r->left <= 0)
			goto bad;
	}
	range = strchr(op, '@');
	if (range) {
		char *dash;

		*range++ = '\0';
		dash = strchr(range, '-');
		if (!dash)
			goto bad;
		*dash++ = '\0';
		if (size_parse(range, &r->lo) || size_parse(dash, &r->hi) ||
		    r->hi <= r->lo)
			goto bad;
	}
	for (i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
		if (!strcmp(op, op_names[i].name))
			r->ops = op_names[i].op;
	if (!r->ops)
		goto bad;
	if (!strcmp(s, "delay")) {
		unsigned long ms = strtoul(arg, &end, 10);

		if (*end || !*arg || ms > 600000)
			goto bad;
		r->delay_ms = (unsigned int)ms;
	} else if (!strcmp(s, "error")) {
		r->error = parse_errno(arg);
		if (!r->error)
			goto bad;
	} else {
		goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "bad --inject rule: expected delay=MS:OP[@START-END][*N] or "
		 "error=EIO|ENOSPC:OP[@START-END][*N], OP one of read write "
		 "trim zero cache status sync any");
	return -EINVAL;
}

int inject_parse(const char *spec, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n_rules == MAX_RULES) {
			snprintf(err, errlen,
				 "too many --inject rules (max %d)", MAX_RULES);
			r = -EINVAL;
			break;
		}
		r = parse_rule(tok, &rules[n_rules], err, errlen);
		if (r < 0)
			break;
		n_rules++;
	}
	free(copy);
	if (n_rules)
		inject_enabled = true;
	return r;
}

static bool overlaps(const struct rule *r, uint64_t off, uint64_t len)
{
	if (len == 0)
		return off >= r->lo && off < r->hi;
	return off < r->hi && off + len > r->lo;
}

void inject_match(enum inject_op op, uint64_t off, uint64_t len,
		  unsigned int *delay_ms, int *error)
{
	unsigned int i;

	*delay_ms = 0;
	*error = 0;
	pthread_mutex_lock(&lock);
	for (i = 0; i < n_rules; i++) {
		struct rule *r = &rules[i];

		if (!(r->ops & op) || r->left == 0)
			continue;
		if (op != INJ_SYNC && !overlaps(r, off, len))
			continue;
		if (r->left > 0)
			r->left--;
		*delay_ms = r->delay_ms;
		*error = r->error;
		break;
	}
	pthread_mutex_unlock(&lock);
}
