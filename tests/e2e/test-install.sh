#!/usr/bin/env bash
# test-install: `meson install --destdir` puts loopd, its man page, the
# systemd units and the example environment file where meson says they go
# (contrib/systemd, docs/service.md); the service's ExecStart names the
# installed binary; systemd-analyze verify finds nothing to say about the
# units; and the service's command line, expanded as systemd would with
# example.conf, serves the disk under socket activation as the export named
# after the instance, with READY=1 (V2, V4); the man page renders without
# a groff warning.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires meson nbdinfo systemd-analyze systemd-socket-activate groff

build=$(dirname "$LOOPD")
dest=$TMP/dest

check "meson install --destdir installs every file meson lists"
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" \
	>"$TMP/install.log" 2>&1 || fail "meson install: $(cat "$TMP/install.log")"
meson introspect --installed "$build" >"$TMP/installed.json"
"$PY" - "$TMP/installed.json" "$dest" >"$TMP/paths" <<'PYEOF'
import json
import os
import sys

want = {"loopd", "loopd.1", "loopd@.service", "loopd@.socket", "example.conf"}
got = {}
for src, dst in json.load(open(sys.argv[1])).items():
    got[os.path.basename(dst)] = dst
missing = want - set(got)
if missing:
    sys.exit("meson does not install: %s" % " ".join(sorted(missing)))
for name in sorted(want):
    path = sys.argv[2] + got[name]
    if not os.path.isfile(path):
        sys.exit("not installed: " + path)
    print(name, got[name])
PYEOF
path_of() {
	awk -v n="$1" '$1 == n { print $2 }' "$TMP/paths"
}
bin=$(path_of loopd)
service=$(path_of loopd@.service)
socket_unit=$(path_of loopd@.socket)
conf=$(path_of example.conf)
[[ -x $dest$bin ]] || fail "$dest$bin is not executable"
[[ $(dirname "$service") == $(dirname "$socket_unit") ]] ||
	fail "the units are in two directories"
[[ $(dirname "$(path_of loopd.1)") == */man1 ]] || fail "the man page is not in man1"
"$dest$bin" --version >/dev/null || fail "the installed loopd does not run"
ok "$(tr '\n' ' ' <"$TMP/paths")"

check "ExecStart runs the installed loopd, in the foreground"
exec_start=$(sed -n 's/^ExecStart=//p' "$dest$service")
[[ $exec_start == "$bin serve -f "* ]] ||
	fail "ExecStart=$exec_start does not start $bin serve -f"
grep -q '@bindir@' "$dest$service" && fail "an unsubstituted @bindir@"
ok "ExecStart=$exec_start"

check "systemd-analyze verify: nothing to say about the units"
mkdir "$TMP/units"
# verify checks that ExecStart's binary exists: point it at the copy.
sed "s|^ExecStart=$bin |ExecStart=$dest$bin |" "$dest$service" \
	>"$TMP/units/loopd@.service"
cp "$dest$socket_unit" "$TMP/units/"
(cd "$TMP/units" && systemd-analyze verify --man=no ./loopd@vm1.service \
	./loopd@vm1.socket) >"$TMP/verify.log" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$TMP/verify.log")"
[[ ! -s $TMP/verify.log ]] || fail "systemd-analyze verify says: $(cat "$TMP/verify.log")"
# A companion: verify does fail a broken unit (so the check can fail).
sed 's/^Type=notify$/Type=notifyy/' "$TMP/units/loopd@.service" \
	>"$TMP/units/broken@.service"
(cd "$TMP/units" && systemd-analyze verify --man=no ./broken@vm1.service) \
	>"$TMP/verify2.log" 2>&1 || true
[[ -s $TMP/verify2.log ]] || fail "verify did not notice Type=notifyy"
grep -Eq '^(NoNewPrivileges=yes|ProtectSystem=strict|PrivateDevices=yes)$' \
	"$dest$service" || fail "no hardening in the service"
ok "loopd@vm1.service and loopd@vm1.socket verify clean (a broken copy does not)"

