#!/usr/bin/env bash
# test-stats (N1-N5, Q1, Q6, Q7): the counters of `loopd ctl PATH stats`
# after a known workload on two connections, served by two workers while
# the counters are being read, match exactly: requests by command, bytes
# read and written, FUA, per connection and for the export, before and
# after the connections close (N3: a closed connection's counts are kept,
# once).  The latency histograms add up to the request counts.  The same
# figures come out as text, as JSON (parsed by Python's json) and as
# Prometheus text (checked by a parser of the exposition format).
# --stats-file is there from the start, valid, replaced whole (Q6) and
# final at exit; the control socket is the pidfile's path with .ctl
# (Q7), mode 0600, and is removed at exit.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

start_server main -q 2 --size 16M --stats-file "$TMP/stats.json" \
	--stats-interval 1 "$TMP/disk.img"
ctl=$TMP/main.ctl

check "the control socket is the pidfile's path with .ctl, mode 0600 (Q7)"
[[ -S $ctl ]] || fail "no control socket $ctl"
[[ $(stat -c %a "$ctl") == 600 ]] || fail "$ctl is mode $(stat -c %a "$ctl")"
ok "$ctl"

check "the stats file is there from the start, valid JSON, mode 0644 (Q6)"
[[ -f $TMP/stats.json ]] || fail "no $TMP/stats.json right after the start"
[[ $(stat -c %a "$TMP/stats.json") == 644 ]] || fail "stats file mode"
"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["exports"][0]["requests_total"] == 0, d' "$TMP/stats.json" ||
	fail "the first stats file is not the JSON of an idle server"
ok "an idle server's document"

check "a known workload on two connections, two workers, read meanwhile"
"$PY" - "$uri" "$ctl" <<'PYEOF'
import json
import os
import sys
import threading

import nbd

from nbdtest import connect, fail, ok
from test_stats import ask, check_histograms, export, stats, wait_stats

uri, ctl = sys.argv[1], sys.argv[2]
h1, h2 = connect(uri), connect(uri)
trim = h2.can_trim()
zero = h2.can_zero()


# Disjoint ranges: no request waits for another (R3).
def work1():
    for i in range(200):
        h1.pwrite(bytes([i % 255 + 1]) * 4096, i * 4096)
    for i in range(100):
        h1.pread(8192, i * 8192)
    for i in range(3):
        h1.flush()


def work2():
    for i in range(140):
        h2.pwrite(b"\x5a" * 65536, (1 << 20) + i * 65536)
    h2.pwrite(b"\xa5" * 4096, 12 << 20, nbd.CMD_FLAG_FUA)
    for i in range(80):
        h2.pread(4096, (1 << 20) + i * 4096)
    h2.flush()
    if trim:
        h2.trim(65536, 13 << 20)
    if zero:
        h2.zero(65536, 14 << 20)
    h2.flush()


done = threading.Event()
reads = 0


def reader():  # N3: reads while two workers count
    global reads
    while not done.is_set():
        a = ask(ctl, b"stats json\n")
        if not a.startswith(b"ok\n"):
            fail(f"stats during the workload: {a[:200]!r}")
        json.loads(a[3:])
        reads += 1


t = [threading.Thread(target=f) for f in (work1, work2, reader)]
for x in t:
    x.start()
t[0].join()
t[1].join()
done.set()
t[2].join()
ok(f"workload done; {reads} reads of the counters meanwhile")

want1 = {"READ": 100, "WRITE": 200, "FLUSH": 3, "TRIM": 0,
         "WRITE_ZEROES": 0}
want2 = {"READ": 80, "WRITE": 141, "FLUSH": 2, "TRIM": int(trim),
         "WRITE_ZEROES": int(zero)}
bytes1 = (100 * 8192, 200 * 4096)
bytes2 = (80 * 4096, 140 * 65536 + 4096)


