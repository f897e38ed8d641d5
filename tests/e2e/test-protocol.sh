#!/usr/bin/env bash
# test-protocol: every NBD command, byte-exact against a model of the file,
# with the default (buffered) cache and again with --cache direct.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"

# O_DIRECT needs a real filesystem.
real_fs_dir
fs=$(stat -f -c %T "$dir")
direct=1
[[ $fs != tmpfs ]] || direct=0

check "default cache: buffered (F6 page-cache reads and writes)"
start_server buffered --size 128M "$dir/buffered.img"
grep -q ', buffered) ' "$TMP/buffered.log" ||
	fail "the default is not buffered: $(grep serving "$TMP/buffered.log")"
ok "served buffered"
"$PY" "$SRCDIR/tests/e2e/test_protocol.py" "$uri" "$dir/buffered.img" 0

check "--cache direct on $fs: O_DIRECT ($direct)"
start_server direct --cache direct --size 128M "$dir/direct.img"
if ((direct)); then
	grep -q 'O_DIRECT' "$TMP/direct.log" ||
		fail "server is not using O_DIRECT on $fs: $(cat "$TMP/direct.log")"
	ok "server uses O_DIRECT"
fi
"$PY" "$SRCDIR/tests/e2e/test_protocol.py" "$uri" "$dir/direct.img" "$direct"

echo "test-protocol: all checks passed"
