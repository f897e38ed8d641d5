#!/usr/bin/env bash
# test-signals: SIGTERM with a write in flight lets the write finish and be
# acknowledged, then exits 0 with every acknowledged write in the file;
# SIGINT on an idle server exits 0; a daemon stops on SIGTERM.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

check "SIGTERM with a write in flight: it completes, exit status 0"
# Writes to 8M..9M are delayed by 1 s, so one is in flight at the signal.
start_fg term --size 16M --inject 'delay=1000:write@8M-9M' "$TMP/disk.img"
"$PY" - "$uri" "$fg_pid" "$TMP/acked.json" <<'PYEOF'
import json
import os
import signal
import sys

from nbdtest import aio_write, connect, fail, ok, poll_until

uri, server, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MiB = 1 << 20
h = connect(uri)
acked = []  # (offset, length, byte)

h.pwrite(b"\x0a" * MiB, 0)
acked.append((0, MiB, 0x0a))
w1 = aio_write(h, "w1", b"\x0b" * MiB, 8 * MiB)
# The reply to a later request on the same connection proves that the
# server has read w1 (it reads each connection in order).
h.pwrite(b"\x0c" * MiB, 2 * MiB)
acked.append((2 * MiB, MiB, 0x0c))
if w1.done is not None:
    fail("precondition: w1 (delayed 1 s) already replied")
os.kill(server, signal.SIGTERM)
ok("SIGTERM sent with w1 in flight")
poll_until([h], lambda: w1.done is not None, 10, "w1's reply")
if w1.err != 0:
    fail(f"w1 failed with errno {w1.err} after SIGTERM")
acked.append((8 * MiB, MiB, 0x0b))
ok("the in-flight write completed successfully")
json.dump(acked, open(out, "w"))
PYEOF
exit_status "$fg_pid"
((status == 0)) || fail "server exited with status $status after SIGTERM"
ok "exit status 0"
"$PY" - "$TMP/disk.img" "$TMP/acked.json" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

data = open(sys.argv[1], "rb").read()
for off, length, byte in json.load(open(sys.argv[2])):
    if data[off:off + length] != bytes([byte]) * length:
        fail(f"acknowledged write [{off}, +{length}) is not in the file")
ok("every acknowledged write is in the file")
PYEOF

check "SIGINT on an idle server: exit status 0"
start_fg int --size 1M "$TMP/idle.img"
kill -INT "$fg_pid"
exit_status "$fg_pid"
((status == 0)) || fail "server exited with status $status after SIGINT"
ok "exit status 0"

check "a daemonised server exits on SIGTERM"
start_server daemon --size 1M "$TMP/daemon.img"
kill -TERM "$pid"
wait_exit "$pid" || fail "daemon $pid still running 10 s after SIGTERM"
ok "daemon $pid exited"

echo "test-signals: all checks passed"
