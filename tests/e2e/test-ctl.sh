#!/usr/bin/env bash
# test-ctl (Q1-Q8): the control channel and `loopd ctl`.
#   - misuse of `loopd ctl` is one line and exit 2 (usage, an unknown
#     command) or 1 (no such socket, not a socket, nobody listening, not a
#     loopd, the server's own error, another user), never a hang (Q8);
#   - malformed requests sent on the socket itself get one "error:" line
#     each, and the server keeps serving, NBD and control alike (Q1);
#   - `mark` and `loopd trace mark` (TRACE.ctl) both still mark a
#     recording, in order; both sockets go at exit (Q5, Q7);
#   - --control: a live socket in the way is a one-line start error; a
#     default path that cannot be used is a warning, and the server
#     serves (Q7); the --stats-* options' errors are one line (Q6).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

start_server main --size 16M "$TMP/disk.img"
ctl=$TMP/main.ctl

check "usage errors: exit 2, one line (Q8)"
fails 2 'expected PATH COMMAND' "$LOOPD" ctl
fails 2 'expected PATH COMMAND' "$LOOPD" ctl "$ctl"
fails 2 "unknown command 'frobnicate'" "$LOOPD" ctl "$ctl" frobnicate
fails 2 'unknown option' "$LOOPD" ctl "$ctl" stats --xml
fails 2 'at most one' "$LOOPD" ctl "$ctl" stats --json --text
fails 2 'one LABEL' "$LOOPD" ctl "$ctl" mark
fails 2 'one line' "$LOOPD" ctl "$ctl" mark $'two\nlines'
"$LOOPD" ctl --help | grep -q 'Usage: loopd ctl PATH COMMAND' ||
	fail "ctl --help"
ok "ctl --help"

check "no server to ask: exit 1, one line saying why (Q8)"
fails 1 'no such socket' "$LOOPD" ctl "$TMP/none.ctl" stats
: >"$TMP/plain"
fails 1 'not a socket' "$LOOPD" ctl "$TMP/plain" stats
# A socket file nobody listens on, as a killed server leaves behind.
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
	"$TMP/stale.ctl"
fails 1 'nobody is listening' "$LOOPD" ctl "$TMP/stale.ctl" stats
fails 1 'not a loopd control socket' "$LOOPD" ctl "$socket" stats
fails 1 'not recording' "$LOOPD" ctl "$ctl" mark x

check "another user cannot connect (0600, Q3)"
if ((EUID == 0)) && command -v runuser >/dev/null &&
	runuser -u nobody -- "$LOOPD" --version >/dev/null 2>&1; then
	# A directory anyone may enter: only the socket's mode stands in the way.
	pub=$(mktemp -d /tmp/loopd-ctl-pub.XXXXXX)
	on_exit "rm -rf '$pub'"
	chmod 755 "$pub"
	main=("$pid" "$socket" "$uri")
	start_server pub --size 1M --control "$pub/c.ctl" "$TMP/pub.img"
	[[ $(stat -c %a "$pub/c.ctl") == 600 ]] || fail "$pub/c.ctl not 0600"
	fails 1 'permission denied' runuser -u nobody -- "$LOOPD" ctl \
		"$pub/c.ctl" stats
	"$LOOPD" ctl "$pub/c.ctl" stats >/dev/null || fail "root is refused"
	stop_server "$pid"
	pid=${main[0]} socket=${main[1]} uri=${main[2]}
else
	echo "  (skipped: needs root, runuser, and a loopd that nobody can run)"
fi

check "malformed requests: one error line each; the server serves on (Q1)"
"$PY" - "$ctl" "$uri" <<'PYEOF'
import socket
import sys

from nbdtest import connect, fail, ok
from test_stats import ask

ctl, uri = sys.argv[1], sys.argv[2]
cases = [
    (b"bogus\n", b'unknown command "bogus"'),
    (b"\n", b"unknown command"),
    (b"stats yaml\n", b"expected text, json or prometheus"),
    (b"mark\n", b"needs a LABEL"),
    (b"x" * 10000 + b"\n", b"expected one line"),
    (b"\x00\xff\x01garbage\n", b"unknown command"),
]
for line, want in cases:
    a = ask(ctl, line)
    if not a.startswith(b"error: ") or a.count(b"\n") != 1 or \
            not a.endswith(b"\n") or want not in a:
        fail(f"{line[:20]!r}: answered {a!r}")
    ok(f"{line[:20]!r} -> {a.decode(errors='replace').strip()}")
