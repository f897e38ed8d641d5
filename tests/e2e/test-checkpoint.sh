#!/usr/bin/env bash
# test-checkpoint: changed-block tracking, seen by real clients.
#   - `loopd ctl PATH checkpoint NAME` makes a checkpoint; the WRITEs
#     (unaligned ones too), TRIM and WRITE_ZEROES after it mark exactly the
#     64 KiB granules they touch, and nothing written before it (Q9, W1,
#     W2 in engine/dirty.c);
#   - nbdinfo --map=qemu:dirty-bitmap:NAME shows that map; nbdinfo and
#     LIST_META_CONTEXT list the context, "qemu:" and "qemu:dirty-bitmap:"
#     being wildcards (H6); qemu-img map through qemu's NBD client with
#     x-dirty-bitmap agrees (a dirty extent is "data": false there);
#   - both contexts at once: a chunk for each, REQ_ONE one extent each,
#     unaligned requests answered from their offset (P1, P2, E10); the
#     dirty bitmap alone never reaches the backend: a BLOCK_STATUS error
#     injected there does not touch it (E10);
#   - a second checkpoint sees only the later writes; one SET selects at
#     most one checkpoint (H6);
#   - a deleted checkpoint leaves the list and cannot be selected, while a
#     connection that had selected it reads it on (H10, W4);
#   - misuse is one line on stderr and exit 1 (the server's refusal) or 2
#     (usage), and the server serves on (Q8, Q9); so is a checkpoint file
#     that cannot be written; a read-only export has no checkpoints;
#   - a clean restart keeps the maps; after kill -9 every map comes back
#     wholly dirty (W7, W8); --checkpoint-granularity sets the granule.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo nbdsh qemu-img
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

MiB=$((1 << 20))
SIZE=$((16 * MiB))
G=65536 # the default granularity
ctl=$TMP/ck.ctl

ck() {
	timeout 30 "$LOOPD" ctl "$ctl" "$@"
}

# dirty_map NAME WHAT GRANULE...: nbdinfo's map of checkpoint NAME has
# exactly these granules dirty.
dirty_map() {
	local name=$1 what=$2
	shift 2
	nbdinfo --map="qemu:dirty-bitmap:$name" --json "$uri" >"$TMP/map.json"
	"$PY" -m test_checkpoint nbdinfo "$TMP/map.json" "$SIZE" "$G" \
		"$what" "$@"
}

# qemu_map NAME WHAT GRANULE...: the same through qemu's NBD client.
qemu_map() {
	local name=$1 what=$2
	shift 2
	timeout 60 qemu-img map --output=json --image-opts \
		"driver=nbd,server.type=unix,server.path=$socket,x-dirty-bitmap=qemu:dirty-bitmap:$name" \
		>"$TMP/qmap.json"
	"$PY" -m test_checkpoint qemu "$TMP/qmap.json" "$SIZE" "$G" \
		"$what" "$@"
}

check "W7: serving a file without checkpoints leaves no file beside it"
start_server plain --size 1M "$TMP/plain.img"
nbdsh -u "$uri" -c "h.pwrite(b'p' * 4096, 0); h.flush()"
stop_server "$pid"
[[ ! -e $TMP/plain.img.checkpoints ]] ||
	fail "plain.img.checkpoints was made: $(ls -l "$TMP/plain.img.checkpoints")"
ok "no plain.img.checkpoints"

start_server main --size 16M --control "$ctl" "$TMP/disk.img"

check "writes before a checkpoint are not in it (Q9)"
nbdsh -u "$uri" -c "h.pwrite(b'\\x11' * $MiB, 0); h.pwrite(b'\\x22' * $MiB, $((8 * MiB)))"
ck checkpoints >"$TMP/list"
[[ ! -s $TMP/list ]] || fail "checkpoints before any: $(cat "$TMP/list")"
ck checkpoint c1 || fail "checkpoint c1"
[[ $(ck checkpoints) == "c1 0" ]] || fail "checkpoints: $(ck checkpoints)"
dirty_map c1 "c1 before any write"
ok "c1 made, wholly clean"

