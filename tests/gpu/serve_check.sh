#!/bin/sh
# The CUDA backend behind the product's own entry points, on the GPU machine (after
# tests/gpu/pack.sh, carry [".gpu"]): `vprm score --backend cuda` against `--backend cpu`
# on a tiny random model (the model card's example request, tests/data), then `vprm serve
# --backend cuda` answering POST /v1/score over HTTP with the same scores. Prints the
# largest step-score difference of each; exit 1 when one is over 0.02 or a stage fails.
#     sh tests/gpu/serve_check.sh
set -u
G=$PWD/.gpu
W=/tmp/vprm-serve
PY=${PYTHON:-python3}
V=$G/bin/vprm
rm -rf "$W" && mkdir -p "$W"
export LD_LIBRARY_PATH="$G/lib:/usr/local/cuda/lib64"
fail=0
"$V" mkmodel --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer --out "$W/tiny" >/dev/null || exit 1
LD_LIBRARY_PATH= "$PY" - "$W/req.json" <<'PYEOF'
import base64, json, sys
req = json.load(open("tests/data/geometry_request.json"))
req["image"] = "data:image/png;base64," + base64.b64encode(open("tests/data/geometry.png", "rb").read()).decode()
json.dump(req, open(sys.argv[1], "w"))
PYEOF
for b in cpu cuda; do
    timeout 60 "$V" score --model "$W/tiny" --backend $b "$W/req.json" >"$W/$b.json" 2>"$W/$b.log" ||
        { echo "serve_check: vprm score --backend $b failed:"; tail -n 5 "$W/$b.log"; fail=1; }
done
compare() { # A.json B.json label
    LD_LIBRARY_PATH= "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def scores(r):
    return [s for res in r["results"] for s in res["step_scores"]]
sa, sb = scores(a), scores(b)
d = max(abs(x - y) for x, y in zip(sa, sb)) if len(sa) == len(sb) and sa else float("inf")
print(f"serve_check: {sys.argv[3]}: {len(sa)} step scores, max |diff| {d:.4f}")
sys.exit(0 if d <= 0.02 else 1)
PYEOF
}
[ $fail = 0 ] && { compare "$W/cpu.json" "$W/cuda.json" "vprm score, cuda vs cpu" || fail=1; }
"$V" serve --model "$W/tiny" --backend cuda --port 18123 >"$W/serve.log" 2>&1 &
pid=$!
ready=0
for _ in $(seq 1 100); do
    if curl -sf http://127.0.0.1:18123/ready >/dev/null 2>&1; then ready=1; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
done
if [ $ready = 1 ]; then
    curl -s http://127.0.0.1:18123/v1/score -H 'Content-Type: application/json' \
        -d @"$W/req.json" >"$W/http.json"
    compare "$W/cpu.json" "$W/http.json" "POST /v1/score on the cuda backend vs vprm score cpu" || fail=1
    curl -s http://127.0.0.1:18123/metrics | grep -E "^vprm_(requests|passes|tokens)" | head -n 6
else
    echo "serve_check: the server never became ready:"; tail -n 8 "$W/serve.log"; fail=1
fi
kill -TERM $pid 2>/dev/null
wait $pid 2>/dev/null
grep -E "cuda backend|listening|drain" "$W/serve.log" | head -n 4
exit $fail
