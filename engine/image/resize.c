/* Pillow's BICUBIC resize (libImaging/Resample.c as of Pillow 9.4), reimplemented from
 * its description so that the output is bit-identical:
 *  - a separable convolution with the a = -0.5 cubic kernel, support 2 input pixels,
 *    scaled by the downscale factor when shrinking (which antialiases);
 *  - per output pixel: centre = (x + 0.5) * scale, taps from (int)(centre - support + 0.5)
 *    to (int)(centre + support + 0.5) clipped to the image, weights
 *    kernel((tap - centre + 0.5) / filterscale) normalised to sum 1, all in double;
 *  - weights to fixed point with 22 fractional bits (rounded half away from zero),
 *    sums start at 0.5 in that fixed point, results shifted down and clamped to 0..255;
 *  - horizontal pass first (only over the rows the vertical pass reads), then vertical,
 *    with 8-bit rounding in between; a pass whose size does not change is skipped.
 * The arithmetic order of the double computations follows Pillow's so that every
 * weight rounds the same way (the build uses no FMA contraction: -std=c11).
 * Both passes have an SSE4.1 form and a scalar form (VP_RESIZE_NO_SIMD, or no SSE4.1);
 * tests/unit/test_image.c checks that both give the same bytes. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"

#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
#include <smmintrin.h>
#endif

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_kernel(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Taps of one resampling direction. */
typedef struct resample_plan {
    int ksize;          /* most taps of one output pixel */
    int *bounds;        /* [out_size][2]: first input index, number of taps */
    int32_t *coeffs;    /* [out_size][ksize]: fixed-point weights */
} resample_plan;

static void plan_free(resample_plan *p)
{
    free(p->bounds);
    free(p->coeffs);
    p->bounds = NULL;
    p->coeffs = NULL;
}