check "a write, unaligned writes, a TRIM and a WRITE_ZEROES mark their granules (W2)"
# granule 16; 48 and 49 (100 bytes across their boundary); 80 (1 byte);
# 96 and 97 (a 128 KiB TRIM); 161 (an unaligned 4 KiB WRITE_ZEROES); 255
# (the export's last byte).
nbdsh -u "$uri" -c "
h.pwrite(b'\\x33' * 4096, $MiB)
h.pwrite(b'\\x44' * 100, $((3 * MiB + 65530)))
h.pwrite(b'\\x55', $((5 * MiB + 12345)))
h.trim(131072, $((6 * MiB)))
h.zero(4096, $((10 * MiB + 100000)))
h.pwrite(b'\\x66', $((SIZE - 1)))
h.flush()
"
c1=(16 48 49 80 96 97 161 255)
dirty_map c1 "nbdinfo --map=qemu:dirty-bitmap:c1" "${c1[@]}"
[[ $(ck checkpoints) == "c1 $((8 * G))" ]] ||
	fail "checkpoints: $(ck checkpoints), want c1 $((8 * G))"
ok "loopd ctl checkpoints: c1 $((8 * G))"
nbdinfo --map "$uri" >/dev/null || fail "base:allocation's map"
ok "base:allocation is still answered"

check "qemu's NBD client with x-dirty-bitmap agrees"
qemu_map c1 "qemu-img map, x-dirty-bitmap=qemu:dirty-bitmap:c1" "${c1[@]}"

check "the contexts are listed: nbdinfo and LIST_META_CONTEXT (H6)"
nbdinfo --json "$uri" >"$TMP/info.json"
nbdinfo --list --content "$uri" >"$TMP/list.txt"
grep -q 'qemu:dirty-bitmap:c1' "$TMP/list.txt" ||
	fail "nbdinfo --list --content: $(cat "$TMP/list.txt")"
"$PY" - "$TMP/info.json" "$uri" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok
from test_checkpoint import listed

info = json.load(open(sys.argv[1]))
ctx = info["exports"][0].get("contexts", [])
if ctx != ["base:allocation", "qemu:dirty-bitmap:c1"]:
    fail(f"nbdinfo --json contexts {ctx}")
ok(f"nbdinfo: {ctx}")
uri = sys.argv[2]
cases = [
    ([], ["base:allocation", "qemu:dirty-bitmap:c1"]),
    (["qemu:"], ["qemu:dirty-bitmap:c1"]),
    (["qemu:dirty-bitmap:"], ["qemu:dirty-bitmap:c1"]),
    (["base:"], ["base:allocation"]),
    (["qemu:dirty-bitmap:c1"], ["qemu:dirty-bitmap:c1"]),
    (["qemu:dirty-bitmap:c1", "qemu:", "base:allocation"],
     ["base:allocation", "qemu:dirty-bitmap:c1"]),
    (["qemu:dirty-bitmap:nope", "qemu:allocation-depth", "x-foo:"], []),
]
for queries, want in cases:
    got = listed(uri, queries)
    if got != want:
        fail(f"LIST {queries}: {got}, want {want}")
    ok(f"LIST {queries} -> {got}")
PYEOF

check "both contexts at once, REQ_ONE, unaligned requests (P1, P2, E10)"
"$PY" - "$uri" "$SIZE" "$G" "${c1[@]}" <<'PYEOF'
import sys

import nbd

from nbdtest import fail, ok
from test_checkpoint import as_dirty, expect, handle, status

uri, size, gran = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
want = [int(g) for g in sys.argv[4:]]
A, D = "base:allocation", "qemu:dirty-bitmap:c1"
MiB = 1 << 20

h = handle(uri, [A, D])
if not (h.can_meta_context(A) and h.can_meta_context(D)):
    fail("both contexts asked for, not both selected")
got, calls = status(h, size)
if calls != {A: 1, D: 1}:
    fail(f"chunks per context {calls}, want one each")
expect(as_dirty(got[D]), size, gran, want, "both selected: the dirty chunk")
# base:allocation: data where written, holes elsewhere (the file is sparse).
data = [(o, n) for o, n, f in got[A] if not f & 1]
if not any(o <= 8 * MiB < o + n for o, n in data):
    fail(f"base:allocation shows no data at 8 MiB: {got[A]}")
ok(f"both selected: base:allocation's chunk too ({len(got[A])} extents)")

got, calls = status(h, size, flags=nbd.CMD_FLAG_REQ_ONE)
if calls != {A: 1, D: 1} or len(got[A]) != 1 or len(got[D]) != 1:
    fail(f"REQ_ONE: {got}")
if got[D][0] != (0, 16 * gran, 0):
    fail(f"REQ_ONE: dirty extent {got[D][0]}, want 16 clean granules")
ok(f"REQ_ONE: one extent each: {got[A][0]}, {got[D][0]}")

# From an unaligned offset inside dirty granule 16: its rest, then clean.
off = MiB + 100
got, _ = status(h, 200000, offset=off)
if got[D] != [(off, gran - 100, 1), (MiB + gran, 200000 - gran + 100, 0)]:
    fail(f"unaligned request: {got[D]}")
