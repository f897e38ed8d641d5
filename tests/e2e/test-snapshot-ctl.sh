#!/usr/bin/env bash
# test-snapshot-ctl: `loopd ctl PATH snapshot [--export NAME] [--sync]
# [--no-wait] DEST` as a user meets it (J1 in serve/snapshots.c, I1-I9 in
# engine/snapshot.c, R8 in sched.c, S10 in trace/states.c, Q8 in ctl.c).
#   - on a file in $TMP, a file on tmpfs (/dev/shm) and mem:, written with
#     nbdsh: DEST equals the export byte for byte, mode 0600, the method
#     is named (copy-before-write where there are no reflinks, I3-I4), a
#     checkpoint named after DEST is made (I1); later writes do not
#     change DEST; DEST on another filesystem than the export works;
#   - under fio (randwrite, QD16, fsync every 128, verify=crc32c) with
#     --record and every write held 4 ms in flight (--inject): three
#     snapshots taken during the load are each a crash state at their own
#     instant (`loopd crash --is-state SNAP --at "snapshot NAME"`), the
#     first is not one at the third's instant, fio's verify passes, and
#     the writes held and the longest hold are reported (I2, R8);
#   - --sync: the export and DEST are synced (strace: fdatasync/fsync of
#     the export, DEST.part and DEST's directory), and without --sync
#     none of them is (I3, I6);
#   - a write in flight at the instant (held 1 s by --inject) is
#     drained into DEST, one sent after it is held and then copied before
#     it lands: DEST has the first and not the second, the answer counts
#     one write held, a drain of about 1 s and bytes copied before
#     writes (I2, I4, R8);
#   - --no-wait, the same way: the answer says "complete: no"; DEST
#     appears (bounded poll) with the contents at its instant (I6); the
#     next snapshot waits for a --no-wait copy (I7);
#   - a relative DEST is made absolute by loopd ctl, from its own cwd (J1);
#     a DEST whose name cannot be a checkpoint's gets none, with a note;
#   - errors are one line on stderr, exit 1 (refused) or 2 (usage), leave
#     nothing at DEST, make no checkpoint, and the server serves on: DEST
#     exists (never replaced, I6), DEST.part exists, a missing directory,
#     an unknown option, no DEST, two DESTs, an unknown --export, a
#     read-only export, a relative DEST sent to the socket itself;
#   - a stop during a --no-wait copy leaves no DEST.part, and DEST only
#     if its copy had ended (I8);
#   - the negative control: a copy of the backing file taken without the
#     drain, while a FUA write is held in flight, holds a later write but
#     not that earlier durable one, and --is-state refuses it (exit 1),
#     naming the low block; loopd's snapshot taken at that moment passes.
# Every snapshot taken on a recorded server passes --is-state at its
# instant.  `--export ''` names the default export, as it does for
# `checkpoint` (Q9 in control.c).  Last, --sync on a failing sync latches
# the export like a failed FLUSH (R8, R5): the snapshot fails, the next
# FLUSH gets EIO, a synced snapshot is then refused, a plain one taken.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdsh nbdinfo nbdcopy fio cmp
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"

MiB=$((1 << 20))

# snap CTL ARGS...: `loopd ctl CTL snapshot ARGS`, which must succeed; its
# answer is in $TMP/snap.out (and shown).
snap() {
	local c=$1 rc=0
	shift
	timeout 120 "$LOOPD" ctl "$c" snapshot "$@" >"$TMP/snap.out" \
		2>"$TMP/snap.err" || rc=$?
	((rc == 0)) || fail "snapshot $*: exit $rc: $(cat "$TMP/snap.err")"
	[[ ! -s $TMP/snap.err ]] || fail "snapshot $*: stderr: $(cat "$TMP/snap.err")"
}

# fig NAME: the value of the line "NAME: ..." of the last snapshot's answer.
fig() {
	"$PY" -m test_snapshot_ctl figure "$TMP/snap.out" "$1"
}

