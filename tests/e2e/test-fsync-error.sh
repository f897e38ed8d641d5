#!/usr/bin/env bash
# test-fsync-error (R5): once a sync fails, the export never claims
# durability again: that flush and every later write and flush fail with
# EIO, on every connection; reads still work.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

start_server main --size 16M --inject 'error=EIO:sync*1' "$(disk "$TMP/disk.img")"

check "a failed sync latches EIO for writes and flushes"
"$PY" - "$uri" <<'PYEOF'
import errno
import sys

import nbd

from nbdtest import connect, expect_error, fail, ok

uri = sys.argv[1]
h = connect(uri)
a = b"\xa5" * 65536
h.pwrite(a, 0)
ok("write before the failure succeeds")
expect_error(errno.EIO, "flush whose sync fails", h.flush)
expect_error(errno.EIO, "later write", h.pwrite, b"\x5a" * 65536, 65536)
expect_error(errno.EIO, "later FUA write", h.pwrite, b"\x5a" * 4096, 0,
             nbd.CMD_FLAG_FUA)
expect_error(errno.EIO, "later flush (the injected error was used up)",
             h.flush)
if h.pread(65536, 0) != a:
    fail("read after the failure does not return the acknowledged data")
ok("reads still work")
h2 = connect(uri)
expect_error(errno.EIO, "flush on a new connection", h2.flush)
expect_error(errno.EIO, "write on a new connection", h2.pwrite,
             b"\x5a" * 4096, 0)
if h2.pread(4096, 0) != a[:4096]:
    fail("read on a new connection returned the wrong data")
ok("reads work on a new connection")
PYEOF

echo "test-fsync-error: all checks passed"
