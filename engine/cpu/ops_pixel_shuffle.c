/* Pixel shuffle v2 (InternVL, downsample ratio 0.5): each 2x2 block of grid cells
 * becomes one token carrying the four cells' channels side by side. */
#include <string.h>

#include "engine/cpu/cpu_ops.h"

void vp_cpu_pixel_shuffle(float *out, const float *in, size_t grid, size_t channels)
{
    size_t half = grid / 2;
    for (size_t i = 0; i < half; i++)
        for (size_t j = 0; j < half; j++) {
            float *o = out + (i * half + j) * 4 * channels;
            /* cells (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1) in that order */
            for (size_t c = 0; c < 4; c++) {
                size_t row = 2 * i + c / 2, col = 2 * j + c % 2;
                memcpy(o + c * channels, in + (row * grid + col) * channels,
                       channels * sizeof(float));
            }
        }
}
