#!/usr/bin/env python3
"""Sample a server's memory and connections while fio runs (bench/run rss).

usage: rsssample.py PID SOCKET OUT [INTERVAL]

Every INTERVAL seconds (default 0.2) until PID is gone or SIGTERM, reads
/proc/PID/status and that of each direct child (nbd-server forks one
process per connection) and keeps the peaks of:

  children_hwm_kib  sum of the children's VmHWM (0 for servers that do not
                    fork): what a forking server adds to the parent's VmHWM
  anon_kib          sum over the tree of RssAnon: the private memory that
                    buffers use, without shared libraries or the binary
  rss_kib           sum over the tree of VmRSS
  conns             server-side connected sockets bound to SOCKET, from
                    /proc/net/unix: the connections the server really holds

It rewrites OUT (one line: those four numbers) whenever a peak grows, so
the file is complete whenever the sampler is stopped. One process reading
a few /proc files per sample: cheap next to a fio run with 64 jobs, unlike
a shell loop forking awk per child.
"""
import os
import signal
import sys
import time


def status(pid):
    """{field: kib} of VmHWM, VmRSS, RssAnon, or None if pid is gone."""
    try:
        with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS", "RssAnon", "State"):
            out[k] = v.split()[0] if k == "State" else int(v.split()[0])
    if out.get("State") == "Z":
        return None
    return out


def children(pid):
    kids = set()
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return kids
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t), encoding="ascii") as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def conns(path):
    """Connected (state 03), non-listening sockets whose name is path."""
    n = 0
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as f:
            next(f)
            for line in f:
                p = line.split()
                if len(p) >= 8 and p[7] == path and p[5] == "03" and p[3] != "00010000":
                    n += 1
    except OSError:
        pass
    return n


def main():
    pid, sock, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
    peak = [0, 0, 0, 0]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def write():
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d %d %d %d\n" % tuple(peak))
        os.replace(tmp, out)

    write()
    while not stop:
        top = status(pid)
        if top is None:
            break
        kids = [s for s in (status(c) for c in children(pid)) if s]
        now = [sum(s.get("VmHWM", 0) for s in kids),
               top.get("RssAnon", 0) + sum(s.get("RssAnon", 0) for s in kids),
               top.get("VmRSS", 0) + sum(s.get("VmRSS", 0) for s in kids),
               conns(sock)]
        if any(n > p for n, p in zip(now, peak)):
            peak = [max(n, p) for n, p in zip(now, peak)]
            write()
        time.sleep(interval)


if __name__ == "__main__":
    main()
