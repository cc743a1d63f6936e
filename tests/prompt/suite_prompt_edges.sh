#!/bin/sh
# Prompt edge cases against the independent reference (tests/reference, sentencepiece +
# MODEL.md) on the REAL InternLM2 tokenizer, ids, pieces and score positions identical:
#  - tests/prompt/edge_requests.py: whitespace at step ends, odd newline runs, leading and
#    trailing separators, an overlapping separator, unicode spaces, placeholder spellings,
#    several images, special-token text in steps, an image without max_tiles;
#  - the same on a model whose config.json has a system_message, max_dynamic_patch 4 and
#    min_dynamic_patch 3 (MODEL.md 1.4 and 2), and each must change the prompt;
#  - a question whose <image> count is not the image count is refused by both;
#  - `vprm serve --system-message` (the server's override) wins over config.json's.
# Environment (tests/run_all.sh): VPRM, PYTHON, SHARED, VPRM_TMP.
set -u
here=$(dirname "$0")
tok="$SHARED/tokenizer/internlm2"
[ -f "$tok/tokenizer.model" ] || { echo "FAIL: $tok/tokenizer.model not found"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl is not installed"; exit 1; }
tmp="$VPRM_TMP/prompt-edges"
rm -rf "$tmp" && mkdir -p "$tmp" || exit 1
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$VPRM" mkmodel --out "$tmp/model" --tokenizer "$tok" --seed 5 > "$tmp/mk.log" 2>&1 ||
    { echo "FAIL: mkmodel: $(cat "$tmp/mk.log")"; exit 1; }
# the same weights and tokenizer, config.json with a system message and max_dynamic_patch 4
mkdir -p "$tmp/model-cfg"
abs=$(cd "$tmp/model" && pwd)
for f in "$abs"/*; do ln -s "$f" "$tmp/model-cfg/"; done
rm "$tmp/model-cfg/config.json"
SYS='Judge strictly.
  Two spaces, a tab	and <|im_end|> stay text.'
"$PYTHON" - "$tmp/model/config.json" "$tmp/model-cfg/config.json" "$SYS" <<'PY' || exit 1
import json, sys
c = json.load(open(sys.argv[1]))
c["system_message"] = sys.argv[3]
c["max_dynamic_patch"] = 4
c["min_dynamic_patch"] = 3  # over a request's max_tiles 2: one tile (the model card's fallback)
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
"$PYTHON" "$here/edge_requests.py" --out "$tmp/req" || exit 1

# tokenize_both NAME MODEL: every req_*.json through vprm and the reference, compared
tokenize_both() {
    name=$1 model=$2
    d="$tmp/$name"
    mkdir -p "$d" && cp "$tmp"/req/req_*.json "$d/"
    for req in "$d"/req_*.json; do
        "$VPRM" tokenize --model "$model" "$req" > "$req.c.json" 2> "$req.c.err" ||
            { bad "$name: vprm tokenize $(basename "$req"): $(cat "$req.c.err")"; return; }
    done
    "$PYTHON" - "$d" > "$d/batch.json" <<'PY'
import glob, json, os, sys
paths = sorted(p for p in glob.glob(os.path.join(sys.argv[1], "req_*.json")) if not p.endswith(".c.json"))
print(json.dumps({"requests": [json.load(open(p, encoding="utf-8")) for p in paths]}, ensure_ascii=False))
PY
    "$PYTHON" tests/reference/vprm_ref.py tokenize --model "$model" "$d/batch.json" > "$d/ref.json" 2> "$d/ref.err" ||
        { bad "$name: reference tokenize: $(tail -n 3 "$d/ref.err")"; return; }
    printf '%s: ' "$name"
    "$PYTHON" tests/prompt/compare_tokenize.py "$d" "$d/ref.json" || fail=1
}
tokenize_both default "$tmp/model"
tokenize_both config "$tmp/model-cfg"

# the config block must have changed the prompt, or it tested nothing
"$PYTHON" - "$tmp/default/ref.json" "$tmp/config/ref.json" <<'PY' || fail=1
import json, sys
a, b = (json.load(open(p))["results"] for p in sys.argv[1:3])
ids = lambda r, k: r[k]["responses"][0]["input_ids"]
ctx = 92546  # <IMG_CONTEXT>
ta, tb = ids(a, -2).count(ctx) // 256, ids(b, -2).count(ctx) // 256
t2a, t2b = ids(a, -1).count(ctx) // 256, ids(b, -1).count(ctx) // 256
ok = ids(a, 0) != ids(b, 0) and ta > tb and (t2a, t2b) == (3, 1)
print(f"config.json: system_message changes the ids: {ids(a, 0) != ids(b, 0)}; tiles without "
      f"max_tiles {ta} (max_dynamic_patch 12) vs {tb} (4); max_tiles 2: {t2a} (min_dynamic_patch 1) "
      f"vs {t2b} (3, no grid listed): {'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY

# placeholder count != image count: both refuse, naming the question
before=$fail
for req in "$tmp"/req/bad_*.json; do
    b=$(basename "$req")
    if "$VPRM" tokenize --model "$tmp/model" "$req" > /dev/null 2> "$tmp/$b.c.err" ||
       ! grep -q "question: .*placeholder" "$tmp/$b.c.err"; then
        bad "$b: vprm did not refuse the question: $(cat "$tmp/$b.c.err")"
    fi
    "$PYTHON" tests/reference/vprm_ref.py tokenize --model "$tmp/model" "$req" > "$tmp/$b.ref" 2>/dev/null
    grep -q '"param": "question"' "$tmp/$b.ref" || bad "$b: the reference did not refuse it: $(cat "$tmp/$b.ref")"
done
[ "$fail" -eq "$before" ] && echo "placeholder mismatch: refused by both"

# the server's --system-message beats config.json's system_message (POST /v1/tokenize)
OVR='Override: answer + or -.'
"$VPRM" serve --model "$tmp/model-cfg" --host 127.0.0.1 --port 0 --no-warmup --system-message "$OVR" \
    > "$tmp/serve.out" 2> "$tmp/serve.log" &
pid=$!
url=""
i=0
while [ $i -lt 300 ] && [ -z "$url" ]; do
    url=$(sed -n 's/^listening on \(http:\/\/127\.0\.0\.1:[0-9][0-9]*\)$/\1/p' "$tmp/serve.out" 2>/dev/null)
    [ -n "$url" ] || { kill -0 "$pid" 2>/dev/null || break; sleep 0.1; }
    i=$((i + 1))
done
code=000
i=0
while [ -n "$url" ] && [ $i -lt 600 ] && [ "$code" != 200 ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/ready")
    [ "$code" = 200 ] || sleep 0.1
    i=$((i + 1))
done
if [ "$code" != 200 ]; then
    bad "server never ready: $(tail -n 3 "$tmp/serve.log")"
else
    d="$tmp/override"
    mkdir -p "$d" && cp "$tmp/req/req_000.json" "$tmp/req/req_008.json" "$d/"
    for req in "$d"/req_*.json; do
        curl -s -o "$req.c.json" -w '%{http_code}' -H 'Content-Type: application/json' \
            --data-binary @"$req" "$url/v1/tokenize" > "$req.code"
        [ "$(cat "$req.code")" = 200 ] || bad "POST /v1/tokenize $(basename "$req"): $(cat "$req.c.json")"
    done
    "$PYTHON" - "$d" > "$d/batch.json" <<'PY'
import glob, json, os, sys
paths = sorted(p for p in glob.glob(os.path.join(sys.argv[1], "req_*.json")) if not p.endswith(".c.json"))
print(json.dumps({"requests": [json.load(open(p, encoding="utf-8")) for p in paths]}, ensure_ascii=False))
PY
    if "$PYTHON" tests/reference/vprm_ref.py tokenize --model "$tmp/model-cfg" --system-prompt "$OVR" \
        "$d/batch.json" > "$d/ref.json" 2> "$d/ref.err"; then
        printf 'server --system-message: '
        "$PYTHON" tests/prompt/compare_tokenize.py "$d" "$d/ref.json" || fail=1
    else
        bad "reference tokenize --system-prompt: $(tail -n 3 "$d/ref.err")"
    fi
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=""
[ "$fail" -eq 0 ] && echo "prompt edges: all identical" && exit 0
echo "prompt edges: FAILED"
exit 1
