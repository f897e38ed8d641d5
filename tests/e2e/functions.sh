# shellcheck shell=bash disable=SC2034 # sets variables for the tests
# functions.sh: helpers shared by the end-to-end tests.  Source it after
# "set -euo pipefail".  Each test exits 0 (pass), 1 (fail) or 77 (skip).
#
# Environment (set by tests/meson.build):
#   LOOPD   the loopd binary under test
#   SRCDIR  the source tree
#   LOOPD_BACKEND  "mem" to run a test against the in-memory backend
#           (tests/meson.build's test-mem-* runs); unset: files
#
# What this file gives a test:
#   $TMP                   a fresh directory, removed at exit
#   $PY                    the Python that has the nbd module
#   requires CMD...        skip (77) unless every CMD is installed
#   check MSG / ok MSG     say what is being checked / that it held
#   fail MSG               print MSG and exit 1
#   start_server NAME ARGS daemonised "loopd serve" on $TMP/NAME.sock with
#                          --pidfile; sets $pid, $socket and $uri (the
#                          default export); stderr in $TMP/NAME.log;
#                          stopped (SIGTERM, bounded wait) at exit
#   stop_server PID        SIGTERM, then wait (10 s) for it to exit
#   start_fg NAME ARGS     "loopd serve --foreground" in the background of
#                          this shell, on $TMP/NAME.sock; sets $fg_pid,
#                          $pid, $socket and $uri; returns once it listens.
#                          With the array fg_wrap set (strace -o F, say),
#                          loopd runs under that command: $fg_pid is the
#                          command's, $pid loopd's
#   exit_status PID [S]    wait (bounded, S s, default 10) for a start_fg
#                          server to exit; sets $status and $elapsed (s)
#   wait_log FILE RE [S]   wait (bounded, S s, default 10) for a line
#                          matching RE in FILE (a server's log)
#   make_pki DIR           a CA, DIR/srv (server-cert.pem, server-key.pem,
#                          ca-cert.pem) and DIR/cli (client-cert.pem,
#                          client-key.pem, ca-cert.pem), with certtool
#   on_exit CMD...         run CMD at exit, before the servers are stopped
#   cli_error RE CMD...    CMD fails with one line on stderr matching RE
#   fails RC RE CMD...     CMD exits RC (bounded, 60 s) with one line on
#                          stderr matching RE and nothing on stdout
#   disk PATH              the export to serve: PATH, or "mem:" (sized by
#                          --size) when LOOPD_BACKEND=mem
#   on_files               true unless LOOPD_BACKEND=mem: guards checks
#                          that read the backing file itself
#
# The kernel as the client (ext4 on a loop device on an nbdfuse file):
#   kernel_requires        skip (77) unless root, /dev/fuse, nbdfuse, the
#                          loop and ext4 tools and a free loop device are
#                          there
#   fuse_attach DIR URI    nbdfuse exposes URI as DIR/disk (DIR is made);
#                          returns once the file is there (bounded, 10 s);
#                          sets $fuse_dir and $fuse_pid
#   loop_attach [OPTS...]  a loop device (losetup OPTS) on $fuse_dir/disk;
#                          sets $loopdev
#   kernel_attach DIR URI [OPTS...]
#                          fuse_attach DIR URI, then loop_attach OPTS
#   $mounted               set it to the mount point after mounting
#                          $loopdev, empty it after unmounting
#   loop_detach            unmount $mounted if set, detach $loopdev
#   kernel_detach          loop_detach, then unmount the FUSE file and wait
#                          (10 s) for nbdfuse to exit
# The attach helpers register kernel_detach with on_exit (once); each
# detach empties its variables, so a test may attach again after it.
#
# Ceph RBD (LOOPD_CEPH_CONF names the ceph.conf of a cluster with a pool
# "rbd", e.g. the one scripts/ceph-cluster makes and ./run-tests starts):
#   ceph_requires          skip (77) unless LOOPD_CEPH_CONF names a cluster
#                          that answers (rados lspools, bounded, 10 s) and
#                          has the pool "rbd", and "$LOOPD serve --help"
#                          mentions --ceph-conf (the RBD backend is built
#                          in); with CI=true, fail (1) instead of skipping
#   rbd_cli ARGS...        rbd --conf "$LOOPD_CEPH_CONF" ARGS, bounded (60 s)
#   rbd_image NAME SIZE [FEATURES]
#                          a fresh image rbd/NAME-$$ with FEATURES (default
#                          layering only: no exclusive lock to stall a
#                          client after a kill); sets $rbd_img; removed at
#                          exit (on_exit), after the servers that use it
#                          have been stopped
#   rbd_fence IMAGE        blocklist every client that watches IMAGE (the
#                          watch of a killed client outlives it by 30 s,
#                          and its writes in flight could still land)
#   ceph_pid NAME          the PID of the cluster's daemon NAME (osd.0,
#                          mon.a, mgr.x), from the "pids" file that
#                          scripts/ceph-cluster writes next to ceph.conf

