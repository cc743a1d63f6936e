/* SHA-256 of a byte run (GnuTLS's). Where equal data may be shared between requests (one
 * image's tiles encoded once for several jobs of a pass), a collision of a fast hash
 * would hand one request another's image: a client controls its images' bytes, and a
 * 64-bit hash is no secret. A collision of SHA-256 is out of reach, so comparing 32 bytes
 * per tile stands for comparing the tile (600 KB at 448 x 448: 7.8 MB for W1's image). */
#ifndef VP_DIGEST_H
#define VP_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define VP_DIGEST_BYTES 32

/* 0, or -1 when GnuTLS refuses (a FIPS policy without SHA-256). */
int vp_digest(const void *data, size_t n, uint8_t out[VP_DIGEST_BYTES]);

#endif
