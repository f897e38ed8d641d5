#!/usr/bin/env bash
# test-crash-oracle: `loopd crash --check CMD` as a data oracle at marks
# (crash-model.md A9), --state/--out and --json.  A file is written and
# fsync'ed on ext4 (through nbdfuse + a loop device); a mark records that
# fsync returned.  Then, in every crash state after the mark, the file
# must hold its data (a user command mounts the image and compares), and
# under --model no-flush it must not: the failing state rebuilt with
# --state fails the same command again.
set -euo pipefail
# shellcheck source=tests/e2e/functions.sh
source "$SRCDIR/tests/e2e/functions.sh"
kernel_requires
requires cmp

trace=$TMP/t.trace
check "record: mkfs, write and fsync a file, mark, more writes"
start_server o --size 64M --record "$trace" "$TMP/disk.img"
mkdir "$TMP/mnt"
kernel_attach "$TMP/fuse" "$uri"
mkfs.ext4 -q -F -E nodiscard "$loopdev"
mount "$loopdev" "$TMP/mnt"
mounted=$TMP/mnt
head -c 300000 /dev/urandom >"$TMP/expected"
cp "$TMP/expected" "$TMP/mnt/a"
sync -f "$TMP/mnt/a" # fsync: a and its directory entry are durable
"$LOOPD" trace mark "$trace" "fsync(a)"
for i in $(seq 20); do
	head -c 20000 /dev/urandom >"$TMP/mnt/b$i"
done
sync -f "$TMP/mnt"
kernel_detach # umount, losetup -d, fusermount3 -u
stop_server "$pid"
ok "recorded"

# The oracle: mount the state (the journal is replayed into the image,
# which the explorer restores afterwards) and compare the file.
cat >"$TMP/oracle" <<EOF
#!/bin/sh
m=\$(mktemp -d) || exit 2
mount -o loop "\$1" "\$m" || { rmdir "\$m"; exit 1; }
cmp -s "\$m/a" "$TMP/expected"; r=\$?
umount "\$m"; rmdir "\$m"
exit \$r
EOF
chmod +x "$TMP/oracle"

check "A9: after the mark, every crash state holds the fsync'ed file"
"$LOOPD" crash "$trace" --after "fsync(a)" --check "$TMP/oracle {}" \
	--max-states 150 -q >"$TMP/ok.log" || fail "$(cat "$TMP/ok.log")"
grep '^states:' "$TMP/ok.log"
ok "no state lost the file"

check "under --model no-flush the file is lost, and --state rebuilds it"
rc=0
"$LOOPD" crash "$trace" --after "fsync(a)" --check "$TMP/oracle {}" \
	--model no-flush --max-states 10 --json >"$TMP/nf.json" || rc=$?
((rc == 1)) || fail "exit $rc, want 1: $(cat "$TMP/nf.json")"
id=$("$PY" - "$TMP/nf.json" <<'PYEOF'
import json
import sys

r = json.load(open(sys.argv[1]))
assert r["model"] == "no-flush", r["model"]
assert r["failed"] >= 1 and r["failed"] == len(r["failures"]), r
assert r["states"] == r["passed"] + r["failed"], r
assert sum(p["failed"] for p in r["by_point"]) == r["failed"], r
f = r["failures"][0]
assert f["mark"] == "fsync(a)", f
print(f["id"])
PYEOF
)
ok "--json: $(grep -o '"failed":[0-9]*' "$TMP/nf.json" | head -1), first failing state $id"
"$LOOPD" crash "$trace" --model no-flush --state "$id" --out "$TMP/state.img"
if "$TMP/oracle" "$TMP/state.img"; then
	fail "state $id rebuilt with --state passes the oracle"
fi
ok "state $id rebuilt: the oracle fails on it again"

echo "test-crash-oracle: all checks passed"
