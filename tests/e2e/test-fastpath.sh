#!/usr/bin/env bash
# test-fastpath: the fast paths of issue 12 keep R1-R5 on a real file
# with the default (buffered) cache:
#   - F6: a READ that is partly in the page cache is answered whole and
#     byte-exact (the NOWAIT part on the worker, the rest through the ring
#     from where it stopped), at several cache patterns;
#   - R7 + F6 + F7 + E8: write then FLUSH at QD1, recorded; in the trace
#     every successful FLUSH reply follows the end of a successful sync
#     that began after the reply of every write replied before the FLUSH
#     arrived (R1), while the early (sync begun before the FLUSH arrived)
#     and clean (no sync needed) paths were both taken;
#   - R7 + R5: an early sync that fails fails the FLUSH that joined it, and
#     latches the export;
#   - C7: write + FLUSH on a worker's only connection, one by one and
#     pipelined, under strace: after an inline fdatasync the worker takes
#     the request that came meanwhile with a plain recv, and every write
#     reads back and is in the file;
#   - E7: fio verify with --busy-poll 0 and with a long busy-poll, and
#     with --cache=direct at QD1, where the worker polls for its lone bio.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
on_files || skip "needs a real file"
real_fs_dir

check "F6: reads that are partly cached are answered whole"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$dir/read.img"
sync "$dir/read.img" # clean pages: POSIX_FADV_DONTNEED drops them
start_server read "$dir/read.img"
grep -q ', buffered) ' "$TMP/read.log" || fail "not served buffered"
"$PY" "$SRCDIR/tests/e2e/test_fastpath.py" read "$uri" "$dir/read.img"

check "R1/R7: write + FLUSH at QD1, recorded; every FLUSH covered"
truncate -s 16M "$dir/flush.img"
start_server flush --queues 1 --record "$TMP/flush.trace" "$dir/flush.img"
"$PY" "$SRCDIR/tests/e2e/test_fastpath.py" flush "$uri"
stop_server "$pid"
"$LOOPD" trace dump "$TMP/flush.trace" >"$TMP/flush.dump" ||
	fail "trace dump failed"
"$PY" "$SRCDIR/tests/e2e/test_fastpath.py" covered "$TMP/flush.dump"

check "R7/R5: a failing early sync fails the FLUSH that joined it"
truncate -s 16M "$dir/fail.img"
start_server fail --inject 'delay=0:sync*30,error=EIO:sync*1' \
	--record "$TMP/fail.trace" "$dir/fail.img"
"$PY" "$SRCDIR/tests/e2e/test_fastpath.py" fail "$uri"
stop_server "$pid" || true
"$LOOPD" trace dump "$TMP/fail.trace" >"$TMP/fail.dump" 2>/dev/null || true
"$PY" "$SRCDIR/tests/e2e/test_fastpath.py" covered "$TMP/fail.dump" failed

check "C7: a request sent during a long inline sync is taken at once"
if command -v strace >/dev/null; then
	truncate -s 16M "$dir/pairs.img"
	# (LeakSanitizer cannot run under ptrace.)
	fg_wrap=(strace -f -qq -o "$TMP/pairs.strace" -e "trace=fdatasync,recvfrom")
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		start_fg pairs --queues 1 "$dir/pairs.img"
	fg_wrap=()
	"$PY" "$SRCDIR/tests/e2e/test_fastpath.py" pairs "$uri" "$dir/pairs.img"
	stop_server "$pid"
	wait "$fg_pid" || fail "strace exited $?: $(cat "$TMP/pairs.log")"
	# In one thread: fdatasync(...) = 0, then, as its next traced call,
	# a recvfrom of the whole receive buffer (64 KiB, MSG_DONTWAIT: C7,
	# not C6's payload) that got bytes.
	hits=$(awk '
		$2 ~ /^fdatasync\(/ { synced[$1] = ($NF == 0); next }
		$2 ~ /^recvfrom\(/ {
			if (synced[$1] && /MSG_DONTWAIT/ && $NF + 0 > 0 &&
			    match($0, /, [0-9]+, MSG_DONTWAIT/) &&
			    substr($0, RSTART + 2, RLENGTH - 16) + 0 > 60000)
				n++
			synced[$1] = 0
		}
		END { print n + 0 }' "$TMP/pairs.strace")
	((hits > 0)) || fail "no request was taken with a plain recv after a sync"
	ok "$hits requests taken with a plain recv right after a sync"
else
	truncate -s 16M "$dir/pairs.img"
	start_server pairs --queues 1 "$dir/pairs.img"
	"$PY" "$SRCDIR/tests/e2e/test_fastpath.py" pairs "$uri" "$dir/pairs.img"
	stop_server "$pid"
	ok "(strace is not installed: the plain recv not checked)"
fi

requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"
for bp in 0 2000; do
	check "E7: fio randrw with flushes, verify=crc32c, --busy-poll $bp"
	start_server "poll$bp" --busy-poll "$bp" --size 32M \
		"$dir/poll$bp.img"
	fio --name=poll --ioengine=nbd --uri="$uri" --rw=randrw --bs=4k \
		--size=16M --offset_increment=16M --numjobs=2 --iodepth=4 \
		--fsync=4 --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output-format=terse >"$TMP/poll$bp.out" ||
		fail "fio exited $?: $(cat "$TMP/poll$bp.out")"
	ok "2 jobs verified"
	stop_server "$pid"
done

check "E7: a lone bio polled (--cache=direct, QD1), verify=crc32c"
start_server lone --cache=direct --busy-poll 2000 --size 32M "$dir/lone.img"
grep -q ', O_DIRECT)' "$TMP/lone.log" || fail "not served with O_DIRECT"
fio --name=lone --ioengine=nbd --uri="$uri" --rw=randrw --bs=4k \
	--size=16M --iodepth=1 --fsync=8 --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --output-format=terse >"$TMP/lone.out" ||
	fail "fio exited $?: $(cat "$TMP/lone.out")"
ok "QD1 through the device verified"
stop_server "$pid"

echo "test-fastpath: all checks passed"
