/* Decoding with stb_image (the one translation unit that compiles it), and the
 * conversion to RGB that Pillow's convert("RGB") would give for the same file. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"
#include "engine/image/image.h"
#include "engine/image/jpeg_pixels.h"

/* stb_image allocations are capped per decode, from the header size: a compressed
 * stream that inflates past the image (a zlib bomb) is refused instead of growing.
 * They are also zeroed: stb_image 2.27 reads buffers a hostile file never fills (the
 * coefficients of a progressive JPEG scan refining what no first scan wrote, the planes
 * of a component no scan covers), which libjpeg zero-fills. */
static _Thread_local size_t stb_alloc_cap;
static _Thread_local int stb_alloc_refused;

static void *capped_malloc(size_t n)
{
    if (n > stb_alloc_cap) {
        stb_alloc_refused = 1;
        return NULL;
    }
    return calloc(1, n);
}

static void *capped_realloc(void *p, size_t n)
{
    if (n > stb_alloc_cap) {
        stb_alloc_refused = 1;
        return NULL;
    }
    return realloc(p, n);
}

#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS VP_IMAGE_MAX_SIDE
#define STBI_MALLOC(sz) capped_malloc(sz)
#define STBI_REALLOC(p, sz) capped_realloc(p, sz)
#define STBI_FREE(p) free(p)
/* stb's assertions check its own invariants; an abort would take the server down. */
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

void vp_rgb_image_free(vp_rgb_image *img)
{
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}

/* Largest single buffer stb may need for a w x h image: 8 bytes a pixel (16-bit RGBA)
 * with MCU padding, twice over so one doubling of a growing buffer fits; the encoded
 * size bounds the buffer it copies the compressed data into. */
static size_t alloc_cap_for(uint32_t w, uint32_t h, size_t encoded_len)
{
    size_t pixels = ((size_t)w + 32) * ((size_t)h + 32);
    size_t cap = 2 * (pixels * 8 + h * 8) + ((size_t)1 << 20);
    size_t enc = 2 * encoded_len + 65536;
    return cap > enc ? cap : enc;
}

static int stb_failed(vp_image_format f, vp_error *err)
{
    if (stb_alloc_refused)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "%s data expands past the size its header declares (decompression bomb?)",
                       vp_image_format_name(f));
    const char *why = stbi_failure_reason();
    if (why && !strcmp(why, "outofmem"))
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory decoding the %s image",
                       vp_image_format_name(f));
    return vp_fail(err, VP_ERR_UNDECODABLE, "image", "%s image does not decode: %s",
                   vp_image_format_name(f), why ? why : "unknown error");
}

/* stb_image's 8-bit RGB decoding of buf; checks the size against the header's. */
static int stb_rgb(vp_image_format f, const uint8_t *buf, size_t len, const vp_image_info *info,
                   vp_rgb_image *out, vp_error *err)
{
    if (len > 0x7fffffff)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image", "%zu bytes of %s data", len,
                       vp_image_format_name(f));
    stb_alloc_cap = alloc_cap_for(info->width, info->height, len);
    stb_alloc_refused = 0;
    int w, h, comp;
    uint8_t *px = stbi_load_from_memory(buf, (int)len, &w, &h, &comp, 3);
    if (!px)
        return stb_failed(f, err);
    if ((uint32_t)w != info->width || (uint32_t)h != info->height) {
        free(px);
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "%s decodes to %dx%d but its header says %ux%u", vp_image_format_name(f), w,
                       h, info->width, info->height);
    }
    out->width = info->width;
    out->height = info->height;
    out->pixels = px;
    return 0;
}

/* 16-bit grey PNG: Pillow opens it as mode I, and I -> RGB clamps to 0..255. */
static int png_grey16(const uint8_t *buf, size_t len, const vp_image_info *info,
                      vp_rgb_image *out, vp_error *err)
{
    if (len > 0x7fffffff)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image", "%zu bytes of PNG data", len);
    stb_alloc_cap = alloc_cap_for(info->width, info->height, len);
    stb_alloc_refused = 0;
    int w, h, comp;
    uint16_t *g = stbi_load_16_from_memory(buf, (int)len, &w, &h, &comp, 1);
    if (!g)
        return stb_failed(VP_IMAGE_PNG, err);
    size_t n = (size_t)info->width * info->height;
    if ((uint32_t)w != info->width || (uint32_t)h != info->height) {
        free(g);
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG decodes to %dx%d, header says %ux%u",
                       w, h, info->width, info->height);
    }
    uint8_t *px = malloc(n * 3);
    if (!px) {
        free(g);
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u image", info->width,
                       info->height);
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t v = g[i] > 255 ? 255 : (uint8_t)g[i];
        px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = v;
    }
    free(g);
    out->width = info->width;
    out->height = info->height;
    out->pixels = px;
    return 0;
}

