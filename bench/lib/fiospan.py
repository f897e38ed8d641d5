#!/usr/bin/env python3
"""The throughput a server delivered to all of fio's jobs together.

usage: fiospan.py FIO.json LOGPREFIX LOG_MSEC

fio reports, for a group of jobs, the sum of each job's own rate. That is
the server's throughput only if the jobs ran at the same time. Against a
server that accepts or negotiates connections slowly under load, fio
starts each job when its connection is ready, and the jobs run one after
another in part: 64 jobs of 8 s each spread over 20 s, and the sum of
their rates is twice what the server delivered in any second.

This reads the per-job IOPS logs fio wrote (write_iops_log=LOGPREFIX,
log_avg_msec=LOG_MSEC, log_unix_epoch=1: one file LOGPREFIX_iops.N.log
per job, one line per window, its time the window's end in ms since the
epoch) and prints, tab-separated:

  span_s      from the first job's first window to the last job's end
  span_iops   all data I/Os of the run (fio's total_ios) / span_s
  overlap     the jobs' summed active time / (span_s x jobs): 1.00 when
              all jobs ran the whole span together

or NA NA NA when there are no logs.
"""
import glob
import json
import sys


def total_ios(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    doc = json.loads(text[text.find("{"):])
    n = 0
    for job in doc["jobs"]:
        for d in ("read", "write", "trim"):
            n += (job.get(d) or {}).get("total_ios", 0)
    return n


def windows(path):
    """(first window start, last window end) of one job's log, in ms."""
    ts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            field = line.split(",", 1)[0].strip()
            if field.isdigit():
                ts.append(int(field))
    return (min(ts), max(ts)) if ts else None


def main():
    path, prefix, msec = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        n = total_ios(path)
        spans = [w for w in (windows(p) for p in
                             glob.glob(prefix + "_iops.*.log")) if w]
    except (OSError, ValueError, KeyError) as e:
        print("fiospan: %s: %s" % (path, e), file=sys.stderr)
        spans, n = [], 0
    if not spans or not n:
        print("NA\tNA\tNA")
        return
    start = min(s for s, _ in spans) - msec  # a window's time is its end
    end = max(e for _, e in spans)
    span = (end - start) / 1000.0
    active = sum(e - s + msec for s, e in spans) / 1000.0
    print("%.3f\t%.3f\t%.3f" % (span, n / span, active / (span * len(spans))))


if __name__ == "__main__":
    main()
