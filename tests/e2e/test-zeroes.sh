#!/usr/bin/env bash
# test-zeroes: TRIM and WRITE_ZEROES on filesystems that lack a fallocate
# mode (Z1-Z6 in src/backend/zero.c; E5 in engine/request.c):
#   - tmpfs punches but has no ZERO_RANGE: NO_HOLE keeps the range
#     allocated, and two NO_HOLE requests failing at once do not turn
#     punching off (a later TRIM still frees space);
#   - ramfs has no fallocate at all: FUA + FAST_ZERO gets ENOTSUP and the
#     export keeps serving writes and flushes (no latch).  Needs root (a
#     ramfs mount); tmpfs checks the same with NO_HOLE.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

T=$SRCDIR/tests/e2e/test_zeroes.py
shm=$(mktemp -d /dev/shm/loopd-test-zeroes.XXXXXX)
on_exit "rm -rf '$shm'"
[[ $(stat -f -c %T "$shm") == tmpfs ]] || skip "/dev/shm is not a tmpfs"

check "tmpfs: NO_HOLE WRITE_ZEROES keeps the range allocated (Z3)"
start_fg nohole --size 16M "$shm/nohole.img"
"$PY" "$T" nohole "$uri" "$shm/nohole.img" || fail "the client failed"
kill -TERM "$fg_pid"
exit_status "$fg_pid"

check "tmpfs: two NO_HOLE failures at once leave punching on (Z6)"
# Both requests wait 300 ms, so their fallocates go out together.
start_fg race --size 16M --inject 'delay=300:zero' "$shm/race.img"
"$PY" "$T" race "$uri" "$shm/race.img" || fail "the client failed"
kill -TERM "$fg_pid"
exit_status "$fg_pid"

check "tmpfs: FUA + FAST_ZERO + NO_HOLE cannot be fast: ENOTSUP, no latch"
start_fg fast-tmpfs --size 16M "$shm/fast.img"
"$PY" "$T" fastfua "$uri" tmpfs || fail "the client failed"
kill -TERM "$fg_pid"
exit_status "$fg_pid"
((status == 0)) || fail "exit status $status: the export latched"
ok "exit status 0"

if ((EUID != 0)); then
	echo "note: the ramfs checks need root; not run"
else
	check "ramfs (no fallocate): FUA + FAST_ZERO gets ENOTSUP, no latch"
	mkdir -p "$TMP/ramfs"
	mount -t ramfs ramfs "$TMP/ramfs"
	on_exit "umount -l '$TMP/ramfs'"
	start_fg fast-ramfs --size 16M "$TMP/ramfs/fast.img"
	"$PY" "$T" fastfua "$uri" ramfs || fail "the client failed"
	kill -TERM "$fg_pid"
	exit_status "$fg_pid"
	((status == 0)) || fail "exit status $status: the export latched"
	ok "exit status 0"
fi

echo "test-zeroes: all checks passed"
