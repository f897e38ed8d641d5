#!/usr/bin/env bash
# test-rbd-kernel: the Linux kernel as the client of an RBD image served
# by loopd (ext4 on a direct-I/O loop device on an nbdfuse file): mkfs,
# a small-file workload with fsyncs, renames and deletes, umount; e2fsck
# must find the filesystem clean and the files must read back after a
# remount.  Then, with the server stopped, the image as the cluster holds
# it ("rbd export") must be a clean filesystem too: what the kernel
# flushed reached the OSD, not only librbd's cache.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires
ceph_requires

rbd_image kernel 256M
img=$rbd_img
start_server main --ceph-conf "$LOOPD_CEPH_CONF" "rbd:$img"
mkdir "$TMP/mnt"
kernel_attach "$TMP/fuse" "$uri" --direct-io=on

# workload DIR: 200 small files each fsynced, renames, deletes, a big file.
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

check "ext4 on $img: mkfs, fsync workload, umount, e2fsck"
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

check "the files read back after a remount"
mount -o ro "$loopdev" "$TMP/mnt"
mounted=$TMP/mnt
(cd "$TMP/mnt" && sha256sum --quiet -c "$TMP/sums") ||
	fail "file contents changed across umount/mount"
ok "$n files read back"
kernel_detach

check "after the server stops, the cluster's copy is a clean filesystem"
stop_server "$pid"
rbd_cli export --no-progress "$img" "$TMP/exported.img" >/dev/null \
	2>"$TMP/export.err" || fail "rbd export: $(cat "$TMP/export.err")"
e2fsck -fn "$TMP/exported.img" >"$TMP/fsck2.log" 2>&1 ||
	fail "e2fsck on the exported image: $(cat "$TMP/fsck2.log")"
ok "e2fsck clean on the image read from the cluster"

echo "test-rbd-kernel: all checks passed"