ok(f"unaligned request: {got[D]}")
h.shutdown()

h = handle(uri, [D])
if h.can_meta_context(A) or not h.can_meta_context(D):
    fail("only the dirty bitmap asked for")
got, calls = status(h, size)
if calls != {D: 1}:
    fail(f"the dirty bitmap alone: chunks {calls}")
expect(as_dirty(got[D]), size, gran, want, "the dirty bitmap alone")
h.shutdown()
PYEOF

check "the dirty bitmap alone never reaches the backend (E10)"
start_server inj --size 1M --control "$TMP/inj.ctl" \
	--inject error=EIO:status "$TMP/inj.img"
"$LOOPD" ctl "$TMP/inj.ctl" checkpoint x || fail "checkpoint x"
"$PY" - "$uri" <<'PYEOF'
import errno
import sys

from nbdtest import expect_error, fail, ok
from test_checkpoint import handle, status

uri = sys.argv[1]
D = "qemu:dirty-bitmap:x"
h = handle(uri, [D])
got, _ = status(h, 1 << 20)
if got[D] != [(0, 1 << 20, 0)]:
    fail(f"the dirty bitmap alone: {got}")
ok("the dirty bitmap alone: answered, the injected EIO not reached")
for ctx in (["base:allocation"], ["base:allocation", D]):
    h = handle(uri, ctx)
    expect_error(errno.EIO, f"BLOCK_STATUS with {ctx}", status, h, 1 << 20)
PYEOF
stop_server "$pid"
pid=$(<"$TMP/main.pid") socket=$TMP/main.sock uri="nbd+unix:///?socket=$socket"

check "a second checkpoint sees only later writes"
ck checkpoint c2 || fail "checkpoint c2"
nbdsh -u "$uri" -c "h.pwrite(b'\\x77' * 4096, $((12 * MiB)))"
dirty_map c2 "c2" 192
dirty_map c1 "c1, after c2" "${c1[@]}" 192
qemu_map c2 "qemu-img map, c2" 192
printf 'c1 %d\nc2 %d\n' $((9 * G)) "$G" >"$TMP/want"
ck checkpoints >"$TMP/list"
cmp -s "$TMP/want" "$TMP/list" || fail "checkpoints: $(cat "$TMP/list")"
ok "checkpoints: $(paste -sd' ' "$TMP/list")"
"$PY" - "$uri" <<'PYEOF'
import sys

from nbdtest import fail, ok
from test_checkpoint import handle

h = handle(sys.argv[1], ["qemu:dirty-bitmap:nope", "qemu:dirty-bitmap:c2",
                         "qemu:dirty-bitmap:c1", "qemu:dirty-bitmap:c2"])
sel = [c for c in ("c1", "c2") if h.can_meta_context("qemu:dirty-bitmap:" + c)]
if sel != ["c2"]:
    fail(f"one SET asking for c2, c1, c2: selected {sel}, want [c2] alone")
ok("one SET selects one checkpoint: the first that exists (H6)")
PYEOF
"$PY" - "$socket" <<'PYEOF'
import sys

from nbdtest import fail, ok
from test_checkpoint import meta_raw

sock = sys.argv[1]
# SET: each context once, with ids unique in the selection; the wildcards
# select nothing (H6).
got = meta_raw(sock, 10, [b"base:allocation", b"qemu:dirty-bitmap:c2",
                          b"base:allocation", b"qemu:dirty-bitmap:c2",
                          b"qemu:", b"qemu:dirty-bitmap:", b"base:"])
want = [(4, 1, b"base:allocation"), (4, 2, b"qemu:dirty-bitmap:c2"),
        (1, None, b"")]
if got != want:
    fail(f"SET: {got}, want {want}")
ok(f"SET with repeats and wildcards: {got[:2]}, then ACK")
got = meta_raw(sock, 10, [b"qemu:", b"qemu:dirty-bitmap:"])
if got != [(1, None, b"")]:
    fail(f"SET of wildcards alone: {got}")
ok("SET of wildcards alone selects nothing")
# LIST: ids are 0; the wildcard lists each checkpoint once.
got = meta_raw(sock, 9, [b"qemu:", b"qemu:dirty-bitmap:",
                         b"qemu:dirty-bitmap:c1"])
want = [(4, 0, b"qemu:dirty-bitmap:c1"), (4, 0, b"qemu:dirty-bitmap:c2"),
        (1, None, b"")]
if got != want:
    fail(f"LIST: {got}, want {want}")
