#!/bin/sh
# Builds the GPU check programs against a CUDA build of vprm (make cuda-check runs this):
#   sh tests/gpu/build.sh BUILD_DIR      (BUILD_DIR = the folder `make CUDA=1 BUILD=...` used)
# into BUILD_DIR/gpu: gpu_ops, gpu_e2e, gpu_w1 (need a GPU to run), mkbatch (runs here),
# libvprm_randw.so (the random-weight generator for PyTorch, ctypes).
set -eu
B=${1:?usage: build.sh BUILD_DIR}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC=${NVCC:-$CUDA_HOME/bin/nvcc}
CUDA_ARCH=${CUDA_ARCH:-sm_90a}
CC=${CC:-gcc}
LIB=$B/rel/libvprm.a
CU_OBJ=$(ls "$B"/rel/engine/cuda/*.o)
[ -f "$LIB" ] && [ -n "$CU_OBJ" ] || { echo "build.sh: no CUDA build in $B (run make cuda-check)"; exit 1; }
OUT=$B/gpu
mkdir -p "$OUT/pic"
CFLAGS="-std=c11 -D_GNU_SOURCE -pthread -I. -I/usr/include/stb -I$CUDA_HOME/include -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -g -O2 -march=x86-64-v2 -DVP_WITH_CUDA"
LIBS="-ljansson -lmicrohttpd -lgnutls -lcurl -lm -lpthread -L$CUDA_HOME/lib64 -Wl,-rpath,$CUDA_HOME/lib64 -lcublasLt -lcudart -lstdc++"
for p in gpu_ops gpu_e2e gpu_w1 mkbatch; do
    $CC $CFLAGS tests/gpu/$p.c $CU_OBJ "$LIB" -o "$OUT/$p" $LIBS
done
# the generator library: position-independent copies of the few sources it needs
for s in tests/gpu/randw_lib.c engine/cuda_plan/rand_rule.c engine/model/layout.c \
         engine/model/mkmodel_init.c engine/model/rng.c engine/model/tensor.c engine/util/err.c; do
    $CC $CFLAGS -fPIC -c "$s" -o "$OUT/pic/$(basename "$s" .c).o"
done
$NVCC -std=c++17 -O3 -arch="$CUDA_ARCH" -I. -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror,-fPIC \
    -c engine/cuda/k_convert.cu -o "$OUT/pic/k_convert.o"
$CC -shared -o "$OUT/libvprm_randw.so" "$OUT"/pic/*.o -L"$CUDA_HOME/lib64" \
    -Wl,-rpath,"$CUDA_HOME/lib64" -lcudart -lstdc++ -lm
echo "built $OUT: gpu_ops gpu_e2e gpu_w1 mkbatch libvprm_randw.so (arch $CUDA_ARCH)"
