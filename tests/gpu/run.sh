#!/bin/sh
# Everything a GPU session checks, in one call (121 s on an H200 on 2026-11-27, with two
# extra weight seeds, five attention alternatives and Nsight Compute). The stage limits are
# ceilings for hangs: they sum to about 990 s with two ALT kernels, two PARITY_SEEDS and
# the profile, plus up to 150 s of per-test reruns after a crash in gpu_ops, and 160 s of
# Nsight Compute (w1_ncu); PARITY_SEEDS= PROFILE=0 NCU=0 ALT=wgmma2o bring them to about
# 600 s. A device call allows 600 s: a run that hangs in more than one stage is cut short:
#     sh tests/gpu/run.sh          (device tool: carry [".gpu"], made by tests/gpu/pack.sh)
# Stages, each under its own time limit so a later one still runs when one fails or hangs:
#   ops        gpu_ops: every kernel and the cuBLASLt wrapper vs its CPU twin
#   e2e        gpu_e2e: whole forwards on tiny models vs the fp32 CPU backend
#   w1         gpu_w1: the 8B shape, seeded weights generated on the GPU, W1; 5 timed runs
#              (the defaults: fp16 activations, bf16 after an overflow; the TMA attention)
#   w1_simple  the same with the simple attention kernel (one run: parity cross-check)
#   w1_bf16    the same with VPRM_CUDA_ACTIVATIONS=bf16 (parity and time)
#   w1_f16l    the same with VPRM_CUDA_ACTIVATIONS=fp16-llm (fp16 language model, bf16 ViT)
#   w1_tune    the same with VPRM_CUDA_GEMM_TUNE=8 (cuBLASLt's candidates timed per shape)
#   w1_mlp     the same with VPRM_CUDA_MLP=cublas (the default on Hopper, fused: w1 | w3
#              and the SiLU-gate in one kernel, k_mlp_gated.cu; cublas: cuBLASLt's product,
#              then the SiLU-gate kernel), timed; w1_mlp2 with fused2 (the fused kernel's
#              blocks in pairs that share w13's copies)
#   w1_alt...  the same with each VPRM_CUDA_ATTENTION in $ALT (default "wgmma2o 32x2x64":
#              the overlapped wgmma kernel without TMA, the mma.sync kernel, which is bf16
#              only and so runs with VPRM_CUDA_ACTIVATIONS=bf16), timed
#   torch      torch_ref.py: fp32 oracle on the same weights, reference way, careful way
#   w1_plain, torch_plain: parity again on PERF.md's plain weights (all 0.02; one run)
#   w1_seedN, torch_seedN: parity on other draws of the weights (PARITY_SEEDS, "2 3")
#   w1_profile the default kernels once more with VPRM_CUDA_PROFILE=1 (per-phase times)
#   w1_ncu     Nsight Compute on one attention launch of each tower (ncu_attention.sh)
# Then prints the table (tests/gpu/summary.py). Scratch in /tmp/vprm-gpu; $OUT (when set)
# receives summary.txt, logs.txt and the result JSON files.
set -u
W=/tmp/vprm-gpu
G=$PWD/.gpu
PY=${PYTHON:-python3}
if [ ! -x "$G/bin/gpu_ops" ] || [ ! -f "$G/w1.batch" ]; then
    echo "run.sh: .gpu/ is missing or incomplete: run 'sh tests/gpu/pack.sh' on the CPU machine"
    echo "        and carry .gpu (the GPU machine has none of the project's C libraries)"
    exit 2