def check_conn(c, want, byts, fua, what):
    for cmd, n in want.items():
        if c["requests"][cmd] != n:
            fail(f"{what}: {cmd} {c['requests'][cmd]}, want {n}")
    if (c["bytes_read"], c["bytes_written"]) != byts:
        fail(f"{what}: bytes {c['bytes_read']}/{c['bytes_written']}, "
             f"want {byts}")
    if c["fua"] != fua or c["errors_total"] != 0:
        fail(f"{what}: fua {c['fua']} errors {c['errors_total']}")
    if c["in_flight"] != 0 or c["in_flight_max"] < 1:
        fail(f"{what}: in flight {c['in_flight']} (max "
             f"{c['in_flight_max']})")
    ok(f"{what}: {c['requests_total']} requests as sent, bytes "
       f"{byts[0]} read, {byts[1]} written")


def check_export(e, conns):
    want = {k: want1[k] + want2[k] for k in want1}
    for cmd, n in want.items():
        if e["requests"][cmd] != n:
            fail(f"export: {cmd} {e['requests'][cmd]}, want {n}")
    if e["requests_total"] != sum(want.values()):
        fail(f"export: {e['requests_total']} requests, want "
             f"{sum(want.values())}")
    if (e["bytes_read"], e["bytes_written"]) != \
            (bytes1[0] + bytes2[0], bytes1[1] + bytes2[1]):
        fail(f"export: bytes {e['bytes_read']}/{e['bytes_written']}")
    if e["fua"] != 1 or e["flushes"] != 5 or e["connections"] != conns:
        fail(f"export: fua {e['fua']} flushes {e['flushes']} "
             f"connections {e['connections']}")
    if e["syncs"] < 1 or e["flushes_synced"] + e["flushes_clean"] != 5:
        fail(f"export: syncs {e['syncs']}, flushes synced "
             f"{e['flushes_synced']} clean {e['flushes_clean']}")
    if e["in_flight"] != 0 or e["latched"] or e["latch"] is not None:
        fail(f"export: in flight {e['in_flight']}, latched {e['latched']}")
    if e["waited_overlap"] or e["waited_barrier"] or e["errors"]:
        fail(f"export: waits {e['waited_overlap']}/{e['waited_barrier']} "
             f"or errors {e['errors']} in a workload without either")
    check_histograms(e, "export")
    ok(f"export: {e['requests_total']} requests, the sum of both; "
       f"histograms add up")


doc = stats(ctl)
e = export(doc)
conns = doc["connections"]
if len(conns) != 2 or conns[0]["id"] >= conns[1]["id"]:
    fail(f"connections: {conns}")
for c in conns:
    if c["peer"] != f"unix pid {os.getpid()} uid {os.getuid()}":
        fail(f"peer {c['peer']!r}, want this process")
    if not doc["started"] <= c["since"] <= doc["time"]:
        fail(f"connected since {c['since']}, started {doc['started']}")
    if c["export"] != e["name"]:
        fail(f"connection on export {c['export']!r}")
check_conn(conns[0], want1, bytes1, 0, "connection 1")
check_conn(conns[1], want2, bytes2, 1, "connection 2")
check_export(e, 2)

h1.shutdown()
h2.shutdown()
doc = wait_stats(ctl, lambda d: not d["connections"],
                 "the connections to close")
check_export(export(doc), 0)
ok("after both closed: the same totals, counted once (N3)")
PYEOF

check "the text table says the same (ctl stats)"
"$LOOPD" ctl "$ctl" stats >"$TMP/stats.txt" || fail "ctl stats failed"
cat "$TMP/stats.txt"
grep -Eq '^  requests +total (526|527|528): READ 180, WRITE 341, FLUSH 5' \
	"$TMP/stats.txt" || fail "no requests line with the workload's counts"
grep -Eq '^  bytes +read 1146880, written 9998336; 1 FUA$' "$TMP/stats.txt" ||
	fail "no bytes line with the workload's counts"
grep -Eq '^  latched +no$' "$TMP/stats.txt" || fail "no 'latched no' line"
ok "text table"

