/* SPDX-License-Identifier: MIT */
/*
 * svg.c: a figure of plot.c (rectangles, lines, texts in pixels) as an
 * SVG document in memory.  Pure: plotcmd.c writes the bytes.
 *
 * Styles are CSS classes, painted in the order of enum plot_style.  Within
 * a style, rectangles without a title are one <path> per bin level (a
 * rectangle is "M x y h w v h h -w z", about 20 bytes), lines are one
 * <path>, and only what has a title (a request, a sync, a bracket, a
 * crash point, a mark) is an element of its own with a <title> child,
 * which viewers show on hover.  So a figure of 25 000 bins is a few
 * hundred kilobytes and a few dozen elements.
 *
 * Y9. Text.  Every string from the trace (mark labels) and the command
 *     line (the title) is escaped: & < > " ' as entities; control
 *     characters, and bytes that are not well-formed UTF-8 or are
 *     characters XML 1.0 forbids (surrogates, U+FFFE, U+FFFF), become
 *     "?".  So any label gives a document that parses.
 */
#include "trace/svg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *cls;
	const char *css;
} styles[PLOT_STYLES] = {
	[PS_BG] = {"bg", "fill:#fff"},
	[PS_PANEL] = {"panel", "fill:#f3f3f3"},
	[PS_GRID] = {"grid", "stroke:#ddd;fill:#ddd"},
	[PS_WRITE] = {"write", "fill:#3465a4"},
	[PS_ZERO] = {"zero", "fill:#35b0c0"},
	[PS_TRIM] = {"trim", "fill:#b8a020"},
	[PS_READ] = {"read", "fill:#999"},
	[PS_FLUSH] = {"flush", "fill:#8e3b8e"},
	[PS_OTHER] = {"other", "fill:#c8c8c8"},
	[PS_SYNC] = {"sync", "fill:#e8871e"},
	[PS_FAILED] = {"failed", "fill:#d00000"},
	[PS_FUA] = {"fua", "fill:#111"},
	[PS_KEPT] = {"kept", "fill:#1a9641"},
	[PS_DROPPED] = {"dropped", "fill:#e02020"},
	[PS_TORN] = {"torn", "fill:#f0a000"},
	[PS_AFTER] = {"after", "fill:#fff;fill-opacity:.6"},
	[PS_BRACKET] = {"bracket",
			"stroke:#8e3b8e;fill:#8e3b8e;stroke-width:1.2"},
	[PS_HOVER] = {"hover", "fill:#000;fill-opacity:0"},
	[PS_TICK] = {"tick", "fill:#c00000"},
	[PS_MARK] = {"mark", "stroke:#555;fill:#555;stroke-dasharray:3 2"},
	[PS_CRASH] = {"crash", "stroke:#d00000;fill:#d00000;stroke-width:2"},
	[PS_AXIS] = {"axis", "stroke:#444;fill:#444"},
	[PS_TEXT] = {"text", "fill:#222;font-size:11px"},
	[PS_SMALL] = {"small", "fill:#444;font-size:10px"},
	[PS_TITLE] = {"title", "fill:#000;font-size:14px;font-weight:bold"},
	[PS_MARKTEXT] = {"marktext", "fill:#333;font-size:10px"},
	[PS_CRASHTEXT] = {"crashtext",
			  "fill:#c00000;font-size:11px;font-weight:bold"},
};

const char *svg_class(uint8_t style)
{
	return style < PLOT_STYLES ? styles[style].cls : "?";
}

void svg_out_free(struct svg_out *o)
{
	free(o->p);
	memset(o, 0, sizeof *o);
}

static void put(struct svg_out *o, const char *s, size_t n)
{
	if (o->err)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t c = o->cap ? o->cap : 65536;
		char *p;

		while (c < o->len + n + 1)
			c *= 2;
		p = realloc(o->p, c);
		if (!p) {
			o->err = -ENOMEM;
			return;
		}
		o->p = p;
		o->cap = c;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = 0;
}

static void puts_(struct svg_out *o, const char *s)
{
	put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct svg_out *o,
						       const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, buf,
		    (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A coordinate: one decimal, none when it is whole. */
static void num(struct svg_out *o, double v)
{
	char buf[32];
	long t = (long)(v * 10 + (v < 0 ? -0.5 : 0.5));

	if (t % 10)
		snprintf(buf, sizeof buf, "%s%ld.%ld", t < 0 ? "-" : "",
			 labs(t) / 10, labs(t) % 10);
	else
		snprintf(buf, sizeof buf, "%ld", t / 10);
	puts_(o, buf);
}

/* Y9: the length of the well-formed UTF-8 character at s (0: not one). */
static size_t utf8_char(const unsigned char *s, size_t len)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF, U+FFFE and U+FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp == 0xfffe ||
	    cp == 0xffff)
		return 0;
	return n;
}

