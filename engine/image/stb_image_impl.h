/* Compiles stb_image into the including translation unit, static (two units compile
 * it, each for its formats: define STBI_ONLY_... first), with vprm's capped allocator
 * and without assertions (they check stb's own invariants; an abort would take the
 * server down). Include once, from a .c file. */
#ifndef VP_IMAGE_STB_IMAGE_IMPL_H
#define VP_IMAGE_STB_IMAGE_IMPL_H

#include <stdlib.h>

#include "engine/image/image.h"
#include "engine/image/stb_alloc.h"

#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS VP_IMAGE_MAX_SIDE
#define STBI_MALLOC(sz) vp_stb_malloc(sz)
#define STBI_REALLOC(p, sz) vp_stb_realloc(p, sz)
#define STBI_FREE(p) free(p)
#define STBI_ASSERT(x) ((void)0)
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
/* stb_image 2.27 sums and scales JPEG DC coefficients in int without a range check
 * (2.28 refuses such files): a hostile file overflows them, which is undefined. The
 * values are cut to 16 bits right after, so wrapping arithmetic makes that a defined
 * garbage image of a garbage file: gcc compiles stb_image with -fwrapv semantics; clang
 * (the libFuzzer build) has no per-function -fwrapv and is told not to report it. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("signed-integer-overflow"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC optimize("wrapv")
#endif
#include <stb/stb_image.h>
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#pragma GCC diagnostic pop
/* gcc reports, at the end of the unit, the static functions stb_image declares for the
 * formats the unit leaves out and never defines */
#pragma GCC diagnostic ignored "-Wunused-function"

#endif
