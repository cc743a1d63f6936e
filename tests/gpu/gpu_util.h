/* Helpers of the GPU check programs in tests/gpu: device buffers that abort the
 * program on an infrastructure failure (these are test drivers, not library code),
 * bf16 rounding, and a tolerance check that prints the worst element. */
#ifndef VP_GPU_UTIL_H
#define VP_GPU_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "engine/cuda/cuda_kernels.h"
#include "engine/model/tensor.h"

static int gpu_pass, gpu_fail;

#define GPU_OK(stmt)                                                                       \
    do {                                                                                   \
        cudaError_t rc_ = (stmt);                                                          \
        if (rc_ != cudaSuccess) {                                                          \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #stmt,           \
                    cudaGetErrorString(rc_));                                              \
            exit(2);                                                                       \
        }                                                                                  \
    } while (0)

static inline void *gpu_alloc(size_t bytes)
{
    void *p = NULL;
    GPU_OK(cudaMalloc(&p, bytes ? bytes : 1));
    GPU_OK(cudaMemset(p, 0xff, bytes ? bytes : 1)); /* poison: NaN in bf16 and f32 */
    return p;
}

static inline void *gpu_upload(const void *host, size_t bytes)
{
    void *p = gpu_alloc(bytes);
    GPU_OK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
    return p;
}

static inline void gpu_download(void *host, const void *dev, size_t bytes)
{
    GPU_OK(cudaDeviceSynchronize());
    GPU_OK(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
}

static inline void *host_alloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static inline double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline float bf16_round(float f)
{
    return vp_bf16_to_f32(vp_f32_to_bf16(f));
}

static inline uint16_t *to_bf16(const float *x, size_t n)
{
    uint16_t *h = host_alloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = vp_f32_to_bf16(x[i]);
    return h;
}

static inline float *from_bf16(const uint16_t *h, size_t n)
{
    float *x = host_alloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = vp_bf16_to_f32(h[i]);
    return x;
}

/* The activation types (vpk_act): the rounding, bits both ways, one rounding's relative
 * size (half an ulp: bf16 2^-8, fp16 2^-11 with 10% for fp32 sums that differ from the
 * CPU's by an ulp near a rounding boundary) and a label. */
static inline float act_round(float f, int act)
{
    return act == VPK_ACT_F16 ? vp_f16_to_f32(vp_f32_to_f16(f)) : bf16_round(f);
}

static inline uint16_t *to_act(const float *x, size_t n, int act)
{
    uint16_t *h = host_alloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = act == VPK_ACT_F16 ? vp_f32_to_f16(x[i]) : vp_f32_to_bf16(x[i]);
    return h;
}

static inline float *from_act(const uint16_t *h, size_t n, int act)
{
    float *x = host_alloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = act == VPK_ACT_F16 ? vp_f16_to_f32(h[i]) : vp_bf16_to_f32(h[i]);
    return x;
}

static inline double act_rel(int act)
{
    return act == VPK_ACT_F16 ? 1.1 / 2048 : 1.0 / 256;
}

static inline const char *act_name(int act)
{
    return act == VPK_ACT_F16 ? "fp16" : "bf16";
}

/* |got - want| <= atol + rtol * |want| for all n; NaN fails. Prints one line. */
static inline int gpu_close(const char *what, const float *got, const float *want, size_t n,
                            double atol, double rtol)
{
    double worst = 0, worst_abs = 0, sum_d2 = 0, sum_w2 = 0;
    size_t at = 0, nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], e = fabs(g - w);
        if (!isfinite(g)) {
            nonfinite++;
            at = i;
            continue;
        }
        sum_d2 += e * e;
        sum_w2 += w * w;
        double ratio = e / (atol + rtol * fabs(w));
        if (ratio > worst) {
            worst = ratio;
            worst_abs = e;
            at = i;
        }
    }
    int ok = nonfinite == 0 && worst <= 1.0;
    printf("%-4s %-44s n=%-9zu worst |d|=%.3g at %zu (got %.6g want %.6g), %.2f of tol, "
           "rel l2 %.2e%s\n",
           ok ? "ok" : "FAIL", what, n, worst_abs, at, n ? got[at] : 0.0, n ? want[at] : 0.0,
           worst, sum_w2 > 0 ? sqrt(sum_d2 / sum_w2) : 0.0,
           nonfinite ? " (non-finite values)" : "");
    if (ok)
        gpu_pass++;
    else
        gpu_fail++;
    return ok;
}

/* A yes/no check with its own line; fmt explains a failure. */
static inline int gpu_check(const char *what, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int gpu_check(const char *what, int ok, const char *fmt, ...)
{
    printf("%-4s %-44s ", ok ? "ok" : "FAIL", what);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (ok)
        gpu_pass++;
    else
        gpu_fail++;
    return ok;
}

/* Standard normals from a seeded xorshift (Box-Muller). */
static uint64_t gpu_rng = 0x2545F4914F6CDD1Dull;
static inline double gpu_uniform(void)
{
    gpu_rng ^= gpu_rng << 13;
    gpu_rng ^= gpu_rng >> 7;
    gpu_rng ^= gpu_rng << 17;
    return ((double)(gpu_rng >> 11) + 0.5) / 9007199254740992.0;
}

static inline float *gpu_normal(size_t n, float std, float mean)
{
    float *x = host_alloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        double u1 = gpu_uniform(), u2 = gpu_uniform();
        x[i] = mean + std * (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    return x;
}

#endif
