#!/usr/bin/env bash
# test-cli: help and version, and the one-line errors for bad command lines.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo

n_bad=0
# expect_bad PATTERN ARGS...: "loopd ARGS" must exit 1 with exactly one line
# "loopd: ..." on stderr that matches PATTERN (grep -Ei).
expect_bad() {
	local pattern=$1 rc=0 lines
	shift
	n_bad=$((n_bad + 1))
	local pidfile="$TMP/bad$n_bad.pid" err="$TMP/bad$n_bad.err"
	# --pidfile right after "serve", so a wrongly successful start is
	# stopped at exit.
	"$LOOPD" "$1" --pidfile "$pidfile" "${@:2}" </dev/null >/dev/null \
		2>"$err" || rc=$?
	if ((rc == 0)); then
		track_pidfile "$pidfile" || true
		fail "loopd $* exited 0, want 1"
	fi
	((rc == 1)) || fail "loopd $* exited $rc, want 1"
	lines=$(wc -l <"$err")
	((lines == 1)) || fail "loopd $* printed $lines lines, want 1: $(cat "$err")"
	grep -q '^loopd: ' "$err" || fail "message lacks 'loopd: ': $(cat "$err")"
	grep -Eqi -- "$pattern" "$err" ||
		fail "message does not match /$pattern/: $(cat "$err")"
	ok "loopd $* -> $(cat "$err")"
}

check "--help, -h and 'serve --help' print usage and exit 0"
for args in --help -h "serve --help" "serve -h"; do
	# shellcheck disable=SC2086 # split "serve --help" into two words
	out=$("$LOOPD" $args 2>&1) || fail "loopd $args exited $?"
	grep -qi usage <<<"$out" || fail "loopd $args printed no usage: $out"
	grep -q serve <<<"$out" || fail "loopd $args does not mention serve"
done
out=$("$LOOPD" serve --help 2>&1)
for opt in --size --read-only --unix --listen --cache --order --flush \
	--queues --foreground --pidfile --verbose --inject --run --exit-with-parent; do
	grep -q -- "$opt" <<<"$out" || fail "serve --help does not list $opt"
done
ok "usage printed; serve --help lists every option"

check "--version and -V print 'loopd 0.1.0'"
for args in --version -V; do
	out=$("$LOOPD" "$args" 2>&1) || fail "loopd $args exited $?"
	[[ $out == "loopd 0.1.0" ]] || fail "loopd $args printed '$out'"
done
ok "version"

check "bad command lines exit 1 with one line naming the problem"
expect_bad 'missing\.img' serve -U "$TMP/s1.sock" "$TMP/missing.img"
[[ ! -e $TMP/missing.img ]] || fail "a missing file was created without -s"
expect_bad '12Q' serve -s 12Q -U "$TMP/s2.sock" "$TMP/new.img"
expect_bad 'sometimes|cache' serve --cache sometimes -s 1M \
	-U "$TMP/s3.sock" "$TMP/c.img"
expect_bad 'never|order' serve --order never -s 1M \
	-U "$TMP/s4.sock" "$TMP/c.img"
expect_bad 'maybe|flush' serve --flush maybe -s 1M \
	-U "$TMP/s5.sock" "$TMP/c.img"
expect_bad 'inject|bogus' serve --inject bogus=1:read -s 1M \
	-U "$TMP/s6.sock" "$TMP/c.img"
expect_bad 'EXDEV|inject' serve --inject error=EXDEV:read -s 1M \
	-U "$TMP/s6.sock" "$TMP/c.img"
expect_bad 'file|usage|serve' serve -U "$TMP/s7.sock"
expect_bad 'mem:abc.*expected mem:SIZE' serve -U "$TMP/s10.sock" mem:abc
expect_bad 'mem:.*no size' serve -U "$TMP/s11.sock" mem:

check "an unknown option exits non-zero"
rc=0
"$LOOPD" serve --frobnicate -s 1M -U "$TMP/s8.sock" --pidfile "$TMP/u.pid" \
	"$TMP/c.img" </dev/null >/dev/null 2>"$TMP/unknown.err" || rc=$?
if ((rc == 0)); then
	track_pidfile "$TMP/u.pid" || true
	fail "--frobnicate accepted"
fi
grep -q . "$TMP/unknown.err" || fail "--frobnicate: no message on stderr"
ok "--frobnicate -> exit $rc: $(head -n 1 "$TMP/unknown.err")"

check "--size creates a missing file sparse, at the exact size"
start_server create --size 1G "$TMP/sparse.img"
size=$(stat -c %s "$TMP/sparse.img")
((size == 1 << 30)) || fail "size $size, want 1073741824"
used=$(du -k "$TMP/sparse.img" | cut -f1)
((used <= 1024)) || fail "sparse file uses $used KiB"
ok "1 GiB file, $used KiB allocated"
grep -q 'serving .*sparse\.img.*1\.0 GiB' "$TMP/create.log" ||
	fail "no 'serving ... (1.0 GiB' line: $(cat "$TMP/create.log")"
grep -qF "listening on nbd+unix:///?socket=$TMP/create.sock" \
	"$TMP/create.log" || fail "no 'listening on' URI line"
ok "start-up lines name the file, size and URI"

check "--size grows a smaller file and keeps its data"
head -c 1M /dev/urandom >"$TMP/small.img"
head -c 1M "$TMP/small.img" >"$TMP/small.orig"
start_server grow --size 4M "$TMP/small.img"
size=$(stat -c %s "$TMP/small.img")
((size == 4 << 20)) || fail "grown size $size, want 4194304"
cmp -n 1048576 "$TMP/small.img" "$TMP/small.orig" ||
	fail "growing changed the data"
ok "grown to 4 MiB, first 1 MiB unchanged"

check "a file already served by another loopd is refused"
expect_bad 'in use|busy|locked' serve -U "$TMP/s9.sock" "$TMP/sparse.img"

check "a busy TCP port is refused"
start_server tcp -l 127.0.0.1:0 --size 1M "$TMP/tcp.img"
port=$(sed -n 's|.*listening on nbd://127\.0\.0\.1:\([0-9]\+\).*|\1|p' \
	"$TMP/tcp.log" | head -n 1)
[[ -n $port ]] || fail "no port printed: $(cat "$TMP/tcp.log")"
((port > 0)) || fail "port 0 printed instead of the chosen port"
ok "port 0 picked port $port"
expect_bad "$port|in use" serve -l "127.0.0.1:$port" -s 1M "$TMP/tcp2.img"

check "NAME=PATH names an export; the first file is also the default"
start_server named --size 1M "foo=$TMP/a.img" "$TMP/b.img"
grep -q 'as export "foo" (default)' "$TMP/named.log" ||
	fail "no 'as export \"foo\" (default)' line: $(cat "$TMP/named.log")"
grep -q 'as export "b.img"' "$TMP/named.log" ||
	fail "no 'as export \"b.img\"' line"
nbdinfo --list "$uri" >"$TMP/list.txt"
grep -q 'export="foo"' "$TMP/list.txt" || fail "no export foo in the list"
grep -q 'export="b.img"' "$TMP/list.txt" || fail "no export b.img in the list"
for name in foo b.img ""; do
	size=$(nbdinfo --size "$(export_uri "$name" "$socket")")
	((size == 1 << 20)) || fail "export '$name' size $size"
done
ok "exports foo, b.img and the default are served"

echo "test-cli: all checks passed"
