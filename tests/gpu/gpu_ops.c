/* gpu_ops: every CUDA kernel and the cuBLASLt wrapper against its CPU twin
 * (engine/cpu/cpu_ops.h) on seeded random inputs (never zeros; outputs poisoned with NaN
 * first so an unwritten element fails). Inputs are rounded to bf16 where the kernel reads
 * bf16, so the comparison measures the kernel, not the input rounding. Each line prints
 * the worst element against an absolute + relative tolerance. Needs a GPU.
 *   gpu_ops            exit status 0 when every check passes */
#include <math.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cuda/cuda_gemm.h"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda_plan/cuda_plan.h"
#include "engine/image/image.h"
#include "tests/gpu/gpu_util.h"
#include "tests/unit/cuda_plan_test_util.h"

#define BF16_REL (1.0 / 256) /* one bf16 rounding (2^-8 relative) */

static cudaStream_t stream;

/* x rounded to the activation type in place; returns its bits (caller frees). */
static uint16_t *round_act(float *x, size_t n, int act)
{
    for (size_t i = 0; i < n; i++)
        x[i] = act_round(x[i], act);
    return to_act(x, n, act);
}

static uint16_t *round_bf16(float *x, size_t n)
{
    return round_act(x, n, VPK_ACT_BF16);
}

static void test_gemm(vp_gemm *g, size_t m, size_t n, size_t k)
{
    float *x = gpu_normal(m * k, 1.0f, 0.0f), *w = gpu_normal(n * k, 0.05f, 0.0f);
    float *bias = gpu_normal(n, 0.5f, 0.0f), *y0 = gpu_normal(m * n, 1.0f, 0.0f);
    int act = g->act; /* inputs, 16-bit output and its bias in the wrapper's type */
    uint16_t *xb = round_act(x, m * k, act), *wb = round_act(w, n * k, act);
    uint16_t *bb = round_act(bias, n, act);
    float *want = host_alloc(m * n * 4), *got = host_alloc(m * n * 4);
    void *dx = gpu_upload(xb, m * k * 2), *dw = gpu_upload(wb, n * k * 2);
    void *dbb = gpu_upload(bb, n * 2), *dbf = gpu_upload(bias, n * 4);
    void *dyb = gpu_alloc(m * n * 2), *dyf = gpu_alloc(m * n * 4);
    vp_error err = {0};
    char what[96];
    vp_cpu_matmul(NULL, want, x, w, bias, m, k, n);
    /* fp32 output + bias: only the summation order differs */
    if (vp_gemm_run(g, stream, dyf, VP_GEMM_F32, dx, dw, dbf, m, n, k, k, k, n, false, &err)) {
        printf("FAIL gemm: %s\n", err.message);
        gpu_fail++;
    } else {
        gpu_download(got, dyf, m * n * 4);
        snprintf(what, sizeof what, "gemm %s%s f32+bias %zux%zux%zu", g->tune > 1 ? "tuned " : "", act_name(act), m, n, k);
        gpu_close(what, got, want, m * n, 1e-3 * sqrt((double)k) * 0.05, 1e-3);
    }
    /* bf16 output + bias: one more rounding */
    if (vp_gemm_run(g, stream, dyb, VP_GEMM_ACT16, dx, dw, dbb, m, n, k, k, k, n, false, &err)) {
        printf("FAIL gemm: %s\n", err.message);
        gpu_fail++;
    } else {
        uint16_t *yb = host_alloc(m * n * 2);
        gpu_download(yb, dyb, m * n * 2);
        float *yf = from_act(yb, m * n, act);
        snprintf(what, sizeof what, "gemm %s%s out+bias %zux%zux%zu", g->tune > 1 ? "tuned " : "", act_name(act), m, n, k);
        gpu_close(what, yf, want, m * n, 1e-3 * sqrt((double)k) * 0.05, act_rel(act));
        free(yf);
        free(yb);
    }
    /* fp32 accumulate (the residual epilogue): y = y0 + x w^T */
    GPU_OK(cudaMemcpy(dyf, y0, m * n * 4, cudaMemcpyHostToDevice));
    vp_cpu_matmul(NULL, want, x, w, NULL, m, k, n);
    for (size_t i = 0; i < m * n; i++)
        want[i] += y0[i];
    if (vp_gemm_run(g, stream, dyf, VP_GEMM_F32, dx, dw, NULL, m, n, k, k, k, n, true, &err)) {
        printf("FAIL gemm: %s\n", err.message);
        gpu_fail++;
    } else {
        gpu_download(got, dyf, m * n * 4);
        snprintf(what, sizeof what, "gemm %s%s f32 accumulate %zux%zux%zu", g->tune > 1 ? "tuned " : "", act_name(act), m, n, k);
        gpu_close(what, got, want, m * n, 1e-3 * sqrt((double)k) * 0.05, 1e-3);
    }
    cudaFree(dx), cudaFree(dw), cudaFree(dbb), cudaFree(dbf), cudaFree(dyb), cudaFree(dyf);
    free(x), free(w), free(bias), free(y0), free(xb), free(wb), free(bb), free(want), free(got);
}

static void test_norm(int rms, size_t rows, int dim, int residual, float eps, int act)
{
    size_t n = rows * (size_t)dim;
    float *x = gpu_normal(n, 2.0f, 0.3f), *y = gpu_normal(n, 1.0f, 0.0f);
    float *s = gpu_normal((size_t)dim, 0.3f, 0.5f), *w = gpu_normal((size_t)dim, 0.1f, 1.0f);
    float *b = gpu_normal((size_t)dim, 0.1f, 0.0f);
    float *dx = gpu_upload(x, n * 4), *dy = gpu_upload(y, n * 4), *ds = gpu_upload(s, (size_t)dim * 4);
    float *dw = gpu_upload(w, (size_t)dim * 4), *db = gpu_upload(b, (size_t)dim * 4);
    vp_bf16 *dout = gpu_alloc(n * 2);
    GPU_OK(vpk_norm(stream, rms, dx, rows, dim, residual ? dy : NULL, residual ? ds : NULL, dw,
                    rms ? NULL : db, eps, dout, (size_t)dim, act));
    if (residual) /* the CPU twin's add_scaled: x += s * y */
        for (size_t i = 0; i < n; i++)
            x[i] += s[i % (size_t)dim] * y[i];
    float *want = host_alloc(n * 4), *xgot = host_alloc(n * 4);
    if (rms)
        vp_cpu_rms_norm(want, x, w, rows, (size_t)dim, eps);
    else
        vp_cpu_layer_norm(want, x, w, b, rows, (size_t)dim, eps);
    uint16_t *ob = host_alloc(n * 2);
    gpu_download(ob, dout, n * 2);
    gpu_download(xgot, dx, n * 4);
    float *got = from_act(ob, n, act);
    char what[96];
    snprintf(what, sizeof what, "%s %zux%d%s -> %s", rms ? "rms_norm" : "layer_norm", rows, dim,
             residual ? " + scaled residual" : "", act_name(act));
    gpu_close(what, got, want, n, 1e-6, act_rel(act));
    if (residual)
        gpu_close("  residual written back", xgot, x, n, 0.0, 0.0);
    cudaFree(dx), cudaFree(dy), cudaFree(ds), cudaFree(dw), cudaFree(db), cudaFree(dout);
    free(x), free(y), free(s), free(w), free(b), free(want), free(xgot), free(ob), free(got);
}

static void test_rms_bf16(int act)
{
    size_t rows = 40, dim = 1024, stride = 3072, n = rows * stride;
    float *x = gpu_normal(n, 1.5f, 0.0f), *w = gpu_normal(dim, 0.1f, 1.0f);
    uint16_t *xb = round_act(x, n, act);
    vp_bf16 *dx = gpu_upload(xb, n * 2);
    float *dw = gpu_upload(w, dim * 4);
    GPU_OK(vpk_rms_norm_bf16(stream, dx + dim, rows, (int)dim, stride, dw, 1e-6f, act));
    uint16_t *ob = host_alloc(n * 2);
    gpu_download(ob, dx, n * 2);
    float *got = from_act(ob, n, act), *want = host_alloc(rows * dim * 4), *g2 = host_alloc(rows * dim * 4);
    for (size_t r = 0; r < rows; r++) {
        vp_cpu_rms_norm(want + r * dim, x + r * stride + dim, w, 1, dim, 1e-6f);
        memcpy(g2 + r * dim, got + r * stride + dim, dim * 4);
    }
    char what[96];
    snprintf(what, sizeof what, "rms_norm %s in place (q/k norm, strided)", act_name(act));
    gpu_close(what, g2, want, rows * dim, 1e-6, act_rel(act));
    int untouched = 0;
    for (size_t r = 0; r < rows; r++)
        untouched += memcmp(ob + r * stride, xb + r * stride, dim * 2) == 0;
    printf("%-4s   other columns untouched (%d of %zu rows)\n", untouched == (int)rows ? "ok" : "FAIL",
           untouched, rows);
    untouched == (int)rows ? gpu_pass++ : gpu_fail++;
    cudaFree(dx), cudaFree(dw);
    free(x), free(w), free(xb), free(ob), free(got), free(want), free(g2);
}

static void test_head(void)
{
    size_t n = 7, h = 4096;
    float *x = gpu_normal(n * h, 3.0f, 0.1f), *w = gpu_normal(h, 0.05f, 1.0f);
    float *rows = gpu_normal(2 * h, 0.02f, 0.0f);
    float *dx = gpu_upload(x, n * h * 4), *dw = gpu_upload(w, h * 4), *dr = gpu_upload(rows, 2 * h * 4);
    float *dl = gpu_alloc(n * 2 * 4);
    GPU_OK(vpk_head(stream, dl, dx, n, (int)h, dw, 1e-5f, dr));
    float *got = host_alloc(n * 8), *want = host_alloc(n * 8), *xn = host_alloc(n * h * 4);
    gpu_download(got, dl, n * 8);
    vp_cpu_rms_norm(xn, x, w, n, h, 1e-5f);
    for (size_t i = 0; i < n; i++) {
        want[2 * i] = vp_cpu_dot(xn + i * h, rows, h);
        want[2 * i + 1] = vp_cpu_dot(xn + i * h, rows + h, h);
    }
    gpu_close("head: final rms_norm + two rows", got, want, n * 2, 1e-4, 1e-4);
    cudaFree(dx), cudaFree(dw), cudaFree(dr), cudaFree(dl);
    free(x), free(w), free(rows), free(got), free(want), free(xn);
}

