# SPDX-License-Identifier: MIT
"""test_enospc.py: the client side of test-enospc.sh.

  test_enospc.py fill URI FREE MODEL   fill a full filesystem through URI
  test_enospc.py check FILE MODEL      compare FILE with the model

"fill" writes until the host filesystem is full and checks what loopd
answers (see test-enospc.sh for the expected behaviour); it saves the
bytes every acknowledged write left in the export as MODEL, a JSON list of
[offset, length, tag].  The data of a range is a function of its offset and
tag, so "check" can rebuild it and compare it with the backing file read
directly, after the filesystem was checked and mounted again.
"""
import errno
import json
import random
import sys

import nbd

from nbdtest import aio_write, check, connect, ename, expect_error, fail, ok
from nbdtest import poll_until

CHUNK = 256 * 1024
QD = 8


def data(offset, length, tag):
    return random.Random(f"{tag}:{offset}").randbytes(length)


def verify(h, model, what):
    for off, length, tag in sorted(model.values()):
        if h.pread(length, off) != data(off, length, tag):
            fail(f"{what}: acknowledged data at {off}+{length} (tag {tag}) "
                 "does not read back")
    ok(f"{what}: all {len(model)} acknowledged ranges read back intact")


def write(h, model, off, tag, flags=0):
    h.pwrite(data(off, CHUNK, tag), off, flags)
    model[off] = (off, CHUNK, tag)


def expect_ok(what, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:
        fail(f"{what}: failed with {ename(e.errnum)} ({e.string}), "
             "want success")
    ok(f"{what} succeeds")


def fill(uri, free, model_path):
    h = connect(uri)
    size = h.get_size()
    if size <= free + 4 * CHUNK:
        fail(f"export of {size} bytes does not exceed the {free} free bytes")
    model = {}

    check(f"pipelined writes (QD {QD}) into a {size >> 20} MiB export on a "
          f"filesystem with {free} bytes free end in ENOSPC")
    ops = []
    off = 0
    failed = []
    while off + CHUNK <= size and not failed:
        while off + CHUNK <= size and h.aio_in_flight() < QD:
            ops.append((off, aio_write(h, f"write {off}",
                                       data(off, CHUNK, "fill"), off)))
            off += CHUNK
        h.poll(-1)
        failed = [o for o in ops if o[1].err]
    poll_until([h], lambda: h.aio_in_flight() == 0, 60, "the last writes")
    failed = [(o, op.err) for o, op in ops if op.err]
    acked = [o for o, op in ops if op.done and op.err == 0]
    if not failed:
        fail(f"all {len(ops)} writes ({off} bytes) succeeded on a "
             f"filesystem with {free} bytes free")
    for o, err in failed:
        if err != errno.ENOSPC:
            fail(f"write at {o} failed with {ename(err)}, want ENOSPC")
    for o in acked:
        model[o] = (o, CHUNK, "fill")
    nbytes = len(acked) * CHUNK
    first = min(o for o, _ in failed)
    ok(f"{len(acked)} writes acknowledged ({nbytes} bytes), "
       f"{len(failed)} failed with ENOSPC, the first at offset {first}")
    if not free // 2 <= nbytes <= free:
        fail(f"{nbytes} bytes acknowledged, want between half and all of "
             f"the {free} free bytes: was the filesystem really filled?")
    ok(f"the acknowledged bytes are {100 * nbytes // free}% of the free "
       "space")

    check("every acknowledged write reads back intact")
    verify(h, model, "after ENOSPC")

    check("a plain write's ENOSPC does not latch the export (R5 applies to "
          "syncs): a flush succeeds, and so does a write to allocated space")
    expect_ok("flush after ENOSPC", h.flush)
    expect_ok(f"rewriting the acknowledged range at {acked[0]}", write, h,
              model, acked[0], "again")
    verify(h, model, "after the flush and the rewrite")

    check("a second connection reads the data and writes allocated space")
    h2 = connect(uri)
    verify(h2, model, "second connection")
    expect_ok(f"second connection: rewrite at {acked[-1]}", write, h2,
              model, acked[-1], "conn2")
    expect_ok("second connection: flush", h2.flush)

    check("a FUA write that hits ENOSPC latches the export (R5): later "
          "writes and flushes fail with EIO on every connection")
    off = max(o for o, _ in failed) + CHUNK
    fua_ok = 0
    while True:
        if off + CHUNK > size:
            fail("no FUA write failed before the end of the export")
        try:
            write(h, model, off, "fua", nbd.CMD_FLAG_FUA)
        except nbd.Error as e:
            if e.errnum != errno.ENOSPC:
                fail(f"FUA write at {off} failed with {ename(e.errnum)}, "
                     "want ENOSPC")
            break
        fua_ok += 1
        off += CHUNK
    ok(f"FUA write at {off} -> ENOSPC (after {fua_ok} FUA writes "
       "succeeded)")
    expect_error(errno.EIO, "rewrite of allocated space", h.pwrite,
                 data(acked[0], CHUNK, "latched"), acked[0])
    expect_error(errno.EIO, "flush", h.flush)
    expect_error(errno.EIO, "rewrite on the second connection", h2.pwrite,
                 data(acked[-1], CHUNK, "latched"), acked[-1])
    h3 = connect(uri)
    expect_error(errno.EIO, "flush on a new connection", h3.flush)
    verify(h, model, "latched, first connection")
    verify(h3, model, "latched, new connection")

    with open(model_path, "w") as f:
        json.dump(sorted(model.values()), f)
    for x in (h, h2, h3):
        x.shutdown()


def check_file(path, model_path):
    with open(model_path) as f:
        model = json.load(f)
    with open(path, "rb") as f:
        for off, length, tag in model:
            f.seek(off)
            if f.read(length) != data(off, length, tag):
                fail(f"{path}: acknowledged data at {off}+{length} "
                     f"(tag {tag}) is not in the file")
    ok(f"all {len(model)} acknowledged ranges are in the file")


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "check":
        check_file(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown mode {sys.argv[1]}")
