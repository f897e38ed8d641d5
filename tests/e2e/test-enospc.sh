#!/usr/bin/env bash
# test-enospc: a bad disk that is full.  The export is a sparse file whose
# declared size (64 MiB) exceeds the free space of the filesystem it lives
# on, a real 32 MiB ext4 on a loop device.  A libnbd client writes until
# the filesystem is full, with O_DIRECT and with buffered I/O.
#
# The NBD spec asks a server to answer a write it has no room for with
# NBD_ENOSPC; loopd maps ENOSPC (and EDQUOT, EFBIG) from the filesystem to
# it.  With both caches ext4 reports ENOSPC when the write is issued
# (buffered writes reserve their delayed-allocation blocks in write()), so
# the client sees it on the write itself.  Checked, for each cache mode:
#   - pipelined writes fail with ENOSPC, and only with ENOSPC, after between
#     half and all of the free space was acknowledged;
#   - every acknowledged write reads back intact, on the same and on a new
#     connection;
#   - a plain write's ENOSPC is that write's own result (semantics.md, R5:
#     "writes that were already running without FUA get their own
#     result"): the export is not latched, so a FLUSH afterwards succeeds
#     and writes to space already allocated still succeed;
#   - a FUA write that hits ENOSPC latches the export (R5: its error may
#     be another page's writeback error): from then on writes and flushes
#     fail with EIO on every connection, and reads still work;
#   - after loopd stops, e2fsck finds the filesystem clean and the backing
#     file, read directly, holds every acknowledged write.
# Root, losetup and e2fsprogs are needed; the test is skipped without them.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires_root
requires losetup mkfs.ext4 e2fsck mount umount
losetup -f >/dev/null 2>&1 || skip "no free loop device"

img=$TMP/fs.img
mnt=$TMP/mnt
mkdir "$mnt"

# At exit, before the servers are stopped: stop the one that holds the
# mount busy, then unmount and detach.
teardown() {
	[[ -z $pid ]] || stop_server "$pid"
	loop_detach
}
on_exit teardown

for cache in direct buffered; do
	echo "--- --cache=$cache"
	rm -f "$img"
	truncate -s 32M "$img"
	mkfs.ext4 -q -F -b 4096 -m 0 "$img"
	loopdev=$(losetup -f --show "$img")
	mount -t ext4 "$loopdev" "$mnt"
	mounted=$mnt
	free=$(df -B1 --output=avail "$mnt" | tail -n 1)

	start_server "$cache" --size 64M --cache "$cache" "$mnt/disk.img"
	grep -q "$([[ $cache == direct ]] && echo O_DIRECT || echo buffered)" \
		"$TMP/$cache.log" || fail "loopd did not open the file in $cache mode"
	"$PY" "$SRCDIR/tests/e2e/test_enospc.py" fill "$uri" "$free" \
		"$TMP/model.json" || fail "--cache=$cache: the client failed"
	grep -q "a FUA write failed: No space left on device; the export no longer claims durability" \
		"$TMP/$cache.log" || fail "--cache=$cache: the R5 latch was not logged"
	stop_server "$pid"
	pid=

	check "--cache=$cache: the filesystem is clean and holds the data"
	umount "$mnt"
	mounted=
	e2fsck -fn "$loopdev" >"$TMP/fsck.out" 2>&1 ||
		fail "e2fsck -fn found errors: $(cat "$TMP/fsck.out")"
	ok "e2fsck -fn is clean"
	mount -t ext4 -o ro "$loopdev" "$mnt"
	mounted=$mnt
	"$PY" "$SRCDIR/tests/e2e/test_enospc.py" check "$mnt/disk.img" \
		"$TMP/model.json" || fail "--cache=$cache: data missing in the file"
	loop_detach
done

echo "test-enospc: all checks passed"
