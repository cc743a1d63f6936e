/* Decoding with stb_image, and the conversion to RGB that Pillow's convert("RGB")
 * would give for the same file. JPEG has its own unit (jpeg_decode.c). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"
#include "engine/image/image.h"

#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#include "engine/image/stb_image_impl.h"

void vp_rgb_image_free(vp_rgb_image *img)
{
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}

/* stb_image's 8-bit RGB decoding of buf; checks the size against the header's. */
static int stb_rgb(vp_image_format f, const uint8_t *buf, size_t len, const vp_image_info *info,
                   vp_rgb_image *out, vp_error *err)
{
    if (len > 0x7fffffff)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image", "%zu bytes of %s data", len,
                       vp_image_format_name(f));
    vp_stb_alloc_begin(info->width, info->height, len);
    int w, h, comp;
    uint8_t *px = stbi_load_from_memory(buf, (int)len, &w, &h, &comp, 3);
    if (!px)
        return vp_stb_failed(f, stbi_failure_reason(), err);
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

/* stb_image's 16-bit decoding of a PNG into comp samples a pixel, checked against the
 * header's size, and an 8-bit RGB buffer for it; NULL (err set) when either fails. */
static uint16_t *png_load16(const uint8_t *buf, size_t len, const vp_image_info *info, int comp,
                            uint8_t **rgb, vp_error *err)
{
    if (len > 0x7fffffff) {
        vp_fail(err, VP_ERR_TOO_LARGE, "image", "%zu bytes of PNG data", len);
        return NULL;
    }
    vp_stb_alloc_begin(info->width, info->height, len);
    int w, h, got;
    uint16_t *v = stbi_load_16_from_memory(buf, (int)len, &w, &h, &got, comp);
    if (!v) {
        vp_stb_failed(VP_IMAGE_PNG, stbi_failure_reason(), err);
        return NULL;
    }
    if ((uint32_t)w != info->width || (uint32_t)h != info->height) {
        free(v);
        vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG decodes to %dx%d, header says %ux%u", w, h,
                info->width, info->height);
        return NULL;
    }
    *rgb = malloc((size_t)info->width * info->height * 3);
    if (!*rgb) {
        free(v);
        vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u image", info->width,
                info->height);
        return NULL;
    }
    return v;
}

/* 16-bit PNGs. Grey: Pillow opens it as mode I, and I -> RGB clamps to 0..255. Others (RGB,
 * RGBA, grey + alpha): Pillow keeps each sample's high byte, as stb_image's 8-bit load
 * does; narrowed here, as stb_image's own narrowing leaks its 16-bit buffer when the 8-bit
 * one cannot be allocated. */
static int png_16bit(const uint8_t *buf, size_t len, const vp_image_info *info, bool grey,
                     vp_rgb_image *out, vp_error *err)
{
    uint8_t *px;
    uint16_t *v = png_load16(buf, len, info, grey ? 1 : 3, &px, err);
    if (!v)
        return -1;
    size_t n = (size_t)info->width * info->height;
    if (grey) {
        for (size_t i = 0; i < n; i++)
            px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = v[i] > 255 ? 255 : (uint8_t)v[i];
    } else {
        for (size_t i = 0; i < 3 * n; i++)
            px[i] = (uint8_t)(v[i] >> 8);
    }
    free(v);
    out->width = info->width;
    out->height = info->height;
    out->pixels = px;
    return 0;
}

static int decode_png(const uint8_t *data, size_t len, const vp_image_info *info,
                      vp_rgb_image *out, vp_error *err)
{
    vp_png_rows rows;
    if (vp_png_read_rows(data, len, &rows, err))
        return -1;
    int rc = -1;
    uint8_t *rgb = NULL, *canon = NULL;
    size_t canon_len;
    /* info is this header's (vp_image_probe read it, with the limits) */
    if (rows.h.depth == 8 && !rows.h.interlace &&
        (rgb = malloc((size_t)rows.h.width * rows.h.height * 3)) &&
        vp_png_rows_to_rgb(&rows, rgb)) {
        out->width = rows.h.width;
        out->height = rows.h.height;
        out->pixels = rgb;
        rgb = NULL;
        rc = 0;
    } else if (!vp_png_canonical_stream(&rows, &canon, &canon_len, err)) {
        rc = rows.h.depth == 16 ? png_16bit(canon, canon_len, info, rows.h.color == 0, out, err)
                                : stb_rgb(VP_IMAGE_PNG, canon, canon_len, info, out, err);
    }
    free(rgb);
    free(canon);
    vp_png_rows_free(&rows);
    return rc;
}

/* The frame's indices through its palette; outside the frame's rectangle Pillow shows
 * palette[transparent index or 0]. No stb_image: gif_lzw.c decodes as Pillow does. */
static int decode_gif(const uint8_t *data, size_t len, const vp_image_info *info,
                      vp_rgb_image *out, vp_error *err)
{
    vp_gif_frame fr;
    if (vp_gif_first_frame(data, len, &fr, err))
        return -1;
    if (fr.screen_w != info->width || fr.screen_h != info->height)
        return vp_fail(err, VP_ERR_INTERNAL, "image", "GIF screen %ux%u, probed %ux%u",
                       fr.screen_w, fr.screen_h, info->width, info->height);
    uint8_t *idx = malloc((size_t)fr.w * fr.h);
    out->pixels = malloc((size_t)fr.screen_w * fr.screen_h * 3);
    if (!idx || !out->pixels) {
        free(idx);
        vp_rgb_image_free(out);
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u GIF", fr.screen_w,
                       fr.screen_h);
    }
    if (vp_gif_lzw_decode(data, len, &fr, idx, err)) {
        free(idx);
        vp_rgb_image_free(out);
        return -1;
    }
    const uint8_t *fill = fr.palette[fr.transparent >= 0 ? fr.transparent : 0];
    for (uint32_t y = 0; y < fr.screen_h; y++) {
        int row_in = y >= fr.y && y < fr.y + fr.h;
        for (uint32_t x = 0; x < fr.screen_w; x++) {
            uint8_t *px = out->pixels + ((size_t)y * fr.screen_w + x) * 3;
            if (row_in && x >= fr.x && x < fr.x + fr.w)
                memcpy(px, fr.palette[idx[(size_t)(y - fr.y) * fr.w + (x - fr.x)]], 3);
            else
                memcpy(px, fill, 3);
        }
    }
    free(idx);
    out->width = fr.screen_w;
    out->height = fr.screen_h;
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
    if (vp_bmp_read_header(data, len, &h, err) || vp_bmp_check_complete(data, len, &h, err))
        return -1;
    uint8_t *canon;
    size_t canon_len;
    if (vp_bmp_canonicalize(data, len, &h, &canon, &canon_len, err))
        return -1;
    int rc = stb_rgb(VP_IMAGE_BMP, canon, canon_len, info, out, err);
    free(canon);
    if (rc)
        return -1;
    if (h.bpp == 16)
        bmp16_widen_like_pillow(out, &h);
    return 0;
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
    case VP_IMAGE_JPEG:
        return vp_jpeg_decode_rgb(data, len, &info,
                                  lim ? lim->max_jpeg_scans : VP_IMAGE_DEFAULT_MAX_JPEG_SCANS, out, err);
    case VP_IMAGE_UNKNOWN: break;
    }
    return vp_fail(err, VP_ERR_INTERNAL, "image", "probe returned no format");
}
