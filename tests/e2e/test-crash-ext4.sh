#!/usr/bin/env bash
# test-crash-ext4: the crash explorer's acceptance (issue 4, crash-model.md
# A1-A4).  A real ext4 workload on the host kernel (nbdfuse + a loop
# device: mkfs, mount, creates, fsyncs, renames, deletes, umount) is
# recorded by loopd, then:
#   - --check ext4 over >= 1000 states finds no failure (A1);
#   - --model no-flush finds a failure within 10 states (A2);
#   - --model skip-one-flush finds one within 200 states (A3);
#   - the same workload mounted -o barrier=0 on a correct loopd fails
#     within 10 states (A4: the explorer is not always green);
#   - a recording made with --flush=unsafe fails under the default
#     (served) model.
# Each run prints its state counts and its time.  The image is 64 MiB.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires

# shellcheck source=tests/e2e/crash-lib.sh
source "$SRCDIR/tests/e2e/crash-lib.sh"

check "record an ext4 workload (contract: --flush sync)"
t0=$SECONDS
record ok ""
ok "recorded in $((SECONDS - t0)) s"

check "A1: --check ext4 over >= 1000 states finds no failure"
explore ok 0 --max-states 1500
((states >= 1000)) || fail "only $states states were checked"
ok "$states states, 0 failures"

check "A2: --model no-flush fails within 10 states"
explore ok 1 --model no-flush --max-states 10
ok "$failed of $states states failed"

check "A3: --model skip-one-flush fails within 200 states"
explore ok 1 --model skip-one-flush --max-states 200
ok "$failed of $states states failed"

check "A4: ext4 mounted -o barrier=0 on a correct loopd fails within 10"
record nobarrier barrier=0
explore nobarrier 1 --max-states 10
ok "$failed of $states states failed"

check "a recording made with --flush=unsafe fails under the served model"
record unsafe "" --flush unsafe
explore unsafe 1 --max-states 10
ok "$failed of $states states failed"

echo "test-crash-ext4: all checks passed"
