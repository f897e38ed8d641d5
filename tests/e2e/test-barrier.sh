#!/usr/bin/env bash
# test-barrier (R4): with --flush barrier a FLUSH holds every later request,
# on every connection, until its sync is done, and waits for every earlier
# request.  The companion runs with the default --flush sync, where neither
# happens (the documented difference).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

# later URI MODE: h1 sends a FLUSH whose sync is delayed 0.5 s; once the
# server has read it, h2 sends a WRITE to another range and a READ.
later() {
	"$PY" - "$@" <<'PYEOF'
import fcntl
import struct
import sys
import termios
import time

import nbd

from nbdtest import aio, aio_write, connect, fail, ok, poll_until

uri, mode = sys.argv[1], sys.argv[2]
MiB = 1 << 20
h1, h2 = connect(uri), connect(uri)


def unread(h):
    """Bytes sent on h's Unix socket that the server has not read yet."""
    buf = fcntl.ioctl(h.aio_get_fd(), termios.TIOCOUTQ, b"\0" * 4)
    return struct.unpack("i", buf)[0]


h1.pwrite(b"\x01" * 65536, 0)  # something for the flush to sync
t_flush = time.monotonic()
f = aio("flush", h1.aio_flush)
# Readiness, bounded: wait until the server has read the FLUSH request.
deadline = time.monotonic() + 5
while unread(h1) > 0:
    if time.monotonic() > deadline:
        fail("the server did not read the FLUSH within 5 s")
    h1.poll(1)
t_sent = time.monotonic()
w = aio_write(h2, "write", b"\x02" * 65536, 4 * MiB)
r = aio("read", h2.aio_pread, 8 * MiB, buf=nbd.Buffer(65536))
ops = (f, w, r)
poll_until([h1, h2], lambda: all(o.done for o in ops), 10, "all replies")
for o in ops:
    if o.err != 0:
        fail(f"{o.name} failed with errno {o.err}")
    print(f"  {o.name} replied after {o.done - t_sent:.3f} s")
if f.done - t_flush < 0.5:
    fail(f"flush took {f.done - t_flush:.3f} s, less than its 0.5 s sync")
if mode == "barrier":
    for o in (w, r):
        if o.done - t_sent < 0.4:
            fail(f"{o.name} on h2 replied {o.done - t_sent:.3f} s after "
                 "it was sent, while the earlier FLUSH was still syncing")
    ok("the write and read on h2 waited for the flush")
else:
    for o in (w, r):
        if o.done - t_sent > 0.4 or o.done > f.done:
            fail(f"{o.name} on h2 was held by the FLUSH in sync mode")
    ok("the write and read on h2 completed before the flush")
PYEOF
}

# earlier URI MODE: h1 sends a WRITE delayed 0.5 s, then a FLUSH.
earlier() {
	"$PY" - "$@" <<'PYEOF'
import sys

from nbdtest import aio, aio_write, connect, fail, ok, poll_until

uri, mode = sys.argv[1], sys.argv[2]
h = connect(uri)
w = aio_write(h, "write", b"\x03" * 65536, 0)
f = aio("flush", h.aio_flush)
poll_until([h], lambda: w.done and f.done, 10, "both replies")
if w.err or f.err:
    fail(f"write errno {w.err}, flush errno {f.err}")
# One connection: callbacks run in reply order.
if mode == "barrier" and f.done < w.done:
    fail("the flush replied before the earlier (delayed) write")
if mode == "sync" and f.done > w.done:
    fail("the flush waited for a write that had not replied (sync mode)")
ok(f"flush replied {'after' if f.done > w.done else 'before'} the write")
PYEOF
}

check "--flush barrier: later requests on another connection wait"
start_server b1 --flush barrier --size 16M -q 1 \
	--inject 'delay=500:sync*1' "$(disk "$TMP/b1.img")"
later "$uri" barrier || fail "barrier did not hold later requests"

check "--flush barrier: the flush waits for earlier requests"
start_server b2 --flush barrier --size 16M --inject 'delay=500:write*1' \
	"$(disk "$TMP/b2.img")"
earlier "$uri" barrier || fail "barrier did not wait for earlier requests"

check "--flush sync (default): later requests are not held (documented)"
start_server s1 --size 16M -q 1 --inject 'delay=500:sync*1' "$(disk "$TMP/s1.img")"
later "$uri" sync || fail "sync mode held later requests"

check "--flush sync (default): the flush does not wait for unreplied writes"
start_server s2 --size 16M --inject 'delay=500:write*1' "$(disk "$TMP/s2.img")"
earlier "$uri" sync || fail "sync mode waited for an unreplied write"

echo "test-barrier: all checks passed"
