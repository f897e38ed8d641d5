# SPDX-License-Identifier: MIT
"""test-hostile: raw-socket negative tests (issue 6, "Bad clients").

usage: test_hostile.py URI SOCKET PID
  URI     the default export, for the well-behaved libnbd client
  SOCKET  the server's Unix socket, for the raw (hostile) clients
  PID     the server's pid: it must still be running after every case

A well-behaved libnbd client stays connected for the whole run. Between
the hostile cases it writes a known pattern and reads it back verified,
and at the end it reads the whole export back against its model.
Every raw-socket wait is bounded by a socket timeout (TIMEOUT s).
"""
import os
import socket
import struct
import sys

from nbdtest import check, connect, fail, ok

uri, sock_path, server_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])

TIMEOUT = 5.0
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698

OPT_EXPORT_NAME, OPT_LIST = 1, 3
REP_ACK, REP_SERVER = 1, 2
CMD_READ, CMD_WRITE, CMD_DISC = 0, 1, 2
CMD_FLAG_DF = 1 << 2
NBD_EINVAL, NBD_ENOSPC = 22, 28
FLAG_HAS_FLAGS = 1 << 0
C_FIXED_NEWSTYLE, C_NO_ZEROES = 1 << 0, 1 << 1
MAX_PAYLOAD = 64 * MiB

REQ = struct.Struct(">IHHQQI")  # magic, flags, type, cookie, offset, length
REPLY = struct.Struct(">IIQ")  # magic, error, cookie
OPT = struct.Struct(">QII")  # IHAVEOPT, option, length
OPT_REPLY = struct.Struct(">QIII")  # magic, option, type, length


def pattern(n, seed):
    return bytes((seed * 31 + i * 7 + (i >> 9)) & 0xFF for i in range(n))


# --- the server and the well-behaved client ---------------------------------