# is_state TRACE IMG LABEL WANT: `loopd crash TRACE --is-state IMG --at
# LABEL` exits WANT; its output is in $TMP/is.out.
is_state() {
	local rc=0
	"$LOOPD" crash "$1" --is-state "$2" --at "$3" >"$TMP/is.out" 2>&1 ||
		rc=$?
	((rc == $4)) || { cat "$TMP/is.out"; fail "--is-state $2 --at '$3': exit $rc, want $4"; }
}

# The method a snapshot into DIR of an export in DIR takes: reflink where
# the filesystem has reflinks, copy-before-write elsewhere (I3, I4).
want_method() {
	case $(stat -f -c %T "$1") in
	tmpfs | ext2/ext3) echo copy-before-write ;;
	xfs | btrfs) echo 'reflink|copy-before-write' ;; # xfs: reflink=0 exists
	*) echo 'reflink|copy-before-write' ;;
	esac
}

# round NAME DISK DIR METHOD-RE: one backend (see the top).
round() {
	local name=$1 disk=$2 dir=$3 method_re=$4 ctl=$TMP/$1.ctl
	local dest=$dir/$1.snap m
	check "$name: a snapshot equals the export, mode 0600, method and checkpoint named"
	start_server "$name" --size 16M --control "$ctl" "$disk"
	# Data across granules, unaligned, the last byte; holes between.
	"$PY" -m test_snapshot_ctl fill "$uri" 1 12345:200000 $((8 * MiB)):4096 \
		$((11 * MiB - 100)):300 $((16 * MiB - 1)):1
	nbdcopy "$uri" "$TMP/$name.before"
	snap "$ctl" "$dest"
	m=$(fig method)
	[[ $m =~ ^($method_re)$ ]] || fail "method: $m, want $method_re"
	[[ $(fig snapshot) == "$dest" ]] || fail "snapshot: $(fig snapshot)"
	[[ $(fig checkpoint) == "$name.snap" ]] || fail "checkpoint: $(fig checkpoint)"
	cmp "$dest" "$TMP/$name.before" || fail "$dest differs from the export"
	[[ $disk == mem: ]] || cmp "$dest" "$disk" || fail "$dest differs from $disk"
	[[ $(stat -c %a "$dest") == 600 ]] || fail "mode $(stat -c %a "$dest")"
	[[ ! -e $dest.part ]] || fail "$dest.part is left"
	timeout 30 "$LOOPD" ctl "$ctl" checkpoints | grep -qx "$name.snap 0" ||
		fail "checkpoints: $("$LOOPD" ctl "$ctl" checkpoints)"
	ok "$m; $(fig 'complete after'); $(fig copied 2>/dev/null || echo 'no copy')"

	check "$name: later writes do not change the snapshot"
	"$PY" -m test_snapshot_ctl fill "$uri" 2 0:$MiB 12345:200000 \
		$((8 * MiB)):4096 $((16 * MiB - 65536)):65536
	nbdcopy "$uri" "$TMP/$name.after"
	! cmp -s "$TMP/$name.after" "$TMP/$name.before" ||
		fail "the writes changed nothing"
	cmp "$dest" "$TMP/$name.before" || fail "$dest changed"
	timeout 30 "$LOOPD" ctl "$ctl" checkpoints | grep -qx "$name.snap $((18 * 65536))" ||
		fail "checkpoints: $("$LOOPD" ctl "$ctl" checkpoints)"
	ok "the export changed, $dest did not; checkpoint $name.snap: its 18 granules dirty"
	stop_server "$pid"
	rm -f "$dest" "$TMP/$name.before" "$TMP/$name.after"
}

shm=$(mktemp -d "/dev/shm/loopd-$test_name.XXXXXX")
on_exit "rm -rf '$shm'"

round file "$TMP/file.img" "$TMP" "$(want_method "$TMP")"
round tmpfs "$shm/tmpfs.img" "$shm" copy-before-write
round mem mem: "$TMP" copy-before-write

