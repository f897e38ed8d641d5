#!/usr/bin/env python3
"""bench/rbd's report: medians, paired ratios and the targets, as markdown
and JSON.

usage: rbdreport.py RBD-RAW.tsv RBD-META OUTDIR

RBD-RAW.tsv has one line per fio run (see run_one in bench/rbd), with the
CPU of the server, of the OSD(s) and of fio as raw clock ticks; RBD-META
holds key=value lines (date, commit, versions, settings, notes).
Writes OUTDIR/rbd-report.md (also printed) and OUTDIR/rbd-report.json.
"""
import json
import os
import statistics
import sys

CONFIGS = [
    ("fio-rbd", "fio --ioengine=rbd: librbd in fio itself (the limit)"),
    ("qemu-nbd", "qemu-nbd -f raw --cache=writeback --aio=threads (librbd cache on)"),
    ("loopd", "loopd serve rbd:POOL/IMG (librbd's default writearound cache)"),
    ("loopd-direct", "loopd --cache=direct (rbd_cache = false)"),
]
WORKLOADS = [
    ("rr1", "4k randread QD1"),
    ("rr32", "4k randread QD32"),
    ("rw1", "4k randwrite QD1"),
    ("rw32", "4k randwrite QD32"),
    ("fsync1", "4k write+flush QD1"),
]
# (numerator, denominator, target or None): IOPS ratios, paired per round.
RATIOS = [
    ("loopd", "qemu-nbd", 1.0),
    ("loopd", "fio-rbd", 0.8),
    ("loopd-direct", "qemu-nbd", None),
]
FIELDS = ["iops", "mib_s", "lat_avg_us", "lat_p99_us", "flush_avg_us", "flush_p99_us", "ios"]
TICKS = ["srv_ticks", "osd_ticks", "fio_ticks"]


def num(s):
    if s in ("NA", "", None):
        return None
    return float(s)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load_meta(path):
    meta, notes = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, val = line.rstrip("\n").partition("=")
            if key == "note":
                notes.append(val)
            elif key:
                meta[key] = val
    meta["notes"] = notes
    return meta


def load_runs(path, clk):
    runs = []
    with open(path, encoding="utf-8") as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(head, line.rstrip("\n").split("\t")))
            run = {"round": int(row["round"]), "workload": row["workload"],
                   "config": row["config"], "ok": row["ok"] == "1"}
            for k in FIELDS + TICKS:
                run[k] = num(row.get(k))
            ios = run["ios"]

            def per_io(t):
                return t * 1e6 / clk / ios if t is not None and ios else None
            # fio-rbd has no server: librbd runs in fio, whose CPU is all there is
            srv = run["fio_ticks"] if run["config"] == "fio-rbd" else run["srv_ticks"]
            run["srv_cpu_us_per_io"] = per_io(srv) if run["ok"] else None
            run["osd_cpu_us_per_io"] = per_io(run["osd_ticks"]) if run["ok"] else None
            run["fio_cpu_us_per_io"] = per_io(run["fio_ticks"]) if run["ok"] else None
            runs.append(run)
    return runs


STATS = ["iops", "lat_avg_us", "lat_p99_us", "flush_avg_us", "srv_cpu_us_per_io",
         "osd_cpu_us_per_io", "fio_cpu_us_per_io"]


def aggregate(runs):
    agg = {}
    for w, _ in WORKLOADS:
        for c, _ in CONFIGS:
            rs = [r for r in runs if r["workload"] == w and r["config"] == c and r["ok"]]
            n = len([r for r in runs if r["workload"] == w and r["config"] == c])
            if not n:
                continue
            agg[(w, c)] = {"runs": n, "ok": len(rs)}
            for k in STATS:
                agg[(w, c)][k] = median([r[k] for r in rs])
    return agg


def ratios(runs, agg):
    out = {}
    by = {(r["workload"], r["config"], r["round"]): r for r in runs if r["ok"]}
    rounds = sorted({r["round"] for r in runs})
    for w, _ in WORKLOADS:
        for a, b, target in RATIOS:
            per_round = []
            for rd in rounds:
                ra, rb = by.get((w, a, rd)), by.get((w, b, rd))
                if ra and rb and rb["iops"]:
                    per_round.append(ra["iops"] / rb["iops"])
            ma = (agg.get((w, a)) or {}).get("iops")
            mb = (agg.get((w, b)) or {}).get("iops")
            paired = median(per_round)
            verdict = None
            if target is not None:
                verdict = "n/a" if paired is None else ("PASS" if paired >= target else "MISS")
            out[(w, a, b)] = {"paired": paired, "rounds": per_round,
                              "of_medians": ma / mb if ma and mb else None,
                              "target": target, "verdict": verdict}
    return out


def f_iops(x):
    if x is None:
        return "–"
    if x >= 10000:
        return "%.1fk" % (x / 1000)
    return "%.0f" % x


def f_num(x):
    if x is None:
        return "–"
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def f_ratio(x):
    return "–" if x is None else "%.2f" % x


