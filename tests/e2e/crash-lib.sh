# shellcheck shell=bash
# crash-lib.sh: the recorded ext4 workload and the explorer run shared by
# test-crash-ext4.sh (files) and test-rbd-crash.sh (RBD).  Source it after
# functions.sh and kernel_requires.

# record NAME MOUNT_OPTS [SERVE ARGS...]: record the workload into
# $TMP/NAME.trace (base image $TMP/NAME.trace.base).  The export is
# $record_disk if set (its SERVE ARGS say how to open it), else a new
# 64 MiB file $TMP/NAME.img.
record() {
	local name=$1 mopts=$2 trace=$TMP/$1.trace d i
	shift 2
	if [[ -n ${record_disk:-} ]]; then
		start_server "$name" --record "$trace" "$@" "$record_disk"
	else
		start_server "$name" --size 64M --record "$trace" "$@" \
			"$TMP/$name.img"
	fi
	d=$TMP/$name.mnt
	mkdir "$d"
	kernel_attach "$TMP/$name.fuse" "$uri"
	# A 1 MiB journal: checkpoints happen often, so reordering across
	# a flush has something to break.
	mkfs.ext4 -q -F -E nodiscard -J size=1 "$loopdev"
	"$LOOPD" trace mark "$trace" mkfs
	mount ${mopts:+-o "$mopts"} "$loopdev" "$d"
	mounted=$d
	mkdir "$d/a" "$d/b"
	for i in $(seq 200); do
		head -c $((i * 97 % 5000 + 1)) /dev/urandom >"$d/a/f$i"
		if ((i % 10 == 0)); then
			sync -f "$d/a/f$i"
			dd if=/dev/urandom of="$d/b/log" bs=1k count=1 \
				oflag=append conv=notrunc,fsync status=none
		fi
	done
	"$LOOPD" trace mark "$trace" created
	for i in $(seq 3 3 200); do
		mv "$d/a/f$i" "$d/b/r$i"
	done
	sync -f "$d"
	"$LOOPD" trace mark "$trace" renamed
	for i in $(seq 5 5 200); do
		rm -f "$d/a/f$i" "$d/b/r$i"
	done
	sync -f "$d"
	dd if=/dev/urandom of="$d/big" bs=64k count=16 conv=fsync status=none
	"$LOOPD" trace mark "$trace" deleted
	umount "$d"
	mounted=
	"$LOOPD" trace mark "$trace" umount
	kernel_detach
	stop_server "$pid" # writes END
	"$LOOPD" trace stats "$trace" | grep -E '^(writes|flushes|crash)'
}

# explore NAME WANT_EXIT ARGS...: run the explorer after the mkfs mark,
# print its state counts and time; sets $states and $failed.
explore() {
	local name=$1 want=$2 out=$TMP/$1.crash.log rc=0 t0=$SECONDS
	shift 2
	"$LOOPD" crash "$TMP/$name.trace" --check ext4 --after mkfs -q "$@" \
		>"$out" 2>&1 || rc=$?
	# awk, not head: head would close the pipe under pipefail.
	awk '/^FAIL/ && n++ < 3 || /^states:/' "$out" | cut -c1-200
	echo "  ($((SECONDS - t0)) s)"
	if ((rc != want)); then
		cat "$out" >&2
		fail "loopd crash $* on $name: exit $rc, want $want"
	fi
	states=$(sed -n 's/^states: \([0-9]*\) checked.*/\1/p' "$out")
	failed=$(sed -n 's/^states: .* \([0-9]*\) failed.*/\1/p' "$out")
}
