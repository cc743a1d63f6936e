/* Matrix product y = x . W^T + b, blocked over rows and columns and spread over the
 * pool. Every element is one vp_cpu_dot-equivalent sum, so the result does not depend
 * on the blocking, the thread count or where a row sits in the batch. */
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/cpu_simd.h"

/* Eight fp32 lanes kept as two 4-wide vectors: lane l accumulates the products
 * k = l (mod 8); the lanes are then combined in one fixed order. */
static inline float lanes_sum(v4f lo, v4f hi)
{
    v4f s = lo + hi;
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* One column's step: the same expression in vp_cpu_dot and vp_cpu_dot4, so both give
 * the same bits for the same inputs. */
static inline void lanes_step(v4f *lo, v4f *hi, v4f xl, v4f xh, const float *w)
{
    *lo += xl * v4f_load(w);
    *hi += xh * v4f_load(w + 4);
}

void vp_cpu_dot4(const float *x, const float *w0, const float *w1, const float *w2,
                 const float *w3, size_t n, float out[4])
{
    v4f a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
    size_t n8 = n - n % 8;
    for (size_t k = 0; k < n8; k += 8) {
        v4f xl = v4f_load(x + k), xh = v4f_load(x + k + 4);
        lanes_step(&a0, &b0, xl, xh, w0 + k);
        lanes_step(&a1, &b1, xl, xh, w1 + k);
        lanes_step(&a2, &b2, xl, xh, w2 + k);
        lanes_step(&a3, &b3, xl, xh, w3 + k);
    }
    float s0 = lanes_sum(a0, b0), s1 = lanes_sum(a1, b1), s2 = lanes_sum(a2, b2),
          s3 = lanes_sum(a3, b3);
    for (size_t k = n8; k < n; k++) {
        s0 += x[k] * w0[k];
        s1 += x[k] * w1[k];
        s2 += x[k] * w2[k];
        s3 += x[k] * w3[k];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

float vp_cpu_dot(const float *a, const float *b, size_t n)
{
    v4f lo = {0}, hi = {0};
    size_t n8 = n - n % 8;
    for (size_t k = 0; k < n8; k += 8)
        lanes_step(&lo, &hi, v4f_load(a + k), v4f_load(a + k + 4), b + k);
    float s = lanes_sum(lo, hi);
    for (size_t k = n8; k < n; k++)
        s += a[k] * b[k];
    return s;
}

enum { MM_ROW_BLOCK = 16, MM_COL_BLOCK = 64 };

typedef struct matmul_job {
    float *y;       /* [n][out] */
    const float *x; /* [n][in] */
    const float *w; /* [out][in] */
    const float *b; /* [out] or NULL */
    size_t n, in, out;
    size_t col_blocks;
} matmul_job;

static void matmul_block(void *ctx, size_t task, int thread)
{
    (void)thread;
    const matmul_job *j = ctx;
    size_t r0 = (task / j->col_blocks) * MM_ROW_BLOCK;
    size_t c0 = (task % j->col_blocks) * MM_COL_BLOCK;
    size_t r1 = r0 + MM_ROW_BLOCK < j->n ? r0 + MM_ROW_BLOCK : j->n;
    size_t c1 = c0 + MM_COL_BLOCK < j->out ? c0 + MM_COL_BLOCK : j->out;
    /* Four weight rows stay in cache while the block's x rows stream past them. */
    for (size_t c = c0; c < c1; c += 4) {
        const float *w[4];
        size_t nc = c1 - c < 4 ? c1 - c : 4;
        for (size_t q = 0; q < 4; q++) /* short quads repeat their last row */
            w[q] = j->w + (c + (q < nc ? q : nc - 1)) * j->in;
        for (size_t r = r0; r < r1; r++) {
            float d[4];
            vp_cpu_dot4(j->x + r * j->in, w[0], w[1], w[2], w[3], j->in, d);
            float *yr = j->y + r * j->out + c;
            for (size_t q = 0; q < nc; q++)
                yr[q] = d[q] + (j->b ? j->b[c + q] : 0.0f);
        }
    }
}

void vp_cpu_matmul(vp_pool *pool, float *y, const float *x, const float *w, const float *b,
                   size_t n, size_t in, size_t out)
{
    if (n == 0 || out == 0)
        return;
    matmul_job j = {.y = y, .x = x, .w = w, .b = b, .n = n, .in = in, .out = out,
                    .col_blocks = (out + MM_COL_BLOCK - 1) / MM_COL_BLOCK};
    size_t row_blocks = (n + MM_ROW_BLOCK - 1) / MM_ROW_BLOCK;
    vp_pool_for(pool, row_blocks * j.col_blocks, matmul_block, &j);
}