static void test_rope(int act)
{
    int kv = 2, qpk = 4, hd = 128, half = hd / 2;
    size_t n = 50, row = (size_t)kv * (size_t)(qpk + 2) * (size_t)hd, base_rows = 40;
    float *x = gpu_normal(n * row, 1.0f, 0.0f);
    uint16_t *xb = round_act(x, n * row, act);
    float *base = host_alloc(base_rows * (size_t)hd * 4), *extra = host_alloc(n * (size_t)hd * 4);
    int32_t *rrow = host_alloc(n * 4), *pos = host_alloc(n * 4);
    for (size_t p = 0; p < base_rows; p++)
        vp_cpu_rope_table(base + p * hd, base + p * hd + half, (int32_t)p, 1e6, hd);
    size_t n_extra = 0;
    for (size_t t = 0; t < n; t++) {
        pos[t] = (int32_t)(t * 37 % 3000);
        if ((size_t)pos[t] < base_rows && t % 3) {
            rrow[t] = pos[t];
        } else { /* a per-batch row with a scaled base */
            vp_cpu_rope_table(extra + n_extra * hd, extra + n_extra * hd + half, pos[t], 2.5e6, hd);
            rrow[t] = (int32_t)(base_rows + n_extra++);
        }
    }
    vp_bf16 *dq = gpu_upload(xb, n * row * 2);
    float *dbase = gpu_upload(base, base_rows * hd * 4), *dextra = gpu_upload(extra, n * hd * 4);
    int32_t *drow = gpu_upload(rrow, n * 4);
    GPU_OK(vpk_rope_qkv(stream, dq, n, row, kv, qpk, hd, dbase, base_rows, dextra, drow, act));
    uint16_t *ob = host_alloc(n * row * 2);
    gpu_download(ob, dq, n * row * 2);
    float *got = from_act(ob, n * row, act), *want = host_alloc(n * row * 4);
    memcpy(want, x, n * row * 4);
    for (size_t t = 0; t < n; t++) {
        const float *tab = (size_t)rrow[t] < base_rows ? base + (size_t)rrow[t] * hd
                                                        : extra + ((size_t)rrow[t] - base_rows) * hd;
        for (int g = 0; g < kv; g++) /* q heads and the key head of each group */
            vp_cpu_rope_apply(want + t * row + (size_t)g * (qpk + 2) * hd, (size_t)qpk + 1, hd, tab,
                              tab + half);
    }
    for (size_t i = 0; i < n * row; i++)
        want[i] = act_round(want[i], act);
    char what[96];
    snprintf(what, sizeof what, "rope %s (packed wqkv, value heads untouched)", act_name(act));
    gpu_close(what, got, want, n * row, 0.0, act_rel(act));
    cudaFree(dq), cudaFree(dbase), cudaFree(dextra), cudaFree(drow);
    free(x), free(xb), free(base), free(extra), free(rrow), free(pos), free(ob), free(got), free(want);
}

/* The gate and up halves of rows [gate | up]. */
static void split_gate_up(const float *gu, size_t rows, size_t inter, float *gate, float *up)
{
    for (size_t r = 0; r < rows; r++) {
        memcpy(gate + r * inter, gu + r * 2 * inter, inter * 4);
        memcpy(up + r * inter, gu + r * 2 * inter + inter, inter * 4);
    }
}

/* inter 1000 takes the vector kernels (GELU 8 bf16, SiLU-gate 4 floats or 8 16-bit values
 * per thread), 1001 the scalar ones */
static void test_activations(size_t inter, int act)
{
    size_t rows = 33, n = rows * inter;
    float *g = gpu_normal(2 * n, 2.0f, 0.0f), *gu = gpu_normal(2 * n, 2.0f, 0.0f);
    uint16_t *gb = round_act(g, 2 * n, act);
    vp_bf16 *dg = gpu_upload(gb, 2 * n * 2), *dh = gpu_alloc(n * 2);
    GPU_OK(vpk_gelu(stream, dg, 2 * n, act));
    uint16_t *ob = host_alloc(2 * n * 2);
    gpu_download(ob, dg, 2 * n * 2);
    float *got = from_act(ob, 2 * n, act), *want = host_alloc(2 * n * 4);
    memcpy(want, g, 2 * n * 4);
    vp_cpu_gelu(want, 2 * n);
    char what[96];
    snprintf(what, sizeof what, "gelu (erf) %s", act_name(act));
    gpu_close(what, got, want, 2 * n, 1e-6, 2 * act_rel(act));
    /* silu gate on fp32 rows [gate | up] (not rounded: the kernel reads fp32) */
    float *dgu = gpu_upload(gu, 2 * n * 4);
    GPU_OK(cudaMemset(dh, 0xff, n * 2));
    GPU_OK(vpk_silu_gate(stream, dh, dgu, rows, inter, act));
    gpu_download(ob, dh, n * 2);
    float *got2 = from_act(ob, n, act), *gate = host_alloc(n * 4), *up = host_alloc(n * 4);
    split_gate_up(gu, rows, inter, gate, up);
    vp_cpu_silu_gate(gate, up, n);
    snprintf(what, sizeof what, "silu gate fp32 -> %s", act_name(act));
    gpu_close(what, got2, gate, n, 1e-6, act_rel(act));
    /* and from gate | up in the act type (fp16 activations' product output) */
    uint16_t *gub = round_act(gu, 2 * n, act); /* gu now holds the rounded values */
    vp_bf16 *dgu16 = gpu_upload(gub, 2 * n * 2);
    GPU_OK(cudaMemset(dh, 0xff, n * 2));
    GPU_OK(vpk_silu_gate16(stream, dh, dgu16, rows, inter, act));
    gpu_download(ob, dh, n * 2);
    float *got3 = from_act(ob, n, act);
    split_gate_up(gu, rows, inter, gate, up);
    vp_cpu_silu_gate(gate, up, n);
    snprintf(what, sizeof what, "silu gate %s -> %s", act_name(act), act_name(act));
    gpu_close(what, got3, gate, n, 1e-6, act_rel(act));
    cudaFree(dg), cudaFree(dh), cudaFree(dgu), cudaFree(dgu16);
    free(g), free(gu), free(gb), free(ob), free(got), free(want), free(got2), free(gate), free(up);
    free(gub), free(got3);
}

/* vpk_gated_mlp (VPRM_CUDA_MLP=fused, fused2) vs the CPU product and SiLU-gate on the same
 * rounded inputs: hidden 264 has a last K step of 8 columns (the copies' zeros past K), 56
 * one step narrower than the box, 300 and 1 rows a partial row tile; 600 x 5120 makes 200
 * tiles (120 of pairs: every block runs several, the ring's phases carried across tiles
 * with 5 K steps, the partner of the odd last row tile wholly past the rows), also in
 * groups of 3 row tiles (a partial last group). Only where the kernel runs (Hopper). */
static void test_gated_mlp(size_t rows, size_t hidden, size_t inter, int act, int group)
{
    char what[96];
    snprintf(what, sizeof what, "gated mlp %s %zux%zux%zu", act_name(act), rows, inter, hidden);
    if (!vpk_gated_mlp_supports(hidden, inter)) {
        printf("not run: %s (needs a Hopper GPU and an sm_90a build)\n", what);
        return;
    }
    float *x = gpu_normal(rows * hidden, 1.0f, 0.0f), *w = gpu_normal(2 * inter * hidden, 0.05f, 0.0f);
    uint16_t *xb = round_act(x, rows * hidden, act), *wb = round_act(w, 2 * inter * hidden, act);
    float *gu = host_alloc(rows * 2 * inter * 4), *gate = host_alloc(rows * inter * 4);
    float *up = host_alloc(rows * inter * 4);
    vp_cpu_matmul(NULL, gu, x, w, NULL, rows, hidden, 2 * inter);
    split_gate_up(gu, rows, inter, gate, up);
    vp_cpu_silu_gate(gate, up, rows * inter);
    vp_bf16 *dx = gpu_upload(xb, rows * hidden * 2), *dw = gpu_upload(wb, 2 * inter * hidden * 2);
    vp_bf16 *dh = gpu_alloc(rows * inter * 2);
    uint16_t *hb = host_alloc(rows * inter * 2);
    vpk_gated_mlp_group(group);
    for (int pairs = 1; pairs >= 0; pairs--) { /* blocks in pairs sharing w13's boxes, alone */
        if (pairs && vpk_gated_mlp_pairs() < 1) { /* it would run single blocks instead */
            gpu_check(what, 0, "no pair of the kernel's blocks fits this GPU at once");
            continue;
        }
        GPU_OK(cudaMemset(dh, 0xff, rows * inter * 2)); /* NaN in both types: unwritten fails */
        GPU_OK(vpk_gated_mlp(stream, dh, dx, dw, rows, inter, hidden, act, pairs));
        gpu_download(hb, dh, rows * inter * 2);
        float *got = from_act(hb, rows * inter, act);
        char line[128];
        snprintf(line, sizeof line, "%s, %s, groups of %d", what, pairs ? "pairs" : "single blocks",
                 group);
        /* fp32 sums in another order, then one rounding of the gated value */
        gpu_close(line, got, gate, rows * inter, 4e-3 * sqrt((double)hidden) * 0.05, act_rel(act));
        free(got);
    }
    vpk_gated_mlp_group(16);
    cudaFree(dx), cudaFree(dw), cudaFree(dh);
    free(x), free(w), free(xb), free(wb), free(gu), free(gate), free(up), free(hb);
}

