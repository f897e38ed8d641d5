#!/usr/bin/env bash
# test-nbdcopy: 256 MiB round trip with nbdcopy (multi-conn, pipelined,
# zero and block-status aware).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdcopy

random_file "$TMP/src.img" 256
start_server main --size 256M "$TMP/disk.img"

check "nbdcopy --flush to the export, nbdcopy back, cmp"
nbdcopy --flush "$TMP/src.img" "$uri"
nbdcopy "$uri" "$TMP/dst.img"
cmp "$TMP/src.img" "$TMP/dst.img" || fail "copied data differs"
ok "256 MiB identical through the export"

check "the backing file holds the data after the server stops"
stop_server "$pid"
cmp "$TMP/src.img" "$TMP/disk.img" || fail "backing file differs"
ok "backing file identical"

echo "test-nbdcopy: all checks passed"
