#!/bin/sh
# Runs one fuzz target (`make fuzz`, `make fuzz-smoke`):
#   tests/fuzz/run.sh TARGET WORK_CORPUS [libFuzzer flags...]
# WORK_CORPUS is where libFuzzer writes what it finds; the committed seeds of
# tests/fuzz/corpus/TARGET are read, never written. Runs the binary `cargo fuzz build` made
# (`make fuzz-build`) as `cargo fuzz run` would, without its rebuild. Prints libFuzzer's own
# figures on one line; the whole log is target/fuzz/TARGET.log. On a crash: the log's end, and
# where the input is.
set -u
target=$1 work=$2
shift 2
fuzz=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$fuzz/../.." && pwd)
mkdir -p "$work" "$root/target/fuzz"
work=$(cd "$work" && pwd)
log=$root/target/fuzz/$target.log
dict=
[ "$target" != policy ] || dict=-dict=$fuzz/policy.dict
bin=$fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release/$target
[ -x "$bin" ] || { echo "$bin: not built (make fuzz-build)"; exit 1; }
mkdir -p "$fuzz/artifacts/$target"
cd "$root"
# shellcheck disable=SC2086
"$bin" -artifact_prefix="$fuzz/artifacts/$target/" "$@" -print_final_stats=1 $dict \
    "$work" "$fuzz/corpus/$target" >"$log" 2>&1
rc=$?
awk -v t="$target" '
    /DONE/ { for (i = 1; i < NF; i++) if ($i ~ /^(cov|ft|corp):$/) f[$i] = $(i + 1) }
    /^Done [0-9]+ runs in/ { runs = $2; secs = $5 }
    END { printf "fuzz %-15s %10s executions in %5s s, cov %s, ft %s, corpus %s\n",
                 t, runs, secs, f["cov:"], f["ft:"], f["corp:"] }' "$log"
if [ $rc -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz $target failed (exit $rc): the input is under tests/fuzz/artifacts/$target/"
    exit 1
fi
