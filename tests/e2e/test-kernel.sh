#!/usr/bin/env bash
# test-kernel: the Linux kernel as the client (ext4 on a loop device on an
# nbdfuse file), with buffered and direct-I/O loop devices; e2fsck must find
# the filesystem clean and the files must read back.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires

start_server main --size 256M "$TMP/disk.img"
mkdir "$TMP/mnt"
fuse_attach "$TMP/fuse" "$uri"

# workload: 200 small files each fsynced, renames, deletes, a big file.
workload() {
	local d=$1 i
	for i in $(seq 200); do
		dd if=/dev/urandom of="$d/f$i" bs=4k count=$((i % 8 + 1)) \
			conv=fsync status=none
	done
	for i in $(seq 3 3 200); do
		mv "$d/f$i" "$d/renamed$i"
	done
	for i in $(seq 5 5 200); do
		rm -f "$d/f$i" "$d/renamed$i"
	done
	dd if=/dev/urandom of="$d/big" bs=1M count=32 conv=fsync status=none
	sync
}

for dio in off on; do
	check "ext4 on a loop device (direct-io=$dio): fsync workload, e2fsck"
	loop_attach --direct-io="$dio"
	echo "  $loopdev, dio=$(cat "/sys/block/${loopdev#/dev/}/loop/dio")"
	mkfs.ext4 -q -F "$loopdev"
	mount "$loopdev" "$TMP/mnt"
	mounted=$TMP/mnt
	workload "$TMP/mnt"
	(cd "$TMP/mnt" && find . -type f ! -name '.*' -print0 | sort -z |
		xargs -0 sha256sum) >"$TMP/sums"
	n=$(wc -l <"$TMP/sums")
	((n == 161)) || fail "$n files after the workload, want 161"
	umount "$TMP/mnt"
	mounted=
	e2fsck -fn "$loopdev" >"$TMP/fsck.log" 2>&1 ||
		fail "e2fsck found problems: $(cat "$TMP/fsck.log")"
	ok "e2fsck clean"
	mount -o ro "$loopdev" "$TMP/mnt"
	mounted=$TMP/mnt
	(cd "$TMP/mnt" && sha256sum --quiet -c "$TMP/sums") ||
		fail "file contents changed across umount/mount"
	umount "$TMP/mnt"
	mounted=
	ok "$n files read back after remount"
	loop_detach
done

echo "test-kernel: all checks passed"
