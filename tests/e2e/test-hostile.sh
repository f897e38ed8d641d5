#!/usr/bin/env bash
# test-hostile: raw-socket negative tests (issue 6, "Bad clients"): bad
# magic, truncated and split headers, unknown commands and flags,
# out-of-range and oversize requests, handshake abuse, garbage after DISC,
# payloads cut short and 1000 dropped connections, while a well-behaved
# libnbd client keeps verifying its data.  See tests/e2e/test_hostile.py.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

# A real filesystem: the default cache's page-cache paths (F6).
real_fs_dir

check "a server on a Unix socket, 128 MiB export"
start_server hostile --size 128M "$(disk "$dir/disk.img")"
ok "server $pid on $socket"

"$PY" "$SRCDIR/tests/e2e/test_hostile.py" "$uri" "$socket" "$pid"

check "the server is still running"
proc_running "$pid" || fail "server $pid exited during the test"
ok "server $pid is running"

echo "test-hostile: all checks passed"
