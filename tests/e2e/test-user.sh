#!/usr/bin/env bash
# test-user: --user/--group drop root once the sockets are bound and the
# files open (issue 6, "Hostile networks").
#
#   every thread of the server runs as nobody:nogroup, with no supplementary
#   groups and no capabilities, and root cannot be regained;
#   the export (a root-only file in a root-only directory) is still served:
#   writes, FUA, flush and reads through nbdsh;
#   SIGTERM still stops it cleanly (exit path: fdatasync, "stopped");
#   an unknown user or group, or a non-root caller, is a one-line error.
set -euo pipefail
source "$(dirname "$0")/functions.sh"

requires_root
requires nbdsh setpriv
getent passwd nobody >/dev/null || skip "no user 'nobody'"
getent group nogroup >/dev/null || skip "no group 'nogroup'"
uid=$(id -u nobody)
gid=$(getent group nogroup | cut -d: -f3)

chmod 0700 "$TMP"
truncate -s 16M "$TMP/disk.img"
chmod 0600 "$TMP/disk.img"
start_server u --user nobody --group nogroup "$TMP/disk.img"

check "every thread runs as nobody:nogroup without capabilities"
n=0
for st in /proc/"$pid"/task/*/status; do
	read -r _ ruid euid suid fsuid < <(grep '^Uid:' "$st")
	read -r _ rgid egid sgid fsgid < <(grep '^Gid:' "$st")
	[[ "$ruid $euid $suid $fsuid" == "$uid $uid $uid $uid" ]] ||
		fail "$st: Uid $ruid $euid $suid $fsuid"
	[[ "$rgid $egid $sgid $fsgid" == "$gid $gid $gid $gid" ]] ||
		fail "$st: Gid $rgid $egid $sgid $fsgid"
	groups=$(grep '^Groups:' "$st" | cut -f2 | tr -d ' ')
	[[ -z $groups || $groups == "$gid" ]] ||
		fail "$st: supplementary groups '$groups'"
	grep -q '^CapEff:[[:space:]]*0000000000000000$' "$st" ||
		fail "$st: $(grep CapEff "$st")"
	n=$((n + 1))
done
((n >= 2)) || fail "expected the main thread and workers, saw $n threads"
grep -q "running as uid $uid, gid $gid" "$TMP/u.log" ||
	fail "no 'running as' line in the log"
ok "$n threads: uid $uid, gid $gid, no capabilities"

check "the root-only file is still served"
nbdsh -u "$uri" -c '
h.pwrite(b"U" * 65536, 1 << 20, nbd.CMD_FLAG_FUA)
h.pwrite(b"u" * 4096, 0)
h.flush()
assert h.pread(65536, 1 << 20) == b"U" * 65536
assert h.pread(4096, 0) == b"u" * 4096'
[[ $(head -c 4096 "$TMP/disk.img") == "$(printf 'u%.0s' $(seq 4096))" ]] ||
	fail "the flushed write is not in the file"
ok "write, FUA, flush and read as nobody"

check "SIGTERM stops it cleanly"
stop_server "$pid"
grep -q "stopped" "$TMP/u.log" || fail "no clean stop in the log"
grep -q "fdatasync at exit failed" "$TMP/u.log" && fail "exit sync failed"
ok "stopped"

cli_error "no such user" "$LOOPD" serve -f -U "$TMP/x.sock" \
	--user no-such-user-here "$TMP/disk.img"
cli_error "no such group" "$LOOPD" serve -f -U "$TMP/x.sock" \
	--group no-such-group-here "$TMP/disk.img"
# As nobody, before any file is touched: the check comes first.
cli_error "must be started as root" setpriv --reuid=nobody --regid=nogroup \
	--clear-groups "$LOOPD" serve -f -U /nonexistent/x.sock --user root \
	/nonexistent/disk.img
[[ ! -e $TMP/x.sock ]] || fail "a refused command line left a socket"

echo "PASS: test-user"
