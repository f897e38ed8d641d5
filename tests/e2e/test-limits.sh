#!/usr/bin/env bash
# test-limits: resource limits and socket permissions (issue 6 habits).
# Unix sockets are owner-only by default (--socket-mode changes it);
# --max-connections refuses the connection past the limit and frees the
# slot when a client leaves; --handshake-timeout drops a client that
# stalls in negotiation; a good client keeps working throughout.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
requires nbdinfo

check "Unix sockets are created 0600 by default, --socket-mode otherwise"
start_server priv --size 16M "$TMP/a.img"
mode=$(stat -c %a "$socket")
[[ $mode == 600 ]] || fail "default socket mode is $mode, not 600"
start_server shared --socket-mode 0660 --size 16M "$TMP/b.img"
mode=$(stat -c %a "$socket")
[[ $mode == 660 ]] || fail "--socket-mode 0660 gave $mode"
ok "0600 by default, 0660 with --socket-mode 0660"

check "--max-connections 2 and --handshake-timeout 1"
start_server lim --max-connections 2 --handshake-timeout 1 --size 16M \
	"$TMP/c.img"
"$PY" - "$socket" "$uri" <<'PYEOF'
import socket
import sys
import time

import nbd

from nbdtest import fail, ok

path, uri = sys.argv[1], sys.argv[2]


def raw():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)  # a bound, not a synchronisation
    s.connect(path)
    return s


a, b = raw(), raw()
if len(a.recv(18)) != 18 or len(b.recv(18)) != 18:
    fail("no greeting on the first two connections")
c = raw()
if c.recv(18) != b"":
    fail("the third connection was served past --max-connections 2")
ok("the third connection is closed at once")

t = time.monotonic()
if a.recv(100) != b"":
    fail("a stalled handshake was not dropped")
took = time.monotonic() - t
if took > 5:
    fail(f"the stalled handshake was dropped only after {took:.1f} s")
ok(f"a client silent in negotiation is dropped after {took:.1f} s")
if b.recv(100) != b"":
    fail("the second stalled handshake was not dropped")
a.close()
b.close()

# Slots are given back: a real client now gets in and verifies data.
h = nbd.NBD()
h.connect_uri(uri)
pattern = b"\x5c" * 65536
h.pwrite(pattern, 0)
h.flush()
if h.pread(65536, 0) != pattern:
    fail("read back differs")
ok("after the others left, a client connects and verifies its data")
h.shutdown()
PYEOF

check "bad limit values are refused with one line"
for bad in "--max-connections -1" "--handshake-timeout x" "--socket-mode 99"; do
	# shellcheck disable=SC2086
	if "$LOOPD" serve $bad "$TMP/a.img" 2>"$TMP/bad.err"; then
		fail "loopd serve $bad was accepted"
	fi
	[[ $(wc -l <"$TMP/bad.err") -eq 1 ]] || fail "$bad: not one line"
done
ok "each refused with one line"

echo "test-limits: all checks passed"
