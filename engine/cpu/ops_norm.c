/* LayerNorm and RMSNorm over the last dimension; statistics accumulated in double. */
#include <math.h>

#include "engine/cpu/cpu_ops.h"

void vp_cpu_layer_norm(float *y, const float *x, const float *w, const float *b, size_t n,
                       size_t dim, float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xr = x + i * dim;
        float *yr = y + i * dim;
        double sum = 0.0;
        for (size_t d = 0; d < dim; d++)
            sum += xr[d];
        double mean = sum / (double)dim;
        double sq = 0.0; /* two passes: no cancellation when |mean| >> std */
        for (size_t d = 0; d < dim; d++)
            sq += ((double)xr[d] - mean) * ((double)xr[d] - mean);
        double inv = 1.0 / sqrt(sq / (double)dim + (double)eps);
        for (size_t d = 0; d < dim; d++) {
            float v = (float)(((double)xr[d] - mean) * inv) * w[d];
            yr[d] = b ? v + b[d] : v;
        }
    }
}

void vp_cpu_rms_norm(float *y, const float *x, const float *w, size_t n, size_t dim, float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float *xr = x + i * dim;
        float *yr = y + i * dim;
        double sq = 0.0;
        for (size_t d = 0; d < dim; d++)
            sq += (double)xr[d] * xr[d];
        double inv = 1.0 / sqrt(sq / (double)dim + (double)eps);
        for (size_t d = 0; d < dim; d++)
            yr[d] = w[d] * (float)(xr[d] * inv);
    }
}
