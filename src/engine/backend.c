/* SPDX-License-Identifier: MIT */
/*
 * backend.c: the registry of backends (backend.h).  Each backend file
 * puts a pointer to its ops in the linker section "loopd_backends"
 * (BACKEND_REGISTER); the linker gives the section's bounds, so a new
 * backend is found without any list to edit.
 */
#include "engine/backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The linker's names for the section's bounds: reserved, and the only way
   to reach them. */
/* NOLINTNEXTLINE(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
extern const struct backend_ops *const __start_loopd_backends[]
	__attribute__((weak));
/* NOLINTNEXTLINE(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
extern const struct backend_ops *const __stop_loopd_backends[]
	__attribute__((weak));

const struct backend_ops *backend_find(const char *spec)
{
	const struct backend_ops *const *p, *def = NULL;

	for (p = __start_loopd_backends; p < __stop_loopd_backends; p++) {
		const char *pre = (*p)->prefix;

		if (!pre)
			def = *p;
		else if (!strncmp(spec, pre, strlen(pre)))
			return *p;
	}
	return def;
}

int backend_open(const struct backend_opts *o, struct backend **out, char *err,
		 size_t errlen)
{
	const struct backend_ops *ops = backend_find(o->spec);
	int r;

	if (!ops) {
		snprintf(err, errlen, "%s: no backend serves this", o->spec);
		return -ENOENT;
	}
	r = ops->open(o, out, err, errlen);
	if (r == 0)
		(*out)->ops = ops;
	return r;
}
