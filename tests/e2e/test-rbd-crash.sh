#!/usr/bin/env bash
# test-rbd-crash: the crash explorer on a recording of an RBD export
# (issue "Beyond one disk").  The ext4 workload of test-crash-ext4 runs on
# the host kernel (nbdfuse + a loop device) against loopd serving a 64 MiB
# RBD image with --record; the base image is the sparse local copy that
# the RBD backend makes when recording starts (K5).  Then:
#   - the self-check A7 holds: the writes replayed onto that copy give the
#     SHA-256 that loopd read back from the image at the end;
#   - --check ext4 over >= 500 states finds no failure (the default model);
#   - --model no-flush finds a failure within 10 states.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
ceph_requires
kernel_requires
# shellcheck source=tests/e2e/crash-lib.sh
source "$SRCDIR/tests/e2e/crash-lib.sh"

rbd_image crash 64M
record_disk="rbd:$rbd_img"

check "record an ext4 workload on rbd:$rbd_img"
t0=$SECONDS
record rbd "" --ceph-conf "$LOOPD_CEPH_CONF"
ok "recorded in $((SECONDS - t0)) s"

check "--check ext4 over >= 500 states finds no failure; A7 holds"
explore rbd 0 --max-states 600
((states >= 500)) || fail "only $states states were checked"
grep -q '^self-check (A7): ok' "$TMP/rbd.crash.log" ||
	fail "A7 did not hold: $(grep 'self-check' "$TMP/rbd.crash.log")"
ok "$states states, 0 failures, A7 ok"

check "--model no-flush fails within 10 states"
explore rbd 1 --model no-flush --max-states 10
ok "$failed of $states states failed"

echo "test-rbd-crash: all checks passed"
