/* Helpers shared by the CPU backend tests: a seeded random generator and a
 * tolerance check that prints the worst error. */
#ifndef VP_CPU_TEST_UTIL_H
#define VP_CPU_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/unit/check.h"

static uint64_t test_rng_state = 0x9E3779B97F4A7C15ull;

static inline void test_seed(uint64_t s)
{
    test_rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

/* xorshift64*: uniform in [-1, 1). */
static inline float test_uniform(void)
{
    test_rng_state ^= test_rng_state >> 12;
    test_rng_state ^= test_rng_state << 25;
    test_rng_state ^= test_rng_state >> 27;
    uint64_t r = test_rng_state * 0x2545F4914F6CDD1Dull;
    return (float)((double)(r >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* x[n] = offset + scale * uniform */
static inline void test_fill(float *x, size_t n, float scale, float offset)
{
    for (size_t i = 0; i < n; i++)
        x[i] = offset + scale * test_uniform();
}

static inline float *test_random(size_t n, float scale, float offset)
{
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "out of memory in test\n");
        exit(2);
    }
    test_fill(x, n, scale, offset);
    return x;
}

/* Checks |got - want| <= atol + rtol * |want| everywhere; prints the worst case. */
static inline void test_close(const char *what, const float *got, const double *want, size_t n,
                              double rtol, double atol)
{
    double worst = 0, worst_abs = 0, worst_rel = 0;
    size_t at = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            finite = 0;
        double e = fabs((double)got[i] - want[i]);
        double ratio = e / (atol + rtol * fabs(want[i]));
        if (ratio > worst || !isfinite(got[i])) {
            worst = ratio;
            at = i;
        }
        if (e > worst_abs)
            worst_abs = e;
        double rel = e / (fabs(want[i]) > 1e-30 ? fabs(want[i]) : 1e-30);
        if (rel > worst_rel && fabs(want[i]) > atol)
            worst_rel = rel;
    }
    printf("  %-44s n=%-6zu worst abs %.3g, rel %.3g (at %zu: got %.9g want %.9g)\n", what, n,
           worst_abs, worst_rel, at, n ? got[at] : 0.0, n ? want[at] : 0.0);
    CHECK_MSG(finite && worst <= 1.0, "%s: error %.3g x tolerance (rtol %g, atol %g)", what,
              worst, rtol, atol);
}

#endif
