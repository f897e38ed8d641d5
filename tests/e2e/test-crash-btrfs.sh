#!/usr/bin/env bash
# test-crash-btrfs: --check btrfs (X5, X10, X11 in src/crash/).  The file
# workload of test-crash-ext4 (creates, fsyncs, renames, deletes, umount)
# runs on btrfs on the host kernel (nbdfuse + a loop device) against
# loopd with --record, on a 128 MiB export (mkfs.btrfs wants 109 MiB).
# Then:
#   - with btrfs missing from PATH, or run as nobody, --check btrfs is a
#     tool error (exit 2) before any state is checked;
#   - --check btrfs passes >= 300 states with -j 2, so that two images of
#     one fsid are mounted at once (X11: the kernel's temp-fsid, or
#     serialised mounts, and a forgotten device after each), and with
#     LOOPD_CRASH_VERIFY=1, so that after every state the image is exactly
#     D(t) again although the mount replayed the tree log into it (X4,
#     X10);
#   - no loop device on the explorer's images is left attached, and no
#     mount of it was seen outside the explorer (X10);
#   - --model no-flush fails within 10 states, and the failure says why.
# Each run prints its state counts, its time and its states/s.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires
requires mkfs.btrfs btrfs setpriv
grep -qw btrfs /proc/filesystems || modprobe -q btrfs 2>/dev/null ||
	skip "the kernel has no btrfs"

# shellcheck source=tests/e2e/crash-lib.sh
source "$SRCDIR/tests/e2e/crash-lib.sh"
record_mkfs=(mkfs.btrfs -q -f -K)
record_size=128M
explore_check=btrfs
crash_shm

check "record the workload on btrfs (128 MiB)"
t0=$SECONDS
record ok ""
ok "recorded in $((SECONDS - t0)) s"

check "X5: without btrfs in PATH, --check btrfs is a tool error at start"
missing_tool btrfs btrfs

check "X5: not root, --check btrfs is a tool error at start"
chmod o+rx "$TMP"
chmod o+r "$TMP/ok.trace" "$TMP/ok.trace.base"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$LOOPD" crash \
	"$TMP/ok.trace" --check btrfs --after mkfs -q >"$TMP/user.log" 2>&1 ||
	rc=$?
((rc == 2)) || { cat "$TMP/user.log"; fail "exit $rc, want 2"; }
grep -q 'needs root' "$TMP/user.log" || { cat "$TMP/user.log"; fail "no reason"; }
! grep -q '^states:' "$TMP/user.log" || fail "states were checked"
ok "$(grep 'needs root' "$TMP/user.log")"

check "X10, X11: --check btrfs -j 2 passes >= 300 states; X4 restores each"
LOOPD_CRASH_VERIFY=1 explore ok 0 --max-states 400 -j 2 --workdir "$shm"
((states >= 300)) || fail "only $states states were checked"
((failed == 0)) || fail "$failed states failed"
ok "$states states, 0 failures, $(rate ok), every restore exact"

check "X10: no loop device or mount of the explorer is left"
left=$(left_behind)
[[ $left == $'0\n0' ]] || fail "loop devices, mounts: $left"
ok "none"

check "--model no-flush fails within 10 states, with a reason"
explore ok 1 --model no-flush --max-states 10
grep -qE '^FAIL .*(mount exit|btrfs check --readonly exit)' \
	"$TMP/ok.crash.log" || fail "no failure names the mount or btrfs check"
ok "$failed of $states states failed"

echo "test-crash-btrfs: all checks passed"
