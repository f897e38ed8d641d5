#!/usr/bin/env python3
"""bench/run's report: medians, ratios, table, CSV, chart and targets.

usage: report.py RAW.tsv META OUTDIR [--quick]

RAW.tsv has one line per fio run (see bench/run, record_run); META holds
key=value lines about the run (date, host, settings, notes).
Writes OUTDIR/results.csv (medians and ratios), OUTDIR/rounds.csv (every
run), OUTDIR/table.txt (what is printed), OUTDIR/iops.png (gnuplot).
"""
import csv
import os
import shutil
import statistics
import subprocess
import sys

# Order of rows and their meaning. class: which limit a configuration is
# compared with on the disk backing (O_DIRECT configurations against fio
# O_DIRECT, the rest against fio buffered). On tmpfs every configuration is
# compared with fio buffered: tmpfs has no real O_DIRECT.
CONFIGS = [
    ("fio-buf", "limit", "buf", "fio io_uring on the file, buffered"),
    ("fio-direct", "limit", "direct", "fio io_uring on the file, O_DIRECT"),
    ("kloop-buf", "kloop", "buf", "kernel loop device, buffered"),
    ("kloop-dio", "kloop", "direct", "kernel loop device, --direct-io=on, fio direct=1"),
    ("nbdkit", "peer", "buf", "nbdkit file plugin"),
    ("qemu-wb", "peer", "buf", "qemu-nbd --cache=writeback"),
    ("qemu-none", "peer", "direct", "qemu-nbd --cache=none --aio=io_uring"),
    ("nbd-server", "peer", "buf", "nbd-server (daemon mode, fork per connection)"),
    ("loopd", "loopd", "buf", "loopd (defaults: buffered)"),
    ("loopd-direct", "loopd", "direct", "loopd --cache=direct"),
    ("loopd-relaxed", "loopd", "buf", "loopd --order=relaxed"),
    ("loopd-barrier", "loopd", "buf", "loopd --flush=barrier"),
    ("loopd-record", "loopd", "buf", "loopd --record TRACE"),
    ("loopd-base", "loopd", "buf", "loopd, base build (LOOPD_BASE)"),
]
CFG = {c[0]: c for c in CONFIGS}
PEERS = [c[0] for c in CONFIGS if c[1] == "peer"]

WORKLOADS = [
    ("rr1", "4k randread QD1"),
    ("rr32", "4k randread QD32"),
    ("rw1", "4k randwrite QD1"),
    ("rw32", "4k randwrite QD32"),
    ("rr1x4", "4k randread QD1 x4 conns"),
    ("rr32x4", "4k randread QD32 x4 conns"),
    ("rw1x4", "4k randwrite QD1 x4 conns"),
    ("rw32x4", "4k randwrite QD32 x4 conns"),
    ("sr", "1M read QD8"),
    ("sw", "1M write QD8"),
    ("fsync1", "4k randwrite+flush each QD1"),
    ("mix16", "4k randrw 70/30 flush/16w QD32"),
]
WL = dict(WORKLOADS)
SHORT = {  # chart labels (gnuplot turns \\n into a line break)
    "rr1": "randread\\nQD1", "rr32": "randread\\nQD32", "rw1": "randwrite\\nQD1",
    "rw32": "randwrite\\nQD32", "rr1x4": "randread\\nQD1 x4", "rr32x4": "randread\\nQD32 x4",
    "rw1x4": "randwrite\\nQD1 x4", "rw32x4": "randwrite\\nQD32 x4", "sr": "1M read\\nQD8",
    "sw": "1M write\\nQD8", "fsync1": "write+flush\\nQD1", "mix16": "randrw 70/30\\nflush/16w",
}
BACKINGS = ["tmpfs", "disk"]

FIELDS = ["iops", "mib_s", "lat_avg_us", "lat_p99_us", "flush_avg_us",
          "flush_p99_us", "ios", "cpu_us_per_io", "rss_kib"]


def num(s):
    if s in ("NA", "", None):
        return None
    return float(s)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load_raw(path):
    runs = []
    with open(path, encoding="utf-8") as f:
        rd = csv.DictReader(f, delimiter="\t")
        for r in rd:
            runs.append(r)
    return runs


