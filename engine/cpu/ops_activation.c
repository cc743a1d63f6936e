/* Activations, evaluated in double and rounded once to float. */
#include <math.h>

#include "engine/cpu/cpu_ops.h"

void vp_cpu_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(0.5 * v * (1.0 + erf(v * M_SQRT1_2)));
    }
}

void vp_cpu_silu_gate(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double g = gate[i];
        gate[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}
