#!/usr/bin/env bash
# test-record: `loopd serve --record` and `loopd trace` (issue 4, recorder).
# A known workload over two connections is recorded; then:
#   - `trace stats` counts exactly what was sent (writes, flushes, FUA,
#     bytes), stores identical payloads once and zero payloads not at all;
#   - `trace mark` (through TRACE.ctl) appears in `trace dump`;
#   - the recorder self-check A7 passes: the writes replayed onto the
#     base give the final file, and the last state equals the file;
#   - a trace cut in the middle of a record, or with a flipped bit, keeps
#     its valid prefix and reports what was dropped.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

trace=$TMP/t.trace
start_server rec --size 16M --record "$trace" "$TMP/disk.img"
[[ -S $trace.ctl ]] || fail "no control socket $trace.ctl"
[[ $(stat -c %a "$trace.ctl") == 600 ]] || fail "$trace.ctl is not mode 0600"
[[ -f $trace.base ]] || fail "no base image $trace.base"

check "record a known workload on two connections"
"$PY" - "$uri" <<'PYEOF'
import sys

import nbd

from nbdtest import connect, ok

uri = sys.argv[1]
h1, h2 = connect(uri), connect(uri)
a = b"\x11" * 4096
b = bytes(range(256)) * 32  # 8 KiB
h1.pwrite(a, 0)                               # 1
h2.pwrite(a, 65536)                           # 2, same payload as 1
h1.pwrite(b, 8192, nbd.CMD_FLAG_FUA)          # 3, FUA
h2.pwrite(bytes(4096), 1 << 20)               # 4, all zeroes
h1.flush()                                    # flush 1
h2.pwrite(b, 2 << 20)                         # 5, same payload as 3
h1.pwrite(b"\x22" * 512, 3 << 20, nbd.CMD_FLAG_FUA)  # 6, FUA
h2.zero(65536, 4 << 20)                       # write_zeroes 1
h1.trim(65536, 5 << 20)                       # trim 1
h2.flush()                                    # flush 2
for i in range(3):
    assert h1.pread(4096, 0) == a             # reads 1-3
h1.flush()                                    # flush 3
h1.shutdown()
h2.shutdown()
ok("6 writes (2 FUA), 1 write_zeroes, 1 trim, 3 flushes, 3 reads")
PYEOF

check "trace mark while recording"
"$LOOPD" trace mark "$trace" "after the workload" || fail "trace mark failed"
ok "marked"
if "$LOOPD" trace mark "$TMP/nothing.trace" x 2>"$TMP/mark.err"; then
	fail "trace mark without a recording server succeeded"
fi
grep -q "is a server recording" "$TMP/mark.err" || fail "$(cat "$TMP/mark.err")"
ok "trace mark without a server fails with a reason"

stop_server "$pid"
[[ ! -e $trace.ctl ]] || fail "$trace.ctl left behind"

check "trace stats counts what was sent"
"$LOOPD" trace stats "$trace" >"$TMP/stats"
cat "$TMP/stats"
want() { trace_stat_is "$TMP/stats" "$@"; }
want "writes:" 6
want "flushes:" 3
want "fua:" 2
want "marks:" 1
want "end:" present
want "torn tail:" "0 bytes"
want "flush mode:" sync
# 4096 + 8192 + 4096 (zero) + 8192 + 512 written, + 65536 zeroed, +
# 65536 trimmed; stored once each: 4096 + 8192 + 512.
want "bytes written:" $((4096 * 3 + 8192 * 2 + 512 + 65536 * 2))
want "unique payload:" "$((4096 + 8192 + 512)) bytes in 3 records"
grep -qE '^requests: +14 \(writes 6, write_zeroes 1, trims 1, flushes 3, reads 3' \
	"$TMP/stats" || fail "trace stats: wrong request counts"
ok "stats match the workload"

check "trace dump"
"$LOOPD" trace dump "$trace" >"$TMP/dump"
n_recv=$(grep -c ' RECV ' "$TMP/dump")
n_reply=$(grep -c ' REPLY ' "$TMP/dump")
((n_recv == 14 && n_reply == 14)) ||
	fail "dump: $n_recv RECV and $n_reply REPLY records, want 14 each"
