#!/usr/bin/env bash
# test-shutdown: SIGTERM always ends the server, in bounded time, with an
# exit status that tells the truth (E4 in engine/worker.c, H9, L5).
#   1. A busy connection's large I/O spread to the second worker (E3) while
#      its requests wait for a delayed write: the server finishes them all
#      and exits (it used to hang forever in pthread_join).
#   2. A client that stops reading its replies: the server exits once
#      --shutdown-timeout is over, status 0, saying it closed the client.
#      A second SIGTERM ends the wait at once.  The same over TLS, where
#      the relay is blocked in a send to the client.
#   3. An export latched by a failed sync (R5): exit status 1, and the
#      log names the export.
#   4. A client still negotiating when the stop begins: its GO gets
#      NBD_REP_ERR_SHUTDOWN, never a success followed by silence.
#   5. A connection aborted while a WRITE's payload was half received
#      (C5): the connection closes, and SIGTERM ends the server.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

requires certtool
real_fs_dir
T=$SRCDIR/tests/e2e/test_shutdown.py

# Clients in the background, stopped by PID at exit.
clients=()
stop_clients() {
	local p
	for p in "${clients[@]}"; do
		kill "$p" 2>/dev/null || true
	done
}
on_exit stop_clients

mkfifo "$TMP/ready" "$TMP/go"
exec {ready_fd}<>"$TMP/ready"
exec {go_fd}<>"$TMP/go"

# stall_client [CA CERT KEY]: a client that stops reading, in the
# background; returns once it has filled the server's queue.
stall_client() {
	"$PY" "$T" stall "$socket" "$TMP/ready" "$@" >"$TMP/stall.out" 2>&1 &
	clients+=($!)
	local line
	read -r -t 20 -u "$ready_fd" line ||
		fail "the stalling client did not fill the queue: $(cat "$TMP/stall.out")"
	ok "a client stopped reading with 32 MiB replies due"
}

echo "--- 1. spread I/O waiting on a delayed write, then SIGTERM"
check "E3 + R3 + SIGTERM with two workers: every request answered, exit 0"
start_fg spread --queues 2 --size 8M \
	--inject 'delay=1500:write@0-64K' "$dir/spread.img"
"$PY" "$T" spread "$uri" "$fg_pid" || fail "the client failed"
exit_status "$fg_pid" 10
((status == 0)) || fail "exit status $status"
ok "exited with status 0 in $elapsed s"

echo "--- 2. a client that stops reading"
for tls in plain tls; do
	args=(--queues 2 --size 64M --shutdown-timeout 2)
	cargs=()
	if [[ $tls == tls ]]; then
		make_pki "$TMP/pki"
		args+=(--tls=on --tls-certificates "$TMP/pki/srv")
		cargs=("$TMP/pki/ca.pem" "$TMP/pki/cli/client-cert.pem"
			"$TMP/pki/cli/client-key.pem")
	fi
	check "$tls: SIGTERM with a client that does not read: exit after the 2 s grace"
	start_fg "stall-$tls" "${args[@]}" "$dir/stall.img"
	stall_client "${cargs[@]}"
	kill -TERM "$fg_pid"
	exit_status "$fg_pid" 10
	((status == 0)) || fail "exit status $status"
	awk -v e="$elapsed" 'BEGIN { exit !(e >= 1.5 && e < 6) }' ||
		fail "exited after $elapsed s, want the 2 s grace and a little"
	grep -q 'grace period of 2 s is over: closing 1 connections' \
		"$TMP/stall-$tls.log" || fail "the log does not say it closed the client"
	grep -q 'stopped' "$TMP/stall-$tls.log" || fail "no 'stopped' in the log"
	ok "exited with status 0 after $elapsed s, closing the client"
	stop_clients
	clients=()
done

check "a second SIGTERM ends a 60 s grace period at once"
start_fg second --queues 2 --size 64M --shutdown-timeout 60 "$dir/stall.img"
stall_client
kill -TERM "$fg_pid"
wait_log "$TMP/second.log" 'stopping: finishing in-flight requests'
kill -TERM "$fg_pid"
exit_status "$fg_pid" 10
((status == 0)) || fail "exit status $status"
grep -q 'second signal: closing 1 connections now' "$TMP/second.log" ||
	fail "the log does not mention the second signal"
ok "exited with status 0, $elapsed s after the first signal"
stop_clients
clients=()

echo "--- 3. exit status after a latch"
check "a sync fails (injected EIO): exit status 1, the export named"
start_fg latch --size 8M --inject 'error=EIO:sync*1' "$dir/latch.img"
"$PY" "$T" latch "$uri" || fail "the client failed"
kill -TERM "$fg_pid"
exit_status "$fg_pid" 10
((status == 1)) || fail "exit status $status after a latch, want 1"
grep -q 'export "latch.img" latched after a failed sync' "$TMP/latch.log" ||
	fail "the log does not name the latched export"
ok "exit status 1: $(grep latched "$TMP/latch.log" | tail -n 1)"

echo "--- 4. negotiation while the server stops"
check "GO after the stop began: NBD_REP_ERR_SHUTDOWN"
start_fg hs --queues 2 --size 64M --shutdown-timeout 60 "$dir/stall.img"
stall_client # keeps the server in its grace period
"$PY" "$T" handshake "$socket" "$TMP/ready" "$TMP/go" >"$TMP/hs.out" 2>&1 &
hs_client=$!
clients+=("$hs_client")
read -r -t 10 -u "$ready_fd" _ || fail "the negotiating client did not start"
kill -TERM "$fg_pid"
wait_log "$TMP/hs.log" 'stopping: finishing in-flight requests'
echo go >&"$go_fd"
rc=0
wait "$hs_client" || rc=$?
cat "$TMP/hs.out"
((rc == 0)) || fail "the negotiating client failed"
kill -TERM "$fg_pid"
exit_status "$fg_pid" 10
((status == 0)) || fail "exit status $status"
ok "the server still exited with status 0"

echo "--- 5. a connection aborted in the middle of a payload"
check "C5: abort with half a WRITE's payload received, then SIGTERM: exit 0"
start_fg abort --queues 2 --size 8M --shutdown-timeout 2 \
	--inject 'delay=1000:read@1M-2M' "$dir/abort.img"
"$PY" "$T" abort "$socket" || fail "the client failed"
kill -TERM "$fg_pid"
exit_status "$fg_pid" 10
((status == 0)) || fail "exit status $status"
grep -q 'grace period' "$TMP/abort.log" &&
	fail "the aborted connection was still open at the stop: $(grep grace "$TMP/abort.log")"
ok "the aborted connection had closed; exited with status 0 in $elapsed s"

echo "test-shutdown: all checks passed"
