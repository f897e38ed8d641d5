#!/usr/bin/env bash
# test-snapshot: live snapshots are crash states (I1-I9 in
# src/engine/snapshot.c, R8 in sched.c, S10 in trace/states.c, J2-J3 in
# serve/snapshots.c), taken every second while the host kernel runs a file
# workload on ext4 (nbdfuse + a loop device) against loopd with --record.
# Twice: the export's file on XFS (reflinks: I3) and on ext4 (no reflinks:
# copy-before-write, I4), each host filesystem made on a loop device.
# Then, for every snapshot:
#   - `loopd crash --is-state SNAP --at "snapshot NAME"`: it is a crash
#     state at its own instant (and the first one is not one at the last
#     one's instant: --at tells instants apart);
#   - after journal replay, e2fsck -fn is clean;
#   - every file fsync'ed before its instant holds its data, at the name it
#     had then (tests/e2e/snapcheck.py reads the trace's marks);
# and the time writes were held is reported (p50, p99, max).
# Negative control: a --model no-flush state of the last crash point fails
# --is-state under the served model.  (The copy taken without the drain is
# test-snapshot-ctl's.)
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires
requires mkfs.xfs debugfs sha256sum
grep -qw xfs /proc/filesystems || modprobe -q xfs 2>/dev/null ||
	skip "the kernel has no XFS"

holds=$TMP/holds

# host NAME MKFS...: a 1 GiB filesystem on a loop device at $TMP/NAME.
host() {
	local name=$1 dev
	shift
	truncate -s 1G "$TMP/$name.host"
	dev=$(losetup -f --show "$TMP/$name.host")
	"$@" "$dev" >/dev/null
	mkdir "$TMP/$name"
	mount "$dev" "$TMP/$name"
	on_exit "umount -l '$TMP/$name'; losetup -d '$dev'"
}

# round NAME METHOD: the workload with snapshots every second on the host
# filesystem NAME; every snapshot must have been taken by METHOD.
round() {
	local name=$1 method=$2 d=$TMP/$1 m=$TMP/$1.mnt ctl=$TMP/$1.ctl
	local i j n sha trace=$TMP/$1/t.trace
	mkdir "$d/snaps" "$m"
	check "$name: ext4 in the export, a snapshot every second into $name"
	start_server "$name" --size 64M --record "$trace" --control "$ctl" \
		--snapshot-every 1s --snapshot-dir "$d/snaps" "$d/disk.img"
	kernel_attach "$TMP/$name.fuse" "$uri"
	mkfs.ext4 -q -F -E nodiscard -J size=1 "$loopdev"
	mount "$loopdev" "$m"
	mounted=$m
	mkdir "$m/a" "$m/b"
	sync -f "$m"
	# Writes in flight at the instants, for the drain and the hold: a
	# file rewritten and fsync'ed over and over beside the workload.
	rm -f "$TMP/stop"
	(while [[ ! -e $TMP/stop ]]; do
		dd if=/dev/urandom of="$m/busy" bs=64k count=64 oflag=direct \
			conv=fsync status=none
	done) &
	busy=$!
	for ((i = 1; ; i++)); do
		head -c $((i * 797 % 20000 + 1)) /dev/urandom >"$m/a/f$i"
		sync "$m/a/f$i" # fsync(2) of the file
		sha=$(sha256sum <"$m/a/f$i" | cut -d' ' -f1)
		"$LOOPD" ctl "$ctl" mark "fsynced a/f$i $sha"
		if ((i % 5 == 0)); then
			j=$((i - 2))
			"$LOOPD" ctl "$ctl" mark "renaming a/f$j b/r$j"
			mv "$m/a/f$j" "$m/b/r$j"
			sync -f "$m"
			"$LOOPD" ctl "$ctl" mark "renamed a/f$j b/r$j"
		fi
		# Readiness: the schedule's files, not a sleep.
		n=$(find "$d/snaps" -name 'disk.img.*Z' | wc -l)
		((n >= 5 && i >= 40)) && break
		((i < 5000)) || fail "only $n snapshots after $i files"
	done
	touch "$TMP/stop"
	wait "$busy" || fail "the busy writer failed"
	umount "$m"
	mounted=
	kernel_detach
	stop_server "$pid"
	ok "$i files fsync'ed, $((i / 5)) renamed"

	check "$name: every snapshot was taken by $method"
	n=$(grep -c "snapshot $d/snaps/.* ($method)" "$TMP/$name.log" || true)
	((n >= 5)) || fail "$n snapshots by $method: $(grep snapshot "$TMP/$name.log")"
	! grep -q "snapshot .* failed" "$TMP/$name.log" ||
		fail "$(grep failed "$TMP/$name.log")"
	! ls "$d/snaps"/*.part 2>/dev/null || fail "a .part was left"
	sed -n 's/.* held, the longest \([0-9.]*\) ms.*/\1/p' \
		"$TMP/$name.log" >>"$holds"
	ok "$n snapshots"

	"$LOOPD" trace dump "$trace" >"$TMP/$name.dump"
	local snaps=("$d"/snaps/disk.img.*Z) s b w rc
	for s in "${snaps[@]}"; do
		b=$(basename "$s")
		check "$name: $b is a crash state at its instant, e2fsck-clean, holds the fsync'ed files"
		rc=0
		"$LOOPD" crash "$trace" --is-state "$s" --at "snapshot $b" \
			>"$TMP/is.out" 2>&1 || rc=$?
		((rc == 0)) || { cat "$TMP/is.out"; fail "--is-state: exit $rc"; }
		w=$TMP/$name.work.img
		cp --sparse=always "$s" "$w"
		rc=0
		e2fsck -p -E journal_only "$w" >/dev/null 2>&1 || rc=$?
		((rc <= 1)) || fail "journal replay: exit $rc"
		e2fsck -fn "$w" >"$TMP/fsck.out" 2>&1 ||
			{ cat "$TMP/fsck.out"; fail "e2fsck -fn $b"; }
		"$PY" "$SRCDIR/tests/e2e/snapcheck.py" "$TMP/$name.dump" \
			"snapshot $b" "$w" >"$TMP/snapcheck.out" ||
			{ cat "$TMP/snapcheck.out"; fail "$b"; }
		ok "$(grep -o 'crash point [0-9]* of [0-9]*' "$TMP/is.out"); $(cat "$TMP/snapcheck.out")"
		rm -f "$w"
	done

	check "$name: --at tells instants apart"
	rc=0
	"$LOOPD" crash "$trace" --is-state "${snaps[0]}" \
		--at "snapshot $(basename "${snaps[-1]}")" >"$TMP/is.out" 2>&1 ||
		rc=$?
	((rc == 1)) || { cat "$TMP/is.out"; fail "exit $rc, want 1"; }
	ok "$(head -c 160 "$TMP/is.out")"
}

