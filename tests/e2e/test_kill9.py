# SPDX-License-Identifier: MIT
"""test_kill9.py: the client side of test-kill9.sh.

  test_kill9.py load URI LOG READY N    write until the server dies
  test_kill9.py term URI LOG READY N    the same, for a server stopped by
                                        SIGTERM (test-shutdown-soak): one
                                        more connection writes 64-256 KiB
                                        at queue depth 16, and no write
                                        need be in flight at the end
  test_kill9.py verify URI LOG          check the export against LOG
  test_kill9.py tamper URI LOG KIND     break one logged block (stale or
                                        garbage), to show verify fails, or
                                        put it back (restore)

"load" runs CONNS connections, each a thread with its own handle and QD
writes in flight.  Each write covers 1 to 4 random 4 KiB blocks, one in
eight with FUA; each connection sends a FLUSH every FLUSH_EVERY writes.
Two writes to one block are never in flight together, so the writes to a
block are ordered by the client alone.  Every block of a write carries a
self-describing header (magic, block number, write id, generation of the
block, run tag) and a body that is a hash of the header, so a block read
back names the write that put it there, and garbage or a misdirected
block is seen.

LOG gets one line per event, in the order the client saw them (one lock):
  RUN tag size          the run's tag and the export size
  W id block n fua      before the write is sent
  U id                  the write could not be sent after all
  A id / E id errno     its reply: success / error
  F id                  before a FLUSH is sent
  D id / X id errno     its reply: success / error
  READY                 after N flushes succeeded (also written to READY)
  END reason
A write is durable if it was acknowledged with FUA, or if its A line comes
before the F line of a flush that has a D line (R1: a FLUSH covers every
write replied to before it was received, on any connection).  The log is
fsync'ed at every flush reply and at the end.

"load" returns 0 once every connection was cut after READY (the test kills
the server), with only ENOTCONN/ESHUTDOWN-like errors after READY and no
error at all before it.

"verify" reads the whole export.  For each block, with W the writes to it
in the order they were sent:
  - contract (what a power cut must keep): the block holds the latest
    durable write of W, or any write sent after it;
  - process kill (what this test asserts): a kill -9 keeps the page cache,
    so every write loopd acknowledged is in the file (E1: a write is
    acknowledged only after its I/O has completed).  The block holds the
    latest acknowledged write of W, or a write sent after it (in flight at
    the kill, or answered with an error by the dying connection).
A block with no acknowledged write may also be all zeroes (never written).
Anything else (garbage, a torn block, another block's data, an older
write) fails.
"""
import errno
import hashlib
import os
import random
import struct
import sys
import threading
import time

import nbd

from nbdtest import check, connect, ename, fail, ok

BS = 4096
CONNS = 4
QD = 4
MAX_BLOCKS = 4
FUA_ONE_IN = 8
FLUSH_EVERY = 16
MAX_SECONDS = 60
MAGIC = b"LOOPDK9\n"
HDR = struct.Struct("<8sQQII")  # magic, block, write id, gen, run tag
# Errors of commands cut off by a dead connection, not answered by loopd.
CUT = {errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNRESET, errno.EPIPE}