check "the installed man page renders without a groff warning"
man=$dest$(path_of loopd.1)
groff -man -ww -z "$man" >"$TMP/groff.log" 2>&1 || fail "groff failed: $(cat "$TMP/groff.log")"
[[ ! -s $TMP/groff.log ]] || fail "groff -ww says: $(head -n 3 "$TMP/groff.log")"
# A companion: a stray control character (a font escape "\fR" written
# as a form feed) does make groff warn, so the check can fail.
printf '.TH X 1\n.SH A\n.BI @ N\fR,\n' >"$TMP/broken.1"
groff -man -ww -z "$TMP/broken.1" >"$TMP/groff2.log" 2>&1 || true
[[ -s $TMP/groff2.log ]] || fail "groff did not warn of a form feed"
ok "groff -man -ww: nothing to say about $(path_of loopd.1) (a broken page warns)"

check "the service's command line, with example.conf, under socket activation"
# What systemd does for loopd@vm1: EnvironmentFile= (NAME=VALUE lines),
# %i, $LOOPD_ARGS split at spaces, ${LOOPD_DISK} one word; the socket unit
# listens (here $TMP/vm1.sock instead of /run/loopd/vm1.sock).
LOOPD_ARGS=
LOOPD_DISK=
while IFS='=' read -r name value; do
	case $name in
	LOOPD_ARGS) LOOPD_ARGS=$value ;;
	LOOPD_DISK) LOOPD_DISK=$value ;;
	esac
done < <(grep -v '^#' "$dest$conf")
[[ $LOOPD_DISK == /var/lib/loopd/vm1.img && -n $LOOPD_ARGS ]] ||
	fail "example.conf: LOOPD_DISK=$LOOPD_DISK LOOPD_ARGS=$LOOPD_ARGS"
LOOPD_DISK=$TMP/vm1.img # not /var/lib/loopd
words=()
read -ra line <<<"$exec_start"
# shellcheck disable=SC2016 # systemd's own syntax, matched literally
for w in "${line[@]}"; do
	if [[ $w == '$LOOPD_ARGS' ]]; then
		read -ra args <<<"$LOOPD_ARGS"
		words+=("${args[@]}")
	else
		w=${w//%i/vm1}
		words+=("${w//'${LOOPD_DISK}'/$LOOPD_DISK}")
	fi
done
words[0]=$LOOPD # the binary under test, with its sanitizers
ok "ExecStart expands to: ${words[*]}"
"$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[1] + ".bound", "w").close()
s.settimeout(60)
open(sys.argv[2], "w").write(s.recv(4096).decode())
' "$TMP/notify.sock" "$TMP/notify.msg" &
listener=$!
for _ in $(seq 100); do
	[[ -e $TMP/notify.sock.bound ]] && break
	sleep 0.1 # the listener's readiness, bounded (10 s)
done
env --default-signal=INT NOTIFY_SOCKET="$TMP/notify.sock" \
	systemd-socket-activate -l "$TMP/vm1.sock" -E NOTIFY_SOCKET \
	"${words[@]}" </dev/null >/dev/null 2>"$TMP/unit.log" &
fg_pid=$!
server_pids+=("$fg_pid")
wait_log "$TMP/unit.log" '^Listening on '
nbdinfo --list "nbd+unix:///?socket=$TMP/vm1.sock" >"$TMP/list" ||
	fail "nbdinfo: $(cat "$TMP/unit.log")"
grep -q 'export="vm1"' "$TMP/list" || fail "no export vm1: $(cat "$TMP/list")"
size=$(nbdinfo --size "nbd+unix:///vm1?socket=$TMP/vm1.sock")
want=$(numfmt --from=iec "$(grep -o -- '--size [0-9]*[KMGT]' <<<"$LOOPD_ARGS" | cut -d' ' -f2)")
((size == want)) || fail "size $size, want $want (--size of example.conf)"
wait "$listener" || fail "no notification"
grep -qx 'READY=1' "$TMP/notify.msg" ||
	fail "no READY=1: $(cat "$TMP/notify.msg")"
grep -q "listening on inherited socket fd 3 (nbd+unix:///?socket=$TMP/vm1.sock)" \
	"$TMP/unit.log" || fail "not the inherited socket: $(cat "$TMP/unit.log")"
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 0)) || fail "exit status $status after SIGTERM"
ok "export \"vm1\" ($size bytes) on the inherited socket; READY=1; exit 0"

echo "test-install: all checks passed"
