/* cuBLASLt matrix products for row-major activations and [out][in] weights.
 *
 * Row-major y[M][N] = x[M][K] . w[N][K]^T is, read column-major, y^T (N x M) =
 * w (stored K x N column-major, transposed) . x^T (K x M column-major): so A = w with
 * op T, B = x with op N, C = D = y, and the bias epilogue adds bias[row of D] = bias[n].
 * The GELU epilogue is not used: the model needs the exact (erf) GELU. */
#include <stdint.h>
#include <string.h>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cuda_gemm.h"
#include "engine/cuda/cuda_kernels.h"

static unsigned alignment_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    unsigned r = 256;
    while (r > 1 && a % r)
        r /= 2;
    return r;
}

static void plan_destroy(vp_gemm_plan *p)
{
    if (!p->used)
        return;
    if (p->a)
        cublasLtMatrixLayoutDestroy(p->a);
    if (p->b)
        cublasLtMatrixLayoutDestroy(p->b);
    if (p->c)
        cublasLtMatrixLayoutDestroy(p->c);
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

int vp_gemm_init(vp_gemm *g, void *workspace, size_t workspace_bytes, int act, vp_error *err)
{
    memset(g, 0, sizeof *g);
    g->act = act;
    CUBLAS_CHECK(cublasLtCreate(&g->handle));
    g->workspace = workspace;
    g->workspace_bytes = workspace_bytes;
    return 0;
}

void vp_gemm_free(vp_gemm *g)
{
    for (size_t i = 0; i < VP_GEMM_CACHE; i++)
        plan_destroy(&g->cache[i]);
    if (g->handle)
        cublasLtDestroy(g->handle);
    memset(g, 0, sizeof *g);
}

static bool same_key(const vp_gemm_plan *p, const vp_gemm_plan *k)
{
    return p->used && p->m == k->m && p->n == k->n && p->k == k->k && p->ldx == k->ldx &&
           p->ldw == k->ldw && p->ldy == k->ldy && p->out_type == k->out_type &&
           p->has_bias == k->has_bias && p->accumulate == k->accumulate &&
           p->align_x == k->align_x && p->align_w == k->align_w && p->align_y == k->align_y &&
           p->align_b == k->align_b;
}

/* Descriptors and the heuristic's algorithm for key's shape, into *p (with g->tune, the
 * fastest of its first candidates on the call's x and w). The heuristic reads the bias
 * pointer's alignment, so the call's bias is set before asking. */
static int plan_create(vp_gemm *g, vp_gemm_plan *p, const vp_gemm_plan *key, const void *bias,
                       cudaStream_t stream, const void *x, const void *w, vp_error *err)
{
    *p = *key;
    p->used = false;
    cudaDataType_t xt = g->act == VPK_ACT_F16 ? CUDA_R_16F : CUDA_R_16BF;
    cudaDataType_t yt = key->out_type == VP_GEMM_F32 ? CUDA_R_32F : xt;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    p->used = true; /* from here plan_destroy can clean up */
    p->a = p->b = p->c = NULL;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                                sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                                sizeof tb));
    cublasLtEpilogue_t epi = key->has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                sizeof epi));
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, xt, key->k, key->n, (int64_t)key->ldw));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, xt, key->k, key->m, (int64_t)key->ldx));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, yt, key->n, key->m, (int64_t)key->ldy));
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = g->workspace_bytes;
    uint32_t ax = key->align_x, aw = key->align_w, ay = key->align_y;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                  &aw, sizeof aw);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                  &ax, sizeof ax);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                  &ay, sizeof ay);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                  &ay, sizeof ay);
    cublasLtMatmulHeuristicResult_t res[VP_GEMM_TUNE_MAX];
    int found = 0, want = g->tune > 1 ? g->tune : 1;
    if (want > VP_GEMM_TUNE_MAX)
        want = VP_GEMM_TUNE_MAX;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(g->handle, p->desc, p->a, p->b, p->c, p->c, pref, want,
                                            res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    CUBLAS_CHECK(st);
    g->misses++;
    if (found < 1)
        return vp_fail(err, VP_ERR_INTERNAL, "cublas",
                       "cuBLASLt has no algorithm for y[%zu][%zu] %s= x[%zu][%zu] . w^T (%s in, "
                       "%s out%s)",
                       key->m, key->n, key->accumulate ? "+" : "", key->m, key->k,
                       g->act == VPK_ACT_F16 ? "fp16" : "bf16",
                       key->out_type == VP_GEMM_F32 ? "fp32" : g->act == VPK_ACT_F16 ? "fp16" : "bf16",
                       key->has_bias ? ", bias" : "");
    int pick = found > 1 ? vp_gemm_tune(g, p, stream, x, w, res, found) : 0;
    p->algo = res[pick > 0 ? pick : 0].algo;
    return 0;
}

int vp_gemm_run(vp_gemm *g, cudaStream_t stream, void *y, vp_gemm_out out_type, const void *x,
                const void *w, const void *bias, size_t m, size_t n, size_t k, size_t ldx,
                size_t ldw, size_t ldy, bool accumulate, vp_error *err)
{
    if (m == 0 || n == 0)
        return 0;
    if (k == 0 || ldx < k || ldw < k || ldy < n)
        return vp_fail(err, VP_ERR_INTERNAL, "cublas",
                       "bad matrix product shape m %zu n %zu k %zu (ld %zu %zu %zu)", m, n, k, ldx,
                       ldw, ldy);
    vp_gemm_plan key = {.used = true, .m = m, .n = n, .k = k, .ldx = ldx, .ldw = ldw,
                        .ldy = ldy, .out_type = (int)out_type, .has_bias = bias != NULL,
                        .accumulate = accumulate, .align_x = alignment_of(x),
                        .align_w = alignment_of(w), .align_y = alignment_of(y),
                        .align_b = bias ? alignment_of(bias) : 0};
    g->lookups++;
    vp_gemm_plan *p = NULL;
    for (size_t i = 0; i < VP_GEMM_CACHE && !p; i++)
        if (same_key(&g->cache[i], &key))
            p = &g->cache[i];
    if (!p) {
        for (size_t i = 0; i < VP_GEMM_CACHE && !p; i++)
            if (!g->cache[i].used)
                p = &g->cache[i];
        if (!p) {
            p = &g->cache[g->next_evict];
            g->next_evict = (g->next_evict + 1) % VP_GEMM_CACHE;
            plan_destroy(p);
        }
        if (plan_create(g, p, &key, bias, stream, x, w, err)) {
            plan_destroy(p);
            return -1;
        }
    }
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(g->handle, p->desc, &alpha, w, p->a, x, p->b, &beta, y, p->c, y,
                                p->c, &p->algo, g->workspace, g->workspace_bytes, stream));
    return 0;
}