def load_meta(path):
    meta = {}
    notes = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" not in line:
                    continue
                k, v = line.split("=", 1)
                if k == "note":
                    notes.append(v)
                else:
                    meta[k] = v
    return meta, notes


TRIED = {}


def aggregate(runs):
    """(backing, workload, config) -> dict of medians (rss: max)."""
    groups = {}
    for r in runs:
        key = (r["backing"], r["workload"], r["config"])
        groups.setdefault(key, []).append(r)
    agg = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r["ok"] == "1"]
        d = {"rounds": len(ok), "tried": len(rs)}
        for f in FIELDS:
            vals = [num(r[f]) for r in ok]
            if f == "rss_kib":
                vals = [v for v in vals if v is not None]
                d[f] = max(vals) if vals else None
            else:
                d[f] = median(vals)
        agg[key] = d if ok else None
        TRIED[key] = len(rs)
    return agg


def get(agg, b, w, c):
    return agg.get((b, w, c))


def limit_of(agg, b, w, c):
    """Name of the limit configuration a config is compared with."""
    if b == "disk" and CFG[c][2] == "direct":
        order = ["fio-direct", "fio-buf"]
    else:
        order = ["fio-buf", "fio-direct"]
    for lc in order:
        if get(agg, b, w, lc):
            return lc
    return None


# The peers as a user starts them (qemu-nbd's default cache is writeback).
DEFAULT_PEERS = [p for p in PEERS if p != "qemu-none"]


def best_peer(agg, b, w, peers=None):
    best = None
    for p in peers or PEERS:
        d = get(agg, b, w, p)
        if d and d["iops"] is not None and (best is None or d["iops"] > get(agg, b, w, best)["iops"]):
            best = p
    return best


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


# ---------------------------------------------------------------- formatting
def f_iops(x):
    if x is None:
        return "-"
    if x >= 100000:
        return "%.0fk" % (x / 1000)
    if x >= 1000:
        return "%.1fk" % (x / 1000)
    return "%.0f" % x


def f_num(x):
    if x is None:
        return "-"
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def f_ratio(x):
    return "-" if x is None else "%.2f" % x


def build_rows(agg):
    """Every measured (backing, workload, config) with its ratios."""
    rows = []
    for b in BACKINGS:
        for w, _ in WORKLOADS:
            peer = best_peer(agg, b, w)
            pd = get(agg, b, w, peer) if peer else None
            for c, *_ in CONFIGS:
                d = get(agg, b, w, c)
                key = (b, w, c)
                if key not in agg:
                    continue
                lc = limit_of(agg, b, w, c)
                ld = get(agg, b, w, lc) if lc else None
                row = {"backing": b, "workload": w, "config": c,
                       "rounds": d["rounds"] if d else 0,
                       "tried": TRIED.get(key, 0)}
                if d is None:
                    row["failed"] = True
                    rows.append(row)
                    continue
                row.update(d)
                row["limit"] = lc
                row["best_peer"] = peer
                g = lambda dd, f: dd[f] if dd else None  # noqa: E731
                for f in ("iops", "lat_avg_us", "lat_p99_us"):
                    row["x_lim_" + f] = ratio(d[f], g(ld, f))
                for f in ("iops", "lat_avg_us", "lat_p99_us", "cpu_us_per_io", "rss_kib"):
                    row["x_peer_" + f] = ratio(d[f], g(pd, f))
                rows.append(row)
    return rows


HEAD = ["config", "IOPS", "MiB/s", "xLim", "xPeer", "avg_us", "xLim", "xPeer",
        "p99_us", "xLim", "xPeer", "flush99", "cpu/IO", "xPeer", "RSS_MiB", "xPeer"]


