# SPDX-License-Identifier: MIT
"""test_rbd_diff.py: the client of test-rbd-diff.sh.

  test_rbd_diff.py run URI SEED NOPS OUT
      Send NOPS requests, generated from SEED, to URI: writes (1 byte to
      8 MiB, unaligned, across object boundaries, up to the end of the
      export, some with FUA), WRITE_ZEROES (with and without NO_HOLE,
      some with FUA), TRIMs, FLUSHes and READs, up to QD at a time on one
      connection.  Requests in flight together never overlap, so the
      contents after each request are those of the requests applied in
      order, whatever order the server completes them in; each READ is
      checked against that.  Every request must succeed.  At the end the
      whole export is read and checked.  OUT.model gets the contents and
      OUT.undef the ranges whose contents are unspecified (trimmed and not
      written since: NBD lets a server read them back as anything), as
      "START END" lines.
  test_rbd_diff.py cmp MODEL UNDEF FILE...
      Each FILE (e.g. from "rbd export") must equal MODEL outside UNDEF.
      Also says how many bytes of the UNDEF ranges are equal between the
      FILEs, for the record.
  test_rbd_diff.py trimzero UNDEF FILE
      Every trimmed range of FILE reads as zeroes: loopd turns off
      librbd's rbd_skip_partial_discard, so that a TRIM zeroes exactly its
      range, partial objects included (docs/semantics.md, 3a), which is
      what the recorder's model of a TRIM assumes.
  test_rbd_diff.py tamper MODEL UNDEF FILE
      Flip one byte of FILE at a specified offset that holds written data,
      and print "tampered: OFFSET", to show that cmp fails then.
"""
import random
import sys
import time

import nbd

from nbdtest import check, connect, ename, fail, ok

KiB = 1 << 10
MiB = 1 << 20
OBJ = 4 * MiB  # the default RBD object size: boundaries worth straddling
QD = 16


class Ranges:
    """A set of disjoint [start, end) ranges, kept sorted."""

    def __init__(self):
        self.r = []

    def add(self, s, e):
        out = []
        for a, b in self.r:
            if b < s or a > e:
                out.append((a, b))
            else:
                s, e = min(s, a), max(e, b)
        out.append((s, e))
        self.r = sorted(out)

    def remove(self, s, e):
        out = []
        for a, b in self.r:
            if b <= s or a >= e:
                out.append((a, b))
                continue
            if a < s:
                out.append((a, s))
            if b > e:
                out.append((e, b))
        self.r = out

    def within(self, s, e):
        """The parts of [s, e) in the set, clipped."""
        return [(max(a, s), min(b, e)) for a, b in self.r if a < e and b > s]

    def total(self):
        return sum(b - a for a, b in self.r)


def defined_equal(got, want, base, undef):
    """First offset (absolute) where got and want differ outside undef,
    or None.  got and want cover [base, base + len(want))."""
    end = base + len(want)
    pos = base
    holes = undef.within(base, end) + [(end, end)]
    for a, b in holes:
        if got[pos - base:a - base] != want[pos - base:a - base]:
            for i in range(pos, a):
                if got[i - base] != want[i - base]:
                    return i
        pos = max(pos, b)
    return None


