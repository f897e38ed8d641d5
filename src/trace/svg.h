/* SPDX-License-Identifier: MIT */
/*
 * svg.h: a figure of plot.c as SVG text in memory (svg.c), pure: the
 * caller writes the bytes where they go.
 */
#ifndef LOOPD_TRACE_SVG_H
#define LOOPD_TRACE_SVG_H

#include <stddef.h>
#include <stdint.h>

#include "trace/plot.h"

/* A growing buffer; err is sticky (-ENOMEM). */
struct svg_out {
	char *p;
	size_t len, cap;
	int err;
};

/* The figure as a standalone SVG document.  Returns 0 or -ENOMEM. */
int svg_render(const struct plot_fig *f, struct svg_out *o);

/* Y9: len bytes of s as XML character data or attribute text. */
void svg_escape(struct svg_out *o, const char *s, size_t len);

/* The CSS class of a style (each style has one). */
const char *svg_class(uint8_t style);

void svg_out_free(struct svg_out *o);

#endif /* LOOPD_TRACE_SVG_H */