check "file: DEST on another filesystem than the export (/dev/shm)"
start_server cross --size 16M --control "$TMP/x.ctl" "$TMP/x.img"
"$PY" -m test_snapshot_ctl fill "$uri" 3 0:100000 $((5 * MiB)):4096
snap "$TMP/x.ctl" "$shm/x.snap"
cmp "$shm/x.snap" "$TMP/x.img" || fail "$shm/x.snap differs from the export"
ok "$(fig method)"
stop_server "$pid"
rm -f "$shm/x.snap"

# ---------------------------------------------------------------------
check "under fio (randwrite QD16, fsync/128, verify=crc32c) with --record: three snapshots"
load=$TMP/load.trace
start_server load --size 64M --control "$TMP/load.ctl" --record "$load" \
	--inject delay=4:write "$TMP/load.img"
written() {
	timeout 30 "$LOOPD" ctl "$TMP/load.ctl" stats |
		sed -n 's/.*bytes  *read [0-9]*, written \([0-9]*\);.*/\1/p'
}
(cd "$TMP" && exec fio --name=load --ioengine=nbd --uri="$uri" \
	--rw=randwrite --bs=4k --iodepth=16 --size=64M --fsync=128 \
	--verify=crc32c --do_verify=1 --verify_state_save=0 \
	--output-format=json --output="$TMP/fio.json") &
fio_pid=$!
# shellcheck disable=SC2016 # expanded at exit: empty once fio is reaped
on_exit '[[ -z $fio_pid ]] || kill "$fio_pid" 2>/dev/null'
# Readiness, bounded: fio's first writes have arrived.
for ((i = 0; i < 1000; i++)); do
	(($(written) > 0)) && break
	kill -0 "$fio_pid" 2>/dev/null || fail "fio exited early"
	sleep 0.01 # polling the server's counters, bounded
done
w0=$(written)
((w0 > 0)) || fail "fio wrote nothing in 10 s"
held=0
for s in 1 2 3; do
	snap "$TMP/load.ctl" "$TMP/load$s.snap"
	printf '  load%s.snap: %s writes held, longest hold %s, drain %s, complete after %s\n' \
		"$s" "$(fig 'writes held')" "$(fig 'longest hold')" "$(fig drain)" \
		"$(fig 'complete after')"
	held=$((held + $(fig 'writes held')))
done
w3=$(written)
((w3 < 64 * MiB)) || fail "fio had finished writing before the third snapshot"
ok "taken between $w0 and $w3 of fio's $((64 * MiB)) bytes written; $held writes held in all"
rc=0
wait "$fio_pid" || rc=$?
fio_pid=
((rc == 0)) || fail "fio exited $rc: $(tail -n 20 "$TMP/fio.json")"
"$PY" - "$TMP/fio.json" <<'PYEOF'
import json
import sys

from nbdtest import fail, ok

job = json.load(open(sys.argv[1]))["jobs"][0]
if job["error"]:
    fail(f"fio error {job['error']}")
w, r = job["write"], job["read"]
if w["io_bytes"] != 64 << 20 or r["io_bytes"] != 64 << 20:
    fail(f"fio wrote {w['io_bytes']} and verified {r['io_bytes']} bytes")
ok(f"fio: {w['total_ios']} writes at {w['iops']:.0f} IOPS, all 64 MiB "
   f"read back and verified (crc32c)")
PYEOF
stop_server "$pid"
for s in 1 2 3; do
	check "load$s.snap is a crash state at its instant (S10)"
	is_state "$load" "$TMP/load$s.snap" "snapshot load$s.snap" 0
	ok "$(grep -o 'crash point [0-9]* of [0-9]*' "$TMP/is.out"), $(grep -o '[0-9]* units differ.*' "$TMP/is.out" | cut -c1-60)"
done
check "load1.snap is not a crash state at load3.snap's instant (--at tells them apart)"
is_state "$load" "$TMP/load1.snap" "snapshot load3.snap" 1
ok "$(head -n 1 "$TMP/is.out" | sed 's/^[^:]*: //' | cut -c1-120)"
rm -f "$TMP"/load*.snap "$load" "$load.base" "$TMP/load.img"

