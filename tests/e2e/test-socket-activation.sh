#!/usr/bin/env bash
# test-socket-activation: systemd's socket activation (V1-V3 in
# src/serve/systemd.c).  loopd started by systemd-socket-activate serves
# the TCP and Unix sockets it was given, names them in its log, opens no
# socket of its own (not the default port) and leaves the Unix socket file
# to its owner; the LISTEN_* variables are gone for --run's CMD.  Every
# malformed LISTEN_PID, LISTEN_FDS or LISTEN_FDNAMES, and -U or -l on top
# of inherited sockets, is a one-line error with exit status 1, never a
# fallback to the default port.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo nbdsh ss systemd-socket-activate
export TMP # for the python launcher and --run's commands

# A free TCP port on 127.0.0.1 (systemd-socket-activate cannot take port 0).
free_port() {
	"$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# activate NAME SA-ARGS... -- SERVE-ARGS...: "loopd serve -f SERVE-ARGS"
# under "systemd-socket-activate SA-ARGS" (-l ADDR, --fdname=...), in the
# background of this shell; sets $fg_pid (loopd's PID, as
# systemd-socket-activate execs it).  Returns once every -l ADDR listens;
# loopd itself starts on the first connection.
activate() {
	local name=$1 n=0
	local -a sa=()
	shift
	while [[ $1 != -- ]]; do
		[[ $1 != -l ]] || n=$((n + 1))
		sa+=("$1")
		shift
	done
	shift
	env --default-signal=INT systemd-socket-activate "${sa[@]}" \
		"$LOOPD" serve -f "$@" </dev/null >"$TMP/$name.out" \
		2>"$TMP/$name.log" &
	fg_pid=$!
	server_pids+=("$fg_pid")
	for _ in $(seq 100); do
		(($(grep -c '^Listening on ' "$TMP/$name.log") == n)) && return 0
		kill -0 "$fg_pid" 2>/dev/null ||
			fail "systemd-socket-activate exited: $(cat "$TMP/$name.log")"
		sleep 0.1 # polling its log, bounded (10 s)
	done
	fail "systemd-socket-activate not listening after 10 s"
}

# listening_ports PID: the TCP ports that process PID listens on.
listening_ports() {
	ss -Hltnp | grep -F "pid=$1," | awk '{ n = split($4, a, ":"); print a[n] }' |
		sort -u | tr '\n' ' '
}

check "V2/V3: TCP and Unix sockets from systemd-socket-activate are served"
port=$(free_port)
activate tcp -l "127.0.0.1:$port" -l "$TMP/sa.sock" -- --size 16M "$TMP/disk.img"
# The first connection makes systemd-socket-activate exec loopd.
size=$(timeout 20 nbdinfo --size "nbd://127.0.0.1:$port") ||
	fail "nbdinfo on the inherited TCP socket failed: $(cat "$TMP/tcp.log")"
((size == 16 << 20)) || fail "size $size over TCP, want 16 MiB"
size=$(timeout 20 nbdinfo --size "nbd+unix:///?socket=$TMP/sa.sock")
((size == 16 << 20)) || fail "size $size over the Unix socket"
ok "nbdinfo answered on both inherited sockets"
grep -qF "listening on inherited socket fd 3 (nbd://127.0.0.1:$port)" \
	"$TMP/tcp.log" || fail "no log line names fd 3: $(cat "$TMP/tcp.log")"
grep -qF "listening on inherited socket fd 4 (nbd+unix:///?socket=$TMP/sa.sock)" \
	"$TMP/tcp.log" || fail "no log line names fd 4"
ok "the log names each inherited socket and its URI"
if grep -E 'listening on nbd[^ ]*://127\.0\.0\.1:10809' "$TMP/tcp.log"; then
	fail "loopd opened the default port as well"
fi
ports=$(listening_ports "$fg_pid")
[[ $ports == "$port " ]] ||
	fail "loopd (PID $fg_pid) listens on TCP ports '$ports', want only $port"
ok "loopd listens on port $port only (not on 10809)"
nbdsh -u "nbd://127.0.0.1:$port" -c 'h.pwrite(b"\xa5" * 65536, 1 << 20)' -c 'h.flush()'
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 0)) || fail "exit status $status after SIGTERM"
[[ -S $TMP/sa.sock ]] || fail "loopd removed the inherited socket file (V3)"
left=$(dd if="$TMP/disk.img" bs=64K skip=16 count=1 2>/dev/null |
	tr -d '\245' | wc -c)
((left == 0)) || fail "the write over the inherited socket is not in the file"
ok "stopped with status 0; the socket file is still there; the data is in the file"

