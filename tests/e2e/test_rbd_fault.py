# SPDX-License-Identifier: MIT
"""test_rbd_fault.py: the client of test-rbd-fault.sh.

  test_rbd_fault.py RBD_URI FILE_URI OSD_PID TIMEOUT

RBD_URI is an rbd export of a loopd started with --ceph-timeout TIMEOUT,
FILE_URI a file export of the same loopd.  With both connections warmed
up (a read on each, so librbd is connected to the OSD):

1. SIGSTOP the OSD, send a READ of a range of the image never read
   before (so no cache can answer it), and meanwhile keep a write, a
   FLUSH and a read in turn going on the file export.  The READ must fail
   with EIO after about TIMEOUT seconds (between TIMEOUT - 1 and TIMEOUT
   + 4), and the file export must keep answering (at least 20 requests,
   each within 1 s) while it is pending.  The OSD gets SIGCONT as soon as
   the READ has its reply, or after TIMEOUT + 5 s at the latest (a stop
   much longer than that leaves the PGs laggy), and in every case.
2. With the OSD running again, a new READ, and a WRITE then a FLUSH then
   a READ of the written data, on the same rbd connection, succeed.
"""
import errno
import os
import signal
import sys
import time

import nbd

from nbdtest import check, connect, ename, fail, ok

MiB = 1 << 20


class Done:
    def __init__(self):
        self.err = None
        self.at = None

    def cb(self, err):
        self.err = err.value
        self.at = time.monotonic()
        return 1


def main(rbd_uri, file_uri, osd_pid, timeout):
    r = connect(rbd_uri)
    f = connect(file_uri)
    size = r.get_size()
    fsize = f.get_size()
    # Warm up: both connections answer, librbd talks to the OSD.
    r.pread(4096, 0)
    f.pread(4096, 0)

    check(f"SIGSTOP osd ({osd_pid}): a READ on the rbd export fails with "
          f"EIO after about {timeout} s; the file export keeps serving")
    off = size - 2 * MiB  # never read nor written before
    buf = nbd.Buffer(65536)
    rd = Done()
    lat = []
    file_errors = []
    wbuf = nbd.Buffer.from_bytearray(bytearray(os.urandom(65536)))
    rbuf = nbd.Buffer(65536)
    os.kill(osd_pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r.aio_pread(buf, off, completion=rd.cb)
        limit = t0 + timeout + 5
        i = 0
        while rd.at is None and time.monotonic() < limit:
            # One file request at a time, driven with the rbd handle.
            fd = Done()
            foff = (i * 65536) % (fsize - 65536)
            kind = i % 3
            if kind == 0:
                f.aio_pwrite(wbuf, foff, completion=fd.cb)
            elif kind == 1:
                f.aio_flush(completion=fd.cb)
            else:
                f.aio_pread(rbuf, foff, completion=fd.cb)
            s = time.monotonic()
            while fd.at is None and time.monotonic() < limit:
                f.poll(10)
                r.poll(0)
            if fd.at is None:
                file_errors.append(f"file request {i} had no reply")
                break
            if fd.err:
                file_errors.append(f"file request {i}: {ename(fd.err)}")
            lat.append(fd.at - s)
            i += 1
        while rd.at is None and time.monotonic() < limit:
            r.poll(50)
    finally:
        os.kill(osd_pid, signal.SIGCONT)
    stopped = time.monotonic() - t0
    print(f"  the OSD was stopped for {stopped:.1f} s", flush=True)
    if rd.at is None:
        fail(f"the rbd READ had no reply after {timeout + 5} s")
    took = rd.at - t0
    if rd.err != errno.EIO:
        fail(f"the rbd READ ended with {ename(rd.err) if rd.err else 'success'}"
             f" after {took:.1f} s, want EIO")
    if not timeout - 1 <= took <= timeout + 4:
        fail(f"the rbd READ failed after {took:.1f} s, want about {timeout} s")
    ok(f"the rbd READ failed with EIO after {took:.1f} s")
    for e in file_errors:
        print("  bad:", e, file=sys.stderr)
    if file_errors:
        fail("the file export did not keep serving")
    if len(lat) < 20:
        fail(f"only {len(lat)} file requests answered in {took:.1f} s")
    if max(lat) > 1.0:
        fail(f"a file request took {max(lat):.2f} s while the OSD was stopped")
    ok(f"the file export answered {len(lat)} requests meanwhile, "
       f"the slowest in {max(lat) * 1000:.0f} ms")

    check("SIGCONT: a new READ, then WRITE, FLUSH and READ on the rbd "
          "export succeed")
    t1 = time.monotonic()
    try:
        r.pread(65536, off)
        wdata = os.urandom(65536)
        woff = size - 4 * MiB
        r.pwrite(wdata, woff)
        r.flush()
        if r.pread(65536, woff) != wdata:
            fail("the rbd export reads back other data than was written")
    except nbd.Error as e:
        fail(f"after SIGCONT: {e} (errno {ename(e.errnum)}), "
             f"{time.monotonic() - t1:.1f} s after SIGCONT")
    ok(f"done in {time.monotonic() - t1:.1f} s")
    r.shutdown()
    f.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