def table_lines(rows, agg):
    out = []
    widths = [14, 7, 7, 5, 5, 7, 5, 5, 7, 5, 5, 7, 6, 5, 7, 5]

    def line(cells):
        s = ""
        for i, (c, wd) in enumerate(zip(cells, widths)):
            s += (c.ljust(wd) if i == 0 else c.rjust(wd)) + " "
        return s.rstrip()

    cur = None
    for r in rows:
        blk = (r["backing"], r["workload"])
        if blk != cur:
            cur = blk
            peer = best_peer(agg, *blk)
            out.append("")
            out.append("== %s · %s  (best peer: %s)" % (blk[0], WL[blk[1]], peer or "none"))
            out.append(line(HEAD))
        if r.get("failed"):
            out.append(line([r["config"], "FAILED (%d runs)" % (r["tried"] or 0)] + [""] * 14))
            continue
        rss = r["rss_kib"] / 1024 if r["rss_kib"] is not None else None
        name = r["config"]
        if r["rounds"] < (r["tried"] or 0):
            name += "*"
        out.append(line([
            name, f_iops(r["iops"]), f_num(r["mib_s"]),
            f_ratio(r["x_lim_iops"]), f_ratio(r["x_peer_iops"]),
            f_num(r["lat_avg_us"]), f_ratio(r["x_lim_lat_avg_us"]), f_ratio(r["x_peer_lat_avg_us"]),
            f_num(r["lat_p99_us"]), f_ratio(r["x_lim_lat_p99_us"]), f_ratio(r["x_peer_lat_p99_us"]),
            f_num(r["flush_p99_us"]),
            f_num(r["cpu_us_per_io"]), f_ratio(r["x_peer_cpu_us_per_io"]),
            f_num(rss), f_ratio(r["x_peer_rss_kib"]),
        ]))
    return out


# ------------------------------------------------------------------- targets
def by_round(runs):
    """(backing, workload, config) -> {round: run} of the successful runs."""
    idx = {}
    for r in runs:
        if r["ok"] == "1":
            idx.setdefault((r["backing"], r["workload"], r["config"]), {})[r["round"]] = r
    return idx


