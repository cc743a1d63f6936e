#!/bin/sh
# The CUDA backend behind the product's own entry points, on the GPU machine (after
# tests/gpu/pack.sh, carry [".gpu"]; about a minute):
#   1. `vprm score --backend cuda` against `--backend cpu` on a tiny random model (the model
#      card's example request, tests/data): largest step-score difference;
#   2. `vprm serve --backend cuda` on it: POST /v1/score over HTTP, same scores;
#   3. the full 8B shape with no checkpoint: `vprm mkmodel --scale 8b --config-only` (the
#      real InternLM2 tokenizer, .gpu/tokenizer) and `vprm serve --random-weights 1`:
#      time to ready, POST /v1/score latency, scores in range;
#      then GET /v1/models (memory) and, with LOAD_ARGS, HTTP load on it (vprm bench --url);
#   4. `vprm bench --random-weights 1` on the 8B shape: W1..W4 through the engine, then W4
#      with the prefix KV cache one request per pass (line W4r);
#   5. CKPT=1: a real 16 GB checkpoint (`vprm mkmodel --scale 8b` on this disk), its read
#      time, and `vprm serve` from it: time to ready (PERF.md: within 2x the read time).
# Exit 1 when a difference is over 0.02 or a stage fails.
#     sh tests/gpu/serve_check.sh
set -u
G=$PWD/.gpu
W=/tmp/vprm-serve
PY=${PYTHON:-python3}
V=$G/bin/vprm
BACKEND=${BACKEND:-cuda} # BACKEND=cpu: a dry run of this script's plumbing on a CPU machine
rm -rf "$W" && mkdir -p "$W"
pid=
# a killed run must not leave a server holding the GPU or 16 GB on the disk
trap 'kill -TERM $pid 2>/dev/null; rm -rf "$W/m8b"' EXIT
trap 'exit 1' INT TERM
export LD_LIBRARY_PATH="$G/lib:/usr/local/cuda/lib64"
fail=0
"$V" mkmodel --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer --out "$W/tiny" >/dev/null || exit 1
"$V" mkmodel --scale 8b --config-only --tokenizer "$G/tokenizer" --out "$W/cfg8b" || exit 1
LD_LIBRARY_PATH= "$PY" - "$W/req.json" <<'PYEOF'
import base64, json, sys
req = json.load(open("tests/data/geometry_request.json"))
req["image"] = "data:image/png;base64," + base64.b64encode(open("tests/data/geometry.png", "rb").read()).decode()
json.dump(req, open(sys.argv[1], "w"))
PYEOF
http() { # URL BODY|- OUT: GET (BODY -) or POST JSON; exit 1 unless 200; prints nothing
    LD_LIBRARY_PATH= "$PY" - "$@" <<'PYEOF'
import sys, urllib.request
url, body, out = sys.argv[1:4]
data = None if body == "-" else open(body, "rb").read()
req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=300) as r:
        open(out, "wb").write(r.read())
except Exception as e:
    open(out, "w").write(str(e))
    sys.exit(1)
PYEOF
}
compare() { # A.json B.json label: step scores of B vs A (A = - : range check of B only)
    LD_LIBRARY_PATH= "$PY" - "$@" <<'PYEOF'
import json, sys
def scores(p):
    return [s for res in json.load(open(p))["results"] for s in res["step_scores"]]
sb = scores(sys.argv[2])
if sys.argv[1] == "-":
    ok = bool(sb) and all(0.0 <= s <= 1.0 for s in sb)
    print(f"serve_check: {sys.argv[3]}: {len(sb)} step scores, {min(sb):.3f}..{max(sb):.3f}")
    sys.exit(0 if ok else 1)
sa = scores(sys.argv[1])
d = max(abs(x - y) for x, y in zip(sa, sb)) if len(sa) == len(sb) and sa else float("inf")
print(f"serve_check: {sys.argv[3]}: {len(sa)} step scores, max |diff| {d:.4f}")
sys.exit(0 if d <= 0.02 else 1)
PYEOF
}
serve() { # LABEL PORT ARGS...: start, wait for /ready (180 s), POST the request into $W/LABEL.json
    label=$1 port=$2
    shift 2
    t0=$(date +%s.%N)
    "$V" serve --backend "$BACKEND" --port "$port" "$@" >"$W/$label.log" 2>&1 &
    pid=$!
    ready=0
    for _ in $(seq 1 900); do
        if http "http://127.0.0.1:$port/ready" - "$W/ready.txt"; then ready=1; break; fi
        kill -0 $pid 2>/dev/null || break
        sleep 0.2
    done
    t1=$(date +%s.%N)
    if [ $ready = 1 ]; then
        http "http://127.0.0.1:$port/v1/score" "$W/req.json" "$W/$label.json" || ready=0
        t2=$(date +%s.%N)
        http "http://127.0.0.1:$port/v1/score" "$W/req.json" "$W/$label.json" || ready=0
        t3=$(date +%s.%N)
        echo "serve_check: $label: ready after $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s; POST /v1/score $(awk "BEGIN{printf \"%.0f\", ($t2 - $t1) * 1000}") ms, again $(awk "BEGIN{printf \"%.0f\", ($t3 - $t2) * 1000}") ms"
        http "http://127.0.0.1:$port/metrics" - "$W/metrics.txt" && grep -E "^vprm_(requests_total|passes_total|weights_bytes|working_memory_bytes|gpu_memory)" "$W/metrics.txt" | head -n 8
        http "http://127.0.0.1:$port/v1/models" - "$W/models.json" &&
            LD_LIBRARY_PATH= "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1]))["models"][0]; print("serve_check: /v1/models:", m["device"], json.dumps(m["memory"]))' "$W/models.json"
        # --prefix-cache-bytes auto (the default): half of what was free when it was sized,
        # which is at least what is free now plus the cache itself; or 2^20 rows
        LD_LIBRARY_PATH= "$PY" - "$W/models.json" "$label" <<'PYEOF' || prefix_auto_failed=1
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]["memory"]
c, rows, free = m["prefix_cache_bytes"], m["prefix_cache_rows"], m.get("device_free_bytes", 0)
row = c // rows if rows else 0
ok = rows > 0 and (rows == 1 << 20 or c + row >= (free + c) // 2)
print(f"serve_check: {sys.argv[2]}: prefix cache auto {c / 2**30:.2f} GiB ({rows} rows), "
      f"{free / 2**30:.2f} GiB free after it: {'ok' if ok else 'NOT half of the free memory'}")
sys.exit(0 if ok else 1)
PYEOF
        if [ -n "${LOAD:-}" ]; then
            echo "== HTTP load on $label: vprm bench --url ... $LOAD"
            # shellcheck disable=SC2086
            timeout 120 "$V" bench --url "http://127.0.0.1:$port" $LOAD >"$W/load.txt" 2>&1 ||
                { echo "serve_check: the HTTP load failed (exit $?)"; load_failed=1; }
            grep -v "^20..-..-" "$W/load.txt" | tail -n 14
        fi
    fi
    [ $ready = 1 ] || { echo "serve_check: $label: the server did not answer:"; tail -n 8 "$W/$label.log"; }
    kill -TERM $pid 2>/dev/null
    wait $pid 2>/dev/null
    grep -E "cuda backend:|random weights|loaded in|warm-up" "$W/$label.log" | cut -c 1-260 | head -n 4
    [ $ready = 1 ]
}

