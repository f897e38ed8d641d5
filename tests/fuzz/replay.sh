#!/bin/sh
# Run a fuzz harness once over each of its checked-in inputs, fuzzing
# nothing (-runs=0): its seed corpus and its regression inputs, if it has
# any.  "meson test -C build-fuzz" runs this for each harness.  The
# regressions folder is looked up now, not when meson was configured, so
# a new one counts at once.
# Usage: replay.sh HARNESS-BINARY NAME
set -eu
exe=$1
name=$2
dir=$(dirname "$0")
set -- "$dir/corpus/$name"
if [ -d "$dir/regressions/$name" ]; then
	set -- "$@" "$dir/regressions/$name"
fi
exec "$exe" -runs=0 "$@"
