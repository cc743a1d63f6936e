#!/bin/sh
# Regenerates the tiny tokenizer of this folder (tokenizer.model, tokenizer_config.json)
# from the deterministic corpus of gen_corpus.py, with Debian's spm_train (package
# sentencepiece) and python3-sentencepiece. Run from anywhere: sh train.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
command -v spm_train >/dev/null || { echo "train.sh: spm_train not found (apt-get install sentencepiece)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" "$here/gen_corpus.py" > "$tmp/corpus.txt"
# InternLM2's settings: BPE, byte fallback, identity normalizer, no dummy prefix,
# whitespace kept, digits split. Lines cannot hold "\n" or "\t", so both are
# user-defined symbols (single pieces, as the prompt builder needs "\n" to be).
(cd "$tmp" && spm_train --input=corpus.txt --model_prefix=tiny --model_type=bpe \
    --vocab_size=1500 --byte_fallback=true --normalization_rule_name=identity \
    --add_dummy_prefix=false --remove_extra_whitespaces=false --split_digits=true \
    --character_coverage=1.0 --num_threads=1 --random_seed=1 \
    --user_defined_symbols="$(printf '\n,\t')" --minloglevel=2)
cp "$tmp/tiny.model" "$here/tokenizer.model"
"$PYTHON" "$here/make_config.py" "$here/tokenizer.model" > "$here/tokenizer_config.json"
"$PYTHON" "$here/check.py" "$here"