# ---------------------------------------------------------------------
# One recorded server for --sync, --no-wait, relative DESTs and errors.
ctl=$TMP/rec.ctl
rec=$TMP/rec.trace
mkdir "$TMP/snaps"
random_file "$TMP/rec.img" 32
# A, the first write of the two checks below: held this long in flight.
DELAY=1000
start_server rec --size 64M --control "$ctl" --record "$rec" \
	--inject "delay=$DELAY:write@40M-41M*1,delay=$DELAY:write@44M-45M*1" \
	"$TMP/rec.img"
rec_uri=$uri
rec_pid=$pid
taken=()

check "--sync: the export, DEST.part and DEST's directory are synced (I3, I6)"
# strace_snap NAME ARGS...: a snapshot into $TMP/snaps/NAME under strace,
# whose lines are in $TMP/NAME.strace.
strace_snap() {
	local name=$1 sp
	shift
	strace -f -y -p "$rec_pid" -e trace=fsync,fdatasync,sync_file_range,syncfs \
		-o "$TMP/$name.strace" 2>"$TMP/$name.strace.err" &
	sp=$!
	wait_log "$TMP/$name.strace.err" 'attached' 10
	snap "$ctl" "$@" "$TMP/snaps/$name"
	kill -INT "$sp" 2>/dev/null || true
	wait "$sp" || true
}
# strace can attach to the daemon: installed, ptrace allowed (seccomp),
# and Yama lets this user attach to a process that is not its child.
can_strace() {
	command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null ||
		return 1
	((EUID == 0)) ||
		(($(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0) == 0))
}
if can_strace; then
	nbdcopy "$rec_uri" "$TMP/sync.before"
	strace_snap sync.img --sync
	cmp "$TMP/snaps/sync.img" "$TMP/sync.before" || fail "sync.img differs"
	grep -Eq "(fdatasync|fsync)\([0-9]+<$TMP/rec.img>" "$TMP/sync.img.strace" ||
		fail "no sync of the export: $(cat "$TMP/sync.img.strace")"
	grep -Eq "fsync\([0-9]+<$TMP/snaps/sync.img.part>" "$TMP/sync.img.strace" ||
		fail "no fsync of DEST.part: $(cat "$TMP/sync.img.strace")"
	grep -Eq "fsync\([0-9]+<$TMP/snaps>" "$TMP/sync.img.strace" ||
		fail "no fsync of DEST's directory: $(cat "$TMP/sync.img.strace")"
	ok "$(fig method), $(fig 'complete after'): $(grep -cE 'f(data)?sync\(' "$TMP/sync.img.strace") syncs, of $(grep -oE 'f(data)?sync\([0-9]+<[^>]*>' "$TMP/sync.img.strace" | sed 's/.*<//; s/>//' | sort -u | paste -sd' ')"
	check "without --sync none of them is synced"
	strace_snap nosync.img
	! grep -Eq "<($TMP/rec.img|$TMP/snaps/nosync.img.part|$TMP/snaps)>" \
		"$TMP/nosync.img.strace" || fail "synced: $(cat "$TMP/nosync.img.strace")"
	ok "$(grep -cE 'f(data)?sync\(' "$TMP/nosync.img.strace" || true) syncs, none of the export, DEST.part or DEST's directory"
	taken+=("$TMP/snaps/sync.img" "$TMP/snaps/nosync.img")
else
	nbdcopy "$rec_uri" "$TMP/sync.before"
	snap "$ctl" --sync "$TMP/snaps/sync.img"
	cmp "$TMP/snaps/sync.img" "$TMP/sync.before" || fail "sync.img differs"
	ok "complete (strace cannot attach here: the syncs are not observed)"
	taken+=("$TMP/snaps/sync.img")
fi
rm -f "$TMP/sync.before"

check "a write drained and a write held: DEST has the first, not the second (I2, I4)"
nbdcopy "$rec_uri" "$TMP/held.before"
"$PY" -m test_snapshot_ctl held "$rec_uri" "$ctl" "$TMP/snaps/held.img" \
	"$TMP/held.before" $((40 * MiB)) 65536 $((20 * MiB)) 65536 $DELAY