static int decode_png(const uint8_t *data, size_t len, const vp_image_info *info,
                      vp_rgb_image *out, vp_error *err)
{
    vp_png_header h;
    if (vp_png_read_header(data, len, &h, err))
        return -1;
    uint8_t *canon;
    size_t canon_len;
    if (vp_png_canonicalize(data, len, &canon, &canon_len, err))
        return -1;
    int rc = (h.color == 0 && h.depth == 16) ? png_grey16(canon, canon_len, info, out, err)
                                             : stb_rgb(VP_IMAGE_PNG, canon, canon_len, info, out, err);
    free(canon);
    return rc;
}

static int decode_gif(const uint8_t *data, size_t len, const vp_image_info *info,
                      vp_rgb_image *out, vp_error *err)
{
    uint8_t *canon;
    size_t canon_len;
    vp_gif_frame fr;
    if (vp_gif_canonicalize(data, len, &canon, &canon_len, &fr, err))
        return -1;
    int rc = stb_rgb(VP_IMAGE_GIF, canon, canon_len, info, out, err);
    free(canon);
    if (rc)
        return rc;
    /* Outside the frame's rectangle Pillow shows palette[transparent index or 0]. */
    const uint8_t *fill = fr.palette[fr.transparent >= 0 ? fr.transparent : 0];
    for (uint32_t y = 0; y < out->height; y++) {
        int row_in = y >= fr.y && y < fr.y + fr.h;
        for (uint32_t x = 0; x < out->width; x++) {
            if (row_in && x >= fr.x && x < fr.x + fr.w)
                continue;
            memcpy(out->pixels + ((size_t)y * out->width + x) * 3, fill, 3);
        }
    }
    return 0;
}

/* Pillow widens 5- and 6-bit channels as v * 255 / max (rounded down); stb_image
 * repeats the high bits. Both keep v in the top bits, so stb's value maps back. */
static void bmp16_widen_like_pillow(vp_rgb_image *img, const vp_bmp_header *h)
{
    uint8_t lut[3][256];
    for (int c = 0; c < 3; c++) {
        int bits = __builtin_popcount(h->masks[c]);
        int maxv = (1 << bits) - 1;
        for (int v = 0; v < 256; v++)
            lut[c][v] = (uint8_t)(((v >> (8 - bits)) * 255) / maxv);
    }
    size_t n = (size_t)img->width * img->height;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            img->pixels[3 * i + c] = lut[c][img->pixels[3 * i + c]];
}

static int decode_bmp(const uint8_t *data, size_t len, const vp_image_info *info,
                      vp_rgb_image *out, vp_error *err)
{
    vp_bmp_header h;
    if (vp_bmp_read_header(data, len, &h, err) || vp_bmp_check_complete(len, &h, err))
        return -1;
    if (h.bpp <= 8) {
        uint8_t *canon;
        size_t canon_len;
        if (vp_bmp_canonicalize(data, len, &h, &canon, &canon_len, err))
            return -1;
        int rc = stb_rgb(VP_IMAGE_BMP, canon, canon_len, info, out, err);
        free(canon);
        return rc;
    }
    if (stb_rgb(VP_IMAGE_BMP, data, len, info, out, err))
        return -1;
    if (h.bpp == 16)
        bmp16_widen_like_pillow(out, &h);
    return 0;
}

/* JPEG: stb_image parses and entropy-decodes, with libjpeg's IDCT as its block kernel;
 * jpeg_pixels.c upsamples and converts as libjpeg-turbo does for Pillow (stb_image's
 * load_jpeg_image would round its own way). Uses stb's internals: this is its one
 * translation unit, and the Debian package pins its version. */
