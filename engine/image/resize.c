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
    int32_t max_abs;    /* the largest |weight| */
} resample_plan;

/* The SIMD vertical pass keeps a row's weights in registers' worth of stack: up to this
 * many taps (a downscale by 32 in height); more take the scalar pass. */
#define MAX_KSIZE 130

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
    p->max_abs = 0;
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
        for (int x = 0; x < ksize; x++) {
            int32_t a = kk[x] < 0 ? -kk[x] : kk[x];
            p->max_abs = a > p->max_abs ? a : p->max_abs;
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

/* Output row r of tile column c: the layout's tiles, each tile_w x tile_h pixels row-major. */
static inline uint8_t *out_row(const vp_resize_layout *l, uint32_t r, uint32_t c)
{
    size_t tile = (size_t)(r / l->tile_h) * l->tiles_across + c;
    return l->base + (tile * l->tile_h + r % l->tile_h) * (size_t)l->tile_w * 3;
}

/* One pass over a range of output rows; run by one or several threads. */
typedef struct pass_job {
    const uint8_t *in;     /* [in_rows][in_w][3] */
    vp_resize_layout out;  /* where output row r goes */
    uint32_t in_w, out_w;
    uint32_t row_offset;   /* horizontal pass: input row of output row 0 */
    const resample_plan *plan;
    uint32_t r0, r1;       /* output rows [r0, r1) */
    int32_t *acc;          /* scalar vertical pass: [out_w * 3] scratch of this job */
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
    __m128i *row_wide;     /* SIMD horizontal pass: [in_w] input row widened to 32-bit lanes */
    const __m128i *k_wide; /* SIMD horizontal pass: [out_w][ksize] the weights, each in 4 lanes */
#endif
    void (*run)(const struct pass_job *j);
} pass_job;

static void horizontal_rows_scalar(const pass_job *j)
{
    const resample_plan *p = j->plan;
    for (uint32_t r = j->r0; r < j->r1; r++) {
        const uint8_t *src = j->in + ((size_t)r + j->row_offset) * j->in_w * 3;
        for (uint32_t c = 0; c < j->out.tiles_across; c++) {
            uint8_t *dst = out_row(&j->out, r, c);
            for (uint32_t xx = c * j->out.tile_w; xx < (c + 1) * j->out.tile_w; xx++, dst += 3) {
                int xmin = p->bounds[2 * xx], n = p->bounds[2 * xx + 1];
                const int32_t *k = p->coeffs + (size_t)xx * p->ksize;
                const uint8_t *q = src + (size_t)xmin * 3;
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < n; x++) {
                    s0 += q[3 * x] * k[x];
                    s1 += q[3 * x + 1] * k[x];
                    s2 += q[3 * x + 2] * k[x];
                }
                dst[0] = clip8(s0);
                dst[1] = clip8(s1);
                dst[2] = clip8(s2);
            }
        }
    }
}

/* Bytes [i0, i1) of one output row, a byte at a time: the same integer sums as Pillow's
 * per-pixel loop (integer addition is exact), ordered so that the compiler can vectorise. */
static void vertical_bytes_scalar(const pass_job *j, uint32_t r, size_t i0, size_t i1,
                                  int32_t *acc, uint8_t *dst)
{
    const resample_plan *p = j->plan;
    size_t row_len = (size_t)j->out_w * 3;
    int ymin = p->bounds[2 * r], n = p->bounds[2 * r + 1];
    const int32_t *k = p->coeffs + (size_t)r * p->ksize;
    for (size_t i = i0; i < i1; i++)
        acc[i - i0] = 1 << (PRECISION_BITS - 1);
    for (int y = 0; y < n; y++) {
        const uint8_t *src = j->in + ((size_t)ymin + y) * row_len;
        int32_t w = k[y];
        for (size_t i = i0; i < i1; i++)
            acc[i - i0] += src[i] * w;
    }
    for (size_t i = i0; i < i1; i++)
        dst[i - i0] = clip8(acc[i - i0]);
}

static void vertical_rows_scalar(const pass_job *j)
{
    size_t seg = (size_t)j->out.tile_w * 3;
    for (uint32_t r = j->r0; r < j->r1; r++)
        for (uint32_t c = 0; c < j->out.tiles_across; c++)
            vertical_bytes_scalar(j, r, c * seg, (c + 1) * seg, j->acc, out_row(&j->out, r, c));
}

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
static void horizontal_rows_simd(const pass_job *j)
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
        for (uint32_t c = 0; c < j->out.tiles_across; c++) {
            uint8_t *dst = out_row(&j->out, r, c);
            for (uint32_t xx = c * j->out.tile_w; xx < (c + 1) * j->out.tile_w; xx++, dst += 3) {
                int xmin = p->bounds[2 * xx], n = p->bounds[2 * xx + 1];
                const __m128i *k = j->k_wide + (size_t)xx * p->ksize;
                const __m128i *q = wide + xmin;
                __m128i s = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
                for (int t = 0; t < n; t++)
                    s = _mm_add_epi32(s, _mm_mullo_epi32(q[t], k[t]));
                int32_t v = _mm_cvtsi128_si32(clip8x4(s));
                memcpy(dst, &v, 3);
            }
        }
    }
}

