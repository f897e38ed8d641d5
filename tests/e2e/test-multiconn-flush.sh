#!/usr/bin/env bash
# test-multiconn-flush (R1): a FLUSH on one connection covers the writes
# completed on another (CAN_MULTI_CONN): it really runs a sync of the export,
# and the data is visible on every connection.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

# multiconn URI MODE: h1 writes and gets its reply, then h2 flushes.
#   MODE error: the flush must fail with EIO (the sync was injected to fail)
#   MODE delay: the flush must take at least 0.3 s (the sync was delayed)
#   MODE plain: the flush succeeds; both connections see the data
multiconn() {
	"$PY" - "$@" <<'PYEOF'
import errno
import sys
import time

from nbdtest import connect, expect_error, fail, ok

uri, mode = sys.argv[1], sys.argv[2]
h1, h2 = connect(uri), connect(uri)
if not h1.can_multi_conn():
    fail("CAN_MULTI_CONN not advertised")
data = bytes(range(256)) * 256
h1.pwrite(data, 65536)  # waits for the reply
if mode == "error":
    expect_error(errno.EIO, "flush on h2 after a write on h1", h2.flush)
elif mode == "delay":
    t0 = time.monotonic()
    h2.flush()
    took = time.monotonic() - t0
    if took < 0.3:
        fail(f"flush on h2 took {took:.3f} s: no sync ran for h1's write")
    ok(f"flush on h2 took {took:.3f} s (sync delayed 0.3 s)")
else:
    h2.flush()
    ok("flush on h2")
if h2.pread(len(data), 65536) != data:
    fail("h2 does not read h1's write")
ok("h2 reads h1's write")
if mode == "plain":
    h2.pwrite(data[::-1], 0, 1)  # FUA
    if h1.pread(len(data), 0) != data[::-1]:
        fail("h1 does not read h2's FUA write")
    ok("h1 reads h2's FUA write")
PYEOF
}

check "with the sync failing (error=EIO:sync*1), h2's flush fails with EIO"
start_server error --size 16M --inject 'error=EIO:sync*1' "$(disk "$TMP/error.img")"
multiconn "$uri" error || fail "flush on h2 did not sync h1's write"

check "with the sync delayed 300 ms, h2's flush waits for it"
start_server delay --size 16M --inject 'delay=300:sync*1' "$(disk "$TMP/delay.img")"
multiconn "$uri" delay || fail "flush on h2 did not wait for a sync"

check "without injection: h1's write is visible on h2 and back"
start_server plain --size 16M "$(disk "$TMP/plain.img")"
multiconn "$uri" plain || fail "multi-conn visibility"

echo "test-multiconn-flush: all checks passed"
