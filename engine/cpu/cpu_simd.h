/* Four-float vectors through the GCC/Clang vector extension (one SSE/NEON register).
 * Arithmetic on them is element-wise, so using them never reorders a sum: each lane
 * is its own fp32 accumulator. */
#ifndef VP_CPU_SIMD_H
#define VP_CPU_SIMD_H

#include <string.h>

typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4f_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4f_store(float *p, v4f v)
{
    memcpy(p, &v, sizeof v);
}

#endif