: "${LOOPD:?LOOPD must name the loopd binary}"
: "${SRCDIR:?SRCDIR must name the source tree}"

# nbdsh is "python3 -m nbd": make python3 the system one, which has the
# nbd module, even when another python3 comes first in PATH.
export PATH="/usr/bin:/usr/sbin:/bin:/sbin:$PATH"
PY=/usr/bin/python3
export PYTHONPATH="$SRCDIR/tests/e2e${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree

test_name=$(basename "$0" .sh)
TMP=$(mktemp -d "/tmp/loopd-$test_name.XXXXXX")
server_pids=()
stuck_servers=()
exit_cmds=()

skip() {
	echo "SKIP: $test_name: $*"
	exit 77
}

fail() {
	echo "FAIL: $test_name: $*" >&2
	exit 1
}

check() {
	echo "check: $*"
}

ok() {
	echo "  ok: $*"
}

requires() {
	local cmd
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 || skip "$cmd is not installed"
	done
}

requires_root() {
	((EUID == 0)) || skip "needs root"
}

on_exit() {
	exit_cmds+=("$*")
}

# Wait (bounded, 10 s) for a process to exit; used by every server stop.
# A daemon is not our child, so its exit is seen in /proc: gone, or a
# zombie (state Z) that init has not reaped yet, which counts as exited.
proc_running() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z ]]
}
wait_exit() {
	local i
	for ((i = 0; i < 1000; i++)); do
		proc_running "$1" || return 0
		sleep 0.01 # polling a process we cannot wait(2) for
	done
	return 1
}

stop_server() {
	local p=$1
	kill -TERM "$p" 2>/dev/null || return 0
	if ! wait_exit "$p"; then
		echo "FAIL: server $p still running 10 s after SIGTERM" >&2
		stuck_servers+=("$p")
		kill -KILL "$p" 2>/dev/null || true
		wait_exit "$p" || true
	fi
}

# track_pidfile FILE: set $pid from a server's pidfile and remember it, so
# that cleanup stops it.  Fails if there is no pid in FILE.
track_pidfile() {
	[[ -s $1 ]] || return 1
	pid=$(<"$1")
	server_pids+=("$pid")
}