grep -q ' MARK "after the workload"$' "$TMP/dump" || fail "dump: no MARK"
grep -q ' WRITE .* FUA data=@' "$TMP/dump" || fail "dump: no FUA WRITE"
grep -q ' data=zero$' "$TMP/dump" || fail "dump: the zero payload is stored"
grep -q ' END records=' "$TMP/dump" || fail "dump: no END"
# Two connections: replies name the connection of their request.
[[ $(grep ' RECV ' "$TMP/dump" | sed 's/.*conn=\([0-9]*\).*/\1/' |
	sort -u | wc -l) == 2 ]] || fail "dump: want two connections"
ok "$n_recv requests, $n_reply replies, the mark and END"

check "A7: the trace replays onto the base to the final file"
"$LOOPD" crash "$trace" --check true -q >"$TMP/crash.log" ||
	fail "loopd crash --check true: $(cat "$TMP/crash.log")"
grep -q '^self-check (A7): ok' "$TMP/crash.log" ||
	fail "no A7 self-check: $(cat "$TMP/crash.log")"
grep '^states:' "$TMP/crash.log"
ok "A7 self-check passed"
last_state_is "$trace" "$TMP/stats" "$TMP/disk.img"

check "--state wants POINT.ITEM in digits: no wrap-around, no signs"
for bad in 4294967296.2 -1.2 0.-1 " 0.2" 0.2x 0; do
	rc=0
	"$LOOPD" crash "$trace" --state "$bad" --out "$TMP/bad.img" \
		>/dev/null 2>"$TMP/bad.err" || rc=$?
	((rc == 2)) || fail "--state '$bad': exit $rc, want 2"
	grep -q 'expected POINT.ITEM' "$TMP/bad.err" ||
		fail "--state '$bad': $(cat "$TMP/bad.err")"
done
ok "6 malformed state IDs refused"

check "a trace cut in the middle of a record keeps its valid prefix"
size=$(stat -c %s "$trace")
# The second DATA record (8 KiB) starts at this offset; cut 100 bytes in.
pos=$(grep ' DATA @' "$TMP/dump" | sed -n '2s/.* DATA @\([0-9]*\) .*/\1/p')
head -c $((pos + 100)) "$trace" >"$TMP/cut.trace"
"$LOOPD" trace stats "$TMP/cut.trace" >"$TMP/cut.stats"
grep -qE "^torn tail: +100 bytes dropped: torn record" \
	"$TMP/cut.stats" || fail "cut trace: $(grep torn "$TMP/cut.stats")"
grep -qE '^end: +missing' "$TMP/cut.stats" || fail "cut trace: END not missing"
grep -qE '^writes: +2$' "$TMP/cut.stats" ||
	fail "cut trace: $(grep '^writes' "$TMP/cut.stats"), want the 2 before the cut"
"$LOOPD" trace dump "$TMP/cut.trace" | grep -q '^torn tail: 100 bytes dropped' ||
	fail "dump of the cut trace does not report the torn tail"
"$LOOPD" crash "$TMP/cut.trace" --base "$trace.base" --check true -q \
	>"$TMP/cut.log" 2>&1 || fail "crash on the cut trace: $(cat "$TMP/cut.log")"
grep -q '^self-check (A7): skipped (no END record)' "$TMP/cut.log" ||
	fail "cut trace: $(cat "$TMP/cut.log")"
ok "prefix kept, 100 bytes dropped, explorable"

check "a flipped bit is caught by the record checksum"
cp "$trace" "$TMP/flip.trace"
# Flip one bit inside the first 8 KiB payload.
printf '\x01' | dd of="$TMP/flip.trace" bs=1 seek=$((pos + 1000)) conv=notrunc \
	status=none
"$LOOPD" trace stats "$TMP/flip.trace" | grep -qE "^torn tail: +$((size - pos)) bytes dropped: checksum mismatch" ||
	fail "flipped bit: $("$LOOPD" trace stats "$TMP/flip.trace" | grep torn)"
ok "checksum mismatch, the records before it kept"

check "6,000 distinct payloads: the dedupe table grows behind the writer (K2)"
# The table grows from 1,024 slots to 16,384; from 4,096 on, the writer
# thread makes each next table before the growth takes it (trace.c).
start_server many --size 16M --record "$TMP/many.trace" "$TMP/many.img"
"$PY" - "$uri" <<'PYEOF'
import sys

from nbdtest import connect, ok

h = connect(sys.argv[1])
for i in range(6000):
    h.pwrite((i + 1).to_bytes(8, "little") * 512, (i % 4096) * 4096)
