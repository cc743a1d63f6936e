#!/bin/sh
# Coverage-guided fuzzing (libFuzzer) of each target for FUZZ_SECONDS, started from its
# checked-in corpus (tests/fuzz/corpus/TARGET) and dictionary (tests/fuzz/TARGET.dict).
#   sh tests/fuzz/run.sh BUILD_FUZZ_DIR TARGET...       (make fuzz calls it)
# New interesting inputs go to BUILD_FUZZ_DIR/corpus/TARGET, so the checked-in corpus
# only changes when someone merges on purpose:
#   build/fuzz/bin/TARGET -merge=1 tests/fuzz/corpus/TARGET build/fuzz/corpus/TARGET
# A crash leaves BUILD_FUZZ_DIR/crash-TARGET-*; add it to the corpus once it is fixed,
# so `make test` replays it from then on. Exits 1 if any target crashed.
set -u
dir=$1
shift
# each target runs in its own working folder (parallel jobs write fuzz-N.log there), so
# paths are made absolute; targets find the repository through VPRM_ROOT
VPRM_ROOT=$PWD
case $dir in /*) ;; *) dir=$VPRM_ROOT/$dir ;; esac
export VPRM_ROOT SHARED="${SHARED:-$VPRM_ROOT/../shared}"
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
failed=""
for t in "$@"; do
    mkdir -p "$dir/corpus/$t" "$dir/artifacts"
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=$VPRM_ROOT/tests/fuzz/$t.dict"
    opts=""
    [ -f "tests/fuzz/$t.options" ] && opts=$(grep -v '^#' "tests/fuzz/$t.options")
    par=""
    [ "$jobs" -gt 1 ] && par="-jobs=$jobs -workers=$jobs"
    echo "== $t: ${seconds} s, $jobs job(s)"
    # shellcheck disable=SC2086 # dict, opts and par are word lists on purpose
    if ! (mkdir -p "$dir/work/$t" && cd "$dir/work/$t" && "$dir/bin/$t" \
        -max_total_time="$seconds" -print_final_stats=1 $par \
        -artifact_prefix="$dir/artifacts/crash-$t-" $dict $opts \
        "$dir/corpus/$t" "$VPRM_ROOT/tests/fuzz/corpus/$t") >"$dir/$t.log" 2>&1; then
        failed="$failed $t"
        echo "== $t: FAILED (log $dir/$t.log)"
        grep -m 20 -E "ERROR|invariant|SUMMARY|Test unit written" "$dir/$t.log"
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$dir/$t.log" "$dir/work/$t"/fuzz-*.log 2>/dev/null | tail -3
    fi
done
[ -z "$failed" ] && { echo "fuzz: no crash in $*"; exit 0; }
echo "fuzz: crashed:$failed"
exit 1
