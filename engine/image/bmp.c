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

/* Bit-field layouts Pillow 9.4 accepts (R, G, B[, A]); others it refuses. All zero
 * masks it reads as B, G, R, A bytes, as an uncompressed 32-bit file. */
static int masks_supported(uint16_t bpp, const uint32_t m[4])
{
    static const uint32_t m32[][4] = {
        {0xff0000, 0xff00, 0xff, 0x0},          {0xff000000, 0xff0000, 0xff00, 0x0},
        {0xff000000, 0xff0000, 0xff00, 0xff},   {0xff, 0xff00, 0xff0000, 0xff000000},
        {0xff0000, 0xff00, 0xff, 0xff000000},   {0x0, 0x0, 0x0, 0x0},
    };
    static const uint32_t m16[][3] = {{0xf800, 0x7e0, 0x1f}, {0x7c00, 0x3e0, 0x1f}};
    static const uint32_t m24[3] = {0xff0000, 0xff00, 0xff};
    if (bpp == 32) {
        for (size_t i = 0; i < sizeof m32 / sizeof m32[0]; i++)
            if (!memcmp(m, m32[i], sizeof m32[i]))
                return 1;
    } else if (bpp == 16) {
        for (size_t i = 0; i < sizeof m16 / sizeof m16[0]; i++)
            if (!memcmp(m, m16[i], sizeof m16[i]))
                return 1;
    } else if (bpp == 24) {
        return !memcmp(m, m24, sizeof m24);
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
    if (hsz != 12 && hsz != 40 && hsz != 64 && hsz != 108 && hsz != 124)
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
    int rle = h->compression == VP_BMP_RLE8 || h->compression == VP_BMP_RLE4;
    if (rle && h->bpp > 8) /* Pillow has no raw mode for it */
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "run-length encoded BMP of %u bits a pixel (at most 8)", h->bpp);
    if (!rle && h->compression != VP_BMP_RGB && h->compression != VP_BMP_BITFIELDS)
        return vp_fail(err, VP_ERR_UNSUPPORTED, "image", "BMP compression %u is not supported",
                       h->compression);
    if (h->compression == VP_BMP_BITFIELDS) {
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
    /* where Pillow's reading of the header (and the masks after a 40-byte one) ends */
    uint64_t read_to = 14 + (uint64_t)hsz + (hsz == 40 && h->compression == VP_BMP_BITFIELDS ? 12 : 0);
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
        read_to += (uint64_t)(hsz == 12 ? 3 : 4) * h->colors; /* it reads the palette */
    }
    if (!offset) /* Pillow reads the pixels from where its reading stopped */
        h->offset = (uint32_t)(read_to < len ? read_to : len);
    return 0;
}

/* Pillow's mode for a 1/4/8-bit BMP: 'P', or for a grey-ramp palette '1' (two entries,
 * black and white) or 'L' (entry i is i,i,i; Pillow compares the low 8 bits of i). */
static char pillow_mode(const uint8_t *d, size_t len, const vp_bmp_header *h)
{
    size_t at = 14 + (size_t)h->header_size, entry = h->header_size == 12 ? 3 : 4;
    for (size_t i = 0; i < h->colors; i++) {
        uint8_t v = (uint8_t)(h->colors == 2 ? (i ? 255 : 0) : i);
        if (at + i * entry + 3 > len)
            return 'P';
        const uint8_t *e = d + at + i * entry;
        if (e[0] != v || e[1] != v || e[2] != v)
            return 'P';
    }
    return h->colors == 2 ? '1' : 'L';
}

/* Bits a pixel as Pillow reads an uncompressed file's rows (its mode's, for a grey ramp). */
static int read_bits(const uint8_t *d, size_t len, const vp_bmp_header *h)
{
    if (h->bpp > 8)
        return h->bpp;
    char mode = pillow_mode(d, len, h);
    return mode == '1' ? 1 : mode == 'L' ? 8 : h->bpp;
}

static uint64_t row_stride(const vp_bmp_header *h)
{
    return (((uint64_t)h->width * h->bpp + 31) >> 3) & ~(uint64_t)3;
}

/* The bytes of pixel data Pillow needs: every row but the last with its padding, the
 * last one without (its raw decoder stops there). */
static uint64_t pixel_bytes(const uint8_t *d, size_t len, const vp_bmp_header *h)
{
    return (h->height - 1) * row_stride(h) + ((uint64_t)h->width * read_bits(d, len, h) + 7) / 8;
}

int vp_bmp_check_complete(const uint8_t *data, size_t len, const vp_bmp_header *h, vp_error *err)
{
    if (h->compression == VP_BMP_RLE8 || h->compression == VP_BMP_RLE4)
        return 0; /* its decoder finds out */
    uint64_t need = pixel_bytes(data, len, h), avail = len > h->offset ? len - h->offset : 0;
    if (need > avail)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "BMP pixel data is truncated (%u rows of %llu bytes from byte %u, file of "
                       "%zu bytes)",
                       h->height, (unsigned long long)row_stride(h), h->offset, len);
    return 0;
}

