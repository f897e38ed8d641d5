#!/usr/bin/env python3
"""bench/run rss's report: peak memory per server, ratios to loopd, verdict.

usage: rssreport.py RSS-RAW.tsv RSS-META OUTDIR

RSS-RAW.tsv has one line per fio run (see rss_one in bench/run). Peaks are
the maximum over the rounds, IOPS and latency the median. Writes
OUTDIR/rss.txt (what is printed) and OUTDIR/rss.csv.
"""
import csv
import os
import statistics
import sys

# The number formats and ratio of the throughput report, so both read alike.
from report import by_round, f_iops, f_num, f_ratio, ratio, write_csv  # noqa: E402

CONFIGS = [
    ("loopd", "loopd (defaults; buffered on tmpfs, O_DIRECT on disk)"),
    ("loopd-direct", "loopd --cache=direct"),
    ("nbdkit", "nbdkit file plugin (16 threads per connection)"),
    ("qemu-wb", "qemu-nbd --cache=writeback --aio=threads --shared=0"),
    ("qemu-none", "qemu-nbd --cache=none --aio=io_uring --shared=0"),
    ("nbd-server", "nbd-server (one process per connection)"),
]
PEERS = ["nbdkit", "qemu-wb", "qemu-none", "nbd-server"]
BACKINGS = ["tmpfs", "disk"]
BS = {"r4k": 4096, "r1m": 1048576}
LABEL = {"r4k": "4k", "r1m": "1M"}
PEAKS = ["start_kib", "peak_kib", "anon_kib", "rss_sampled_kib", "after_kib", "conns"]
MEDIANS = ["iops", "mib_s", "lat_avg_us", "cpu_us_per_io", "span_iops", "overlap"]
# The issue-12 throughput targets at 64 connections: loopd's IOPS over the
# jobs' span against nbdkit's (4k: 1.5x; 1M: 1.0x at no more peak memory).
TPUT_PEER = "nbdkit"
TPUT_TARGET = {"r4k": (1.5, False), "r1m": (1.0, True)}


def num(s):
    return None if s in ("NA", "", None) else float(s)


def load_meta(path):
    meta, notes = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if not sep:
                continue
            if k == "note":
                notes.append(v)
            else:
                meta[k] = v
    return meta, notes


def aggregate(runs):
    groups = {}
    for r in runs:
        groups.setdefault((r["backing"], r["workload"], r["config"]), []).append(r)
    agg = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r["ok"] == "1"]
        d = {"rounds": len(ok), "tried": len(rs)}
        for f in PEAKS:
            vals = [num(r.get(f)) for r in ok if num(r.get(f)) is not None]
            # start/after: the largest too, the conservative reading
            d[f] = max(vals) if vals else None
        for f in MEDIANS:
            vals = [num(r.get(f)) for r in ok if num(r.get(f)) is not None]
            d[f] = statistics.median(vals) if vals else None
        agg[key] = d
    return agg


def span_ratios(idx, b, w):
    """loopd's span IOPS over nbdkit's within each round both ran in."""
    lr = idx.get((b, w, "loopd"), {})
    pr = idx.get((b, w, TPUT_PEER), {})
    vals = []
    for rnd in sorted(set(lr) & set(pr), key=int):
        x, y = num(lr[rnd].get("span_iops")), num(pr[rnd].get("span_iops"))
        if x is not None and y:
            vals.append(x / y)
    return vals


def mib(kib):
    if kib is None:
        return "-"
    x = kib / 1024.0
    return "%.0f" % x if x >= 100 else "%.1f" % x


HEAD = ["config", "conns", "start", "peak_RSS", "xLoopd", "peak_anon", "xLoopd",
        "MiB/conn", "after", "fio_IOPS", "IOPS", "overlap", "MiB/s", "avg_ms"]
WIDTHS = [15, 5, 6, 8, 6, 9, 6, 8, 6, 8, 7, 7, 6, 7]


def line(cells):
    return " ".join((c.ljust(w) if i == 0 else c.rjust(w))
                    for i, (c, w) in enumerate(zip(cells, WIDTHS))).rstrip()


