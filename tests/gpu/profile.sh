#!/bin/sh
# A measurement call for the GPU machine (after tests/gpu/pack.sh, carry [".gpu"]):
# W1 at the 8B shape with the CUDA backend's phase profile (VPRM_CUDA_PROFILE=1: time and
# TFLOP/s per phase, summed over layers), then the random-weight conditioning sweep
# (init_sweep.py: fp32 vs bf16 margins per candidate rule). About a minute. NCU=1 adds
# Nsight Compute's summary of one language attention launch.
#     sh tests/gpu/profile.sh
set -u
G=$PWD/.gpu
W=/tmp/vprm-prof
PY=${PYTHON:-python3}
rm -rf "$W" && mkdir -p "$W"
export LD_LIBRARY_PATH="$G/lib:/usr/local/cuda/lib64"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "packed from commit: $(cat "$G/COMMIT" 2>/dev/null || echo unknown)"
echo "== W1 profile"
VPRM_CUDA_PROFILE=1 timeout 60 "$G/bin/gpu_w1" --batch "$G/w1.batch" --out "$W" --seed 1 --reps 2 2>&1 |
    sed 's/; /;\n    /g'
echo "== init sweep"
PYTHONUNBUFFERED=1 LD_LIBRARY_PATH= timeout 150 "$PY" tests/gpu/init_sweep.py --dir "$W" \
    --batch "$G/w1.batch" --lib "$G/bin/libvprm_randw.so" --seed 1 ${SWEEP_ARGS:-}
if [ "${NCU:-0}" = 1 ]; then
    sh tests/gpu/ncu_attention.sh "$G" "$W"
fi
