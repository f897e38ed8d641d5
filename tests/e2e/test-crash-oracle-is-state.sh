#!/usr/bin/env bash
# test-crash-oracle-is-state: `loopd crash TRACE --is-state IMG`, the
# membership oracle A8 (rules O1-O5 in src/trace/oracle.c).  A workload of
# plain, FUA, pipelined and overlapping writes, TRIM and WRITE_ZEROES with
# flushes is recorded through libnbd on a 1 MiB export (atomic unit 512).
# Then:
#   - the file as the server left it is a crash state (exit 0);
#   - every state that `--state ID --out` materialises is accepted, at its
#     crash point or before: 4 fixed and 2 drawn items at 5 points, torn
#     states (--tear), and garbage states under --garbage (refused
#     without it);
#   - one unit overwritten with bytes no write carried is refused (exit
#     1), and that unit is named; so is a unit no write touched;
#   - a --model no-flush state at the last crash point (after flushes)
#     that no served state equals is refused under the served model and
#     accepted under no-flush;
#   - a wrong size, a missing image, a base that is not the recorded one
#     and --is-state with --check are errors (exit 2, one line).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

trace=$TMP/t.trace
check "record: writes, FUA, pipelined and overlapping writes, TRIM, flushes"
start_server rec --size 1M --record "$trace" "$TMP/disk.img"
"$PY" - "$uri" <<'PYEOF'
import sys

import nbd

from nbdtest import connect, ok


def d(n, seed):
    return bytes((seed * 7 + i * 13) % 251 + 1 for i in range(n))


def drain(h):
    while h.aio_in_flight() > 0:
        h.poll(-1)


h = connect(sys.argv[1])
h.pwrite(d(4096, 1), 0)
h.pwrite(d(8192, 2), 65536)
h.flush()                                       # both durable from here
h.pwrite(d(4096, 3), 0)                         # overwrites the first
h.pwrite(d(4096, 4), 131072, nbd.CMD_FLAG_FUA)  # durable on its reply
for i in range(4):                              # pipelined, overlapping
    h.aio_pwrite(d(8192, 5 + i), 196608 + 4096 * i)
h.aio_pwrite(d(4096, 20), 262144)               # two concurrent writes
h.aio_pwrite(d(4096, 21), 262144)               # to one range
drain(h)
h.pwrite(d(65536, 9), 327680)
h.flush()
h.trim(65536, 327680)                           # old or zero
h.zero(8192, 458752)
h.pwrite(d(4096, 22), 65536 + 4096)
h.flush()
h.pwrite(d(4096, 30), 4096)                     # never flushed
h.shutdown()
ok("14 writes, 1 FUA, 1 TRIM, 1 WRITE_ZEROES, 3 flushes")
PYEOF
stop_server "$pid"
points=$("$LOOPD" trace stats "$trace" |
	sed -n 's/^crash points: *\([0-9]*\).*/\1/p')
((points >= 5)) || fail "only $points crash points"
ok "$points crash points"

# is_state WANT IMG ARGS...: --is-state IMG must exit WANT; the output is
# in $TMP/is.out.
is_state() {
	local want=$1 img=$2 rc=0
	shift 2
	"$LOOPD" crash "$trace" --is-state "$img" "$@" >"$TMP/is.out" \
		2>"$TMP/is.err" || rc=$?
	if ((rc != want)); then
		cat "$TMP/is.out" "$TMP/is.err" >&2
		fail "--is-state $img $*: exit $rc, want $want"
	fi
}

# The point at which the last --is-state accepted its image.
accepted_at() {
	sed -n 's/.*earliest that allows it is crash point \([0-9]*\) .*/\1/p' \
		"$TMP/is.out"
}

check "A8: the file as the server left it is a crash state"
is_state 0 "$TMP/disk.img"
grep -q "a crash state of" "$TMP/is.out" || fail "$(cat "$TMP/is.out")"
ok "accepted at crash point $(accepted_at)"

# items K [ARGS...]: the length of point K's list of states (an item
# past its end is refused with it).
items() {
	local k=$1
	shift
	if "$LOOPD" crash "$trace" "$@" --state "$k.999999999" \
		--out "$TMP/none.img" >/dev/null 2>"$TMP/items.err"; then
		fail "state $k.999999999 exists"
	fi
	sed -n 's/.*point [0-9]* has \([0-9]*\) states.*/\1/p' "$TMP/items.err"
}

# accept K I [ARGS...]: state K.I (materialised with ARGS) is accepted
# (with the same ARGS but --tear and -E, which the oracle does not need),
# at point K or before.
accept() {
	local k=$1 i=$2 at a skip=
	local oargs=()
	shift 2
	timeout 60 "$LOOPD" crash "$trace" "$@" --state "$k.$i" \
		--out "$TMP/s.img" >"$TMP/state.out"
	for a in "$@"; do
		if [[ -n $skip ]]; then
			skip=
		elif [[ $a == -E ]]; then
			skip=1
		elif [[ $a != --tear ]]; then
			oargs+=("$a")
		fi
	done
	is_state 0 "$TMP/s.img" "${oargs[@]}"
	at=$(accepted_at)
	((at <= k)) || fail "state $k.$i $*: accepted at point $at, after $k"
	n_accepted=$((n_accepted + 1))
}

