#!/bin/sh
# Nsight Compute on one attention launch of each tower during W1 at the 8B shape (and
# the language launch again with VPRM_CUDA_ATTENTION=$NCU_ALT, default wgmma2o): the
# speed of light of each unit, the pipes' use (tensor, FMA, MUFU), the warps' stall
# reasons, occupancy and the launch's resources: what bounds the kernel. Run by run.sh
# (stage w1_ncu) and profile.sh; needs ncu (the GPU machine's Firecracker runtime reads
# the counters; --clock-control none leaves the card's clocks alone).
#     sh tests/gpu/ncu_attention.sh .gpu OUT_DIR
set -u
G=${1:?usage: ncu_attention.sh GPU_DIR OUT_DIR}
W=${2:?usage: ncu_attention.sh GPU_DIR OUT_DIR}
command -v ncu >/dev/null || { echo "ncu_attention: no ncu on this machine"; exit 0; }
mkdir -p "$W"
# per forward: the vision tower's 24 launches, then the language model's 31 (its last
# layer runs the score-row kernel): skip 10 lands in the vision tower, 40 in the language;
# the default kernels (the warp-specialised TMA ones on Hopper), then $NCU_ALT
for run in default:vision:10 default:language:40 ${NCU_ALT:-wgmma2o}:language:40; do
    attention=${run%%:*} rest=${run#*:}
    echo "== ncu: one ${rest%%:*} attention launch ($attention)"
    [ "$attention" = default ] && attention=
    VPRM_CUDA_ATTENTION=$attention timeout 50 ncu \
        --kernel-name regex:'attn_(fast|wgmma|tma)_kernel' --launch-skip "${rest#*:}" \
        --launch-count 1 --clock-control none --section SpeedOfLight \
        --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy \
        --section LaunchStats --section MemoryWorkloadAnalysis \
        "$G/bin/gpu_w1" --batch "$G/w1.batch" --out "$W" --seed 1 --reps 1 --label ours_ncu 2>&1 |
        grep -v "^==PROF==" | grep -v "^  *$" | tail -n 90
done