fi
rm -rf "$W"
mkdir -p "$W/w1" "$W/w1_plain"
# CUDA libraries: the machine's toolkit, else the ones pip installed for PyTorch
CUDA_LIBS=/usr/local/cuda/lib64
if LD_LIBRARY_PATH="$G/lib:$CUDA_LIBS" ldd "$G/bin/gpu_ops" | grep -q "not found"; then
    nv=$($PY -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
    if [ -n "$nv" ]; then
        for d in $(find "$nv" \( -name 'libcublasLt.so*' -o -name 'libcudart.so*' \) -exec dirname {} \; | sort -u); do
            CUDA_LIBS="$CUDA_LIBS:$d"
        done
    fi
    LD_LIBRARY_PATH="$G/lib:$CUDA_LIBS" ldd "$G/bin/gpu_ops" | grep "not found" || true
fi
(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader || echo unknown) >"$W/device.txt" 2>&1
echo "device: $(cat "$W/device.txt")"
echo "packed from commit: $(cat "$G/COMMIT" 2>/dev/null || echo unknown) (rerun tests/gpu/pack.sh after any change)"

stage() { # name limit_s command...: our binaries see .gpu/lib, Python does not
    name=$1 limit=$2
    shift 2
    echo "== $name"
    start=$(date +%s)
    case $1 in
    "$PY") timeout "$limit" "$@" >"$W/$name.log" 2>&1 ;;
    *) LD_LIBRARY_PATH="$G/lib:$CUDA_LIBS" timeout "$limit" "$@" >"$W/$name.log" 2>&1 ;;
    esac
    rc=$?
    echo "$rc" >"$W/$name.rc"
    tail -n 60 "$W/$name.log"
    echo "== $name: exit $rc after $(($(date +%s) - start)) s"
}

# SM clock and power every 50 ms during a stage (summary.py reads $W/NAME.clocks): at the
# card's power limit a pass runs below its top clock, whatever its kernels do
clocks_pid=
clocks_start() {
    command -v nvidia-smi >/dev/null || return 0
    nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,power.draw,power.limit,clocks_event_reasons.active \
        --format=csv,noheader,nounits -lms 50 >"$W/$1.clocks" 2>&1 &
    clocks_pid=$!
}
clocks_stop() {
    [ -n "$clocks_pid" ] || return 0
    kill "$clocks_pid" 2>/dev/null
    wait "$clocks_pid" 2>/dev/null
    clocks_pid=
}

stage ops 90 "$G/bin/gpu_ops"
# a crash (exit 2) or hang loses the CUDA context and every later test with it: rerun each
# test alone, and the first one that crashes under compute-sanitizer (source lines: -lineinfo)
if [ "$(cat "$W/ops.rc")" -ge 2 ]; then
    sanitized=0 t0=$(date +%s)
    LD_LIBRARY_PATH="$G/lib:$CUDA_LIBS" "$G/bin/gpu_ops" --list >"$W/ops.list" 2>&1
    while IFS= read -r t; do
        [ $(($(date +%s) - t0)) -lt 90 ] || { echo "ops alone: out of time before: $t"; break; }
        LD_LIBRARY_PATH="$G/lib:$CUDA_LIBS" timeout 10 "$G/bin/gpu_ops" "$t" >"$W/one.log" 2>&1
        rc=$?
        echo "ops alone: exit $rc: $t"
        [ $rc = 0 ] || tail -n 6 "$W/one.log"
        if [ $rc -ge 2 ] && [ $sanitized = 0 ] && command -v compute-sanitizer >/dev/null; then
            sanitized=1
            LD_LIBRARY_PATH="$G/lib:$CUDA_LIBS" timeout 40 compute-sanitizer --print-limit 4 \
                "$G/bin/gpu_ops" "$t" 2>&1 | head -n 60
        fi
    done <"$W/ops.list" | tee "$W/ops_alone.log"
fi
stage e2e 60 "$G/bin/gpu_e2e"
if [ "$(cat "$W/e2e.rc")" -ge 2 ] && [ "$(cat "$W/e2e.rc")" != 124 ] && command -v compute-sanitizer >/dev/null; then
    echo "== e2e under compute-sanitizer"
    LD_LIBRARY_PATH="$G/lib:$CUDA_LIBS" timeout 60 compute-sanitizer --print-limit 4 "$G/bin/gpu_e2e" 2>&1 |
        grep -v "^PASS" | head -n 60 | tee "$W/e2e_sanitizer.log"