check "LISTEN_FDNAMES names the sockets in the log"
port=$(free_port)
activate names -l "127.0.0.1:$port" --fdname=nbd -- --size 1M "$TMP/named.img"
timeout 20 nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null
grep -qF "listening on inherited socket fd 3 \"nbd\" (nbd://127.0.0.1:$port)" \
	"$TMP/names.log" || fail "no named line: $(cat "$TMP/names.log")"
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 0)) || fail "exit status $status"
ok "fd 3 is logged with its name \"nbd\""

check "V1: --run's CMD sees the inherited socket's URI, and no LISTEN_*"
port=$(free_port)
# shellcheck disable=SC2016 # expanded by CMD's shell
activate run -l "127.0.0.1:$port" -E TMP -- --size 1M --run \
	'set -e; : "${TMP:?}"
	printf "%s\n" "${LISTEN_PID-unset}" "${LISTEN_FDS-unset}" \
	"${LISTEN_FDNAMES-unset}" "$uri" "$port" >"$TMP/run.env"
	nbdinfo --size "$uri" >>"$TMP/run.env"' "$TMP/run.img"
# (systemd-socket-activate passes on only the variables given with -E.)
# Only wakes systemd-socket-activate: CMD may be done before loopd has
# answered this one.
timeout 20 nbdinfo --size "nbd://127.0.0.1:$port" >/dev/null 2>&1 || true
exit_status "$fg_pid" 20
((status == 0)) || fail "exit status $status: $(cat "$TMP/run.log")"
mapfile -t env_lines <"$TMP/run.env"
[[ ${#env_lines[@]} -eq 6 ]] || fail "CMD wrote ${#env_lines[@]} lines, want 6"
[[ ${env_lines[0]} == unset && ${env_lines[1]} == unset && ${env_lines[2]} == unset ]] ||
	fail "CMD saw LISTEN_PID=${env_lines[0]} LISTEN_FDS=${env_lines[1]} LISTEN_FDNAMES=${env_lines[2]}"
[[ ${env_lines[3]} == "nbd://127.0.0.1:$port" && ${env_lines[4]} == "$port" ]] ||
	fail "CMD saw uri=${env_lines[3]} port=${env_lines[4]}"
((env_lines[5] == 1 << 20)) || fail "CMD's nbdinfo saw size ${env_lines[5]}"
ok "LISTEN_* unset; uri=${env_lines[3]}; CMD's client was served"

# sa_exec FD3 [VAR=VALUE...] -- CMD...: exec CMD with LISTEN_PID set to its
# own PID and fd 3 as FD3 says: listen (a listening Unix socket), bound (a
# bound Unix socket that does not listen), dgram (a Unix datagram socket),
# file (a regular file) or none (closed).  VAR=VALUE pairs are set after
# LISTEN_PID, so they can replace it.
sa_exec() {
	"$PY" -c '
import os, socket, sys
what, rest = sys.argv[1], sys.argv[2:]
cut = rest.index("--")
env = dict(os.environ, LISTEN_PID=str(os.getpid()))
env.update(kv.split("=", 1) for kv in rest[:cut])
path = os.path.join(os.environ["TMP"], "fd3.sock")
if os.path.exists(path):
    os.unlink(path)
fd = None
if what in ("listen", "bound", "dgram"):
    s = socket.socket(socket.AF_UNIX,
                      socket.SOCK_DGRAM if what == "dgram" else socket.SOCK_STREAM)
    s.bind(path)
    if what == "listen":
        s.listen()
    fd = s.fileno()
elif what == "file":
    fd = os.open(os.path.join(os.environ["TMP"], "plain"), os.O_RDWR | os.O_CREAT)
if fd is None:
    try:
        os.close(3)
    except OSError:
        pass
elif fd != 3:
    os.dup2(fd, 3)  # inheritable
else:
    os.set_inheritable(3, True)
os.execve(rest[cut + 1], rest[cut + 1:], env)
' "$@"
}

n_bad=0
# expect_bad PATTERN FD3 [VAR=VALUE...] -- SERVE-ARGS...: loopd serve must
# exit 1 with one line matching PATTERN, having served nothing.
expect_bad() {
	local pattern=$1 rc=0
	shift
	n_bad=$((n_bad + 1))
	local pidfile="$TMP/bad$n_bad.pid" err="$TMP/bad$n_bad.err"
	local -a pre=()
	while [[ $1 != -- ]]; do
		pre+=("$1")
		shift
	done
	shift
	sa_exec "${pre[@]}" -- "$LOOPD" serve --pidfile "$pidfile" "$@" \
		</dev/null >/dev/null 2>"$err" || rc=$?
	if ((rc == 0)); then
		track_pidfile "$pidfile" || true
		fail "${pre[*]} loopd serve $* exited 0 (a fallback?): $(cat "$err")"
	fi
	((rc == 1)) || fail "${pre[*]}: exit status $rc, want 1"
	(($(wc -l <"$err") == 1)) || fail "${pre[*]}: not one line: $(cat "$err")"
	grep -Eq -- "$pattern" "$err" ||
		fail "${pre[*]}: message does not match /$pattern/: $(cat "$err")"
	[[ ! -e $pidfile ]] || fail "${pre[*]}: a server started"
	ok "${pre[*]} -> $(cat "$err")"
}

check "V2: malformed LISTEN_* are one-line errors, never the default port"
expect_bad 'LISTEN_FDS=abc: expected a number' listen LISTEN_FDS=abc -- \
	-s 1M "$TMP/b.img"
expect_bad 'LISTEN_FDS=0: expected a number' listen LISTEN_FDS=0 -- \
	-s 1M "$TMP/b.img"
expect_bad 'LISTEN_FDS=33: expected a number of sockets from 1 to 32' \
	listen LISTEN_FDS=33 -- -s 1M "$TMP/b.img"
expect_bad 'LISTEN_FDS=-1: expected a number' listen LISTEN_FDS=-1 -- \
	-s 1M "$TMP/b.img"
expect_bad 'LISTEN_FDS=1: fd 3 is not open' none LISTEN_FDS=1 -- \
	-s 1M "$TMP/b.img"
expect_bad 'LISTEN_FDS=2: fd 4 is not open' listen LISTEN_FDS=2 -- \
	-s 1M "$TMP/b.img"
expect_bad 'fd 3 is not a socket' file LISTEN_FDS=1 -- -s 1M "$TMP/b.img"
expect_bad 'fd 3 is not a listening socket' bound LISTEN_FDS=1 -- \
	-s 1M "$TMP/b.img"
expect_bad 'fd 3 is not a Unix, IPv4 or IPv6 stream socket' dgram \
	LISTEN_FDS=1 -- -s 1M "$TMP/b.img"
expect_bad 'LISTEN_FDNAMES=a:b: expected 1 name separated' listen LISTEN_FDS=1 \
	LISTEN_FDNAMES=a:b -- -s 1M "$TMP/b.img"
expect_bad 'LISTEN_PID=12x: expected a process ID' listen LISTEN_PID=12x \
	LISTEN_FDS=1 -- -s 1M "$TMP/b.img"
expect_bad 'LISTEN_PID is loopd.s PID but LISTEN_FDS is not set' listen -- \
	-s 1M "$TMP/b.img"

check "V3: -U or -l on top of inherited sockets is refused"
expect_bad '-U/--unix and -l/--listen cannot be used with the 1 socket' \
	listen LISTEN_FDS=1 -- -U "$TMP/own.sock" -s 1M "$TMP/b.img"
[[ ! -e $TMP/own.sock ]] || fail "-U's socket was created"
expect_bad 'cannot be used with the 1 socket passed by LISTEN_FDS' \
	listen LISTEN_FDS=1 -- -l 127.0.0.1:0 -s 1M "$TMP/b.img"

check "V1: LISTEN_* for another PID are ignored (and unset for CMD)"
# shellcheck disable=SC2016 # expanded by CMD's shell
sa_exec listen LISTEN_PID=1 LISTEN_FDS=1 LISTEN_FDNAMES=x -- "$LOOPD" serve \
	-U "$TMP/mine.sock" -s 1M --run \
	'printf "%s %s %s %s\n" "${LISTEN_PID-unset}" "${LISTEN_FDS-unset}" \
	"${LISTEN_FDNAMES-unset}" "$unixsocket"' "$TMP/b.img" \
	</dev/null >"$TMP/other.out" 2>"$TMP/other.log" ||
	fail "loopd failed: $(cat "$TMP/other.log")"
[[ $(<"$TMP/other.out") == "unset unset unset $TMP/mine.sock" ]] ||
	fail "CMD printed '$(<"$TMP/other.out")'"
if grep -q 'inherited' "$TMP/other.log"; then
	fail "loopd took a socket meant for PID 1"
fi
grep -q '^loopd: ignoring LISTEN_FDS=1: LISTEN_PID=1 is not this process' \
	"$TMP/other.log" || fail "no line says why: $(cat "$TMP/other.log")"
ok "served on -U only; CMD saw: $(<"$TMP/other.out")"

echo "test-socket-activation: all checks passed"
