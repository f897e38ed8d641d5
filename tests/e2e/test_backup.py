# SPDX-License-Identifier: MIT
"""Helpers for test-backup (run as "$PY -m test_backup MODE ...").

  apply ROUND MAP SRC DST GRAN MUST [MAY...]
      the incremental step: copy from SRC (a snapshot) into DST (the
      backup) exactly the byte ranges that MAP (nbdinfo --map=qemu:dirty-
      bitmap:NAME --json) reports dirty.  The dirty granules must include
      every granule of the writes listed in MUST and lie within those of
      MUST and the MAY files (lines "OFF LEN").  Prints the bytes copied
      against SRC's size, and them alone on the last line.
  agree QEMU NBDINFO
      qemu-img map --output=json with x-dirty-bitmap, and nbdinfo's map of
      the same checkpoint: the same dirty and clean ranges
  writer URI STOP LOG READY LO HI
      random writes (8 in flight) into [LO, HI) until the file STOP
      exists and 16 more have completed; READY is made after the first 16;
      LOG gets "OFF LEN" per write
"""
import json
import os
import random
import sys
import time

import nbd

from nbdtest import aio, connect, fail, ok


def extents(path):
    """nbdinfo --map=qemu:dirty-bitmap:NAME --json: [(off, len, dirty)],
    checked to cover [0, end) without a gap."""
    out, pos = [], 0
    for e in json.load(open(path)):
        if e["offset"] != pos or e["length"] <= 0:
            fail(f"{path}: extent at {e['offset']}, want one at {pos}")
        out.append((e["offset"], e["length"], bool(e["type"] & 1)))
        pos += e["length"]
    return out


def qemu_extents(path):
    """qemu-img map with x-dirty-bitmap reads the bitmap as if it were
    base:allocation: a dirty extent (flag 1, the HOLE bit) is "data":
    false."""
    return [(e["start"], e["length"], not e["data"])
            for e in json.load(open(path))]


def merged(ext):
    """Runs of equal state, adjacent ones joined: [(start, end, dirty)]."""
    out = []
    for off, length, dirty in ext:
        if out and out[-1][1] == off and out[-1][2] == dirty:
            out[-1] = (out[-1][0], off + length, dirty)
        else:
            out.append((off, off + length, dirty))
    return out


def writes(path):
    with open(path) as f:
        return [tuple(int(x) for x in line.split()) for line in f
                if line.strip()]


def granules(spans, gran):
    g = set()
    for off, length in spans:
        g.update(range(off // gran, (off + length - 1) // gran + 1))
    return g


def apply(rnd, mapfile, src, dst, gran, must, may):
    size = os.stat(src).st_size
    ext = extents(mapfile)
    if sum(n for _, n, _ in ext) != size:
        fail(f"{mapfile}: the extents end at {sum(n for _, n, _ in ext)}, "
             f"want {size}")
    dirty = [(o, n) for o, n, d in ext if d]
    for o, n in dirty:
        if o % gran or (n % gran and o + n != size):
            fail(f"dirty extent {o}+{n} is not whole granules of {gran}")
    got = granules(dirty, gran)
    want = granules(writes(must), gran)
    allowed = want.union(*(granules(writes(m), gran) for m in may))
    if want - got:
        fail(f"round {rnd}: granules written but not dirty: "
             f"{sorted(want - got)[:20]}")
    if got - allowed:
        fail(f"round {rnd}: granules dirty but never written: "
             f"{sorted(got - allowed)[:20]}")
    copied = 0
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY)
    for o, n in dirty:
        end = o + n
        while o < end:
            chunk = os.pread(fi, min(end - o, 1 << 20), o)
            if not chunk:
                fail(f"{src}: short read at {o}")
            os.pwrite(fo, chunk, o)
            o += len(chunk)
            copied += len(chunk)
    os.fsync(fo)
    os.close(fo)
    os.close(fi)
    extra = len(got) - len(want)
    ok(f"round {rnd}: {len(dirty)} dirty extents, {len(got)} granules: the "
       f"{len(want)} this round's writes touched"
       + (f", and {extra} of the writer's" if may else ", exactly"))
    ok(f"round {rnd}: copied {copied} of {size} bytes "
       f"({100.0 * copied / size:.2f}% of the export)")
    print(copied)


def agree(qemu, nbdinfo):
    q, n = merged(qemu_extents(qemu)), merged(extents(nbdinfo))
    if q != n:
        fail(f"qemu-img map {q[:6]}... != nbdinfo {n[:6]}...")
    nd = sum(1 for e in n if e[2])
    if nd == 0 or nd == len(n):
        fail("the map is all one state: the comparison proves nothing")
    ok(f"qemu-img map and nbdinfo agree: {nd} dirty runs, "
       f"{len(n) - nd} clean, the same bytes")


def writer(uri, stop, log, ready, lo, hi):
    rnd = random.Random(42)
    h = connect(uri)
    spans, pending = [], []
    done = after_stop = 0
    t_end = time.monotonic() + 120
    while True:
        if time.monotonic() > t_end:
            fail("the writer was not stopped within 120 s")
        stopping = os.path.exists(stop)
        if stopping and after_stop >= 16:
            break
        while len(pending) < 8:
            length = rnd.choice([512, 4096, 4096, 65536, 100000])
            off = rnd.randrange(lo, hi - length)
            buf = nbd.Buffer.from_bytearray(bytearray(rnd.randbytes(length)))
            pending.append(aio("write", h.aio_pwrite, off, buf=buf))
            spans.append((off, length))
        h.poll(-1)
        for op in [op for op in pending if op.done is not None]:
            if op.err:
                fail(f"a write failed: errno {op.err}")
            pending.remove(op)
            done += 1
            after_stop += stopping
        if done >= 16 and not os.path.exists(ready):
            open(ready, "w").close()
    while h.aio_in_flight() > 0:
        h.poll(-1)
    if any(op.err for op in pending):
        fail("a write failed")
    h.shutdown()
    with open(log, "w") as f:
        for off, length in spans:
            f.write(f"{off} {length}\n")
    ok(f"the writer: {len(spans)} writes into [{lo}, {hi}), 16 before "
       f"READY, {after_stop} completed after STOP")


def main():
    mode, a = sys.argv[1], sys.argv[2:]
    if mode == "apply":
        apply(a[0], a[1], a[2], a[3], int(a[4]), a[5], a[6:])
    elif mode == "agree":
        agree(a[0], a[1])
    elif mode == "writer":
        writer(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
