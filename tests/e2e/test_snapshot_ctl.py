# SPDX-License-Identifier: MIT
"""Helpers for test-snapshot-ctl (run as "$PY -m test_snapshot_ctl MODE").

  fill URI SEED OFF:LEN...
      write random bytes (from SEED) at each OFF:LEN, then FLUSH
  figure FILE NAME
      print the value of the line "NAME: value" of a snapshot's answer
  held URI CTL DEST BEFORE A_OFF A_LEN B_OFF B_LEN DELAY_MS [--no-wait]
      a snapshot with one write drained and one held: see held() below
  nodrain URI BACKING CTL COPY SNAP L_OFF L_LEN H_OFF H_LEN DELAY_MS
      the negative control of the drain: see nodrain() below
"""
import fcntl
import os
import random
import struct
import subprocess
import sys
import termios
import time

import nbd

from nbdtest import aio, connect, fail, ok


def ranges(args):
    return [tuple(int(x) for x in a.split(":")) for a in args]


def fill(uri, seed, spans):
    rnd = random.Random(int(seed))
    h = connect(uri)
    for off, length in ranges(spans):
        h.pwrite(rnd.randbytes(length), off)
    h.flush()
    h.shutdown()


def figures(text):
    """A snapshot's answer (J1): {name: value} of its "name: value" lines."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            out[name] = value
    return out


def figure(path, name):
    with open(path, encoding="utf-8") as f:
        fig = figures(f.read())
    if name not in fig:
        fail(f"no line '{name}: ...' in the answer")
    print(fig[name])


def unread(h):
    """Bytes sent on h's Unix socket that the server has not read yet."""
    buf = fcntl.ioctl(h.aio_get_fd(), termios.TIOCOUTQ, b"\0" * 4)
    return struct.unpack("i", buf)[0]


def until(h, cond, secs, what):
    deadline = time.monotonic() + secs
    while not cond():
        if time.monotonic() > deadline:
            fail(f"{what}: not within {secs} s")
        h.poll(1)


def listed(uri, ctx):
    """Whether the server lists the meta context ctx (LIST_META_CONTEXT)."""
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.add_meta_context(ctx)
    h.connect_uri(uri)
    names = []
    h.opt_list_meta_context(lambda name: names.append(name) or 0)
    h.opt_abort()
    return ctx in names


