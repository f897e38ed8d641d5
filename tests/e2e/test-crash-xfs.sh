#!/usr/bin/env bash
# test-crash-xfs: --check xfs (X5, X10, X11 in src/crash/).  The file
# workload of test-crash-ext4 (creates, fsyncs, renames, deletes, umount)
# runs on XFS on the host kernel (nbdfuse + a loop device) against loopd
# with --record, on a 320 MiB export (mkfs.xfs wants 300 MB).  Then:
#   - with xfs_repair missing from PATH, --check xfs is a tool error
#     (exit 2) before any state is checked;
#   - --check xfs passes >= 300 states with -j 2, so that two images of
#     one UUID are mounted at once (X11: nouuid), and with
#     LOOPD_CRASH_VERIFY=1, so that after every state the image is exactly
#     D(t) again although the mount wrote to it (X4, X10);
#   - no loop device on the explorer's images is left attached, and no
#     mount of it was seen outside the explorer (X10);
#   - a mount that hangs after mounting times out: the state fails, and
#     the image is unmounted, detached and restored all the same (X10);
#   - --model no-flush fails within 10 states, and the failure says why.
# Each run prints its state counts, its time and its states/s.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires
requires mkfs.xfs xfs_repair
grep -qw xfs /proc/filesystems || modprobe -q xfs 2>/dev/null ||
	skip "the kernel has no XFS"

# shellcheck source=tests/e2e/crash-lib.sh
source "$SRCDIR/tests/e2e/crash-lib.sh"
record_mkfs=(mkfs.xfs -q -f -K)
record_size=320M
explore_check=xfs
crash_shm

check "record the workload on XFS (320 MiB)"
t0=$SECONDS
record ok ""
ok "recorded in $((SECONDS - t0)) s"

check "X5: without xfs_repair in PATH, --check xfs is a tool error at start"
missing_tool xfs xfs_repair

check "X10, X11: --check xfs -j 2 passes >= 300 states; X4 restores each"
LOOPD_CRASH_VERIFY=1 explore ok 0 --max-states 400 -j 2 --workdir "$shm"
((states >= 300)) || fail "only $states states were checked"
((failed == 0)) || fail "$failed states failed"
ok "$states states, 0 failures, $(rate ok), every restore exact"

check "X10: no loop device or mount of the explorer is left"
left=$(left_behind)
[[ $left == $'0\n0' ]] || fail "loop devices, mounts: $left"
ok "none"

check "X10: a mount that times out fails the state, and is undone"
# A mount that mounts, then hangs: the explorer kills it after 1 s, must
# unmount and detach, and restore the image (X4, verified).
mkdir "$TMP/hang"
printf '#!/bin/sh\n%s "$@" && exec sleep 60\n' "$(command -v mount)" \
	>"$TMP/hang/mount"
chmod +x "$TMP/hang/mount"
rc=0
PATH=$TMP/hang:$PATH LOOPD_CRASH_VERIFY=1 timeout 60 "$LOOPD" crash \
	"$TMP/ok.trace" --check xfs --after mkfs -q --max-states 2 -j 1 \
	--timeout 1 --workdir "$shm" >"$TMP/hang.log" 2>&1 || rc=$?
((rc == 1)) || { cat "$TMP/hang.log"; fail "exit $rc, want 1"; }
n=$(grep -c '^FAIL .*: mount timed out after 1 s' "$TMP/hang.log" || true)
((n == 2)) || { cat "$TMP/hang.log"; fail "$n states timed out, want 2"; }
left=$(left_behind)
[[ $left == $'0\n0' ]] || fail "loop devices, mounts: $left"
ok "2 states failed, each unmounted, detached and restored"

check "--model no-flush fails within 10 states, with a reason"
explore ok 1 --model no-flush --max-states 10
grep -qE '^FAIL .*(mount exit|xfs_repair -n exit)' "$TMP/ok.crash.log" ||
	fail "no failure names the mount or xfs_repair"
ok "$failed of $states states failed"

echo "test-crash-xfs: all checks passed"
