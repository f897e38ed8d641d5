#!/usr/bin/env bash
# test-rbd-clients: an RBD image served by loopd (rbd:POOL/IMAGE), driven
# by real clients:
#   - nbdinfo: the flags (flush, fua, trim, zero, fast_zero, multi-conn),
#     base:allocation (block status), minimum block 1, preferred block =
#     the image's object size;
#   - qemu-img convert of 64 MiB of random data into the export, then
#     qemu-img compare against the source (the rest of the fresh image
#     must read as zeroes);
#   - nbdcopy with 4 connections, there and back, cmp;
#   - fio's nbd engine, randrw at queue depth 32 on 4 connections, every
#     block verified (crc32c);
#   - nbdinfo --map: holes (whole objects) on an image with fast-diff,
#     right after a write that has not been flushed, and no hole at all
#     without fast-diff;
#   - a file export and an rbd export served side by side by one loopd,
#     written at the same time, each keeping its own data;
# and after each server stops, "rbd export" shows that the data reached
# the cluster (the stop flushes every export).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo nbdsh qemu-img nbdcopy fio cmp
ceph_requires
engines=$(fio --enghelp 2>/dev/null) || true
grep -qw nbd <<<"$engines" || skip "fio has no nbd engine"

MiB=$((1 << 20))

# exported IMAGE FILE: the image's contents, read from the cluster by rbd.
exported() {
	rm -f "$2"
	rbd_cli export --no-progress "$1" "$2" >/dev/null 2>"$TMP/export.err" ||
		fail "rbd export $1: $(cat "$TMP/export.err")"
}

rbd_image clients 128M
img=$rbd_img
start_server rbd --ceph-conf "$LOOPD_CEPH_CONF" "rbd:$img"

check "nbdinfo --json: size, flags, block status, block sizes"
obj=$(rbd_cli info --format json "$img" |
	"$PY" -c 'import json, sys; print(json.load(sys.stdin)["object_size"])')
nbdinfo --json "$uri" >"$TMP/info.json"
"$PY" - "$TMP/info.json" "$obj" "${img#*/}" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

info = json.load(open(sys.argv[1]))
obj = int(sys.argv[2])
exps = info.get("exports") or []
if not exps:
    fail(f"no default export in {info}")
exp = exps[0]
want = {
    "export-size": 128 << 20, "is_read_only": False, "can_flush": True,
    "can_fua": True, "can_multi_conn": True, "can_trim": True,
    "can_zero": True, "can_fast_zero": True,
}
for key, value in want.items():
    if exp.get(key) != value:
        fail(f"{key} is {exp.get(key)!r}, want {value!r}")
ok(", ".join(f"{k}={v}" for k, v in want.items()))
if "base:allocation" not in exp.get("contexts", []):
    fail(f"contexts {exp.get('contexts')} lack base:allocation")
ok("base:allocation offered (block status)")
bmin = exp.get("block_size_minimum")
pref = exp.get("block_size_preferred")
bmax = exp.get("block_size_maximum")
if bmin != 1:
    fail(f"block_size_minimum {bmin}, want 1")
if pref != obj:
    fail(f"block_size_preferred {pref}, want the object size {obj}")
if bmax is None or bmax < pref:
    fail(f"block_size_maximum {bmax} is below the preferred {pref}")
ok(f"block sizes {bmin}/{pref}/{bmax} (object size {obj})")
PYEOF

check "qemu-img convert 64 MiB into the export; qemu-img compare"
random_file "$TMP/src.raw" 64
qemu-img convert -n -f raw -O raw "$TMP/src.raw" "$uri" ||
	fail "qemu-img convert into the export failed"
# The sizes differ: compare also requires the last 64 MiB to read as zero.
qemu-img compare -f raw -F raw "$TMP/src.raw" "$uri" >"$TMP/compare.out" ||
	fail "qemu-img compare: $(cat "$TMP/compare.out")"
ok "$(tail -n 1 "$TMP/compare.out") (the rest reads as zeroes)"

check "nbdcopy --connections=4: 128 MiB there and back"
random_file "$TMP/full.raw" 128
nbdcopy --connections=4 --flush "$TMP/full.raw" "$uri" ||
	fail "nbdcopy into the export failed"
nbdcopy --connections=4 "$uri" "$TMP/back.raw" ||
	fail "nbdcopy from the export failed"
cmp "$TMP/full.raw" "$TMP/back.raw" || fail "nbdcopy: the data read back differs"
ok "128 MiB identical through the export"

check "fio --ioengine=nbd randrw, bs=4k, iodepth=32, 4 jobs, verify=crc32c"
# Each job (one connection) owns a 16 MiB quarter of the first 64 MiB.
fio --name=rbd --ioengine=nbd --uri="$uri" --rw=randrw --bs=4k \
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
iops = sum(j["write"]["iops"] + j["read"]["iops"] for j in jobs)
ok(f"4 jobs, err=0, {total >> 20} MiB moved and verified, {iops:.0f} IOPS")
PYEOF
# What fio wrote last is the reference for the image after the stop.
nbdcopy "$uri" "$TMP/last.raw" || fail "nbdcopy from the export failed"