# first_kind K KIND ARGS...: the first item of point K (from 4) whose
# state is of KIND, materialised into $TMP/s.img, in $item.
first_kind() {
	local k=$1 kind=$2
	shift 2
	for item in $(seq 4 80); do
		timeout 60 "$LOOPD" crash "$trace" "$@" --state "$k.$item" \
			--out "$TMP/s.img" >"$TMP/state.out"
		grep -q " $kind state" "$TMP/state.out" && return 0
	done
	fail "no $kind state among the first items of point $k"
}

check "A8: every state --state materialises is accepted (O1, O2)"
RANDOM=14
n_accepted=0
for k in 0 1 $((points / 2)) $((points - 2)) $((points - 1)); do
	n=$(items "$k")
	((n > 4)) || fail "point $k has $n states"
	for i in 0 1 2 3 $((4 + RANDOM % (n - 4))) $((4 + RANDOM % (n - 4))); do
		accept "$k" "$i"
	done
done
ok "$n_accepted states of 5 crash points"
# Sampled lists (-E 0) hold a torn item among every few.
for k in $((points / 2)) $((points - 1)); do
	first_kind "$k" torn --tear -E 0
	accept "$k" "$item" --tear -E 0
	first_kind "$k" torn --tear -E 0 --seed 2
	accept "$k" "$item" --tear -E 0 --seed 2
done
ok "torn states (--tear) accepted without --tear: units are independent"

check "A8: garbage states are states under --garbage only (O2 c)"
k=$((points - 1))
first_kind "$k" garbage --garbage -E 0
accept "$k" "$item" --garbage -E 0
is_state 1 "$TMP/s.img"
ok "garbage state $k.$item: a state under --garbage, not without"

check "A8: a unit overwritten with bytes no write carried is refused, named"
cp "$TMP/disk.img" "$TMP/flip.img"
printf '\356%.0s' $(seq 512) |
	dd of="$TMP/flip.img" bs=512 seek=130 conv=notrunc status=none
is_state 1 "$TMP/flip.img"
grep -q "^unit 130 (bytes 66560-67071) holds what no crash point allows" \
	"$TMP/is.out" || fail "unit 130 not named: $(cat "$TMP/is.out")"
grep -q "seq [0-9]* WRITE off=65536 len=8192: other bytes" "$TMP/is.out" ||
	fail "the write that covers unit 130 is not listed: $(cat "$TMP/is.out")"
ok "unit 130 named, with the writes that cover it"
cp "$TMP/disk.img" "$TMP/flip.img"
printf 'x' | dd of="$TMP/flip.img" bs=1 seek=$((1000 * 1024)) conv=notrunc \
	status=none
is_state 1 "$TMP/flip.img"
if ! grep -q "^unit 2000 " "$TMP/is.out" ||
	! grep -q "no write covers it" "$TMP/is.out"; then
	fail "unit 2000 not named: $(cat "$TMP/is.out")"
fi
ok "a byte no write touched: unit 2000 named"

check "A8: a no-flush state after the flushes is refused under served"
k=$((points - 1))
found=
for i in $(seq 0 40); do
	"$LOOPD" crash "$trace" --model no-flush --state "$k.$i" \
		--out "$TMP/nf.img" >/dev/null
	rc=0
	"$LOOPD" crash "$trace" --is-state "$TMP/nf.img" >"$TMP/is.out" \
		2>&1 || rc=$?
	((rc == 0 || rc == 1)) || fail "exit $rc: $(cat "$TMP/is.out")"
	if ((rc == 1)); then
		found=$i
		break
	fi
done
[[ -n $found ]] || fail "every no-flush state of point $k is a served state"
grep -q "^unit [0-9]* (bytes" "$TMP/is.out" || fail "$(cat "$TMP/is.out")"
ok "no-flush state $k.$found refused: $(grep '^unit' "$TMP/is.out")"
is_state 0 "$TMP/nf.img" --model no-flush
ok "... and accepted under --model no-flush"

check "errors: exit 2 and one line"
is_error() {
	local what=$1 rc=0
	shift
	"$LOOPD" crash "$trace" "$@" >"$TMP/err.out" 2>"$TMP/err.log" || rc=$?
	((rc == 2)) || fail "$what: exit $rc, want 2"
	(($(wc -l <"$TMP/err.log") == 1)) || fail "$what: $(cat "$TMP/err.log")"
	ok "$what: $(cat "$TMP/err.log")"
}
truncate -s 512K "$TMP/small.img"
is_error "a wrong size" --is-state "$TMP/small.img"
is_error "a missing image" --is-state "$TMP/missing.img"
cp "$trace.base" "$TMP/other.base"
printf 'x' | dd of="$TMP/other.base" bs=1 seek=7 conv=notrunc status=none
is_error "another base" --is-state "$TMP/disk.img" --base "$TMP/other.base"
is_error "--is-state with --check" --is-state "$TMP/disk.img" --check true

echo "test-crash-oracle-is-state: all checks passed"
