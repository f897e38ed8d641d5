#!/usr/bin/env bash
# test-plot: `loopd trace plot` (Y1-Y9, src/trace/plot*.c, svg.c).
#   - a known workload on two connections (writes, FUA, WRITE_ZEROES,
#     TRIM, reads, flushes) with two marks, one of them full of XML's
#     special characters, is plotted; the SVG parses (xml.etree) and has
#     two lanes, the marks' labels as they were given, flush brackets
#     (Y2), crash point ticks, syncs and FUA caps;
#   - `loopd crash --check false` fails a state; `--state ID` with the
#     same --model colours exactly the writes that state kept and dropped
#     (Y3): as many as the state line says, in both panels;
#   - --after LABEL, --from/--to and -o - (stdout) give the view asked
#     for; rsvg-convert (librsvg) renders the SVG, where installed;
#   - fio writing 20,000 random 4 KiB blocks: the lane and the offset
#     panel are binned (Y5-Y7) and the SVG stays small (Y8); bench/plot
#     does the same with 100,000;
#   - bad input is one line on stderr and exit 2 (usage) or 1 (error).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"

trace=$TMP/t.trace
start_server rec --size 16M --record "$trace" "$TMP/disk.img"

check "record a known workload on two connections, with two marks"
"$PY" - "$uri" "$LOOPD" "$trace" <<'PYEOF'
import subprocess
import sys

import nbd

from nbdtest import connect, ok

uri, loopd, trace = sys.argv[1:4]
h1, h2 = connect(uri), connect(uri)
for i in range(12):
    h1.pwrite(bytes([i + 1]) * 4096, i * 65536)
    h2.pwrite(bytes([i + 101]) * 8192, (1 << 20) + i * 8192,
              nbd.CMD_FLAG_FUA if i % 4 == 0 else 0)
    if i % 4 == 3:
        h1.flush()
subprocess.run([loopd, "trace", "mark", trace, 'half <way> & "quoted"'],
               check=True)
h2.zero(65536, 4 << 20)
h1.trim(65536, 5 << 20)
h2.flush()
for i in range(3):
    h1.pread(4096, 0)
subprocess.run([loopd, "trace", "mark", trace, "done"], check=True)
h1.flush()
h1.shutdown()
h2.shutdown()
ok("24 writes (3 FUA), 1 write_zeroes, 1 trim, 5 flushes, 3 reads, 2 marks")
PYEOF
stop_server "$pid"

# svg_check SVG PYTHON: parse SVG with xml.etree and run PYTHON on it
# (the root as r, classes counted by cls(), texts by texts()).
svg_check() {
	local svg=$1 code=$2
	"$PY" - "$svg" <<PYEOF
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
r = ET.parse(sys.argv[1]).getroot()
assert r.tag == NS + "svg", r.tag


def els(tag, c):
    return [e for e in r.iter(NS + tag) if e.get("class") == c]


def texts():
    return ["".join(e.itertext()) if e.find(NS + "title") is None
            else e.text for e in r.iter(NS + "text")]


def titles(tag, c):
    return [e.find(NS + "title").text for e in els(tag, c)]


$code
PYEOF
}

check "plot the workload"
"$LOOPD" trace plot "$trace" -o "$TMP/t.svg" >"$TMP/plot.out"
cat "$TMP/plot.out"
grep -q "^$TMP/t.svg: 1200x[0-9]* px, [0-9]* bytes; 2 lanes (0 binned)" \
	"$TMP/plot.out" || fail "plot summary: $(cat "$TMP/plot.out")"
