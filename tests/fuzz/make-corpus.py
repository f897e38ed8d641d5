#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the fuzz harnesses (tests/fuzz/corpus/).

Each seed is real, valid client traffic, built from the NBD protocol
document (NetworkBlockDevice/nbd doc/proto.md), so that the fuzzers start
from every path a well-behaved client takes and mutate from there:

  corpus/fuzz-handshake/  what a client sends after the greeting: client
                          flags, then options up to GO, EXPORT_NAME or ABORT
  corpus/fuzz-proto/      options and then request headers for every
                          command, with and without each flag it takes
  corpus/fuzz-sched/      mode byte + scheduler operations (fuzz-sched.c)

The output is deterministic; run it again after changing it and commit the
result:  python3 tests/fuzz/make-corpus.py
Files it no longer writes are removed, so the directories hold exactly
what this script makes.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513

# Client flags.
C_FIXED_NEWSTYLE = 1 << 0
C_NO_ZEROES = 1 << 1

# Options.
OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10
OPT_EXTENDED_HEADERS = 11

# Info requests.
INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

# Commands and their flags.
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
CMD_TRIM, CMD_CACHE, CMD_WRITE_ZEROES, CMD_BLOCK_STATUS = 4, 5, 6, 7
FLAG_FUA = 1 << 0
FLAG_NO_HOLE = 1 << 1
FLAG_DF = 1 << 2
FLAG_REQ_ONE = 1 << 3
FLAG_FAST_ZERO = 1 << 4

CMD_NAMES = {
    CMD_READ: "read", CMD_WRITE: "write", CMD_DISC: "disc",
    CMD_FLUSH: "flush", CMD_TRIM: "trim", CMD_CACHE: "cache",
    CMD_WRITE_ZEROES: "write-zeroes", CMD_BLOCK_STATUS: "block-status",
}
# The flags each command may carry (checklist 1.5).
CMD_FLAGS = {
    CMD_READ: [FLAG_FUA, FLAG_DF],
    CMD_WRITE: [FLAG_FUA],
    CMD_DISC: [],
    CMD_FLUSH: [FLAG_FUA],
    CMD_TRIM: [FLAG_FUA],
    CMD_CACHE: [FLAG_FUA],
    CMD_WRITE_ZEROES: [FLAG_FUA, FLAG_NO_HOLE, FLAG_FAST_ZERO],
    CMD_BLOCK_STATUS: [FLAG_REQ_ONE],
}


def flags(f=C_FIXED_NEWSTYLE | C_NO_ZEROES):
    return struct.pack(">I", f)


def opt(option, data=b""):
    return struct.pack(">QII", IHAVEOPT, option, len(data)) + data


def name_data(name):
    n = name.encode()
    return struct.pack(">I", len(n)) + n


def info_data(name, *infos):
    return (name_data(name) + struct.pack(">H", len(infos)) +
            b"".join(struct.pack(">H", i) for i in infos))


def meta_data(name, *queries):
    out = name_data(name) + struct.pack(">I", len(queries))
    for q in queries:
        out += name_data(q)
    return out