def server_alive(what):
    try:
        with open(f"/proc/{server_pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = None
    if state is None or state == "Z":
        fail(f"{what}: the server (pid {server_pid}) is no longer running")


class Good:
    """A libnbd client with a model of the whole export."""

    AREA = 4 * MiB  # its own rounds write in [AREA, AREA + 1 MiB)

    def __init__(self):
        self.h = connect(uri)
        self.size = self.h.get_size()
        self.model = bytearray(self.size)  # a fresh sparse file: zeros
        self.touched = []  # (offset, length) written by this client
        self.rounds = 0

    def write(self, data, off):
        self.h.pwrite(data, off)
        self.model[off:off + len(data)] = data
        self.touched.append((off, len(data)))

    def verify(self, off, length, what):
        got = self.h.pread(length, off)
        want = bytes(self.model[off:off + length])
        if got != want:
            bad = next(i for i in range(length) if got[i] != want[i])
            fail(f"{what}: read [{off}, +{length}) differs from the model "
                 f"at byte {off + bad}: got {got[bad]:#04x}, "
                 f"want {want[bad]:#04x}")

    def round(self, after):
        """Write a new pattern, read it and everything written back."""
        server_alive(f"after {after}")
        self.rounds += 1
        r = self.rounds
        off = self.AREA + (r % 8) * 128 * KiB
        self.write(pattern(64 * KiB, r), off)
        for o, n in self.touched:
            self.verify(o, n, f"good client after {after}")
        ok(f"good client still verifies its data after {after}")

    def verify_all(self, what):
        for off in range(0, self.size, 32 * MiB):
            self.verify(off, min(32 * MiB, self.size - off), what)


# --- raw clients ------------------------------------------------------------

def raw_socket():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(sock_path)
    return s


class Raw:
    """One raw connection; every wait is bounded by TIMEOUT."""

    def __init__(self, what):
        self.what = what
        self.s = raw_socket()
        self.cookie = 0

    def close(self):
        self.s.close()

    def recv_exact(self, n, what):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.s.recv(n - len(buf))
            except socket.timeout:
                fail(f"{self.what}: {what}: no answer in {TIMEOUT} s "
                     f"(got {len(buf)} of {n} bytes)")
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                fail(f"{self.what}: {what}: the server closed the connection "
                     f"after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def greeting(self):
        g = self.recv_exact(18, "greeting")
        magic, opt, gflags = struct.unpack(">QQH", g)
        if magic != NBDMAGIC or opt != IHAVEOPT:
            fail(f"{self.what}: bad greeting {g.hex()}")
        if not gflags & 1:
            fail(f"{self.what}: greeting flags {gflags:#x} lack "
                 "FIXED_NEWSTYLE")
        return gflags

    def handshake(self, size):
        """Fixed newstyle, NO_ZEROES, EXPORT_NAME "": ready to transmit."""
        self.greeting()
        self.s.sendall(struct.pack(">I", C_FIXED_NEWSTYLE | C_NO_ZEROES))
        self.s.sendall(OPT.pack(IHAVEOPT, OPT_EXPORT_NAME, 0))
        got_size, tflags = struct.unpack(
            ">QH", self.recv_exact(10, "EXPORT_NAME answer"))
        if got_size != size:
            fail(f"{self.what}: export size {got_size}, want {size}")
        if not tflags & FLAG_HAS_FLAGS:
            fail(f"{self.what}: transmission flags {tflags:#x} lack "
                 "HAS_FLAGS")
        return self

    def header(self, type_, flags=0, offset=0, length=0, magic=REQ_MAGIC):
        self.cookie += 1
        return REQ.pack(magic, flags, type_, self.cookie, offset, length)

    def send(self, data, what):
        try:
            self.s.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            fail(f"{self.what}: {what}: send failed: {e}")

    def reply(self, what, want_error, data_len=0):
        """A simple reply to the last request: check it, return the data."""
        magic, error, cookie = REPLY.unpack(
            self.recv_exact(REPLY.size, f"reply to {what}"))
        if magic != SIMPLE_MAGIC:
            fail(f"{self.what}: reply to {what}: magic {magic:#x}, want a "
                 f"simple reply {SIMPLE_MAGIC:#x}")
        if cookie != self.cookie:
            fail(f"{self.what}: reply to {what}: cookie {cookie}, want "
                 f"{self.cookie}")
        if error != want_error:
            fail(f"{self.what}: {what}: error {error}, want {want_error}")
        if error == 0 and data_len:
            return self.recv_exact(data_len, f"data of {what}")
        return b""

    def read(self, offset, length, what, want_error=0, flags=0):
        self.send(self.header(CMD_READ, flags, offset, length), what)
        return self.reply(what, want_error,
                          length if want_error == 0 else 0)

    def read_check(self, good, offset, length, what):
        """A valid READ, compared with the good client's model."""
        got = self.read(offset, length, what)
        if got != bytes(good.model[offset:offset + length]):
            fail(f"{self.what}: {what}: data differs from the model")

    def expect_closed(self, what, allow_data=False):
        """The server must close within TIMEOUT; returns what it sent."""
        buf = bytearray()
        while True:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                fail(f"{self.what}: {what}: the server did not close the "
                     f"connection within {TIMEOUT} s")
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
        if buf and not allow_data:
            fail(f"{self.what}: {what}: the server sent {len(buf)} "
                 f"unexpected bytes before closing: {bytes(buf[:32]).hex()}")
        return bytes(buf)


# --- the cases --------------------------------------------------------------

good = Good()
size = good.size
check(f"setup: a good libnbd client writes known patterns (export {size})")
if size < 64 * MiB:
    fail(f"export size {size} < 64 MiB")
good.write(pattern(64 * KiB, 1), 0)
good.write(pattern(4 * KiB, 2), size - 4 * KiB)
good.write(pattern(64 * KiB, 3), 2 * MiB)
good.round("setup")

check("1. bad request magic after a good handshake: the server closes")
r = Raw("bad magic").handshake(size)
r.send(r.header(CMD_READ, 0, 0, 512, magic=0xDEADBEEF), "bad magic")
r.expect_closed("bad request magic")
r.close()
ok("connection closed, no reply sent")
good.round("bad magic")

check("2. a truncated request header, then close: the server survives")
for n in (1, 12, 27):
    r = Raw(f"truncated header ({n} bytes)").handshake(size)
    r.send(r.header(CMD_READ, 0, 0, 512)[:n], "truncated header")
    r.close()
ok("headers of 1, 12 and 27 of 28 bytes, then close")
good.round("truncated headers")

check("3. a READ header split across 28 one-byte sends is answered")
r = Raw("split header").handshake(size)
hdr = r.header(CMD_READ, 0, 0, 512)
for i in range(len(hdr)):
    r.send(hdr[i:i + 1], f"header byte {i}")
got = r.reply("split READ of 512 bytes at 0", 0, 512)
if got != bytes(good.model[0:512]):
    fail("split header: READ data differs from the good client's pattern")
ok("simple reply, error 0, 512 bytes of the right data")
r.read_check(good, 512, 4096, "READ after the split header")
ok("the connection stays usable")

check("4. an unknown command (type 99): EINVAL, connection usable")
r.send(r.header(99, 0, 0, 512), "command 99")
r.reply("command 99", NBD_EINVAL)
r.read_check(good, 0, 4096, "READ after command 99")
ok("command 99 -> EINVAL, then a valid READ works")
check("4. an unknown flag bit (1<<7) on READ: EINVAL")
r.read(0, 512, "READ with flag 1<<7", want_error=NBD_EINVAL, flags=1 << 7)
r.read_check(good, 0, 512, "READ after flag 1<<7")
ok("READ with flag 1<<7 -> EINVAL, then a valid READ works")

check("5. DF on READ without structured replies: EINVAL")
r.read(0, 512, "READ with DF", want_error=NBD_EINVAL, flags=CMD_FLAG_DF)
r.read_check(good, 0, 512, "READ after DF")
ok("READ with DF (not negotiated) -> EINVAL, then a valid READ works")
good.round("unknown command and flags")

check("6. offset + length overflow, out-of-range READ and WRITE")
r.read((1 << 64) - 512, 1024, "READ at 2^64-512 of 1024",
       want_error=NBD_EINVAL)
ok("READ at 2^64-512 length 1024 -> EINVAL")
r.read(size - 512, 1024, "READ past the end", want_error=NBD_EINVAL)
r.read(size, 512, "READ at the end", want_error=NBD_EINVAL)
ok("READ past the end -> EINVAL")
r.send(r.header(CMD_WRITE, 0, size - 512, 1024) + pattern(1024, 66),
       "WRITE past the end")
r.reply("WRITE past the end", NBD_ENOSPC)
r.send(r.header(CMD_WRITE, 0, (1 << 64) - 512, 1024) + pattern(1024, 67),
       "WRITE at 2^64-512")
r.reply("WRITE at 2^64-512", NBD_EINVAL)
r.read_check(good, size - 4096, 4096, "READ after the bad WRITEs")
ok("WRITE past the end -> ENOSPC, overflowing WRITE -> EINVAL, payloads "
   "consumed, the next READ parses and the tail is unchanged")
good.round("out-of-range requests")

check(f"7. an oversize WRITE ({MAX_PAYLOAD + MiB + 1} bytes) with its "
      "payload: EINVAL, in sync")
big = MAX_PAYLOAD + MiB + 1
r.send(r.header(CMD_WRITE, 0, 0, big), "oversize WRITE header")
chunk = pattern(MiB, 99)
left = big
while left:
    n = min(left, len(chunk))
    r.send(chunk[:n], "oversize WRITE payload")
    left -= n
r.reply("oversize WRITE", NBD_EINVAL)
r.read_check(good, 0, 64 * KiB, "READ after the oversize WRITE")
ok("oversize WRITE -> EINVAL, payload skipped, the next READ works")
r.close()
good.round("oversize WRITE")

check("7. a WRITE header claiming 3 GiB, then close: the server survives")
r = Raw("3 GiB WRITE").handshake(size)
try:
    r.s.sendall(r.header(CMD_WRITE, 0, 0, 3 * GiB) + pattern(4096, 5))
except (BrokenPipeError, ConnectionResetError):
    pass  # the server may already have closed (it may disconnect)
r.close()
ok("sent the header and 4 KiB of payload, then closed")
r = Raw("3 GiB WRITE, waiting").handshake(size)
r.send(r.header(CMD_WRITE, 0, 0, 3 * GiB), "3 GiB WRITE header")
ans = r.expect_closed("3 GiB WRITE header", allow_data=True)
if ans:
    # An EINVAL reply before the disconnect is allowed, nothing else.
    if len(ans) != REPLY.size or REPLY.unpack(ans) != (
            SIMPLE_MAGIC, NBD_EINVAL, r.cookie):
        fail(f"3 GiB WRITE: unexpected answer {ans.hex()}")
    ok("3 GiB WRITE -> EINVAL, then a disconnect")
else:
    ok("3 GiB WRITE -> disconnect")
r.close()
good.round("3 GiB WRITE")

check("8. an option flood (300 NBD_OPT_LIST): 256 answered, then a "
      "disconnect")
r = Raw("option flood")
r.greeting()
r.send(struct.pack(">I", C_FIXED_NEWSTYLE | C_NO_ZEROES), "client flags")
try:
    r.s.sendall(OPT.pack(IHAVEOPT, OPT_LIST, 0) * 300)
except (BrokenPipeError, ConnectionResetError):
    pass  # the server may close before reading all of them
data = r.expect_closed("option flood", allow_data=True)
acks = servers = 0
pos = 0
while pos < len(data):
    if len(data) - pos < OPT_REPLY.size:
        fail(f"option flood: truncated option reply at byte {pos}")
    magic, opt, typ, ln = OPT_REPLY.unpack_from(data, pos)
    if magic != REP_MAGIC or opt != OPT_LIST:
        fail(f"option flood: bad option reply at byte {pos}: "
             f"{data[pos:pos + 20].hex()}")
    pos += OPT_REPLY.size + ln
    if typ == REP_ACK:
        acks += 1
    elif typ == REP_SERVER:
        servers += 1
    else:
        fail(f"option flood: reply type {typ:#x} to LIST")
if pos != len(data):
    fail("option flood: truncated option reply data")
if acks != 256:
    fail(f"option flood: {acks} LIST answered, want 256 (the limit)")
r.close()
ok(f"256 LIST answered ({servers} SERVER replies), then the server closed")
good.round("option flood")

check("8. a giant option length (0xFFFFFFF0): disconnect")
r = Raw("giant option")
r.greeting()
r.send(struct.pack(">I", C_FIXED_NEWSTYLE | C_NO_ZEROES), "client flags")
r.send(OPT.pack(IHAVEOPT, OPT_LIST, 0xFFFFFFF0), "giant option header")
try:
    r.s.sendall(b"\0" * 1024)  # the start of the giant option data
except (BrokenPipeError, ConnectionResetError):
    pass  # the server refused the header and closed first: fine
r.expect_closed("giant option length")
r.close()
ok("giant option length -> disconnect")
good.round("giant option length")

check("8. client flags with an unknown bit (1<<5): disconnect")
r = Raw("bad client flags")
r.greeting()
r.send(struct.pack(">I", C_FIXED_NEWSTYLE | C_NO_ZEROES | 1 << 5),
       "client flags")
try:
    r.s.sendall(OPT.pack(IHAVEOPT, OPT_EXPORT_NAME, 0))
except (BrokenPipeError, ConnectionResetError):
    pass  # already closed: fine
r.expect_closed("unknown client flag")
r.close()
ok("client flag 1<<5 -> disconnect, no option answered")
good.round("bad client flags")

check("9. garbage after NBD_CMD_DISC: the server closes")
r = Raw("garbage after DISC").handshake(size)
r.read_check(good, 0, 512, "READ before DISC")
try:
    r.s.sendall(r.header(CMD_DISC) + os.urandom(100) +
                r.header(CMD_READ, 0, 0, 512))
except (BrokenPipeError, ConnectionResetError):
    pass  # the server may already have closed
r.expect_closed("garbage after DISC")
r.close()
ok("DISC + garbage -> closed, nothing answered after DISC")
good.round("garbage after DISC")

check("10. a disconnect in the middle of a WRITE payload: nothing written")
off = 2 * MiB  # holds pattern 3, written by the good client
for sent in (1, 4096, 32 * KiB, 64 * KiB - 1):
    r = Raw(f"WRITE cut after {sent} bytes").handshake(size)
    r.send(r.header(CMD_WRITE, 0, off, 64 * KiB) + pattern(sent, 200),
           "partial WRITE payload")
    r.close()
# The good client checks [2 MiB, +64 KiB) in each round and at the end.
good.round("WRITEs cut short")
ok("the region keeps its old content")

check("11. 1000 connections opened and dropped")
for i in range(1000):
    s = raw_socket()
    if i % 2:
        r = Raw.__new__(Raw)
        r.what, r.s, r.cookie = f"dropped connection {i}", s, 0
        r.greeting()
    s.close()
    if i % 250 == 249:
        server_alive(f"{i + 1} dropped connections")
ok("500 dropped right after connect, 500 after the greeting")
r = Raw("after the 1000 connections").handshake(size)
r.read_check(good, 0, 64 * KiB, "READ after 1000 dropped connections")
r.close()
ok("a new raw connection still works")
good.round("1000 dropped connections")

check("12. a WRITE payload that comes in pieces is written whole (C6)")
# C6 takes what the socket has of a payload with a plain recv and asks
# the ring for the rest: however the pieces fall, every byte must land
# once, in order, and the WRITE must be answered once.
off = 3 * MiB
plans = [
    ("the header alone, then the whole payload", [0, 64 * KiB]),
    ("the header and 1 byte, then 4095, then the rest", [1, 4095, 60 * KiB]),
    ("the header and 60 KiB, then 4 KiB", [60 * KiB, 4 * KiB]),
    ("the header, then 64 pieces of 1 KiB", [0] + [KiB] * 64),
]
for n, (how, pieces) in enumerate(plans):
    data = pattern(64 * KiB, 300 + n)
    r = Raw(f"WRITE in pieces: {how}").handshake(size)
    hdr, at = r.header(CMD_WRITE, 0, off, len(data)), 0
    for i, k in enumerate(pieces):
        r.send((hdr if i == 0 else b"") + data[at:at + k], f"piece {i}")
        at += k
    r.reply(f"WRITE sent as {how}", 0)
    good.model[off:off + len(data)] = data
    r.read_check(good, off, len(data), f"READ after the WRITE sent as {how}")
    r.close()
good.touched.append((off, 64 * KiB))
good.round("WRITEs in pieces")
ok("4 ways of splitting a 64 KiB WRITE: each answered once, data whole")

check("at the end: the good client verifies the whole export")
good.verify_all("final verification")
server_alive("the final verification")
good.h.shutdown()
ok(f"all {size} bytes match the model ({good.rounds} rounds); the server "
   "is running")
