#!/bin/sh
# The wgmma attention's products must stay asynchronous: ptxas keeps the results right
# but silently serialises the products when a register they read is written while they
# run (its notes C7513, C7519, "Potential Performance Loss"), which costs speed no CPU
# test would see. Both attention files (k_attention_wgmma.cu, k_attention_tma.cu) and the
# fused MLP (k_mlp_gated.cu, whose 128 accumulators a thread must not spill). make
# cuda-check runs this; it needs nvcc, no GPU.
#     sh tests/gpu/ptxas_check.sh
set -eu
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC=${NVCC:-$CUDA_HOME/bin/nvcc}
CUDA_ARCH=${CUDA_ARCH:-sm_90a}
if [ "$CUDA_ARCH" != sm_90a ]; then
    echo "ptxas_check: skipped (CUDA_ARCH=$CUDA_ARCH has no wgmma kernel)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$NVCC" -std=c++17 -O3 -arch=sm_90a -I. -Xptxas -v -c engine/cuda/k_attention_wgmma.cu \
    -o "$tmp/k.o" >"$tmp/ptxas.txt" 2>&1
"$NVCC" -std=c++17 -O3 -arch=sm_90a -I. -Xptxas -v -c engine/cuda/k_attention_tma.cu \
    -o "$tmp/t.o" >>"$tmp/ptxas.txt" 2>&1
"$NVCC" -std=c++17 -O3 -arch=sm_90a -I. -Xptxas -v -c engine/cuda/k_mlp_gated.cu \
    -o "$tmp/m.o" >>"$tmp/ptxas.txt" 2>&1
kernels=$(grep -c "Compiling entry function '_Z17attn_wgmma_kernel" "$tmp/ptxas.txt" || true)
tma=$(grep -c "Compiling entry function '_Z15attn_tma_kernel" "$tmp/ptxas.txt" || true)
mlp=$(grep -c "Compiling entry function '_Z16gated_mlp_kernel" "$tmp/ptxas.txt" || true)
if grep -q "Potential Performance Loss\|is injected\|C751[0-9]" "$tmp/ptxas.txt"; then
    echo "ptxas_check: FAIL: ptxas serialises wgmma products:"
    grep "Potential Performance Loss\|is injected\|C751[0-9]" "$tmp/ptxas.txt" | cut -c1-240
    exit 1
fi
if [ "$kernels" -ne 16 ] || [ "$tma" -ne 4 ] || [ "$mlp" -ne 4 ]; then
    echo "ptxas_check: FAIL: expected 16 wgmma attention kernels (bf16 and fp16, head 64 and 128, plain and overlapped, 1 or 2 heads), 4 TMA ones (bf16 and fp16, head 128 x 2 or 64 x 1) and 4 fused MLP ones (bf16 and fp16, single blocks and pairs), ptxas compiled $kernels, $tma and $mlp"
    exit 1
fi
spills=$(grep -A2 "Compiling entry function '_Z17attn_wgmma_kernel\|Compiling entry function '_Z15attn_tma_kernel\|Compiling entry function '_Z16gated_mlp_kernel" "$tmp/ptxas.txt" |
    grep -v " 0 bytes spill stores, 0 bytes spill loads" | grep -c "spill" || true)
if [ "$spills" -ne 0 ]; then
    echo "ptxas_check: FAIL: $spills wgmma attention kernels spill registers"
    grep -A3 "Compiling entry function '_Z17attn_wgmma_kernel\|Compiling entry function '_Z15attn_tma_kernel\|Compiling entry function '_Z16gated_mlp_kernel" "$tmp/ptxas.txt" | cut -c1-200
    exit 1
fi
# a consumer's release of a stage to its pair must not fence at cluster scope: with
# mbarrier.arrive.release.cluster the pairs ran at 416 TFLOP/s against the single blocks'
# 764-775 (H200, 2026-11-28; the compiled code had two GPU-wide fences per release)
"$NVCC" -std=c++17 -O3 -arch=sm_90a -I. -ptx engine/cuda/k_mlp_gated.cu -o "$tmp/m.ptx"
if grep -q "mbarrier.arrive.release.cluster" "$tmp/m.ptx"; then
    echo "ptxas_check: FAIL: k_mlp_gated.cu releases stages with a cluster-scope fence:"
    grep -n "mbarrier.arrive.release.cluster" "$tmp/m.ptx" | head -4
    exit 1
fi
echo "ptxas_check: $kernels wgmma attention kernels, $tma TMA ones and $mlp fused MLP ones, products asynchronous, no spills"
