/* SPDX-License-Identifier: MIT */
/*
 * modes.h: the flush and order modes, the one enum and the one name table
 * of each.  The scheduler runs them (R1-R4 in engine/sched.c), the
 * command line parses them, and the trace header stores them with these
 * very values (docs/trace-format.md).
 */
#ifndef LOOPD_UTIL_MODES_H
#define LOOPD_UTIL_MODES_H

enum flush_mode {
	FLUSH_SYNC, /* R1 + R2: the contract (the default) */
	FLUSH_BARRIER, /* R4: a flush is a full barrier */
	FLUSH_UNSAFE, /* no syncs at all: flush and FUA replied at once */
	FLUSH_MODES
};

enum order_mode {
	ORDER_OVERLAP, /* R3 on (the default) */
	ORDER_RELAXED, /* R3 off: the bare contract */
	ORDER_MODES
};

/* Indexed by the enums: "sync", "barrier", "unsafe"; "overlap",
   "relaxed". */
extern const char *const flush_mode_names[FLUSH_MODES];
extern const char *const order_mode_names[ORDER_MODES];

/* The name of a mode, or "unknown" for a value outside the enum (a trace
   from elsewhere). */
const char *flush_mode_name(unsigned int m);
const char *order_mode_name(unsigned int m);

#endif /* LOOPD_UTIL_MODES_H */