static int decode_jpeg_stream(const uint8_t *data, size_t len, const vp_jpeg_markers *mk,
                              const vp_image_info *info, vp_rgb_image *out, vp_error *err);

static int decode_jpeg(const uint8_t *data, size_t len, const vp_image_info *info,
                       vp_rgb_image *out, vp_error *err)
{
    vp_jpeg_markers mk;
    if (vp_jpeg_check_complete(data, len, &mk, err))
        return -1;
    if (mk.default_dht) {
        uint8_t *with_tables;
        size_t with_len;
        if (vp_jpeg_add_default_tables(data, len, &mk, &with_tables, &with_len, err))
            return -1;
        mk.default_dht = 0;
        int rc = decode_jpeg_stream(with_tables, with_len, &mk, info, out, err);
        free(with_tables);
        return rc;
    }
    return decode_jpeg_stream(data, len, &mk, info, out, err);
}

static int decode_jpeg_stream(const uint8_t *data, size_t len, const vp_jpeg_markers *mk,
                              const vp_image_info *info, vp_rgb_image *out, vp_error *err)
{
    if (len > 0x7fffffff)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image", "%zu bytes of JPEG data", len);
    stb_alloc_cap = alloc_cap_for(info->width, info->height, len);
    stb_alloc_refused = 0;
    stbi__context s;
    stbi__start_mem(&s, data, (int)len);
    stbi__jpeg *j = stbi__malloc(sizeof *j);
    if (!j)
        return stb_failed(VP_IMAGE_JPEG, err);
    j->s = &s;
    stbi__setup_jpeg(j);
    j->idct_block_kernel = vp_jpeg_idct_islow;
    s.img_n = 0; /* stbi__cleanup_jpeg frees img_n components */
    int rc = -1;
    if (!stbi__decode_jpeg_image(j)) {
        rc = stb_failed(VP_IMAGE_JPEG, err);
        goto done;
    }
    if (s.img_x != info->width || s.img_y != info->height) {
        rc = vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG decodes to %ux%u but its header says %ux%u",
                     s.img_x, s.img_y, info->width, info->height);
        goto done;
    }
    int n = s.img_n, ids[4] = {0};
    vp_jpeg_plane planes[4];
    for (int c = 0; c < n; c++) {
        planes[c] = (vp_jpeg_plane){.data = j->img_comp[c].data,
                                    .stride = (size_t)j->img_comp[c].w2,
                                    .width = (uint32_t)j->img_comp[c].x,
                                    .height = (uint32_t)j->img_comp[c].y,
                                    .h = j->img_comp[c].h,
                                    .v = j->img_comp[c].v};
        ids[c] = j->img_comp[c].id;
    }
    size_t bytes = (size_t)info->width * info->height * 3;
    out->pixels = malloc(bytes);
    if (!out->pixels) {
        rc = vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u image", info->width,
                     info->height);
        goto done;
    }
    vp_jpeg_color color = vp_jpeg_color_space(n, mk->jfif, mk->adobe_transform, ids);
    if (vp_jpeg_planes_to_rgb(planes, n, color, info->width, info->height, out->pixels, err)) {
        vp_rgb_image_free(out);
        goto done;
    }
    out->width = info->width;
    out->height = info->height;
    rc = 0;
done:
    stbi__cleanup_jpeg(j);
    free(j);
    return rc;
}

int vp_image_decode_rgb(const uint8_t *data, size_t len, const vp_image_limits *lim,
                        vp_rgb_image *out, vp_error *err)
{
    memset(out, 0, sizeof *out);
    vp_image_info info;
    if (vp_image_probe(data, len, lim, &info, err))
        return -1;
    switch (info.format) {
    case VP_IMAGE_PNG: return decode_png(data, len, &info, out, err);
    case VP_IMAGE_GIF: return decode_gif(data, len, &info, out, err);
    case VP_IMAGE_BMP: return decode_bmp(data, len, &info, out, err);
    case VP_IMAGE_JPEG: return decode_jpeg(data, len, &info, out, err);
    case VP_IMAGE_UNKNOWN: break;
    }
    return vp_fail(err, VP_ERR_INTERNAL, "image", "probe returned no format");
}
