/* SPDX-License-Identifier: MIT */
/*
 * tsan.h: happens-before edges that ThreadSanitizer cannot see.
 *
 * A worker hands a request to another worker with IORING_OP_MSG_RING
 * (worker.c).  The kernel orders the two: the sender's io_uring_enter()
 * posts the CQE to the target's ring with a release store of its CQ tail,
 * and the target reads that tail with an acquire load.  TSan sees only the
 * target's half, so without help it reports every later access to the
 * request as a data race with the sender's last ones.
 *
 * tsan_release(p) before the hand-over and tsan_acquire(p) on receipt
 * state exactly that edge, for that request only: a real race on a
 * request (an access by the sender after it let go) is still reported.
 * Outside a TSan build both are no-ops.
 */
#ifndef LOOPD_TSAN_H
#define LOOPD_TSAN_H

#if defined(__SANITIZE_THREAD__) /* gcc */
#define LOOPD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) /* clang */
#define LOOPD_TSAN 1
#endif
#endif

#ifdef LOOPD_TSAN
#include <sanitizer/tsan_interface.h>
#define tsan_release(p) __tsan_release(p)
#define tsan_acquire(p) __tsan_acquire(p)
#else
#define tsan_release(p) ((void)(p))
#define tsan_acquire(p) ((void)(p))
#endif

#endif /* LOOPD_TSAN_H */
