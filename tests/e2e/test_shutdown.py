# SPDX-License-Identifier: MIT
"""test_shutdown.py: the clients of test-shutdown.sh.

  test_shutdown.py spread URI PID
      One connection: a 64 KiB WRITE at 0 (the server delays it), then 12
      64 KiB READs of the same range, which wait for it (R3) and, being
      large with more than 8 in flight, have their I/O spread over the
      workers (E3).  A small READ elsewhere is answered only after the
      server has read every request before it; then the client sends
      SIGTERM to PID and requires every READ to be answered with the
      written data.  Before E4 a worker with no connection of its own
      exited at once, and the READs released to it after the WRITE were
      never run: the server hung in pthread_join.

  test_shutdown.py stall SOCKET READY [CA CERT KEY]
      A client that stops reading: GO (over TLS with CA CERT KEY), then
      four 32 MiB READs, whose replies no socket buffer holds.  Once the
      first reply begins to arrive (the socket is readable) it writes
      "stalled" to READY, then waits to be killed, never reading a byte.

  test_shutdown.py handshake SOCKET READY GO
      A client in negotiation: it answers LIST, writes "negotiating" to
      READY, waits for a line on the FIFO GO, then sends NBD_OPT_GO and
      requires NBD_REP_ERR_SHUTDOWN and a closed connection (H9).

  test_shutdown.py latch URI
      A write and a flush whose sync fails (injected): both must be
      answered, the flush with EIO.

  test_shutdown.py abort SOCKET
      A connection aborted in the middle of a WRITE's payload: a READ the
      server delays (injected), then a 1 MiB WRITE with only 512 KiB of
      its payload, so that the server waits for the rest in a receive;
      then the client shuts down its reading side.  When the READ's reply
      is sent it fails (EPIPE) and the server aborts the connection
      while the receive holds part of the payload.  Returns once the
      server has shut the socket down (POLLHUP).  Before C5 the half
      received WRITE was never freed: the connection never closed and a
      later SIGTERM hung the server for good.
"""
import os
import select
import signal
import socket
import sys

import nbd

from nbdtest import aio, aio_write, connect, fail, ok, poll_until
from rawnbd import (CMD_READ, CMD_WRITE, ERR_SHUTDOWN, OPT_GO, OPT_LIST,
                    REP_ACK, Raw, rep_name)

KiB, MiB = 1 << 10, 1 << 20


def spread(uri, pid):
    h = connect(uri)
    data = bytes(range(256)) * (64 * KiB // 256)
    w = aio_write(h, "write", data, 0)
    reads = []
    for i in range(12):
        buf = nbd.Buffer(64 * KiB)
        reads.append(aio(f"read {i}", h.aio_pread, 0, buf=buf))
    # Replies come in any order, but the server reads one connection's
    # requests in order: this one's reply means all of the above arrived.
    probe = aio("probe", h.aio_pread, 1 * MiB, buf=nbd.Buffer(4 * KiB))
    poll_until([h], lambda: probe.done is not None, 10, "the probe's reply")
    if w.done is not None:
        fail("precondition: the delayed write was already answered")
    os.kill(pid, signal.SIGTERM)
    ok("SIGTERM sent with the write delayed and 12 reads waiting for it")
    poll_until([h], lambda: all(r.done is not None for r in reads), 15,
               "the reads after SIGTERM")
    if w.err:
        fail(f"the write failed with errno {w.err}")
    for r in reads:
        if r.err:
            fail(f"{r.name} failed with errno {r.err}")
        if r.buf.to_bytearray() != data:
            fail(f"{r.name} did not return the written data")
    ok("the write and all 12 reads were answered, with the written data")


def stall(sock, ready, tls):
    c = Raw(sock).greet()
    if tls:
        c.starttls(*tls)
    c.go()
    c.stall(32 * MiB, 4)
    with open(ready, "w") as f:
        f.write("stalled\n")
    while True:
        signal.pause()  # until the test kills us; never read a reply


def handshake(sock, ready, go_fifo):
    c = Raw(sock).greet()
    if c.option(OPT_LIST)[-1] != REP_ACK:
        fail("LIST was not answered")
    with open(ready, "w") as f:
        f.write("negotiating\n")
    with open(go_fifo) as f:
        f.readline()
    types = c.option(OPT_GO, b"\0\0\0\0\0\0")
    if types != [ERR_SHUTDOWN]:
        fail(f"GO while stopping: got {[rep_name(t) for t in types]}, "
             "want ERR_SHUTDOWN")
    ok("GO while the server stops: ERR_SHUTDOWN")
    if c.s.recv(1):
        fail("the server sent more after ERR_SHUTDOWN")
    ok("then the server closed the connection")


def latch(uri):
    h = connect(uri)
    h.pwrite(b"\x5a" * 4096, 0)
    try:
        h.flush()
    except nbd.Error as e:
        ok(f"the flush failed as injected: {e.string}")
    else:
        fail("the flush succeeded; the injected EIO was not seen")
    h.shutdown()


def abort(sock):
    c = Raw(sock).greet().go()
    c.s.sendall(c.request(CMD_READ, 1 * MiB, 4 * KiB) +
                c.request(CMD_WRITE, 0, 1 * MiB) + b"\xab" * (512 * KiB))
    c.s.shutdown(socket.SHUT_RD)
    ok("a delayed READ, then a WRITE with half its payload; reading side shut")
    p = select.poll()
    p.register(c.s, select.POLLHUP)
    if not p.poll(10_000):
        fail("the server did not shut the connection down in 10 s")
    ok("the server aborted the connection (its reply could not be sent)")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "spread":
        spread(args[0], int(args[1]))
    elif mode == "stall":
        stall(args[0], args[1], args[2:5] if len(args) > 2 else None)
    elif mode == "handshake":
        handshake(args[0], args[1], args[2])
    elif mode == "latch":
        latch(args[0])
    elif mode == "abort":
        abort(args[0])
    else:
        fail(f"unknown mode {mode}")
