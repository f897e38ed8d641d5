#!/usr/bin/env bash
# test-blockdev: a block device as the export (F3, Z1, Z6).
#
# The device is a loop device on an nbdfuse file served by a second loopd
# whose syncs are delayed by 1.5 s, so that a flush of the device is slow
# and the test can see who waits for it.
#   - Served with --cache=buffered, the device is not taken for tmpfs (its
#     node lives on devtmpfs): a FLUSH's fdatasync goes through io_uring,
#     and a read on another connection of the same worker is answered
#     while the flush waits (before the fix, the sync ran inline on the
#     worker and the read waited for it).
#   - The minimum block size advertised is the device's logical block
#     size; an unaligned WRITE_ZEROES (fallocate refuses it: EINVAL) falls
#     back to writing zeroes, and an unaligned TRIM acts on the whole
#     blocks inside it.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires

check "a loop device whose flushes take 1.5 s"
start_server slow -v --size 64M --inject 'delay=1500:sync' "$TMP/slow.img"
fuse_attach "$TMP/fuse" "$uri"
loop_attach
ok "$loopdev on nbdfuse on a loopd with delayed syncs"

start_server bdev --queues 1 --cache buffered "$loopdev"
grep -q "serving $loopdev (64.0 MiB, buffered) " "$TMP/bdev.log" ||
	fail "not served as a buffered device: $(grep serving "$TMP/bdev.log")"
ok "$(grep serving "$TMP/bdev.log" | sed 's/^loopd: //')"

"$PY" - "$uri" "$TMP/slow.log" <<'PYEOF'
import errno
import sys
import time

import nbd

from nbdtest import aio, check, connect, fail, ok, poll_until

uri, inner_log = sys.argv[1], sys.argv[2]


def inner(what):
    """FLUSHes the inner loopd has received / replied to (its -v log)."""
    with open(inner_log) as f:
        return sum(1 for line in f
                   if ("recv FLUSH" if what == "recv" else "FLUSH cookie=")
                   in line and (what == "recv" or " -> " in line))


check("a read is answered while another connection's FLUSH syncs")
h1, h2 = connect(uri), connect(uri)
h1.pwrite(b"\x5a" * 4096, 0)
before = inner("recv")
replied = inner("reply")
f = aio("flush", h1.aio_flush)
deadline = time.monotonic() + 10
while inner("recv") == before:  # the device's flush reached the inner loopd
    if time.monotonic() > deadline:
        fail("the flush never reached the device")
    h1.poll(10)
r = aio("read", h2.aio_pread, 0, buf=nbd.Buffer(4096))
poll_until([h2], lambda: r.done is not None, 10, "the read")
# The device's flush is held 1.5 s by the inner loopd: if it was already
# answered, the read waited for the sync (it ran on the worker).
if inner("reply") != replied:
    fail("the read was answered only after the device's flush: the worker "
         "waited for the sync")
ok("the read was answered while the device's flush was still held")
poll_until([h1, h2], lambda: f.done is not None, 10, "the flush")
if f.err or r.err:
    fail(f"flush errno {f.err}, read errno {r.err}")
ok("the flush completed")

check("block sizes and unaligned zeroing on a block device")
h3 = connect(uri, strict=False)
if h3.get_block_size(nbd.SIZE_MINIMUM) != 512:
    fail(f"minimum block size {h3.get_block_size(nbd.SIZE_MINIMUM)}, "
         "want the device's 512")
ok("minimum block size 512, the device's logical block size")
h3.pwrite(b"\x77" * 8192, 65536)
h3.zero(1000, 65536 + 100)   # unaligned: fallocate says EINVAL
want = b"\x77" * 100 + bytes(1000) + b"\x77" * (8192 - 1100)
if h3.pread(8192, 65536) != want:
    fail("an unaligned WRITE_ZEROES did not zero exactly its range")
ok("an unaligned WRITE_ZEROES zeroed exactly its range")
h3.trim(2000, 65536 + 1000)  # whole blocks inside: 66048..67584
got = h3.pread(8192, 65536)
if got[:1000] != want[:1000] or got[1536 + 2048:] != want[1536 + 2048:]:
    fail("an unaligned TRIM changed bytes outside its whole blocks")
ok("an unaligned TRIM left the partial blocks at its edges alone")
for h in (h1, h2, h3):
    h.shutdown()
PYEOF

stop_server "$pid"

check "a device's checkpoints stay in memory: no file beside it in /dev (W7)"
start_server bdev2 --control "$TMP/bdev2.ctl" "$loopdev"
"$LOOPD" ctl "$TMP/bdev2.ctl" checkpoint c1 || fail "checkpoint c1"
stop_server "$pid"
[[ ! -e $loopdev.checkpoints ]] || {
	rm -f "$loopdev.checkpoints"
	fail "$loopdev.checkpoints was made"
}
ok "no $loopdev.checkpoints"
echo "test-blockdev: all checks passed"
