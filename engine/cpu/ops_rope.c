/* Rotary position embedding ("rotate half") with dynamic NTK scaling. The tables
 * follow the PyTorch reference: inverse frequencies and angles in double, then
 * cos/sin rounded to float. */
#include <math.h>

#include "engine/cpu/cpu_ops.h"

double vp_cpu_rope_base(double theta, bool dynamic, double factor, int max_pos, size_t L,
                        int head_dim)
{
    if (!dynamic || max_pos <= 0 || L <= (size_t)max_pos)
        return theta;
    double scale = factor * (double)L / (double)max_pos - (factor - 1.0);
    return theta * pow(scale, (double)head_dim / (double)(head_dim - 2));
}

void vp_cpu_rope_table(float *cos_out, float *sin_out, int32_t position, double base,
                       int head_dim)
{
    int half = head_dim / 2;
    for (int d = 0; d < half; d++) {
        double inv_freq = 1.0 / pow(base, (double)(2 * d) / (double)head_dim);
        double angle = (double)position * inv_freq;
        cos_out[d] = (float)cos(angle);
        sin_out[d] = (float)sin(angle);
    }
}

void vp_cpu_rope_apply(float *x, size_t n_heads, int head_dim, const float *cos_t,
                       const float *sin_t)
{
    int half = head_dim / 2;
    for (size_t h = 0; h < n_heads; h++) {
        float *xh = x + h * (size_t)head_dim;
        for (int d = 0; d < half; d++) {
            float a = xh[d], b = xh[d + half];
            xh[d] = a * cos_t[d] - b * sin_t[d];
            xh[d + half] = b * cos_t[d] + a * sin_t[d];
        }
    }
}
