/* SPDX-License-Identifier: MIT */
/* modes.c: the names of the flush and order modes (modes.h). */
#include "util/modes.h"

const char *const flush_mode_names[FLUSH_MODES] = {"sync", "barrier", "unsafe"};
const char *const order_mode_names[ORDER_MODES] = {"overlap", "relaxed"};

const char *flush_mode_name(unsigned int m)
{
	return m < FLUSH_MODES ? flush_mode_names[m] : "unknown";
}

const char *order_mode_name(unsigned int m)
{
	return m < ORDER_MODES ? order_mode_names[m] : "unknown";
}
