#!/usr/bin/env bash
# test-captive: captive mode, `loopd serve --run CMD` (V5-V7 in
# src/serve/captive.c), and --exit-with-parent (V8 in src/serve/daemon.c).
# The README's qemu-img convert example copies a qcow2 image onto the disk
# (qemu-img compare); CMD's exit status is loopd's (128+N for a signal);
# CMD's writes are in the file and the final sync runs after CMD (an
# injected failure of it makes the status 1); nbdkit's variables, for a
# private socket (removed at exit), TCP and TLS; SIGTERM to loopd reaches
# CMD, and a CMD that ignores it is killed after --shutdown-timeout; a
# killed parent stops an --exit-with-parent server (and only that one);
# bad --run lines are one-line errors.
# shellcheck disable=SC2016 # every --run CMD is expanded by CMD's shell
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo nbdsh qemu-img qemu-io psktool

export TMP # for the commands run by --run
# The private socket's directory goes here (V5), so that it can be found.
export TMPDIR=$TMP/tmpdir
mkdir "$TMPDIR"

# captive STATUS NAME SERVE-ARGS...: "loopd serve SERVE-ARGS" (which hold
# a --run) must exit with STATUS, bounded (60 s); its stdout goes to
# $TMP/NAME.out, stderr to $TMP/NAME.log.
captive() {
	local want=$1 name=$2 rc=0
	shift 2
	timeout -k 5 60 "$LOOPD" serve "$@" </dev/null >"$TMP/$name.out" \
		2>"$TMP/$name.log" || rc=$?
	((rc == want)) ||
		fail "loopd serve $* exited $rc, want $want: $(cat "$TMP/$name.log")"
}

check "the README's example: qemu-img convert onto the disk, then compare"
qemu-img create -q -f qcow2 "$TMP/src.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0xc3 40M 3M' \
	-c 'write -z 2M 1M' "$TMP/src.qcow2" >/dev/null
(
	cd "$TMP"
	captive 0 convert --run \
		'qemu-img convert -n -f qcow2 -O raw src.qcow2 "$uri"' \
		--size 64M disk.img
)
qemu-img compare -q -f qcow2 -F raw "$TMP/src.qcow2" "$TMP/disk.img" ||
	fail "disk.img differs from src.qcow2"
grep -q -- '--run: the command exited with status 0' "$TMP/convert.log" ||
	fail "no exit line: $(cat "$TMP/convert.log")"
grep -q '^loopd: stopped$' "$TMP/convert.log" || fail "no 'stopped' line"
[[ -z $(ls -A "$TMPDIR") ]] || fail "left in TMPDIR: $(ls -A "$TMPDIR")"
ok "disk.img equals src.qcow2; exit 0; the private socket's directory is gone"

check "V6: loopd exits with CMD's status (128+N for signal N)"
captive 0 st0 --size 1M --run true "$TMP/s.img"
captive 3 st3 --size 1M --run 'exit 3' "$TMP/s.img"
captive 137 st137 --size 1M --run 'kill -KILL $$' "$TMP/s.img"
grep -q 'killed by signal 9 (SIGKILL)' "$TMP/st137.log" ||
	fail "no signal line: $(cat "$TMP/st137.log")"
captive 143 st143 --size 1M --run 'kill -TERM $$' "$TMP/s.img"
ok "true -> 0, exit 3 -> 3, SIGKILL -> 137, SIGTERM -> 143"

check "V5: the variables of a private socket (set over the caller's own)"
env_cmd='printf "%s\n" "uri=$uri" "nbd=$nbd" "port=$port" \
	"unixsocket=$unixsocket" "exportname=$exportname" "tls=${tls-unset}"'
uri=bogus port=1 unixsocket=/nowhere tls=9 \
	captive 0 priv --size 1M --run "$env_cmd"'
	stat -c "%a %F" "$unixsocket" "$(dirname "$unixsocket")"' "$TMP/p.img"
sock=$(sed -n 's/^unixsocket=//p' "$TMP/priv.out")
[[ $sock == "$TMPDIR"/loopd-run.*/sock ]] || fail "unixsocket=$sock"
want="uri=nbd+unix:///?socket=$sock
nbd=nbd+unix:///?socket=$sock
port=
unixsocket=$sock
exportname=
tls=unset
600 socket
700 directory"
[[ $(<"$TMP/priv.out") == "$want" ]] ||
	fail "CMD saw:
$(cat "$TMP/priv.out")
want:
$want"
[[ ! -e $sock && ! -e $(dirname "$sock") ]] || fail "$sock was not removed"
ok "uri=nbd=nbd+unix:///?socket=$sock, port and exportname empty, no tls; 0600 in 0700; removed"

check "V5: the variables of a TCP listener, and of TLS"
captive 0 tcp --size 1M -l 127.0.0.1:0 --run "$env_cmd"'
	nbdinfo --size "$uri"' "$TMP/t.img"
