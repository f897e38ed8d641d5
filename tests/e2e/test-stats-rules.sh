#!/usr/bin/env bash
# test-stats-rules (N4, N6): the counters show the rules at work.
#   - group commit (R1): four FLUSHes on four connections, the first sync
#     held 1.5 s: two syncs serve them (2 flushes per sync), and a FLUSH
#     with nothing new to sync is "clean" (R7);
#   - overlap waits (R3): a write held by an injected delay, an overlapping
#     one behind it: exactly one wait; none with --order relaxed;
#   - barrier waits (R4): with --flush barrier, a FLUSH behind a held write
#     and a write behind the FLUSH: two waits; none in the default mode;
#   - the latch (R5, N6): a failed sync latches with errno EIO and op
#     "sync"; a failed plain write is an error but no latch, a failed FUA
#     write latches with op "FUA WRITE"; errors are counted by errno, and
#     the text, JSON and Prometheus forms say the same.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

check "group commit: 4 flushes, the first sync held, 2 syncs (R1)"
start_server gc -q 2 --size 16M --inject 'delay=1500:sync*1' \
	"$TMP/gc.img"
"$PY" - "$uri" "$TMP/gc.ctl" <<'PYEOF'
import sys

from nbdtest import aio, connect, fail, ok, poll_until
from test_stats import export, stats, wait_stats

uri, ctl = sys.argv[1], sys.argv[2]
h = [connect(uri) for _ in range(4)]
data = b"\x77" * 4096
h[0].pwrite(data, 0)
ops = [aio("F1", h[0].aio_flush)]
# Readiness: the server counts a sync when it starts it (N4).
wait_stats(ctl, lambda d: export(d)["syncs"] == 1, "the first sync")
for i in (1, 2, 3):
    h[i].pwrite(data, i * 65536)  # completes while the sync is held
    ops.append(aio(f"F{i + 1}", h[i].aio_flush))
poll_until(h, lambda: all(o.done for o in ops), 30, "the four flushes")
if any(o.err for o in ops):
    fail(f"a flush failed: {[o.err for o in ops]}")
e = export(stats(ctl))
got = (e["flushes"], e["syncs"], e["flushes_synced"], e["flushes_joined"],
       e["flushes_per_sync"])
if got != (4, 2, 4, 0, 2.0):
    fail(f"flushes, syncs, synced, joined, per sync = {got}, "
         f"want (4, 2, 4, 0, 2.0)")
ok("4 flushes served by 2 syncs: 2.0 per sync")
h[0].flush()  # nothing written since the last sync: no sync (R7)
e = export(stats(ctl))
if (e["flushes"], e["syncs"], e["flushes_clean"]) != (5, 2, 1):
    fail(f"after a flush with nothing new: flushes {e['flushes']}, "
         f"syncs {e['syncs']}, clean {e['flushes_clean']}")
ok("a 5th flush with nothing new to sync is clean, no sync (R7)")
PYEOF
stop_server "$pid"

# waits KIND SERVE-ARGS...: a write held 0.5 s at [0, 64K), then either an
# overlapping write (KIND overlap) or a FLUSH and a disjoint write (KIND
# barrier), pipelined on one connection; sets $got to "OVERLAP BARRIER",
# the waits counted.
n_waits=0
waits() {
	local kind=$1
	shift
	n_waits=$((n_waits + 1))
	start_server "w$n_waits" --size 16M --inject 'delay=500:write*1' "$@" \
		"$TMP/w$n_waits.img"
	"$PY" - "$uri" "$TMP/w$n_waits.ctl" "$kind" >"$TMP/waits.out" <<'PYEOF'
import sys

from nbdtest import aio, aio_write, connect, fail, poll_until
from test_stats import export, stats

uri, ctl, kind = sys.argv[1:]
h = connect(uri)
ops = [aio_write(h, "A", b"\x01" * 65536, 0)]  # held 0.5 s
if kind == "overlap":
    ops.append(aio_write(h, "B", b"\x02" * 65536, 32768))
    ops.append(aio_write(h, "C", b"\x03" * 4096, 1 << 20))
else:
    ops.append(aio("F", h.aio_flush))
    ops.append(aio_write(h, "C", b"\x03" * 4096, 1 << 20))
poll_until([h], lambda: all(o.done for o in ops), 30, "the requests")
if any(o.err for o in ops):
    fail(f"a request failed: {[o.err for o in ops]}")
d = stats(ctl)
e, c = export(d), d["connections"][0]
if (c["waited_overlap"], c["waited_barrier"]) != \
        (e["waited_overlap"], e["waited_barrier"]):
    fail("the connection and the export disagree")
print(e["waited_overlap"], e["waited_barrier"])
PYEOF
	stop_server "$pid"
	got=$(<"$TMP/waits.out")
}

