#!/usr/bin/env bash
# test-rbd-map: BLOCK_STATUS on RBD exports (D8 in src/backend/rbd.c).
#   - an image with fast-diff: a fresh image is one hole; after writes,
#     exactly the objects written are data, the rest holes, and that holds
#     at once after the writes, before any flush (librbd's object map
#     covers what its cache holds);
#   - qemu-img convert through the map copies the image exactly
#     (qemu-img compare), and the copy is sparse where the image is;
#   - an image without fast-diff (layering only) reports all data, never
#     a hole: without the object map loopd cannot see what librbd's cache
#     still holds;
#   - once loopd has stopped, neither image keeps a watcher (loopd closes
#     its handles; a handle left open kept its watch for 30 s, and rbd rm
#     refused the image until then).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo qemu-img qemu-io
ceph_requires

MiB=$((1 << 20))
fd=rbd/map-fd-$$
rbd_cli create "$fd" --size 256M \
	--image-feature layering,exclusive-lock,object-map,fast-diff \
	>"$TMP/create.err" 2>&1 || fail "rbd create $fd: $(cat "$TMP/create.err")"
on_exit "rbd_remove '$fd'"
rbd_image map-plain 64M
plain=$rbd_img
start_server rbd --ceph-conf "$LOOPD_CEPH_CONF" "rbd:$fd" "rbd:$plain"
u_fd="nbd+unix:///${fd#*/}?socket=$socket"
u_plain="nbd+unix:///${plain#*/}?socket=$socket"

# map URI: "offset length type" lines of base:allocation.
map() {
	nbdinfo --map "$1" | awk '{ print $1, $2, $4 }'
}

check "a fresh fast-diff image is one hole"
map "$u_fd" >"$TMP/map0"
want="0 $((256 * MiB)) hole,zero"
[[ $(cat "$TMP/map0") == "$want" ]] ||
	fail "map of a fresh image: $(cat "$TMP/map0"), want $want"
ok "$want"

check "after writes (no flush yet), exactly the objects written are data"
# 4 KiB in object 1, 1 MiB in object 25, 5 MiB across objects 50-51
qemu-io -f raw "$u_fd" -c "write -P 1 $((5 * MiB)) 4k" \
	-c "write -P 2 $((100 * MiB)) 1M" \
	-c "write -P 3 $((202 * MiB)) 5M" >/dev/null
map "$u_fd" >"$TMP/map1"
cat >"$TMP/want1" <<EOW
0 $((4 * MiB)) hole,zero
$((4 * MiB)) $((4 * MiB)) data
$((8 * MiB)) $((92 * MiB)) hole,zero
$((100 * MiB)) $((4 * MiB)) data
$((104 * MiB)) $((96 * MiB)) hole,zero
$((200 * MiB)) $((8 * MiB)) data
$((208 * MiB)) $((48 * MiB)) hole,zero
EOW
diff "$TMP/want1" "$TMP/map1" >&2 || fail "the map is not the objects written"
ok "3 data runs (4 objects), 4 holes"

check "qemu-img convert through the map copies the image exactly"
qemu-img convert -f raw -O raw "$u_fd" "$TMP/copy.raw"
qemu-img compare -q -f raw -F raw "$TMP/copy.raw" "$u_fd" ||
	fail "the copy differs from the export"
used=$(du -k "$TMP/copy.raw" | cut -f1)
((used < 32 * 1024)) || fail "the copy uses $used KiB: holes were copied"
ok "identical; the copy uses $used KiB of 256 MiB"

check "an image without fast-diff reports all data"
qemu-io -f raw "$u_plain" -c "write -P 4 0 4k" >/dev/null
map "$u_plain" >"$TMP/map2"
want="0 $((64 * MiB)) data"
[[ $(cat "$TMP/map2") == "$want" ]] ||
	fail "map without fast-diff: $(cat "$TMP/map2"), want $want"
ok "$want"

check "after the stop, no watcher is left on either image"
stop_server "$pid"
for img in "$fd" "$plain"; do
	n=$(rbd_cli status --format json "$img" |
		"$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["watchers"]))')
	[[ $n == 0 ]] || fail "$img still has $n watcher(s) after loopd stopped"
done
ok "no watchers"

echo "test-rbd-map: all checks passed"