check "after the server stops, rbd export holds what the clients wrote"
stop_server "$pid"
exported "$img" "$TMP/exported.raw"
cmp "$TMP/last.raw" "$TMP/exported.raw" ||
	fail "the image in the cluster differs from what was read through loopd"
cmp -n $((64 * MiB)) -i $((64 * MiB)) "$TMP/full.raw" "$TMP/exported.raw" ||
	fail "the image's upper 64 MiB differ from what nbdcopy wrote"
ok "the cluster's copy matches"

# map_check MAP.json MODE: the allocation map after 1 MiB was written at
# 9 MiB of a 64 MiB image (inside the object [8M, 12M)).  MODE "holes":
# data where the write went, and holes outside its object; "data": no
# hole anywhere.
map_check() {
	"$PY" - "$1" "$2" "$obj" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

MiB = 1 << 20
extents = json.load(open(sys.argv[1]))
mode, obj = sys.argv[2], int(sys.argv[3])
pos, data = 0, 0
for e in extents:
    lo, hi, kind = e["offset"], e["offset"] + e["length"], e["type"]
    if lo != pos:
        fail(f"extent at {lo}, want {pos}: {extents}")
    pos = hi
    if kind & 1:
        if mode == "data":
            fail(f"[{lo}, {hi}) is reported as a hole without fast-diff")
        if lo < 10 * MiB and hi > 9 * MiB:
            fail(f"[{lo}, {hi}) is a hole but overlaps the write at 9M..10M")
    else:
        data += hi - lo
        if mode == "holes" and (lo < 8 * MiB or hi > 8 * MiB + obj):
            fail(f"[{lo}, {hi}) is data outside the written object")
if pos != 64 * MiB:
    fail(f"map ends at {pos}, want {64 * MiB}")
ok(f"{len(extents)} extents, {data >> 20} MiB data" +
   (", holes outside the written object" if mode == "holes" else ""))
PYEOF
}

check "nbdinfo --map: holes from the object map (fast-diff), no flush needed"
rbd_image map 64M layering,exclusive-lock,object-map,fast-diff
start_server map --ceph-conf "$LOOPD_CEPH_CONF" "rbd:$rbd_img"
nbdsh -u "$uri" -c 'h.pwrite(b"\x5a" * (1 << 20), 9 << 20)'
nbdinfo --map --json "$uri" >"$TMP/map.json"
map_check "$TMP/map.json" holes
stop_server "$pid"

check "nbdinfo --map: without fast-diff, all data (never a hole)"
rbd_image nomap 64M
start_server nomap --ceph-conf "$LOOPD_CEPH_CONF" "rbd:$rbd_img"
nbdsh -u "$uri" -c 'h.pwrite(b"\x5a" * (1 << 20), 9 << 20)'
nbdinfo --map --json "$uri" >"$TMP/nomap.json"
map_check "$TMP/nomap.json" data
stop_server "$pid"

check "a file export and an rbd export side by side in one loopd"
rbd_image side 32M
side=$rbd_img
truncate -s 32M "$TMP/side.img"
start_server both --ceph-conf "$LOOPD_CEPH_CONF" "rbd:$side" \
	"file=$TMP/side.img"
rbd_uri=$(export_uri "${side#*/}" "$socket")
file_uri=$(export_uri file "$socket")
nbdinfo --list --json "$uri" >"$TMP/list.json"
"$PY" - "$TMP/list.json" "${side#*/}" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

names = [e["export-name"] for e in json.load(open(sys.argv[1]))["exports"]]
for name in (sys.argv[2], "file"):
    if name not in names:
        fail(f"export {name!r} not listed: {names}")
ok(f"listed {names}")
PYEOF
random_file "$TMP/a.raw" 32
random_file "$TMP/b.raw" 32
# Both copies at once, 4 connections each: the two backends serve
# concurrently on the same workers.
nbdcopy --connections=4 --flush "$TMP/a.raw" "$rbd_uri" &
copy_a=$!
nbdcopy --connections=4 --flush "$TMP/b.raw" "$file_uri" ||
	fail "nbdcopy into the file export failed"
wait "$copy_a" || fail "nbdcopy into the rbd export failed"
nbdcopy "$rbd_uri" "$TMP/a.back" || fail "nbdcopy from the rbd export failed"
nbdcopy "$file_uri" "$TMP/b.back" || fail "nbdcopy from the file export failed"
cmp "$TMP/a.raw" "$TMP/a.back" || fail "the rbd export reads back other data"
cmp "$TMP/b.raw" "$TMP/b.back" || fail "the file export reads back other data"
ok "each export reads back its own 32 MiB"
stop_server "$pid"
cmp "$TMP/b.raw" "$TMP/side.img" || fail "the file does not hold its data"
exported "$side" "$TMP/side.exported"
cmp "$TMP/a.raw" "$TMP/side.exported" || fail "the image does not hold its data"
ok "after the stop: the file and the image each hold their own data"

echo "test-rbd-clients: all checks passed"
