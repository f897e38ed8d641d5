#!/usr/bin/env bash
# test-rbd-snapshot: live snapshots of an RBD export (D10 in
# src/backend/rbd.c; I1-I3 in src/engine/snapshot.c; R8), against the
# cluster of LOOPD_CEPH_CONF.  With --record, under a fio write load
# (verify=crc32c) on the export:
#   - `loopd ctl snapshot @NAME` three times: each says method rbd, makes
#     the RBD snapshot IMAGE@NAME and checkpoint NAME;
#   - each, read back with `rbd export IMAGE@NAME`, passes
#     `loopd crash --is-state --at "snapshot NAME"`: a crash state at its
#     own instant;
#   - a path as DEST, and a NAME that exists, are one-line errors and the
#     server serves on.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires fio nbdinfo
ceph_requires

rbd_image snap 64M
trace=$TMP/t.trace
start_server rbd --ceph-conf "$LOOPD_CEPH_CONF" --record "$trace" \
	--control "$TMP/rbd.ctl" "rbd:$rbd_img"
ctl=$TMP/rbd.ctl

check "snapshots under a fio write load (4k randwrite, QD16)"
fio --name=load --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
	--iodepth=16 --size=16M --time_based --runtime=600 --output="$TMP/fio.out" >/dev/null 2>&1 &
fio_pid=$!
on_exit "kill $fio_pid 2>/dev/null"
# Readiness: the export has served writes (stats), not a sleep.
for _ in $(seq 200); do
	w=$("$LOOPD" ctl "$ctl" stats --json | "$PY" -c 'import json,sys
d = json.load(sys.stdin)
print(sum(e["requests"]["WRITE"] for e in d["exports"]))' 2>/dev/null || echo 0)
	((w > 100)) && break
	sleep 0.05 # polling a counter, bounded
done
((w > 100)) || fail "fio wrote nothing in 10 s"
for i in 1 2 3; do
	"$LOOPD" ctl "$ctl" snapshot "@s$i" >"$TMP/s$i.out" ||
		fail "snapshot @s$i: $(cat "$TMP/s$i.out")"
	grep -q '^method: rbd$' "$TMP/s$i.out" || fail "$(cat "$TMP/s$i.out")"
	grep -q "^checkpoint: @s$i$\|^checkpoint: s$i$" "$TMP/s$i.out" ||
		fail "no checkpoint: $(cat "$TMP/s$i.out")"
	ok "@s$i: $(grep -E '^(writes held|longest hold|capture)' "$TMP/s$i.out" | paste -sd ' ')"
done
kill -INT "$fio_pid"
wait "$fio_pid" || true

check "errors: a path as DEST, an existing name"
cli_error "RBD snapshots: DEST is @NAME" "$LOOPD" ctl "$ctl" snapshot "$TMP/x.img"
cli_error "has this name" "$LOOPD" ctl "$ctl" snapshot @s1
nbdinfo --size "$uri" >/dev/null || fail "the server stopped serving"
ok "the server serves on"
stop_server "$pid"

check "each snapshot, read back with rbd export, is a crash state at its instant"
for i in 1 2 3; do
	rbd_cli export "$rbd_img@s$i" "$TMP/s$i.img" >/dev/null 2>&1 ||
		fail "rbd export $rbd_img@s$i"
	rc=0
	"$LOOPD" crash "$trace" --is-state "$TMP/s$i.img" --at "snapshot @s$i" \
		>"$TMP/is.out" 2>&1 || rc=$?
	((rc == 0)) || { cat "$TMP/is.out"; fail "@s$i: exit $rc"; }
	ok "@s$i: $(grep -o 'crash point [0-9]* of [0-9]*' "$TMP/is.out"), $(grep -o '|P(t)| = [0-9]*' "$TMP/is.out")"
done
for i in 1 2 3; do rbd_cli snap rm "$rbd_img@s$i" >/dev/null 2>&1 || true; done

echo "test-rbd-snapshot: all checks passed"