prefix_auto_failed=0
for b in cpu $BACKEND; do
    timeout 60 "$V" score --model "$W/tiny" --backend $b "$W/req.json" >"$W/$b.json" 2>"$W/$b.log" ||
        { echo "serve_check: vprm score --backend $b failed:"; tail -n 5 "$W/$b.log"; fail=1; }
done
[ $fail = 0 ] && { compare "$W/cpu.json" "$W/$BACKEND.json" "vprm score, $BACKEND vs cpu (tiny)" || fail=1; }
if serve tiny 18123 --model "$W/tiny"; then
    compare "$W/cpu.json" "$W/tiny.json" "POST /v1/score, $BACKEND server vs vprm score cpu (tiny)" || fail=1
else
    fail=1
fi
load_failed=0
if LOAD=${LOAD_ARGS:-} serve random8b 18124 --model "$W/cfg8b" --random-weights 1; then
    compare - "$W/random8b.json" "POST /v1/score, 8B shape, random weights" || fail=1
else
    fail=1
fi
[ $load_failed = 0 ] || fail=1
[ $prefix_auto_failed = 0 ] || fail=1
echo "== vprm bench, 8B shape, random weights (seed 1)"
timeout 150 "$V" bench --model "$W/cfg8b" --backend "$BACKEND" --random-weights 1 --workload all \
    --repeat 3 >"$W/bench.txt" 2>&1 || { echo "serve_check: vprm bench failed (exit $?)"; fail=1; }
grep -v "^20..-..-" "$W/bench.txt" | tail -n 30
echo "== vprm bench W4 with the prefix KV cache (W4r: one request per pass, an RL loop's way)"
timeout 90 "$V" bench --model "$W/cfg8b" --backend "$BACKEND" --random-weights 1 --workload W4 \
    --repeat 1 --prefix-cache 1G >"$W/bench_w4.txt" 2>&1 || { echo "serve_check: vprm bench W4r failed (exit $?)"; fail=1; }
grep -v "^20..-..-" "$W/bench_w4.txt" | tail -n 5
if [ "${CKPT:-0}" = 1 ]; then
    echo "== a real 16 GB checkpoint on this disk"
    t0=$(date +%s.%N)
    if timeout 240 "$V" mkmodel --scale 8b --seed 1 --tokenizer "$G/tokenizer" --out "$W/m8b" >"$W/mk8b.log" 2>&1; then
        t1=$(date +%s.%N)
        du -sh "$W/m8b" | cut -f1 | sed 's/^/serve_check: checkpoint size /'
        echo "serve_check: written in $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s"
        sync
        (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null && echo "serve_check: page cache dropped" ||
            echo "serve_check: page cache NOT dropped (reads below may come from memory)"
        t0=$(date +%s.%N)
        cat "$W"/m8b/*.safetensors >/dev/null
        t1=$(date +%s.%N)
        echo "serve_check: reading the shards: $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s (PERF.md: ready within 2x that)"
        (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null
        if serve ckpt8b 18125 --model "$W/m8b"; then
            compare - "$W/ckpt8b.json" "POST /v1/score, 8B checkpoint" || fail=1
        else
            fail=1
        fi
    else
        echo "serve_check: mkmodel --scale 8b failed:"
        tail -n 4 "$W/mk8b.log"
        fail=1
    fi
    rm -rf "$W/m8b"
fi
exit $fail