port=$(sed -n 's/^port=//p' "$TMP/tcp.out")
((port > 0)) || fail "port=$port"
grep -qx "uri=nbd://127.0.0.1:$port" "$TMP/tcp.out" || fail "$(cat "$TMP/tcp.out")"
grep -qx "unixsocket=" "$TMP/tcp.out" || fail "unixsocket set for TCP"
grep -qx 1048576 "$TMP/tcp.out" || fail "CMD's nbdinfo got no size"
[[ -z $(ls -A "$TMPDIR") ]] || fail "a private socket with -l"
psktool -u alice -p "$TMP/keys.psk" >/dev/null 2>&1
captive 0 tls --size 1M --tls=require --tls-psk "$TMP/keys.psk" --run \
	'echo "$uri $tls"
	nbdinfo --size "nbds+unix://alice@/?socket=$unixsocket&tls-psk-file=$TMP/keys.psk"' \
	"$TMP/t.img"
[[ $(head -n 1 "$TMP/tls.out") == "nbds+unix:///?socket=$TMPDIR/loopd-run."*"/sock 2" ]] ||
	fail "TLS: CMD saw $(head -n 1 "$TMP/tls.out")"
grep -qx 1048576 "$TMP/tls.out" || fail "no TLS client served"
ok "TCP: uri=nbd://127.0.0.1:$port port=$port; TLS: nbds+unix://... tls=2"

check "V6: CMD's writes are in the file; the final sync runs after CMD"
cat >"$TMP/wr.py" <<'PYEOF'
import sys

import nbd

h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"\xab" * 1048576, 0)
if len(sys.argv) > 2:  # flush, and exit 0 even if it fails
    try:
        h.flush()
        print("flushed")
    except nbd.Error as e:
        print("flush failed:", e.errnum)
h.shutdown()
PYEOF
# No FLUSH from CMD: the only fdatasync is loopd's own, after CMD's end.
captive 0 write --size 4M --run "$PY \"\$TMP/wr.py\" \"\$uri\"" "$TMP/w.img"
left=$(head -c 1M "$TMP/w.img" | tr -d '\253' | wc -c)
((left == 0)) || fail "the write is not in the file"
if command -v strace >/dev/null; then
	# (LeakSanitizer cannot run under ptrace.)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -qq -o "$TMP/strace.txt" -e trace=wait4,fdatasync \
		"$LOOPD" serve --size 4M --run "$PY \"\$TMP/wr.py\" \"\$uri\"" \
		"$TMP/w3.img" </dev/null >/dev/null 2>"$TMP/strace.err" ||
		fail "under strace: $(cat "$TMP/strace.err")"
	cmd_pid=$(sed -n 's/.*started the command (PID \([0-9]*\)).*/\1/p' \
		"$TMP/strace.err")
	# The reaping of CMD by loopd, then a sync: in this order.
	awk -v c="$cmd_pid" '
		$2 ~ "^wait4\\(" c "," && $NF == c { reaped = NR }
		reaped && $2 ~ /^fdatasync\(/ && $NF == 0 { synced = 1 }
		END { exit !synced }' "$TMP/strace.txt" ||
		fail "no fdatasync after CMD $cmd_pid was reaped: $(cat "$TMP/strace.txt")"
	ok "the write is in the file; loopd's fdatasync comes after CMD's end"
else
	ok "the write is in the file (strace is not installed: order not checked)"
fi
# A FLUSH of CMD fails (injected EIO): the export latches (R5), and loopd
# says 1 although CMD, which caught the error, exits 0.
captive 0 flush --size 4M --run "$PY \"\$TMP/wr.py\" \"\$uri\" flush" \
	"$TMP/w2.img"
grep -qx flushed "$TMP/flush.out" || fail "CMD's flush: $(cat "$TMP/flush.out")"
captive 1 latch --size 4M --inject 'error=EIO:sync*1' \
	--run "$PY \"\$TMP/wr.py\" \"\$uri\" flush" "$TMP/w2.img"
grep -qx 'flush failed: 5' "$TMP/latch.out" || fail "CMD: $(cat "$TMP/latch.out")"
grep -q 'latched after a failed sync' "$TMP/latch.log" ||
	fail "no latch line: $(cat "$TMP/latch.log")"
grep -q -- "--run: exit status 1, not the command's 0: the stop failed" \
	"$TMP/latch.log" || fail "no line saying why the status is not CMD's"
ok "with a latched export the exit status is 1, not CMD's 0"

check "V7: SIGTERM to loopd reaches CMD; loopd exits with CMD's status"
env --default-signal=INT "$LOOPD" serve --size 1M --run \
	'echo $$ >"$TMP/cmd.pid"; exec sleep 60' "$TMP/k.img" \
	</dev/null >/dev/null 2>"$TMP/kill.log" &
fg_pid=$!
server_pids+=("$fg_pid")
wait_log "$TMP/kill.log" 'started the command'
for _ in $(seq 100); do
	[[ -s $TMP/cmd.pid ]] && break
	sleep 0.1 # CMD writes its PID, bounded (10 s)
done
cmd_pid=$(<"$TMP/cmd.pid")
on_exit "kill -KILL $cmd_pid 2>/dev/null"
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 143)) || fail "exit status $status, want 143: $(cat "$TMP/kill.log")"
proc_running "$cmd_pid" && fail "CMD $cmd_pid still runs"
grep -q 'sending SIGTERM to the command' "$TMP/kill.log" || fail "no log line"
ok "CMD got SIGTERM, loopd exited 143 in ${elapsed}s"

