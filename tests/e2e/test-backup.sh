#!/usr/bin/env bash
# test-backup: the incremental backup that checkpoints and live snapshots
# make possible (I1 in engine/snapshot.c: a snapshot makes the checkpoint
# named after it at its own instant; W1-W5 in engine/dirty.c; H6, E10).
# A 256 MiB sparse export: an initial pattern (nbdcopy of random data,
# qemu-io patterns), snapshot s0, and a full copy taken with nbdcopy from
# the export before any further write, which must equal s0.  Then three
# rounds.  Each: writes through qemu-io of various sizes (random data,
# patterns, unaligned ones, a discard, write -z with and without unmap),
# then snapshot s{i}; nbdinfo --map=qemu:dirty-bitmap:s{i-1} gives the
# extents changed since s{i-1}, and exactly those byte ranges are copied
# from the snapshot file s{i} into the backup, which must then equal s{i}
# byte for byte (and did not before).  The dirty granules are exactly
# those the round's writes touched, `loopd ctl checkpoints` counts the
# bytes copied, and the bytes copied are reported against the export's
# size (each round must copy less than the export).  In round 2 a libnbd
# writer keeps 8 writes in flight in [128 MiB, 160 MiB) while s2 is
# taken: the writes it had sent before s2's instant are in s2 and out of
# map s2, the later ones the other way round, so round 3's backup equals
# s3 only if map s2 starts exactly at s2's instant.  qemu's NBD client
# (qemu-img map, x-dirty-bitmap=qemu:dirty-bitmap:s1) agrees with
# nbdinfo on map s1.  At the end s0-s2 are deleted (loopd ctl checkpoint
# --delete): gone from `checkpoints`, from the listed contexts and from
# nbdinfo --map, while s3 stays for the next backup.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo nbdcopy qemu-io qemu-img cmp
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

MiB=$((1 << 20))
SIZE=$((256 * MiB))
G=65536 # the checkpoints' granularity (the default)
ctl=$TMP/b.ctl

start_server b --size 256M --control "$ctl" "$TMP/disk.img"

ck() {
	timeout 30 "$LOOPD" ctl "$ctl" "$@"
}

# qio ROUND CMD...: qemu-io through loopd, each CMD ("write ... OFF LEN",
# "discard OFF LEN") one -c; OFF and LEN of each go to ROUND's list.
qio() {
	local r=$1 c args=()
	shift
	for c in "$@"; do
		args+=(-c "$c")
		# shellcheck disable=SC2086 # the command's words
		set -- $c
		echo "${*: -2}" >>"$TMP/round$r.writes"
	done
	timeout 60 qemu-io -f raw "${args[@]}" "$uri" >"$TMP/qio.out" 2>&1 ||
		{ cat "$TMP/qio.out"; fail "qemu-io failed"; }
	# qemu-io reports an I/O error and exits 0: its output must not.
	! grep -Eqi 'error|failed' "$TMP/qio.out" || { cat "$TMP/qio.out"; fail "qemu-io: an error"; }
}

# snapshot NAME: a live snapshot as $TMP/NAME, with checkpoint NAME.
snapshot() {
	ck snapshot "$TMP/$1" >"$TMP/snap.out" || fail "snapshot $1"
	grep -qx "checkpoint: $1" "$TMP/snap.out" || fail "$(cat "$TMP/snap.out")"
	printf '  %s: %s\n' "$1" "$(grep -E '^(method|writes held|longest hold|complete after):' \
		"$TMP/snap.out" | paste -sd';' | sed 's/;/; /g')"
}

# round I MAY...: the snapshot s{I}, then the backup brought from s{I-1}
# to s{I} with map s{I-1} (MAY: other writes' lists).
total=0
round() {
	local i=$1 p=s$(($1 - 1)) copied want
	shift
	nbdinfo --map="qemu:dirty-bitmap:$p" --json "$uri" >"$TMP/map$i.json"
	cmp -s "$TMP/backup.img" "$TMP/s$i" &&
		fail "round $i: the backup equals s$i before the copy: the round changed nothing"
	"$PY" -m test_backup apply "$i" "$TMP/map$i.json" "$TMP/s$i" \
		"$TMP/backup.img" $G "$TMP/round$i.writes" "$@" >"$TMP/apply.out" ||
		{ cat "$TMP/apply.out"; fail "round $i: the incremental copy"; }
	head -n -1 "$TMP/apply.out"
	copied=$(tail -n 1 "$TMP/apply.out")
	cmp "$TMP/backup.img" "$TMP/s$i" || fail "round $i: the backup differs from s$i"
	((copied < SIZE)) || fail "round $i: copied $copied bytes, the whole export"
	want=$(ck checkpoints | awk -v n="$p" '$1 == n { print $2 }')
	[[ $want == "$copied" ]] ||
		fail "round $i: loopd ctl checkpoints says $p ${want:-(none)}, $copied copied"
	ok "round $i: the backup equals s$i byte for byte; checkpoints: $p $want"
	total=$((total + copied))
}

check "the initial data: 48 MiB of random data (nbdcopy), patterns (qemu-io)"
random_file "$TMP/seed.bin" 48
timeout 60 nbdcopy "$TMP/seed.bin" "$uri" || fail "nbdcopy into the export"
qio 0 "write -P 0x11 $((100 * MiB)) $((3 * MiB))" \
	"write -P 0x22 $((200 * MiB)) $MiB" \
	"write -P 0x33 $((SIZE - G)) $G"
