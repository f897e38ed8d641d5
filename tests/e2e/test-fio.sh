#!/usr/bin/env bash
# test-fio: fio's nbd engine, 4 connections of random read/write at queue
# depth 32, every block verified (crc32c).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"

start_server main --size 64M "$TMP/disk.img"

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

echo "test-fio: all checks passed"
