#!/bin/sh
# Random-weight models must give step scores that spread (engine/model/mkmodel_init.c: scaled
# "+"/"-" head rows, sharp attention); scores all near 0.5 would hide errors in every
# test that compares an implementation with the reference. Scores three tiny models
# (seeds 1..3) on tests/model/spread_request.json with the fp32 reference
# (tests/reference/vprm_ref.py) and checks the spread of the step scores, across and
# inside responses. Environment: VPRM, PYTHON, VPRM_TMP.
set -u
fail() { echo "suite_score_spread: FAIL: $*"; exit 1; }
for v in VPRM PYTHON VPRM_TMP; do
    eval "val=\${$v:-}"
    [ -n "$val" ] || fail "environment variable $v is not set"
done
[ -x "$VPRM" ] || fail "no release binary at $VPRM"
ref=tests/reference/vprm_ref.py
[ -f "$ref" ] || fail "missing the reference scorer $ref"
"$PYTHON" -c "import numpy, torch, sentencepiece" 2>/dev/null || fail "$PYTHON lacks numpy/torch/sentencepiece"
work="$VPRM_TMP/model_spread"
rm -rf "$work" && mkdir -p "$work" || fail "cannot create $work"
for seed in 1 2 3; do
    "$VPRM" mkmodel --out "$work/m$seed" --scale tiny --seed $seed \
        --tokenizer engine/assets/tiny_tokenizer >"$work/mk$seed.log" 2>&1 ||
        fail "mkmodel seed $seed: $(cat "$work/mk$seed.log")"
    "$PYTHON" "$ref" score --model "$work/m$seed" tests/model/spread_request.json \
        >"$work/s$seed.json" 2>"$work/s$seed.err" || fail "reference on seed $seed: $(cat "$work/s$seed.err")"
done
"$PYTHON" - "$work" <<'PY'
import json, math, sys
work = sys.argv[1]
scores, ranges = [], []
for seed in (1, 2, 3):
    with open(f"{work}/s{seed}.json") as f:
        res = json.load(f)["results"]
    for r in res:
        s = r["step_scores"]
        scores += s
        ranges.append(max(s) - min(s))
        print(f"seed {seed}: " + " ".join(f"{x:.3f}" for x in s))
margins = [math.log(x / (1 - x)) for x in scores]
mean = sum(margins) / len(margins)
std = math.sqrt(sum((m - mean) ** 2 for m in margins) / len(margins))
outside = sum(1 for x in scores if x < 0.3 or x > 0.7) / len(scores)
wide = sum(1 for r in ranges if r > 0.2) / len(ranges)
checks = [
    (min(scores) < 0.15, f"lowest step score {min(scores):.3f} < 0.15"),
    (max(scores) > 0.85, f"highest step score {max(scores):.3f} > 0.85"),
    (1.0 < std < 4.0, f"margin std {std:.2f} in 1..4 (designed ~2)"),
    (outside >= 0.5, f"{outside:.0%} of step scores outside 0.3..0.7 (>= 50%)"),
    (wide >= 2 / 3, f"{wide:.0%} of responses have steps more than 0.2 apart (>= 67%)"),
]
bad = 0
for ok, what in checks:
    print(("ok   " if ok else "FAIL ") + what)
    bad += not ok
print(f"suite_score_spread: {len(checks) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
