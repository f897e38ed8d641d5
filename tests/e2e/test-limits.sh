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

check "a client that stops reading replies pins bounded memory, others go on"
start_server stall --size 64M "$TMP/d.img"
"$PY" - "$socket" "$uri" "$pid" <<'PYEOF'
import errno
import socket
import struct
import sys

import nbd

from nbdtest import fail, ok

path, uri, pid = sys.argv[1], sys.argv[2], sys.argv[3]


def hwm_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    fail("no VmHWM")


# A raw client: handshake with NBD_OPT_EXPORT_NAME, then 16 MiB READs
# that it never reads the replies of.  256 requests in flight (the count
# limit) would be 4 GiB: the byte limit must stop it well before.
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(path)
if len(s.recv(18)) != 18:
    fail("no greeting")
s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0))
if len(s.recv(10)) != 10:
    fail("no EXPORT_NAME reply")
s.setblocking(False)
sent = 0
hdr = b""
for i in range(1024):  # 16 GiB of reads asked for
    hdr = struct.pack(">IHHQQI", 0x25609513, 0, 0, i, (i % 4) << 24, 16 << 20)
    try:
        if s.send(hdr) != len(hdr):
            break
    except BlockingIOError:
        break
    sent += 1
ok(f"the stalled client got {sent} reads of 16 MiB in before the server "
   "stopped reading it")

# Another client still works while the first one is stalled.
h = nbd.NBD()
h.connect_uri(uri)
pattern = b"\xc3" * 65536
h.pwrite(pattern, 0)
if h.pread(65536, 0) != pattern:
    fail("the other client read back wrong data")
ok("another client writes and reads back while the first is stalled")
peak = hwm_mib()
# 16 MiB of request buffers for a lone connection (engine/conn.c, C2)
# plus the server's own: 220 MiB with the old 256 MiB cap, 3990 without.
if peak > 128:
    fail(f"server peak RSS {peak} MiB: not bounded by the 16 MiB cap")
ok(f"server peak RSS {peak} MiB with {sent * 16} MiB of reads asked for")
h.shutdown()
s.close()
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
