#!/usr/bin/env bash
# test-rbd-fault: an OSD that stops answering.  One loopd serves an RBD
# image and a file, with --ceph-timeout 5.  The OSD gets SIGSTOP (its PID
# from the "pids" file next to LOOPD_CEPH_CONF); a READ on the rbd export
# must fail with EIO after about 5 s, and the file export must keep
# serving meanwhile.  The OSD gets SIGCONT as soon as the READ has its
# reply (the stop stays under 12 s: a longer one leaves the PGs laggy),
# and at exit whatever happens; then a new READ, and a WRITE, FLUSH and
# READ, on the rbd export succeed (test_rbd_fault.py does the timing).
# Finally the server stops cleanly (exit 0: the READ that failed did not
# make the export claim less than it did).
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
ceph_requires

timeout_s=5
osd=$(ceph_pid osd.0)
kill -0 "$osd" 2>/dev/null || fail "osd.0 ($osd) is not running"
# Whatever happens, the OSD runs again at exit (other tests share it).
on_exit "kill -CONT $osd 2>/dev/null"

rbd_image fault 64M
img=$rbd_img
truncate -s 64M "$TMP/file.img"
start_fg main --ceph-conf "$LOOPD_CEPH_CONF" --ceph-timeout "$timeout_s" \
	"rbd:$img" "file=$TMP/file.img"
main=$fg_pid
rbd_uri=$(export_uri "${img#*/}" "$socket")
file_uri=$(export_uri file "$socket")

"$PY" "$SRCDIR/tests/e2e/test_rbd_fault.py" "$rbd_uri" "$file_uri" "$osd" \
	"$timeout_s" || fail "see above"

check "the OSD is back and the server stops cleanly"
[[ $(awk '{print $3}' "/proc/$osd/stat") != T ]] || fail "osd.0 is still stopped"
kill -TERM "$main"
exit_status "$main" 20
((status == 0)) || fail "loopd exited $status after SIGTERM"
ok "exit 0 in $elapsed s"

echo "test-rbd-fault: all checks passed"
