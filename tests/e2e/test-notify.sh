#!/usr/bin/env bash
# test-notify: readiness notification (V4 in src/serve/systemd.c), checked
# with a datagram listener of our own (no systemd).  READY=1 comes exactly
# once, only when the server is listening and its pidfile is written, with
# MAINPID (the daemon's PID when it daemonises); STOPPING=1 comes when the
# stop begins.  A path and an abstract (@) address both work; --run's CMD
# does not inherit NOTIFY_SOCKET; a malformed address is a one-line error;
# a socket nobody listens on is logged and serving goes on.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo

# listen_notify ADDR OUT PIDFILE SOCK: a datagram listener on ADDR (a path,
# or @NAME for an abstract socket), in the background; sets $nl_pid.  It
# writes one line per message to OUT ("MSG" and the message with | for
# newlines); at READY=1 it adds whether PIDFILE existed and whether SOCK
# accepted a connection at that moment.  It ends after STOPPING=1, or
# after 30 s.  Returns once it is bound.
listen_notify() {
	rm -f "$2" "$2.bound"
	"$PY" - "$@" <<'PYEOF' &
import os
import socket
import sys

addr, out, pidfile, sock = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(out + ".bound", "w").close()
s.settimeout(30)
with open(out, "a") as f:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            f.write("TIMEOUT\n")
            break
        lines = msg.split("\n")
        extra = ""
        if "READY=1" in lines:
            extra = " pidfile=%d" % os.path.exists(pidfile)
            c = socket.socket(socket.AF_UNIX)
            try:
                c.connect(sock)
                extra += " connect=1"
            except OSError:
                extra += " connect=0"
            c.close()
        f.write("MSG " + "|".join(lines) + extra + "\n")
        f.flush()
        if "STOPPING=1" in lines:
            break
PYEOF
	nl_pid=$!
	for _ in $(seq 100); do
		[[ -e $2.bound ]] && return 0
		sleep 0.1 # polling the listener's readiness, bounded (10 s)
	done
	fail "the notify listener did not bind $1"
}

# field OUT NAME: the value of NAME= in the READY message of OUT.
field() {
	grep '^MSG READY=1' "$1" | tr '|' '\n' | sed -n "s/^$2=//p" | cut -d' ' -f1
}

check "V4: READY=1 once listening (foreground), STOPPING=1 at the stop"
listen_notify "$TMP/notify.sock" "$TMP/fg.msgs" "$TMP/fg.pid" "$TMP/fg.sock"
NOTIFY_SOCKET=$TMP/notify.sock start_fg fg --size 1M "$TMP/fg.img"
wait_log "$TMP/fg.msgs" '^MSG READY=1'
(($(grep -c 'READY=1' "$TMP/fg.msgs") == 1)) || fail "READY=1 sent more than once"
grep -q '^MSG READY=1.* pidfile=1 connect=1$' "$TMP/fg.msgs" ||
	fail "READY=1 before the pidfile or the listener: $(cat "$TMP/fg.msgs")"
[[ $(field "$TMP/fg.msgs" MAINPID) == "$fg_pid" ]] ||
	fail "MAINPID is not $fg_pid: $(cat "$TMP/fg.msgs")"
grep -q "STATUS=serving 1 export on nbd+unix:///?socket=$TMP/fg.sock" \
	"$TMP/fg.msgs" || fail "no STATUS line: $(cat "$TMP/fg.msgs")"
ok "READY=1 once, after the pidfile and the listener: $(head -n 1 "$TMP/fg.msgs")"
grep -q STOPPING "$TMP/fg.msgs" && fail "STOPPING=1 before the stop"
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 0)) || fail "exit status $status"
wait_log "$TMP/fg.msgs" '^MSG STOPPING=1'
wait "$nl_pid" || fail "the listener failed"
ok "STOPPING=1 at the stop; exit status 0"

check "V4: an abstract address; a daemon sends its own PID as MAINPID"
abstract="@loopd-test-notify-$$"
listen_notify "$abstract" "$TMP/d.msgs" "$TMP/d.pid" "$TMP/d.sock"
NOTIFY_SOCKET=$abstract start_server d --size 1M "$TMP/d.img"
wait_log "$TMP/d.msgs" '^MSG READY=1'
[[ $(field "$TMP/d.msgs" MAINPID) == "$pid" ]] ||
	fail "MAINPID is not the daemon's $pid: $(cat "$TMP/d.msgs")"
grep -q '^MSG READY=1.* pidfile=1 connect=1$' "$TMP/d.msgs" ||
	fail "READY=1 too early: $(cat "$TMP/d.msgs")"
stop_server "$pid"
wait_log "$TMP/d.msgs" '^MSG STOPPING=1'
wait "$nl_pid" || fail "the listener failed"
ok "READY=1 with MAINPID=$pid on $abstract, then STOPPING=1"

check "V4: --run's CMD does not inherit NOTIFY_SOCKET"
listen_notify "$TMP/run.sock" "$TMP/run.msgs" "$TMP/none" "$TMP/none"
# shellcheck disable=SC2016 # expanded by CMD's shell
NOTIFY_SOCKET=$TMP/run.sock "$LOOPD" serve --size 1M --run \
	'echo "NOTIFY_SOCKET=${NOTIFY_SOCKET-unset}"' "$TMP/run.img" \
	</dev/null >"$TMP/run.out" 2>"$TMP/run.log" || fail "--run failed"
[[ $(<"$TMP/run.out") == NOTIFY_SOCKET=unset ]] ||
	fail "CMD saw $(<"$TMP/run.out")"
wait_log "$TMP/run.msgs" '^MSG STOPPING=1'
wait "$nl_pid" || fail "the listener failed"
ok "CMD saw no NOTIFY_SOCKET; loopd still sent READY=1 and STOPPING=1"

check "V4: a socket nobody listens on is logged, and loopd serves on"
NOTIFY_SOCKET=$TMP/nobody.sock start_fg nobody --size 1M "$TMP/n.img"
nbdinfo --size "$uri" >/dev/null || fail "no service without a listener"
grep -q "NOTIFY_SOCKET=$TMP/nobody.sock: cannot send \"READY=1\"" \
	"$TMP/nobody.log" || fail "no log line: $(cat "$TMP/nobody.log")"
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 0)) || fail "exit status $status"
ok "one line logged, served, exit status 0"

check "V4: a malformed NOTIFY_SOCKET is a one-line error"
for bad in relative.sock @ "/$(printf 'x%.0s' $(seq 120))"; do
	NOTIFY_SOCKET=$bad cli_error '^loopd: NOTIFY_SOCKET=.*expected the absolute path' \
		"$LOOPD" serve -U "$TMP/bad.sock" --size 1M "$TMP/bad.img"
done
[[ ! -e $TMP/bad.sock ]] || fail "a server started"

echo "test-notify: all checks passed"