/* Not a check: W1's MLP first half (6,139 rows, 4,096 -> 2 x 14,336) as the two ways the
 * backend can run it, fp16, timed in turn on the same inputs: cuBLASLt's w1 | w3 product
 * and the SiLU-gate kernel, then vpk_gated_mlp; TFLOP/s of the product's FLOPs. */
static void bench_gated_mlp(vp_gemm *g16)
{
    const size_t rows = 6139, hidden = 4096, inter = 14336;
    if (!vpk_gated_mlp_supports(hidden, inter)) {
        printf("bench gated mlp: not run (needs a Hopper GPU and an sm_90a build)\n");
        return;
    }
    vp_bf16 *dx = gpu_alloc(rows * hidden * 2), *dw = gpu_alloc(2 * inter * hidden * 2);
    vp_bf16 *dgu = gpu_alloc(rows * 2 * inter * 2), *dh = gpu_alloc(rows * inter * 2);
    vp_bf16 *dh2 = gpu_alloc(rows * inter * 2);
    unsigned long long *dover = gpu_alloc(sizeof *dover);
    GPU_OK(cudaMemset(dover, 0, sizeof *dover));
    vp_rand_rule rx = {.key = 0x5eed1, .kind = VP_RAND_NORMAL, .std = 1.0f, .std_special = 1.0f,
                       .cols = hidden};
    vp_rand_rule rw = rx;
    rw.key = 0x5eed2, rw.std = rw.std_special = 0.02f;
    GPU_OK(vpk_random_fill(stream, dx, VP_CW_BF16, &rx, 1, 0, rows * hidden, hidden, hidden));
    GPU_OK(vpk_random_fill(stream, dw, VP_CW_BF16, &rw, 1, 0, 2 * inter * hidden, hidden, hidden));
    GPU_OK(vpk_bf16_to_f16(stream, dx, rows * hidden, dover));
    GPU_OK(vpk_bf16_to_f16(stream, dw, 2 * inter * hidden, dover));
    cudaEvent_t e0, e1;
    GPU_OK(cudaEventCreate(&e0));
    GPU_OK(cudaEventCreate(&e1));
    const double flops = 2.0 * (double)rows * 2 * (double)inter * (double)hidden;
    vp_error err = {0};
    /* row tiles a group (0: cuBLASLt, first and last) and blocks a cluster */
    static const int groups[] = {0, 16, 16, 8, 32, 16, 8, 0};
    static const int clusters[] = {0, 2, 1, 2, 2, 1, 1, 0};
    printf("bench gated mlp: %d pairs of blocks at once\n", vpk_gated_mlp_pairs());
    size_t n = rows * inter;
    uint16_t *a = host_alloc(n * 2), *b = host_alloc(n * 2);
    for (size_t way = 0; way < sizeof groups / sizeof groups[0]; way++) {
        const int reps = 10;
        vpk_gated_mlp_group(groups[way]);
        float ms = 0.0f;
        for (int r = -2; r < reps; r++) { /* two warm-ups */
            if (r == 0)
                GPU_OK(cudaEventRecord(e0, stream));
            if (groups[way] > 0) {
                GPU_OK(vpk_gated_mlp(stream, dh2, dx, dw, rows, inter, hidden, VPK_ACT_F16,
                                     clusters[way] == 2));
            } else if (vp_gemm_run(g16, stream, dgu, VP_GEMM_ACT16, dx, dw, NULL, rows, 2 * inter,
                                   hidden, hidden, hidden, 2 * inter, false, &err)) {
                printf("FAIL bench gated mlp: %s\n", err.message);
                gpu_fail++;
                break;
            } else {
                GPU_OK(vpk_silu_gate16(stream, dh, dgu, rows, inter, VPK_ACT_F16));
            }
        }
        GPU_OK(cudaEventRecord(e1, stream));
        GPU_OK(cudaEventSynchronize(e1));
        GPU_OK(cudaEventElapsedTime(&ms, e0, e1));
        ms /= reps;
        char how[64];
        snprintf(how, sizeof how, "fused, %s, row tiles a group %d",
                 clusters[way] == 2 ? "pairs" : "single blocks", groups[way]);
        printf("bench gated mlp W1 (6139 x 4096 -> 2 x 14336, fp16) %s: %.3f ms per layer, "
               "%.0f TFLOP/s\n", groups[way] ? how : "cuBLASLt + SiLU-gate kernel",
               ms, flops / (ms * 1e-3) / 1e12);
        /* the two ways agree (fp16 gate and up rounded in the first), pairs and single
         * blocks (the other groups change only the order of the tiles) */
        if (way == 1 || way == 2) {
            GPU_OK(cudaMemsetAsync(dh2, 0xff, n * 2, stream)); /* poisoned, run again */
            GPU_OK(vpk_gated_mlp(stream, dh2, dx, dw, rows, inter, hidden, VPK_ACT_F16,
                                 clusters[way] == 2));
            GPU_OK(cudaStreamSynchronize(stream));
            gpu_download(a, dh, n * 2);
            gpu_download(b, dh2, n * 2);
            float *fa = from_act(a, n, VPK_ACT_F16), *fb = from_act(b, n, VPK_ACT_F16);
            char line[96];
            snprintf(line, sizeof line, "gated mlp W1 shape, %s: fused vs cuBLASLt",
                     clusters[way] == 2 ? "pairs" : "single blocks");
            gpu_close(line, fb, fa, n, 2e-3, 1.0 / 128);
            free(fa), free(fb);
        }
    }
    vpk_gated_mlp_group(16);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(dx), cudaFree(dw), cudaFree(dgu), cudaFree(dh), cudaFree(dh2), cudaFree(dover);
    free(a), free(b);
}

/* unfold + gemm + class token and positions vs vp_cpu_patch_embed, two tiles */
static void test_patch_embed(vp_gemm *gm)
{
    int act = gm->act; /* pixels rounded to bf16 either way, stored in the act type */
    int c = 3, s = 448, p = 14, hv = 128;
    size_t tiles = 2, gg = (size_t)(s / p) * (size_t)(s / p), k = (size_t)c * p * p;
    size_t kpad = vp_cw_pad_cols(k), pix = (size_t)c * s * s;
    float *img = gpu_normal(tiles * pix, 1.0f, 0.0f), *w = gpu_normal((size_t)hv * k, 0.02f, 0.0f);
    float *bias = gpu_normal((size_t)hv, 0.1f, 0.0f), *cls = gpu_normal((size_t)hv, 0.5f, 0.0f);
    float *pos = gpu_normal((gg + 1) * hv, 0.5f, 0.0f);
    uint16_t *wpad = host_alloc((size_t)hv * kpad * 2);
    for (int o = 0; o < hv; o++)
        for (size_t i = 0; i < k; i++) {
            w[(size_t)o * k + i] = bf16_round(w[(size_t)o * k + i]);
            wpad[(size_t)o * kpad + i] = act == VPK_ACT_F16 ? vp_f32_to_f16(w[(size_t)o * k + i])
                                                            : vp_f32_to_bf16(w[(size_t)o * k + i]);
        }
    float *dimg = gpu_upload(img, tiles * pix * 4), *dbias = gpu_upload(bias, (size_t)hv * 4);
    float *dcls = gpu_upload(cls, (size_t)hv * 4), *dpos = gpu_upload(pos, (gg + 1) * hv * 4);
    vp_bf16 *dw = gpu_upload(wpad, (size_t)hv * kpad * 2), *dpatch = gpu_alloc(tiles * gg * kpad * 2);
    float *demb = gpu_alloc(tiles * gg * hv * 4), *dx = gpu_alloc(tiles * (gg + 1) * hv * 4);
    vp_error err = {0};
    GPU_OK(vpk_im2col(stream, dpatch, dimg, tiles, c, s, p, kpad, act));
    if (vp_gemm_run(gm, stream, demb, VP_GEMM_F32, dpatch, dw, dbias, tiles * gg, (size_t)hv, kpad,
                    kpad, kpad, (size_t)hv, false, &err)) {
        printf("FAIL patch gemm: %s\n", err.message);
        gpu_fail++;
        return;
    }
    GPU_OK(vpk_vit_assemble(stream, dx, demb, dcls, dpos, tiles, gg, hv));
    float *got = host_alloc(tiles * (gg + 1) * hv * 4), *want = host_alloc(tiles * (gg + 1) * hv * 4);
    float *scratch = host_alloc(gg * k * 4), *rounded = host_alloc(pix * 4);
    gpu_download(got, dx, tiles * (gg + 1) * hv * 4);
    for (size_t t = 0; t < tiles; t++) {
        float *xt = want + t * (gg + 1) * hv;
        for (size_t i = 0; i < pix; i++) /* the reference casts pixels to bf16 */
            rounded[i] = bf16_round(img[t * pix + i]);
        vp_cpu_patch_embed(NULL, xt + hv, scratch, rounded, w, bias, c, s, p, hv);
        memcpy(xt, cls, (size_t)hv * 4);
        for (size_t i = 0; i < (gg + 1) * hv; i++)
            xt[i] += pos[i];
    }
    char what[96];
    snprintf(what, sizeof what, "patch embedding %s (im2col + gemm + cls/pos)", act_name(act));
    gpu_close(what, got, want, tiles * (gg + 1) * hv, 2e-3, 1e-3);
    cudaFree(dimg), cudaFree(dbias), cudaFree(dcls), cudaFree(dpos), cudaFree(dw), cudaFree(dpatch);
    cudaFree(demb), cudaFree(dx);
    free(img), free(w), free(bias), free(cls), free(pos), free(wpad), free(got), free(want);
    free(scratch), free(rounded);
}

/* im2col from 8-bit tiles (the engine's path) vs im2col on the CPU's normalised floats:
 * bit for bit, every byte value in every channel, two tiles of different content. */