taken+=("$TMP/snaps/held.img")

check "--no-wait: 'complete: no', then DEST appears with the contents at its instant (I4, I6)"
nbdcopy "$rec_uri" "$TMP/held.before"
"$PY" -m test_snapshot_ctl held "$rec_uri" "$ctl" "$TMP/snaps/nw.img" \
	"$TMP/held.before" $((44 * MiB)) 65536 $((24 * MiB)) 65536 $DELAY \
	--no-wait
rm -f "$TMP/held.before"
taken+=("$TMP/snaps/nw.img")

check "a relative DEST is made absolute from loopd ctl's cwd (J1)"
mkdir -p "$TMP/else/sub"
(cd "$TMP/else" && snap "$ctl" rel.img)
[[ $(fig snapshot) == "$TMP/else/rel.img" ]] || fail "snapshot: $(fig snapshot)"
[[ -f $TMP/else/rel.img && ! -e $TMP/rel.img ]] || fail "rel.img is not in $TMP/else"
(cd "$TMP/else/sub" && snap "$ctl" ../rel2.img)
[[ $(fig snapshot) == "$TMP/else/rel2.img" ]] || fail "snapshot: $(fig snapshot)"
(cd "$TMP" && snap rec.ctl "else/sub/rel 3.img")
[[ $(fig snapshot) == "$TMP/else/sub/rel 3.img" ]] || fail "snapshot: $(fig snapshot)"
[[ -f "$TMP/else/sub/rel 3.img" ]] || fail "no '$TMP/else/sub/rel 3.img'"
[[ $(fig checkpoint) == "(none)" && $(fig note) == *characters* ]] ||
	fail "rel 3.img: checkpoint $(fig checkpoint), note $(fig note)"
ok "rel.img, ../rel2.img, 'else/sub/rel 3.img' (a space: $(fig note))"
taken+=("$TMP/else/rel.img" "$TMP/else/rel2.img" "$TMP/else/sub/rel 3.img")

check "errors: one line, exit 1 or 2, nothing left at DEST, no checkpoint (Q8, I6)"
echo keep >"$TMP/snaps/exists.img"
fails 1 'exists.img exists \(a snapshot never replaces a file\)' \
	"$LOOPD" ctl "$ctl" snapshot "$TMP/snaps/exists.img"
[[ $(<"$TMP/snaps/exists.img") == keep ]] || fail "exists.img was changed"
echo part >"$TMP/snaps/part.img.part"
fails 1 'cannot create .*/part.img.part: it exists' \
	"$LOOPD" ctl "$ctl" snapshot "$TMP/snaps/part.img"
[[ $(<"$TMP/snaps/part.img.part") == part ]] || fail "part.img.part was changed"
fails 1 'cannot create .*/nodir/x.img.part: No such file or directory' \
	"$LOOPD" ctl "$ctl" snapshot "$TMP/nodir/x.img"
fails 2 'nodir/y.img: No such file or directory' \
	"$LOOPD" ctl "$ctl" snapshot nodir/y.img
fails 2 "unknown option '--bogus'" \
	"$LOOPD" ctl "$ctl" snapshot --bogus "$TMP/snaps/bogus.img"
fails 2 'snapshot needs one DEST' "$LOOPD" ctl "$ctl" snapshot
fails 2 'snapshot needs one DEST' "$LOOPD" ctl "$ctl" snapshot --sync --no-wait
fails 2 'snapshot needs one DEST' "$LOOPD" ctl "$ctl" snapshot ''
fails 2 'snapshot takes one DEST' \
	"$LOOPD" ctl "$ctl" snapshot "$TMP/snaps/two1.img" "$TMP/snaps/two2.img"
fails 1 'no export named "nope"' \
	"$LOOPD" ctl "$ctl" snapshot --export nope "$TMP/snaps/nope.img"
"$PY" - "$ctl" <<'PYEOF'
import sys

from nbdtest import fail, ok
from test_stats import ask