cleanup() {
	local rc=$? i f logs
	set +e
	for ((i = ${#exit_cmds[@]} - 1; i >= 0; i--)); do
		eval "${exit_cmds[i]}"
	done
	for i in "${server_pids[@]}"; do
		stop_server "$i"
	done
	((${#stuck_servers[@]} == 0)) || ((rc != 0)) || rc=1
	# A daemon's exit status is lost: find sanitizer reports in its log.
	shopt -s nullglob
	logs=("$TMP"/*.log "$TMP"/*.err)
	if ((rc == 0 && ${#logs[@]} > 0)) &&
		grep -lE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' \
			"${logs[@]}"; then
		echo "FAIL: $test_name: sanitizer report in a server log" >&2
		rc=1
	fi
	if ((rc != 0 && rc != 77)); then
		for f in "$TMP"/*.log; do
			[[ -f $f ]] || continue
			echo "--- $f (last 40 lines) ---" >&2
			tail -n 40 "$f" >&2
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
pid=
socket=
uri=

# start_server NAME [SERVE ARGS...]: daemonised loopd on a Unix socket.
# The launch returns only once the server listens, so no waiting is needed.
start_server() {
	local name=$1
	shift
	local pidfile="$TMP/$name.pid" sock="$TMP/$name.sock"
	if ! "$LOOPD" serve --pidfile "$pidfile" -U "$sock" "$@" \
		</dev/null >"$TMP/$name.out" 2>"$TMP/$name.log"; then
		track_pidfile "$pidfile" || true
		fail "loopd serve $* failed to start"
	fi
	track_pidfile "$pidfile" || fail "no pid in $pidfile"
	kill -0 "$pid" 2>/dev/null || fail "server $pid is not running"
	[[ -S $sock ]] || fail "server $pid returned before listening on $sock"
	socket=$sock
	uri="nbd+unix:///?socket=$sock"
}

# start_fg NAME ARGS...: a foreground server in the background of this
# shell (so "wait" gives its exit status), under "${fg_wrap[@]}" if set;
# sets fg_pid, pid, socket and uri.
fg_wrap=()
start_fg() {
	local name=$1
	shift
	# Background jobs of a script start with SIGINT ignored: undo that.
	env --default-signal=INT "${fg_wrap[@]}" "$LOOPD" serve --foreground \
		-U "$TMP/$name.sock" --pidfile "$TMP/$name.pid" "$@" \
		</dev/null 2>"$TMP/$name.log" &
	fg_pid=$!
	((${#fg_wrap[@]})) || server_pids+=("$fg_pid")
	# Readiness: the pidfile is written once the server listens (bounded).
	for _ in $(seq 100); do
		[[ -s $TMP/$name.pid && -S $TMP/$name.sock ]] && break
		kill -0 "$fg_pid" 2>/dev/null || fail "server exited at start"
		sleep 0.1
	done
	[[ -S $TMP/$name.sock ]] || fail "server not listening after 10 s"
	if ((${#fg_wrap[@]})); then
		track_pidfile "$TMP/$name.pid" || fail "no pid in the pidfile"
	else
		[[ $(<"$TMP/$name.pid") == "$fg_pid" ]] || fail "pidfile is wrong"
		pid=$fg_pid
	fi
	socket=$TMP/$name.sock
	uri="nbd+unix:///?socket=$socket"
}

# exit_status PID [SECONDS]: wait (bounded) for a start_fg server; set
# $status to its exit status and $elapsed to the seconds it took.  (Not in
# a subshell: only this shell can wait for it.)
exit_status() {
	local t0=$EPOCHREALTIME i limit=$((${2:-10} * 100))
	for ((i = 0; i < limit; i++)); do
		proc_running "$1" || break
		sleep 0.01 # polling a process's exit, bounded
	done
	proc_running "$1" && fail "server $1 still running ${2:-10} s after the signal"
	status=0
	wait "$1" || status=$?
	elapsed=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
}

# wait_log FILE REGEX [SECONDS]: wait (bounded) until FILE has a matching
# line: a server's own word that it reached a state.
wait_log() {
	local i limit=$((${3:-10} * 100))
	for ((i = 0; i < limit; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.01 # polling a log file, bounded
	done
	fail "no line matching /$2/ in $1 after ${3:-10} s"
}

# mkcert OUT KEY CA CAKEY TEMPLATE-LINES...: a key and a certificate from
# certtool, self-signed when CA is "self".
mkcert() {
	local out=$1 key=$2 ca=$3 cakey=$4
	shift 4
	printf '%s\n' "$@" 'expiration_days = 7' >"$out.tmpl"
	certtool --generate-privkey --key-type=ecdsa --outfile "$key" 2>/dev/null
	if [[ $ca == self ]]; then
		certtool --generate-self-signed --load-privkey "$key" \
			--template "$out.tmpl" --outfile "$out" 2>/dev/null
	else
		certtool --generate-certificate --load-privkey "$key" \
			--load-ca-certificate "$ca" --load-ca-privkey "$cakey" \
			--template "$out.tmpl" --outfile "$out" 2>/dev/null
	fi
	[[ -s $out ]] || fail "certtool could not make $out"
}
server_tmpl=('cn = "localhost"' 'dns_name = "localhost"'
	'ip_address = "127.0.0.1"' tls_www_server encryption_key signing_key)
client_tmpl=('cn = "loopd test client"' tls_www_client encryption_key
	signing_key)

# make_pki DIR: a CA and, from it, DIR/srv and DIR/cli (see the top).
make_pki() {
	local C=$1
	mkdir -p "$C"/{srv,cli}
	mkcert "$C/ca.pem" "$C/ca-key.pem" self - 'cn = "loopd test CA"' ca \
		cert_signing_key
	mkcert "$C/srv/server-cert.pem" "$C/srv/server-key.pem" "$C/ca.pem" \
		"$C/ca-key.pem" "${server_tmpl[@]}"
	mkcert "$C/cli/client-cert.pem" "$C/cli/client-key.pem" "$C/ca.pem" \
		"$C/ca-key.pem" "${client_tmpl[@]}"
	cp "$C/ca.pem" "$C/srv/ca-cert.pem"
	cp "$C/ca.pem" "$C/cli/ca-cert.pem"
}

# disk PATH: what to serve (see the top).
disk() {
	if [[ ${LOOPD_BACKEND:-file} == mem ]]; then
		echo "mem:"
	else
		echo "$1"
	fi
}

on_files() {
	[[ ${LOOPD_BACKEND:-file} != mem ]]
}

# cli_error WANT-REGEX CMD...: CMD must fail with exactly one line on
# stderr, matching WANT-REGEX.
cli_error() {
	local want=$1
	shift
	check "$* fails"
	if "$@" </dev/null >/dev/null 2>"$TMP/cli.err"; then
		fail "$* succeeded"
	fi
	(($(wc -l <"$TMP/cli.err") == 1)) || {
		cat "$TMP/cli.err"
		fail "not a one-line message"
	}
	grep -qE "$want" "$TMP/cli.err" || {
		cat "$TMP/cli.err"
		fail "message does not match /$want/"
	}
	ok "$(cat "$TMP/cli.err")"
}

# trace_stat_is STATS KEY VALUE: `loopd trace stats` output in STATS has
# the line "KEY VALUE".
trace_stat_is() {
	grep -qE "^$2 +$3\$" "$1" ||
		fail "trace stats: want '$2 $3', got '$(grep "^$2" "$1")'"
}

# last_state_is TRACE STATS FILE: the trace's last state with every write
# in it (crash points from STATS) equals FILE; says which state.
last_state_is() {
	local last
	last=$(($(sed -n 's/^crash points: *\([0-9]*\).*/\1/p' "$2") - 1))
	"$LOOPD" crash "$1" --state "$last.2" --out "$TMP/last.img" >/dev/null
	cmp "$TMP/last.img" "$3" ||
		fail "state $last.2 (every write present) differs from $3"
	ok "state $last.2 (every write present) equals the final file"
}

# fails RC REGEX CMD...: CMD exits RC with one line on stderr matching
# REGEX, and nothing on stdout.
fails() {
	local want=$1 re=$2 rc=0
	shift 2
	timeout 60 "$@" </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
	((rc == want)) || fail "$* exited $rc, want $want: $(cat "$TMP/err")"
	(($(wc -l <"$TMP/err") == 1)) || fail "$*: not one line: $(cat "$TMP/err")"
	grep -Eq -- "$re" "$TMP/err" || fail "$*: $(cat "$TMP/err") !~ /$re/"
	[[ ! -s $TMP/out ]] || fail "$*: wrote to stdout: $(cat "$TMP/out")"
	ok "exit $rc: $(cat "$TMP/err")"
}

# export_uri NAME SOCK: the URI of a named export on a Unix socket.
export_uri() {
	echo "nbd+unix:///$1?socket=$2"
}

# A directory for backing files that need a real filesystem (O_DIRECT, F6):
# $TMP, or a fresh one under /var/tmp when $TMP is a tmpfs.  Sets $dir.
real_fs_dir() {
	dir=$TMP
	if [[ $(stat -f -c %T "$TMP") == tmpfs ]]; then
		dir=$(mktemp -d "/var/tmp/loopd-$test_name.XXXXXX")
		on_exit "rm -rf '$dir'"
	fi
}

# Fill a file with N MiB of random data.
random_file() {
	head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"
}

# The kernel as the client: see the list at the top.
fuse_dir=
fuse_pid=
loopdev=
mounted=
kernel_on_exit=

kernel_requires() {
	requires_root
	[[ -c /dev/fuse ]] || skip "no /dev/fuse"
	requires nbdfuse fusermount3 losetup mkfs.ext4 e2fsck mount umount
	losetup -f >/dev/null 2>&1 || skip "no free loop device"
}

# At exit, before the servers are stopped: unmount, detach, unmount FUSE.
kernel_register() {
	[[ -z $kernel_on_exit ]] || return 0
	on_exit kernel_detach
	kernel_on_exit=1
}

fuse_attach() {
	local dir=$1 uri=$2
	kernel_register
	mkdir -p "$dir"
	nbdfuse "$dir/disk" "$uri" &
	fuse_pid=$!
	fuse_dir=$dir
	# Readiness: the FUSE file appears once nbdfuse has connected (bounded).
	for _ in $(seq 100); do
		[[ -e $dir/disk ]] && break
		kill -0 "$fuse_pid" 2>/dev/null || fail "nbdfuse exited"
		sleep 0.1
	done
	[[ -e $dir/disk ]] || fail "nbdfuse did not expose $dir/disk in 10 s"
}

loop_attach() {
	kernel_register
	loopdev=$(losetup -f --show "$@" "$fuse_dir/disk")
}

kernel_attach() {
	fuse_attach "$1" "$2"
	shift 2
	loop_attach "$@"
}

loop_detach() {
	if [[ -n $mounted ]]; then
		umount "$mounted"
		mounted=
	fi
	if [[ -n $loopdev ]]; then
		losetup -d "$loopdev"
		loopdev=
	fi
}

kernel_detach() {
	loop_detach
	if [[ -n $fuse_pid ]]; then
		fusermount3 -u "$fuse_dir"
		wait_exit "$fuse_pid"
		fuse_pid=
		fuse_dir=
	fi
}

# Ceph RBD: see the list at the top.
rbd_img=

ceph_requires() {
	local why='' rc=0
	# Not "| grep -q": grep would exit at the match and loopd, still
	# writing a help longer than its stdio buffer, die of SIGPIPE, which
	# pipefail makes the pipeline's status.
	"$LOOPD" serve --help >"$TMP/serve-help" 2>&1 || true
	if ! grep -q -- --ceph-conf "$TMP/serve-help"; then
		why="loopd has no RBD backend (serve --help has no --ceph-conf)"
	elif [[ -z ${LOOPD_CEPH_CONF:-} ]]; then
		why="no Ceph cluster: LOOPD_CEPH_CONF is not set"
	elif [[ ! -r $LOOPD_CEPH_CONF ]]; then
		why="LOOPD_CEPH_CONF=$LOOPD_CEPH_CONF is not a readable file"
	elif ! command -v rados >/dev/null || ! command -v rbd >/dev/null; then
		why="the Ceph clients (rados, rbd) are not installed"
	else
		timeout 10 rados --conf "$LOOPD_CEPH_CONF" lspools \
			>"$TMP/lspools" 2>&1 || rc=$?
		if ((rc == 124)); then
			why="the cluster of $LOOPD_CEPH_CONF does not answer (rados lspools: no reply in 10 s)"
		elif ((rc != 0)); then
			why="the cluster of $LOOPD_CEPH_CONF does not answer (rados lspools: exit $rc: $(tail -n 1 "$TMP/lspools"))"
		elif ! grep -qx rbd "$TMP/lspools"; then
			why="the cluster of $LOOPD_CEPH_CONF has no pool \"rbd\""
		fi
	fi
	[[ -n $why ]] || return 0
	[[ ${CI:-} != true ]] || fail "$why (CI=true: the RBD tests must run)"
	skip "$why"
}

rbd_cli() {
	timeout -k 5 60 rbd --conf "$LOOPD_CEPH_CONF" "$@"
}

rbd_fence() {
	local addr n=0
	for addr in $(rbd_cli status --format json "$1" 2>/dev/null |
		"$PY" -c 'import json, sys
for w in json.load(sys.stdin).get("watchers", []):
    print(w["address"])'); do
		timeout 30 ceph --conf "$LOOPD_CEPH_CONF" osd blocklist add \
			"$addr" >/dev/null 2>&1 || return 1
		n=$((n + 1))
	done
	echo "  $n client(s) of $1 blocklisted"
}

# rbd_remove IMAGE: stop the test's servers (rbd rm refuses an image that
# a client still has open), then remove IMAGE; if a killed client's watch
# still holds it, fence that client first.
rbd_remove() {
	local img=$1 p
	for p in "${server_pids[@]}"; do
		stop_server "$p"
	done
	rbd_cli rm --no-progress "$img" >/dev/null 2>"$TMP/rbd-rm.err" &&
		return 0
	rbd_fence "$img" >/dev/null
	rbd_cli rm --no-progress "$img" >/dev/null 2>"$TMP/rbd-rm.err" ||
		echo "warning: could not remove $img: $(tail -n 1 "$TMP/rbd-rm.err")" >&2
}

rbd_image() {
	local img="rbd/$1-$$"
	rbd_cli create "$img" --size "$2" --image-feature "${3:-layering}" \
		>"$TMP/rbd-create.err" 2>&1 ||
		fail "rbd create $img: $(cat "$TMP/rbd-create.err")"
	on_exit "rbd_remove '$img'"
	rbd_img=$img
}

ceph_pid() {
	local p
	p=$(awk -v n="$1" '$1 == n { print $2 }' \
		"$(dirname "$LOOPD_CEPH_CONF")/pids" 2>/dev/null)
	[[ $p =~ ^[0-9]+$ ]] || fail "no PID of $1 in $(dirname "$LOOPD_CEPH_CONF")/pids"
	echo "$p"
}
