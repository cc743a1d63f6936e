#!/bin/sh
# Run HERE (the CPU machine) before a GPU session: builds the CUDA binaries (make
# cuda-check), copies them and the shared libraries the GPU machine lacks (jansson,
# microhttpd, curl and their dependencies; not glibc, libstdc++ or CUDA's own, which must
# be the GPU machine's) into .gpu/ (git-ignored), and writes .gpu/w1.batch: the W1
# request prepared by the engine with the real InternLM2 tokenizer (the GPU machine's
# sentencepiece cannot read it). Then a GPU session runs, with carry [".gpu"]:
#     sh tests/gpu/run.sh
# Environment: BUILD (default build), SHARED (default ../shared).
set -eu
BUILD=${BUILD:-build}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
TOK=$SHARED/tokenizer/internlm2
[ -f "$TOK/tokenizer.model" ] || { echo "pack.sh: no InternLM2 tokenizer at $TOK (set SHARED)"; exit 1; }
make -j2 BUILD="$BUILD" cuda-check
B=$BUILD/cuda
rm -rf .gpu
mkdir -p .gpu/bin .gpu/lib
cp "$B/gpu/gpu_ops" "$B/gpu/gpu_e2e" "$B/gpu/gpu_w1" "$B/gpu/libvprm_randw.so" "$B/vprm" .gpu/bin/
for f in .gpu/bin/*; do ldd "$f"; done | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
    case $(basename "$lib") in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
    ld-linux* | libgcc_s.so.* | libstdc++.so.* | libcuda.so.* | libcudart.so.* | libcublas*) ;;
    *) cp -L "$lib" .gpu/lib/ ;;
    esac
done
mkdir -p .gpu/tokenizer # the GPU machine has no ../shared: serve_check.sh's 8B model needs it
cp "$TOK/tokenizer.model" "$TOK/tokenizer_config.json" .gpu/tokenizer/
[ -f "$TOK/added_tokens.json" ] && cp "$TOK/added_tokens.json" .gpu/tokenizer/
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$B/vprm" mkmodel --scale tiny --seed 1 --tokenizer "$TOK" --out "$tmp/model" >/dev/null
"$B/gpu/mkbatch" --model "$tmp/model" --out .gpu/w1.batch --workload W1 --seed 1
git rev-parse --short HEAD 2>/dev/null > .gpu/COMMIT || echo unknown > .gpu/COMMIT
git diff --quiet 2>/dev/null || echo "+uncommitted changes" >> .gpu/COMMIT
echo "pack.sh: .gpu ready ($(du -sh .gpu | cut -f1)): $(ls .gpu/bin | tr '\n' ' '); $(ls .gpu/lib | wc -l) libraries"
