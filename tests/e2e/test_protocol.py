# SPDX-License-Identifier: MIT
"""test-protocol: every NBD command against a local model of the file.

usage: test_protocol.py URI FILE DIRECT
  URI     the export (strict mode is turned off to send bad requests)
  FILE    its backing file, compared with the model at the end
  DIRECT  1 if the server opened FILE with O_DIRECT

Every error case is followed by a verified read, to show the connection is
still in sync and usable.
"""
import errno
import os
import sys
import time

import nbd

from nbdtest import check, connect, expect_error, fail, ok

uri, path, direct = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
h = connect(uri, strict=False)
size = h.get_size()
model = bytearray(size)  # the file starts as zeros (sparse)
MiB = 1 << 20


def verify(off, length, what=None):
    got = h.pread(length, off)
    want = bytes(model[off:off + length])
    if got != want:
        bad = next(i for i in range(length) if got[i] != want[i])
        fail(f"read [{off}, +{length}) differs from the model at byte "
             f"{off + bad}: got {got[bad]:#04x}, want {want[bad]:#04x}")
    if what:
        ok(what)


def write(data, off, flags=0):
    h.pwrite(data, off, flags)
    model[off:off + len(data)] = data


def pattern(n, seed):
    return bytes((seed + i * 7 + (i >> 9)) & 0xFF for i in range(n))


check(f"export size {size} is at least 128 MiB")
if size < 128 * MiB:
    fail(f"export size {size} < 128 MiB")

bmin = h.get_block_size(nbd.SIZE_MINIMUM)
check(f"minimum block size {bmin} matches the cache mode (direct={direct})")
if direct and bmin < 512:
    fail(f"O_DIRECT export advertises minimum block size {bmin}")
if not direct and bmin != 1:
    fail(f"buffered export advertises minimum block size {bmin}, want 1")
ok(f"minimum block size {bmin}")

check("aligned pattern writes read back")
write(os.urandom(MiB), 0)
write(pattern(65536, 3), 8 * MiB)
write(pattern(4096, 9), size - 4096)
verify(0, MiB)
verify(8 * MiB, 65536)
verify(size - 4096, 4096, "aligned writes at the start, middle and end")

check("unaligned reads and writes are byte-exact (bounce buffers)")
verify(1, 1000, "read offset 1 length 1000")
write(pattern(1000, 41), 1)
verify(0, 8192, "write offset 1 length 1000")
for off in (511, 512, 1023, 4095, 4097, MiB - 1, 3 * MiB + 100):
    write(pattern(513, off & 0xFF), off)
    verify(off, 513)
    verify(off & ~4095, 8192 + 4096)
ok("513-byte writes at 511, 512, 1023, 4095, 4097, 1M-1, 3M+100")
write(pattern(123457, 77), 7777)
verify(0, 256 * 1024, "123457-byte write at 7777")
write(pattern(3, 5), size - 3)
verify(size - 8192, 8192, "3-byte write ending at the end of the export")
for off, n in ((1, 1), (513, 513), (4095, 2), (size - 1, 1)):
    verify(off, n)
ok("small unaligned reads")

check("zero-length read and write succeed")
if h.pread(0, 4096) != b"":
    fail("zero-length read returned data")
h.pwrite(b"", 4096)
verify(0, 8192, "zero-length read/write; data unchanged")

check("out-of-range requests fail cleanly")
expect_error(errno.EINVAL, "read past the end", h.pread, 512, size)
verify(0, 4096)
expect_error(errno.EINVAL, "read straddling the end", h.pread, 8192,
             size - 4096)
verify(size - 4096, 4096)
expect_error(errno.ENOSPC, "write past the end", h.pwrite, b"x" * 512, size)
verify(size - 4096, 4096)
expect_error(errno.ENOSPC, "write straddling the end", h.pwrite,
             b"y" * 8192, size - 4096)
verify(size - 4096, 4096, "the export's tail is unchanged")

check("unknown command flags are rejected with EINVAL")
expect_error(errno.EINVAL, "read with flag bit 7", h.pread, 4096, 0, 1 << 7)
verify(0, 4096)
expect_error(errno.EINVAL, "write with flag bit 7", h.pwrite,
             b"z" * 4096, 0, 1 << 7)
verify(0, 4096 * 3, "rejected write changed nothing; connection in sync")

