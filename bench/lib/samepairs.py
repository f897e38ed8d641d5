#!/usr/bin/env python3
"""samepairs.py ONE/table.txt MERGED/table.txt: exit 0 if MERGED, the
report of `bench/run merge ONE ONE`, has ONE's targets with every round
counted twice (the same paired medians and verdicts, met k/n -> 2k/2n).
run-tests' check of the merge mode."""
import re
import sys


def targets(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text[text.index("\nTargets"):].splitlines()[3:]


def doubled(line):
    return re.sub(r" (\d+)/(\d+)  ", lambda m: " %d/%d  " % (2 * int(m[1]), 2 * int(m[2])), line)


one, merged = targets(sys.argv[1]), targets(sys.argv[2])
ok = len(one) > 3 and [doubled(x) for x in one] == merged
if not ok:
    for a, b in list(zip(one, merged))[:3]:
        if doubled(a) != b:
            print("samepairs: %r\n       vs %r" % (doubled(a), b), file=sys.stderr)
sys.exit(0 if ok else 1)
