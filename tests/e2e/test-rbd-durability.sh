#!/usr/bin/env bash
# test-rbd-durability: kill -9 of loopd serving an RBD image, under a
# load of FUA writes and flushes.
#
# The load is test_kill9.py's: 4 connections write self-describing 4 KiB
# blocks (1-4 per write, 4 in flight each), FUA on one write in eight, a
# FLUSH every 16 writes per connection, and every send and reply is
# logged.  Once 200 flushes have succeeded the client says so through a
# FIFO and the test kills loopd with SIGKILL while writes are in flight.
# The killed client is then fenced (blocklisted: its writes still in
# flight at the OSD can no longer land), and a fresh loopd serves the
# image.  Then, for each --cache mode (both run without librbd's cache,
# D3: a write is acknowledged once the OSD has it):
#   - every acknowledged FUA write, and every write acknowledged before a
#     FLUSH that succeeded was sent, reads back (or a write sent after it),
#     through the fresh loopd and in "rbd export" of the image
#     (test_rbd_durability.py verify: the crash contract);
#   - every acknowledged write reads back (test_kill9.py verify), which
#     librbd's write-around cache would not promise.
# The companion run rolls one durable block back to its previous write
# through the fresh loopd and requires the verifier to fail on it.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
ceph_requires

kill9=$SRCDIR/tests/e2e/test_kill9.py
durable=$SRCDIR/tests/e2e/test_rbd_durability.py
flushes=200

mkfifo "$TMP/ready"
exec {ready_fd}<>"$TMP/ready"

client=
stop_client() {
	[[ -z $client ]] || kill "$client" 2>/dev/null || true
}
on_exit stop_client

# forget_server PID: a server that is gone, so that cleanup does not
# signal whatever process gets its PID next.
forget_server() {
	local i
	for i in "${!server_pids[@]}"; do
		[[ ${server_pids[i]} != "$1" ]] || unset 'server_pids[i]'
	done
}

for cache in buffered direct; do
	echo "--- --cache=$cache"
	rbd_image "durable-$cache" 8M
	img=$rbd_img
	log=$TMP/$cache.log.txt
	start_server "$cache" --ceph-conf "$LOOPD_CEPH_CONF" --cache "$cache" \
		"rbd:$img"
	killed=$pid

	check "--cache=$cache: kill -9 after $flushes flushes, writes in flight"
	"$PY" "$kill9" load "$uri" "$log" "$TMP/ready" "$flushes" \
		>"$TMP/client.out" 2>&1 &
	client=$!
	read -r -t 120 -u "$ready_fd" _ ||
		fail "the client did not reach $flushes flushes in 120 s: $(cat "$TMP/client.out")"
	kill -KILL "$killed"
	wait_exit "$killed" || fail "server $killed still runs after SIGKILL"
	forget_server "$killed"
	rc=0
	wait "$client" || rc=$?
	client=
	cat "$TMP/client.out"
	((rc == 0)) || fail "the client failed (exit $rc)"
	ok "server $killed killed; the client saw the connections cut"

	check "--cache=$cache: fence the killed client, serve the image again"
	rbd_fence "$img" || fail "could not blocklist the killed client"
	start_server "$cache-again" --ceph-conf "$LOOPD_CEPH_CONF" \
		--cache "$cache" "rbd:$img"
	ok "a new loopd ($pid) serves $img"

	"$PY" "$durable" verify "$uri" "$log" ||
		fail "--cache=$cache: the contract does not hold through loopd"
	"$PY" "$kill9" verify "$uri" "$log" ||
		fail "--cache=$cache: an acknowledged write is missing (D3)"
	rm -f "$TMP/image.raw"
	rbd_cli export --no-progress "$img" "$TMP/image.raw" >/dev/null \
		2>"$TMP/export.err" || fail "rbd export: $(cat "$TMP/export.err")"
	"$PY" "$durable" verify "$TMP/image.raw" "$log" ||
		fail "--cache=$cache: the contract does not hold in rbd export"

	if [[ $cache == buffered ]]; then
		check "the verifier fails on a durable block rolled back"
		"$PY" "$kill9" tamper "$uri" "$log" stale >"$TMP/tamper.out" ||
			fail "tamper: $(cat "$TMP/tamper.out")"
		cat "$TMP/tamper.out"
		block=$(sed -n 's/.*tampered: block \([0-9]*\) .*/\1/p' "$TMP/tamper.out")
		[[ -n $block ]] || fail "tamper did not name its block"
		rc=0
		"$PY" "$durable" verify "$uri" "$log" >"$TMP/verify.out" 2>&1 || rc=$?
		((rc == 1)) || fail "verify exited $rc with a stale block $block: $(cat "$TMP/verify.out")"
		grep -q "bad: block $block holds" "$TMP/verify.out" ||
			fail "verify did not name block $block: $(cat "$TMP/verify.out")"
		ok "verify fails: $(grep 'bad: ' "$TMP/verify.out" | sed 's/^ *//')"
	fi
	stop_server "$pid"
done

echo "test-rbd-durability: all checks passed"
