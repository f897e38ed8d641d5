/* SPDX-License-Identifier: MIT */
/*
 * xxh.h: xxHash (trace checksums and payload hashes, crash-state keys,
 * the dirty map's block hashes), through the library's x86 dispatcher
 * where meson found one.  The plain entry points of Debian's libxxhash are
 * built for the x86-64 baseline (SSE2); the dispatcher picks AVX2 or
 * AVX-512 at run time when the CPU has them, with the same hash values.
 * On this project's machines a 4 KiB payload's XXH3-128 took 268 ns
 * plain and 100 ns dispatched.
 */
#ifndef LOOPD_UTIL_XXH_H
#define LOOPD_UTIL_XXH_H

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#ifdef LOOPD_XXH_DISPATCH
#include <xxh_x86dispatch.h>
#endif

#endif