def held(uri, ctl, dest, before, a_off, a_len, b_off, b_len, delay_ms,
         no_wait):
    """A is sent first and held in flight for DELAY_MS by the server
    (--inject delay=DELAY_MS:write@A*1); then `loopd ctl snapshot DEST`
    starts, and its drain waits for A (I2).  Once its instant P has
    passed (its checkpoint, made at P, is listed: I1), B is sent: the
    snapshot holds it (R8) until the capture completes, and then it
    copies its blocks before it lands (I4), before the background copy
    has even started.  DEST must be BEFORE with A and without B; the
    answer must count B as held and, when it waits for the copy, bytes
    copied before writes."""
    rnd = random.Random(a_off)
    d1, d2 = rnd.randbytes(a_len), rnd.randbytes(b_len)
    with open(before, "rb") as f:
        want = bytearray(f.read())
    if want[b_off:b_off + b_len] == d2:
        fail("B must change its block")
    want[a_off:a_off + a_len] = d1
    h = connect(uri)
    op1 = aio("A", h.aio_pwrite, a_off,
              buf=nbd.Buffer.from_bytearray(bytearray(d1)))
    until(h, lambda: h.aio_is_ready() and unread(h) == 0, 10,
          "the server reading A")
    t0 = time.monotonic()
    p = subprocess.Popen([os.environ["LOOPD"], "ctl", ctl, "snapshot"] +
                         (["--no-wait"] if no_wait else []) + [dest],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    ctx = "qemu:dirty-bitmap:" + os.path.basename(dest)
    while not listed(uri, ctx):
        if p.poll() is not None:
            fail("the snapshot ended before its checkpoint was listed")
        if time.monotonic() > t0 + 10:
            fail(f"{ctx} not listed within 10 s")
        time.sleep(0.005)  # polling the server's list, bounded
    t_p = time.monotonic()
    op2 = aio("B", h.aio_pwrite, b_off,
              buf=nbd.Buffer.from_bytearray(bytearray(d2)))
    out, err = p.communicate(timeout=120)
    if p.returncode or err:
        fail(f"snapshot {dest}: exit {p.returncode}: {err}")
    until(h, lambda: op1.done is not None and op2.done is not None, 10,
          "the replies to A and B")
    if op1.err or op2.err:
        fail(f"A: errno {op1.err}, B: errno {op2.err}")
    if h.pread(b_len, b_off) != d2:
        fail("B is not in the export")
    h.flush()  # A and B durable: no later instant allows DEST
    h.shutdown()
    if t_p - t0 > delay_ms / 2000:
        fail(f"P was seen {t_p - t0:.3f} s after the snapshot began: A "
             f"({delay_ms} ms in flight) may have completed")
    fig = figures(out)
    if fig["writes held"] != "1":
        fail(f"writes held: {fig['writes held']}, want 1 (B)")
    drain = float(fig["drain"].split()[0])
    if drain < delay_ms / 2:
        fail(f"drain {drain} ms: it did not wait for A ({delay_ms} ms)")
    what = (f"drain {drain:.0f} ms (A held {delay_ms} ms), writes held "
            f"{fig['writes held']} (B), longest hold {fig['longest hold']}")
    if no_wait:
        if not fig.get("complete", "").startswith("no"):
            fail(f"--no-wait: complete: {fig.get('complete')}")
        if "copied" in fig or "complete after" in fig:
            fail(f"--no-wait: figures of the copy before it ended: {out}")
        deadline = time.monotonic() + 30
        while not os.path.exists(dest):
            if time.monotonic() > deadline:
                fail(f"{dest} did not appear within 30 s")
            time.sleep(0.01)  # polling for DEST, bounded
        what += f"; complete: {fig['complete'][:2]}, then DEST appeared"
    else:
        copied = fig["copied"].split()
        if int(copied[2].lstrip("(")) <= 0:
            fail(f"copied: {fig['copied']}: B's blocks were not copied "
                 "before it landed")
        what += f"; copied: {fig['copied']}"
    with open(dest, "rb") as f:
        if f.read() != want:
            fail(f"{dest} is not the export with A and without B")
    if os.path.exists(dest + ".part"):
        fail(f"{dest}.part is left")
    ok(what)
    ok(f"{os.path.basename(dest)} holds A (drained) and not B (held)")


def nodrain(uri, backing, ctl, copy, snap, l_off, l_len, h_off, h_len,
            delay_ms):
    """The issue's negative control, made deterministic.  The "cp" copies
    the backing file in two chunks, the low half first.  Between its two
    reads the client sends L, a FUA write to the low half that the server
    holds in flight for DELAY_MS (--inject delay=DELAY_MS:write@L), and
    while L is in flight `loopd ctl snapshot SNAP` runs: its drain must
    wait for L (R8).  Once L is replied (durable), the client sends H, a
    FUA write to the high half, and waits for its reply; then the "cp"
    reads the high half.  So COPY holds H but not L, although L was
    durable before H was sent: no instant of the trace allows that.  SNAP
    holds L and not H: the state at its instant."""
    h = connect(uri)
    size = h.get_size()
    half = size // 2
    if not (l_off + l_len <= half <= h_off and h_off + h_len <= size):
        fail("L must lie in the low half, H in the high half")
    rnd = random.Random(7)
    new_l, new_h = rnd.randbytes(l_len), rnd.randbytes(h_len)
    fd = os.open(backing, os.O_RDONLY)
    old_l, old_h = os.pread(fd, l_len, l_off), os.pread(fd, h_len, h_off)
    if old_l == new_l or old_h == new_h:
        fail("the writes must change the blocks")
    with open(copy, "wb") as out:
        out.write(os.pread(fd, half, 0))  # the cp, first chunk
        lw = aio("L", h.aio_pwrite, l_off, flags=nbd.CMD_FLAG_FUA,
                 buf=nbd.Buffer.from_bytearray(bytearray(new_l)))
        # Readiness, bounded: the server has read all of L.
        until(h, lambda: h.aio_is_ready() and unread(h) == 0, 10,
              "the server reading L")
        t_snap = time.monotonic()
        p = subprocess.run([os.environ["LOOPD"], "ctl", ctl, "snapshot",
                            snap], capture_output=True, text=True,
                           timeout=60, check=False)
        if p.returncode or p.stderr:
            fail(f"snapshot {snap}: exit {p.returncode}: {p.stderr}")
        until(h, lambda: lw.done is not None, 10, "L's reply")
        if lw.err:
            fail(f"L failed: errno {lw.err}")
        if lw.done < t_snap:
            fail("L was replied before the snapshot was asked for")
        fig = figures(p.stdout)
        drain = float(fig["drain"].split()[0])
        # The drain waited for L: its delay, less what the ctl's start
        # took (tens of ms; half the delay is plenty).
        if drain < delay_ms / 2:
            fail(f"drain {drain} ms: the snapshot did not wait for L "
                 f"(held {delay_ms} ms in flight)")
        if fig["writes held"] != "0":
            fail(f"writes held: {fig['writes held']}, want 0 (H comes after)")
        ok(f"loopd's snapshot while L was in flight: drain {drain:.1f} ms "
           f"(L held {delay_ms} ms), {fig['writes held']} writes held")
        h.pwrite(new_h, h_off, nbd.CMD_FLAG_FUA)  # after L's reply
        out.write(os.pread(fd, size - half, half))  # the cp, second chunk
    os.close(fd)
    h.shutdown()

    def at(path, off, length):
        with open(path, "rb") as f:
            f.seek(off)
            return f.read(length)

    if at(copy, l_off, l_len) != old_l or at(copy, h_off, h_len) != new_h:
        fail("the copy does not hold old L and new H")
    ok(f"the copy holds H (FUA, {h_len} bytes at {h_off}) but not L (FUA, "
       f"{l_len} bytes at {l_off}, durable before H was sent)")
    if at(snap, l_off, l_len) != new_l or at(snap, h_off, h_len) != old_h:
        fail("the snapshot does not hold new L and old H")
    ok("the snapshot holds L and not H")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "fill":
        fill(args[0], args[1], args[2:])
    elif mode == "figure":
        figure(args[0], args[1])
    elif mode == "held":
        held(args[0], args[1], args[2], args[3],
             *(int(a) for a in args[4:9]), args[9:] == ["--no-wait"])
    elif mode == "nodrain":
        nodrain(args[0], args[1], args[2], args[3], args[4],
                *(int(a) for a in args[5:10]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
