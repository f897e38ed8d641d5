#!/usr/bin/env bash
# test-rbd-cli: "loopd serve rbd:POOL/IMAGE" refuses what it cannot serve,
# each time with one line on stderr, a non-zero exit and within a bounded
# time: a missing ceph.conf, a missing pool, a missing image, an unknown
# client id (--ceph-id), a malformed rbd: name, a bad --ceph-timeout, and
# a cluster that does not answer (connect bounded by --ceph-timeout).
# An image or pool configuration that turns librbd's cache back on or
# partial discards off is refused (D9).  Then the same command line with
# everything right serves the image, without librbd's cache (D3), so the
# refusals are not a broken setup.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo
ceph_requires

rbd_image cli 16M
conf=$LOOPD_CEPH_CONF

# refused MAX-SECONDS RE ARGS...: "loopd serve ARGS" fails with one line
# matching RE, in at most MAX-SECONDS.  A server that starts by mistake
# is stopped at exit (pidfile).  Sets $took (seconds).
n=0
took=
refused() {
	local max=$1 re=$2 t0
	shift 2
	n=$((n + 1))
	on_exit "[[ ! -s $TMP/bad$n.pid ]] || stop_server \$(<$TMP/bad$n.pid)"
	t0=$EPOCHREALTIME
	cli_error "$re" timeout $((max + 30)) "$LOOPD" serve -U "$TMP/bad$n.sock" \
		-P "$TMP/bad$n.pid" "$@"
	took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	awk -v t="$took" -v m="$max" 'BEGIN { exit !(t <= m) }' ||
		fail "took $took s, want at most $max s"
	ok "in $took s"
}

refused 10 'nonexistent' --ceph-conf /nonexistent rbd:rbd/x
refused 10 'nopool' --ceph-conf "$conf" "rbd:nopool-$$/x"
refused 10 "nosuchimage-$$" --ceph-conf "$conf" "rbd:rbd/nosuchimage-$$"
refused 15 'nobody-'"$$" --ceph-conf "$conf" --ceph-id "nobody-$$" --ceph-timeout 10 \
	"rbd:$rbd_img"
refused 10 'rbd:' --ceph-conf "$conf" rbd:justapool
refused 10 'rbd:' --ceph-conf "$conf" rbd:/image
refused 10 'ceph-timeout' --ceph-conf "$conf" --ceph-timeout 0 "rbd:$rbd_img"
refused 10 'ceph-timeout' --ceph-conf "$conf" --ceph-timeout x "rbd:$rbd_img"

# A cluster that does not answer: the same conf, with the mon on a port
# where nothing listens (a bound socket that never accepts would do the
# same; a closed port makes librados retry until its timeout).
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -E "s/^mon host = .*/mon host = 127.0.0.1:$port/" "$conf" >"$TMP/dead.conf"
check "a cluster that does not answer: --ceph-timeout 3 bounds the connect"
refused 10 '.' --ceph-conf "$TMP/dead.conf" --ceph-timeout 3 "rbd:$rbd_img"
awk -v t="$took" 'BEGIN { exit !(t >= 2.5) }' ||
	fail "gave up after $took s, before the 3 s of --ceph-timeout"
ok "gave up after about 3 s"

# D9: an image or pool configuration that would undo loopd's settings
# (librbd's cache, which can swallow a write error, D3; partial discards,
# D5) is refused, naming where it is set.
check "D9: rbd config image set rbd_cache true is refused"
rbd_cli config image set "$rbd_img" rbd_cache true
refused 10 'image sets rbd_cache = true' --ceph-conf "$conf" "rbd:$rbd_img"
rbd_cli config image rm "$rbd_img" rbd_cache
check "D9: rbd config pool set rbd_skip_partial_discard true is refused"
on_exit "rbd_cli config pool rm rbd rbd_skip_partial_discard >/dev/null 2>&1 || true"
rbd_cli config pool set rbd rbd_skip_partial_discard true
refused 10 'pool sets rbd_skip_partial_discard = true' --ceph-conf "$conf" \
	"rbd:$rbd_img"
rbd_cli config pool rm rbd rbd_skip_partial_discard

check "a failed start closes the image it had opened (no watcher left)"
cli_error 'no-such-dir' timeout 40 "$LOOPD" serve -U "$TMP/half.sock" \
	--ceph-conf "$conf" "rbd:$rbd_img" "$TMP/no-such-dir/disk.img"
n=$(rbd_cli status --format json "$rbd_img" |
	"$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["watchers"]))')
[[ $n == 0 ]] || fail "$n watcher(s) left on $rbd_img after a failed start"
ok "refused, and no watcher left"

check "the same command line with a good image serves it"
start_server good --ceph-conf "$conf" --ceph-timeout 10 "rbd:$rbd_img"
nbdinfo --size "$uri" >"$TMP/size" || fail "nbdinfo on the good export failed"
[[ $(<"$TMP/size") == $((16 << 20)) ]] || fail "size $(<"$TMP/size"), want 16 MiB"
ok "served, 16 MiB"
grep -q 'librbd, no cache' "$TMP/good.log" ||
	fail "the start-up line does not say 'no cache' (D3): $(cat "$TMP/good.log")"

echo "test-rbd-cli: all checks passed"
