/* Optional timing of cuBLASLt's candidate algorithms for one product shape
 * (VPRM_CUDA_GEMM_TUNE=N, vp_gemm.tune): the heuristic's first choice is not always the
 * fastest at the shapes of a pass (PERF.md's ceilings: 640-760 TFLOP/s for the LLM's
 * products, where the heuristic's picks measured 712-730 on an H200). Each candidate runs
 * on the call's own inputs into a scratch output, once to warm up and then timed; the
 * fastest wins. For benchmarks, off by default: the plan cache is keyed by the row count
 * too, so under serving every new pass size would be timed again (with a scratch
 * allocation that synchronises the device). */
#include <stdio.h>

#include "engine/cuda/cuda_gemm.h"
#include "engine/util/log.h"

#define TUNE_REPS 3

/* Milliseconds per product with algorithm `algo`, or a negative number when it fails. */
static double time_algo(vp_gemm *g, const vp_gemm_plan *p, cudaStream_t stream,
                        const cublasLtMatmulAlgo_t *algo, const void *x, const void *w, void *y,
                        cudaEvent_t e0, cudaEvent_t e1)
{
    float alpha = 1.0f, beta = p->accumulate ? 1.0f : 0.0f, ms = 0.0f;
    for (int r = 0; r <= TUNE_REPS; r++) {
        if (r == 1 && cudaEventRecord(e0, stream) != cudaSuccess)
            return -1.0;
        if (cublasLtMatmul(g->handle, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->c, y, p->c,
                           algo, g->workspace, g->workspace_bytes, stream) != CUBLAS_STATUS_SUCCESS)
            return -1.0;
    }
    if (cudaEventRecord(e1, stream) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
        cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
        return -1.0;
    return (double)ms / TUNE_REPS;
}

int vp_gemm_tune(vp_gemm *g, const vp_gemm_plan *p, cudaStream_t stream, const void *x,
                 const void *w, const cublasLtMatmulHeuristicResult_t *cand, int n_cand)
{
    size_t elem = p->out_type == VP_GEMM_F32 ? 4 : 2, bytes = p->m * p->ldy * elem;
    void *y = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int best = -1;
    double best_ms = 0.0, first_ms = -1.0;
    if (cudaPeekAtLastError() != cudaSuccess)
        return -1; /* an earlier error is the pass's to report, not ours to clear */
    if (cudaMalloc(&y, bytes) != cudaSuccess || cudaMemsetAsync(y, 0, bytes, stream) != cudaSuccess ||
        cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        VP_LOGW("-", "cuBLASLt tuning skipped for y[%zu][%zu]: no scratch output of %.1f MiB "
                "or events; the heuristic's first algorithm is used", p->m, p->n,
                (double)bytes / (1 << 20));
        goto done;
    }
    for (int i = 0; i < n_cand; i++) {
        double ms = time_algo(g, p, stream, &cand[i].algo, x, w, y, e0, e1);
        if (i == 0)
            first_ms = ms;
        if (ms > 0.0 && (best < 0 || ms < best_ms))
            best = i, best_ms = ms;
    }
    if (best >= 0) {
        double flop = 2.0 * (double)p->m * (double)p->n * (double)p->k;
        VP_LOGI("-", "cuBLASLt tuned y[%zu][%zu] %s= x . w^T (k %zu, %s out): heuristic's first "
                "%.1f TFLOP/s, best of %d candidate %d %.1f TFLOP/s", p->m, p->n,
                p->accumulate ? "+" : "", p->k, p->out_type == VP_GEMM_F32 ? "fp32" : "16-bit",
                first_ms > 0.0 ? flop / (first_ms * 1e9) : 0.0, n_cand, best,
                flop / (best_ms * 1e9));
    }
done:
    (void)cudaGetLastError(); /* a failed candidate is an answer, not the pass's error */
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    if (y)
        cudaFree(y);
    return best;
}