static void test_im2col_u8(int act)
{
    int s = 448, p = 14;
    size_t tiles = 2, gg = (size_t)(s / p) * (size_t)(s / p), k = 3 * (size_t)p * p;
    size_t kpad = vp_cw_pad_cols(k), bytes = tiles * 3 * (size_t)s * s;
    uint8_t *u8 = host_alloc(bytes);
    for (size_t i = 0; i < bytes; i++) /* all 256 values, in no pixel-aligned pattern */
        u8[i] = (uint8_t)((i * 2654435761u) >> 13);
    float *norm = host_alloc(bytes * 4), table[3][256];
    vp_tiles_normalize(u8, tiles, s, norm);
    vp_tiles_norm_table(table);
    uint8_t *du8 = gpu_upload(u8, bytes);
    float *dnorm = gpu_upload(norm, bytes * 4), *dtable = gpu_upload(table, sizeof table);
    size_t n = tiles * gg * kpad;
    vp_bf16 *want_d = gpu_alloc(n * 2), *got_d = gpu_alloc(n * 2);
    GPU_OK(cudaMemset(got_d, 0xff, n * 2));
    GPU_OK(vpk_im2col(stream, want_d, dnorm, tiles, 3, s, p, kpad, act));
    GPU_OK(vpk_im2col_u8(stream, got_d, du8, dtable, tiles, s, p, kpad, act));
    uint16_t *want = host_alloc(n * 2), *got = host_alloc(n * 2);
    gpu_download(want, want_d, n * 2);
    gpu_download(got, got_d, n * 2);
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            bad++, first = first < n ? first : i;
    /* and each value the bf16 rounding of the CPU's float, in the act type exactly */
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t col = i % kpad, cell = i / kpad, pp = (size_t)p * p, g = (size_t)(s / p);
        float v = 0.0f;
        if (col < k) {
            size_t t = cell / (g * g), c = col / pp;
            size_t y = cell % (g * g) / g * (size_t)p + col / (size_t)p % (size_t)p;
            size_t x = cell % g * (size_t)p + col % (size_t)p;
            v = bf16_round(norm[((t * 3 + c) * (size_t)s + y) * (size_t)s + x]);
        }
        uint16_t bits = act == VPK_ACT_F16 ? vp_f32_to_f16(v) : vp_f32_to_bf16(v);
        off += got[i] != bits;
    }
    char what[128];
    snprintf(what, sizeof what, "im2col %s from 8-bit tiles == im2col of the CPU-normalised tiles",
             act_name(act));
    gpu_check(what, bad == 0 && off == 0,
              "%zu of %zu patch values differ (first at %zu); %zu not the bf16 pixel", bad, n,
              first, off);
    cudaFree(du8), cudaFree(dnorm), cudaFree(dtable), cudaFree(want_d), cudaFree(got_d);
    free(u8), free(norm), free(want), free(got);
}

static void test_pixel_shuffle(void)
{
    size_t tiles = 2, grid = 32, ch = 64, tt = 1 + grid * grid, half = grid / 2;
    float *x = gpu_normal(tiles * tt * ch, 1.0f, 0.0f);
    float *dx = gpu_upload(x, tiles * tt * ch * 4), *dout = gpu_alloc(tiles * half * half * 4 * ch * 4);
    GPU_OK(vpk_pixel_shuffle(stream, dout, dx, tiles, tt, grid, (int)ch));
    size_t n = tiles * half * half * 4 * ch;
    float *got = host_alloc(n * 4), *want = host_alloc(n * 4);
    gpu_download(got, dout, n * 4);
    for (size_t t = 0; t < tiles; t++)
        vp_cpu_pixel_shuffle(want + t * half * half * 4 * ch, x + t * tt * ch + ch, grid, ch);
    gpu_close("pixel shuffle v2 (class token skipped)", got, want, n, 0.0, 0.0);
    cudaFree(dx), cudaFree(dout);
    free(x), free(got), free(want);
}

static void test_embed(void)
{
    size_t n = 300, h = 256, vocab = 1000, rows = 40;
    float *emb = gpu_normal(vocab * h, 0.02f, 0.0f), *feat = gpu_normal(rows * h, 1.0f, 0.0f);
    uint16_t *eb = round_bf16(emb, vocab * h);
    int32_t *tok = host_alloc(n * 4), *img = host_alloc(n * 4), *idx = host_alloc(n * 4);
    for (size_t t = 0; t < n; t++) {
        tok[t] = (int32_t)((t * 7919) % vocab);
        img[t] = t % 5 == 0 ? (int32_t)(t / 5 % rows) : -1;
        idx[t] = (int32_t)((t * 31) % n);
    }
    vp_bf16 *de = gpu_upload(eb, vocab * h * 2);
    float *df = gpu_upload(feat, rows * h * 4), *dx = gpu_alloc(n * h * 4), *dg = gpu_alloc(n * h * 4);
    int32_t *dt = gpu_upload(tok, n * 4), *di = gpu_upload(img, n * 4), *dix = gpu_upload(idx, n * 4);
    GPU_OK(vpk_embed(stream, dx, dt, di, n, (int)h, de, df));
    GPU_OK(vpk_gather_rows(stream, dg, dx, dix, n, (int)h));
    float *got = host_alloc(n * h * 4), *want = host_alloc(n * h * 4), *g2 = host_alloc(n * h * 4);
    gpu_download(got, dx, n * h * 4);
    gpu_download(g2, dg, n * h * 4);
    for (size_t t = 0; t < n; t++)
        memcpy(want + t * h, img[t] >= 0 ? feat + (size_t)img[t] * h : emb + (size_t)tok[t] * h, h * 4);
    gpu_close("embedding gather + image-feature scatter", got, want, n * h, 0.0, 0.0);
    for (size_t t = 0; t < n; t++)
        memcpy(want + t * h, got + (size_t)idx[t] * h, h * 4);
    gpu_close("row gather (output rows)", g2, want, n * h, 0.0, 0.0);
    cudaFree(de), cudaFree(df), cudaFree(dx), cudaFree(dg), cudaFree(dt), cudaFree(di), cudaFree(dix);
    free(emb), free(feat), free(eb), free(tok), free(img), free(idx), free(got), free(want), free(g2);
}

/* vpk_kv_copy: loads fill qkv rows' keys and values from cache rows, stores copy other
 * rows' into the cache, bit for bit, and nothing else changes; for InternLM2's layout
 * (vectors) and an odd one (elements). */
static void test_kv_copy(int kv_heads, int qpk, int hd)
{
    vpk_attn_layout lay = {.row_stride = (size_t)kv_heads * (size_t)(qpk + 2) * (size_t)hd,
                           .heads = kv_heads * qpk, .q_per_kv = qpk, .head_dim = hd,
                           .group_stride = (size_t)(qpk + 2) * (size_t)hd, .q_base = 0,
                           .k_base = (size_t)qpk * (size_t)hd, .v_base = (size_t)(qpk + 1) * (size_t)hd};
    size_t n = 70, rows = 50, crow = 2 * (size_t)kv_heads * (size_t)hd;
    float *fq = gpu_normal(n * lay.row_stride, 1.0f, 0.0f), *fc = gpu_normal(rows * crow, 1.0f, 0.0f);
    uint16_t *q = round_bf16(fq, n * lay.row_stride), *c = round_bf16(fc, rows * crow);
    int32_t map[2 * 30];
    size_t n_loads = 12, n_map = 30;
    for (size_t i = 0; i < n_map; i++) /* loads: qkv rows 40.. from cache 0..; stores: rows 3.. to 20.. */
        map[2 * i] = (int32_t)(i < n_loads ? 40 + i : 3 + i), map[2 * i + 1] = (int32_t)(i < n_loads ? i : 20 + i);
    vp_bf16 *dq = gpu_upload(q, n * lay.row_stride * 2), *dc = gpu_upload(c, rows * crow * 2);
    int32_t *dm = gpu_upload(map, sizeof map);
    GPU_OK(vpk_kv_copy(stream, dq, &lay, dc, dm, n_loads, n_map));
    uint16_t *gq = host_alloc(n * lay.row_stride * 2), *gc = host_alloc(rows * crow * 2);
    gpu_download(gq, dq, n * lay.row_stride * 2);
    gpu_download(gc, dc, rows * crow * 2);
    for (size_t i = 0; i < n_map; i++) { /* the host's copy, loads first */
        uint16_t *r = q + (size_t)map[2 * i] * lay.row_stride, *cr = c + (size_t)map[2 * i + 1] * crow;
        for (int g = 0; g < kv_heads; g++)
            for (int part = 0; part < 2; part++) {
                uint16_t *qp = r + (size_t)g * lay.group_stride + (part ? lay.v_base : lay.k_base);
                uint16_t *cp = cr + ((size_t)part * (size_t)kv_heads + (size_t)g) * (size_t)hd;
                memcpy(i < n_loads ? qp : cp, i < n_loads ? cp : qp, (size_t)hd * 2);
            }
    }
    char what[96];
    snprintf(what, sizeof what, "kv cache copy %d groups x (%d + 2) x %d", kv_heads, qpk, hd);
    gpu_check(what, !memcmp(gq, q, n * lay.row_stride * 2) && !memcmp(gc, c, rows * crow * 2),
              "qkv rows or cache rows differ from the host's copy");
    cudaFree(dq), cudaFree(dc), cudaFree(dm);
    free(fq), free(fc), free(q), free(c), free(gq), free(gc);
}

