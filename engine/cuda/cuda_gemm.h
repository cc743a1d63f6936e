/* Matrix products through cuBLASLt: y[M][N] (+)= x[M][K] . w[N][K]^T (+ bias[N]), 16-bit
 * inputs (bf16, or fp16 for fp16 activations: vpk_act, one type per vp_gemm), fp32
 * accumulation, output in the input type or fp32. A heuristic is asked once per shape
 * (dimensions, leading dimensions, types, epilogue, pointer alignment) and cached with
 * its descriptors. Not thread-safe: one per backend, used from the forward thread. */
#ifndef VP_CUDA_GEMM_H
#define VP_CUDA_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "engine/util/err.h"

typedef enum { VP_GEMM_ACT16 = 0, VP_GEMM_F32 = 1 } vp_gemm_out; /* ACT16: the input type */

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
    int act;                    /* vpk_act of the inputs (and of ACT16 outputs and biases) */
    int tune;                   /* > 1: time up to this many candidates per new shape */
} vp_gemm;

#define VP_GEMM_TUNE_MAX 16

int vp_gemm_init(vp_gemm *g, void *workspace, size_t workspace_bytes, int act, vp_error *err);
void vp_gemm_free(vp_gemm *g);

/* y = x . w^T (+ bias) (+ y when accumulate). x: [m][ldx], w: [n][ldw] (the checkpoint's
 * [out][in]), both in g's type; y: out_type [m][ldy], bias: out_type [n] or NULL
 * (cuBLASLt takes the bias in the output type). */
int vp_gemm_run(vp_gemm *g, cudaStream_t stream, void *y, vp_gemm_out out_type, const void *x,
                const void *w, const void *bias, size_t m, size_t n, size_t k, size_t ldx,
                size_t ldw, size_t ldy, bool accumulate, vp_error *err);

/* Times n_cand candidate algorithms for plan p (descriptors made, bias set) on the call's
 * inputs, the output in a scratch buffer; returns the fastest's index, -1 when none ran
 * (no scratch memory: the caller keeps the heuristic's first). Logs the two rates. */
int vp_gemm_tune(vp_gemm *g, const vp_gemm_plan *p, cudaStream_t stream, const void *x,
                 const void *w, const cublasLtMatmulHeuristicResult_t *cand, int n_cand);

#endif