def block_data(block, wid, gen, tag):
    hdr = HDR.pack(MAGIC, block, wid, gen, tag)
    body = hashlib.sha256(hdr).digest() * ((BS - len(hdr)) // 32)
    return hdr + body


def describe(buf):
    """What a block read back is, for the failure message."""
    if buf == bytes(BS):
        return "zeroes"
    magic, block, wid, gen, tag = HDR.unpack_from(buf)
    if magic != MAGIC:
        return f"garbage (starts {buf[:16].hex()})"
    good = block_data(block, wid, gen, tag) == buf
    return (f"write {wid} gen {gen} of block {block} tag {tag:#x}"
            + ("" if good else ", torn or corrupt body"))


class Load:
    def __init__(self, uri, log_path, ready_path, n_ready, term=False):
        self.uri = uri
        self.term = term
        self.lock = threading.Lock()
        self.log = open(log_path, "w")
        self.ready_path = ready_path
        self.n_ready = n_ready
        self.ready = False
        self.tag = random.getrandbits(32)
        self.rng = random.Random()
        self.next_wid = 1
        self.next_fid = 1
        self.gen = {}  # block -> generation of the last write sent
        self.busy = set()  # blocks with a write in flight
        self.flushes_ok = 0
        self.counts = dict(sent=0, acked=0, fua=0, flushes=0)
        self.errors = []  # unexpected errors
        self.cut = 0  # commands cut off by the kill
        h = connect(uri)
        self.size = h.get_size()
        self.nblocks = self.size // BS
        h.shutdown()
        self.record(f"RUN {self.tag} {self.size}")

    def record(self, line, sync=False):
        # Called with self.lock held, or before the threads start.
        self.log.write(line + "\n")
        if sync:
            self.log.flush()
            os.fsync(self.log.fileno())

    def error(self, what, err):
        if self.ready and err in CUT:
            self.cut += 1
            return
        self.errors.append(f"{what}: {ename(err)}"
                           + ("" if self.ready else " before READY"))

    def pick(self, max_blocks):
        # With self.lock held: a free run of blocks, or None.
        n = self.rng.randint(max(1, max_blocks // 4), max_blocks)
        for _ in range(16):
            b = self.rng.randrange(self.nblocks - n + 1)
            if not any(x in self.busy for x in range(b, b + n)):
                return b, n
        return None

    def send_write(self, h, max_blocks):
        with self.lock:
            p = self.pick(max_blocks)
            if p is None:
                return False
            b, n = p
            fua = self.rng.randrange(FUA_ONE_IN) == 0
            wid = self.next_wid
            self.next_wid += 1
            data = bytearray()
            for x in range(b, b + n):
                self.gen[x] = self.gen.get(x, 0) + 1
                self.busy.add(x)
                data += block_data(x, wid, self.gen[x], self.tag)
            self.record(f"W {wid} {b} {n} {int(fua)}")
            self.counts["sent"] += 1

        def done(err, buf):
            # buf is an argument so that it lives until the reply.
            with self.lock:
                self.busy.difference_update(range(b, b + n))
                if err.value:
                    self.record(f"E {wid} {err.value}")
                    self.error(f"write {wid}", err.value)
                else:
                    self.record(f"A {wid}")
                    self.counts["acked"] += 1
                    self.counts["fua"] += fua
            return 1

        buf = nbd.Buffer.from_bytearray(data)
        try:
            h.aio_pwrite(buf, b * BS, completion=lambda err: done(err, buf),
                         flags=nbd.CMD_FLAG_FUA if fua else 0)
        except nbd.Error:
            # Not sent (the handle is dead): take it back.
            with self.lock:
                self.record(f"U {wid}")
                self.counts["sent"] -= 1
                for x in range(b, b + n):
                    self.gen[x] -= 1
                self.busy.difference_update(range(b, b + n))
            raise
        return True

    def send_flush(self, h):
        with self.lock:
            fid = self.next_fid
            self.next_fid += 1
            self.record(f"F {fid}")

        def done(err):
            with self.lock:
                if err.value:
                    self.record(f"X {fid} {err.value}")
                    self.error(f"flush {fid}", err.value)
                    return 1
                self.record(f"D {fid}", sync=True)
                self.counts["flushes"] += 1
                self.flushes_ok += 1
                if self.flushes_ok == self.n_ready and not self.ready:
                    self.ready = True
                    self.record("READY", sync=True)
                    # The test holds the FIFO open: this never blocks.
                    with open(self.ready_path, "w") as f:
                        f.write("ready\n")
            return 1

        h.aio_flush(completion=done)

    def conn(self, qd=QD, max_blocks=MAX_BLOCKS):
        h = connect(self.uri)
        deadline = time.monotonic() + MAX_SECONDS
        writes = 0
        try:
            while time.monotonic() < deadline:
                while h.aio_in_flight() < qd:
                    if not self.send_write(h, max_blocks):
                        break
                    writes += 1
                    if writes % FLUSH_EVERY == 0:
                        self.send_flush(h)
                h.poll(1000)
        except nbd.Error as e:
            # The server is gone; commands in flight were retired with an
            # error by libnbd (their callbacks recorded it).
            with self.lock:
                if not self.ready:
                    self.errors.append(f"connection lost before READY: {e}")
            return
        with self.lock:
            self.errors.append(f"the server was still up after "
                               f"{MAX_SECONDS} s")

    def run(self):
        threads = [threading.Thread(target=self.conn) for _ in range(CONNS)]
        if self.term:
            # Large writes, many in flight: their I/O is spread over the
            # workers (E3) when the stop comes.
            threads.append(threading.Thread(target=self.conn,
                                            args=(16, 64)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self.lock:
            self.record("END", sync=True)
            self.log.close()
            c = self.counts
            ok(f"client: {c['sent']} writes sent, {c['acked']} acknowledged "
               f"({c['fua']} with FUA), {c['flushes']} flushes succeeded, "
               f"{self.cut} commands cut off by the kill")
            for e in self.errors:
                print("client error:", e, file=sys.stderr)
            if self.errors:
                fail(f"{len(self.errors)} unexpected errors")
            if c["sent"] == c["acked"] and not self.term:
                fail("no write was in flight when the server died")


def parse(log_path):
    writes = {}  # id -> (block, n, fua)
    acked = {}  # id -> log position of its reply
    flushes = {}  # id -> log position of its send
    done = set()
    tag = size = None
    with open(log_path) as f:
        lines = f.read().splitlines()
    if not lines or lines[-1] != "END":
        fail(f"{log_path} does not end with END: the client did not finish")
    for pos, line in enumerate(lines):
        w = line.split()
        if w[0] == "RUN":
            tag, size = int(w[1]), int(w[2])
        elif w[0] == "W":
            writes[int(w[1])] = (int(w[2]), int(w[3]), w[4] == "1")
        elif w[0] == "U":
            del writes[int(w[1])]
        elif w[0] == "A":
            acked[int(w[1])] = pos
        elif w[0] == "F":
            flushes[int(w[1])] = pos
        elif w[0] == "D":
            done.add(int(w[1]))
    last_flush = max((flushes[f] for f in done), default=-1)
    durable = {i for i, p in acked.items()
               if writes[i][2] or p < last_flush}
    # The writes to each block, in the order they were sent.
    per_block = {}
    for i in sorted(writes):
        b, n, _ = writes[i]
        for x in range(b, b + n):
            per_block.setdefault(x, []).append(i)
    return tag, size, writes, acked, durable, per_block, len(done)


def allowed_from(ws, keep):
    """The suffix of ws a block may hold: from the last write in keep."""
    idx = [k for k, i in enumerate(ws) if i in keep]
    return ws[idx[-1]:] if idx else None


def verify(uri, log_path):
    tag, size, writes, acked, durable, per_block, nflush = parse(log_path)
    h = connect(uri)
    if h.get_size() != size:
        fail(f"export size {h.get_size()}, the log says {size}")
    check(f"{len(per_block)} written blocks against the log: "
          f"{len(writes)} writes, {len(acked)} acknowledged, "
          f"{len(durable)} durable, {nflush} flushes")
    image = bytearray()
    step = 8 << 20
    for off in range(0, size, step):
        image += h.pread(min(step, size - off), off)
    gens = {}
    bad = []
    stats = dict(durable=0, acked=0, inflight=0, zero=0, unwritten=0)
    for x in range(size // BS):
        buf = bytes(image[x * BS:(x + 1) * BS])
        ws = per_block.get(x)
        if not ws:
            if buf != bytes(BS):
                bad.append(f"block {x} was never written but holds "
                           f"{describe(buf)}")
            stats["unwritten"] += 1
            continue
        # The generation of each write in this block, as the client
        # numbered them (1, 2, ... in send order).
        for g, i in enumerate(ws, 1):
            gens[(x, i)] = g
        strong = allowed_from(ws, acked)
        weak = allowed_from(ws, durable)
        ok_ids = strong if strong is not None else ws
        if buf == bytes(BS) and strong is None:
            stats["zero"] += 1
            continue
        hit = [i for i in ok_ids
               if buf == block_data(x, i, gens[(x, i)], tag)]
        if not hit:
            want = f"write {ok_ids[0]}" + (
                f" or later ({', '.join(map(str, ok_ids[1:]))})"
                if len(ok_ids) > 1 else "")
            if strong is None:
                want = "zeroes or " + want
            contract = "" if weak is None or any(
                buf == block_data(x, i, gens[(x, i)], tag) for i in weak) \
                else "; it breaks the crash contract too"
            bad.append(f"block {x} holds {describe(buf)}, want {want}"
                       f"{contract}")
            continue
        i = hit[0]
        if i in durable and weak and i == weak[0]:
            stats["durable"] += 1
        elif i in acked:
            stats["acked"] += 1
        else:
            stats["inflight"] += 1
    for b in bad[:20]:
        print("  bad:", b, file=sys.stderr)
    if bad:
        fail(f"{len(bad)} blocks do not hold what the log allows")
    ok(f"every block holds what the log allows: {stats['durable']} their "
       f"latest durable write, {stats['acked']} a later acknowledged one, "
       f"{stats['inflight']} a write in flight at the kill, "
       f"{stats['zero']} still zero; {stats['unwritten']} never written")

    check("the restarted server writes, flushes and reads")
    old = bytes(image[:BS])
    probe = bytes(b ^ 0xff for b in old)
    for buf in (probe, old):  # leave block 0 as it was, for a second run
        h.pwrite(buf, 0)
        h.flush()
        if h.pread(BS, 0) != buf:
            fail("the restarted server does not read back its own write")
    ok("the restarted server writes, flushes and reads back")
    h.shutdown()


def tamper(uri, log_path, kind):
    """Break one block whose latest write is durable and was rewritten:
    roll it back to its previous write (a lost write) or fill it with
    garbage."""
    tag, size, writes, acked, durable, per_block, _ = parse(log_path)
    for x, ws in sorted(per_block.items()):
        if len(ws) >= 2 and ws[-1] in durable and ws[-2] in acked:
            break
    else:
        fail("no block with two acknowledged writes, the last durable")
    if kind == "stale":
        buf = block_data(x, ws[-2], len(ws) - 1, tag)
    elif kind == "garbage":
        buf = bytes(random.Random(x).randbytes(BS))
    elif kind == "restore":
        buf = block_data(x, ws[-1], len(ws), tag)
    else:
        fail(f"unknown tamper kind {kind}")
    h = connect(uri)
    h.pwrite(buf, x * BS, nbd.CMD_FLAG_FUA)
    h.shutdown()
    ok(f"tampered: block {x} now holds {describe(buf)}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode in ("load", "term"):
        Load(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
             term=mode == "term").run()
    elif mode == "verify":
        verify(sys.argv[2], sys.argv[3])
    elif mode == "tamper":
        tamper(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        fail(f"unknown mode {mode}")