/* Unpacks q, k, v of every token from a qkv buffer laid out as `lay` (CPU twin layout). */
static void unpack_qkv(const float *qkv, size_t n, const vpk_attn_layout *lay, int kv_heads,
                       float *q, float *k, float *v)
{
    size_t d = (size_t)lay->head_dim;
    for (size_t t = 0; t < n; t++) {
        const float *r = qkv + t * lay->row_stride;
        for (int h = 0; h < lay->heads; h++) {
            size_t g = (size_t)(h / lay->q_per_kv);
            memcpy(q + (t * (size_t)lay->heads + (size_t)h) * d,
                   r + g * lay->group_stride + lay->q_base + (size_t)(h % lay->q_per_kv) * d, d * 4);
        }
        for (int g = 0; g < kv_heads; g++) {
            memcpy(k + (t * (size_t)kv_heads + (size_t)g) * d, r + (size_t)g * lay->group_stride + lay->k_base, d * 4);
            memcpy(v + (t * (size_t)kv_heads + (size_t)g) * d, r + (size_t)g * lay->group_stride + lay->v_base, d * 4);
        }
    }
}

/* every launch shape of the fast kernel (vpk_attention_shape_ok picks those a layout allows) */
static const vpk_attn_shape attn_shapes[] = {{16, 1, 64}, {16, 2, 64}, {32, 1, 64}, {32, 2, 64},
                                             {32, 4, 64}, {32, 1, 32}, {32, 2, 32}, {32, 4, 32}};

/* fp16 bits -> float (normals, subnormals, zero, inf/NaN as inf/NaN). */
static float f16_to_f32(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return h & 0x8000 ? -v : v;
}

/* every variant of the wgmma kernel: 1 or 2 heads per block, with and without overlap;
 * the warp-specialised TMA kernel (head 128 with 2 heads a block, 64 with 1) */
#define WG_TMA (VPK_WGMMA_OVERLAP | VPK_WGMMA_TMA)
static const int wgmma_variants[] = {1, 2, 1 | VPK_WGMMA_OVERLAP, 2 | VPK_WGMMA_OVERLAP, 1 | WG_TMA,
                                     2 | WG_TMA};

static const char *wgmma_name(int variant)
{
    switch (variant) {
    case 1: return "x1";
    case 2: return "x2";
    case 1 | VPK_WGMMA_OVERLAP: return "x1 overlapped";
    case 2 | VPK_WGMMA_OVERLAP: return "x2 overlapped";
    case 1 | WG_TMA: return "x1 warp-specialised TMA";
    case 2 | WG_TMA: return "x2 warp-specialised TMA";
    default: return "?";
    }
}

/* The transposed values (exact in fp16, zeros in the padding) and every wgmma variant on
 * the fast kernel's inputs. */
static void test_attention_wgmma(const char *label, const vpk_attn_layout *lay, size_t n,
                                 const uint16_t *qkvb, const vp_bf16 *dqkv,
                                 const vp_attn_item *ditems, size_t n_items, vp_bf16 *dout,
                                 uint16_t *ob, const float *want, float scale)
{
    size_t groups = (size_t)(lay->heads / lay->q_per_kv), hd = (size_t)lay->head_dim;
    size_t np = vp_round8(n), qw = (size_t)lay->heads * hd;
    uint16_t *dvt = gpu_alloc(groups * hd * np * 2);
    GPU_OK(cudaMemset(dvt, 0x7f, groups * hd * np * 2)); /* NaN in fp16: unwritten padding shows */
    GPU_OK(vpk_attention_vt(stream, dvt, dqkv, lay, n));
    uint16_t *vt = host_alloc(groups * hd * np * 2);
    gpu_download(vt, dvt, groups * hd * np * 2);
    size_t bad = 0; /* fp16 holds these bf16 values exactly (|v| in [2^-14, 65504] or 0);
                     * fp16 values (fp16 activations) are copied */
    for (size_t g = 0; g < groups; g++)
        for (size_t d = 0; d < hd; d++)
            for (size_t t = 0; t < np; t++) {
                float w = 0.0f;
                if (t < n) {
                    uint16_t bits = qkvb[t * lay->row_stride + g * lay->group_stride + lay->v_base + d];
                    w = lay->act == VPK_ACT_F16 ? vp_f16_to_f32(bits) : vp_bf16_to_f32(bits);
                    if (lay->act != VPK_ACT_F16 && fabsf(w) < 0x1p-14f)
                        continue; /* fp16 subnormals: not exact, not asserted */
                }
                bad += f16_to_f32(vt[(g * hd + d) * np + t]) != w;
            }
    char what[128];
    snprintf(what, sizeof what, "values transposed %s (%zu tokens, padded %zu)", label, n, np);
    gpu_check(what, bad == 0, "%zu of %zu elements differ", bad, groups * hd * np);
    for (size_t vi = 0; vi < sizeof wgmma_variants / sizeof wgmma_variants[0]; vi++) {
        int var = wgmma_variants[vi];
        if (!vpk_attention_wgmma_supports(lay, var))
            continue;
        GPU_OK(cudaMemset(dout, 0xff, n * qw * 2));
        GPU_OK(vpk_attention_wgmma(stream, dout, qw, dqkv, dvt, n, lay, var, ditems, n_items, scale));
        gpu_download(ob, dout, n * qw * 2);
        float *got = from_act(ob, n * qw, lay->act);
        snprintf(what, sizeof what, "attention wgmma %s %s (%zu tokens)", wgmma_name(var), label, n);
        gpu_close(what, got, want, n * qw, 2e-2, 2e-2);
        free(got);
    }
    cudaFree(dvt);
    free(vt);
}

/* A prefix of plen tokens and one user of it, len tokens: key ranges of up to
 * (plen + len) / 64 tiles, every stage ring wrapped many times (the TMA kernel's four
 * stages flip their parity every fourth tile). */
static void long_batch(test_batch *t, size_t plen, size_t len)
{
    memset(t, 0, sizeof *t);
    size_t n = plen + len;
    t->seqs = tb_alloc(2, sizeof *t->seqs);
    t->tokens = tb_alloc(n, sizeof *t->tokens);
    t->positions = tb_alloc(n, sizeof *t->positions);
    t->image_row = tb_alloc(n, sizeof *t->image_row);
    t->out_index = tb_alloc(1, sizeof *t->out_index);
    t->seqs[0] = (vp_seq){.start = 0, .len = plen, .prefix_seq = -1, .rope_len = n};
    t->seqs[1] = (vp_seq){.start = plen, .len = len, .prefix_seq = 0, .rope_len = n};
    for (size_t i = 0; i < n; i++)
        t->tokens[i] = (int32_t)(i % 97), t->positions[i] = (int32_t)i, t->image_row[i] = -1;
    t->out_index[0] = (int32_t)n - 1;
    t->b = (vp_batch){.n_tokens = n, .tokens = t->tokens, .positions = t->positions,
                      .n_seqs = 2, .seqs = t->seqs, .n_out = 1, .out_index = t->out_index};
}

/* Causal packed attention with prefixes (causal 1: random groups; 2: one long prefix and
 * its user, max_len tokens in all) or bidirectional tiles (causal 0). */