static int plan_build(uint32_t in_size, uint32_t out_size, resample_plan *p)
{
    const double filter_support = 2.0;
    /* Pillow takes the box as floats: in1 - in0 is (float)in_size, exact here. */
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filter_support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    p->ksize = ksize;
    p->bounds = malloc(sizeof(int) * 2 * out_size);
    p->coeffs = malloc(sizeof(int32_t) * (size_t)ksize * out_size);
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!p->bounds || !p->coeffs || !k) {
        free(k);
        plan_free(p);
        return -1;
    }
    for (uint32_t xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > (int)in_size)
            xmax = (int)in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = bicubic_kernel((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        int32_t *kk = p->coeffs + (size_t)xx * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? k[x] : 0.0;
            kk[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        p->bounds[2 * xx] = xmin;
        p->bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return 0;
}

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS; /* arithmetic shift: floor, as Pillow's lookup-table index */
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* One pass over a range of output rows; run by one or several threads. */
typedef struct pass_job {
    const uint8_t *in;     /* [in_rows][in_w][3] */
    uint8_t *out;          /* [out_rows][out_w][3] */
    uint32_t in_w, out_w;
    uint32_t row_offset;   /* horizontal pass: input row of output row 0 */
    const resample_plan *plan;
    uint32_t r0, r1;       /* output rows [r0, r1) */
    int32_t *acc;          /* vertical pass: [out_w * 3] scratch of this job */
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
    __m128i *row_wide;     /* horizontal pass: [in_w] input row widened to 32-bit lanes */
    const __m128i *k_wide; /* horizontal pass: [out_w][ksize] the weights, each in 4 lanes */
#endif
    void (*run)(const struct pass_job *j);
} pass_job;

#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
/* The 8-bit results of four 32-bit sums: shifted down, then clamped to 0..255 by the
 * saturating packs (int32 -> int16 -> uint8 saturation is clip8's clamp). */
static inline __m128i clip8x4(__m128i s)
{
    s = _mm_srai_epi32(s, PRECISION_BITS);
    s = _mm_packs_epi32(s, s);
    return _mm_packus_epi16(s, s);
}

/* Horizontal pass with SSE4.1: each input row is widened once to 32-bit lanes R, G, B, x
 * (x: the next pixel's R, never stored), so one tap is a 4-lane multiply-add; the
 * integer sums are exactly the scalar ones. */
static void horizontal_rows(const pass_job *j)
{
    const resample_plan *p = j->plan;
    __m128i *wide = j->row_wide;
    for (uint32_t r = j->r0; r < j->r1; r++) {
        const uint8_t *src = j->in + ((size_t)r + j->row_offset) * j->in_w * 3;
        uint32_t x = 0;
        for (; x + 1 < j->in_w; x++) { /* 4 bytes from pixel x: inside the row */
            int32_t four;
            memcpy(&four, src + 3 * (size_t)x, 4);
            wide[x] = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(four));
        }
        wide[x] = _mm_setr_epi32(src[3 * x], src[3 * x + 1], src[3 * x + 2], 0);
        uint8_t *dst = j->out + (size_t)r * j->out_w * 3;
        for (uint32_t xx = 0; xx < j->out_w; xx++) {
            int xmin = p->bounds[2 * xx], n = p->bounds[2 * xx + 1];
            const __m128i *k = j->k_wide + (size_t)xx * p->ksize;
            const __m128i *q = wide + xmin;
            __m128i s = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
            for (int t = 0; t < n; t++)
                s = _mm_add_epi32(s, _mm_mullo_epi32(q[t], k[t]));
            int32_t v = _mm_cvtsi128_si32(clip8x4(s));
            memcpy(dst + 3 * (size_t)xx, &v, 3);
        }
    }
}

/* Vertical pass with SSE4.1, 16 bytes of a row at a time: the sums of every tap stay in
 * registers (four 4-lane accumulators), the same integer sums as the scalar pass. */
static void vertical_rows(const pass_job *j)
{
    const resample_plan *p = j->plan;
    size_t row_len = (size_t)j->out_w * 3;
    const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
    for (uint32_t r = j->r0; r < j->r1; r++) {
        int ymin = p->bounds[2 * r], n = p->bounds[2 * r + 1];
        const int32_t *k = p->coeffs + (size_t)r * p->ksize;
        const uint8_t *src = j->in + (size_t)ymin * row_len;
        uint8_t *dst = j->out + (size_t)r * row_len;
        size_t i = 0;
        for (; i + 16 <= row_len; i += 16) {
            __m128i s0 = half, s1 = half, s2 = half, s3 = half;
            for (int y = 0; y < n; y++) {
                __m128i px = _mm_loadu_si128((const __m128i *)(src + (size_t)y * row_len + i));
                __m128i w = _mm_set1_epi32(k[y]);
                s0 = _mm_add_epi32(s0, _mm_mullo_epi32(_mm_cvtepu8_epi32(px), w));
                s1 = _mm_add_epi32(s1, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(px, 4)), w));
                s2 = _mm_add_epi32(s2, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(px, 8)), w));
                s3 = _mm_add_epi32(s3, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(px, 12)), w));
            }
            s0 = _mm_srai_epi32(s0, PRECISION_BITS), s1 = _mm_srai_epi32(s1, PRECISION_BITS);
            s2 = _mm_srai_epi32(s2, PRECISION_BITS), s3 = _mm_srai_epi32(s3, PRECISION_BITS);
            _mm_storeu_si128((__m128i *)(dst + i),
                             _mm_packus_epi16(_mm_packs_epi32(s0, s1), _mm_packs_epi32(s2, s3)));
        }
        for (; i < row_len; i++) { /* the row's last bytes */
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++)
                s += src[(size_t)y * row_len + i] * k[y];
            dst[i] = clip8(s);
        }
    }
}
#else
static void horizontal_rows(const pass_job *j)
{
    const resample_plan *p = j->plan;
    for (uint32_t r = j->r0; r < j->r1; r++) {
        const uint8_t *src = j->in + ((size_t)r + j->row_offset) * j->in_w * 3;
        uint8_t *dst = j->out + (size_t)r * j->out_w * 3;
        for (uint32_t xx = 0; xx < j->out_w; xx++) {
            int xmin = p->bounds[2 * xx], n = p->bounds[2 * xx + 1];
            const int32_t *k = p->coeffs + (size_t)xx * p->ksize;
            const uint8_t *q = src + (size_t)xmin * 3;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                s0 += q[3 * x] * k[x];
                s1 += q[3 * x + 1] * k[x];
                s2 += q[3 * x + 2] * k[x];
            }
            dst[3 * xx] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
}

/* Vertical pass, a row at a time: the same integer sums as Pillow's per-pixel loop
 * (integer addition is exact), ordered so that the compiler can vectorise them. */
static void vertical_rows(const pass_job *j)
{
    const resample_plan *p = j->plan;
    size_t row_len = (size_t)j->out_w * 3;
    int32_t *acc = j->acc;
    for (uint32_t r = j->r0; r < j->r1; r++) {
        int ymin = p->bounds[2 * r], n = p->bounds[2 * r + 1];
        const int32_t *k = p->coeffs + (size_t)r * p->ksize;
        for (size_t i = 0; i < row_len; i++)
            acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const uint8_t *src = j->in + ((size_t)ymin + y) * row_len;
            int32_t w = k[y];
            for (size_t i = 0; i < row_len; i++)
                acc[i] += src[i] * w;
        }
        uint8_t *dst = j->out + (size_t)r * row_len;
        for (size_t i = 0; i < row_len; i++)
            dst[i] = clip8(acc[i]);
    }
}
#endif