fi
clocks_start w1
stage w1 90 "$G/bin/gpu_w1" --batch "$G/w1.batch" --out "$W/w1" --seed 1 --reps 5
clocks_stop
stage w1_simple 45 env VPRM_CUDA_ATTENTION=simple "$G/bin/gpu_w1" --batch "$G/w1.batch" \
    --out "$W/w1" --seed 1 --reps 1 --label ours_simple
stage w1_bf16 45 env VPRM_CUDA_ACTIVATIONS=bf16 "$G/bin/gpu_w1" --batch "$G/w1.batch" \
    --out "$W/w1" --seed 1 --reps 3 --label ours_bf16
stage w1_f16l 45 env VPRM_CUDA_ACTIVATIONS=fp16-llm "$G/bin/gpu_w1" --batch "$G/w1.batch" \
    --out "$W/w1" --seed 1 --reps 3 --label ours_f16l
# cuBLASLt's candidates timed per product shape (its log lines give each shape's rates)
stage w1_tune 30 env VPRM_CUDA_GEMM_TUNE=8 "$G/bin/gpu_w1" --batch "$G/w1.batch" \
    --out "$W/w1" --seed 1 --reps 3 --label ours_tune
# the MLP's first half through cuBLASLt and the SiLU-gate kernel (the default on Hopper
# is the fused kernel, k_mlp_gated.cu)
stage w1_mlp 45 env VPRM_CUDA_MLP=cublas "$G/bin/gpu_w1" --batch "$G/w1.batch" \
    --out "$W/w1" --seed 1 --reps 5 --label ours_mlp
# ... and through the fused kernel in pairs of blocks sharing w13's copies (fused2)
stage w1_mlp2 45 env VPRM_CUDA_MLP=fused2 "$G/bin/gpu_w1" --batch "$G/w1.batch" \
    --out "$W/w1" --seed 1 --reps 5 --label ours_mlp2
# the other attention kernels on the same W1 (timing and parity; ALT= lists them: by
# default the overlapped wgmma kernel without TMA and the mma.sync kernel, the warp-
# specialised TMA one being the default on Hopper; gpu_ops benches every variant)
ALT=${ALT:-wgmma2o 32x2x64}
alt_i=0
for a in $ALT; do
    alt_i=$((alt_i + 1))
    name=w1_alt
    [ $alt_i = 1 ] || name=w1_alt$alt_i
    act=auto
    case $a in *x*x*) act=bf16 ;; esac # the mma.sync kernel is bf16 only
    stage $name 30 env VPRM_CUDA_ATTENTION="$a" VPRM_CUDA_ACTIVATIONS=$act "$G/bin/gpu_w1" \
        --batch "$G/w1.batch" --out "$W/w1" --seed 1 --reps 3 --label "ours_alt_$a"
done
# without our W1 logits there is no parity to measure: time the PyTorch runs once only
torch_reps=3
[ "$(cat "$W/w1.rc")" = 0 ] || torch_reps=1
clocks_start torch
stage torch 135 "$PY" tests/gpu/torch_ref.py --dir "$W/w1" --batch "$G/w1.batch" \
    --lib "$G/bin/libvprm_randw.so" --seed 1 --reps "$torch_reps"
clocks_stop
# PERF.md's own weights (normal(0, 0.02), only the head rows scaled): parity there too
stage w1_plain 30 "$G/bin/gpu_w1" --batch "$G/w1.batch" --out "$W/w1_plain" --seed 1 --reps 1 \
    --rule plain
stage torch_plain 90 "$PY" tests/gpu/torch_ref.py --dir "$W/w1_plain" --batch "$G/w1.batch" \
    --lib "$G/bin/libvprm_randw.so" --seed 1 --reps 0 --rule plain