check("WRITE_ZEROES reads back zeros")
write(pattern(MiB, 11), 16 * MiB)
h.zero(256 * 1024, 16 * MiB + 4096)
model[16 * MiB + 4096:16 * MiB + 4096 + 256 * 1024] = bytes(256 * 1024)
verify(16 * MiB, MiB, "zero (holes allowed)")
h.zero(100000, 16 * MiB + 300000, nbd.CMD_FLAG_NO_HOLE)
model[16 * MiB + 300000:16 * MiB + 400000] = bytes(100000)
verify(16 * MiB, MiB, "zero with NO_HOLE, unaligned range")

check("FAST_ZERO either zeroes or fails quickly with ENOTSUP")
if not h.can_fast_zero():
    fail("server does not advertise SEND_FAST_ZERO")
write(pattern(MiB, 13), 20 * MiB)
t0 = time.monotonic()
try:
    h.zero(MiB, 20 * MiB, nbd.CMD_FLAG_FAST_ZERO)
    model[20 * MiB:21 * MiB] = bytes(MiB)
    ok("fast zero succeeded")
except nbd.Error as e:
    if e.errnum != errno.ENOTSUP:
        fail(f"fast zero failed with {e.errnum} ({e.string}), want ENOTSUP")
    if time.monotonic() - t0 > 1.0:
        fail("fast zero took over 1 s to fail")
    ok("fast zero failed quickly with ENOTSUP")
verify(20 * MiB, MiB, "data after fast zero matches its outcome")

check("TRIM, then write over the trimmed range")
write(pattern(MiB, 17), 24 * MiB)
h.trim(MiB, 24 * MiB)
# A trimmed range is undefined until rewritten: rewrite before verifying.
write(pattern(MiB, 19), 24 * MiB)
verify(24 * MiB, MiB, "trim then write")
h.trim(4096, 24 * MiB + 8192)
# Unspecified contents: take whatever the server now returns as the model.
model[24 * MiB + 8192:24 * MiB + 12288] = h.pread(4096, 24 * MiB + 8192)
verify(24 * MiB, MiB, "the rest of the trimmed neighbourhood unchanged")

check("CACHE, FLUSH and FUA")
h.cache(MiB, 0)
verify(0, 4096, "cache")
h.flush()
verify(0, 4096, "flush")
write(pattern(65536, 23), 28 * MiB, nbd.CMD_FLAG_FUA)
verify(28 * MiB, 65536, "FUA write")
write(pattern(1000, 29), 28 * MiB + 5, nbd.CMD_FLAG_FUA)
verify(28 * MiB, 65536, "unaligned FUA write")
h.zero(4096, 28 * MiB, nbd.CMD_FLAG_FUA)
model[28 * MiB:28 * MiB + 4096] = bytes(4096)
verify(28 * MiB, 65536, "FUA zero")
if h.pread(4096, 28 * MiB, nbd.CMD_FLAG_FUA) != model[28 * MiB:][:4096]:
    fail("FUA read returned the wrong data")
ok("FUA read")
h.flush(nbd.CMD_FLAG_FUA)
verify(0, 4096, "FUA flush")

check("BLOCK_STATUS shows data where data was written")
if not h.can_meta_context("base:allocation"):
    fail("base:allocation was not negotiated")
extents = []


def extent_cb(meta, off, entries, err):
    if meta == "base:allocation":
        pos = off
        for i in range(0, len(entries), 2):
            extents.append((pos, entries[i], entries[i + 1]))
            pos += entries[i]
    return 0


h.block_status(32 * MiB, 0, extent_cb)
if not extents:
    fail("no extents returned")
for start, length, flags in extents:
    for lo, hi in ((0, MiB), (8 * MiB, 8 * MiB + 65536)):
        if start < hi and start + length > lo and flags & nbd.STATE_HOLE:
            fail(f"extent [{start}, +{length}) flags {flags} is a hole "
                 f"but overlaps written data [{lo}, {hi})")
ok(f"{len(extents)} extents, none a hole over written data")
verify(0, 4096)
expect_error(errno.EINVAL, "block status past the end", h.block_status,
             4096, size, extent_cb)
verify(0, 4096)

check("a 64 MiB write is accepted and reads back")
big = os.urandom(64 * MiB)
write(big, 40 * MiB)
verify(40 * MiB, 64 * MiB, "64 MiB round trip")

check("the file on disk equals the model after FLUSH")
h.flush()
with open(path, "rb") as f:
    disk = f.read()
if len(disk) != size:
    fail(f"file size {len(disk)}, want {size}")
for off in range(0, size, MiB):
    if disk[off:off + MiB] != model[off:off + MiB]:
        fail(f"file differs from the model in MiB {off // MiB}")
ok("file content is exact")

h.shutdown()
print(f"test_protocol.py: all checks passed (minimum block size {bmin})")