def targets(agg, meta, runs):
    """[(text, paired, of_medians, op, bound, verdict, met, rounds)].

    A target's verdict uses the median over rounds of the ratio taken
    within each round (paired: both runs were seconds apart, which cancels
    most of the drift between rounds). The ratio of the medians, the one
    the table shows, is printed beside it, and so is in how many of the
    rounds the paired ratio met the bound (met of rounds): a verdict that
    not every round agrees with is within the noise of the machine.
    """
    res = []
    idx = by_round(runs)

    def val(key, f):
        if key is None:
            return {}
        out = {}
        for rnd, r in idx.get(key, {}).items():
            v = num(r[f])
            if v is not None:
                out[rnd] = v
        return out

    def paired(nums, dens):
        """[prod(nums)/prod(dens) of each round]; terms: (b, w, c, field)."""
        series = [val(t[:3] if t[2] else None, t[3]) for t in nums + dens]
        if not series or any(not x for x in series):
            return []
        rounds = set.intersection(*(set(x) for x in series))
        vals = []
        for rnd in rounds:
            n = 1.0
            for x in series[:len(nums)]:
                n *= x[rnd]
            d = 1.0
            for x in series[len(nums):]:
                d *= x[rnd]
            if d:
                vals.append(n / d)
        return vals

    def of_medians(nums, dens):
        n = d = 1.0
        for b, w, c, f in nums + dens:
            dd = get(agg, b, w, c) if c else None
            if not dd or dd[f] is None:
                return None
        for b, w, c, f in nums:
            n *= get(agg, b, w, c)[f]
        for b, w, c, f in dens:
            d *= get(agg, b, w, c)[f]
        return n / d if d else None

    def add(text, nums, dens, op, bound, why=None):
        vals = paired(nums, dens) if nums else []
        mv = of_medians(nums, dens) if nums else None
        if not vals:
            res.append((text, None, mv, op, bound, "n/a" + (" (%s)" % why if why else ""), 0, 0))
            return

        def ok(v):
            return v >= bound if op == ">=" else v <= bound
        pv = statistics.median(vals)
        res.append((text, pv, mv, op, bound, "PASS" if ok(pv) else "MISS",
                    sum(1 for v in vals if ok(v)), len(vals)))

    T = "tmpfs"
    for w in ("rr32", "rw32"):
        p = best_peer(agg, T, w)
        add("tmpfs %s: loopd IOPS / best peer (%s)" % (WL[w], p or "-"),
            [(T, w, "loopd", "iops")], [(T, w, p, "iops")], ">=", 1.5)
        add("tmpfs %s: loopd CPU/IO / best peer's (%s)" % (WL[w], p or "-"),
            [(T, w, "loopd", "cpu_us_per_io")], [(T, w, p, "cpu_us_per_io")], "<=", 0.5)
    # issue 12: the default on disk against the peers' defaults, every row
    D = "disk"
    for w in ("rr1", "rr32", "rw1", "rw32", "sr", "sw", "fsync1", "mix16"):
        p = best_peer(agg, D, w, DEFAULT_PEERS)
        if p and get(agg, D, w, "loopd"):
            add("disk %s: loopd (default) IOPS / best peer's default (%s)" % (WL[w], p),
                [(D, w, "loopd", "iops")], [(D, w, p, "iops")], ">=", 1.0)
    p = best_peer(agg, D, "fsync1", DEFAULT_PEERS)
    add("disk %s: loopd IOPS / best peer (%s)" % (WL["fsync1"], p or "-"),
        [(D, "fsync1", "loopd", "iops")], [(D, "fsync1", p, "iops")], ">=", 1.2)
    add("disk %s: loopd IOPS / fio O_DIRECT + fdatasync" % WL["fsync1"],
        [(D, "fsync1", "loopd", "iops")], [(D, "fsync1", "fio-direct", "iops")], ">=", 0.8)
    for w, _ in WORKLOADS:
        if get(agg, D, w, "loopd-direct") and get(agg, D, w, "fio-direct"):
            add("disk %s: loopd --cache=direct IOPS / fio-direct" % WL[w],
                [(D, w, "loopd-direct", "iops")], [(D, w, "fio-direct", "iops")], ">=", 0.9)
    for b in BACKINGS:
        for w in ("rr1", "rw1"):
            p = best_peer(agg, b, w)
            if p and get(agg, b, w, "loopd"):
                add("%s %s: loopd avg latency / best peer's (%s)" % (b, WL[w], p),
                    [(b, w, "loopd", "lat_avg_us")], [(b, w, p, "lat_avg_us")], "<=", 0.75)
    for b in ("disk", "tmpfs"):  # issue 5
        kl = [(get(agg, b, "fsync1", k)["iops"], k) for k in ("kloop-buf", "kloop-dio")
              if get(agg, b, "fsync1", k)]
        k = max(kl)[1] if kl else None
        add("%s write+flush QD1: loopd IOPS / kernel loop (%s)" % (b, k or "-"),
            [(b, "fsync1", "loopd", "iops")], [(b, "fsync1", k, "iops")], ">=", 1.0)
    for w in ("rr32", "rw32", "rr1", "rw1"):
        w4 = w + "x4"
        p = best_peer(agg, T, w4)
        ls = of_medians([(T, w4, "loopd", "iops")], [(T, w, "loopd", "iops")])
        ps = of_medians([(T, w4, p, "iops")], [(T, w, p, "iops")]) if p else None
        text = "tmpfs %s 1->4 conns: loopd scaling / best peer's (%s" % (WL[w], p or "-")
        if ls is not None and ps is not None:
            text += ": %.2fx vs %.2fx)" % (ls, ps)
        else:
            text += ")"
        add(text, [(T, w4, "loopd", "iops"), (T, w, p, "iops")],
            [(T, w, "loopd", "iops"), (T, w4, p, "iops")], ">=", 1.0)
    for b in BACKINGS:
        for w, _ in WORKLOADS:
            if get(agg, b, w, "loopd") and get(agg, b, w, "loopd-relaxed"):
                add("%s %s: default order (R3) IOPS / --order=relaxed" % (b, WL[w]),
                    [(b, w, "loopd", "iops")], [(b, w, "loopd-relaxed", "iops")], ">=", 0.95)
    for b in BACKINGS:
        for w, _ in WORKLOADS:
            if get(agg, b, w, "loopd") and get(agg, b, w, "loopd-base"):
                add("%s %s: this build's IOPS / the base build's" % (b, WL[w]),
                    [(b, w, "loopd", "iops")], [(b, w, "loopd-base", "iops")], ">=", 0.95)
    have_record = False
    for b in BACKINGS:
        for w, _ in WORKLOADS:
            if get(agg, b, w, "loopd") and get(agg, b, w, "loopd-record"):
                have_record = True
                add("%s %s: --record IOPS / no recording" % (b, WL[w]),
                    [(b, w, "loopd-record", "iops")], [(b, w, "loopd", "iops")], ">=", 0.85)
    if not have_record:
        add("--record within 15% of no recording", [], [], ">=", 0.85,
            meta.get("record_note", "not measured"))
    add("crash explorer >= 40 ext4 states/s (64 MiB image)", [], [], ">=", 40,
        "measured by bench/crash, not by bench/run")
    return res