host xfs mkfs.xfs -q -f -m reflink=1
host ext4 mkfs.ext4 -q -F
round xfs reflink
round ext4 copy-before-write

check "the time writes were held by a snapshot (both rounds)"
sort -n "$holds" | awk '{ v[NR] = $1 } END {
	if (NR == 0) exit 1
	p99 = v[int((NR - 1) * 0.99) + 1]; p50 = v[int((NR - 1) * 0.5) + 1]
	printf "  ok: %d snapshots: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
		NR, p50, p99, v[NR] }' || fail "no hold times in the logs"

check "negative control: a no-flush state is no state of the served model"
trace=$TMP/ext4/t.trace
points=$("$LOOPD" trace stats "$trace" |
	sed -n 's/^crash points: *\([0-9]*\).*/\1/p')
# A state of the no-flush model at its last point (S1 merges more of its
# points: the first that --state takes, counting down): a random subset
# of every write, items 0, 1, ... until one is no served state.
for ((k = points - 1; k >= 0; k--)); do
	"$LOOPD" crash "$trace" --model no-flush --state "$k.0" \
		--out "$TMP/nf.img" >/dev/null 2>&1 && break
done
((k >= 0)) || fail "no no-flush state could be made"
found=
for i in $(seq 0 40); do
	"$LOOPD" crash "$trace" --model no-flush --state "$k.$i" \
		--out "$TMP/nf.img" >/dev/null
	rc=0
	"$LOOPD" crash "$trace" --is-state "$TMP/nf.img" >"$TMP/is.out" 2>&1 ||
		rc=$?
	((rc == 0 || rc == 1)) || fail "exit $rc: $(cat "$TMP/is.out")"
	if ((rc == 1)); then
		found=$i
		break
	fi
done
[[ -n $found ]] || fail "every no-flush state of point $k is a served state"
ok "state $k.$found refused: $(grep -m1 '^unit' "$TMP/is.out")"

echo "test-snapshot: all checks passed"
