#!/usr/bin/env bash
# test-rbd-diff: loopd against a reference RBD server.  The same sequence
# of requests (test_rbd_diff.py: writes of 1 byte to 8 MiB, unaligned and
# across object boundaries, WRITE_ZEROES with and without NO_HOLE, FUA,
# TRIMs, FLUSHes and READs, 16 in flight; RBD_DIFF_SEED picks it, printed
# for a rerun) goes to one fresh image through qemu-nbd (qemu's rbd
# driver, serving rbd:POOL/IMAGE:conf=FILE on a Unix socket) and to
# another through loopd.  Then:
#   - every request succeeded on both, and every READ returned what the
#     requests before it wrote;
#   - both exports read back whole as the model of the sequence says;
#   - with both servers stopped, "rbd export" of the two images gives
#     the same bytes, equal to the model, except in trimmed ranges (what a
#     TRIM leaves is unspecified in NBD, and librbd may keep the old data
#     of a partial object: the test says how much of it matched);
#   - loopd's image reads as zeroes in every trimmed range (loopd asks
#     librbd to zero partial objects too; qemu-nbd leaves them as they
#     were, which NBD allows);
#   - the comparison fails when one byte of an export is changed.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires qemu-nbd qemu-img
ceph_requires
qemu-img --help | grep -o 'Supported formats:.*' | grep -qw rbd ||
	skip "qemu has no rbd driver (qemu-block-extra)"

diff_py=$SRCDIR/tests/e2e/test_rbd_diff.py
seed=${RBD_DIFF_SEED:-$((RANDOM * 32768 + RANDOM))}
nops=${RBD_DIFF_OPS:-4000}
echo "seed $seed, $nops requests (RBD_DIFF_SEED=$seed to rerun)"

rbd_image diff-ref 64M
ref=$rbd_img
rbd_image diff-loopd 64M
mine=$rbd_img

check "qemu-nbd serves rbd:$ref"
qemu-nbd --fork --persistent --pid-file="$TMP/qemu.pid" \
	--socket="$TMP/qemu.sock" --format=raw --discard=unmap \
	--cache=writeback "rbd:$ref:conf=$LOOPD_CEPH_CONF" \
	</dev/null >"$TMP/qemu-nbd.out" 2>"$TMP/qemu-nbd.log" ||
	fail "qemu-nbd did not start: $(cat "$TMP/qemu-nbd.log")"
track_pidfile "$TMP/qemu.pid" || fail "qemu-nbd wrote no pid file"
qemu_pid=$pid
[[ -S $TMP/qemu.sock ]] || fail "qemu-nbd returned before listening"
ref_uri="nbd+unix:///?socket=$TMP/qemu.sock"
ok "qemu-nbd $qemu_pid"

start_server loopd --ceph-conf "$LOOPD_CEPH_CONF" "rbd:$mine"
loopd_pid=$pid
loopd_uri=$uri

check "the sequence through qemu-nbd (the reference)"
"$PY" "$diff_py" run "$ref_uri" "$seed" "$nops" "$TMP/ref" ||
	fail "the reference server failed the sequence"
check "the same sequence through loopd"
"$PY" "$diff_py" run "$loopd_uri" "$seed" "$nops" "$TMP/loopd" ||
	fail "loopd failed the sequence"
if ! cmp -s "$TMP/ref.model" "$TMP/loopd.model" ||
	! cmp -s "$TMP/ref.undef" "$TMP/loopd.undef"; then
	fail "the two runs did not replay the same sequence"
fi

check "with both servers stopped, rbd export of the two images"
stop_server "$qemu_pid"
stop_server "$loopd_pid"
for x in ref mine; do
	rbd_cli export --no-progress "${!x}" "$TMP/$x.raw" >/dev/null \
		2>"$TMP/export.err" || fail "rbd export ${!x}: $(cat "$TMP/export.err")"
done
"$PY" "$diff_py" cmp "$TMP/loopd.model" "$TMP/loopd.undef" \
	"$TMP/ref.raw" "$TMP/mine.raw" || fail "the images differ"
if cmp -s "$TMP/ref.raw" "$TMP/mine.raw"; then
	ok "the two images are byte-identical, trimmed ranges included"
fi

check "loopd's TRIMs zeroed exactly their ranges (rbd_skip_partial_discard off)"
"$PY" "$diff_py" trimzero "$TMP/loopd.undef" "$TMP/mine.raw" ||
	fail "a range trimmed through loopd does not read as zeroes"

check "the comparison sees one changed byte"
cp "$TMP/mine.raw" "$TMP/tampered.raw"
"$PY" "$diff_py" tamper "$TMP/loopd.model" "$TMP/loopd.undef" \
	"$TMP/tampered.raw" >"$TMP/tamper.out" || fail "tamper failed"
off=$(sed -n 's/^tampered: //p' "$TMP/tamper.out")
rc=0
"$PY" "$diff_py" cmp "$TMP/loopd.model" "$TMP/loopd.undef" \
	"$TMP/tampered.raw" >"$TMP/cmp.out" 2>&1 || rc=$?
((rc == 1)) || fail "cmp exited $rc on a changed byte: $(cat "$TMP/cmp.out")"
grep -q "byte $off " "$TMP/cmp.out" ||
	fail "cmp did not name byte $off: $(cat "$TMP/cmp.out")"
ok "cmp fails at byte $off"

echo "test-rbd-diff: all checks passed"
