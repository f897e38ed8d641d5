#!/usr/bin/env bash
# test-nbdinfo: what nbdinfo sees: flags, block sizes, contexts, the export
# list and the allocation map.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo nbdsh

start_server main --size 64M "$TMP/disk.img"

check "nbdinfo --json: size, flags, block sizes, description, contexts"
nbdinfo --json "$uri" >"$TMP/info.json"
"$PY" - "$TMP/info.json" "$TMP/disk.img" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

info = json.load(open(sys.argv[1]))
exp = info["exports"][0] if info.get("exports") else None
if exp is None:
    fail(f"no default export in {info}")
want = {
    "export-size": 64 << 20, "is_read_only": False, "can_flush": True,
    "can_fua": True, "can_multi_conn": True, "can_trim": True,
    "can_zero": True, "can_fast_zero": True, "can_cache": True,
}
for key, value in want.items():
    if exp.get(key) != value:
        fail(f"{key} is {exp.get(key)!r}, want {value!r}")
ok(", ".join(f"{k}={v}" for k, v in want.items()))
for key in ("block_size_minimum", "block_size_preferred",
            "block_size_maximum"):
    if key not in exp:
        fail(f"{key} missing")
bmin, pref, bmax = (exp["block_size_minimum"], exp["block_size_preferred"],
                    exp["block_size_maximum"])
if bmax != 67108864:
    fail(f"block_size_maximum {bmax}, want 67108864")
if pref != 4096:
    fail(f"block_size_preferred {pref}, want 4096")
if bmin < 1 or bmin > 65536 or bmin & (bmin - 1):
    fail(f"block_size_minimum {bmin} is not a power of two <= 64 KiB")
ok(f"block sizes {bmin}/{pref}/{bmax}")
if "base:allocation" not in exp.get("contexts", []):
    fail(f"contexts {exp.get('contexts')} lack base:allocation")
ok("base:allocation offered")
if exp.get("description") != sys.argv[2]:
    fail(f"description {exp.get('description')!r}, want {sys.argv[2]!r}")
ok("description is the file path")
PYEOF

check "nbdinfo --list shows every export"
start_server list --size 1M "$TMP/a.img" "b=$TMP/other.img"
nbdinfo --list --json "$uri" >"$TMP/list.json"
"$PY" - "$TMP/list.json" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

names = [e["export-name"] for e in json.load(open(sys.argv[1]))["exports"]]
for name in ("a.img", "b"):
    if name not in names:
        fail(f"export {name!r} not listed: {names}")
ok(f"listed {names}")
PYEOF

check "nbdinfo --map: data where 1 MiB was written at 4 MiB, holes elsewhere"
start_server map --size 16M "$TMP/sparse.img"
nbdsh -u "$uri" -c 'h.pwrite(b"\x5a" * (1 << 20), 4 << 20)'
nbdinfo --map --json "$uri" >"$TMP/map.json"
nbdinfo --map "$uri"
"$PY" - "$TMP/map.json" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

MiB = 1 << 20
extents = json.load(open(sys.argv[1]))
pos = 0
for e in extents:
    lo, hi, kind = e["offset"], e["offset"] + e["length"], e["type"]
    if lo != pos:
        fail(f"extent at {lo}, want {pos}: {extents}")
    pos = hi
    written = lo < 5 * MiB and hi > 4 * MiB
    if written and kind & 1:
        fail(f"[{lo}, {hi}) is reported as a hole but overlaps written data")
    if not written and kind != 3:
        fail(f"[{lo}, {hi}) type {kind}: want hole,zero (3) outside 4M..5M")
    if not kind & 1 and (lo < 4 * MiB or hi > 5 * MiB):
        fail(f"[{lo}, {hi}) is data beyond the written 4M..5M")
if pos != 16 * MiB:
    fail(f"map ends at {pos}, want {16 * MiB}")
ok("data exactly at 4M..5M, hole,zero elsewhere")
PYEOF

echo "test-nbdinfo: all checks passed"
