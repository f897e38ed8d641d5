"""snapcheck.py: what a live snapshot must hold, from a recorded trace.

test-snapshot.sh's workload marks the trace (loopd ctl mark) after each
fsync returned ("fsynced PATH SHA256"), before a rename ("renaming OLD
NEW") and after the rename was synced ("renamed OLD NEW").  A snapshot's
instant P is the mark "snapshot NAME" (I1 in src/engine/snapshot.c).  So
the files fsync'ed before P, at the names they had at P, are the ones the
snapshot must hold with their data; a file whose rename was under way at P
may be at either name.

Usage: snapcheck.py DUMP LABEL IMAGE
  DUMP   the output of `loopd trace dump TRACE`
  LABEL  the snapshot's mark, "snapshot NAME"
  IMAGE  the snapshot, its journal replayed (ext4), read with debugfs
         (rdump into a directory next to it)
Prints how many files were checked; exits 1 on the first file that is
missing or holds other data.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile


def marks(dump):
    out = []
    with open(dump, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r'^\d+ \S+ MARK "(.*)"$', line.rstrip("\n"))
            if m:
                out.append(m.group(1))
    return out


def expected(all_marks, label):
    """{path: (sha, alternative path or None)} as of the mark label."""
    files = {}
    for m in all_marks:
        if m == label:
            return files
        w = m.split(" ")
        if w[0] == "fsynced":
            files[w[1]] = (w[2], None)
        elif w[0] == "renaming" and w[1] in files:
            files[w[1]] = (files[w[1]][0], w[2])  # either name at P
        elif w[0] == "renamed" and w[1] in files:
            files[w[2]] = (files.pop(w[1])[0], None)
    raise SystemExit(f"no mark {label!r} in the trace")


def read_all(image, out):
    """Every file of the image's root, copied out with debugfs rdump."""
    subprocess.run(["debugfs", "-R", f"rdump / {out}", image],
                   capture_output=True, check=True, timeout=120)


def cat(root, path):
    try:
        with open(os.path.join(root, path), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def main():
    dump, label, image = sys.argv[1:4]
    files = expected(marks(dump), label)
    root = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(image)))
    read_all(image, root)
    for path, (sha, alt) in sorted(files.items()):
        found = [cat(root, p) for p in (path, alt) if p]
        if not any(d is not None and hashlib.sha256(d).hexdigest() == sha
                   for d in found):
            where = path if alt is None else f"{path} or {alt}"
            print(f"{image}: {where} (fsync'ed before {label!r}) is "
                  f"{'missing' if all(d is None for d in found) else 'other data'}")
            sys.exit(1)
    shutil.rmtree(root)
    print(f"{len(files)} fsync'ed files hold their data")


main()