svg_check "$TMP/t.svg" '
t = texts()
assert "conn 1" in t and "conn 2" in t, t
assert t.count("conn 1") == 1 and not any(x.startswith("conn 3") for x in t)
assert "half <way> & \"quoted\"" in t, t
assert "done" in t, t
# Y2: the flushes that cover new writes, each with a bracket and a title.
b = titles("rect", "hover")
assert len(b) >= 3, b
assert all("covers" in x for x in b), b
assert r.find(".//%spath[@class=\"bracket\"]" % NS) is not None
# Crash points: one tick each (4 flushes and 3 FUA writes at least).
ticks = titles("rect", "tick")
assert len(ticks) >= 7, ticks
assert all(x.startswith("crash point") for x in ticks), ticks
# Requests one by one, with titles: 24 writes in the lanes and by offset.
w = titles("rect", "write")
assert len(w) == 48, len(w)
assert len(titles("rect", "zero")) == 2 and len(titles("rect", "trim")) == 2
assert len(titles("rect", "read")) == 3, titles("rect", "read")
assert len(titles("rect", "flush")) == 5
assert len(titles("rect", "sync")) >= 4
assert r.find(".//%spath[@class=\"fua\"]" % NS) is not None
print("  ok: 2 lanes, 2 marks, %d brackets, %d ticks, 24 writes" % (len(b), len(ticks)))
'

check "--state: the writes a failing state kept and dropped"
"$LOOPD" crash "$trace" --check false --model no-flush --max-states 3 -j 1 \
	-q >"$TMP/crash.out" 2>&1 && fail "loopd crash --check false passed"
id=$(sed -n 's/^FAIL \([0-9]*\.[0-9]*\).*/\1/p' "$TMP/crash.out" | tail -n 1)
[[ -n $id ]] || fail "no FAIL line: $(cat "$TMP/crash.out")"
"$LOOPD" trace plot "$trace" -o "$TMP/s.svg" --state "$id" --model no-flush \
	>/dev/null
svg_check "$TMP/s.svg" '
import re
line = [x for x in texts() if x.startswith("state '"$id"' ")]
assert len(line) == 1, texts()
m = re.search(r"of (\d+) pending writes kept (\d+) .* torn (\d+) .* dropped (\d+)", line[0])
p, k, tn, d = map(int, m.groups())
assert p == k + tn + d and p > 0, line
# Both panels draw every write one by one: each twice.
assert len(titles("rect", "kept")) == 2 * k, (len(titles("rect", "kept")), k)
assert len(titles("rect", "dropped")) == 2 * d, (len(titles("rect", "dropped")), d)
assert all("KEPT" in x for x in titles("rect", "kept"))
assert all("DROPPED" in x for x in titles("rect", "dropped"))
assert r.find(".//%spath[@class=\"crash\"]" % NS) is not None
assert r.find(".//%spath[@class=\"after\"]" % NS) is not None
print("  ok: state '"$id"': %d pending, %d kept, %d dropped" % (p, k, d))
'

check "the view: --after LABEL, --from/--to, -o -"
"$LOOPD" trace plot "$trace" --after "done" -o - >"$TMP/after.svg"
done_seq=$("$LOOPD" trace dump "$trace" | sed -n 's/^\([0-9]*\) .* MARK "done"$/\1/p')
last=$("$LOOPD" trace dump "$trace" | grep -E '^[0-9]+ ' | tail -n 1 | cut -d' ' -f1)
svg_check "$TMP/after.svg" '
assert any("view: seq '"$done_seq-$last"' of 1-'"$last"';" in x for x in texts()), texts()
assert "done" in texts() and "half <way> & \"quoted\"" not in texts()
assert len(titles("rect", "write")) == 0
print("  ok: from the mark done (seq '"$done_seq"') on: no writes")
'
"$LOOPD" trace plot "$trace" --from 10 --to 20 -w 600 -o "$TMP/ft.svg" \
	>/dev/null
svg_check "$TMP/ft.svg" '
assert r.get("width") == "600"
assert any("view: seq 10-20 of" in x for x in texts()), texts()
print("  ok: seq 10-20, 600 px")
'
if command -v rsvg-convert >/dev/null; then
	rsvg-convert -o "$TMP/t.png" "$TMP/t.svg" ||
		fail "rsvg-convert cannot render the SVG"
	[[ $(head -c 4 "$TMP/t.png" | od -An -c | tr -d ' ') == 211PNG ]] ||
		fail "rsvg-convert wrote no PNG"
	ok "rsvg-convert renders it"
else
	echo "note: rsvg-convert (librsvg2-bin) is not installed; not rendered"
fi

