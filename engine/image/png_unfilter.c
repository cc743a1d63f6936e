/* The PNG row filters undone for the common case, 8-bit samples without interlacing,
 * straight into the RGB image (no stored-block stream, no stb_image pass, no
 * conversion pass). The filters are the PNG specification's (None, Sub, Up, Average,
 * Paeth; the row before the first is zeros); the conversion is Pillow's convert("RGB")
 * of what it opened: grey replicated, alpha dropped (not composited), palette indices
 * looked up. Anything else (other depths, Adam7, a filter type past 4) takes the
 * canonical stream through stb_image, which decodes or refuses it as before. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"

static inline uint8_t paeth(int a, int b, int c)
{
    int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* dst = the unfiltered row of n bytes, src its filtered bytes, prev the row above
 * (unfiltered; zeros for the first row), bpp bytes a pixel. */
static void unfilter(uint8_t *dst, const uint8_t *src, const uint8_t *prev, size_t n, size_t bpp,
                     int type)
{
    size_t i;
    switch (type) {
    case 0:
        memcpy(dst, src, n);
        break;
    case 1:
        for (i = 0; i < bpp && i < n; i++)
            dst[i] = src[i];
        for (; i < n; i++)
            dst[i] = (uint8_t)(src[i] + dst[i - bpp]);
        break;
    case 2:
        for (i = 0; i < n; i++)
            dst[i] = (uint8_t)(src[i] + prev[i]);
        break;
    case 3:
        for (i = 0; i < bpp && i < n; i++)
            dst[i] = (uint8_t)(src[i] + (prev[i] >> 1));
        for (; i < n; i++)
            dst[i] = (uint8_t)(src[i] + ((dst[i - bpp] + prev[i]) >> 1));
        break;
    default: /* 4: Paeth; a and c are 0 for the first pixel */
        for (i = 0; i < bpp && i < n; i++)
            dst[i] = (uint8_t)(src[i] + prev[i]);
        for (; i < n; i++)
            dst[i] = (uint8_t)(src[i] + paeth(dst[i - bpp], prev[i], prev[i - bpp]));
        break;
    }
}

int vp_png_rows_to_rgb(const vp_png_rows *r, uint8_t *rgb)
{
    static const size_t channels[7] = {1, 0, 3, 1, 2, 0, 4};
    const vp_png_header *h = &r->h;
    if (h->depth != 8 || h->interlace || h->color > 6 || !channels[h->color])
        return 0;
    const size_t bpp = channels[h->color], w = h->width, stride = 1 + w * bpp;
    if (r->raw_len != stride * h->height)
        return 0;
    for (size_t y = 0; y < h->height; y++)
        if (r->raw[y * stride] > 4)
            return 0; /* stb_image's refusal, with its message */
    if (bpp == 3) { /* RGB: the rows are the image */
        uint8_t *zeros = calloc(w, 3);
        if (!zeros)
            return 0;
        for (size_t y = 0; y < h->height; y++) {
            uint8_t *dst = rgb + y * w * 3;
            unfilter(dst, r->raw + y * stride + 1, y ? dst - w * 3 : zeros, w * 3, 3,
                     r->raw[y * stride]);
        }
        free(zeros);
        return 1;
    }
    uint8_t *rows = calloc(3, w * bpp); /* zeros, then two rows in turn */
    if (!rows)
        return 0;
    const uint8_t *prev = rows;
    for (size_t y = 0; y < h->height; y++) {
        uint8_t *cur = rows + (1 + y % 2) * w * bpp, *dst = rgb + y * w * 3;
        unfilter(cur, r->raw + y * stride + 1, prev, w * bpp, bpp, r->raw[y * stride]);
        prev = cur;
        switch (h->color) {
        case 0: /* grey */
        case 4: /* grey + alpha */
            for (size_t x = 0; x < w; x++)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = cur[x * bpp];
            break;
        case 3: /* palette */
            for (size_t x = 0; x < w; x++)
                memcpy(dst + 3 * x, r->palette + 3 * (size_t)cur[x], 3);
            break;
        default: /* 6: RGBA */
            for (size_t x = 0; x < w; x++)
                memcpy(dst + 3 * x, cur + 4 * x, 3);
            break;
        }
    }
    free(rows);
    return 1;
}
