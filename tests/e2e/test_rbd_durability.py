# SPDX-License-Identifier: MIT
"""test_rbd_durability.py: the checking side of test-rbd-durability.sh.

The load is test_kill9.py's ("test_kill9.py load URI LOG READY N": 4
connections writing self-describing 4 KiB blocks, FUA on one write in
eight, a FLUSH every 16 writes per connection, every send and reply in
LOG); this file adds the check of the crash contract, for a server whose
acknowledged writes may still sit in a cache when it is killed (librbd's,
for an rbd export with the cache on):

  test_rbd_durability.py verify SOURCE LOG
      SOURCE is an NBD URI or a file (an "rbd export" of the image).  A
      write is durable if it was acknowledged with FUA, or acknowledged
      before a FLUSH that succeeded was sent (test_kill9.parse).  Every
      block must hold its latest durable write, or a write sent after it
      (acknowledged or not: in flight at the kill, or in the cache); a
      block with no durable write holds zeroes or one of its writes; a
      block never written holds zeroes.  Anything else (an older write,
      garbage, a torn block, another block's data) fails, and the failure
      names the block.

test_kill9.py's own "verify" is the stricter process-kill rule (every
acknowledged write is there), which holds when loopd acknowledges a
write only once the OSD has it (--cache=direct).
"""
import os
import sys

from nbdtest import check, connect, fail, ok
from test_kill9 import BS, allowed_from, block_data, describe, parse


def read_all(source, size):
    if os.path.exists(source):
        with open(source, "rb") as f:
            data = f.read()
        if len(data) != size:
            fail(f"{source} has {len(data)} bytes, the log says {size}")
        return data
    h = connect(source)
    if h.get_size() != size:
        fail(f"export size {h.get_size()}, the log says {size}")
    image = bytearray()
    step = 8 << 20
    for off in range(0, size, step):
        image += h.pread(min(step, size - off), off)
    h.shutdown()
    return bytes(image)


def verify(source, log_path):
    tag, size, writes, acked, durable, per_block, nflush = parse(log_path)
    fua = sum(1 for i in durable if writes[i][2])
    check(f"{os.path.basename(source) if os.path.exists(source) else source}"
          f": {len(per_block)} written blocks against the contract: "
          f"{len(writes)} writes, {len(acked)} acknowledged, {len(durable)} "
          f"durable ({fua} by FUA), {nflush} flushes")
    image = read_all(source, size)
    bad = []
    stats = dict(durable=0, later=0, zero=0, unwritten=0)
    for x in range(size // BS):
        buf = image[x * BS:(x + 1) * BS]
        ws = per_block.get(x)
        if not ws:
            if buf != bytes(BS):
                bad.append(f"block {x} was never written but holds "
                           f"{describe(buf)}")
            stats["unwritten"] += 1
            continue
        gens = {i: g for g, i in enumerate(ws, 1)}
        allowed = allowed_from(ws, durable)
        if allowed is None:
            if buf == bytes(BS):
                stats["zero"] += 1
                continue
            allowed = ws
        hit = [i for i in allowed if buf == block_data(x, i, gens[i], tag)]
        if not hit:
            want = ("zeroes or any of its writes"
                    if allowed is ws and allowed_from(ws, durable) is None
                    else f"its latest durable write {allowed[0]}"
                    + (f" or a later one ({', '.join(map(str, allowed[1:]))})"
                       if len(allowed) > 1 else ""))
            bad.append(f"block {x} holds {describe(buf)}, want {want}")
            continue
        if hit[0] in durable and hit[0] == allowed[0]:
            stats["durable"] += 1
        else:
            stats["later"] += 1
    for b in bad[:20]:
        print("  bad:", b, file=sys.stderr)
    if bad:
        fail(f"{len(bad)} blocks break the crash contract")
    ok(f"every block keeps what the contract requires: {stats['durable']} "
       f"hold their latest durable write, {stats['later']} a later write, "
       f"{stats['zero']} with no durable write are zero; "
       f"{stats['unwritten']} never written")
    if stats["durable"] == 0:
        fail("no block holds a durable write: the check checked nothing")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "verify":
        fail("usage: test_rbd_durability.py verify SOURCE LOG")
    verify(sys.argv[2], sys.argv[3])