def markdown(meta, agg, rat):
    q = meta.get("quick") == "1"
    L = ["# loopd RBD benchmark (`bench/rbd`)", ""]
    if q:
        L += ["**QUICK=1: a smoke test. These numbers mean nothing.**", ""]
    L += [
        "- commit: `%s`, %s" % (meta.get("commit", "?"), meta.get("date", "?")),
        "- host: %s, kernel %s" % (meta.get("host", "?"), meta.get("kernel", "?")),
        "- versions: ceph %s; qemu-nbd %s; %s; %s" % (
            meta.get("ceph", "?"), meta.get("qemu", "?"), meta.get("fio", "?"), meta.get("loopd", "?")),
        "- settings: %s interleaved round(s), %s s per fio run, two %s images (layering), "
        "%s s of quiet before each run" % (
            meta.get("rounds"), meta.get("runtime"), meta.get("size"), meta.get("settle")),
        "- qemu-nbd's default cache mode is `%s` (qemu-nbd --help); this run passes "
        "`--cache=writeback`, which keeps librbd's cache on." % meta.get("qemu_default_cache", "?"),
    ]
    for n in meta.get("notes", []):
        L.append("- " + n)
    L += ["", "Configurations:", ""]
    for c, d in CONFIGS:
        L.append("- `%s`: %s" % (c, d))
    L += ["",
          "## Medians over rounds", "",
          "CPU columns are µs of CPU time per data I/O (flushes are not I/Os). "
          "*server*: utime+stime of the server process; for fio-rbd, marked (fio), "
          "fio's own CPU, as librbd runs inside it. *OSD*: the OSD process(es). "
          "*fio*: the client, fio and its job processes.", "",
          "| workload | config | IOPS | avg lat µs | p99 µs | flush avg µs | server CPU/IO | OSD CPU/IO | fio CPU/IO |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for w, wl in WORKLOADS:
        for c, _ in CONFIGS:
            a = agg.get((w, c))
            if a is None:
                continue
            if not a["ok"]:
                L.append("| %s | %s | no result | | | | | | |" % (wl, c))
                continue
            srv = f_num(a["srv_cpu_us_per_io"])
            if c == "fio-rbd" and a["srv_cpu_us_per_io"] is not None:
                srv += " (fio)"
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                wl, c, f_iops(a["iops"]), f_num(a["lat_avg_us"]), f_num(a["lat_p99_us"]),
                f_num(a["flush_avg_us"]), srv, f_num(a["osd_cpu_us_per_io"]),
                f_num(a["fio_cpu_us_per_io"])))
    L += ["", "## Paired IOPS ratios and targets", "",
          "Each ratio is taken within a round (the two runs were seconds apart), "
          "then the median over rounds. Targets: loopd ≥ 1.0× qemu-nbd and "
          "≥ 0.8× fio-rbd on every row.", "",
          "| workload | loopd / qemu-nbd | ≥ 1.0 | loopd / fio-rbd | ≥ 0.8 | loopd-direct / qemu-nbd |",
          "|---|---:|:-:|---:|:-:|---:|"]
    count = {"PASS": 0, "MISS": 0, "n/a": 0}
    for w, wl in WORKLOADS:
        if not any(k[0] == w for k in agg):
            continue
        cells = [wl]
        for a, b, target in RATIOS:
            r = rat[(w, a, b)]
            cells.append(f_ratio(r["paired"]))
            if target is not None:
                cells.append(r["verdict"])
                count[r["verdict"]] += 1
        L.append("| " + " | ".join(cells) + " |")
    L += ["", "%d PASS, %d MISS%s." % (count["PASS"], count["MISS"],
                                        ", %d n/a (a configuration had no result)" % count["n/a"]
                                        if count["n/a"] else "")]
    if q:
        L.append("QUICK=1: one short round; the verdicts are an indication only.")
    return "\n".join(L) + "\n"


def main():
    raw, metap, outdir = sys.argv[1:4]
    meta = load_meta(metap)
    clk = int(meta.get("clk_tck", "100"))
    runs = load_runs(raw, clk)
    agg = aggregate(runs)
    rat = ratios(runs, agg)
    md = markdown(meta, agg, rat)
    with open(os.path.join(outdir, "rbd-report.md"), "w", encoding="utf-8") as f:
        f.write(md)
    doc = {
        "meta": meta,
        "configs": dict(CONFIGS),
        "workloads": dict(WORKLOADS),
        "medians": {w: {c: agg[(w, c)] for c, _ in CONFIGS if (w, c) in agg}
                    for w, _ in WORKLOADS if any(k[0] == w for k in agg)},
        "ratios": [dict(workload=w, num=a, den=b, **rat[(w, a, b)])
                   for w, _ in WORKLOADS for a, b, _ in RATIOS
                   if any(k[0] == w for k in agg)],
        "runs": runs,
    }
    with open(os.path.join(outdir, "rbd-report.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