def gen_ops(seed, nops, size):
    """The request list: (kind, offset, length, flags, data seed)."""
    rng = random.Random(seed)
    ops = []
    for _ in range(nops):
        r = rng.random()
        if r < 0.10:
            ops.append(("flush", 0, 0, 0))
            continue
        kind = ("write" if r < 0.55 else "zero" if r < 0.70
                else "trim" if r < 0.80 else "read")
        c = rng.random()
        if c < 0.25:
            n = rng.randint(1, 511)
        elif c < 0.70:
            n = rng.randint(512, 64 * KiB)
        elif c < 0.95:
            n = rng.randint(64 * KiB, MiB)
        else:
            n = rng.randint(MiB, 8 * MiB)
        if kind == "read":
            n = min(n, MiB)
        p = rng.random()
        if p < 0.25:  # aligned to 4 KiB
            off = rng.randrange(0, size, 4 * KiB)
            n = max(4 * KiB, n // (4 * KiB) * 4 * KiB)
        elif p < 0.45:  # across an object boundary
            off = rng.randrange(OBJ, size, OBJ) - rng.randint(1, n)
        elif p < 0.55:  # up to the end
            off = size - n
        else:
            off = rng.randrange(0, size - 1)
        off = max(0, off)
        n = min(n, size - off)
        flags = 0
        if kind in ("write", "zero") and rng.random() < 0.2:
            flags |= nbd.CMD_FLAG_FUA
        if kind == "zero" and rng.random() < 0.5:
            flags |= nbd.CMD_FLAG_NO_HOLE
        ops.append((kind, off, n, flags))
    return ops


def run(uri, seed, nops, out):
    h = connect(uri)
    size = h.get_size()
    ops = gen_ops(seed, nops, size)
    data_rng = random.Random(seed ^ 0x5EED)
    model = bytearray(size)
    undef = Ranges()
    inflight = []  # [start, end, done-flag list]
    errors = []
    counts = {}
    reads_checked = 0
    t0 = time.monotonic()

    def drive(cond):
        deadline = time.monotonic() + 120
        while not cond():
            if time.monotonic() > deadline:
                fail(f"requests still in flight after 120 s: {inflight}")
            h.poll(1000)
        inflight[:] = [x for x in inflight if not x[2][0]]

    def done_cb(what, box, extra=None):
        def cb(*args):
            err = args[-1]
            if err.value:
                errors.append(f"{what}: {ename(err.value)}")
            elif extra is not None:
                extra()
            box[0] = True
            return 1
        return cb

    for i, (kind, off, n, flags) in enumerate(ops):
        counts[kind] = counts.get(kind, 0) + 1
        end = off + n
        # Never two overlapping requests in flight; at most QD.
        drive(lambda: len([x for x in inflight if not x[2][0]]) < QD and
              not any(not x[2][0] and x[0] < end and off < x[1]
                      for x in inflight))
        if errors:
            break
        box = [False]
        what = f"request {i}: {kind} [{off}, {end}) flags {flags}"
        if kind == "write":
            data = data_rng.randbytes(n)
            model[off:end] = data
            undef.remove(off, end)
            buf = nbd.Buffer.from_bytearray(bytearray(data))
            h.aio_pwrite(buf, off, completion=done_cb(what, box, None),
                         flags=flags)
            inflight.append((off, end, box, buf))
        elif kind == "zero":
            model[off:end] = bytes(n)
            undef.remove(off, end)
            h.aio_zero(n, off, completion=done_cb(what, box), flags=flags)
            inflight.append((off, end, box))
        elif kind == "trim":
            # Contents unspecified afterwards; the model keeps the old
            # bytes, which are only compared once written again.
            undef.add(off, end)
            h.aio_trim(n, off, completion=done_cb(what, box))
            inflight.append((off, end, box))
        elif kind == "flush":
            h.aio_flush(completion=done_cb(what, box))
            inflight.append((0, 0, box))
        else:
            want = bytes(model[off:end])
            holes = Ranges()
            holes.r = undef.within(off, end)
            buf = nbd.Buffer(n)

            def checked(buf=buf, want=want, holes=holes, what=what, off=off):
                nonlocal reads_checked
                bad = defined_equal(buf.to_bytearray(), want, off, holes)
                if bad is not None:
                    errors.append(f"{what}: byte {bad} differs from what "
                                  "was written")
                reads_checked += 1
            h.aio_pread(buf, off, completion=done_cb(what, box, checked))
            inflight.append((off, end, box, buf))
    drive(lambda: all(x[2][0] for x in inflight))
    if errors:
        for e in errors[:10]:
            print("  bad:", e, file=sys.stderr)
        fail(f"{len(errors)} requests failed or read wrong data")
    h.flush()
    took = time.monotonic() - t0
    ok(f"{len(ops)} requests ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) "
       f"in {took:.1f} s, every one succeeded; {reads_checked} reads "
       "matched what was written")

    check(f"the whole export reads back as written "
          f"({undef.total()} trimmed bytes left out)")
    for base in range(0, size, 4 * MiB):
        n = min(4 * MiB, size - base)
        got = h.pread(n, base)
        bad = defined_equal(got, model[base:base + n], base, undef)
        if bad is not None:
            fail(f"byte {bad} reads {got[bad - base]:#x}, "
                 f"want {model[bad]:#x}")
    ok(f"{size} bytes match")
    h.shutdown()
    with open(out + ".model", "wb") as f:
        f.write(model)
    with open(out + ".undef", "w") as f:
        for a, b in undef.r:
            f.write(f"{a} {b}\n")


def load(model_path, undef_path):
    model = open(model_path, "rb").read() if model_path else None
    undef = Ranges()
    for line in open(undef_path):
        a, b = map(int, line.split())
        undef.r.append((a, b))
    return model, undef


def cmp_files(model_path, undef_path, paths):
    model, undef = load(model_path, undef_path)
    datas = []
    for p in paths:
        data = open(p, "rb").read()
        if len(data) != len(model):
            fail(f"{p}: {len(data)} bytes, want {len(model)}")
        bad = defined_equal(data, model, 0, undef)
        if bad is not None:
            fail(f"{p}: byte {bad} is {data[bad]:#x}, want {model[bad]:#x}")
        datas.append(data)
    ok(f"{', '.join(paths)}: equal to the model outside "
       f"{len(undef.r)} trimmed ranges ({undef.total()} bytes)")
    if len(datas) == 2 and undef.r:
        same = sum(sum(1 for i in range(a, b) if datas[0][i] == datas[1][i])
                   if b - a < 65536 else
                   (b - a if datas[0][a:b] == datas[1][a:b] else 0)
                   for a, b in undef.r)
        print(f"  note: in the trimmed ranges, {same} of {undef.total()} "
              "bytes are the same in both", flush=True)


def trimzero(undef_path, path):
    _, undef = load(None, undef_path)
    data = open(path, "rb").read()
    for a, b in undef.r:
        if data[a:b] != bytes(b - a):
            i = next(i for i in range(a, b) if data[i])
            fail(f"{path}: byte {i} of the trimmed range [{a}, {b}) is "
                 f"{data[i]:#x}, not zero")
    ok(f"{path}: all {len(undef.r)} trimmed ranges ({undef.total()} bytes) "
       "read as zeroes")


def tamper(model_path, undef_path, path):
    model, undef = load(model_path, undef_path)
    rng = random.Random()
    for _ in range(100000):
        off = rng.randrange(len(model))
        if model[off] != 0 and not undef.within(off, off + 1):
            break
    else:
        fail("no written byte found to tamper with")
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(bytes([model[off] ^ 0xFF]))
    print(f"tampered: {off}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "run":
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif mode == "cmp":
        cmp_files(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif mode == "trimzero":
        trimzero(sys.argv[2], sys.argv[3])
    elif mode == "tamper":
        tamper(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        fail(f"unknown mode {mode}")
