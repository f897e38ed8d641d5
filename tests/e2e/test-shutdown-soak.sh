#!/usr/bin/env bash
# test-shutdown-soak: SIGTERM at a random moment under a mixed load, again
# and again (E4, L5, R1, R2).  Each run serves two exports with two
# workers and TLS offered, and has:
#   - the verifying load of test-kill9 on export "plain": four connections
#     of small writes with FUA and flushes, and one of 64-256 KiB writes at
#     queue depth 16 (spread over the workers, E3);
#   - the same load over TLS on export "tls";
#   - a client that stops reading its replies (over TLS every other run).
# Once both loads have had 20 flushes answered, SIGTERM comes after a
# random 0-300 ms.  Every run must exit within the 2 s grace period plus
# a margin, with status 0; after a restart every write either load saw
# acknowledged reads back (FUA or flushed ones included, which is what
# the contract promises across a clean stop).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

requires certtool
real_fs_dir
KILL9=$SRCDIR/tests/e2e/test_kill9.py
T=$SRCDIR/tests/e2e/test_shutdown.py
RUNS=${SOAK_RUNS:-4}
GRACE=2

make_pki "$TMP/pki"
cli=("$TMP/pki/ca.pem" "$TMP/pki/cli/client-cert.pem"
	"$TMP/pki/cli/client-key.pem")
mkfifo "$TMP/ready"
exec {ready_fd}<>"$TMP/ready"

clients=()
stop_clients() {
	local p
	for p in "${clients[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	clients=()
}
on_exit stop_clients

for ((run = 1; run <= RUNS; run++)); do
	echo "--- run $run of $RUNS"
	rm -f "$dir/plain.img" "$dir/tls.img"
	start_fg "soak$run" --queues 2 --size 64M --shutdown-timeout "$GRACE" \
		--tls=on --tls-certificates "$TMP/pki/srv" \
		"plain=$dir/plain.img" "tls=$dir/tls.img"
	plain_uri=$(export_uri plain "$socket")
	tls_uri="nbds+unix:///tls?socket=$socket&tls-certificates=$TMP/pki/cli"

	"$PY" "$KILL9" term "$plain_uri" "$TMP/plain.log.txt" "$TMP/ready" 20 \
		>"$TMP/plain.out" 2>&1 &
	load_plain=$!
	"$PY" "$KILL9" term "$tls_uri" "$TMP/tls.log.txt" "$TMP/ready" 20 \
		>"$TMP/tls.out" 2>&1 &
	load_tls=$!
	clients+=("$load_plain" "$load_tls")
	stall=()
	((run % 2 == 0)) && stall=("${cli[@]}")
	"$PY" "$T" stall "$socket" "$TMP/stall-ready" "${stall[@]}" \
		>"$TMP/stall.out" 2>&1 &
	clients+=($!)

	for _ in 1 2; do
		read -r -t 60 -u "$ready_fd" _ ||
			fail "the loads did not reach 20 flushes: $(cat "$TMP"/*.out)"
	done
	sleep "0.$((RANDOM % 300))" # the random moment of the SIGTERM
	kill -TERM "$fg_pid"
	exit_status "$fg_pid" $((GRACE + 8))
	((status == 0)) || fail "run $run: exit status $status"
	awk -v e="$elapsed" -v g="$GRACE" 'BEGIN { exit !(e < g + 4) }' ||
		fail "run $run: exited $elapsed s after SIGTERM (grace $GRACE s)"
	for p in "$load_plain" "$load_tls"; do
		rc=0
		wait "$p" || rc=$?
		((rc == 0)) || fail "run $run: a load failed: $(cat "$TMP/plain.out" "$TMP/tls.out")"
	done
	grep -h '^  ok: client' "$TMP/plain.out" "$TMP/tls.out"
	stop_clients
	ok "run $run: exit status 0, $elapsed s after SIGTERM"

	start_server "verify$run" "plain=$dir/plain.img" "tls=$dir/tls.img"
	"$PY" "$KILL9" verify "$(export_uri plain "$socket")" "$TMP/plain.log.txt" ||
		fail "run $run: export plain lost acknowledged writes"
	"$PY" "$KILL9" verify "$(export_uri tls "$socket")" "$TMP/tls.log.txt" ||
		fail "run $run: export tls lost acknowledged writes"
	stop_server "$pid"
done

echo "test-shutdown-soak: all checks passed"
