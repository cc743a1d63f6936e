#!/bin/sh
# `vprm tokenize` against the independent reference (tests/reference: Python
# sentencepiece + the prompt written from MODEL.md) on the REAL InternLM2 tokenizer:
# identical ids, score positions and pieces for generated requests (images, several
# images, <image> placeholders, special-token text, unicode, empty steps, merging).
set -u
here=$(dirname "$0")
tok="$SHARED/tokenizer/internlm2"
[ -f "$tok/tokenizer.model" ] || { echo "FAIL: $tok/tokenizer.model not found"; exit 1; }
tmp="$VPRM_TMP/tokenize-oracle"
mkdir -p "$tmp"
"$VPRM" mkmodel --out "$tmp/model" --tokenizer "$tok" --seed 5 > "$tmp/mk.log" 2>&1 ||
    { echo "FAIL: mkmodel: $(cat "$tmp/mk.log")"; exit 1; }
"$PYTHON" tests/reference/gen_requests.py --out "$tmp/req" --seed 21 --count 48 --small || exit 1
fail=0
for req in "$tmp"/req/req_*.json; do
    "$VPRM" tokenize --model "$tmp/model" "$req" > "$req.c.json" 2> "$req.c.err" ||
        { echo "FAIL: vprm tokenize $req: $(cat "$req.c.err")"; fail=1; }
done
[ "$fail" -eq 0 ] || exit 1
"$PYTHON" - "$tmp/req" > "$tmp/batch.json" <<'PY'
import glob, json, os, sys
paths = sorted(p for p in glob.glob(os.path.join(sys.argv[1], "req_*.json")) if not p.endswith(".c.json"))
print(json.dumps({"requests": [json.load(open(p, encoding="utf-8")) for p in paths]}, ensure_ascii=False))
PY
"$PYTHON" tests/reference/vprm_ref.py tokenize --model "$tmp/model" "$tmp/batch.json" > "$tmp/ref.json" 2> "$tmp/ref.err" ||
    { echo "FAIL: reference tokenize: $(tail -n 5 "$tmp/ref.err")"; exit 1; }
"$PYTHON" "$here/compare_tokenize.py" "$tmp/req" "$tmp/ref.json"