/* Vertical pass, 16 bytes of a row at a time, two taps per step: each weight k is split
 * as (k >> 11) * 2048 + (k & 2047), both halves 16-bit, so one pmaddwd multiplies two
 * rows' bytes by two taps' halves and adds them. Every sum is the scalar pass's integer
 * sum (exact: the products fit 32 bits, and wrapping additions of a total that fits come
 * out exact); plan_build keeps the weights where the high halves fit 16 bits. */
static void vertical_rows_simd(const pass_job *j)
{
    const resample_plan *p = j->plan;
    size_t row_len = (size_t)j->out_w * 3, seg = (size_t)j->out.tile_w * 3;
    const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1)), zero = _mm_setzero_si128();
    __m128i wh[MAX_KSIZE / 2 + 1], wl[MAX_KSIZE / 2 + 1];
    for (uint32_t r = j->r0; r < j->r1; r++) {
        int ymin = p->bounds[2 * r], n = p->bounds[2 * r + 1];
        const int32_t *k = p->coeffs + (size_t)r * p->ksize;
        int pairs = (n + 1) / 2;
        for (int m = 0; m < pairs; m++) {
            int32_t k0 = k[2 * m], k1 = 2 * m + 1 < n ? k[2 * m + 1] : 0;
            uint32_t h = (uint16_t)(k0 >> 11) | (uint32_t)(uint16_t)(k1 >> 11) << 16;
            uint32_t l = (uint32_t)(k0 & 2047) | (uint32_t)(k1 & 2047) << 16;
            wh[m] = _mm_set1_epi32((int32_t)h);
            wl[m] = _mm_set1_epi32((int32_t)l);
        }
        const uint8_t *src = j->in + (size_t)ymin * row_len;
        for (uint32_t c = 0; c < j->out.tiles_across; c++) {
            uint8_t *dst = out_row(&j->out, r, c);
            size_t i0 = c * seg, i = i0;
            for (; i + 16 <= i0 + seg; i += 16) {
                __m128i h0 = zero, h1 = zero, h2 = zero, h3 = zero;
                __m128i l0 = zero, l1 = zero, l2 = zero, l3 = zero;
                for (int m = 0; m < pairs; m++) {
                    const uint8_t *a = src + (size_t)(2 * m) * row_len + i;
                    __m128i va = _mm_loadu_si128((const __m128i *)a);
                    __m128i vb = 2 * m + 1 < n ? _mm_loadu_si128((const __m128i *)(a + row_len))
                                               : zero; /* no row past the taps is read */
                    __m128i lo = _mm_unpacklo_epi8(va, vb), hi = _mm_unpackhi_epi8(va, vb);
                    __m128i p0 = _mm_unpacklo_epi8(lo, zero), p1 = _mm_unpackhi_epi8(lo, zero);
                    __m128i p2 = _mm_unpacklo_epi8(hi, zero), p3 = _mm_unpackhi_epi8(hi, zero);
                    h0 = _mm_add_epi32(h0, _mm_madd_epi16(p0, wh[m]));
                    l0 = _mm_add_epi32(l0, _mm_madd_epi16(p0, wl[m]));
                    h1 = _mm_add_epi32(h1, _mm_madd_epi16(p1, wh[m]));
                    l1 = _mm_add_epi32(l1, _mm_madd_epi16(p1, wl[m]));
                    h2 = _mm_add_epi32(h2, _mm_madd_epi16(p2, wh[m]));
                    l2 = _mm_add_epi32(l2, _mm_madd_epi16(p2, wl[m]));
                    h3 = _mm_add_epi32(h3, _mm_madd_epi16(p3, wh[m]));
                    l3 = _mm_add_epi32(l3, _mm_madd_epi16(p3, wl[m]));
                }
#define VP_SUM(h, l) \
    _mm_srai_epi32(_mm_add_epi32(_mm_add_epi32(half, _mm_slli_epi32(h, 11)), l), PRECISION_BITS)
                __m128i s0 = VP_SUM(h0, l0), s1 = VP_SUM(h1, l1);
                __m128i s2 = VP_SUM(h2, l2), s3 = VP_SUM(h3, l3);
#undef VP_SUM
                _mm_storeu_si128((__m128i *)(dst + (i - i0)),
                                 _mm_packus_epi16(_mm_packs_epi32(s0, s1), _mm_packs_epi32(s2, s3)));
            }
            if (i < i0 + seg) { /* the segment's last bytes */
                int32_t acc[16];
                vertical_bytes_scalar(j, r, i, i0 + seg, acc, dst + (i - i0));
            }
        }
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
    size_t acc_len = base.run == vertical_rows_scalar ? (size_t)base.out_w * 3 : 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = base;
        jobs[t].r0 = (uint32_t)((uint64_t)rows * t / threads);
        jobs[t].r1 = (uint32_t)((uint64_t)rows * (t + 1) / threads);
        jobs[t].acc = acc_len ? malloc(sizeof(int32_t) * acc_len) : NULL;
        int no_mem = acc_len && !jobs[t].acc;
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
        jobs[t].row_wide = NULL;
        if (base.run == horizontal_rows_simd) {
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

int vp_image_resize_into(const vp_rgb_image *src, uint32_t out_w, uint32_t out_h, int threads,
                         const vp_resize_layout *dst, vp_error *err)
{
    if (!src->width || !src->height || !out_w || !out_h || out_w > VP_IMAGE_MAX_SIDE ||
        out_h > VP_IMAGE_MAX_SIDE || !dst->tile_w || !dst->tile_h || !dst->tiles_across ||
        (uint64_t)dst->tile_w * dst->tiles_across != out_w || out_h % dst->tile_h)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "image", "cannot resize %ux%u to %ux%u",
                       src->width, src->height, out_w, out_h);
    if (out_w == src->width && out_h == src->height) {
        /* Pillow returns a copy when the size does not change. */
        size_t seg = (size_t)dst->tile_w * 3;
        for (uint32_t r = 0; r < out_h; r++)
            for (uint32_t c = 0; c < dst->tiles_across; c++)
                memcpy(out_row(dst, r, c), src->pixels + (size_t)r * out_w * 3 + c * seg, seg);
        return 0;
    }
    int need_h = out_w != src->width, need_v = out_h != src->height;
    resample_plan ph = {0}, pv = {0};
    uint8_t *tmp = NULL;
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
    __m128i *k_wide = NULL;
#endif
    int rc = -1;
    if (plan_build(src->width, out_w, &ph) || plan_build(src->height, out_h, &pv)) {
        vp_fail(err, VP_ERR_NOMEM, "image", "out of memory resizing to %ux%u", out_w, out_h);
        goto done;
    }
    const uint8_t *cur = src->pixels;
    if (need_h) {
        /* Only the input rows the vertical pass reads (all of them when it is skipped). */
        int first = 0, last = (int)src->height;
        if (need_v) {
            first = pv.bounds[0];
            last = pv.bounds[2 * (out_h - 1)] + pv.bounds[2 * (out_h - 1) + 1];
            for (uint32_t i = 0; i < out_h; i++)
                pv.bounds[2 * i] -= first;
        }
        uint32_t rows = (uint32_t)(last - first);
        vp_resize_layout to = *dst;
        if (need_v) {
            tmp = malloc((size_t)out_w * rows * 3);
            if (!tmp) {
                vp_fail(err, VP_ERR_NOMEM, "image", "out of memory resizing to %ux%u", out_w,
                        out_h);
                goto done;
            }
            to = (vp_resize_layout){.base = tmp, .tile_w = out_w, .tile_h = rows,
                                    .tiles_across = 1};
        }
        pass_job job = {.in = src->pixels, .out = to, .in_w = src->width, .out_w = out_w,
                        .row_offset = (uint32_t)first, .plan = &ph, .run = horizontal_rows_scalar};
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
        job.run = horizontal_rows_simd;
#endif
        if (run_pass(job, rows, threads, err))
            goto done;
        cur = tmp;
    }
    if (need_v) {
        pass_job job = {.in = cur, .out = *dst, .in_w = out_w, .out_w = out_w, .plan = &pv,
                        .run = vertical_rows_scalar};
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
        if (pv.ksize <= MAX_KSIZE && pv.max_abs < 1 << 26)
            job.run = vertical_rows_simd;
#endif
        if (run_pass(job, out_h, threads, err))
            goto done;
    }
    rc = 0;
done:
#if defined(__SSE4_1__) && !defined(VP_RESIZE_NO_SIMD)
    free(k_wide);
#endif
    free(tmp);
    plan_free(&ph);
    plan_free(&pv);
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
    uint8_t *out = malloc((size_t)out_w * out_h * 3);
    if (!out)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u image", out_w,
                       out_h);
    vp_resize_layout plain = {.base = out, .tile_w = out_w, .tile_h = out_h, .tiles_across = 1};
    if (vp_image_resize_into(src, out_w, out_h, threads, &plain, err)) {
        free(out);
        return -1;
    }
    dst->pixels = out;
    dst->width = out_w;
    dst->height = out_h;
    return 0;
}