static void test_attention(const char *label0, int causal, int heads, int kv_heads, int hd,
                           size_t max_len, int act)
{
    char label[48];
    snprintf(label, sizeof label, "%.40s%s", label0, act == VPK_ACT_F16 ? " fp16" : "");
    vp_error err = {0};
    test_batch tb;
    size_t n, tiles = 2, tt = 1025;
    if (causal == 2) {
        long_batch(&tb, max_len / 3, max_len - max_len / 3);
        n = tb.b.n_tokens;
    } else if (causal) {
        test_batch_make(&tb, 3, max_len, 100, 0);
        n = tb.b.n_tokens;
    } else {
        memset(&tb, 0, sizeof tb);
        n = tiles * tt;
    }
    int qpk = heads / kv_heads;
    vpk_attn_layout lay;
    if (causal) /* InternLM2 packed groups */
        lay = (vpk_attn_layout){.row_stride = (size_t)kv_heads * (qpk + 2) * hd, .heads = heads,
                                .q_per_kv = qpk, .head_dim = hd,
                                .group_stride = (size_t)(qpk + 2) * hd, .q_base = 0,
                                .k_base = (size_t)qpk * hd, .v_base = (size_t)(qpk + 1) * hd};
    else /* InternViT q | k | v */
        lay = (vpk_attn_layout){.row_stride = 3 * (size_t)heads * hd, .heads = heads, .q_per_kv = 1,
                                .head_dim = hd, .group_stride = (size_t)hd, .q_base = 0,
                                .k_base = (size_t)heads * hd, .v_base = 2 * (size_t)heads * hd};
    lay.act = act;
    size_t row = lay.row_stride, qw = (size_t)heads * hd;
    /* components of variance 2: q.k / sqrt(d) has std 2, a peaked softmax that a wrong
     * mask, scale or head mapping visibly changes */
    float *qkv = gpu_normal(n * row, 1.41421356f, 0.0f);
    uint16_t *qkvb = round_act(qkv, n * row, act);
    float *q = host_alloc(n * qw * 4), *k = host_alloc(n * (size_t)kv_heads * hd * 4);
    float *v = host_alloc(n * (size_t)kv_heads * hd * 4), *want = host_alloc(n * qw * 4);
    unpack_qkv(qkv, n, &lay, kv_heads, q, k, v);
    if (causal)
        vp_cpu_attention_causal(NULL, want, q, k, v, n, heads, kv_heads, hd, tb.b.seqs, tb.b.n_seqs, &err);
    else
        vp_cpu_attention_tiles(NULL, want, q, k, v, tiles, tt, heads, hd, &err);
    vp_bf16 *dqkv = gpu_upload(qkvb, n * row * 2), *dout = gpu_alloc(n * qw * 2);
    float scale = (float)(1.0 / sqrt((double)hd));
    /* fast kernel on the planned items */
    size_t cap = causal ? vp_attn_causal_items_max(n, tb.b.n_seqs, VP_ATTN_BQ)
                        : vp_attn_tile_items(tiles, tt, VP_ATTN_BQ), n_items = 0;
    vp_attn_item *items = host_alloc(cap * sizeof *items);
    int prc = causal ? vp_attn_plan_causal(tb.b.seqs, tb.b.n_seqs, n, VP_ATTN_BQ, items, cap, &n_items, &err)
                     : vp_attn_plan_tiles(tiles, tt, VP_ATTN_BQ, items, cap, &n_items, &err);
    uint16_t *ob = host_alloc(n * qw * 2);
    char what[128];
    int mma_ok = vpk_attention_fast_supports(&lay, qw); /* bf16 only */
    int wg_ok = vpk_attention_wgmma_available() && vpk_attention_wgmma_supports(&lay, 1);
    if (prc == 0 && (mma_ok || wg_ok)) {
        vp_attn_item *ditems = gpu_upload(items, n_items * sizeof *items);
        for (size_t si = 0; mma_ok && si < sizeof attn_shapes / sizeof attn_shapes[0]; si++) {
            const vpk_attn_shape *sh = &attn_shapes[si];
            if (!vpk_attention_shape_ok(&lay, sh))
                continue;
            GPU_OK(cudaMemset(dout, 0xff, n * qw * 2)); /* NaN: an unwritten row fails */
            GPU_OK(vpk_attention_fast(stream, dout, qw, dqkv, &lay, sh, ditems, n_items, scale));
            gpu_download(ob, dout, n * qw * 2);
            float *got = from_bf16(ob, n * qw);
            snprintf(what, sizeof what, "attention fast %dx%dx%d %s (%zu tokens)",
                     sh->rows_per_warp, sh->heads_per_block, sh->keys_per_step, label, n);
            gpu_close(what, got, want, n * qw, 2e-2, 2e-2);
            free(got);
        }
        if (wg_ok)
            test_attention_wgmma(label, &lay, n, qkvb, dqkv, ditems, n_items, dout, ob, want, scale);
        cudaFree(ditems);
    }
    /* simple kernel on per-token ranges */
    int32_t *ranges = host_alloc(n * 3 * 4);
    if (causal)
        vp_attn_token_ranges_causal(tb.b.seqs, tb.b.n_seqs, n, ranges, &err);
    else
        vp_attn_token_ranges_tiles(tiles, tt, ranges);
    int32_t *dr = gpu_upload(ranges, n * 3 * 4);
    GPU_OK(cudaMemset(dout, 0xff, n * qw * 2));
    GPU_OK(vpk_attention_simple(stream, dout, qw, dqkv, &lay, dr, n, scale));
    gpu_download(ob, dout, n * qw * 2);
    float *got = from_act(ob, n * qw, act);
    snprintf(what, sizeof what, "attention simple %s (%zu tokens)", label, n);
    gpu_close(what, got, want, n * qw, 4e-3, 1e-2);
    /* the last layer's form: some query rows only, out of order, one twice; each output
     * row exactly the simple kernel's row of its token */
    size_t n_rows = 0;
    int32_t *rows = host_alloc((n / 5 + 3) * 4);
    for (size_t t = n; t-- > 0;)
        if (t % 5 == 3 || t == 0)
            rows[n_rows++] = (int32_t)t;
    rows[n_rows++] = rows[0];
    int32_t *drows = gpu_upload(rows, n_rows * 4);
    vp_bf16 *drout = gpu_alloc(n_rows * qw * 2);
    GPU_OK(cudaMemset(drout, 0xff, n_rows * qw * 2));
    GPU_OK(vpk_attention_simple_rows(stream, drout, qw, dqkv, &lay, dr, drows, n_rows, scale));
    uint16_t *rb = host_alloc(n_rows * qw * 2);
    gpu_download(rb, drout, n_rows * qw * 2);
    size_t differ = 0;
    for (size_t i = 0; i < n_rows; i++)
        differ += memcmp(rb + i * qw, ob + (size_t)rows[i] * qw, qw * 2) != 0;
    snprintf(what, sizeof what, "attention simple, %zu rows of %s", n_rows, label);
    gpu_check(what, differ == 0, "%zu of %zu rows differ from the all-token kernel's", differ,
              n_rows);
    /* the block kernel the last layer runs: the CPU's rows, and within a bf16 rounding of
     * the simple kernel's (the same fp32 maths, summed in another order) */
    GPU_OK(cudaMemset(drout, 0xff, n_rows * qw * 2));
    GPU_OK(vpk_attention_rows(stream, drout, qw, dqkv, &lay, dr, drows, n_rows, scale));
    gpu_download(rb, drout, n_rows * qw * 2);
    float *rgot = from_act(rb, n_rows * qw, act), *rwant = host_alloc(n_rows * qw * 4);
    size_t apart = 0;
    for (size_t i = 0; i < n_rows; i++) {
        memcpy(rwant + i * qw, want + (size_t)rows[i] * qw, qw * 4);
        for (size_t c = 0; c < qw; c++) {
            float a = rgot[i * qw + c], b = got[(size_t)rows[i] * qw + c];
            apart += !(fabsf(a - b) <= fabsf(b) * (float)(2 * act_rel(act)) + 1e-6f);
        }
    }
    snprintf(what, sizeof what, "attention rows, %zu rows of %s", n_rows, label);
    gpu_close(what, rgot, rwant, n_rows * qw, 4e-3, 1e-2);
    snprintf(what, sizeof what, "attention rows = simple rows, %s", label);
    gpu_check(what, apart == 0, "%zu of %zu values more than a bf16 rounding apart", apart,
              n_rows * qw);
    free(rgot), free(rwant);
    if (act == VPK_ACT_F16) /* the mma.sync kernel is bf16 only: it must refuse */
        gpu_check("mma.sync attention refuses fp16 q/k/v", !mma_ok,
                  "the bf16-only kernel accepts an fp16 layout");
    cudaFree(drows), cudaFree(drout);
    free(rows), free(rb);
    cudaFree(dqkv), cudaFree(dout), cudaFree(dr);
    free(qkv), free(qkvb), free(q), free(k), free(v), free(want), free(items), free(ob), free(got);
    free(ranges);
    if (causal)
        test_batch_free(&tb);
}

/* fp16 activations' weights: bf16 -> fp16 in place, the host's fp16 of each bf16 value,
 * and the values beyond fp16's range counted (they become infinities). */
static void test_bf16_to_f16(void)
{
    size_t n = 100003;
    float *x = gpu_normal(n, 0.05f, 0.0f);
    size_t want_over = 0;
    for (size_t i = 0; i < n; i += 997) /* beyond fp16, tiny ones (its subnormals), and 65280:
                                         * the largest bf16 value inside fp16's range */
        x[i] = i % 3 == 0 ? 7.0e4f * (i % 2 ? -1.0f : 1.0f) : i % 3 == 1 ? 3.0e-7f : 65280.0f;
    uint16_t *xb = round_bf16(x, n), *got = host_alloc(n * 2);
    for (size_t i = 0; i < n; i++)
        want_over += isinf(vp_f16_to_f32(vp_f32_to_f16(x[i]))) != 0; /* glibc: -1 for -inf */
    vp_bf16 *dx = gpu_upload(xb, n * 2);
    unsigned long long *dover = gpu_alloc(sizeof *dover), over = 0;
    GPU_OK(cudaMemset(dover, 0, sizeof *dover));
    GPU_OK(vpk_bf16_to_f16(stream, dx, n, dover));
    gpu_download(got, dx, n * 2);
    gpu_download(&over, dover, sizeof over);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += got[i] != vp_f32_to_f16(x[i]);
    gpu_check("bf16 -> fp16 weights in place", bad == 0 && over == want_over && want_over > 0,
              "%zu of %zu values differ from the host's; %llu counted beyond fp16, %zu expected",
              bad, n, over, want_over);
    cudaFree(dx), cudaFree(dover);
    free(x), free(xb), free(got);
}

