# shellcheck shell=bash disable=SC2034 # the tests set the variables
# crash-lib.sh: the recorded file workload and the explorer run shared by
# test-crash-ext4.sh (files), test-crash-xfs.sh, test-crash-btrfs.sh and
# test-rbd-crash.sh (RBD).  Source it after functions.sh and
# kernel_requires, then change what differs:
#   record_mkfs   the command that makes the filesystem, without the
#                 device (default: ext4 with a 1 MiB journal: checkpoints
#                 happen often, so reordering across a flush has
#                 something to break)
#   record_size   the size of a file export (default 64M)
#   explore_check what explore passes to --check (default ext4)
record_mkfs=(mkfs.ext4 -q -F -E nodiscard -J size=1)
record_size=64M
explore_check=ext4

# record NAME MOUNT_OPTS [SERVE ARGS...]: record the workload into
# $TMP/NAME.trace (base image $TMP/NAME.trace.base).  The export is
# $record_disk if set (its SERVE ARGS say how to open it), else a new
# $record_size file $TMP/NAME.img.
record() {
	local name=$1 mopts=$2 trace=$TMP/$1.trace d i
	shift 2
	if [[ -n ${record_disk:-} ]]; then
		start_server "$name" --record "$trace" "$@" "$record_disk"
	else
		start_server "$name" --size "$record_size" --record "$trace" \
			"$@" "$TMP/$name.img"
	fi
	d=$TMP/$name.mnt
	mkdir "$d"
	kernel_attach "$TMP/$name.fuse" "$uri"
	"${record_mkfs[@]}" "$loopdev"
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
	"$LOOPD" crash "$TMP/$name.trace" --check "$explore_check" \
		--after mkfs -q "$@" \
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

# For the mounting checks (--check xfs, btrfs: X10 in src/crash/mount.c).
# crash_shm: a directory on tmpfs for --workdir (where the working images
# go by default), so that the explorer's loop devices and mounts can be
# told from other users'; sets $shm, removed at exit.
crash_shm() {
	shm=$(mktemp -d /dev/shm/loopd-test.XXXXXX)
	on_exit "rm -rf '$shm'"
}

# left_behind: the loop devices on files under $shm, then the mounts under
# $shm that this (the host's) mount namespace sees, one count a line.
left_behind() {
	losetup -l -n -O BACK-FILE | grep -c "^$shm/" || true
	grep -c " $shm/" /proc/self/mountinfo || true
}

# missing_tool NAME TOOL: with a PATH that has every tool of --check NAME
# but TOOL, the explorer stops before checking a state, with exit 2 and a
# message that names TOOL (X5).
missing_tool() {
	local name=$1 tool=$2 t rc=0 log=$TMP/missing-$2.log
	mkdir -p "$TMP/bin-$tool"
	for t in mount umount e2fsck xfs_repair btrfs; do
		[[ $t == "$tool" ]] || ! command -v "$t" >/dev/null ||
			ln -sf "$(command -v "$t")" "$TMP/bin-$tool/"
	done
	PATH=$TMP/bin-$tool "$LOOPD" crash "$TMP/ok.trace" --check "$name" \
		--after mkfs -q >"$log" 2>&1 || rc=$?
	((rc == 2)) || { cat "$log"; fail "exit $rc, want 2"; }
	grep -q "needs $tool" "$log" ||
		{ cat "$log"; fail "the message does not name $tool"; }
	! grep -q '^states:' "$log" || fail "states were checked"
	ok "$(grep "needs $tool" "$log")"
}

# rate: the states/s of the last explore run of NAME.
rate() {
	sed -n 's/^states: .*s, \([0-9.]* states\/s\).*/\1/p' \
		"$TMP/$1.crash.log"
}
