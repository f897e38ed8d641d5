# SPDX-License-Identifier: MIT
"""test-fastpath's client and trace checks (see test-fastpath.sh).

  read URI FILE      F6: partly cached reads, byte-exact
  flush URI          write + FLUSH pairs at QD1, then FLUSHes with nothing new
  fail URI           write + FLUSH pairs until the injected sync error
  pairs URI FILE     C7: write + FLUSH pairs on one connection, one by one
                     and pipelined, then the file and a read-back compared
  covered DUMP [failed]  R1 on a `loopd trace dump`
"""
import ctypes
import errno
import mmap
import os
import re
import sys

from nbdtest import connect, fail, ok

PAGE = 4096


def cached_pages(path, length):
    """mincore(2) of the first length bytes of path: one bool per page."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    finally:
        os.close(fd)
    if addr in (None, ctypes.c_void_p(-1).value):
        fail(f"mmap: {os.strerror(ctypes.get_errno())}")
    vec = (ctypes.c_ubyte * (length // PAGE))()
    r = libc.mincore(addr, length, vec)
    libc.munmap(addr, length)
    if r != 0:
        fail(f"mincore: {os.strerror(ctypes.get_errno())}")
    return [bool(v & 1) for v in vec]


def read_test(uri, path):
    size = os.path.getsize(path)
    want = open(path, "rb").read()
    h = connect(uri)
    # (pages cached in each 64-page window, described) -> pattern
    patterns = [
        ("none cached", lambda i: False),
        ("the first half cached", lambda i: i < 32),
        ("every other page cached", lambda i: i % 2 == 0),
        ("all but the last page", lambda i: i != 63),
        ("the last page only", lambda i: i == 63),
    ]
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead
        for n, (what, cached) in enumerate(patterns):
            base = n * 64 * PAGE
            os.posix_fadvise(fd, base, 64 * PAGE, os.POSIX_FADV_DONTNEED)
            for i in range(64):
                if cached(i):
                    os.pread(fd, PAGE, base + i * PAGE)
            have = cached_pages(path, size)[n * 64:(n + 1) * 64]
            if have != [cached(i) for i in range(64)]:
                fail(f"{what}: precondition: the page cache holds "
                     f"{''.join('1' if c else '0' for c in have)}")
            # one read of the window, and one that starts mid-page
            for off, ln in ((base, 64 * PAGE), (base + 1000, 40 * PAGE + 5)):
                got = h.pread(ln, off)
                if got != want[off:off + ln]:
                    bad = next(i for i in range(ln) if got[i] != want[off + i])
                    fail(f"{what}: read of {ln} at {off} differs from the "
                         f"file at byte {off + bad}")
            ok(f"{what}: 2 reads byte-exact")
    finally:
        os.close(fd)
    assert size >= len(patterns) * 64 * PAGE


def flush_test(uri):
    h = connect(uri)
    # A second connection on the one worker: syncs go through the ring
    # (F7 runs them inline only for a worker's sole connection), so that
    # FLUSHes find them running and join them (R7).
    h2 = connect(uri)
    for i in range(40):
        h.pwrite(bytes([i]) * PAGE, i * PAGE)
        h.flush()
    for _ in range(3):
        h.flush()  # nothing written since: R7 clean
    # a write on the second connection, a FLUSH on the first
    h2.pwrite(b"\xee" * PAGE, 100 * PAGE)
    h.flush()
    # A long sync (32 MiB dirty) and, while it runs, a write on h2 and a
    # FLUSH after it: that FLUSH must not join the running sync, which
    # began before the write completed (R7 join needs no write since).
    chunk = b"\x5a" * (1 << 20)
    for i in range(32):
        h.pwrite(chunk, (1 << 20) * (i + 8) % (12 << 20) + (2 << 20))
    f1 = h.aio_flush()
    h2.pwrite(b"\x77" * PAGE, 200 * PAGE)
    overlapped = not h.aio_command_completed(f1)
    h2.flush()
    while not h.aio_command_completed(f1):
        h.poll(-1)
    ok("40 write+flush pairs, 3 clean flushes, 1 cross-connection flush, "
       f"a write and a FLUSH during a long sync (it was "
       f"{'still running' if overlapped else 'already done'})")


def pairs_test(uri, path):
    """C7: the one connection of a worker, so that its syncs run inline
    (F7) and its next requests arrive while they run."""
    h = connect(uri)
    want = {}
    # one by one, as fio --fsync=1: the FLUSH comes during the early sync
    for i in range(200):
        data = bytes([i % 251 + 1]) * PAGE
        h.pwrite(data, i * PAGE)
        want[i * PAGE] = data
        h.flush()
    # pipelined: a FLUSH and the next WRITE's header and payload wait in
    # the socket together while a sync runs
    for k in range(50):
        cmds = []
        for j in range(2):
            off = (200 + 2 * k + j) * PAGE
            data = os.urandom(PAGE)
            cmds.append(h.aio_pwrite(data, off))
            cmds.append(h.aio_flush())
            want[off] = data
        for c in cmds:
            while not h.aio_command_completed(c):
                h.poll(-1)
    for off, data in want.items():
        if h.pread(PAGE, off) != data:
            fail(f"read-back at {off} differs")
    with open(path, "rb") as f:
        for off, data in want.items():
            f.seek(off)
            if f.read(PAGE) != data:
                fail(f"the file at {off} differs after its FLUSH")
    h.shutdown()
    ok(f"{len(want)} writes flushed (200 one by one, 100 pipelined), "
       "read back and in the file")


def fail_test(uri):
    h = connect(uri)
    for i in range(64):
        h.pwrite(bytes([i]) * PAGE, i * PAGE)
        try:
            h.flush()
        except Exception as e:  # nbd.Error
            if getattr(e, "errnum", None) != errno.EIO:
                fail(f"pair {i}: flush failed with {e}, want EIO")
            ok(f"pair {i}: the flush whose sync failed got EIO")
            break
    else:
        fail("no flush failed: the injected sync error was swallowed")
    try:
        h.flush()
    except Exception as e:
        if getattr(e, "errnum", None) != errno.EIO:
            fail(f"flush after the latch failed with {e}, want EIO")
        ok("the next flush gets EIO too (R5 latch)")
    else:
        fail("a flush after a failed sync succeeded (R5)")


REC = re.compile(r"^(\d+) \S+ (\w+) (.*)$")


def covered(dump, want_failed=False):
    """R1 on the trace: every FLUSH replied ok follows the end of a
    successful sync that began after the reply of every write replied
    before the FLUSH's RECV.  Counts the R7 paths it sees: early (that
    sync began before the FLUSH arrived) and clean (it had ended)."""
    latest_write_reply = -1
    flush_recv = {}  # (conn, cookie) -> (RECV record, latest write reply)
    syncs = {}  # id -> [begin record, end record, ok]
    early = joined = clean = failed = 0
    for line in open(dump):
        m = REC.match(line)
        if not m:
            continue
        idx, kind, rest = int(m.group(1)), m.group(2), m.group(3)
        words = rest.split()
        f = dict(w.split("=", 1) for w in words if "=" in w)
        if kind == "RECV" and words[1] == "FLUSH":
            flush_recv[(f["conn"], f["cookie"])] = (idx, latest_write_reply)
        elif kind == "REPLY":
            okay = words[-1] == "ok"
            if words[1] in ("WRITE", "TRIM", "WRITE_ZEROES") and okay:
                latest_write_reply = idx
            if words[1] != "FLUSH":
                continue
            recv, need = flush_recv.pop((f["conn"], f["cookie"]))
            if not okay:
                failed += 1
                continue
            good = [s for s in syncs.values()
                    if s[2] and s[0] > need and s[1] < idx]
            if not good:
                if need < 0:
                    clean += 1  # nothing was ever written
                    continue
                fail(f"FLUSH replied ok at record {idx} (RECV {recv}) "
                     f"with no successful sync begun after the write "
                     f"replied at record {need} (R1)")
            if any(s[0] < recv for s in good):
                early += 1
            if any(s[0] < recv < s[1] for s in good):
                joined += 1
            if all(s[1] < recv for s in good):
                clean += 1
        elif kind == "SYNC_BEGIN":
            syncs[f["id"]] = [idx, None, False]
        elif kind == "SYNC_END":
            syncs[f["id"]][1:] = [idx, words[-1] == "ok"]
    ok(f"every successful FLUSH covered (early {early}, joined {joined}, "
       f"clean {clean}, failed {failed})")
    if want_failed:
        if not failed:
            fail("the trace shows no failed FLUSH")
        return
    if not early or not joined:
        fail(f"R7 early syncs not exercised: {early} began before their "
             f"FLUSH arrived, {joined} were still running then")
    if not clean:
        fail("no FLUSH was answered clean (R7)")


def main():
    what = sys.argv[1]
    if what == "read":
        read_test(sys.argv[2], sys.argv[3])
    elif what == "flush":
        flush_test(sys.argv[2])
    elif what == "pairs":
        pairs_test(sys.argv[2], sys.argv[3])
    elif what == "fail":
        fail_test(sys.argv[2])
    elif what == "covered":
        covered(sys.argv[2], len(sys.argv) > 3)


main()