/* The random weights on the GPU against the host rule (mkmodel's values). */
static void test_random_and_convert(void)
{
    vp_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.vision.hidden = 1024, cfg.llm.hidden = 4096, cfg.llm.heads = 32, cfg.llm.kv_heads = 8;
    cfg.llm.head_dim = 128;
    static const struct { const char *name; vp_init_kind init; int64_t rows, cols; } t[] = {
        {"language_model.model.layers.3.attention.wqkv.weight", VP_INIT_QKV, 6144, 4096},
        {"vision_model.encoder.layers.0.attn.qkv.weight", VP_INIT_QKV, 3072, 1024},
        {"language_model.output.weight", VP_INIT_HEAD, 400, 4096},
        {"vision_model.encoder.layers.0.ls1", VP_INIT_SCALE, 1, 1024},
        {"language_model.model.norm.weight", VP_INIT_NORM, 1, 4096},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t shape[2] = {t[i].rows, t[i].cols};
        vp_rand_rule r;
        vp_error err = {0};
        if (vp_rand_rule_make(&cfg, t[i].name, t[i].init, 2, shape, 5, 342, 285, &r, &err)) {
            printf("FAIL rule %s: %s\n", t[i].name, err.message);
            gpu_fail++;
            continue;
        }
        size_t n = (size_t)(t[i].rows * t[i].cols);
        uint16_t *dev = gpu_alloc(n * 2), *host = host_alloc(n * 2);
        GPU_OK(vpk_random_fill(stream, dev, VP_CW_BF16, &r, 1, 0, n, (size_t)t[i].cols, (size_t)t[i].cols));
        gpu_download(host, dev, n * 2);
        float *want = host_alloc(n * 4);
        vp_rand_rule_fill(&r, 0, n, true, want);
        size_t off1 = 0, worse = 0;
        for (size_t e = 0; e < n; e++) {
            uint16_t wb = vp_f32_to_bf16(want[e]);
            if (host[e] != wb) {
                int d = (int)host[e] - (int)wb;
                if (d == 1 || d == -1)
                    off1++;
                else
                    worse++;
            }
        }
        int ok = worse == 0 && off1 * 10000 <= n; /* logf / sincosf may differ by an ulp */
        printf("%-4s random weights %-46s %zu values: %zu one bf16 ulp off, %zu further\n",
               ok ? "ok" : "FAIL", t[i].name, n, off1, worse);
        ok ? gpu_pass++ : gpu_fail++;
        cudaFree(dev);
        free(host), free(want);
    }
    /* conversion into a padded layout: f32 and f16 -> bf16 (rounded), bf16 -> f32 (exact) */
    size_t rows = 37, cols = 588, pitch = 592, n = rows * cols;
    float *x = gpu_normal(n, 1.0f, 0.0f);
    uint16_t *h16 = host_alloc(n * 2), *b16 = round_bf16(x, n);
    for (size_t i = 0; i < n; i++)
        h16[i] = vp_f32_to_f16(x[i]);
    float *want = host_alloc(rows * pitch * 4), *got = host_alloc(rows * pitch * 4);
    for (int src = 0; src < 3; src++) {
        const void *hsrc = src == VP_DT_F32 ? (const void *)x : src == VP_DT_F16 ? (const void *)h16 : (const void *)b16;
        size_t es = src == VP_DT_F32 ? 4 : 2;
        void *dsrc = gpu_upload(hsrc, n * es);
        uint16_t *dst = gpu_alloc(rows * pitch * 2);
        GPU_OK(cudaMemset(dst, 0, rows * pitch * 2));
        /* two chunks, as the uploader sends them */
        GPU_OK(vpk_convert(stream, dst, VP_CW_BF16, dsrc, src, 0, n / 2, cols, pitch));
        GPU_OK(vpk_convert(stream, dst, VP_CW_BF16, (const char *)dsrc + n / 2 * es, src, n / 2, n - n / 2, cols, pitch));
        uint16_t *ob = host_alloc(rows * pitch * 2);
        gpu_download(ob, dst, rows * pitch * 2);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < pitch; c++) {
                float v = c < cols ? (src == VP_DT_F16 ? vp_f16_to_f32(h16[r * cols + c]) : x[r * cols + c]) : 0.0f;
                want[r * pitch + c] = bf16_round(v);
                got[r * pitch + c] = vp_bf16_to_f32(ob[r * pitch + c]);
            }
        char what[64];
        snprintf(what, sizeof what, "convert %s -> bf16, padded rows", vp_dtype_name((vp_dtype)src));
        gpu_close(what, got, want, rows * pitch, 0.0, 0.0);
        cudaFree(dsrc), cudaFree(dst);
        free(ob);
    }
    free(x), free(h16), free(b16), free(want), free(got);
}

/* argv[1], when given, runs only the test with that label (--list prints the labels):
 * after a crash the CUDA context is lost, so run.sh reruns each test alone to find the
 * one at fault. */
static const char *only;
static int list_only;
#define RUN(label, call)                                                                   \
    do {                                                                                   \
        if (list_only) {                                                                   \
            puts(label);                                                                   \
        } else if (!only || !strcmp(label, only)) {                                        \
            printf("-- %s\n", label);                                                      \
            fflush(stdout);                                                                \
            call;                                                                          \
            GPU_OK(cudaDeviceSynchronize());                                               \
        }                                                                                  \
    } while (0)


/* Not a check: times each launch shape on W1's attention (one shared prefix of 3,587
 * tokens, 8 responses of 319; 32/8 heads of 128) and on 13 ViT tiles (16 heads of 64),
 * and prints TFLOP/s, so the default shape (vpk_attention_default_shape) is chosen on
 * measurements. */