static void *pass_thread(void *arg)
{
    const pass_job *j = arg;
    j->run(j);
    return NULL;
}

#define MAX_RESIZE_THREADS 64

/* Runs a pass over rows [0, rows) split into up to `threads` contiguous ranges. */
static int run_pass(pass_job base, uint32_t rows, int threads, vp_error *err)
{
    if (threads < 1)
        threads = 1;
    if (threads > MAX_RESIZE_THREADS)
        threads = MAX_RESIZE_THREADS;
    if ((uint32_t)threads > rows)
        threads = (int)(rows ? rows : 1);
    pass_job jobs[MAX_RESIZE_THREADS];
    pthread_t tid[MAX_RESIZE_THREADS];
    int started = 0, rc = 0;
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
    size_t acc_len = 0; /* the SIMD vertical pass sums in registers */
#else
    size_t acc_len = base.run == vertical_rows ? (size_t)base.out_w * 3 : 0;
#endif
    for (int t = 0; t < threads; t++) {
        jobs[t] = base;
        jobs[t].r0 = (uint32_t)((uint64_t)rows * t / threads);
        jobs[t].r1 = (uint32_t)((uint64_t)rows * (t + 1) / threads);
        jobs[t].acc = acc_len ? malloc(sizeof(int32_t) * acc_len) : NULL;
        int no_mem = acc_len && !jobs[t].acc;
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
        jobs[t].row_wide = NULL;
        if (base.run == horizontal_rows) {
            jobs[t].row_wide = aligned_alloc(16, sizeof(__m128i) * base.in_w);
            no_mem = !jobs[t].row_wide;
        }
#endif
        if (no_mem) {
            rc = vp_fail(err, VP_ERR_NOMEM, "image", "out of memory resizing");
            threads = t + 1;
            break;
        }
    }
    if (!rc) {
        for (int t = 1; t < threads; t++) {
            if (pthread_create(&tid[t], NULL, pass_thread, &jobs[t]) != 0)
                break;
            started = t;
        }
        /* Ranges whose thread did not start run here. */
        jobs[0].run(&jobs[0]);
        for (int t = started + 1; t < threads; t++)
            jobs[t].run(&jobs[t]);
        for (int t = 1; t <= started; t++)
            pthread_join(tid[t], NULL);
    }
    for (int t = 0; t < threads; t++) {
        free(jobs[t].acc);
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
        free(jobs[t].row_wide);
#endif
    }
    return rc;
}