for i in range(0, 6000, 60):  # 100 payloads again, found across growths
    h.pwrite((i + 1).to_bytes(8, "little") * 512, ((i + 7) % 4096) * 4096)
h.flush()
h.shutdown()
ok("6,100 writes of 6,000 distinct 4 KiB payloads")
PYEOF
stop_server "$pid"
"$LOOPD" trace stats "$TMP/many.trace" >"$TMP/many.stats"
trace_stat_is "$TMP/many.stats" "writes:" 6100
trace_stat_is "$TMP/many.stats" "unique payload:" "$((6000 * 4096)) bytes in 6000 records"
"$LOOPD" crash "$TMP/many.trace" --check true -q --max-states 1 \
	>"$TMP/many.log" 2>&1 || fail "loopd crash: $(cat "$TMP/many.log")"
grep -q '^self-check (A7): ok' "$TMP/many.log" || fail "A7: $(cat "$TMP/many.log")"
ok "every payload stored once, the 100 repeats found, A7 passes"

check "an unaligned TRIM under O_DIRECT: the trace says what the file got (Z1, S4)"
real_fs_dir
start_server trim --size 16M --cache direct --record "$TMP/trim.trace" \
	"$dir/trim.img"
grep -q 'O_DIRECT' "$TMP/trim.log" || fail "precondition: not O_DIRECT"
"$PY" - "$uri" <<'PYEOF'
import sys

from nbdtest import connect, ok

h = connect(sys.argv[1], strict=False)  # libnbd refuses unaligned TRIMs
h.pwrite(b"\x33" * 65536, 0)
h.trim(20000, 1000)     # [1000, 21000): the 4 KiB blocks 4096-20480 inside
h.trim(100, 30000)      # no whole block inside: nothing
h.flush()
h.shutdown()
ok("64 KiB written, two unaligned TRIMs, a flush")
PYEOF
stop_server "$pid"
"$LOOPD" crash "$TMP/trim.trace" --check true -q >"$TMP/trim-crash.log" 2>&1 ||
	fail "loopd crash: $(cat "$TMP/trim-crash.log")"
grep -q '^self-check (A7): ok' "$TMP/trim-crash.log" ||
	fail "A7: $(cat "$TMP/trim-crash.log")"
ok "A7 passes"
"$LOOPD" trace stats "$TMP/trim.trace" >"$TMP/trim.stats"
last_state_is "$TMP/trim.trace" "$TMP/trim.stats" "$dir/trim.img"

if ((EUID == 0)); then
	check "a trace write that fails: the trace ends as incomplete (K7)"
	mkdir -p "$TMP/small"
	mount -t tmpfs -o size=1m tmpfs "$TMP/small"
	on_exit "umount -l '$TMP/small'"
	start_server full --size 16M --record "$TMP/small/full.trace" \
		"$TMP/full.img"
	"$PY" - "$uri" <<'PYEOF'
import os
import sys

from nbdtest import connect, ok

h = connect(sys.argv[1])
for i in range(16):  # 4 MiB of payloads cannot fit in a 1 MiB tmpfs
    h.pwrite(os.urandom(256 * 1024), i * 256 * 1024)
h.flush()
h.shutdown()
ok("4 MiB of random writes served while the trace ran out of space")
PYEOF
	stop_server "$pid"
	grep -q 'recording stopped' "$TMP/full.log" ||
		fail "the server did not say the recording stopped"
	"$LOOPD" trace stats "$TMP/small/full.trace" >"$TMP/full.stats"
	grep -qE '^end: +present, recording incomplete' "$TMP/full.stats" ||
		fail "trace stats: $(grep -E '^(end|torn)' "$TMP/full.stats")"
	grep -qE '^torn tail: +0 bytes' "$TMP/full.stats" ||
		fail "trace stats: $(grep -E '^torn' "$TMP/full.stats")"
	"$LOOPD" crash "$TMP/small/full.trace" --check true -q \
		>"$TMP/full-crash.log" 2>&1 || fail "$(cat "$TMP/full-crash.log")"
	grep -q '^self-check (A7): skipped (the recording was incomplete)' \
		"$TMP/full-crash.log" || fail "$(cat "$TMP/full-crash.log")"
	ok "an END that says incomplete, right after the last whole record"
else
	echo "note: the full-trace check needs root (a small tmpfs); not run"
fi

echo "test-record: all checks passed"
