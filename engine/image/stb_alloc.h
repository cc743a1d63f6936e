/* What the two translation units that compile stb_image (decode.c: PNG, GIF, BMP;
 * jpeg_decode.c: JPEG) share: a per-decode cap on its allocations, and the mapping of
 * its failures to vprm errors. */
#ifndef VP_IMAGE_STB_ALLOC_H
#define VP_IMAGE_STB_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "engine/image/image.h"
#include "engine/util/err.h"

/* Starts a decode of a w x h image from encoded_len bytes: caps every stb_image
 * allocation until the next call (per thread). */
void vp_stb_alloc_begin(uint32_t w, uint32_t h, size_t encoded_len);
/* Zeroed allocations within the cap (see stb_alloc.c); NULL beyond it. */
void *vp_stb_malloc(size_t n);
void *vp_stb_realloc(void *p, size_t n);

/* The error for a failed stb_image decode: a refused allocation (a decompression bomb),
 * out of memory, or stb_image's reason why. Returns -1. */
int vp_stb_failed(vp_image_format f, const char *why, vp_error *err);

#endif
