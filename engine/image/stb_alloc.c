/* stb_image allocations are capped per decode, from the header size: data that expands
 * past the image is refused instead of growing (a PNG's zlib data no longer reaches
 * stb_image compressed: png_inflate.c inflates the image's rows and no more).
 * They are also zeroed: stb_image 2.27 reads buffers a hostile file never fills (the
 * coefficients of a progressive JPEG scan refining what no first scan wrote, the planes
 * of a component no scan covers), which libjpeg zero-fills. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/stb_alloc.h"

static _Thread_local size_t alloc_cap;
static _Thread_local int alloc_refused, alloc_failed; /* over the cap; out of memory */

/* Largest single buffer stb may need for a w x h image: 8 bytes a pixel (16-bit RGBA)
 * with MCU padding, twice over so one doubling of a growing buffer fits; the encoded
 * size bounds the buffer it copies the compressed data into. */
void vp_stb_alloc_begin(uint32_t w, uint32_t h, size_t encoded_len)
{
    size_t pixels = ((size_t)w + 32) * ((size_t)h + 32);
    size_t cap = 2 * (pixels * 8 + h * 8) + ((size_t)1 << 20);
    size_t enc = 2 * encoded_len + 65536;
    alloc_cap = cap > enc ? cap : enc;
    alloc_refused = alloc_failed = 0;
}

void *vp_stb_malloc(size_t n)
{
    if (n > alloc_cap) {
        alloc_refused = 1;
        return NULL;
    }
    void *p = calloc(1, n);
    alloc_failed |= !p;
    return p;
}

void *vp_stb_realloc(void *p, size_t n)
{
    if (n > alloc_cap) {
        alloc_refused = 1;
        return NULL;
    }
    void *q = realloc(p, n);
    alloc_failed |= !q && n;
    return q;
}

int vp_stb_failed(vp_image_format f, const char *why, vp_error *err)
{
    if (alloc_refused)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "%s data expands past the size its header declares (decompression bomb?)",
                       vp_image_format_name(f));
    /* stb_image does not always say why when an allocation fails */
    if (alloc_failed || (why && !strcmp(why, "outofmem")))
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory decoding the %s image",
                       vp_image_format_name(f));
    return vp_fail(err, VP_ERR_UNDECODABLE, "image", "%s image does not decode: %s",
                   vp_image_format_name(f), why ? why : "unknown error");
}