def target_lines(res, quick):
    out = ["", "Targets (issue 12)%s" % ("  [QUICK: indicative only, partial data]" if quick else ""),
           "  %-92s %-8s %6s %6s %6s  %s" % ("", "target", "paired", "of-med", "met", "verdict")]
    for text, pv, mv, op, bound, verdict, met, n in res:
        f = lambda x: "-" if x is None else "%.2f" % x  # noqa: E731
        m = "%d/%d" % (met, n) if n else "-"
        out.append("  %-92s %s %-5g %6s %6s %6s  %s" % (text, op, bound, f(pv), f(mv), m, verdict))
    n_pass = sum(1 for r in res if r[5] == "PASS")
    n_miss = sum(1 for r in res if r[5] == "MISS")
    split = sum(1 for r in res if r[5] in ("PASS", "MISS") and 0 < r[6] < r[7])
    out.append("  %d PASS, %d MISS, %d not measured; %d of the verdicts split between rounds.  "
               "paired = median over rounds of the ratio within each round (decides); "
               "of-med = ratio of the medians (as in the table); met = rounds whose paired "
               "ratio met the target" % (n_pass, n_miss, len(res) - n_pass - n_miss, split))
    return out


# --------------------------------------------------------------------- chart
CHART_GROUPS = [
    ("limit (fio)", lambda agg, b, w: _best(agg, b, w, ["fio-direct"] if b == "disk" else ["fio-buf"])
     or _best(agg, b, w, ["fio-buf", "fio-direct"])),
    ("kernel loop (best)", lambda agg, b, w: _best(agg, b, w, ["kloop-buf", "kloop-dio"])),
    ("nbdkit", lambda agg, b, w: _best(agg, b, w, ["nbdkit"])),
    ("qemu-nbd (best)", lambda agg, b, w: _best(agg, b, w, ["qemu-wb", "qemu-none"])),
    ("nbd-server", lambda agg, b, w: _best(agg, b, w, ["nbd-server"])),
    ("loopd", lambda agg, b, w: _best(agg, b, w, ["loopd"])),
]


