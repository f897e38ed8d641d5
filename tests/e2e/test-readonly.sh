#!/usr/bin/env bash
# test-readonly: a -r export refuses every change with EPERM, serves reads,
# and leaves the file untouched.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo

random_file "$TMP/disk.img" 8
before=$(sha256sum <"$TMP/disk.img")
start_server ro -r "$TMP/disk.img"

check "nbdinfo shows is_read_only"
nbdinfo --json "$uri" >"$TMP/info.json"
"$PY" -c 'import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
sys.exit(0 if e["is_read_only"] is True else 1)' "$TMP/info.json" ||
	fail "is_read_only is not true: $(cat "$TMP/info.json")"
ok "is_read_only: true"

check "write, trim and zero fail with EPERM; reads work"
"$PY" - "$uri" "$TMP/disk.img" <<'PYEOF'
import errno
import sys

from nbdtest import connect, expect_error, fail, ok

h = connect(sys.argv[1], strict=False)
data = open(sys.argv[2], "rb").read()
if not h.is_read_only():
    fail("the export is not read-only")


def verify():
    if h.pread(65536, 4096) != data[4096:4096 + 65536]:
        fail("read returned the wrong data")


verify()
ok("read matches the file")
expect_error(errno.EPERM, "write", h.pwrite, b"\xff" * 4096, 0)
verify()
expect_error(errno.EPERM, "FUA write", h.pwrite, b"\xff" * 512, 512, 1)
verify()
expect_error(errno.EPERM, "trim", h.trim, 65536, 0)
verify()
expect_error(errno.EPERM, "zero", h.zero, 65536, 0)
verify()
if h.pread(len(data), 0) != data:
    fail("full read differs from the file")
ok("reads still work after every refusal; full read matches")
PYEOF

check "the file is unchanged"
stop_server "$pid"
after=$(sha256sum <"$TMP/disk.img")
[[ $before == "$after" ]] || fail "sha256 changed: $before -> $after"
ok "sha256 unchanged"

echo "test-readonly: all checks passed"