ok(f"LIST qemu: and more: {[g[2] for g in got[:2]]}, ids 0")
PYEOF

check "delete: gone for new connections, kept by one reading it (H10, W4)"
"$PY" - "$uri" "$ctl" "$SIZE" "$G" "${c1[@]}" <<'PYEOF'
import os
import subprocess
import sys

from nbdtest import fail, ok
from test_checkpoint import as_dirty, expect, handle, listed, status

uri, ctl, size, gran = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4])
want = [int(g) for g in sys.argv[5:]] + [192]
D = "qemu:dirty-bitmap:c1"
held = handle(uri, [D])
p = subprocess.run([os.environ["LOOPD"], "ctl", ctl, "checkpoint",
                    "--delete", "c1"], capture_output=True, timeout=30)
if p.returncode or p.stdout or p.stderr:
    fail(f"checkpoint --delete c1: {p}")
ok("checkpoint --delete c1")
if listed(uri, []) != ["base:allocation", "qemu:dirty-bitmap:c2"]:
    fail(f"LIST after the delete: {listed(uri, [])}")
ok("LIST no longer shows c1")
h = handle(uri, [D])
if h.can_meta_context(D):
    fail("a new connection selected the deleted c1")
ok("a new connection cannot select c1")
h.shutdown()
got, _ = status(held, size)
expect(as_dirty(got[D]), size, gran, want,
       "the connection that selected c1 still reads it")
held.pwrite(b"\x88", 14 << 20)  # a deleted map still held is marked (W4)
got, _ = status(held, size)
expect(as_dirty(got[D]), size, gran, want + [224], "... and sees new writes")
held.shutdown()
PYEOF
[[ $(ck checkpoints) == "c2 $((2 * G))" ]] ||
	fail "checkpoints after the delete: $(ck checkpoints)"
ok "checkpoints: c2 $((2 * G))"

check "misuse: one line, exit 1 (refused) or 2 (usage); the server serves on (Q8, Q9)"
fails 1 '"c2" exists on export' "$LOOPD" ctl "$ctl" checkpoint c2
fails 1 'bad name "a/b"' "$LOOPD" ctl "$ctl" checkpoint a/b
fails 1 'bad name' "$LOOPD" ctl "$ctl" checkpoint "$(head -c 129 /dev/zero | tr '\0' x)"
fails 1 'no checkpoint "c1"' "$LOOPD" ctl "$ctl" checkpoint --delete c1
fails 1 'no export named "nope"' "$LOOPD" ctl "$ctl" checkpoint --export nope c3
fails 1 'no export named "nope"' "$LOOPD" ctl "$ctl" checkpoints --export nope
fails 2 'checkpoint needs one NAME' "$LOOPD" ctl "$ctl" checkpoint
fails 2 'checkpoint needs one NAME' "$LOOPD" ctl "$ctl" checkpoint 'a b'
fails 2 "unexpected 'c4'" "$LOOPD" ctl "$ctl" checkpoint c3 c4
fails 2 "unexpected '--json'" "$LOOPD" ctl "$ctl" checkpoints --json
"$PY" - "$ctl" <<'PYEOF'
import sys

from nbdtest import fail, ok
from test_stats import ask

ctl = sys.argv[1]
for line, want in [(b"checkpoint\n", b"expected [--delete]"),
                   (b"checkpoint --delete\n", b"expected [--delete]"),
                   (b"checkpoint --export nope\n", b"expected"),
                   (b"checkpoints extra\n", b"expected [--export EXPORT]"),
                   (b"checkpoint \x01\xff\n", b"bad name")]:
    a = ask(ctl, line)
    if not a.startswith(b"error: ") or a.count(b"\n") != 1 or want not in a:
        fail(f"{line!r}: answered {a!r}")
    ok(f"{line!r} -> {a.decode(errors='replace').strip()}")
PYEOF
for i in $(seq 3 65); do
	ck checkpoint "c$i" || fail "checkpoint c$i"
done
fails 1 'has 64 checkpoints' "$LOOPD" ctl "$ctl" checkpoint c66
(($(ck checkpoints | wc -l) == 64)) || fail "not 64 checkpoints"
for i in $(seq 3 65); do
	ck checkpoint --delete "c$i" || fail "checkpoint --delete c$i"
done
ck checkpoint --export disk.img c3 || fail "checkpoint --export disk.img c3"
ck checkpoint --delete --export '' c3 || fail "checkpoint --delete --export '' c3"
[[ $(ck checkpoints --export disk.img) == "c2 $((2 * G))" ]] ||
	fail "checkpoints --export disk.img: $(ck checkpoints --export disk.img)"
