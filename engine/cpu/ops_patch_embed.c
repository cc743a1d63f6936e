/* Patch embedding: the stride-P, PxP convolution written as "unfold the patches,
 * then one matrix product" (the kernel [hidden][channels][P][P] is already the
 * weight matrix [hidden][channels*P*P]). */
#include "engine/cpu/cpu_ops.h"

void vp_cpu_patch_embed(vp_pool *pool, float *out, float *scratch, const float *tile,
                        const float *w, const float *b, int channels, int size, int patch,
                        int hidden)
{
    size_t g = (size_t)(size / patch), p = (size_t)patch, s = (size_t)size;
    size_t k = (size_t)channels * p * p; /* one unfolded patch */
    for (size_t gy = 0; gy < g; gy++)
        for (size_t gx = 0; gx < g; gx++) {
            float *row = scratch + (gy * g + gx) * k;
            for (size_t c = 0; c < (size_t)channels; c++)
                for (size_t py = 0; py < p; py++)
                    for (size_t px = 0; px < p; px++)
                        *row++ = tile[(c * s + gy * p + py) * s + gx * p + px];
        }
    vp_cpu_matmul(pool, out, scratch, w, b, g * g, k, (size_t)hidden);
}