a = ask(sys.argv[1], b"snapshot relative.img\n")
if a != b"error: snapshot: DEST must be an absolute path (loopd ctl makes it one)\n":
    fail(f"a relative DEST on the socket: {a!r}")
ok(f"on the socket itself: {a.decode().strip()}")
PYEOF
[[ ! -e $TMP/snaps/exists.img.part && ! -e $TMP/snaps/part.img ]] ||
	fail "something was left at a DEST"
for f in bogus.img two1.img two2.img nope.img; do
	[[ ! -e $TMP/snaps/$f && ! -e $TMP/snaps/$f.part ]] || fail "$f was made"
done
[[ ! -e $TMP/nodir && ! -e $TMP/else/relative.img ]] || fail "something was made"
timeout 30 "$LOOPD" ctl "$ctl" checkpoints >"$TMP/ck.list"
! grep -Eq '^(exists|part|x|bogus|two1|two2|nope|relative)\.img ' "$TMP/ck.list" ||
	fail "a failed snapshot left a checkpoint: $(cat "$TMP/ck.list")"
ok "no file, no checkpoint left by the errors"
nbdinfo "$rec_uri" >/dev/null || fail "nbdinfo after the errors"
snap "$ctl" --export rec.img "$TMP/snaps/after-errors.img"
[[ $(fig export) == rec.img ]] || fail "export: $(fig export)"
ok "the server serves on: nbdinfo, and a snapshot (--export rec.img)"
taken+=("$TMP/snaps/after-errors.img")

check "a read-only export cannot be snapshotted"
truncate -s 1M "$TMP/ro.img"
start_server ro -r --control "$TMP/ro.ctl" "$TMP/ro.img"
fails 1 'cannot be snapshotted \(read-only\)' \
	"$LOOPD" ctl "$TMP/ro.ctl" snapshot "$TMP/snaps/ro.snap"
[[ ! -e $TMP/snaps/ro.snap && ! -e $TMP/snaps/ro.snap.part ]] || fail "ro.snap was made"
nbdinfo "$uri" >/dev/null || fail "nbdinfo on the read-only export"
ok "and it serves on"
stop_server "$pid"

stop_server "$rec_pid"
for p in "${taken[@]}"; do
	s=$(basename "$p")
	check "$s is a crash state at its instant (S10)"
	is_state "$rec" "$p" "snapshot $s" 0
	ok "$(grep -o 'crash point [0-9]* of [0-9]*' "$TMP/is.out")"
done
check "nw.img is not a crash state at after-errors.img's instant"
is_state "$rec" "$TMP/snaps/nw.img" "snapshot after-errors.img" 1
ok "$(head -n 1 "$TMP/is.out" | sed 's/^[^:]*: //' | cut -c1-120)"

check "the next snapshot waits for a --no-wait copy (I7)"
# 1 GiB in memory, 64 MiB of it written: a copy that takes a while.
start_server big --size 1G --control "$TMP/big.ctl" mem:
spans=()
for ((o = 0; o < 64; o++)); do
	spans+=("$((o * 16 * MiB)):$MiB")
done
"$PY" -m test_snapshot_ctl fill "$uri" 6 "${spans[@]}"
snap "$TMP/big.ctl" --no-wait "$TMP/snaps/big1.img"
snap "$TMP/big.ctl" "$TMP/snaps/big2.img"
[[ -e $TMP/snaps/big1.img ]] || fail "big1.img not there when the next snapshot returned"
cmp "$TMP/snaps/big1.img" "$TMP/snaps/big2.img" || fail "big1.img differs from big2.img"
ok "big1.img was complete when big2.img returned ($(fig 'complete after'))"
rm -f "$TMP/snaps/big1.img" "$TMP/snaps/big2.img"

