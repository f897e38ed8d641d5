#!/usr/bin/env bash
# test-crash-ext4: the crash explorer's acceptance (issue 4, crash-model.md
# A1-A4).  A real ext4 workload on the host kernel (nbdfuse + a loop
# device: mkfs, mount, creates, fsyncs, renames, deletes, umount) is
# recorded by loopd, then:
#   - --check ext4 over >= 1000 states finds no failure (A1);
#   - --model no-flush finds a failure within 10 states (A2);
#   - --model skip-one-flush finds one within 200 states (A3);
#   - the same workload mounted -o barrier=0 on a correct loopd fails
#     within 10 states (A4: the explorer is not always green);
#   - a recording made with --flush=unsafe fails under the default
#     (served) model.
# Each run prints its state counts and its time.  The image is 64 MiB.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires

# record NAME MOUNT_OPTS [SERVE ARGS...]: record the workload into
# $TMP/NAME.trace (base image $TMP/NAME.trace.base).
record() {
	local name=$1 mopts=$2 trace=$TMP/$1.trace d i
	shift 2
	start_server "$name" --size 64M --record "$trace" "$@" "$TMP/$name.img"
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

check "record an ext4 workload (contract: --flush sync)"
t0=$SECONDS
record ok ""
ok "recorded in $((SECONDS - t0)) s"

check "A1: --check ext4 over >= 1000 states finds no failure"
explore ok 0 --max-states 1500
((states >= 1000)) || fail "only $states states were checked"
ok "$states states, 0 failures"

check "A2: --model no-flush fails within 10 states"
explore ok 1 --model no-flush --max-states 10
ok "$failed of $states states failed"

check "A3: --model skip-one-flush fails within 200 states"
explore ok 1 --model skip-one-flush --max-states 200
ok "$failed of $states states failed"

check "A4: ext4 mounted -o barrier=0 on a correct loopd fails within 10"
record nobarrier barrier=0
explore nobarrier 1 --max-states 10
ok "$failed of $states states failed"

check "a recording made with --flush=unsafe fails under the served model"
record unsafe "" --flush unsafe
explore unsafe 1 --max-states 10
ok "$failed of $states states failed"

echo "test-crash-ext4: all checks passed"
