# SPDX-License-Identifier: MIT
"""Helpers for test-checkpoint: the granules a dirty map reports, as
nbdinfo, qemu-img map and libnbd's block_status each see them, and the
meta contexts a server lists or selects (H6 in serve/handshake.c).

A map is checked granule by granule: its extents must cover the export
from 0 to its end without a gap, every boundary must fall on a granule
(or on the end), and the dirty granules must be exactly those expected.
"""
import json
import struct
import sys

import nbd

from nbdtest import fail, ok
from rawnbd import IHAVEOPT, OPT, OPT_REPLY, REP_ACK, Raw

CTX = "qemu:dirty-bitmap:"


def granules(extents, size, gran, what):
    """The dirty granules of extents [(offset, length, dirty)...] over
    [0, size): a set of granule numbers.  Fails on a gap, an overlap, an
    extent past the end, or a boundary inside a granule."""
    pos, dirty = 0, set()
    for off, length, is_dirty in extents:
        if off != pos or length <= 0:
            fail(f"{what}: extent at {off}+{length}, want one at {pos}")
        end = off + length
        if end > size or (end % gran and end != size):
            fail(f"{what}: extent [{off}, {end}) ends inside a granule")
        if is_dirty:
            dirty.update(range(off // gran, (end + gran - 1) // gran))
        pos = end
    if pos != size:
        fail(f"{what}: the extents end at {pos}, want {size}")
    return dirty


def expect(extents, size, gran, want, what):
    got = granules(extents, size, gran, what)
    if got != set(want):
        fail(f"{what}: dirty granules {sorted(got)}, want {sorted(want)}")
    if len(got) == (size + gran - 1) // gran:
        ok(f"{what}: all {len(got)} granules dirty")
    else:
        ok(f"{what}: dirty granules {sorted(got)}, the rest clean")


def nbdinfo_map(path):
    """nbdinfo --map=qemu:dirty-bitmap:NAME --json: type 1 is dirty."""
    return [(e["offset"], e["length"], bool(e["type"] & 1))
            for e in json.load(open(path))]


def qemu_map(path):
    """qemu-img map --output=json with x-dirty-bitmap: qemu reads the
    bitmap as if it were base:allocation, so a dirty extent (flag 1, its
    HOLE bit) is "data": false."""
    return [(e["start"], e["length"], not e["data"])
            for e in json.load(open(path))]


def handle(uri, contexts, opt_mode=False):
    """A libnbd handle on uri asking for contexts."""
    h = nbd.NBD()
    h.set_opt_mode(opt_mode)
    for c in contexts:
        h.add_meta_context(c)
    h.connect_uri(uri)
    return h


def status(h, length, offset=0, flags=0):
    """One BLOCK_STATUS: {context: [(offset, length, flags)...]}, and how
    many chunks (callbacks) came for each context."""
    got, calls = {}, {}

    def cb(meta, off, entries, err):
        calls[meta] = calls.get(meta, 0) + 1
        pos = off
        ext = got.setdefault(meta, [])
        for i in range(0, len(entries), 2):
            ext.append((pos, entries[i], entries[i + 1]))
            pos += entries[i]
        return 0

    h.block_status(length, offset, cb, flags=flags)
    return got, calls


def as_dirty(ext):
    return [(o, n, bool(f & 1)) for o, n, f in ext]


def listed(uri, queries):
    """The contexts NBD_OPT_LIST_META_CONTEXT answers for queries (none:
    a LIST without queries)."""
    h = handle(uri, queries, opt_mode=True)
    names = []

    def cb(name):
        names.append(name)
        return 0

    h.opt_list_meta_context(cb)
    h.opt_abort()
    return sorted(names)


def meta_raw(sock, opt, queries, export=b""):
    """LIST (9) or SET (10) _META_CONTEXT by hand, after structured
    replies: [(reply type, context id, name)...] up to the final reply."""
    r = Raw(sock).greet()
    if r.option(8)[-1] != REP_ACK:  # NBD_OPT_STRUCTURED_REPLY
        fail("STRUCTURED_REPLY refused")
    data = struct.pack(">I", len(export)) + export + \
        struct.pack(">I", len(queries))
    for q in queries:
        data += struct.pack(">I", len(q)) + q
    r.s.sendall(OPT.pack(IHAVEOPT, opt, len(data)) + data)
    out = []
    while True:
        _, _, rtype, rlen = OPT_REPLY.unpack(r.recv_exact(20))
        body = r.recv_exact(rlen)
        if rtype != 4:  # NBD_REP_META_CONTEXT
            out.append((rtype, None, body))
            break
        out.append((rtype, struct.unpack(">I", body[:4])[0], body[4:]))
    r.close()
    return out


def main():
    """CLI for the shell script: MODE FILE SIZE GRAN WHAT [GRANULE...]."""
    mode, path, size, gran, what = sys.argv[1:6]
    want = [int(g) for g in sys.argv[6:]]
    parse = {"nbdinfo": nbdinfo_map, "qemu": qemu_map}[mode]
    expect(parse(path), int(size), int(gran), want, what)


if __name__ == "__main__":
    main()
