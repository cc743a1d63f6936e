#!/bin/sh
# cuBLASLt's candidates timed per shape class (the default, VPRM_CUDA_GEMM_TUNE=8) against
# the heuristic's first pick (VPRM_CUDA_GEMM_TUNE=0), on the GPU machine (after
# tests/gpu/pack.sh, carry [".gpu"]; about 90 s): W1 through gpu_w1 (5 timed runs each, the
# two runs' logits compared), then the 8B server (`vprm serve --random-weights 1`) under
# W3 from 32 clients for 15 s with each setting (requests/s, p50, MFU). Exit 1 when a run
# fails or the logits differ by more than a rounding.
#     sh tests/gpu/gemm_tune_check.sh
set -u
G=$PWD/.gpu
W=/tmp/vprm-tune
PY=${PYTHON:-python3}
V=$G/bin/vprm
rm -rf "$W" && mkdir -p "$W"
pid=
trap 'kill -TERM $pid 2>/dev/null' EXIT
trap 'exit 1' INT TERM
export LD_LIBRARY_PATH="$G/lib:/usr/local/cuda/lib64"
fail=0
for t in 8 0; do
    VPRM_CUDA_GEMM_TUNE=$t timeout 120 "$G/bin/gpu_w1" --batch "$G/w1.batch" --out "$W" --seed 1 \
        --reps 5 --label "tune$t" >"$W/w1_$t.log" 2>&1 || { echo "gemm_tune_check: gpu_w1 tune $t failed"; fail=1; }
    grep -E "median" "$W/w1_$t.log" | tail -n 1 | cut -c 1-240
done
grep -c "cuBLASLt tuned" "$W/w1_8.log" | sed 's/^/gemm_tune_check: shape classes timed in the W1 run: /'
LD_LIBRARY_PATH= "$PY" - "$W/tune8_logits.f32" "$W/tune0_logits.f32" <<'PYEOF' || fail=1
import struct, sys
def margins(p):
    raw = open(p, "rb").read()
    v = struct.unpack("<%df" % (len(raw) // 4), raw)
    return [v[i] - v[i + 1] for i in range(0, len(v), 2)]
ma, mb = margins(sys.argv[1]), margins(sys.argv[2])
num = sum((x - y) ** 2 for x, y in zip(ma, mb)) ** 0.5
den = sum(y * y for y in mb) ** 0.5
rel = num / den if den else float("inf")
print("gemm_tune_check: W1 margins, tuned vs heuristic picks: relative difference %.2e over %d scores" % (rel, len(ma)))
sys.exit(0 if ma and len(ma) == len(mb) and rel < 0.01 else 1)
PYEOF
"$V" mkmodel --scale 8b --config-only --tokenizer "$G/tokenizer" --out "$W/m" >/dev/null || exit 1
port=18140
for t in 8 0; do
    VPRM_CUDA_GEMM_TUNE=$t "$V" serve --model "$W/m" --random-weights 1 --backend cuda --host 127.0.0.1 \
        --port $port >"$W/serve.out" 2>"$W/serve_$t.log" &
    pid=$!
    i=0
    until [ "$(LD_LIBRARY_PATH= curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/ready)" = 200 ]; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then
            echo "gemm_tune_check: the server did not become ready"; tail -n 5 "$W/serve_$t.log"; exit 1
        fi
        sleep 0.2
    done
    timeout 90 "$V" bench --url http://127.0.0.1:$port --workload W3 --clients 32 --seconds 15 \
        >"$W/w3_$t.txt" 2>&1 || { echo "gemm_tune_check: W3 tune $t failed"; fail=1; }
    echo "== W3, 32 clients, 15 s, VPRM_CUDA_GEMM_TUNE=$t ($(grep -c 'cuBLASLt tuned' "$W/serve_$t.log") classes timed)"
    grep -E "^requests:|^throughput|^latency|^useful" "$W/w3_$t.txt" | sed 's/^/  /'
    kill -TERM $pid 2>/dev/null
    wait $pid 2>/dev/null
    pid=
    port=$((port + 1))
done
exit $fail