check "overlap waits: one write waits for an overlapping held one (R3)"
waits overlap
[[ $got == "1 0" ]] || fail "--order overlap: waits $got, want '1 0'"
ok "1 wait for an overlap"
waits overlap --order relaxed
[[ $got == "0 0" ]] || fail "--order relaxed: waits $got, want '0 0'"
ok "--order relaxed: none"

check "barrier waits: the FLUSH and the write after it wait (R4)"
waits barrier --flush barrier
[[ $got == "0 2" ]] || fail "--flush barrier: waits $got, want '0 2'"
ok "2 waits for a barrier"
waits barrier
[[ $got == "0 0" ]] || fail "--flush sync: waits $got, want '0 0'"
ok "--flush sync: none"

check "a failed sync latches: errno EIO, op sync (R5, N6)"
start_server latch --size 16M --inject 'error=EIO:sync*1' \
	"$TMP/l.img"
"$PY" - "$uri" "$TMP/latch.ctl" <<'PYEOF'
import errno
import sys

from nbdtest import connect, expect_error, fail, ok
from test_stats import export, stats

uri, ctl = sys.argv[1], sys.argv[2]
h = connect(uri)
h.pwrite(b"\x11" * 4096, 0)
e = export(stats(ctl))
if e["latched"] or e["latch"] is not None:
    fail("latched before any failure")
expect_error(errno.EIO, "the flush whose sync fails", h.flush)
expect_error(errno.EIO, "a write after the latch", h.pwrite, b"\x22" * 4096,
             0)
e = export(stats(ctl))
if not e["latched"] or e["latch"] != {"errno": "EIO", "op": "sync",
                                      "error": "Input/output error"}:
    fail(f"latched {e['latched']}, latch {e['latch']}")
if e["errors"] != {"EIO": 2} or e["errors_total"] != 2:
    fail(f"errors {e['errors']}, want EIO 2 (the flush, the write)")
ok(f"latched: {e['latch']}; errors {e['errors']}")
PYEOF
"$LOOPD" ctl "$TMP/latch.ctl" stats >"$TMP/latch.txt"
grep -Eq '^  latched +yes \(R5\): EIO on sync' "$TMP/latch.txt" ||
	fail "text: $(grep latched "$TMP/latch.txt")"
grep -Eq '^  errors +EIO 2$' "$TMP/latch.txt" || fail "text errors line"
"$LOOPD" ctl "$TMP/latch.ctl" stats --prometheus >"$TMP/latch.prom"
"$PY" - "$TMP/latch.prom" <<'PYEOF'
import sys

from nbdtest import fail, ok
from test_stats import parse_prometheus, prom

s = parse_prometheus(open(sys.argv[1]).read())
x = {"export": "l.img"}
if prom(s, "loopd_latched", **x) != 1 or \
        prom(s, "loopd_latch_info", errno="EIO", op="sync", **x) != 1 or \
        prom(s, "loopd_errors_total", errno="EIO", **x) != 2:
    fail("prometheus latch or errors")
ok("text and prometheus say latched, EIO on sync, 2 errors")
PYEOF
stop_server "$pid"

check "a failed plain write does not latch; a failed FUA write does (N6)"
start_server fua --size 16M --inject 'error=EIO:write*2' \
	"$TMP/f.img"
"$PY" - "$uri" "$TMP/fua.ctl" <<'PYEOF'
import errno
import sys

import nbd

from nbdtest import connect, expect_error, fail, ok
from test_stats import export, stats

uri, ctl = sys.argv[1], sys.argv[2]
h = connect(uri)
expect_error(errno.EIO, "a plain write", h.pwrite, b"\x33" * 4096, 0)
e = export(stats(ctl))
if e["latched"] or e["errors"] != {"EIO": 1}:
    fail(f"after a plain write's error: latched {e['latched']}, "
         f"errors {e['errors']}")
ok("a plain write's error: counted, not latched")
expect_error(errno.EIO, "a FUA write", h.pwrite, b"\x44" * 4096, 0,
             nbd.CMD_FLAG_FUA)
e = export(stats(ctl))
if not e["latched"] or e["latch"]["op"] != "FUA WRITE" or \
        e["latch"]["errno"] != "EIO" or e["errors"] != {"EIO": 2} or \
        e["fua"] != 1:
    fail(f"after a FUA write's error: {e['latched']} {e['latch']} "
         f"{e['errors']} fua {e['fua']}")
ok(f"a FUA write's error latched: {e['latch']}")
PYEOF
stop_server "$pid"

echo "test-stats-rules: all checks passed"