def main():
    raw, metap, outdir = sys.argv[1:4]
    meta, notes = load_meta(metap)
    with open(raw, encoding="utf-8") as f:
        runs = list(csv.DictReader(f, delimiter="\t"))
    agg = aggregate(runs)
    jobs, qd = int(meta.get("jobs", 64)), int(meta.get("qd", 32))

    out = ["loopd memory benchmark — %s" % meta.get("date", "?"),
           "host: %s; %s" % (meta.get("host", "?"), meta.get("versions", "")),
           "settings: %s" % meta.get("settings", ""),
           "fio --ioengine=nbd, %d jobs (one connection each) x iodepth %d, --rw=randrw "
           "--rwmixread=50, each job on its own 1/%d of the file. Memory in MiB, the "
           "maximum over the rounds: start = VmRSS before fio; peak_RSS = VmHWM (nbd-server: "
           "the parent's plus the peak of the sum of its children's, sampled every 0.2 s); "
           "peak_anon = peak of RssAnon summed over the process tree, sampled (private "
           "memory, without shared libraries); MiB/conn = (peak_RSS - start) / conns; "
           "after = VmRSS 0.5 s after the clients closed. xLoopd = config / loopd (below 1: "
           "less memory than loopd). conns = connections the server held (from "
           "/proc/net/unix). fio_IOPS = what fio reports, the sum of each job's own rate; "
           "IOPS = all I/Os / the span from the first job's start to the last job's end "
           "(fio's per-job IOPS logs): what the server delivered to all clients together; "
           "overlap = the jobs' active time / (span x jobs), 1.00 when all ran together "
           "(below 1 fio_IOPS overstates the server). MiB/s = fio_IOPS x block size. "
           "Rates and avg_ms (mean latency) are medians." % (jobs, qd, jobs)]
    for n in notes:
        out.append("note: " + n)

    csv_rows = []
    verdicts = []
    tputs = []
    for b in BACKINGS:
        for w in ("r4k", "r1m"):
            present = [c for c, _ in CONFIGS if (b, w, c) in agg]
            if not present:
                continue
            lp = agg.get((b, w, "loopd"))
            bound = jobs * qd * BS[w] / 1048576.0
            out.append("")
            out.append("== %s · %s randrw 50/50, %d conns x QD%d  (clients' data in flight: "
                       "%.0f MiB)" % (b, LABEL[w], jobs, qd, bound))
            out.append(line(HEAD))
            for c in present:
                d = agg[(b, w, c)]
                if not d["rounds"]:
                    out.append(line([c, "FAILED (%d runs)" % d["tried"]]))
                    continue
                name = c + ("*" if d["rounds"] < d["tried"] else "")
                per = None
                if d["peak_kib"] is not None and d["start_kib"] is not None and d["conns"]:
                    per = (d["peak_kib"] - d["start_kib"]) / 1024.0 / d["conns"]
                x_peak = ratio(d["peak_kib"], lp and lp["peak_kib"])
                x_anon = ratio(d["anon_kib"], lp and lp["anon_kib"])
                conns = "-" if d["conns"] is None else "%d" % d["conns"]
                if d["conns"] is not None and d["conns"] < jobs:
                    conns += "!"
                lat = d["lat_avg_us"] / 1000.0 if d["lat_avg_us"] is not None else None
                out.append(line([name, conns, mib(d["start_kib"]), mib(d["peak_kib"]),
                                 f_ratio(x_peak), mib(d["anon_kib"]), f_ratio(x_anon),
                                 "-" if per is None else f_num(per), mib(d["after_kib"]),
                                 f_iops(d["iops"]), f_iops(d["span_iops"]),
                                 "-" if d["overlap"] is None else "%.2f" % d["overlap"],
                                 f_num(d["mib_s"]), f_num(lat)]))
                row = {"backing": b, "workload": w, "config": c}
                row.update(d)
                row["x_loopd_peak"] = x_peak
                row["x_loopd_anon"] = x_anon
                row["mib_per_conn"] = per
                csv_rows.append(row)
            # verdict for this block: loopd against the peers
            peers = [(agg[(b, w, p)]["peak_kib"], p) for p in PEERS
                     if (b, w, p) in agg and agg[(b, w, p)]["peak_kib"] is not None]
            if lp and lp["peak_kib"] is not None and peers:
                lean_kib, lean = min(peers)
                heavy_kib, heavy = max(peers)
                rank = 1 + sum(1 for k, _ in peers if k < lp["peak_kib"])
                verdicts.append((b, w, lp["peak_kib"], lean, lean_kib, heavy, heavy_kib,
                                 rank, len(peers) + 1))
            pp = agg.get((b, w, TPUT_PEER))
            if lp and pp and lp["span_iops"] and pp["span_iops"]:
                tputs.append((b, w, lp, pp))
    if any(r["conns"] is not None and r["conns"] < jobs for r in csv_rows):
        out.append("! = fewer connections than fio jobs reached the server")

    out.append("")
    if not verdicts:
        out.append("Verdict: no loopd and peer results to compare.")
    for b, w, lk, lean, lean_kib, heavy, heavy_kib, rank, n in verdicts:
        where = ("the least memory of the %d servers" % n if rank == 1 else
                 "the most memory of the %d servers" % n if rank == n else
                 "rank %d of %d by memory (1 = least)" % (rank, n))
        out.append("Verdict %s %s: loopd peak RSS %s MiB, %s; %.2fx the leanest peer (%s, %s MiB)"
                   "%s." % (b, LABEL[w], mib(lk), where, lk / lean_kib, lean, mib(lean_kib),
                            "" if heavy == lean else ", %.2fx the heaviest (%s, %s MiB)"
                            % (lk / heavy_kib, heavy, mib(heavy_kib))))
    if verdicts:
        worst = max(verdicts, key=lambda v: v[2] / v[4])
        ok = all(v[2] <= v[4] for v in verdicts)
        out.append("Verdict: %s" % (
            "loopd's peak RSS is at or below every peer's in every workload." if ok else
            "loopd's peak RSS is above the leanest peer's; worst: %s %s at %.2fx (%s)."
            % (worst[0], LABEL[worst[1]], worst[2] / worst[4], worst[3])))
    # As in perf mode (report.targets), the verdict takes the median over
    # rounds of the ratio within each round, which runs the two servers
    # back to back; the ratio of the medians is printed beside it.
    idx = by_round(runs)
    for b, w, lp, pp in tputs:
        x = lp["span_iops"] / pp["span_iops"]
        t, at_mem = TPUT_TARGET[w]
        vals = span_ratios(idx, b, w)
        if vals:
            xp = statistics.median(vals)
            paired = "paired %.2fx (rounds %s; the rate met in %d of %d)" % (
                xp, ", ".join("%.2f" % v for v in vals),
                sum(1 for v in vals if v >= t), len(vals))
        else:  # no round with both: the ratio of the medians decides
            xp, paired = x, "no round with both"
        xm = (lp["peak_kib"] / pp["peak_kib"]
              if lp["peak_kib"] is not None and pp["peak_kib"] else None)
        ok = xp >= t and (not at_mem or (xm is not None and xm <= 1.0))
        out.append("Throughput %s %s: loopd %s IOPS over the jobs' span, %s's %s: %s, "
                   "of the medians %.2fx (fio's sums: "
                   "%s / %s = %.2fx), at %sx its peak RSS; target >= %.1fx%s: %s"
                   % (b, LABEL[w], f_iops(lp["span_iops"]), TPUT_PEER,
                      f_iops(pp["span_iops"]), paired, x, f_iops(lp["iops"]), f_iops(pp["iops"]),
                      lp["iops"] / pp["iops"] if lp["iops"] and pp["iops"] else float("nan"),
                      "-" if xm is None else "%.2f" % xm, t,
                      " at no more memory" if at_mem else "", "PASS" if ok else "MISS"))
    text = "\n".join(out) + "\n"
    with open(os.path.join(outdir, "rss.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    cols = ["backing", "workload", "config", "rounds", "tried", "conns", "start_kib",
            "peak_kib", "anon_kib", "rss_sampled_kib", "after_kib", "mib_per_conn",
            "x_loopd_peak", "x_loopd_anon", "iops", "span_iops", "overlap", "mib_s",
            "lat_avg_us", "cpu_us_per_io"]
    write_csv(csv_rows, os.path.join(outdir, "rss.csv"), cols)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