check "a stop during a --no-wait copy leaves no DEST.part, DEST only if complete (I8)"
snap "$TMP/big.ctl" --no-wait "$TMP/snaps/stop.img"
stop_server "$pid"
[[ ! -e $TMP/snaps/stop.img.part ]] || fail "stop.img.part is left"
if [[ -e $TMP/snaps/stop.img ]]; then
	(($(stat -c %s "$TMP/snaps/stop.img") == 1 << 30)) || fail "stop.img is not whole"
	! grep -q 'stop.img.part was complete; removed' "$TMP/big.log" ||
		fail "stop.img is there, and the log says its copy was removed"
	ok "the copy had ended before the stop: stop.img is whole"
else
	grep -q 'the server stopped before the copy into .*/stop.img.part was complete; removed' \
		"$TMP/big.log" || fail "no stop.img, and no word of it in the log"
	ok "$(grep -o 'snapshot .*stop.img: .*' "$TMP/big.log")"
fi

# ---------------------------------------------------------------------
check "negative control: a copy without the drain, writes in flight, is no state"
# L: 4 KiB at 4 KiB, in the low half, held 1 s in flight; H: 64 KiB at
# 768 KiB, in the high half.  With H larger than L, the closest instant
# to the copy is one after H (where only L's units are wrong), so the
# answer names L's block.
L_OFF=4096 L_LEN=4096 H_OFF=$((768 * 1024)) H_LEN=65536 DELAY=1000
nd=$TMP/nd.trace
random_file "$TMP/nd.img" 1
start_server nd --control "$TMP/nd.ctl" --record "$nd" \
	--inject "delay=$DELAY:write@$L_OFF-$((L_OFF + L_LEN))*1" "$TMP/nd.img"
"$PY" -m test_snapshot_ctl nodrain "$uri" "$TMP/nd.img" "$TMP/nd.ctl" \
	"$TMP/nd.copy" "$TMP/nd.snap" $L_OFF $L_LEN $H_OFF $H_LEN $DELAY
stop_server "$pid"
rc=0
"$LOOPD" crash "$nd" --is-state "$TMP/nd.copy" >"$TMP/is.out" 2>&1 || rc=$?
((rc == 1)) || { cat "$TMP/is.out"; fail "--is-state nd.copy: exit $rc, want 1"; }
read -r u lo hi < <(sed -n 's/^unit \([0-9]*\) (bytes \([0-9]*\)-\([0-9]*\)).*/\1 \2 \3/p' "$TMP/is.out" | head -n 1)
[[ -n ${lo:-} ]] || { cat "$TMP/is.out"; fail "no unit named"; }
((lo >= L_OFF && hi < L_OFF + L_LEN)) ||
	{ cat "$TMP/is.out"; fail "unit $u (bytes $lo-$hi) is not in L's block"; }
grep -Eq "WRITE (FUA )?off=$L_OFF len=$L_LEN:" "$TMP/is.out" ||
	{ cat "$TMP/is.out"; fail "L's write is not named"; }
ok "exit 1: $(grep -m1 '^unit' "$TMP/is.out"); $(grep -m1 -E "WRITE (FUA )?off=$L_OFF" "$TMP/is.out" | sed 's/^ *//')"
check "loopd's snapshot at that moment is a crash state, at its instant and at all"
is_state "$nd" "$TMP/nd.snap" "snapshot nd.snap" 0
ok "$(grep -o 'crash point [0-9]* of [0-9]*.*' "$TMP/is.out" | head -n 1)"
"$LOOPD" crash "$nd" --is-state "$TMP/nd.snap" >"$TMP/is.out" 2>&1 ||
	{ cat "$TMP/is.out"; fail "--is-state nd.snap without --at"; }
ok "without --at too"

check "--export '' names the default export, as for checkpoint (Q9)"
start_server dflt --size 1M --control "$TMP/dflt.ctl" "$TMP/dflt.img"
timeout 30 "$LOOPD" ctl "$TMP/dflt.ctl" checkpoint --export '' c ||
	fail "checkpoint --export ''"
snap "$TMP/dflt.ctl" --export '' "$TMP/dflt.snap"
[[ $(fig export) == dflt.img ]] || fail "export: $(fig export)"
ok "snapshot --export '': the default export, dflt.img"

