# SPDX-License-Identifier: MIT
"""Helpers for test-stats, test-stats-rules and test-ctl: asking a server
through `loopd ctl`, and reading its documents with real parsers (json for
JSON, a checker of Prometheus' text exposition format for the rest)."""
import json
import math
import os
import re
import socket
import subprocess
import time

from nbdtest import fail

LOOPD = os.environ.get("LOOPD", "loopd")


def ctl(path, *args, timeout=20):
    """Run `loopd ctl PATH ARGS` and return its stdout; fail unless it
    exits 0 with nothing on stderr."""
    p = subprocess.run([LOOPD, "ctl", path, *args], capture_output=True,
                       timeout=timeout, check=False)
    if p.returncode != 0 or p.stderr:
        fail(f"loopd ctl {path} {' '.join(args)}: exit {p.returncode}: "
             f"{p.stderr.decode(errors='replace').strip()}")
    return p.stdout.decode()


def stats(path):
    """The JSON document of `loopd ctl PATH stats --json`, parsed."""
    return json.loads(ctl(path, "stats", "--json"))


def ask(path, line):
    """Send one request line on the control socket itself (Q1), without
    `loopd ctl`; return the whole answer, bytes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(path)
        s.sendall(line)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b


def export(doc, name=None):
    """The export called name in a stats document (the only one if None)."""
    ex = doc["exports"]
    if name is None:
        if len(ex) != 1:
            fail(f"{len(ex)} exports, want 1")
        return ex[0]
    for e in ex:
        if e["name"] == name:
            return e
    fail(f"no export {name!r} in the document")
    return None


def wait_stats(path, cond, what, timeout=20):
    """Read the stats (bounded, every 20 ms) until cond(doc); a readiness
    signal from the server itself, not a sleep."""
    deadline = time.monotonic() + timeout
    while True:
        doc = stats(path)
        if cond(doc):
            return doc
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout} s waiting for {what}: "
                 f"{json.dumps(doc)[:2000]}")
        time.sleep(0.02)  # polling the server's own counters, bounded


def check_histograms(e, where):
    """Each command's latency buckets add up to its request count, bounds
    rise, and the sum of latencies is consistent with the bounds."""
    for cmd, h in e["latency_us"].items():
        n = e["requests"].get(cmd)
        if h["count"] != n:
            fail(f"{where}: latency count of {cmd} is {h['count']}, "
                 f"{n} requests")
        if sum(b["count"] for b in h["buckets"]) != n:
            fail(f"{where}: buckets of {cmd} do not add up to {n}")
        bounds = [b["lt_us"] for b in h["buckets"] if b["lt_us"] is not None]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            fail(f"{where}: bucket bounds of {cmd} out of order: {bounds}")
        top = bounds[-1] if bounds else 0
        if all(b["lt_us"] is not None for b in h["buckets"]) and \
                h["sum_us"] > top * n:
            fail(f"{where}: {cmd}: sum {h['sum_us']} us above "
                 f"{n} x {top} us")


# ---------------------------------------------------------------- Prometheus

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?,?\}})? "
    r"([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))"
    r"(?: -?[0-9]+)?$")
LABEL_ONE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


def parse_prometheus(text):
    """Check text against the exposition format (node_exporter's textfile
    collector reads it) and return {(name, ((label, value), ...)): value}.
    Fails on: a line that is neither a comment nor a well-formed sample, a
    sample of a family with no TYPE before it, a family split in two, a
    series given twice, a counter that is negative, a histogram whose
    buckets are not cumulative or whose +Inf bucket is not its count."""
    if not text.endswith("\n"):
        fail("prometheus: the text does not end with a newline")
    typ, seen_families, series = {}, [], {}
    current = None
    for no, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({NAME}) (.*)$", line)
            if not m:
                fail(f"prometheus line {no}: bad comment: {line!r}")
            if m.group(1) == "TYPE":
                if m.group(3) not in TYPES:
                    fail(f"prometheus line {no}: bad type {m.group(3)}")
                if m.group(2) in typ:
                    fail(f"prometheus line {no}: TYPE of {m.group(2)} twice")
                typ[m.group(2)] = m.group(3)
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(f"prometheus line {no}: not a sample: {line!r}")
        name = m.group(1)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and typ.get(base) == "histogram":
                family = base
        if family not in typ:
            fail(f"prometheus line {no}: {name} has no TYPE before it")
        if family != current:
            if family in seen_families:
                fail(f"prometheus line {no}: family {family} split in two")
            seen_families.append(family)
            current = family
        labels = tuple(sorted((k, _unescape(v)) for k, v in
                              LABEL_ONE.findall(m.group(2) or "")))
        if len({k for k, _ in labels}) != len(labels):
            fail(f"prometheus line {no}: a label given twice")
        key = (name, labels)
        if key in series:
            fail(f"prometheus line {no}: series {key} given twice")
        v = float(m.group(3).replace("Inf", "inf"))
        if typ[family] == "counter" and (math.isnan(v) or v < 0):
            fail(f"prometheus line {no}: counter {name} is {v}")
        series[key] = v
    _check_histograms(series, typ)
    return series


def _check_histograms(series, typ):
    for fam, t in typ.items():
        if t != "histogram":
            continue
        groups = {}
        for (name, labels), v in series.items():
            if name != fam + "_bucket":
                continue
            d = dict(labels)
            le = d.pop("le", None)
            if le is None:
                fail(f"prometheus: {name} without le")
            groups.setdefault(tuple(sorted(d.items())), []).append(
                (float(le.replace("Inf", "inf")), v))
        for rest, buckets in groups.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            if counts != sorted(counts):
                fail(f"prometheus: {fam}{dict(rest)} is not cumulative")
            if buckets[-1][0] != math.inf:
                fail(f"prometheus: {fam}{dict(rest)} has no +Inf bucket")
            n = series.get((fam + "_count", rest))
            if n != buckets[-1][1]:
                fail(f"prometheus: {fam}{dict(rest)}: +Inf {buckets[-1][1]}"
                     f" but _count {n}")
            if (fam + "_sum", rest) not in series:
                fail(f"prometheus: {fam}{dict(rest)} has no _sum")


def prom(series, name, **labels):
    """The value of one series (fails if it is missing)."""
    key = (name, tuple(sorted(labels.items())))
    if key not in series:
        fail(f"prometheus: no series {name}{labels}")
    return series[key]