with socket.socket(socket.AF_UNIX) as s:  # no newline, then EOF
    s.connect(ctl)
    s.sendall(b"stats")
    s.shutdown(socket.SHUT_WR)
    a = s.recv(4096)
if not a.startswith(b"error: expected one line"):
    fail(f"a line without a newline: {a!r}")
ok("a line without its newline -> error")
if not ask(ctl, b"stats json\n").startswith(b"ok\n{"):
    fail("stats after the bad requests")
h = connect(uri)
h.pwrite(b"\x01" * 4096, 0)
if h.pread(4096, 0) != b"\x01" * 4096:
    fail("NBD after the bad requests")
ok("control and NBD still served")
PYEOF

check "--control: a live socket in the way is a start error (Q7)"
fails 1 'already listening' "$LOOPD" serve -U "$TMP/x.sock" \
	--control "$ctl" --size 1M "$TMP/x.img"
fails 1 'empty path' "$LOOPD" serve -U "$TMP/x.sock" --control '' \
	--size 1M "$TMP/x.img"
"$LOOPD" ctl "$ctl" stats >/dev/null || fail "the first server lost its socket"
ok "the first server's socket still answers"

check "--stats-* misuse: one line, exit 1 (Q6)"
fails 1 'need --stats-file' "$LOOPD" serve -U "$TMP/x.sock" \
	--stats-interval 5 --size 1M "$TMP/x.img"
fails 1 'need --stats-file' "$LOOPD" serve -U "$TMP/x.sock" \
	--stats-format json --size 1M "$TMP/x.img"
fails 1 'stats-interval 0' "$LOOPD" serve -U "$TMP/x.sock" \
	--stats-file "$TMP/s" --stats-interval 0 --size 1M "$TMP/x.img"
fails 1 'stats-format xml' "$LOOPD" serve -U "$TMP/x.sock" \
	--stats-file "$TMP/s" --stats-format xml --size 1M "$TMP/x.img"
fails 1 'stats-file' "$LOOPD" serve -U "$TMP/x.sock" \
	--stats-file '' --size 1M "$TMP/x.img"
[[ ! -e $TMP/s ]] || fail "a stats file was written by a refused start"

check "a default path that cannot be used: a warning; it serves (Q7)"
mkdir "$TMP/blocked.ctl" # a directory where the socket would go
start_server blocked --size 1M "$TMP/b.img"
grep -q 'warning: no control socket at .*blocked.ctl' "$TMP/blocked.log" ||
	fail "no warning: $(cat "$TMP/blocked.log")"
nbdinfo "$uri" >/dev/null || fail "the server does not serve"
ok "warned, and serving"
stop_server "$pid"

check "marks: ctl mark and trace mark (TRACE.ctl) both land, in order (Q5)"
trace=$TMP/t.trace
start_server rec --size 1M --record "$trace" "$TMP/r.img"
[[ -S $trace.ctl && -S $TMP/rec.ctl ]] || fail "missing TRACE.ctl or rec.ctl"
[[ $(stat -c %a "$trace.ctl") == 600 ]] || fail "TRACE.ctl is not 0600"
"$LOOPD" trace mark "$trace" "first, by trace mark" || fail "trace mark"
"$LOOPD" ctl "$TMP/rec.ctl" mark "second, by ctl mark" || fail "ctl mark"
"$LOOPD" trace mark "$trace" "" || fail "trace mark with an empty label"
fails 2 'at most 4096' "$LOOPD" ctl "$TMP/rec.ctl" mark "$(head -c 4097 /dev/zero | tr '\0' x)"
"$LOOPD" ctl "$TMP/rec.ctl" mark "$(head -c 4096 /dev/zero | tr '\0' x)" ||
	fail "a 4096-byte label"
stop_server "$pid"
[[ ! -e $trace.ctl && ! -e $TMP/rec.ctl ]] || fail "sockets left behind"
"$LOOPD" trace dump "$trace" | grep MARK >"$TMP/marks"
cut -c 1-80 "$TMP/marks"
(($(wc -l <"$TMP/marks") == 4)) || fail "want 4 marks"
sed -n 1p "$TMP/marks" | grep -q '"first, by trace mark"' || fail "mark 1"
sed -n 2p "$TMP/marks" | grep -q '"second, by ctl mark"' || fail "mark 2"
ok "4 marks, in order; TRACE.ctl and rec.ctl removed at exit"

echo "test-ctl: all checks passed"