def _best(agg, b, w, cs):
    vals = [get(agg, b, w, c)["iops"] for c in cs if get(agg, b, w, c)]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def chart(agg, outdir, meta):
    gp = shutil.which("gnuplot")
    if not gp:
        print("report: gnuplot not found, no chart", file=sys.stderr)
        return
    panels = []
    for b in BACKINGS:
        ws = [w for w, _ in WORKLOADS if get(agg, b, w, "loopd")]
        if not ws:
            continue
        dat = os.path.join(outdir, "iops-%s.dat" % b)
        with open(dat, "w", encoding="utf-8") as f:
            f.write("workload\t" + "\t".join('"%s"' % g[0] for g in CHART_GROUPS) + "\n")
            for w in ws:
                vals = [g[1](agg, b, w) for g in CHART_GROUPS]
                f.write('"%s"\t' % SHORT[w] +
                        "\t".join("-" if v is None else "%.0f" % v for v in vals) + "\n")
        panels.append((b, dat, len(ws)))
    if not panels:
        return
    png = os.path.join(outdir, "iops.png")
    height = 520 * len(panels)
    ncol = len(CHART_GROUPS)
    lines = [
        'set terminal pngcairo size 1600,%d font "DejaVu Sans,11"' % height,
        'set output "%s"' % png,
        'set datafile separator "\\t"',
        'set datafile missing "-"',
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set logscale y",
        "set format y \"%.0s%c\"",
        "set grid ytics mytics",
        "set ylabel \"IOPS (log scale)\"",
        "set xtics nomirror scale 0",
        "set key outside right top vertical",
        "set bmargin 4",
        "set multiplot layout %d,1 title \"loopd vs peers: median IOPS, %s (%s)\"" % (
            len(panels), meta.get("date", ""), "QUICK" if meta.get("quick") == "1" else
            "%s rounds x %ss" % (meta.get("rounds", "?"), meta.get("runtime", "?"))),
    ]
    colors = ["#555555", "#999999", "#1f77b4", "#2ca02c", "#9467bd", "#d62728"]
    for b, dat, n in panels:
        lines.append('set title "%s backing"' % b)
        lines.append("set yrange [100:*]")
        plots = []
        for i in range(ncol):
            col = i + 2
            if i == 0:
                plots.append('"%s" using %d:xtic(1) title columnheader(%d) lc rgb "%s"' % (dat, col, col, colors[i]))
            else:
                plots.append('"" using %d title columnheader(%d) lc rgb "%s"' % (col, col, colors[i]))
        lines.append("plot " + ", \\\n     ".join(plots))
    lines.append("unset multiplot")
    gpf = os.path.join(outdir, "iops.gp")
    with open(gpf, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([gp, gpf], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        print("report: gnuplot failed:\n" + r.stderr, file=sys.stderr)


# ----------------------------------------------------------------------- CSV
CSV_COLS = ["backing", "workload", "config", "rounds", "iops", "mib_s", "lat_avg_us",
            "lat_p99_us", "flush_avg_us", "flush_p99_us", "cpu_us_per_io", "rss_kib",
            "limit", "x_lim_iops", "x_lim_lat_avg_us", "x_lim_lat_p99_us",
            "best_peer", "x_peer_iops", "x_peer_lat_avg_us", "x_peer_lat_p99_us",
            "x_peer_cpu_us_per_io", "x_peer_rss_kib"]


def write_csv(rows, path, cols=None):
    """rows (dicts) as CSV with the columns cols (default CSV_COLS)."""
    cols = cols or CSV_COLS
    with open(path, "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        wr.writerow(cols)
        for r in rows:
            out = []
            for c in cols:
                v = r.get(c)
                if isinstance(v, float):
                    v = "%.4g" % v if c.startswith("x_") else "%.2f" % v
                out.append("" if v is None else v)
            wr.writerow(out)


def main():
    raw, metap, outdir = sys.argv[1:4]
    quick = "--quick" in sys.argv[4:]
    meta, notes = load_meta(metap)
    runs = load_raw(raw)
    agg = aggregate(runs)
    rows = build_rows(agg)
    # every run, for whoever wants the spread
    with open(os.path.join(outdir, "rounds.csv"), "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        if runs:
            wr.writerow(list(runs[0].keys()))
            for r in runs:
                wr.writerow(list(r.values()))
    write_csv(rows, os.path.join(outdir, "results.csv"))

    out = []
    out.append("loopd benchmark — %s" % meta.get("date", "?"))
    out.append("host: %s; %s" % (meta.get("host", "?"), meta.get("versions", "")))
    out.append("settings: %s" % meta.get("settings", ""))
    out.append("Medians of the rounds. xLim: ratio to fio on the same file (tmpfs: fio buffered; disk: "
               "fio O_DIRECT for O_DIRECT configs, buffered otherwise). xPeer: ratio to the best NBD "
               "peer by IOPS (nbdkit, qemu-nbd, nbd-server). MiB/s ratios equal the IOPS ratios. "
               "Latency in us (avg and p99 of data I/Os, flush99 = p99 of flushes); cpu/IO = server "
               "CPU us per data I/O (utime+stime of all threads); RSS = peak (VmHWM). "
               "* = some rounds failed.")
    for n in notes:
        out.append("note: " + n)
    out += table_lines(rows, agg)
    res = targets(agg, meta, runs)
    out += target_lines(res, quick)
    text = "\n".join(out) + "\n"
    with open(os.path.join(outdir, "table.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)
    chart(agg, outdir, meta)


if __name__ == "__main__":
    main()
