#!/usr/bin/env bash
# test-kill9: kill -9 under load, then restart on the same file.
#
# A verifying client (test_kill9.py) writes random 1-4 block runs over 4
# connections at queue depth 4 each, with FUA on one write in eight and a
# FLUSH every 16 writes per connection, and logs every write it sends,
# every reply, and every flush.  Each 4 KiB block it writes names itself
# (block number, write id, generation, run tag) and carries a hash of that
# name.  Once 200 flushes have succeeded the client says so through a FIFO,
# and the test kills the server with SIGKILL while writes are in flight.
# Then, with --cache=direct and with --cache=buffered:
#   - the client saw only cut-off commands after the kill, no error before;
#   - while the server runs, its OFD lock refuses a second loopd on the
#     file; after the kill the lock goes away with the process, and a new
#     loopd serves the same file.  The lock is polled (bounded, 10 s): it
#     may outlive the process for as long as io_uring still holds the file
#     for requests that were in flight, and a restart before that would be
#     refused;
#   - every block holds the latest write loopd acknowledged for it, or a
#     write sent after that one (in flight at the kill); a block with no
#     acknowledged write holds zeroes or one of its writes.  No garbage, no
#     torn block, no other block's data, no older write.
#
# What a kill -9 can and cannot show: it kills the process, not the host,
# so the page cache survives and every write that completed is in the file,
# flushed or not.  The test therefore checks loopd's acknowledgement order
# (E1 in engine/request.c: a write is replied to only after its I/O completed in
# full), which is stricter than the crash contract (semantics.md: only FUA
# writes and writes covered by a FLUSH must survive a power cut; the
# verifier also reports which blocks held their latest durable write).  It
# does not test durability: --flush=unsafe would pass, and a power cut is
# what test-crash-ext4 and the crash explorer are for.  The files live on a
# real filesystem (real_fs_dir) so that --cache=direct really is O_DIRECT.
#
# The companion runs tamper with one block through the restarted server,
# rolling it back to its previous acknowledged write (a lost write) or
# filling it with garbage, and require the verifier to fail on that block.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

real_fs_dir
kill9=$SRCDIR/tests/e2e/test_kill9.py
flushes=200

# The client says "ready" here; holding the FIFO open for reading and
# writing means neither side blocks in open().
mkfifo "$TMP/ready"
exec {ready_fd}<>"$TMP/ready"

client=
stop_client() {
	[[ -z $client ]] || kill "$client" 2>/dev/null || true
}
on_exit stop_client

# forget_server PID: a server that is gone, so cleanup does not signal
# whatever process gets its PID next.
forget_server() {
	local i
	for i in "${!server_pids[@]}"; do
		[[ ${server_pids[i]} != "$1" ]] || unset 'server_pids[i]'
	done
}

# wait_unlocked FILE: wait (bounded, 10 s) until no process holds an OFD
# lock on FILE; print how long it took.
wait_unlocked() {
	"$PY" - "$1" <<'PYEOF'
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
start = time.monotonic()
while True:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (x86-64 layout).
    q = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    l_type = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_OFD_GETLK, q))[0]
    waited = time.monotonic() - start
    if l_type == fcntl.F_UNLCK:
        print(f"  ok: the OFD lock was released {waited * 1000:.0f} ms after "
              "the process exited")
        sys.exit(0)
    if waited > 10:
        print("FAIL: the file is still locked 10 s after the kill",
              file=sys.stderr)
        sys.exit(1)
    time.sleep(0.01)  # polling a state no event announces, bounded
PYEOF
}

for cache in direct buffered; do
	echo "--- --cache=$cache"
	img=$dir/kill9-$cache.img
	log=$TMP/kill9-$cache.log.txt
	start_server "$cache" --size 8M --cache "$cache" "$img"
	killed=$pid

	check "--cache=$cache: the OFD lock refuses a second loopd on the file"
	if "$LOOPD" serve --pidfile "$TMP/second.pid" -U "$TMP/second.sock" \
		"$img" </dev/null >/dev/null 2>"$TMP/second.err"; then
		track_pidfile "$TMP/second.pid" || true
		fail "a second loopd served $img"
	fi
	grep -q 'in use' "$TMP/second.err" ||
		fail "second loopd: $(cat "$TMP/second.err")"
	ok "refused: $(cat "$TMP/second.err")"

	check "--cache=$cache: kill -9 after $flushes flushes, writes in flight"
	"$PY" "$kill9" load "$uri" "$log" "$TMP/ready" "$flushes" \
		>"$TMP/client.out" 2>&1 &
	client=$!
	read -r -t 60 -u "$ready_fd" _ ||
		fail "the client did not reach $flushes flushes in 60 s: $(cat "$TMP/client.out")"
	kill -KILL "$killed"
	wait_exit "$killed" || fail "server $killed still runs after SIGKILL"
	forget_server "$killed"
	rc=0
	wait "$client" || rc=$?
	client=
	cat "$TMP/client.out"
	((rc == 0)) || fail "the client failed (exit $rc)"
	ok "server $killed killed; the client saw the connections cut"

	check "--cache=$cache: the lock goes with the process; loopd restarts"
	wait_unlocked "$img" || fail "$img is still locked"
	start_server "$cache-again" --cache "$cache" "$img"
	ok "a new loopd ($pid) serves $img"

	"$PY" "$kill9" verify "$uri" "$log" || fail "--cache=$cache: verify failed"

	for kind in stale garbage; do
		check "--cache=$cache: the verifier fails on a $kind block"
		"$PY" "$kill9" tamper "$uri" "$log" "$kind" >"$TMP/tamper.out" ||
			fail "tamper $kind: $(cat "$TMP/tamper.out")"
		cat "$TMP/tamper.out"
		block=$(sed -n 's/.*tampered: block \([0-9]*\) .*/\1/p' "$TMP/tamper.out")
		[[ -n $block ]] || fail "tamper did not name its block"
		rc=0
		"$PY" "$kill9" verify "$uri" "$log" >"$TMP/verify.out" 2>&1 || rc=$?
		((rc == 1)) || fail "verify exited $rc with a $kind block $block: $(cat "$TMP/verify.out")"
		grep -q "bad: block $block holds" "$TMP/verify.out" ||
			fail "verify did not name block $block: $(cat "$TMP/verify.out")"
		n=$(grep -c 'bad: ' "$TMP/verify.out")
		((n == 1)) || fail "verify found $n bad blocks, want 1: $(cat "$TMP/verify.out")"
		ok "verify fails: $(grep 'bad: ' "$TMP/verify.out" | sed 's/^ *//')"
		# Put the block back so that the next companion starts clean.
		"$PY" "$kill9" tamper "$uri" "$log" restore >/dev/null ||
			fail "restore of block $block failed"
	done
	stop_server "$pid"
done

echo "test-kill9: all checks passed"