rm -f "$TMP/seed.bin"
ok "$(ck stats | grep -m1 'bytes ')"

check "s0, and the full copy (nbdcopy from the export) equals it"
snapshot s0
timeout 120 nbdcopy "$uri" "$TMP/backup.img" || fail "nbdcopy from the export"
cmp "$TMP/backup.img" "$TMP/s0" || fail "the full copy differs from s0"
[[ $(ck checkpoints) == "s0 0" ]] || fail "checkpoints: $(ck checkpoints)"
ok "the full copy: $SIZE bytes read, $(du -k "$TMP/backup.img" | cut -f1) KiB allocated"

for i in 1 2 3; do
	head -c $((4 * MiB)) /dev/urandom >"$TMP/r$i.bin"
done

check "round 1: random, pattern and unaligned writes, a discard, write -z"
qio 1 "write -s $TMP/r1.bin $((5 * MiB)) $((2 * MiB))" \
	"write -P 0x41 12345678 4000" \
	"write -P 0x42 $((64 * MiB - 100)) 200" \
	"discard $((100 * MiB)) $MiB" \
	"write -z $((200 * MiB + 131072)) 262144" \
	"write -s $TMP/r1.bin 150000000 70000" \
	"write -P 0x43 $((SIZE - 1)) 1"
snapshot s1
round 1

check "round 2: writes, and s2 taken under a writer's load"
qio 2 "write -s $TMP/r2.bin $((6 * MiB + 4096)) $((3 * MiB))" \
	"write -P 0x51 12345000 10000" \
	"write -z -u $((100 * MiB + 65536)) $((2 * MiB))" \
	"discard $((30 * MiB)) $((4 * MiB))" \
	"write -s $TMP/r2.bin $((220 * MiB - 7)) 15"
rm -f "$TMP/stop" "$TMP/ready"
"$PY" -m test_backup writer "$uri" "$TMP/stop" "$TMP/writer.writes" \
	"$TMP/ready" $((128 * MiB)) $((160 * MiB)) &
writer=$!
# shellcheck disable=SC2016 # expanded at exit: empty once it is reaped
on_exit '[[ -z $writer ]] || kill "$writer" 2>/dev/null'

for ((j = 0; j < 1000; j++)); do
	[[ -e $TMP/ready ]] && break
	kill -0 "$writer" 2>/dev/null || fail "the writer exited early"
	sleep 0.01 # polling for the writer's first 16 writes, bounded
done
[[ -e $TMP/ready ]] || fail "the writer did not start in 10 s"
snapshot s2
touch "$TMP/stop"
rc=0
wait "$writer" || rc=$?
writer=
((rc == 0)) || fail "the writer failed"
round 2 "$TMP/writer.writes"

check "qemu's NBD client agrees with nbdinfo on map s1 (x-dirty-bitmap)"
nbdinfo --map=qemu:dirty-bitmap:s1 --json "$uri" >"$TMP/s1.json"
timeout 60 qemu-img map --output=json --image-opts \
	"driver=nbd,server.type=unix,server.path=$socket,x-dirty-bitmap=qemu:dirty-bitmap:s1" \
	>"$TMP/s1.qemu.json" || fail "qemu-img map"
"$PY" -m test_backup agree "$TMP/s1.qemu.json" "$TMP/s1.json"

check "round 3: writes over round 2's and the writer's, then s3"
qio 3 "write -s $TMP/r3.bin $((6 * MiB)) $((4 * MiB))" \
	"write -P 0x61 $((140 * MiB + 3)) 70001" \
	"write -z $((5 * MiB)) $MiB" \
	"discard $((200 * MiB)) $((2 * MiB))" \
	"write -P 0x62 0 1"
snapshot s3
round 3 "$TMP/writer.writes"

check "the bytes copied, against the export's size"
ok "three rounds copied $total bytes in all, of $((3 * SIZE)) that three full copies would ($((total * 100 / (3 * SIZE)))%)"

check "the old checkpoints deleted; s3 stays for the next backup"
for c in s0 s1 s2; do
	ck checkpoint --delete "$c" || fail "checkpoint --delete $c"
done
[[ $(ck checkpoints | cut -d' ' -f1) == s3 ]] || fail "checkpoints: $(ck checkpoints)"
nbdinfo --list --content "$uri" >"$TMP/list.txt"
[[ $(grep -o 'qemu:dirty-bitmap:[a-z0-9]*' "$TMP/list.txt" | sort -u) == qemu:dirty-bitmap:s3 ]] ||
	fail "listed: $(grep -o 'qemu:dirty-bitmap:[a-z0-9]*' "$TMP/list.txt")"
if nbdinfo --map=qemu:dirty-bitmap:s1 "$uri" >/dev/null 2>&1; then
	fail "nbdinfo --map=qemu:dirty-bitmap:s1 still works"
fi
nbdinfo --map=qemu:dirty-bitmap:s3 "$uri" >/dev/null || fail "map s3"
ok "checkpoints: $(ck checkpoints); only qemu:dirty-bitmap:s3 is listed"

echo "test-backup: all checks passed"
