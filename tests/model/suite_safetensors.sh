#!/bin/sh
# Generated checkpoints read by an independent numpy reader: layout, names and shapes
# (derived from MODEL.md in Python), values equal to what the engine reads, bf16/f16
# rounding equal to torch's, sharding, determinism of `vprm mkmodel`.
# Environment (tests/run_all.sh): VPRM, VPRM_ASAN, VPRM_TOOLS, PYTHON, VPRM_TMP.
set -u
fail() { echo "suite_safetensors: FAIL: $*"; exit 1; }
for v in VPRM VPRM_ASAN VPRM_TOOLS PYTHON VPRM_TMP; do
    eval "val=\${$v:-}"
    [ -n "$val" ] || fail "environment variable $v is not set"
done
[ -x "$VPRM" ] || fail "no release binary at $VPRM"
[ -x "$VPRM_ASAN" ] || fail "no ASan binary at $VPRM_ASAN"
for t in model_tensor_values model_round; do
    [ -x "$VPRM_TOOLS/$t" ] || fail "missing tool $VPRM_TOOLS/$t (make tools)"
done
"$PYTHON" -c "import numpy, torch, sentencepiece" 2>/dev/null ||
    fail "$PYTHON lacks numpy, torch or sentencepiece (Debian python3-numpy, python3-torch, python3-sentencepiece)"
tok=engine/assets/tiny_tokenizer
[ -f "$tok/tokenizer.model" ] || fail "missing $tok/tokenizer.model (run from the repository root)"

work="$VPRM_TMP/model_safetensors"
rm -rf "$work" && mkdir -p "$work" || fail "cannot create $work"
mk() { out=$1; shift; "$VPRM" mkmodel --out "$work/$out" --scale tiny --tokenizer "$tok" "$@" >"$work/$out.log" 2>&1 ||
    fail "vprm mkmodel $out $*: $(cat "$work/$out.log")"; }
mk bf16 --seed 3
mk bf16_again --seed 3
mk f32 --seed 3 --dtype f32
mk f16 --seed 3 --dtype f16
mk sharded --seed 3 --shards 3
mk seed4 --seed 4
# the sanitizer build runs the option parser and every override once
"$VPRM_ASAN" mkmodel --out "$work/variant" --tokenizer "$tok" --seed 9 --vision-norm rms_norm \
    --qk-norm --no-qkv-bias --llm-layers 3 --heads 2 --kv-heads 1 --system-message "Judge strictly." \
    >"$work/variant.log" 2>&1 || fail "ASan mkmodel variant: $(cat "$work/variant.log")"

passed=0
failed=0
expect() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $*"; fi; }
expect cmp -s "$work/bf16/model.safetensors" "$work/bf16_again/model.safetensors"
expect cmp -s "$work/bf16/config.json" "$work/bf16_again/config.json"
expect test -n "$(cmp "$work/bf16/model.safetensors" "$work/seed4/model.safetensors" 2>&1)"
# refusals: exit status 2 for usage, 1 for a model that cannot be built, message names the problem
"$VPRM" mkmodel --out "$work/bad" --tokenizer "$tok" --heads 3 >"$work/bad.log" 2>&1
expect test $? -eq 1
expect grep -q "num_attention_heads" "$work/bad.log"
"$VPRM" mkmodel --out "$work/bad" --tokenizer "$tok" --dtype f64 >"$work/bad.log" 2>&1
expect test $? -eq 2
expect grep -q "dtype" "$work/bad.log"
"$VPRM" mkmodel --tokenizer "$tok" >"$work/bad.log" 2>&1
expect test $? -eq 2
expect grep -q -- "--out" "$work/bad.log"
# --config-only: config.json and tokenizer, no weights (reused stale shards removed);
# loading it needs --random-weights, which the cpu backend refuses by name
mk cfgonly --seed 3 --shards 2
mk cfgonly --seed 3 --config-only
expect test -f "$work/cfgonly/config.json"
expect test -f "$work/cfgonly/tokenizer.model"
expect test -z "$(ls "$work/cfgonly" | grep safetensors)"
expect cmp -s "$work/bf16/config.json" "$work/cfgonly/config.json"
# three writers of one folder at once (seeds 3, 4 and 5): each writes a file of its own
# and renames it whole, so what is left is one seed's weights, never a mix
mk seed5 --seed 5
for round in 1 2 3 4; do
    for sd in 3 4 5; do
        "$VPRM" mkmodel --out "$work/race" --scale tiny --tokenizer "$tok" --seed $sd \
            >"$work/race$sd.log" 2>&1 &
    done
    wait
    whole=0
    for ref in bf16 seed4 seed5; do
        cmp -s "$work/race/model.safetensors" "$work/$ref/model.safetensors" && whole=1
    done
    expect test $whole -eq 1
    expect test -z "$(ls "$work/race" | grep partial)"
done
# a folder holding a model mkmodel did not write (a real checkpoint: no .vprm-mkmodel) is
# refused and left as it was, unless --force
cp -r "$work/bf16" "$work/real" && rm -f "$work/real/.vprm-mkmodel"
expect test -f "$work/bf16/.vprm-mkmodel"
"$VPRM" mkmodel --out "$work/real" --scale tiny --tokenizer "$tok" --seed 4 >"$work/real.log" 2>&1
expect test $? -eq 1
expect grep -q -- "--force" "$work/real.log"
expect cmp -s "$work/bf16/model.safetensors" "$work/real/model.safetensors"
expect test ! -f "$work/real/.vprm-mkmodel"
mk real --seed 4 --force
expect cmp -s "$work/seed4/model.safetensors" "$work/real/model.safetensors"
"$VPRM_ASAN" score --model "$work/cfgonly" tests/data/geometry_request.json >"$work/bad.log" 2>&1
expect test $? -eq 1
expect grep -q "neither model.safetensors" "$work/bad.log"
"$VPRM_ASAN" score --model "$work/cfgonly" --random-weights 1 tests/data/geometry_request.json \
    >"$work/bad.log" 2>&1
expect test $? -eq 1
expect grep -q "backend 'cpu' cannot generate random weights" "$work/bad.log"
# tokenizing needs no weights: a --config-only folder answers as the full one does
"$VPRM_ASAN" tokenize --model "$work/cfgonly" tests/data/geometry_request.json >"$work/tok_cfg.json" 2>"$work/bad.log"
expect test $? -eq 0
"$VPRM" tokenize --model "$work/bf16" tests/data/geometry_request.json 2>/dev/null |
    sed 's/"model":"bf16"/"model":"cfgonly"/' >"$work/tok_full.json"
expect test -s "$work/tok_full.json"
expect cmp -s "$work/tok_cfg.json" "$work/tok_full.json"
"$VPRM_ASAN" score --model "$work/cfgonly" --random-weights x tests/data/geometry_request.json \
    >"$work/bad.log" 2>&1
expect test $? -eq 2
expect grep -q "random-weights wants a seed" "$work/bad.log"

"$PYTHON" tests/model/st_check.py --tools "$VPRM_TOOLS" --work "$work"
py=$?
echo "suite_safetensors: shell checks $passed passed, $failed failed; python exit $py"
[ "$failed" -eq 0 ] && [ "$py" -eq 0 ]
