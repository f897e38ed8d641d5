/* SPDX-License-Identifier: MIT */
/*
 * sockio.h: whole-buffer reads and writes on a blocking stream socket, for
 * the paths that do not go through io_uring (the handshake, the TLS relay).
 */
#ifndef LOOPD_SOCKIO_H
#define LOOPD_SOCKIO_H

#include <stddef.h>

/* Read exactly len bytes.  -ECONNRESET on EOF, error or timeout. */
int sock_read_full(int fd, void *buf, size_t len);

/*
 * Write exactly len bytes.  flags are added to MSG_NOSIGNAL (no SIGPIPE
 * when the peer has gone), e.g. MSG_MORE when another write follows at
 * once.  -ECONNRESET on error or timeout.
 */
int sock_write_full(int fd, const void *buf, size_t len, int flags);

#endif /* LOOPD_SOCKIO_H */
