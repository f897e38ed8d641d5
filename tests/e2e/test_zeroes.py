# SPDX-License-Identifier: MIT
"""test_zeroes.py: the client of test-zeroes.sh (Z1-Z6 in src/backend/zero.c).

  test_zeroes.py nohole URI FILE
      On tmpfs (punch, no ZERO_RANGE): WRITE_ZEROES with NO_HOLE keeps
      the range allocated (Z3); without NO_HOLE it punches (Z2), which
      shows that the allocation check can see a hole.
  test_zeroes.py race URI FILE
      Two NO_HOLE WRITE_ZEROES fail with EOPNOTSUPP at once (the server
      delays both so that they are in flight together); a TRIM afterwards
      must still punch (Z6: each failure turns off its own mode only).
  test_zeroes.py fastfua URI tmpfs|ramfs
      FUA + FAST_ZERO WRITE_ZEROES that cannot be fast (with NO_HOLE on
      tmpfs, always on ramfs) get ENOTSUP (Z4),
      and the export is not latched: a write and a flush on a second
      connection succeed (R5, E5).
"""
import errno
import os
import sys

import nbd

from nbdtest import aio, connect, expect_error, fail, ok, poll_until

MiB = 1 << 20


def allocated(path):
    return os.stat(path).st_blocks * 512


def fill(h, off, length):
    h.pwrite(os.urandom(length), off)
    h.flush()


def nohole(uri, path):
    h = connect(uri)
    fill(h, 0, MiB)
    before = allocated(path)
    if before < MiB:
        fail(f"precondition: {before} bytes allocated after a 1 MiB write")
    h.zero(MiB, 0, flags=nbd.CMD_FLAG_NO_HOLE)
    after = allocated(path)
    if h.pread(MiB, 0) != bytes(MiB):
        fail("NO_HOLE WRITE_ZEROES did not zero the range")
    if after < before:
        fail(f"NO_HOLE WRITE_ZEROES freed space: {before} -> {after} "
             "bytes allocated")
    ok(f"NO_HOLE kept the range allocated ({after} bytes) and zeroed it")
    h.zero(MiB, 0)
    punched = allocated(path)
    if punched > after - MiB // 2:
        fail(f"WRITE_ZEROES without NO_HOLE did not punch: {after} -> "
             f"{punched}")
    ok(f"without NO_HOLE it punched: {after} -> {punched} bytes")
    h.shutdown()


def race(uri, path):
    h = connect(uri)
    fill(h, 2 * MiB, MiB)
    zs = [aio(f"zero {i}", h.aio_zero, 64 * 1024, i * 64 * 1024,
              flags=nbd.CMD_FLAG_NO_HOLE) for i in range(2)]
    poll_until([h], lambda: all(z.done is not None for z in zs), 10,
               "the two WRITE_ZEROES")
    for z in zs:
        if z.err:
            fail(f"{z.name} failed with errno {z.err}")
    ok("two NO_HOLE WRITE_ZEROES, both in flight, succeeded")
    before = allocated(path)
    h.trim(MiB, 2 * MiB)
    h.flush()
    after = allocated(path)
    if after > before - MiB // 2:
        fail(f"TRIM no longer punches after the race: {before} -> {after} "
             "bytes allocated")
    ok(f"TRIM still punches: {before} -> {after} bytes allocated")
    h.shutdown()


def fastfua(uri, fs):
    h = connect(uri)
    fast = nbd.CMD_FLAG_FUA | nbd.CMD_FLAG_FAST_ZERO
    if fs == "tmpfs":
        h.zero(64 * 1024, 0, flags=fast)  # a punch is fast
        ok("FUA + FAST_ZERO WRITE_ZEROES punches on tmpfs")
    else:
        expect_error(errno.ENOTSUP, "FUA + FAST_ZERO WRITE_ZEROES", h.zero,
                     64 * 1024, 0, flags=fast)
    expect_error(errno.ENOTSUP, "FUA + FAST_ZERO + NO_HOLE WRITE_ZEROES",
                 h.zero, 64 * 1024, 0, flags=fast | nbd.CMD_FLAG_NO_HOLE)
    h2 = connect(uri)
    try:
        h2.pwrite(b"\x42" * 4096, 0, nbd.CMD_FLAG_FUA)
        h2.flush()
    except nbd.Error as e:
        fail(f"the export is latched after a refused FAST_ZERO: {e.string}")
    if h2.pread(4096, 0) != b"\x42" * 4096:
        fail("the write after the refused FAST_ZERO did not land")
    ok("a FUA write and a flush on another connection still succeed")
    h.zero(64 * 1024, 0, flags=nbd.CMD_FLAG_FUA)
    if h.pread(64 * 1024, 0) != bytes(64 * 1024):
        fail("a FUA WRITE_ZEROES without FAST_ZERO did not zero")
    ok("WRITE_ZEROES without FAST_ZERO writes the zeroes")
    h2.shutdown()
    h.shutdown()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "nohole":
        nohole(*args)
    elif mode == "race":
        race(*args)
    elif mode == "fastfua":
        fastfua(*args)
    else:
        fail(f"unknown mode {mode}")
