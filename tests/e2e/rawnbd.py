# SPDX-License-Identifier: MIT
"""A raw NBD client on a Unix socket, for tests that must do what libnbd
will not: stop reading replies, stall in negotiation, see the exact option
replies.  Every wait is bounded by the socket's timeout.
"""
import select
import socket
import ssl
import struct

from nbdtest import fail

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 6, 7, 8
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
ERR = 1 << 31
ERR_POLICY, ERR_INVALID, ERR_TLS_REQD = ERR | 2, ERR | 3, ERR | 5
ERR_SHUTDOWN = ERR | 7
C_FIXED_NEWSTYLE, C_NO_ZEROES = 1, 2
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3

OPT = struct.Struct(">QII")  # IHAVEOPT, option, length
OPT_REPLY = struct.Struct(">QIII")  # magic, option, type, length
REQ = struct.Struct(">IHHQQI")  # magic, flags, type, cookie, offset, length
REPLY = struct.Struct(">IIQ")  # magic, error, cookie

REP_NAMES = {REP_ACK: "ACK", REP_SERVER: "SERVER", REP_INFO: "INFO",
             ERR_POLICY: "ERR_POLICY", ERR_INVALID: "ERR_INVALID",
             ERR_TLS_REQD: "ERR_TLS_REQD", ERR_SHUTDOWN: "ERR_SHUTDOWN"}


def rep_name(t):
    return REP_NAMES.get(t, hex(t))


class Raw:
    """One connection, negotiated by hand."""

    def __init__(self, sock_path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(sock_path)
        self.cookie = 0

    def close(self):
        self.s.close()

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def greet(self):
        magic, ihaveopt, _ = struct.unpack(">QQH", self.recv_exact(18))
        if magic != NBDMAGIC or ihaveopt != IHAVEOPT:
            fail("bad greeting")
        self.s.sendall(struct.pack(">I", C_FIXED_NEWSTYLE | C_NO_ZEROES))
        return self

    def option(self, opt, data=b""):
        """Send one option; return the reply types up to the final one."""
        self.s.sendall(OPT.pack(IHAVEOPT, opt, len(data)) + data)
        types = []
        while True:
            magic, ropt, rtype, rlen = OPT_REPLY.unpack(self.recv_exact(20))
            if magic != REP_MAGIC or ropt != opt:
                fail(f"option {opt}: bad reply header {magic:#x} {ropt}")
            self.recv_exact(rlen)
            types.append(rtype)
            if rtype not in (REP_SERVER, REP_INFO):
                return types

    def starttls(self, ca, cert, key):
        """STARTTLS, then TLS over the same socket."""
        if self.option(OPT_STARTTLS)[-1] != REP_ACK:
            fail("STARTTLS refused")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(ca)
        ctx.load_cert_chain(cert, key)
        self.s = ctx.wrap_socket(self.s, server_hostname="localhost")
        return self

    def go(self, name=b""):
        """NBD_OPT_GO with no info requests: transmission, simple replies."""
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        types = self.option(OPT_GO, data)
        if types[-1] != REP_ACK:
            fail(f"GO answered {[rep_name(t) for t in types]}")
        return self

    def request(self, type_, offset=0, length=0, flags=0, payload=b""):
        self.cookie += 1
        return REQ.pack(REQ_MAGIC, flags, type_, self.cookie, offset,
                        length) + payload

    def stall(self, length, count, timeout=20):
        """Send count READs of length (far more than any socket buffer
        holds) and never read a reply.  Returns once the first reply has
        begun to arrive: the server then holds replies it cannot send."""
        for i in range(count):
            self.s.sendall(self.request(CMD_READ, 0, length))
        if not select.select([self.s], [], [], timeout)[0]:
            fail(f"no reply began to arrive in {timeout} s")