check "Q10: the control channel answers while a snapshot waits for its drain"
start_server busy --size 1M --control "$TMP/busy.ctl" \
	--inject delay=4000:write*1 "$TMP/busy.img"
"$PY" -c 'import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.aio_pwrite(b"y" * 4096, 0)  # held 4 s in flight by --inject
print("sent", flush=True)
h.poll(-1)  # until its reply
' "$uri" >"$TMP/busy.out" &
writer=$!
wait_log "$TMP/busy.out" '^sent$'
timeout 60 "$LOOPD" ctl "$TMP/busy.ctl" snapshot "$TMP/busy.snap" \
	>"$TMP/busy.snap.out" 2>&1 &
snapper=$!
# Readiness: the snapshot's checkpoint is made at its instant P, while
# its drain then waits for the held write.
for _ in $(seq 200); do
	"$LOOPD" ctl "$TMP/busy.ctl" checkpoints | grep -q '^busy.snap ' && break
	sleep 0.01 # polling the control channel, bounded
done
t0=$EPOCHREALTIME
timeout 3 "$LOOPD" ctl "$TMP/busy.ctl" stats >/dev/null ||
	fail "stats got no answer while a snapshot waited"
kill -0 "$snapper" 2>/dev/null || fail "the snapshot ended before stats was asked"
ok "stats answered in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }') s during the drain"
wait "$snapper" || fail "snapshot: $(cat "$TMP/busy.snap.out")"
wait "$writer" || true
grep -q '^drain: [0-9]\{4\}' "$TMP/busy.snap.out" ||
	fail "the drain did not wait for the write: $(cat "$TMP/busy.snap.out")"
ok "then the snapshot completed: $(grep '^drain' "$TMP/busy.snap.out")"
stop_server "$pid"

check "--sync: a failed sync latches the export (R8, R5) and fails the snapshot"
# The first sync of the server fails (--inject): the snapshot's own.
start_server latch --size 1M --control "$TMP/latch.ctl" \
	--inject error=EIO:sync*1 "$TMP/latch.img"
nbdsh -u "$uri" -c 'h.pwrite(b"x" * 4096, 0)'
fails 1 'syncing the export failed: Input/output error' \
	"$LOOPD" ctl "$TMP/latch.ctl" snapshot --sync "$TMP/latch1.img"
[[ ! -e $TMP/latch1.img && ! -e $TMP/latch1.img.part ]] ||
	fail "a failed snapshot left a file"
rc=0
nbdsh -u "$uri" -c 'h.flush()' 2>/dev/null || rc=$?
((rc != 0)) || fail "a FLUSH succeeded after the latch"
fails 1 'latched an error \(R5\)' \
	"$LOOPD" ctl "$TMP/latch.ctl" snapshot --sync "$TMP/latch2.img"
snap "$TMP/latch.ctl" "$TMP/latch3.img" # no sync asked: still a state
[[ $(fig 'writes held') == 0 ]] || fail "writes held: $(fig 'writes held')"
ok "the FLUSH after it got EIO; a synced snapshot is refused, a plain one taken"
stop_server "$pid"

check "serve's snapshot options: bad ones are one line and exit 1, before listening"
cli_error 'give --snapshot-dir DIR' "$LOOPD" serve -f --size 1M \
	-U "$TMP/opt.sock" --snapshot-every 1s "$TMP/opt.img"
[[ ! -e $TMP/opt.sock ]] || fail "it listened first: $TMP/opt.sock is there"
cli_error 'need --snapshot-every' "$LOOPD" serve -f --size 1M \
	-U "$TMP/opt.sock" --snapshot-dir "$TMP" "$TMP/opt.img"
cli_error 'expected a duration' "$LOOPD" serve -f --size 1M \
	-U "$TMP/opt.sock" --snapshot-every 5x --snapshot-dir "$TMP" \
	"$TMP/opt.img"
cli_error 'power of two' "$LOOPD" serve -f --size 1M -U "$TMP/opt.sock" \
	--checkpoint-granularity 3K "$TMP/opt.img"

echo "test-snapshot-ctl: all checks passed"