static void bench_attention(int causal)
{
    vp_error err = {0};
    size_t n, plen = 3587, rlen = 319, users = 8, tiles = 13, tt = 1025;
    vp_seq seqs[9];
    vpk_attn_layout lay;
    double flops;
    if (causal) {
        seqs[0] = (vp_seq){.start = 0, .len = plen, .prefix_seq = -1, .rope_len = plen};
        for (size_t u = 0; u < users; u++)
            seqs[1 + u] = (vp_seq){.start = plen + u * rlen, .len = rlen, .prefix_seq = 0,
                                   .rope_len = plen + rlen};
        n = plen + users * rlen;
        lay = (vpk_attn_layout){.row_stride = 8 * 6 * 128, .heads = 32, .q_per_kv = 4,
                                .head_dim = 128, .group_stride = 6 * 128, .q_base = 0,
                                .k_base = 4 * 128, .v_base = 5 * 128};
        /* causal pairs: the prefix's triangle, each response's prefix block and triangle */
        double pairs = plen * (plen + 1) / 2.0 + users * (rlen * (double)plen + rlen * (rlen + 1) / 2.0);
        flops = 4.0 * pairs * 128 * 32;
    } else {
        n = tiles * tt;
        lay = (vpk_attn_layout){.row_stride = 3 * 1024, .heads = 16, .q_per_kv = 1, .head_dim = 64,
                                .group_stride = 64, .q_base = 0, .k_base = 1024, .v_base = 2048};
        flops = 4.0 * tiles * (double)tt * tt * 1024;
    }
    size_t qw = (size_t)lay.heads * (size_t)lay.head_dim;
    float *qkv = gpu_normal(n * lay.row_stride, 1.0f, 0.0f);
    uint16_t *qkvb = to_bf16(qkv, n * lay.row_stride);
    vp_bf16 *dqkv = gpu_upload(qkvb, n * lay.row_stride * 2), *dout = gpu_alloc(n * qw * 2);
    size_t cap = causal ? vp_attn_causal_items_max(n, 1 + users, VP_ATTN_BQ)
                        : vp_attn_tile_items(tiles, tt, VP_ATTN_BQ), n_items = 0;
    vp_attn_item *items = host_alloc(cap * sizeof *items);
    if (causal ? vp_attn_plan_causal(seqs, 1 + users, n, VP_ATTN_BQ, items, cap, &n_items, &err)
               : vp_attn_plan_tiles(tiles, tt, VP_ATTN_BQ, items, cap, &n_items, &err)) {
        printf("bench attention: %s\n", err.message);
        gpu_fail++;
        cudaFree(dqkv), cudaFree(dout);
        free(qkv), free(qkvb), free(items);
        return;
    }
    vp_attn_item *ditems = gpu_upload(items, n_items * sizeof *items);
    cudaEvent_t e0, e1;
    GPU_OK(cudaEventCreate(&e0));
    GPU_OK(cudaEventCreate(&e1));
    vpk_attn_shape def = vpk_attention_default_shape(&lay);
    for (size_t si = 0; si < sizeof attn_shapes / sizeof attn_shapes[0]; si++) {
        const vpk_attn_shape *sh = &attn_shapes[si];
        if (!vpk_attention_shape_ok(&lay, sh))
            continue;
        const int reps = 20;
        GPU_OK(vpk_attention_fast(stream, dout, qw, dqkv, &lay, sh, ditems, n_items, 0.088f));
        GPU_OK(cudaEventRecord(e0, stream));
        for (int r = 0; r < reps; r++)
            GPU_OK(vpk_attention_fast(stream, dout, qw, dqkv, &lay, sh, ditems, n_items, 0.088f));
        GPU_OK(cudaEventRecord(e1, stream));
        GPU_OK(cudaEventSynchronize(e1));
        float ms = 0.0f;
        GPU_OK(cudaEventElapsedTime(&ms, e0, e1));
        ms /= reps;
        printf("bench attention %s shape %dx%dx%d%s: %.3f ms per layer, %.0f TFLOP/s\n",
               causal ? "W1 language (32/8 heads d128)" : "W1 vision (13 tiles, 16 heads d64)",
               sh->rows_per_warp, sh->heads_per_block, sh->keys_per_step,
               !memcmp(sh, &def, sizeof def) ? " (default)" : "",
               ms, flops / (ms * 1e-3) / 1e12);
    }
    for (size_t vi = 0; vi < sizeof wgmma_variants / sizeof wgmma_variants[0] &&
                        vpk_attention_wgmma_available(); vi++) {
        int var = wgmma_variants[vi];
        if (!vpk_attention_wgmma_supports(&lay, var))
            continue;
        const int reps = 20;
        size_t groups = (size_t)(lay.heads / lay.q_per_kv);
        uint16_t *dvt = gpu_alloc(groups * (size_t)lay.head_dim * vp_round8(n) * 2);
        GPU_OK(vpk_attention_vt(stream, dvt, dqkv, &lay, n));
        GPU_OK(cudaEventRecord(e0, stream));
        for (int r = 0; r < reps; r++)
            GPU_OK(vpk_attention_vt(stream, dvt, dqkv, &lay, n));
        GPU_OK(cudaEventRecord(e1, stream));
        GPU_OK(cudaEventSynchronize(e1));
        float vt_ms = 0.0f, ms = 0.0f;
        GPU_OK(cudaEventElapsedTime(&vt_ms, e0, e1));
        GPU_OK(vpk_attention_wgmma(stream, dout, qw, dqkv, dvt, n, &lay, var, ditems, n_items, 0.088f));
        GPU_OK(cudaEventRecord(e0, stream));
        for (int r = 0; r < reps; r++)
            GPU_OK(vpk_attention_wgmma(stream, dout, qw, dqkv, dvt, n, &lay, var, ditems, n_items,
                                       0.088f));
        GPU_OK(cudaEventRecord(e1, stream));
        GPU_OK(cudaEventSynchronize(e1));
        GPU_OK(cudaEventElapsedTime(&ms, e0, e1));
        ms /= reps, vt_ms /= reps;
        printf("bench attention %s wgmma %s: %.3f ms per layer, %.0f TFLOP/s (+ values "
               "transposed %.3f ms)\n",
               causal ? "W1 language (32/8 heads d128)" : "W1 vision (13 tiles, 16 heads d64)",
               wgmma_name(var),
               ms, flops / (ms * 1e-3) / 1e12, vt_ms);
        if (var & VPK_WGMMA_TMA) /* its occupancy as planned: 1 block an SM, or 3 at head 64 */
            printf("bench attention %s wgmma %s: %d blocks an SM\n",
                   causal ? "W1 language" : "W1 vision", wgmma_name(var),
                   vpk_attention_tma_blocks_per_sm(lay.head_dim));
        cudaFree(dvt);
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(dqkv), cudaFree(dout), cudaFree(ditems);
    free(qkv), free(qkvb), free(items);
}

int main(int argc, char **argv)
{
    only = argc > 1 ? argv[1] : NULL;
    list_only = only && !strcmp(only, "--list");
    vp_gemm g, g16, gt; /* bf16 and fp16 products, bf16 with candidates timed (one
                         * workspace: used in turn) */
    void *ws = NULL;
    if (!list_only) {
        int count = 0;
        if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
            fprintf(stderr, "gpu_ops: no CUDA device\n");
            return 2;
        }
        struct cudaDeviceProp prop;
        GPU_OK(cudaGetDeviceProperties(&prop, 0));
        printf("gpu_ops on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
        GPU_OK(cudaStreamCreate(&stream));
        GPU_OK(vpk_attention_setup());
        if (vpk_gated_mlp_supports(4096, 14336))
            GPU_OK(vpk_gated_mlp_setup());
        ws = gpu_alloc(VP_GEMM_WORKSPACE_BYTES);
        vp_error err = {0};
        if (vp_gemm_init(&g, ws, VP_GEMM_WORKSPACE_BYTES, VPK_ACT_BF16, &err) ||
            vp_gemm_init(&g16, ws, VP_GEMM_WORKSPACE_BYTES, VPK_ACT_F16, &err) ||
            vp_gemm_init(&gt, ws, VP_GEMM_WORKSPACE_BYTES, VPK_ACT_BF16, &err)) {
            fprintf(stderr, "gpu_ops: %s\n", err.message);
            return 2;
        }
        gt.tune = 8;
    }
    RUN("gemm 300x520x264", test_gemm(&g, 300, 520, 264));     /* odd rows, small */
    /* VPRM_CUDA_GEMM_TUNE: whichever candidate wins, the same products; the timing runs
     * write a scratch output, so the accumulating product still adds to y once */
    RUN("gemm tuned 300x520x264", test_gemm(&gt, 300, 520, 264));
    RUN("gemm tuned 1030x3072x1024", test_gemm(&gt, 1030, 3072, 1024));
    RUN("gemm 48x4096x14336", test_gemm(&g, 48, 4096, 14336));   /* the last layer's w2 on the output rows */
    RUN("gemm 1030x3072x1024", test_gemm(&g, 1030, 3072, 1024));  /* ViT qkv on one tile */
    RUN("layernorm 37x1024 +residual", test_norm(0, 37, 1024, 1, 1e-6f, VPK_ACT_BF16)); /* ViT norm2 after attention */
    RUN("rmsnorm 29x4096", test_norm(1, 29, 4096, 0, 1e-5f, VPK_ACT_BF16)); /* InternLM2 attention_norm */
    RUN("layernorm 9x4096", test_norm(0, 9, 4096, 0, 1e-5f, VPK_ACT_BF16));  /* projector LayerNorm */
    RUN("rmsnorm 11x1024 +residual", test_norm(1, 11, 1024, 1, 1e-6f, VPK_ACT_BF16)); /* rms_norm ViT variant */
    RUN("layernorm 7x1000 +residual", test_norm(0, 7, 1000, 1, 1e-6f, VPK_ACT_BF16)); /* the general kernel */
    RUN("rmsnorm 5x3072", test_norm(1, 5, 3072, 0, 1e-5f, VPK_ACT_BF16)); /* registers, 6 float4 a thread */
    RUN("rms_bf16", test_rms_bf16(VPK_ACT_BF16));
    RUN("head", test_head());
    RUN("rope", test_rope(VPK_ACT_BF16));
    RUN("activations inter 1000", test_activations(1000, VPK_ACT_BF16));
    RUN("activations inter 1001", test_activations(1001, VPK_ACT_BF16));
    RUN("patch_embed", test_patch_embed(&g));
    RUN("im2col_u8", test_im2col_u8(VPK_ACT_BF16));
    RUN("pixel_shuffle", test_pixel_shuffle());
    RUN("embed", test_embed());
    RUN("kv_copy 8x4x128", test_kv_copy(8, 4, 128));
    RUN("kv_copy 3x1x20", test_kv_copy(3, 1, 20));
    RUN("attention causal+prefix GQA 32/8 d128", test_attention("causal+prefix GQA 32/8 d128", 1, 32, 8, 128, 130, VPK_ACT_BF16));
    RUN("attention causal+prefix GQA 2/1 d128", test_attention("causal+prefix GQA 2/1 d128", 1, 2, 1, 128, 400, VPK_ACT_BF16));
    RUN("attention long prefix+user GQA 4/2 d128", test_attention("long prefix+user GQA 4/2 d128", 2, 4, 2, 128, 1500, VPK_ACT_BF16));
    /* head size 64 on causal items too: the vision tiles alone give the wgmma kernel 17 key
     * tiles every time, never 1 or an even number */
    RUN("attention causal+prefix GQA 8/4 d64", test_attention("causal+prefix GQA 8/4 d64", 1, 8, 4, 64, 300, VPK_ACT_BF16));
    RUN("attention causal+prefix MHA 4/4 d32", test_attention("causal+prefix MHA 4/4 d32", 1, 4, 4, 32, 200, VPK_ACT_BF16));
    RUN("attention tiles 16 heads d64", test_attention("tiles 16 heads d64", 0, 16, 16, 64, 0, VPK_ACT_BF16));
    RUN("attention tiles 4 heads d16", test_attention("tiles 4 heads d16", 0, 4, 4, 16, 0, VPK_ACT_BF16));
    RUN("random_and_convert", test_random_and_convert());
    /* fp16 activations (VPRM_CUDA_ACTIVATIONS=fp16): every kernel that writes or reads them */
    RUN("fp16 bf16_to_f16", test_bf16_to_f16());
    RUN("fp16 gemm 300x520x264", test_gemm(&g16, 300, 520, 264));
    RUN("fp16 gemm 1030x3072x1024", test_gemm(&g16, 1030, 3072, 1024));
    RUN("fp16 gemm 48x4096x14336", test_gemm(&g16, 48, 4096, 14336));
    RUN("fp16 rmsnorm 29x4096", test_norm(1, 29, 4096, 0, 1e-5f, VPK_ACT_F16));
    RUN("fp16 layernorm 37x1024 +residual", test_norm(0, 37, 1024, 1, 1e-6f, VPK_ACT_F16));
    RUN("fp16 layernorm 7x1000 +residual", test_norm(0, 7, 1000, 1, 1e-6f, VPK_ACT_F16));
    RUN("fp16 rms_bf16", test_rms_bf16(VPK_ACT_F16));
    RUN("fp16 rope", test_rope(VPK_ACT_F16));
    RUN("fp16 activations inter 1000", test_activations(1000, VPK_ACT_F16));
    RUN("fp16 activations inter 1001", test_activations(1001, VPK_ACT_F16));
    RUN("fp16 patch_embed", test_patch_embed(&g16));
    RUN("fp16 im2col_u8", test_im2col_u8(VPK_ACT_F16));
    RUN("fp16 attention causal+prefix GQA 32/8 d128", test_attention("causal+prefix GQA 32/8 d128", 1, 32, 8, 128, 130, VPK_ACT_F16));
    RUN("fp16 attention causal+prefix GQA 2/1 d128", test_attention("causal+prefix GQA 2/1 d128", 1, 2, 1, 128, 400, VPK_ACT_F16));
    RUN("fp16 attention causal+prefix GQA 8/4 d64", test_attention("causal+prefix GQA 8/4 d64", 1, 8, 4, 64, 300, VPK_ACT_F16));
    RUN("fp16 attention causal+prefix MHA 4/4 d32", test_attention("causal+prefix MHA 4/4 d32", 1, 4, 4, 32, 200, VPK_ACT_F16));
    RUN("fp16 attention tiles 16 heads d64", test_attention("tiles 16 heads d64", 0, 16, 16, 64, 0, VPK_ACT_F16));
    RUN("gated mlp 300x384x264", test_gated_mlp(300, 264, 384, VPK_ACT_BF16, 16));
    RUN("gated mlp 1x128x256", test_gated_mlp(1, 256, 128, VPK_ACT_BF16, 16));
    RUN("gated mlp 37x128x56", test_gated_mlp(37, 56, 128, VPK_ACT_BF16, 16));
    RUN("gated mlp 200x1024x4096", test_gated_mlp(200, 4096, 1024, VPK_ACT_BF16, 16));
    RUN("gated mlp 600x5120x264", test_gated_mlp(600, 264, 5120, VPK_ACT_BF16, 16));
    RUN("fp16 gated mlp 300x384x264", test_gated_mlp(300, 264, 384, VPK_ACT_F16, 16));
    RUN("fp16 gated mlp 1030x512x1024", test_gated_mlp(1030, 1024, 512, VPK_ACT_F16, 16));
    RUN("fp16 gated mlp 200x1024x4096", test_gated_mlp(200, 4096, 1024, VPK_ACT_F16, 16));
    RUN("fp16 gated mlp 600x5120x264", test_gated_mlp(600, 264, 5120, VPK_ACT_F16, 16));
    RUN("fp16 gated mlp 600x5120x264 group 3", test_gated_mlp(600, 264, 5120, VPK_ACT_F16, 3));
    RUN("bench attention language", bench_attention(1));
    RUN("bench gated mlp", bench_gated_mlp(&g16));
    RUN("bench attention vision", bench_attention(0));
    if (list_only)
        return 0;
    vp_gemm_free(&g);
    vp_gemm_free(&g16);
    vp_gemm_free(&gt);
    cudaFree(ws);
    GPU_OK(cudaDeviceSynchronize());
    printf("gpu_ops: %d passed, %d failed\n", gpu_pass, gpu_fail);
    return gpu_fail ? 1 : 0;
}
