#!/bin/sh
# The GPU checks' CPU-machine self-test (make cuda-check runs it): on a small request
# (W3's request of seed 9 with short steps: 3 tiles, 4 responses sharing a prefix; tiny
# shape) the PyTorch reference of tests/gpu
# (torch_ref.py: fp32 oracle, reference way, careful way) must agree with the fp32 C CPU
# backend driven through gpu_w1 on the same batch file and the same seeded weights, so
# the reference the GPU session trusts is itself checked, on every build.
#   sh tests/gpu/check_cpu.sh BUILD_DIR      (the CUDA build: BUILD_DIR/vprm, BUILD_DIR/gpu)
set -eu
B=${1:?usage: check_cpu.sh BUILD_DIR}
PYTHON=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/out"
"$B/vprm" mkmodel --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer \
    --out "$tmp/model" >/dev/null
"$B/gpu/mkbatch" --model "$tmp/model" --out "$tmp/w1.batch" --workload W3 --seed 9 --words 6
"$B/gpu/gpu_w1" --batch "$tmp/w1.batch" --out "$tmp/out" --scale tiny --backend cpu --reps 1 \
    2>/dev/null
"$PYTHON" tests/gpu/torch_ref.py --dir "$tmp/out" --batch "$tmp/w1.batch" \
    --lib "$B/gpu/libvprm_randw.so" --device cpu --compute fp32 --reps 0 --tol 1e-4
# the plain weight rule reaches both generators (C host model, libvprm_randw.so)
"$B/gpu/gpu_w1" --batch "$tmp/w1.batch" --out "$tmp/out" --scale tiny --backend cpu --reps 1 \
    --rule plain 2>/dev/null
"$PYTHON" tests/gpu/torch_ref.py --dir "$tmp/out" --batch "$tmp/w1.batch" \
    --lib "$B/gpu/libvprm_randw.so" --device cpu --compute fp32 --reps 0 --tol 1e-4 --rule plain
echo "check_cpu: the PyTorch reference agrees with the CPU backend"