int vp_image_resize(const vp_rgb_image *src, uint32_t out_w, uint32_t out_h, int threads,
                    vp_rgb_image *dst, vp_error *err)
{
    memset(dst, 0, sizeof *dst);
    if (!src->width || !src->height || !out_w || !out_h || out_w > VP_IMAGE_MAX_SIDE ||
        out_h > VP_IMAGE_MAX_SIDE)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "image", "cannot resize %ux%u to %ux%u",
                       src->width, src->height, out_w, out_h);
    size_t out_bytes = (size_t)out_w * out_h * 3;
    if (out_w == src->width && out_h == src->height) {
        /* Pillow returns a copy when the size does not change. */
        dst->pixels = malloc(out_bytes);
        if (!dst->pixels)
            return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u image", out_w,
                           out_h);
        memcpy(dst->pixels, src->pixels, out_bytes);
        dst->width = out_w;
        dst->height = out_h;
        return 0;
    }
    int need_h = out_w != src->width, need_v = out_h != src->height;
    resample_plan ph = {0}, pv = {0};
    uint8_t *tmp = NULL, *out = NULL;
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
    __m128i *k_wide = NULL;
#endif
    int rc = -1;
    if (plan_build(src->width, out_w, &ph) || plan_build(src->height, out_h, &pv)) {
        vp_fail(err, VP_ERR_NOMEM, "image", "out of memory resizing to %ux%u", out_w, out_h);
        goto done;
    }
    const uint8_t *cur = src->pixels;
    uint32_t cur_w = src->width;
    if (need_h) {
        /* Only the input rows the vertical pass reads. */
        int first = pv.bounds[0];
        int last = pv.bounds[2 * (out_h - 1)] + pv.bounds[2 * (out_h - 1) + 1];
        for (uint32_t i = 0; i < out_h; i++)
            pv.bounds[2 * i] -= first;
        uint32_t rows = (uint32_t)(last - first);
        tmp = malloc((size_t)out_w * rows * 3);
        if (!tmp) {
            vp_fail(err, VP_ERR_NOMEM, "image", "out of memory resizing to %ux%u", out_w, out_h);
            goto done;
        }
        pass_job job = {.in = src->pixels, .out = tmp, .in_w = src->width, .out_w = out_w,
                        .row_offset = (uint32_t)first, .plan = &ph, .run = horizontal_rows};
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
        size_t n_k = (size_t)out_w * (size_t)ph.ksize; /* shared by the pass's threads */
        k_wide = aligned_alloc(16, sizeof(__m128i) * n_k);
        if (!k_wide) {
            vp_fail(err, VP_ERR_NOMEM, "image", "out of memory resizing to %ux%u", out_w, out_h);
            goto done;
        }
        for (size_t i = 0; i < n_k; i++)
            k_wide[i] = _mm_set1_epi32(ph.coeffs[i]);
        job.k_wide = k_wide;
#endif
        if (run_pass(job, rows, threads, err))
            goto done;
        cur = tmp;
        cur_w = out_w;
    }
    if (need_v) {
        out = malloc(out_bytes);
        if (!out) {
            vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u image", out_w, out_h);
            goto done;
        }
        pass_job job = {.in = cur, .out = out, .in_w = cur_w, .out_w = cur_w, .plan = &pv,
                        .run = vertical_rows};
        if (run_pass(job, out_h, threads, err))
            goto done;
    } else {
        out = tmp;
        tmp = NULL;
    }
    dst->pixels = out;
    dst->width = out_w;
    dst->height = out_h;
    out = NULL;
    rc = 0;
done:
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
    free(k_wide);
#endif
    free(out);
    free(tmp);
    plan_free(&ph);
    plan_free(&pv);
    return rc;
}
