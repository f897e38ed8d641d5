#!/usr/bin/env bash
# test-qemu: qemu's NBD client: qemu-img info/convert/compare and qemu-io
# pattern checks, synchronous and pipelined.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires qemu-img qemu-io

start_server main --size 64M "$(disk "$TMP/disk.img")"

check "qemu-img info reports the virtual size"
qemu-img info "$uri" >"$TMP/info.txt"
grep -q 'virtual size: 64 MiB (67108864 bytes)' "$TMP/info.txt" ||
	fail "unexpected qemu-img info: $(cat "$TMP/info.txt")"
ok "64 MiB"

check "qemu-img convert to the export and back; qemu-img compare"
random_file "$TMP/src.raw" 32
qemu-img convert -n -f raw -O raw "$TMP/src.raw" "$uri"
qemu-img convert -f raw -O raw "$uri" "$TMP/back.raw"
cmp -n $((32 << 20)) "$TMP/src.raw" "$TMP/back.raw" ||
	fail "data read back differs"
qemu-img compare -f raw -F raw "$TMP/src.raw" "$uri" ||
	fail "qemu-img compare found a difference"
ok "32 MiB round trip identical"

# qemu_io DESC CMD...: run qemu-io (no host cache, so no implicit FUA) with
# one -c per CMD; it must exit 0 and report no failed verification.
qemu_io() {
	local desc=$1 rc=0 args=()
	shift
	for c in "$@"; do
		args+=(-c "$c")
	done
	qemu-io -f raw -t none "${args[@]}" "$uri" >"$TMP/qemu-io.out" 2>&1 ||
		rc=$?
	if ((rc != 0)) || grep -qiE 'fail|error' "$TMP/qemu-io.out"; then
		cat "$TMP/qemu-io.out" >&2
		fail "qemu-io $desc: exit $rc"
	fi
	ok "$desc"
}

check "qemu-io synchronous patterns"
qemu_io "write/read 0xab, flush" 'write -P 0xab 0 1M' 'read -P 0xab 0 1M' \
	flush
qemu_io "discard, write -z, read zeros" 'discard 0 64k' 'write -z 1M 64k' \
	'read -P 0 1M 64k' 'read -P 0xab 64k 960k'
qemu_io "unaligned write/read" 'write -P 0xcd 131073 1000' \
	'read -P 0xcd 131073 1000' 'read -P 0xab 131072 1' 'read -P 0xab 132073 1'
qemu_io "FUA write" 'write -f -P 0x5e 2M 64k' 'read -P 0x5e 2M 64k'

check "qemu-io pipelined (aio) patterns"
qemu_io "aio writes to distinct ranges" \
	'aio_write -P 0x11 4M 64k' 'aio_write -P 0x22 5M 128k' \
	'aio_write -P 0x33 6M 4k' aio_flush \
	'read -P 0x11 4M 64k' 'read -P 0x22 5M 128k' 'read -P 0x33 6M 4k'
qemu_io "aio reads" 'aio_read -P 0x11 4M 64k' 'aio_read -P 0x22 5M 128k' \
	aio_flush
qemu_io "aio overlapping writes" 'aio_write -P 0x44 8M 64k' \
	'aio_write -P 0x55 8M 64k' aio_flush 'read -P 0x55 8M 64k'

echo "test-qemu: all checks passed"