ok "64 made, the 65th refused, 63 deleted; --export names the export"
nbdinfo "$uri" >/dev/null || fail "nbdinfo after the errors"
"$LOOPD" ctl "$ctl" stats >/dev/null || fail "stats after the errors"
ok "the server still answers NBD and ctl"

check "a checkpoint file that cannot be written: an error line; the checkpoint lives on in memory (Q9)"
start_server pers --size 1M --control "$TMP/pers.ctl" "$TMP/pers.img"
mkdir "$TMP/pers.img.checkpoints.tmp" # where the file is written first
fails 1 'checkpoint: "p1" made, but the checkpoint file could not be written: .*a crash may lose it' \
	"$LOOPD" ctl "$TMP/pers.ctl" checkpoint p1
grep -q 'checkpoint p1 made, but its names could not be saved' "$TMP/pers.log" ||
	fail "not logged: $(cat "$TMP/pers.log")"
[[ $("$LOOPD" ctl "$TMP/pers.ctl" checkpoints) == "p1 0" ]] ||
	fail "p1 is not in memory"
rmdir "$TMP/pers.img.checkpoints.tmp"
"$LOOPD" ctl "$TMP/pers.ctl" checkpoint p2 || fail "checkpoint p2 once writable"
ok "p1 listed; p2 made once the file can be written"
stop_server "$pid"
pid=$(<"$TMP/main.pid") socket=$TMP/main.sock uri="nbd+unix:///?socket=$socket"

check "a read-only export has no checkpoints"
truncate -s 1M "$TMP/ro.img"
start_server ro --read-only --control "$TMP/ro.ctl" "$TMP/ro.img"
fails 1 'is read-only: it has no checkpoints' "$LOOPD" ctl "$TMP/ro.ctl" \
	checkpoint c1
fails 1 'is read-only' "$LOOPD" ctl "$TMP/ro.ctl" checkpoints
nbdinfo --json "$uri" >"$TMP/ro.json"
grep -q 'qemu:dirty-bitmap' "$TMP/ro.json" && fail "a read-only export lists a dirty bitmap"
ok "no dirty bitmap listed"
stop_server "$pid"
pid=$(<"$TMP/main.pid") socket=$TMP/main.sock uri="nbd+unix:///?socket=$socket"

check "a clean restart keeps c2's map (W7)"
nbdinfo --map=qemu:dirty-bitmap:c2 --json "$uri" >"$TMP/before.json"
stop_server "$pid"
[[ -s $TMP/disk.img.checkpoints ]] || fail "no $TMP/disk.img.checkpoints"
start_server main --size 16M --control "$ctl" "$TMP/disk.img"
[[ $(ck checkpoints) == "c2 $((2 * G))" ]] ||
	fail "checkpoints after the restart: $(ck checkpoints)"
dirty_map c2 "c2 after a clean restart" 192 224
nbdinfo --map=qemu:dirty-bitmap:c2 --json "$uri" >"$TMP/after.json"
cmp -s "$TMP/before.json" "$TMP/after.json" || fail "the map changed"
ok "the same map as before the stop"

check "after kill -9 every map comes back wholly dirty, never empty (W8)"
kill -KILL "$pid"
wait_exit "$pid" || fail "kill -9"
# A new name: the killed server's socket and pidfile are still there (its
# stale control socket is replaced, Q7).
start_server again --size 16M --control "$ctl" "$TMP/disk.img"
grep -q 'checkpoints' "$TMP/again.log" || fail "no note: $(cat "$TMP/again.log")"
ok "said so: $(grep checkpoints "$TMP/again.log" | tail -n 1)"
[[ $(ck checkpoints) == "c2 $SIZE" ]] ||
	fail "checkpoints after kill -9: $(ck checkpoints)"
dirty_map c2 "c2 after kill -9" $(seq 0 255)

check "--checkpoint-granularity 4K: the granule is 4 KiB"
start_server gran --size 1M --checkpoint-granularity 4K \
	--control "$TMP/gran.ctl" "$TMP/gran.img"
"$LOOPD" ctl "$TMP/gran.ctl" checkpoint g || fail "checkpoint g"
nbdsh -u "$uri" -c "h.pwrite(b'\\x99', 5000)"
nbdinfo --map=qemu:dirty-bitmap:g --json "$uri" >"$TMP/gmap.json"
"$PY" -m test_checkpoint nbdinfo "$TMP/gmap.json" $MiB 4096 \
	"4 KiB granules: 1 byte at 5000" 1

echo "test-checkpoint: all checks passed"
