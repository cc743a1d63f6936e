/* BMP header: size, depth and compression, limited to what both Pillow 9.4
 * (BmpImagePlugin) and stb_image decode; and the check that the pixel array lies inside
 * the file (stb_image would read zeros past the end where Pillow reports truncation). */
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Bit-field layouts Pillow 9.4 accepts (R, G, B[, A]); others it refuses. */
static int masks_supported(uint16_t bpp, const uint32_t m[4])
{
    static const uint32_t m32[][4] = {
        {0xff0000, 0xff00, 0xff, 0x0},          {0xff000000, 0xff0000, 0xff00, 0x0},
        {0xff000000, 0xff0000, 0xff00, 0xff},   {0xff, 0xff00, 0xff0000, 0xff000000},
        {0xff0000, 0xff00, 0xff, 0xff000000},
    };
    static const uint32_t m16[][3] = {{0xf800, 0x7e0, 0x1f}, {0x7c00, 0x3e0, 0x1f}};
    if (bpp == 32) {
        for (size_t i = 0; i < sizeof m32 / sizeof m32[0]; i++)
            if (!memcmp(m, m32[i], sizeof m32[i]))
                return 1;
    } else if (bpp == 16) {
        for (size_t i = 0; i < sizeof m16 / sizeof m16[0]; i++)
            if (!memcmp(m, m16[i], sizeof m16[i]))
                return 1;
    }
    return 0;
}

int vp_bmp_read_header(const uint8_t *d, size_t len, vp_bmp_header *h, vp_error *err)
{
    memset(h, 0, sizeof *h);
    if (len < 18 || d[0] != 'B' || d[1] != 'M')
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "BMP header is truncated or wrong");
    uint32_t offset = le32(d + 10);
    uint32_t hsz = le32(d + 14);
    if (hsz != 12 && hsz != 40 && hsz != 108 && hsz != 124)
        return vp_fail(err, VP_ERR_UNSUPPORTED, "image", "BMP header of %u bytes is not supported",
                       hsz);
    if (len - 14 < hsz)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "BMP truncated in its header");
    const uint8_t *b = d + 14;
    int64_t w, hgt;
    uint32_t clr_used = 0;
    if (hsz == 12) {
        w = le16(b + 4);
        hgt = le16(b + 6);
        h->bpp = (uint16_t)le16(b + 10);
    } else {
        w = (int32_t)le32(b + 4);
        hgt = (int32_t)le32(b + 8);
        h->bpp = (uint16_t)le16(b + 14);
        h->compression = le32(b + 16);
        clr_used = le32(b + 32);
    }
    if (w <= 0 || hgt == 0)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "BMP has size %lldx%lld", (long long)w,
                       (long long)hgt);
    h->width = (uint32_t)w;
    h->height = (uint32_t)(hgt < 0 ? -hgt : hgt);
    h->top_down = hgt < 0;
    h->header_size = hsz;
    if (h->bpp != 1 && h->bpp != 4 && h->bpp != 8 && h->bpp != 16 && h->bpp != 24 && h->bpp != 32)
        return vp_fail(err, VP_ERR_UNSUPPORTED, "image", "BMP depth of %u bits is not supported",
                       h->bpp);
    if (h->compression == 1 || h->compression == 2)
        return vp_fail(err, VP_ERR_UNSUPPORTED, "image", "run-length encoded BMP is not supported");
    if (h->compression != 0 && h->compression != 3)
        return vp_fail(err, VP_ERR_UNSUPPORTED, "image", "BMP compression %u is not supported",
                       h->compression);
    if (h->compression == 3) {
        uint32_t m[4] = {0, 0, 0, 0};
        if (hsz == 40) {
            if (len - 14 - 40 < 12)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "BMP truncated in its bit masks");
            for (int i = 0; i < 3; i++)
                m[i] = le32(b + 40 + 4 * i);
        } else {
            for (int i = 0; i < 4; i++)
                m[i] = le32(b + 40 + 4 * i);
        }
        if (!masks_supported(h->bpp, m))
            return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                           "BMP %u-bit bit-field layout %08x %08x %08x %08x is not supported",
                           h->bpp, m[0], m[1], m[2], m[3]);
        memcpy(h->masks, m, sizeof h->masks);
    } else if (h->bpp == 16) {
        h->masks[0] = 0x7c00;
        h->masks[1] = 0x3e0;
        h->masks[2] = 0x1f;
    }
    h->offset = offset;
    if (h->bpp <= 8) {
        /* Pillow: biClrUsed entries, else 2^bpp; more than 65536 it refuses; a pixel
         * offset pointing right after the header skips 4 bytes an entry. */
        h->colors = clr_used ? clr_used : 1u << h->bpp;
        if (h->colors > 65536)
            return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                           "BMP palette of %u colours is not supported (at most 65536)",
                           h->colors);
        if (offset == 14 + hsz)
            h->offset = offset + 4 * h->colors;
    }
    return 0;
}

int vp_bmp_check_complete(size_t len, const vp_bmp_header *h, vp_error *err)
{
    uint64_t stride = (((uint64_t)h->width * h->bpp + 31) >> 3) & ~(uint64_t)3;
    uint64_t avail = len > h->offset ? len - h->offset : 0;
    if (h->height > avail / stride)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "BMP pixel data is truncated (%u rows of %llu bytes from byte %u, file of %zu bytes)",
                       h->height, (unsigned long long)stride, h->offset, len);
    return 0;
}

int vp_bmp_canonicalize(const uint8_t *data, size_t len, const vp_bmp_header *h, uint8_t **out,
                        size_t *out_len, vp_error *err)
{
    *out = NULL;
    *out_len = 0;
    uint64_t stride = (((uint64_t)h->width * h->bpp + 31) >> 3) & ~(uint64_t)3;
    uint64_t pixels = stride * h->height;
    if (h->bpp > 8 || h->offset > len || pixels > len - h->offset)
        return vp_fail(err, VP_ERR_INTERNAL, "image", "BMP canonicalisation of a %u-bit image",
                       h->bpp);
    const size_t header = 14 + 40 + 256 * 4;
    uint8_t *o = malloc(header + (size_t)pixels);
    if (!o)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %zu-byte BMP", len);
    memset(o, 0, header);
    o[0] = 'B';
    o[1] = 'M';
    uint32_t total = (uint32_t)(header + pixels), height = h->top_down ? 0u - h->height : h->height;
    uint32_t fields[][2] = {{2, total}, {10, (uint32_t)header}, {14, 40}, {18, h->width},
                            {22, height}, {26, 1u | (uint32_t)h->bpp << 16}, {46, 256}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        for (int k = 0; k < 4; k++)
            o[fields[i][0] + k] = (uint8_t)(fields[i][1] >> (8 * k));
    /* Pillow reads the palette right after the header, as far as the file goes. */
    size_t at = 14 + h->header_size, entry = h->header_size == 12 ? 3 : 4;
    size_t avail = len > at ? (len - at) / entry : 0;
    uint8_t *pal = o + 54;
    for (size_t i = 0; i < 256; i++) {
        if (i < h->colors && i < avail)
            memcpy(pal + 4 * i, data + at + i * entry, 3);
        else
            pal[4 * i] = pal[4 * i + 1] = pal[4 * i + 2] = (uint8_t)i;
    }
    memcpy(o + header, data + h->offset, (size_t)pixels);
    *out = o;
    *out_len = header + (size_t)pixels;
    return 0;
}
