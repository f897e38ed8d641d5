#!/usr/bin/env python3
"""Turn one fio --output-format=json file into one tab-separated line.

usage: fioparse.py FIO.json CPU_TICKS CLK_TCK RSS_KIB
CPU_TICKS and RSS_KIB may be "NA" (no server process: the limit, the
kernel loop device).

Prints: ok iops mib_s lat_avg_us lat_p99_us flush_avg_us flush_p99_us
        ios cpu_us_per_io rss_kib
- iops, mib_s: reads + writes (flushes are not counted as I/Os).
- lat_avg_us: mean total latency (submission to completion) of the data
  I/Os, weighted by count over reads and writes.
- lat_p99_us: p99 of the slower direction (randrw reports max(read, write)).
- flush_*: the flushes' latency (fsync=N workloads), else NA.
- cpu_us_per_io: server CPU time (utime+stime of every thread, and of
  reaped children for forking servers) during the fio run / data I/Os.
"""
import json
import sys


def load(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    # fio may print notices before the JSON document.
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON in " + path)
    return json.loads(text[start:])


def p99(lat):
    pct = lat.get("percentile") or {}
    for key in ("99.000000", "99.00", "99"):
        if key in pct:
            return pct[key] / 1000.0
    return None


def fmt(x):
    if x is None:
        return "NA"
    if isinstance(x, float):
        return "%.3f" % x
    return str(x)


def main():
    path, ticks, clk, rss = sys.argv[1:5]
    try:
        doc = load(path)
        jobs = doc["jobs"]
        if not jobs:
            raise ValueError("no jobs")
        job = jobs[0]  # group_reporting=1: one entry for all numjobs
        if any(j.get("error", 0) for j in jobs):
            raise ValueError("fio job error %d" % job.get("error", 0))
    except Exception as e:  # noqa: BLE001 -- report, do not crash the harness
        print("fioparse: %s: %s" % (path, e), file=sys.stderr)
        print("\t".join(["0"] + ["NA"] * 9))
        return
    iops = 0.0
    bw = 0.0
    ios = 0
    lat_sum = 0.0
    p99s = []
    for d in ("read", "write"):
        s = job.get(d) or {}
        n = s.get("total_ios", 0)
        if not n:
            continue
        iops += s.get("iops", 0.0)
        bw += s.get("bw_bytes", 0) / 1048576.0
        ios += n
        lat = s.get("lat_ns") or {}
        lat_sum += lat.get("mean", 0.0) * n
        v = p99(lat)
        if v is not None:
            p99s.append(v)
    sync = job.get("sync") or {}
    f_avg = f_p99 = None
    if sync.get("total_ios"):
        lat = sync.get("lat_ns") or {}
        f_avg = lat.get("mean", 0.0) / 1000.0
        f_p99 = p99(lat)
    ok = 1 if ios > 0 else 0
    lat_avg = lat_sum / ios / 1000.0 if ios else None
    cpu = None
    if ticks != "NA" and ios:
        cpu = int(ticks) * 1e6 / int(clk) / ios
    print("\t".join(fmt(x) for x in (
        ok, iops, bw, lat_avg, max(p99s) if p99s else None, f_avg, f_p99,
        ios, cpu, None if rss == "NA" else int(rss))))


if __name__ == "__main__":
    main()
