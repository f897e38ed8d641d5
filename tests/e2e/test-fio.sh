#!/usr/bin/env bash
# test-fio: fio's nbd engine, 4 connections of random read/write at queue
# depth 32, every block verified (crc32c); then 256 KiB requests with
# flushes on 4 connections served by 4 workers.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"

start_server main --size 64M "$(disk "$TMP/disk.img")"

# Each job (one connection each) owns a 16 MiB quarter of the 64 MiB
# export, so verification never sees another job's data.
check "fio randrw, bs=4k, iodepth=32, 4 jobs, verify=crc32c"
fio --name=loopd --ioengine=nbd --uri="$uri" --rw=randrw --bs=4k \
	--size=16M --offset_increment=16M --numjobs=4 --iodepth=32 \
	--verify=crc32c --do_verify=1 --verify_fatal=1 \
	--output-format=json --output="$TMP/fio.json" ||
	fail "fio exited $?: $(cat "$TMP/fio.json")"
"$PY" - "$TMP/fio.json" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

jobs = json.load(open(sys.argv[1]))["jobs"]
if len(jobs) != 4:
    fail(f"{len(jobs)} jobs reported, want 4")
for j in jobs:
    if j["error"] != 0:
        fail(f"job {j['jobname']} error {j['error']}")
    if j["write"]["io_bytes"] == 0 or j["read"]["io_bytes"] == 0:
        fail(f"job {j['jobname']} did no reads or no writes")
total = sum(j["write"]["io_bytes"] + j["read"]["io_bytes"] for j in jobs)
ok(f"4 jobs, err=0, {total >> 20} MiB moved and verified")
PYEOF

# The same 4 connections on 4 workers, with requests large enough to
# spread their I/O to other workers (E3 in engine/request.c) and flushes batched
# across connections: every request changes hands between threads through
# IORING_OP_MSG_RING, which is what the TSan build checks here.
start_server spread --queues 4 --size 64M "$(disk "$TMP/spread.img")"
check "fio randrw, bs=256k, iodepth=16, fsync every 8, 4 jobs on 4 workers"
fio --name=spread --ioengine=nbd --uri="$uri" --rw=randrw --bs=256k \
	--size=16M --offset_increment=16M --numjobs=4 --iodepth=16 \
	--fsync=8 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--output-format=terse >"$TMP/spread.out" ||
	fail "fio exited $?: $(cat "$TMP/spread.out")"
ok "4 jobs verified"

echo "test-fio: all checks passed"