def request(cmd, fl=0, offset=0, length=0, cookie=None):
    if cookie is None:
        cookie = 0x1000 + cmd
    hdr = struct.pack(">IHHQQI", REQUEST_MAGIC, fl, cmd, cookie, offset,
                      length)
    # A WRITE carries its payload.
    return hdr + (bytes(range(256)) * (length // 256 + 1))[:length] \
        if cmd == CMD_WRITE else hdr


def handshake_seeds():
    go_sr = (opt(OPT_STRUCTURED_REPLY) +
             opt(OPT_SET_META_CONTEXT, meta_data("", "base:allocation")))
    return {
        "abort": flags() + opt(OPT_ABORT),
        "list-abort": flags() + opt(OPT_LIST) + opt(OPT_ABORT),
        "export-name-default": flags() + opt(OPT_EXPORT_NAME),
        "export-name-zeroes": flags(C_FIXED_NEWSTYLE) +
        opt(OPT_EXPORT_NAME, b"disk"),
        "export-name-ro": flags() + opt(OPT_EXPORT_NAME, b"ro"),
        "export-name-unknown": flags() + opt(OPT_EXPORT_NAME, b"nope"),
        "export-name-oldstyle-flags": flags(0) + opt(OPT_EXPORT_NAME),
        "go-default": flags() + opt(OPT_GO, info_data("")),
        "go-infos": flags() + opt(OPT_GO, info_data(
            "disk", INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE,
            INFO_EXPORT)),
        "info-then-go": flags() +
        opt(OPT_INFO, info_data("ro", INFO_NAME, INFO_DESCRIPTION)) +
        opt(OPT_GO, info_data("ro", INFO_NAME, INFO_DESCRIPTION)),
        "info-unknown-then-abort": flags() +
        opt(OPT_INFO, info_data("nope")) + opt(OPT_ABORT),
        "structured-meta-go": flags() + go_sr +
        opt(OPT_GO, info_data("", INFO_BLOCK_SIZE)),
        "structured-meta-go-other": flags() + go_sr +
        opt(OPT_GO, info_data("ro")),
        "list-meta": flags() + opt(OPT_STRUCTURED_REPLY) +
        opt(OPT_LIST_META_CONTEXT, meta_data("disk")) +
        opt(OPT_LIST_META_CONTEXT, meta_data("disk", "base:")) +
        opt(OPT_LIST_META_CONTEXT,
            meta_data("disk", "base:allocation", "qemu:dirty-bitmap:a")) +
        opt(OPT_ABORT),
        "set-meta-none-then-go": flags() + opt(OPT_STRUCTURED_REPLY) +
        opt(OPT_SET_META_CONTEXT, meta_data("disk")) +
        opt(OPT_SET_META_CONTEXT, meta_data("disk", "base:")) +
        opt(OPT_GO, info_data("disk")),
        # SET replaces the selection, even when it selects nothing or
        # fails (checklist 1.2), so these GOs get no base:allocation.
        "set-meta-reset-then-go": flags() + go_sr +
        opt(OPT_SET_META_CONTEXT, meta_data("")) +
        opt(OPT_GO, info_data("")),
        "set-meta-failed-then-go": flags() + go_sr +
        opt(OPT_SET_META_CONTEXT, meta_data("nope", "base:allocation")) +
        opt(OPT_GO, info_data("")),
        "set-meta-before-structured": flags() +
        opt(OPT_SET_META_CONTEXT, meta_data("", "base:allocation")) +
        opt(OPT_GO, info_data("")),
        "structured-twice": flags() + opt(OPT_STRUCTURED_REPLY) +
        opt(OPT_STRUCTURED_REPLY) + opt(OPT_EXPORT_NAME),
        "unsupported-then-go": flags() + opt(OPT_STARTTLS) +
        opt(OPT_EXTENDED_HEADERS) + opt(99, b"xyz") +
        opt(OPT_GO, info_data("")),
        "list-with-data": flags() + opt(OPT_LIST, b"junk") +
        opt(OPT_STRUCTURED_REPLY, b"x") + opt(OPT_EXPORT_NAME, b"ro"),
        "malformed-info": flags() + opt(OPT_INFO, b"\0\0\0\x09abc") +
        opt(OPT_LIST_META_CONTEXT, b"\0\0\0\0\0\0\0\x01\0\0\0\x40") +
        opt(OPT_ABORT),
        "bad-client-flags": flags(0x80000001),
        "bad-option-magic": flags() + b"IHAVEOPX" + b"\0" * 8,
        "truncated-option": flags() + opt(OPT_GO, info_data(""))[:-3],
        # The limits (handshake.c H3, H4).  These are the largest seeds,
        # so libFuzzer's default -max_len grows to reach past them.
        "export-name-4097": flags() + opt(OPT_EXPORT_NAME, b"d" * 4097),
        "go-name-4097": flags() + opt(OPT_GO, info_data("d" * 4097)) +
        opt(OPT_GO, info_data("")),
        "257-options": flags() + opt(OPT_STARTTLS) * 256 + opt(OPT_ABORT),
    }


def proto_seeds():
    seeds = {}
    # Each command, with no flag, then each flag alone, then all together.
    for cmd, fls in CMD_FLAGS.items():
        ranged = cmd not in (CMD_DISC, CMD_FLUSH)
        off, length = (4096, 4096) if ranged else (0, 0)
        if cmd == CMD_WRITE:
            length = 512
        stream = request(cmd, 0, off, length)
        for f in fls:
            stream += request(cmd, f, off, length)
        if len(fls) > 1:
            all_f = 0
            for f in fls:
                all_f |= f
            stream += request(cmd, all_f, off, length)
        seeds["req-" + CMD_NAMES[cmd]] = stream
    # Edges: past the end, wrapping, zero length, an unknown command.
    seeds["req-edges"] = (
        request(CMD_READ, 0, (1 << 20) - 512, 512) +
        request(CMD_READ, 0, 1 << 20, 1) +
        request(CMD_WRITE_ZEROES, 0, 0xffffffffffffff00, 0x200) +
        request(CMD_TRIM, 0, 0, 0) +
        request(CMD_BLOCK_STATUS, 0, 0, 0) +
        request(CMD_READ, 0, 0, 64 << 20) +
        request(8, 0, 0, 0) +
        request(CMD_READ, 0x20, 0, 512))
    # A whole session: the options a client sends, then its requests.
    seeds["session"] = (
        opt(OPT_STRUCTURED_REPLY) +
        opt(OPT_SET_META_CONTEXT, meta_data("", "base:allocation")) +
        opt(OPT_GO, info_data("", INFO_BLOCK_SIZE)) +
        request(CMD_WRITE, FLAG_FUA, 0, 1024) +
        request(CMD_READ, FLAG_DF, 0, 1024) +
        request(CMD_BLOCK_STATUS, FLAG_REQ_ONE, 0, 1 << 20) +
        request(CMD_FLUSH) + request(CMD_DISC))
    seeds["opt-info-go"] = (
        opt(OPT_INFO, info_data("disk", INFO_NAME, INFO_DESCRIPTION)) +
        opt(OPT_GO, info_data("", INFO_BLOCK_SIZE, INFO_EXPORT)))
    seeds["opt-meta"] = (
        opt(OPT_LIST_META_CONTEXT, meta_data("")) +
        opt(OPT_LIST_META_CONTEXT, meta_data("disk", "base:")) +
        opt(OPT_SET_META_CONTEXT,
            meta_data("", "base:allocation", "qemu:dirty-bitmap:x")))
    seeds["opt-others"] = (
        opt(OPT_LIST) + opt(OPT_EXPORT_NAME, b"disk") + opt(OPT_STARTTLS) +
        opt(OPT_ABORT) + opt(OPT_EXTENDED_HEADERS) +
        opt(99, "caf\u00e9 \u2603".encode() * 600))
    # Strings past the 4096-byte cap: 4-byte characters, and bytes that
    # are all continuation bytes (not UTF-8 at all).
    seeds["opt-long-strings"] = (
        opt(99, "\U0001F600".encode() * 1100) + opt(98, b"\x80" * 4100))
    return seeds


def sched_seeds():
    # Mode byte: bit 0 relaxed, bits 1-2 flush mode, bits 3-6 log2 align,
    # bit 7 early syncs (R7).
    def mode(relaxed, flush, log2_align, early=False):
        return bytes([relaxed | (flush << 1) | (log2_align << 3) |
                      (early << 7)])

    def submit(kind, off, length, fua=False, rmw=False, strict=False,
               high=False):
        op = (kind << 2) | (fua << 4) | (rmw << 5) | (strict << 6) | \
            (high << 7)
        return bytes([op, off, length])

    def complete(pick=0, eio=False):
        return bytes([2 | (eio << 2), pick])

    def sync_done(eio=False):
        return bytes([3 | (eio << 2)])

    READ, WRITE, FLUSH, NOP = 0, 1, 2, 3
    # Overlapping writes and a read, a flush, a FUA write, completions.
    mix = (submit(WRITE, 0, 8) + submit(WRITE, 4, 8) + submit(READ, 2, 4) +
           submit(FLUSH, 0, 0) + complete(0) + submit(WRITE, 20, 2, fua=True) +
           sync_done() + complete(1) + complete(0) + submit(NOP, 0, 0) +
           submit(READ, 0, 16, strict=True) + submit(WRITE, 3, 1, rmw=True) +
           complete(0) + sync_done())
    seeds = {}
    for relaxed in (0, 1):
        for flush, fname in enumerate(("sync", "barrier", "unsafe")):
            seeds["mix-%s-%s" % ("relaxed" if relaxed else "overlap",
                                 fname)] = mode(relaxed, flush, 9) + mix
    seeds["sync-error-latch"] = (
        mode(0, 0, 12) + submit(WRITE, 0, 1) + complete(0) +
        submit(FLUSH, 0, 0) + submit(FLUSH, 0, 0) + sync_done(eio=True) +
        sync_done() + submit(WRITE, 1, 1) + submit(READ, 0, 2) +
        complete(0) + submit(FLUSH, 0, 0))
    seeds["dsync-error"] = (
        mode(1, 0, 0) + submit(WRITE, 0, 1, fua=True) +
        submit(WRITE, 8, 1, fua=True) + complete(1) +
        complete(0, eio=True) + submit(WRITE, 0, 1))
    # R7: write then flush, over and over, so that early syncs start and
    # FLUSHes join them; then a FLUSH with nothing new (clean).
    wf = submit(WRITE, 0, 1) + complete(0) + submit(FLUSH, 0, 0) + \
        sync_done()
    seeds["early-write-flush"] = (
        mode(0, 0, 12, early=True) + wf * 12 + submit(FLUSH, 0, 0) +
        submit(WRITE, 2, 1) + complete(0) + sync_done(eio=True) +
        submit(FLUSH, 0, 0))
    seeds["join-running-sync"] = (
        mode(1, 0, 9) + submit(WRITE, 0, 1) + complete(0) +
        submit(FLUSH, 0, 0) + submit(FLUSH, 0, 0) + submit(WRITE, 4, 1) +
        complete(0) + submit(FLUSH, 0, 0) + sync_done() + sync_done() +
        submit(FLUSH, 0, 0))
    seeds["wrap"] = (
        mode(0, 1, 3) + submit(WRITE, 250, 200, high=True) +
        submit(READ, 255, 255, high=True) + submit(FLUSH, 0, 0) +
        complete(0) + complete(0) + sync_done())
    return seeds


def write_dir(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    want = set()
    for seed, data in seeds.items():
        fn = seed + ".bin"
        want.add(fn)
        with open(os.path.join(d, fn), "wb") as f:
            f.write(data)
    for fn in os.listdir(d):
        if fn not in want:
            os.unlink(os.path.join(d, fn))
    print("%s: %d seeds" % (d, len(seeds)), file=sys.stderr)


def main():
    write_dir("fuzz-handshake", handshake_seeds())
    write_dir("fuzz-proto", proto_seeds())
    write_dir("fuzz-sched", sched_seeds())


if __name__ == "__main__":
    main()