/* Pixel x of a row of bpp-bit indices (most significant bits first). */
static uint8_t index_at(const uint8_t *row, uint32_t x, int bpp)
{
    if (bpp == 8)
        return row[x];
    unsigned bit = x * (unsigned)bpp;
    return (uint8_t)(row[bit / 8] >> (8 - bpp - bit % 8) & ((1u << bpp) - 1));
}

/* The pixels as one index a byte, rows stride8 apart, in the file's row order. */
static int unpack_pixels(const uint8_t *data, size_t len, const vp_bmp_header *h, char mode,
                         uint8_t *o, size_t stride8, vp_error *err)
{
    if (h->compression == VP_BMP_RLE8 || h->compression == VP_BMP_RLE4) {
        if (mode == '1')
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "run-length encoded BMP with a black-and-white palette (Pillow "
                           "has no raw mode for it)");
        if (vp_bmp_rle_decode(data, len, h, o, err))
            return -1;
        for (size_t y = h->height; y-- > 1;) /* to rows stride8 apart, from the end */
            memmove(o + y * stride8, o + y * (size_t)h->width, h->width);
        return 0;
    }
    size_t stride = (size_t)row_stride(h);
    int bpp = mode == '1' ? 1 : mode == 'L' ? 8 : h->bpp;
    if (mode == 'L' && stride < h->width)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "%u-bit BMP with a grey-ramp palette: Pillow reads it as 8 bits a pixel "
                       "and its %zu-byte rows are too short for %u pixels",
                       h->bpp, stride, h->width);
    for (size_t y = 0; y < h->height; y++) {
        const uint8_t *row = data + h->offset + y * stride;
        for (uint32_t x = 0; x < h->width; x++)
            o[y * stride8 + x] = index_at(row, x, bpp);
    }
    return 0;
}

/* A zeroed stream of header + pixels bytes with a 40-byte BMP header; NULL when out of
 * memory. */
static uint8_t *new_bmp(const vp_bmp_header *h, uint16_t bpp, uint32_t compression,
                        size_t header, size_t pixels, uint32_t colors)
{
    uint8_t *o = calloc(1, header + pixels);
    if (!o)
        return NULL;
    o[0] = 'B';
    o[1] = 'M';
    uint32_t total = (uint32_t)(header + pixels), height = h->top_down ? 0u - h->height : h->height;
    uint32_t fields[][2] = {{2, total},  {10, (uint32_t)header}, {14, 40},         {18, h->width},
                            {22, height}, {26, 1u | (uint32_t)bpp << 16}, {30, compression},
                            {46, colors}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        for (int k = 0; k < 4; k++)
            o[fields[i][0] + k] = (uint8_t)(fields[i][1] >> (8 * k));
    return o;
}

int vp_bmp_canonicalize(const uint8_t *data, size_t len, const vp_bmp_header *h, uint8_t **out,
                        size_t *out_len, vp_error *err)
{
    *out = NULL;
    *out_len = 0;
    int rle = h->compression == VP_BMP_RLE8 || h->compression == VP_BMP_RLE4;
    if (!rle && (h->offset > len || pixel_bytes(data, len, h) > len - h->offset))
        return vp_fail(err, VP_ERR_INTERNAL, "image", "BMP canonicalisation of a %u-bit image",
                       h->bpp);
    if (h->bpp > 8) { /* the rows as they are; 16 and 32 bits with their masks (R, G, B) */
        int masks = h->bpp != 24 && h->compression == VP_BMP_BITFIELDS &&
                    (h->masks[0] | h->masks[1] | h->masks[2]);
        size_t header = 14 + 40 + (masks ? 12 : 0), pixels = (size_t)(row_stride(h) * h->height);
        uint8_t *o = new_bmp(h, h->bpp, masks ? VP_BMP_BITFIELDS : VP_BMP_RGB, header, pixels, 0);
        if (!o)
            return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %zu-byte BMP", len);
        for (int i = 0; i < 3 * masks; i++)
            for (int k = 0; k < 4; k++)
                o[54 + 4 * i + k] = (uint8_t)(h->masks[i] >> (8 * k));
        size_t have = len - h->offset; /* the last row's padding may be missing */
        memcpy(o + header, data + h->offset, have < pixels ? have : pixels);
        *out = o;
        *out_len = header + pixels;
        return 0;
    }
    size_t stride8 = ((size_t)h->width + 3) & ~(size_t)3, pixels = stride8 * h->height;
    const size_t header = 14 + 40 + 256 * 4;
    uint8_t *o = new_bmp(h, 8, VP_BMP_RGB, header, pixels, 256);
    if (!o)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %zu-byte BMP", len);
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
    if (unpack_pixels(data, len, h, pillow_mode(data, len, h), o + header, stride8, err)) {
        free(o);
        return -1;
    }
    *out = o;
    *out_len = header + pixels;
    return 0;
}
