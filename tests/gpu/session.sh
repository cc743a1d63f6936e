#!/bin/sh
# A whole GPU session in one device call (after tests/gpu/pack.sh; carry [".gpu"];
# timeout_s 600): run.sh with the quick settings (no extra weight draws, no Nsight Compute,
# one alternative attention kernel), then serve_check with the W3 load over HTTP, then
# priority_check, each under a time limit so a hang in one still leaves the others'
# figures. Prints run.sh's summary and the load lines; everything else lands in $OUT
# (run.txt, serve.txt, prio.txt and run.sh's files).
#     sh tests/gpu/session.sh
set -u
OUT=${OUT:-/tmp/vprm-session}
mkdir -p "$OUT"
PARITY_SEEDS= NCU=0 ALT=${ALT:-wgmma2o} timeout 300 sh tests/gpu/run.sh >"$OUT/run.txt" 2>&1
echo "run.sh: exit $?"
sed -n '/==== vprm/,$p' "$OUT/run.txt"
grep -h "bench gated mlp" /tmp/vprm-gpu/ops.log 2>/dev/null
grep -h "cuda profile: 1" /tmp/vprm-gpu/w1_profile.log /tmp/vprm-gpu/w1_mlp_profile.log 2>/dev/null |
    cut -c1-400
LOAD_ARGS="--workload W3 --clients 32 --seconds 15" timeout 120 sh tests/gpu/serve_check.sh \
    >"$OUT/serve.txt" 2>&1
echo "serve_check: exit $?"
grep -h "requests:\|throughput\|latency ms\|useful compute\|^W[1-4]" "$OUT/serve.txt" | cut -c1-300
timeout 150 sh tests/gpu/priority_check.sh >"$OUT/prio.txt" 2>&1
echo "priority_check: exit $?"
tail -n 14 "$OUT/prio.txt"