check "bad input: one line, exit 2 for usage, 1 for errors"
# bad RC RE ARGS...: loopd trace plot ARGS exits RC with one line on
# stderr matching RE.
bad() {
	local want=$1 re=$2 rc=0
	shift 2
	"$LOOPD" trace plot "$@" </dev/null >/dev/null 2>"$TMP/bad.err" || rc=$?
	((rc == want)) || fail "plot $*: exit $rc, want $want: $(cat "$TMP/bad.err")"
	(($(wc -l <"$TMP/bad.err") == 1)) ||
		fail "plot $*: not one line: $(cat "$TMP/bad.err")"
	grep -qE -- "$re" "$TMP/bad.err" || fail "plot $*: $(cat "$TMP/bad.err")"
	echo "  ok: $(cat "$TMP/bad.err")"
}
bad 2 '-o FILE.svg is required' "$trace"
bad 2 "unknown option '--bogus'" "$trace" -o "$TMP/x.svg" --bogus
bad 2 "unknown option '-x'" "$trace" -o "$TMP/x.svg" -x
bad 2 "option '--width' needs a value" "$trace" -o "$TMP/x.svg" --width
bad 2 "bad option value '100'" "$trace" -o "$TMP/x.svg" --width 100
bad 2 "SVG only: plot to $TMP/x.svg, then rsvg-convert -o $TMP/x.png $TMP/x.svg" \
	"$trace" -o "$TMP/x.png"
bad 2 'name it \*\.svg' "$trace" -o "$TMP/x.pdf"
bad 2 'expected one TRACE' -o "$TMP/x.svg"
for s in 1 x.1 1.x -1.0 99999.0 4294967296.0; do
	bad 2 "--state $s: expected POINT.ITEM" "$trace" -o "$TMP/x.svg" --state "$s"
done
bad 2 '--state 0.999999: point 0 has [0-9]+ states' "$trace" -o "$TMP/x.svg" \
	--state 0.999999
bad 2 '--model bogus: expected served' "$trace" -o "$TMP/x.svg" --model bogus
bad 2 '--after nothing: no such mark' "$trace" -o "$TMP/x.svg" --after nothing
bad 2 'after the trace.s last record' "$trace" -o "$TMP/x.svg" --from 999999
bad 2 '--from 20 is after --to 10' "$trace" -o "$TMP/x.svg" --from 20 --to 10
bad 2 'give one' "$trace" -o "$TMP/x.svg" --from 2 --after "done"
bad 1 'No such file' "$TMP/nothing.trace" -o "$TMP/x.svg"
head -c 100 /dev/urandom >"$TMP/junk.trace"
bad 1 'junk.trace' "$TMP/junk.trace" -o "$TMP/x.svg"
bad 1 "$TMP/no/such/dir/x.svg: No such file" "$trace" -o "$TMP/no/such/dir/x.svg"
[[ ! -e $TMP/x.svg ]] || fail "a failed plot left $TMP/x.svg"

if command -v fio >/dev/null && fio --enghelp=nbd 2>/dev/null | grep -q uri; then
	check "20,000 random writes: binned, and small (Y5-Y8)"
	start_server big --size 256M --record "$TMP/big.trace" "$TMP/big.img"
	fio --name=w --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k \
		--iodepth=16 --fsync=32 --size=256M --number_ios=20000 \
		--randrepeat=0 --output="$TMP/fio.txt" >/dev/null 2>&1 ||
		fail "fio: $(cat "$TMP/fio.txt")"
	stop_server "$pid"
	t0=$SECONDS
	"$LOOPD" trace plot "$TMP/big.trace" -o "$TMP/big.svg" >"$TMP/big.out"
	cat "$TMP/big.out"
	grep -q "1 lane (1 binned), 0 requests drawn one by one" \
		"$TMP/big.out" || fail "not binned: $(cat "$TMP/big.out")"
	size=$(stat -c %s "$TMP/big.svg")
	((size < 2 * 1024 * 1024)) || fail "the SVG has $size bytes"
	svg_check "$TMP/big.svg" '
n = len(list(r.iter()))
assert n < 20000, n
assert any(x.startswith("binned: 1 lane binned") for x in texts()), texts()
assert any("writes by offset binned" in x for x in texts()), texts()
print("  ok: %d elements" % n)
'
	ok "$size bytes in $((SECONDS - t0)) s"
else
	echo "note: fio with its nbd engine is not installed: the 20k check is not run"
fi

echo "test-plot: all checks passed"