# other draws of the weights (same request): how far the parity figure moves with the draw
# of bf16 rounding noise, ours and PyTorch's bf16 forward (PARITY_SEEDS="" skips them)
for s in ${PARITY_SEEDS-2 3}; do
    mkdir -p "$W/w1_seed$s"
    stage w1_seed$s 30 "$G/bin/gpu_w1" --batch "$G/w1.batch" --out "$W/w1_seed$s" --seed "$s" --reps 1
    stage w1_bf16_seed$s 30 env VPRM_CUDA_ACTIVATIONS=bf16 "$G/bin/gpu_w1" --batch "$G/w1.batch" \
        --out "$W/w1_seed$s" --seed "$s" --reps 1 --label ours_bf16
    stage w1_f16l_seed$s 30 env VPRM_CUDA_ACTIVATIONS=fp16-llm "$G/bin/gpu_w1" \
        --batch "$G/w1.batch" --out "$W/w1_seed$s" --seed "$s" --reps 1 --label ours_f16l
    stage torch_seed$s 60 "$PY" tests/gpu/torch_ref.py --dir "$W/w1_seed$s" --batch "$G/w1.batch" \
        --lib "$G/bin/libvprm_randw.so" --seed "$s" --reps 0
done
# the default kernels' phase profile (time and TFLOP/s per phase; PROFILE=0 skips it)
if [ "${PROFILE:-1}" = 1 ]; then
    stage w1_profile 30 env VPRM_CUDA_PROFILE=1 "$G/bin/gpu_w1" --batch "$G/w1.batch" \
        --out "$W/w1" --seed 1 --reps 1 --label ours_profile
    stage w1_mlp_profile 30 env VPRM_CUDA_PROFILE=1 VPRM_CUDA_MLP=cublas "$G/bin/gpu_w1" \
        --batch "$G/w1.batch" --out "$W/w1" --seed 1 --reps 1 --label ours_mlp_profile
fi
# Nsight Compute on one attention launch of each tower: what bounds them (NCU=0 skips it)
if [ "${NCU:-1}" = 1 ]; then
    stage w1_ncu 160 sh tests/gpu/ncu_attention.sh "$G" "$W/ncu"
fi
"$PY" tests/gpu/summary.py "$W" >"$W/summary.txt" 2>&1
verdict=$?
cat "$W/summary.txt"
if [ -n "${OUT:-}" ]; then
    cp "$W/summary.txt" "$OUT/"
    for s in ops ops_alone e2e e2e_sanitizer w1 w1_simple w1_bf16 w1_f16l w1_tune w1_mlp w1_mlp2 w1_mlp_profile w1_alt w1_alt2 w1_alt3 w1_alt4 w1_alt5 torch \
        w1_plain torch_plain w1_profile w1_ncu $(cd "$W" && ls -d w1_seed* w1_bf16_seed* w1_f16l_seed* torch_seed* 2>/dev/null | sed 's/\.[a-z]*$//' | sort -u); do
        [ -f "$W/$s.log" ] || continue
        echo "===== $s (exit $(cat "$W/$s.rc" 2>/dev/null))"
        cat "$W/$s.log"
    done >"$OUT/logs.txt"
    for j in "$W"/w1/ours.json "$W"/w1/ours_simple.json "$W"/w1/ours_bf16.json "$W"/w1/ours_f16l.json "$W"/w1/ours_tune.json "$W"/w1/ours_mlp.json "$W"/w1/ours_mlp2.json "$W"/w1/ours_alt_*.json "$W"/w1/torch.json; do
        [ -f "$j" ] && cp "$j" "$OUT/"
    done
    [ -f "$W/w1_plain/torch.json" ] && cp "$W/w1_plain/torch.json" "$OUT/torch_plain.json"
    for j in "$W"/w1_seed*/torch.json; do
        [ -f "$j" ] && cp "$j" "$OUT/torch_$(basename "$(dirname "$j")").json"
    done
fi
exit $verdict
