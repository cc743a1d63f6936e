#!/bin/sh
# Tokenizer oracle suite: vprm's tokenizer (tests/tools/tok_encode) against
# python3-sentencepiece on the same generated strings, ids compared exactly.
#  - real InternLM2 tokenizer ($SHARED/tokenizer/internlm2), 10,000 strings, loaded
#    (a) as a bare tokenizer.model (pure sentencepiece behaviour) and (b) as a folder
#    with tokenizer_config.json (added tokens never produced from text: the oracle runs
#    on a copy of the model where those ids are control pieces);
#  - 300 strings through the ASan/UBSan build;
#  - the embedded tiny tokenizer (engine/assets/tiny_tokenizer), 3,000 strings, and
#    model variants that cover settings the real model lacks (dummy prefix, unescaped
#    spaces, unused and user-defined pieces, no byte fallback), 1,500 strings each.
# Environment (as tests/run_all.sh sets it): PYTHON SHARED VPRM_TOOLS VPRM_TOOLS_ASAN VPRM_TMP.
set -u
here=tests/tokenizer
PYTHON=${PYTHON:-/usr/bin/python3}
fail=0
die() { echo "suite_oracle: FAIL: $*"; exit 1; }

[ -n "${SHARED:-}" ] || die "SHARED is not set"
[ -n "${VPRM_TOOLS:-}" ] || die "VPRM_TOOLS is not set"
[ -n "${VPRM_TOOLS_ASAN:-}" ] || die "VPRM_TOOLS_ASAN is not set"
real=$SHARED/tokenizer/internlm2
tiny=engine/assets/tiny_tokenizer
enc=$VPRM_TOOLS/tok_encode
enc_asan=$VPRM_TOOLS_ASAN/tok_encode
for f in "$real/tokenizer.model" "$real/tokenizer_config.json" "$tiny/tokenizer.model" \
         "$tiny/tokenizer_config.json"; do
    [ -f "$f" ] || die "missing $f"
done
[ -x "$enc" ] || die "missing $enc (make tools)"
[ -x "$enc_asan" ] || die "missing $enc_asan (make asan)"
"$PYTHON" -c "import sentencepiece" 2>/dev/null ||
    die "$PYTHON cannot import sentencepiece (apt-get install python3-sentencepiece)"
tmp=$(mktemp -d "${VPRM_TMP:-/tmp}/tok.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

py() { "$PYTHON" "$here/$1" "$@"; }
oracle() { "$PYTHON" "$here/oracle.py" "$@"; }

# run LABEL TOOL LOAD_FLAG LOAD_ARG ORACLE_MODEL RECORDS
run() {
    label=$1 tool=$2 flag=$3 arg=$4 model=$5 rec=$6
    if ! oracle encode "$model" "$rec" "$tmp/$label.exp"; then
        echo "$label: FAIL: sentencepiece could not encode"; fail=1; return
    fi
    if ! "$tool" "$flag" "$arg" "$rec" "$tmp/$label.got"; then
        echo "$label: FAIL: tok_encode failed"; fail=1; return
    fi
    oracle compare "$rec" "$tmp/$label.exp" "$tmp/$label.got" "$label" || fail=1
}

# info LABEL LOAD_FLAG LOAD_ARG MODEL [CONFIG]: ids of specials, +, -, n_ids
info() {
    label=$1 flag=$2 arg=$3; shift 3
    oracle info "$@" > "$tmp/$label.info.exp" || { echo "$label info: FAIL (oracle)"; fail=1; return; }
    "$enc" "$flag" "$arg" --info > "$tmp/$label.info.got" || { echo "$label info: FAIL"; fail=1; return; }
    if diff "$tmp/$label.info.exp" "$tmp/$label.info.got" > "$tmp/$label.info.diff"; then
        echo "$label info: $(wc -l < "$tmp/$label.info.exp") lookups identical"
    else
        echo "$label info: FAIL"; cat "$tmp/$label.info.diff"; fail=1
    fi
}

gen() { "$PYTHON" "$here/gen_strings.py" "$@" || die "string generator failed"; }

# Real InternLM2 tokenizer.
gen --seed 1 --count 10000 --model "$real/tokenizer.model" --long 20 --long-size 60000 "$tmp/real.rec"
oracle variant added "$real/tokenizer.model" "$tmp/real_added.model" "$real/tokenizer_config.json" ||
    die "cannot write the added-tokens variant"
run real-model "$enc" --model "$real/tokenizer.model" "$real/tokenizer.model" "$tmp/real.rec"
run real-folder "$enc" --dir "$real" "$tmp/real_added.model" "$tmp/real.rec"
info real-model --model "$real/tokenizer.model" "$real/tokenizer.model"
info real-folder --dir "$real" "$real/tokenizer.model" "$real/tokenizer_config.json"

# ASan/UBSan build on a few hundred strings.
gen --seed 2 --count 300 --model "$real/tokenizer.model" --long 2 --long-size 20000 "$tmp/asan.rec"
run real-folder-asan "$enc_asan" --dir "$real" "$tmp/real_added.model" "$tmp/asan.rec"

# The embedded tiny tokenizer and variants of it.
gen --seed 3 --count 3000 --model "$tiny/tokenizer.model" --long 5 --long-size 30000 "$tmp/tiny.rec"
oracle variant added "$tiny/tokenizer.model" "$tmp/tiny_added.model" "$tiny/tokenizer_config.json" ||
    die "cannot write the tiny added-tokens variant"
run tiny-folder "$enc" --dir "$tiny" "$tmp/tiny_added.model" "$tmp/tiny.rec"
info tiny-folder --dir "$tiny" "$tiny/tokenizer.model" "$tiny/tokenizer_config.json"
seed=4
for v in dummy_prefix no_escape unused_userdef no_byte_fallback; do
    oracle variant $v "$tiny/tokenizer.model" "$tmp/tiny_$v.model" || die "cannot write variant $v"
    gen --seed $seed --count 1500 --model "$tiny/tokenizer.model" --long 2 --long-size 20000 "$tmp/tiny_$v.rec"
    run "tiny-$v" "$enc" --model "$tmp/tiny_$v.model" "$tmp/tiny_$v.model" "$tmp/tiny_$v.rec"
    seed=$((seed + 1))
done

if [ $fail -ne 0 ]; then
    echo "suite_oracle: FAILED"
    exit 1
fi
echo "suite_oracle: all identical"