void svg_escape(struct svg_out *o, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		switch (u[i]) {
		case '&':
			puts_(o, "&amp;");
			i++;
			continue;
		case '<':
			puts_(o, "&lt;");
			i++;
			continue;
		case '>':
			puts_(o, "&gt;");
			i++;
			continue;
		case '"':
			puts_(o, "&quot;");
			i++;
			continue;
		case '\'':
			puts_(o, "&apos;");
			i++;
			continue;
		default:
			break;
		}
		n = utf8_char(u + i, len - i);
		if (!n || u[i] < 0x20 || u[i] == 0x7f) {
			put(o, "?", 1);
			i++;
			continue;
		}
		put(o, s + i, n);
		i += n;
	}
}

static void escape_str(struct svg_out *o, const char *s)
{
	svg_escape(o, s, strlen(s));
}

/* A bin's opacity: level 1 is faint but visible, level 8 solid. */
static void opacity(struct svg_out *o, uint8_t level)
{
	if (level)
		putf(o, " fill-opacity=\"%.2f\"",
		     0.15 + 0.85 * (level - 1) / (PLOT_LEVELS - 1));
}

static void titled_rect(struct svg_out *o, const struct plot_fig *f,
			const struct plot_rect *r)
{
	putf(o, "<rect class=\"%s\" x=\"", svg_class(r->style));
	num(o, r->x);
	puts_(o, "\" y=\"");
	num(o, r->y);
	puts_(o, "\" width=\"");
	num(o, r->w);
	puts_(o, "\" height=\"");
	num(o, r->h);
	puts_(o, "\"");
	opacity(o, r->level);
	puts_(o, "><title>");
	escape_str(o, plot_str(f, r->title - 1));
	puts_(o, "</title></rect>\n");
}

/* The untitled rectangles of one style and level as one path. */
static void rect_path(struct svg_out *o, const struct plot_fig *f,
		      uint8_t style, uint8_t level)
{
	bool open = false;
	size_t i;

	for (i = 0; i < f->n_rects; i++) {
		const struct plot_rect *r = &f->rects[i];

		if (r->style != style || r->level != level || r->title)
			continue;
		if (!open) {
			putf(o, "<path class=\"%s\"", svg_class(style));
			opacity(o, level);
			puts_(o, " d=\"");
			open = true;
		}
		puts_(o, "M");
		num(o, r->x);
		puts_(o, " ");
		num(o, r->y);
		puts_(o, "h");
		num(o, r->w);
		puts_(o, "v");
		num(o, r->h);
		puts_(o, "h");
		num(o, -r->w);
		puts_(o, "z");
	}
	if (open)
		puts_(o, "\"/>\n");
}

static void line_path(struct svg_out *o, const struct plot_fig *f,
		      uint8_t style)
{
	bool open = false;
	size_t i;

	for (i = 0; i < f->n_lines; i++) {
		const struct plot_line *l = &f->lines[i];

		if (l->style != style)
			continue;
		if (!open) {
			putf(o, "<path class=\"%s\" d=\"", svg_class(style));
			open = true;
		}
		puts_(o, "M");
		num(o, l->x1);
		puts_(o, " ");
		num(o, l->y1);
		puts_(o, "L");
		num(o, l->x2);
		puts_(o, " ");
		num(o, l->y2);
	}
	if (open)
		puts_(o, "\"/>\n");
}

static void text_el(struct svg_out *o, const struct plot_fig *f,
		    const struct plot_text *t)
{
	static const char *const anchors[] = {"", " text-anchor=\"middle\"",
					      " text-anchor=\"end\""};

	putf(o, "<text class=\"%s\" x=\"", svg_class(t->style));
	num(o, t->x);
	puts_(o, "\" y=\"");
	num(o, t->y);
	putf(o, "\"%s>", anchors[t->anchor < 3 ? t->anchor : 0]);
	escape_str(o, plot_str(f, t->s));
	if (t->title) {
		puts_(o, "<title>");
		escape_str(o, plot_str(f, t->title - 1));
		puts_(o, "</title>");
	}
	puts_(o, "</text>\n");
}

int svg_render(const struct plot_fig *f, struct svg_out *o)
{
	unsigned int s, lv;
	size_t i;

	putf(o,
	     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" "
	     "height=\"%u\" viewBox=\"0 0 %u %u\" "
	     "font-family=\"DejaVu Sans, Verdana, sans-serif\">\n",
	     f->width, f->height, f->width, f->height);
	puts_(o, "<!-- loopd trace plot (docs/plot.md) -->\n<style>\n");
	for (s = 0; s < PLOT_STYLES; s++)
		putf(o, ".%s{%s}\n", styles[s].cls, styles[s].css);
	puts_(o, "</style>\n");
	for (s = 0; s < PLOT_STYLES; s++) {
		for (lv = 0; lv <= PLOT_LEVELS; lv++)
			rect_path(o, f, (uint8_t)s, (uint8_t)lv);
		for (i = 0; i < f->n_rects; i++)
			if (f->rects[i].style == s && f->rects[i].title)
				titled_rect(o, f, &f->rects[i]);
		line_path(o, f, (uint8_t)s);
		for (i = 0; i < f->n_texts; i++)
			if (f->texts[i].style == s)
				text_el(o, f, &f->texts[i]);
	}
	puts_(o, "</svg>\n");
	return o->err;
}