check "Prometheus text (ctl stats --prometheus) is well-formed and agrees"
"$LOOPD" ctl "$ctl" stats --prometheus >"$TMP/stats.prom" ||
	fail "ctl stats --prometheus failed"
"$PY" - "$TMP/stats.prom" "$ctl" <<'PYEOF'
import sys

from nbdtest import fail, ok
from test_stats import export, parse_prometheus, prom, stats

s = parse_prometheus(open(sys.argv[1]).read())
e = export(stats(sys.argv[2]))
x = {"export": e["name"]}
for cmd in ("READ", "WRITE", "FLUSH"):
    if prom(s, "loopd_requests_total", command=cmd, **x) != \
            e["requests"][cmd]:
        fail(f"prometheus {cmd} differs from JSON")
    if prom(s, "loopd_request_duration_seconds_count", command=cmd, **x) \
            != e["requests"][cmd]:
        fail(f"histogram count of {cmd} differs")
if prom(s, "loopd_read_bytes_total", **x) != e["bytes_read"] or \
        prom(s, "loopd_written_bytes_total", **x) != e["bytes_written"] or \
        prom(s, "loopd_syncs_total", **x) != e["syncs"] or \
        prom(s, "loopd_latched", **x) != 0:
    fail("prometheus bytes, syncs or latch differ from JSON")
ok(f"{len(s)} series, the same figures as the JSON")
PYEOF

check "the stats file catches up within its interval, whole (Q6)"
"$PY" - "$TMP/stats.json" <<'PYEOF'
import json
import sys
import time

from nbdtest import fail, ok
from test_stats import check_histograms

deadline = time.monotonic() + 10
while True:
    with open(sys.argv[1]) as f:
        d = json.load(f)  # never torn: a rename replaces it whole
    e = d["exports"][0]
    if e["requests"]["WRITE"] == 341 and not d["connections"]:
        break
    if time.monotonic() > deadline:
        fail(f"the stats file still says {e['requests']}")
    time.sleep(0.05)  # polling a file the server rewrites, bounded
check_histograms(e, "stats file")
ok(f"stats file: {e['requests_total']} requests")
PYEOF
shopt -s nullglob
left=("$TMP"/stats.json.*)
((${#left[@]} == 0)) || fail "temporary files left: ${left[*]}"
ok "no temporary file left beside it"

check "at stop: the control socket goes, the stats file stays, final"
stop_server "$pid"
[[ ! -e $ctl ]] || fail "$ctl left behind"
"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["exports"][0]["requests"]["WRITE"] == 341 and not d["connections"], d
' "$TMP/stats.json" || fail "the final stats file is not the final figures"
ok "socket removed; the file holds the final figures"

check "--stats-format prometheus: the file is well-formed from the start"
start_server prom --size 1M --control "$TMP/other.ctl" \
	--stats-file "$TMP/stats.prom" --stats-format prometheus \
	--stats-interval 3600 "$TMP/p.img"
[[ -S $TMP/other.ctl && ! -e $TMP/prom.ctl ]] || fail "--control ignored"
"$PY" - "$TMP/stats.prom" "$uri" <<'PYEOF'
import sys

from nbdtest import connect, fail, ok
from test_stats import parse_prometheus, prom

s = parse_prometheus(open(sys.argv[1]).read())
if prom(s, "loopd_requests_total", export="p.img", command="WRITE") != 0:
    fail("writes before any client")
h = connect(sys.argv[2])
h.pwrite(b"\1" * 512, 0)
h.shutdown()
ok(f"{len(s)} series at start")
PYEOF
stop_server "$pid"
"$PY" - "$TMP/stats.prom" <<'PYEOF'
import sys

from nbdtest import fail, ok
from test_stats import parse_prometheus, prom

s = parse_prometheus(open(sys.argv[1]).read())
if prom(s, "loopd_requests_total", export="p.img", command="WRITE") != 1:
    fail("the file written at stop does not count the write")
ok("the file written at the stop counts the write (interval 3600 s)")
PYEOF

echo "test-stats: all checks passed"
