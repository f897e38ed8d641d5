# SPDX-License-Identifier: MIT
"""test-tls: raw option haggling around NBD_OPT_STARTTLS (handshake.c H7).

usage: test_tls.py MODE SOCKET [CA CERT KEY]
  MODE    off | on | require: the server's --tls mode
  SOCKET  the server's Unix socket
  CA, CERT, KEY  PEM files for the TLS client (modes on and require)

Checks the exact option replies the NBD spec asks for in each mode, the
ones libnbd does not let a client see: TLS_REQD before STARTTLS in
require mode, POLICY when TLS is off, INVALID for STARTTLS with data or
twice, and a disconnect for EXPORT_NAME without TLS in require mode.
Every wait is bounded by a socket timeout.
"""
import socket
import ssl
import struct
import sys

from nbdtest import check, fail, ok

mode, sock_path = sys.argv[1], sys.argv[2]

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 6, 7, 8
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
ERR = 1 << 31
ERR_POLICY, ERR_INVALID, ERR_TLS_REQD = ERR | 2, ERR | 3, ERR | 5
C_FIXED_NEWSTYLE, C_NO_ZEROES = 1, 2
OPT = struct.Struct(">QII")
OPT_REPLY = struct.Struct(">QIII")

NAMES = {REP_ACK: "ACK", REP_SERVER: "SERVER", REP_INFO: "INFO",
         ERR_POLICY: "ERR_POLICY", ERR_INVALID: "ERR_INVALID",
         ERR_TLS_REQD: "ERR_TLS_REQD"}


def name(t):
    return NAMES.get(t, hex(t))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    magic, ihaveopt, _ = struct.unpack(">QQH", recv_exact(s, 18))
    if magic != NBDMAGIC or ihaveopt != IHAVEOPT:
        fail("bad greeting")
    s.sendall(struct.pack(">I", C_FIXED_NEWSTYLE | C_NO_ZEROES))
    return s


def option(s, opt, data=b""):
    """Send one option; return the reply types up to the final one."""
    s.sendall(OPT.pack(IHAVEOPT, opt, len(data)) + data)
    types = []
    while True:
        magic, ropt, rtype, rlen = OPT_REPLY.unpack(recv_exact(s, 20))
        if magic != REP_MAGIC or ropt != opt:
            fail(f"option {opt}: bad reply header {magic:#x} {ropt}")
        recv_exact(s, rlen)
        types.append(rtype)
        if rtype not in (REP_SERVER, REP_INFO):
            return types


def expect(s, opt, data, want, what):
    check(what)
    types = option(s, opt, data)
    if types[-1] != want:
        fail(f"{what}: got {[name(t) for t in types]}, "
             f"want {name(want)}")
    ok(f"{what}: {name(want)}")


def expect_closed(s, what):
    check(what)
    try:
        data = s.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        data = b""
    if data:
        fail(f"{what}: the server sent data instead of closing")
    ok(f"{what}: the server closed the connection")


def info_go_payload():
    return struct.pack(">I", 0) + struct.pack(">H", 0)


def tls_wrap(s):
    ca, cert, key = sys.argv[3:6]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    return ctx.wrap_socket(s, server_hostname="localhost")


if mode == "off":
    s = connect()
    expect(s, OPT_STARTTLS, b"", ERR_POLICY, "STARTTLS with --tls=off")
    expect(s, OPT_LIST, b"", REP_ACK, "LIST after a refused STARTTLS")
    s.close()

elif mode == "require":
    s = connect()
    for opt, data, what in [
            (OPT_LIST, b"", "LIST before STARTTLS"),
            (OPT_INFO, info_go_payload(), "INFO before STARTTLS"),
            (OPT_GO, info_go_payload(), "GO before STARTTLS"),
            (OPT_STRUCTURED_REPLY, b"", "STRUCTURED_REPLY before STARTTLS")]:
        expect(s, opt, data, ERR_TLS_REQD, what)
    expect(s, OPT_STARTTLS, b"x", ERR_INVALID, "STARTTLS with data")
    s.sendall(OPT.pack(IHAVEOPT, OPT_EXPORT_NAME, 0))
    expect_closed(s, "EXPORT_NAME before STARTTLS")
    s.close()

    # L2: after the ACK only TLS may follow; plaintext ends the connection.
    s = connect()
    expect(s, OPT_STARTTLS, b"", REP_ACK, "STARTTLS")
    s.sendall(OPT.pack(IHAVEOPT, OPT_LIST, 0))
    expect_closed(s, "a plaintext option after the STARTTLS ACK")
    s.close()

    s = connect()
    expect(s, OPT_STARTTLS, b"", REP_ACK, "STARTTLS")
    t = tls_wrap(s)
    ok(f"TLS handshake: {t.version()}")
    if t.version() not in ("TLSv1.2", "TLSv1.3"):
        fail(f"TLS version {t.version()} is below 1.2")
    expect(t, OPT_STARTTLS, b"", ERR_INVALID, "a second STARTTLS")
    expect(t, OPT_LIST, b"", REP_ACK, "LIST over TLS")
    expect(t, OPT_STRUCTURED_REPLY, b"", REP_ACK,
           "STRUCTURED_REPLY over TLS")
    expect(t, OPT_GO, info_go_payload(), REP_ACK, "GO over TLS")
    t.close()

elif mode == "on":
    s = connect()
    expect(s, OPT_STRUCTURED_REPLY, b"", REP_ACK,
           "STRUCTURED_REPLY in plaintext (--tls=on)")
    expect(s, OPT_STARTTLS, b"", REP_ACK, "STARTTLS after it")
    t = tls_wrap(s)
    # H7: the upgrade forgets what was negotiated in plaintext, so
    # STRUCTURED_REPLY is new again, not a repeat (a repeat is INVALID).
    expect(t, OPT_STRUCTURED_REPLY, b"", REP_ACK,
           "STRUCTURED_REPLY again over TLS (state was reset)")
    expect(t, OPT_ABORT, b"", REP_ACK, "ABORT over TLS")
    t.close()

    # The server runs with --handshake-timeout 3: a client that stalls in
    # the TLS handshake is dropped like one that stalls in the options.
    s = connect()
    expect(s, OPT_STARTTLS, b"", REP_ACK, "STARTTLS, then silence")
    s.settimeout(30)
    expect_closed(s, "a client stalled in the TLS handshake")
    s.close()

else:
    fail(f"unknown mode {mode}")
