#!/usr/bin/env bash
# test-record-stream: the trace's stream and the base copy on a real
# filesystem (issue 12).
#   - K8: the writer writes the trace with O_DIRECT; marks drain partial
#     buffers at unaligned stream offsets, and the stream realigns after
#     them.  750 distinct 16 KiB payloads (12 MiB of DATA, a dozen
#     buffers) with four marks between them must all be in the trace,
#     and the trace must replay onto its base to the final file;
#   - U2: the base copy reads the served file with O_DIRECT; a file of an
#     odd size whose last bytes and some blocks were written just before
#     (still dirty in the page cache) is copied byte for byte.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

check "U2: the base copy of a file just written, of an odd size"
img=$TMP/odd.img
size=$((16 * 1048576 + 4097))
"$PY" - "$img" "$size" <<'PYEOF'
import os
import sys

path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(size)
    for blk in (0, 5, 1000, 4095):
        f.seek(blk * 4096)
        f.write(os.urandom(4096))
    f.seek(size - 4097)
    f.write(os.urandom(4097))  # the unaligned tail, across a block
# no fsync: the copy must see the page cache's dirty pages
PYEOF
trace=$TMP/t.trace
start_server rec --record "$trace" "$img"
cmp "$img" "$trace.base" || fail "the base copy differs from the served file"
[[ $(stat -c %s "$trace.base") == "$size" ]] || fail "the base has the wrong size"
ok "$size bytes copied byte for byte, holes kept ($(du -k "$trace.base" | cut -f1) KiB used)"

check "K8: the trace file is written with O_DIRECT"
direct=0
for fd in /proc/"$pid"/fd/*; do
	[[ $(readlink "$fd") == "$trace" ]] || continue
	flags=$(awk '/^flags:/ { print $2 }' "/proc/$pid/fdinfo/${fd##*/}")
	(((8#$flags & 8#40000) != 0)) && direct=1 # O_DIRECT
done
((direct == 1)) || fail "no descriptor of $trace has O_DIRECT (on $(stat -f -c %T "$TMP"))"
ok "one descriptor of the trace has O_DIRECT"

check "K8: 750 distinct payloads with four marks between them"
"$PY" - "$uri" "$LOOPD" "$trace" <<'PYEOF'
import subprocess
import sys

from nbdtest import connect, ok

uri, loopd, trace = sys.argv[1:4]
h = connect(uri)
n = 0
for batch in range(5):
    for i in range(150):
        # distinct content, so every payload is stored (K2)
        data = (n + 1).to_bytes(4, "little") * 4096  # 16 KiB
        h.pwrite(data, (n % 1000) * 16384)
        n += 1
    if batch < 4:
        # a mark drains the partial buffer: the stream is unaligned after
        subprocess.run([loopd, "trace", "mark", trace, f"batch {batch}"],
                       check=True)
h.flush()
h.shutdown()
ok(f"{n} writes, 4 marks")
PYEOF
stop_server "$pid"
"$LOOPD" trace stats "$trace" >"$TMP/stats"
want() { trace_stat_is "$TMP/stats" "$@"; }
want "writes:" 750
want "marks:" 4
want "end:" present
want "torn tail:" "0 bytes"
want "unique payload:" "$((750 * 16384)) bytes in 750 records"
ok "every record is in the trace, none torn"
last_state_is "$trace" "$TMP/stats" "$img"