check "V7: a CMD that ignores SIGTERM is killed after --shutdown-timeout"
env --default-signal=INT "$LOOPD" serve --size 1M --shutdown-timeout 1 \
	--run 'trap "" TERM; echo $$ >"$TMP/cmd2.pid"; exec sleep 60' \
	"$TMP/k.img" </dev/null >/dev/null 2>"$TMP/kill2.log" &
fg_pid=$!
server_pids+=("$fg_pid")
for _ in $(seq 100); do
	[[ -s $TMP/cmd2.pid ]] && break
	sleep 0.1 # CMD writes its PID, bounded (10 s)
done
cmd_pid=$(<"$TMP/cmd2.pid")
on_exit "kill -KILL $cmd_pid 2>/dev/null"
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 137)) || fail "exit status $status, want 137: $(cat "$TMP/kill2.log")"
grep -q 'has not exited; sending SIGKILL' "$TMP/kill2.log" || fail "no log line"
ok "SIGKILL after 1 s; exit status 137 in ${elapsed}s"

# parent_of NAME EWP: a parent shell (in the background, $parent) that
# starts "loopd serve [--exit-with-parent]" on $TMP/NAME.sock and waits;
# sets $pid once the server listens.
parent_of() {
	local name=$1
	shift
	bash -c '"$@" & wait' _ "$LOOPD" serve "$@" -U "$TMP/$name.sock" \
		-P "$TMP/$name.pid" --size 4M "$TMP/$name.img" \
		</dev/null >/dev/null 2>"$TMP/$name.log" &
	parent=$!
	for _ in $(seq 100); do
		[[ -s $TMP/$name.pid ]] && break
		sleep 0.1 # the pidfile is written once listening, bounded (10 s)
	done
	track_pidfile "$TMP/$name.pid" || fail "$name did not start"
}

check "V8: --exit-with-parent: a killed parent stops the server cleanly"
parent_of ewp --exit-with-parent
nbdsh -u "nbd+unix:///?socket=$TMP/ewp.sock" -c 'h.pwrite(b"\xcd" * 65536, 0)'
kill -KILL "$parent"
wait "$parent" 2>/dev/null || true
wait_exit "$pid" || fail "loopd $pid still runs 10 s after its parent died"
grep -q '^loopd: stopped$' "$TMP/ewp.log" || fail "not a clean stop: $(cat "$TMP/ewp.log")"
left=$(head -c 65536 "$TMP/ewp.img" | tr -d '\315' | wc -c)
((left == 0)) || fail "the write is not in the file"
[[ ! -e $TMP/ewp.pid && ! -e $TMP/ewp.sock ]] || fail "pidfile or socket left"
ok "loopd stopped as on SIGTERM (socket and pidfile removed, data in the file)"

if ((EUID == 0)); then
	check "V8: --exit-with-parent after --user (the kernel cleared it)"
	parent_of ewpuser --exit-with-parent --user nobody --group nogroup
	grep -q 'running as uid 65534' "$TMP/ewpuser.log" || fail "not dropped"
	kill -KILL "$parent"
	wait "$parent" 2>/dev/null || true
	wait_exit "$pid" || fail "loopd $pid (as nobody) outlived its parent"
	grep -q '^loopd: stopped$' "$TMP/ewpuser.log" ||
		fail "not a clean stop: $(cat "$TMP/ewpuser.log")"
	ok "loopd running as nobody stopped when its parent died"
fi

check "without --exit-with-parent the server outlives its parent"
parent_of plain -f
kill -KILL "$parent"
wait "$parent" 2>/dev/null || true
for _ in $(seq 20); do
	proc_running "$pid" || fail "loopd $pid exited with its parent"
	sleep 0.1 # 2 s in which it must not exit
done
nbdinfo --size "nbd+unix:///?socket=$TMP/plain.sock" >/dev/null ||
	fail "the orphaned server does not answer"
ok "still serving 2 s after its parent died"

check "bad --run lines are one-line errors"
cli_error '^loopd: --run: empty command$' "$LOOPD" serve --run ' ' \
	-U "$TMP/b.sock" -s 1M "$TMP/b.img"
cli_error '^loopd: --run: given twice' "$LOOPD" serve --run true --run false \
	-U "$TMP/b.sock" -s 1M "$TMP/b.img"
cli_error "^loopd: serve: option '--run' needs a value" "$LOOPD" serve \
	-s 1M "$TMP/b.img" --run

echo "test-captive: all checks passed"
