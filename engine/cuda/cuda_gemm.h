/* Matrix products through cuBLASLt: y[M][N] (+)= x[M][K] . w[N][K]^T (+ bias[N]), bf16
 * inputs, fp32 accumulation, bf16 or fp32 output. A heuristic is asked once per shape
 * (dimensions, leading dimensions, types, epilogue, pointer alignment) and cached with
 * its descriptors. Not thread-safe: one per backend, used from the forward thread. */
#ifndef VP_CUDA_GEMM_H
#define VP_CUDA_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "engine/util/err.h"

typedef enum { VP_GEMM_BF16 = 0, VP_GEMM_F32 = 1 } vp_gemm_out;

#define VP_GEMM_CACHE 128

typedef struct vp_gemm_plan {
    bool used;
    size_t m, n, k, ldx, ldw, ldy;
    int out_type, has_bias, accumulate;
    unsigned align_x, align_w, align_y, align_b; /* pointer alignment the algo assumes */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} vp_gemm_plan;

typedef struct vp_gemm {
    cublasLtHandle_t handle;
    void *workspace;            /* device, workspace_bytes */
    size_t workspace_bytes;
    vp_gemm_plan cache[VP_GEMM_CACHE];
    size_t next_evict;          /* round robin when the cache is full */
    size_t lookups, misses;     /* heuristic queries made */
} vp_gemm;

int vp_gemm_init(vp_gemm *g, void *workspace, size_t workspace_bytes, vp_error *err);
void vp_gemm_free(vp_gemm *g);

/* y = x . w^T (+ bias) (+ y when accumulate). x: bf16 [m][ldx], w: bf16 [n][ldw] (the
 * checkpoint's [out][in]), y: out_type [m][ldy], bias: out_type [n] or NULL (cuBLASLt
 * takes the bias in the output type). */
int vp_gemm_run(vp_gemm *g, cudaStream_t stream, void *y, vp_gemm_out out_type, const void *x,
                const void *w, const void *bias, size_t m, size_t n, size_t k, size_t ldx,
                size_t ldw, size_t ldy, bool accumulate, vp_error *err);

#endif
