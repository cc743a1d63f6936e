/* Counter-based random numbers for the random-weight generator: value i of a stream
 * depends only on (key, i), so any slice of any tensor can be generated on its own
 * (in parallel, in any chunking) and the result is identical for a given seed. */
#ifndef VP_RNG_H
#define VP_RNG_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64 finaliser: a bijective 64-bit mix. */
uint64_t vp_rng_mix64(uint64_t x);
/* Stream key for (seed, name): FNV-1a of the name mixed with the seed. */
uint64_t vp_rng_key(uint64_t seed, const char *name);
/* 64 random bits number i of stream key. */
uint64_t vp_rng_bits(uint64_t key, uint64_t i);
/* Uniform in [0, 1), 24 bits: element i of the stream. */
float vp_rng_uniform(uint64_t key, uint64_t i);
/* Standard normals for elements start .. start+n-1 of the stream (Box-Muller: counter k
 * gives the pair of elements 2k and 2k+1). */
void vp_rng_normal_fill(uint64_t key, uint64_t start, size_t n, float *out);

#endif
