#!/bin/sh
# Replays every fuzz target's checked-in corpus (tests/fuzz/corpus/TARGET: seeds, inputs
# libFuzzer found interesting, and the inputs of every crash fixed so far) through the
# ASan/UBSan build: a regression test for the parsers' promises (tests/fuzz/fuzz.h).
set -u
bindir=${VPRM_FUZZ_REPLAY:?set VPRM_FUZZ_REPLAY to the folder of the replay builds (make test does)}
export SHARED="${SHARED:-../shared}"
failed=0 ran=0
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    if [ ! -x "$bindir/$t" ]; then
        echo "FAIL $t: $bindir/$t not built"
        failed=$((failed + 1))
        continue
    fi
    if [ ! -d "tests/fuzz/corpus/$t" ] || [ -z "$(ls "tests/fuzz/corpus/$t")" ]; then
        echo "FAIL $t: no corpus in tests/fuzz/corpus/$t"
        failed=$((failed + 1))
        continue
    fi
    if "$bindir/$t" "tests/fuzz/corpus/$t"; then
        ran=$((ran + 1))
    else
        echo "FAIL $t"
        failed=$((failed + 1))
    fi
done
echo "fuzz replay: $ran targets passed, $failed failed"
[ "$ran" -gt 0 ] && [ "$failed" -eq 0 ]
