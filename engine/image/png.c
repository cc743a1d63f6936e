/* PNG chunk walk: the header for the limit checks, Pillow's refusals (bad CRC before
 * the image data, broken chunk names, truncation before IDAT), and the canonical stream
 * stb_image decodes (see formats.h for why). */
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"
#include "engine/util/crc32.h"

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Pillow accepts chunk names of four [A-Za-z0-9_] characters (regex \w\w\w\w). */
static int chunk_name_ok(const uint8_t *t)
{
    for (int i = 0; i < 4; i++) {
        uint8_t c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static int depth_color_valid(uint8_t depth, uint8_t color)
{
    switch (color) {
    case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6: return depth == 8 || depth == 16;
    }
    return 0;
}

static int parse_ihdr(const uint8_t *d, uint32_t clen, vp_png_header *h, vp_error *err)
{
    if (clen < 13)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG IHDR chunk is %u bytes (13 needed)",
                       clen);
    h->width = be32(d);
    h->height = be32(d + 4);
    h->depth = d[8];
    h->color = d[9];
    h->interlace = d[12];
    if (!depth_color_valid(h->depth, h->color))
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "PNG bit depth %u with colour type %u is not valid", h->depth, h->color);
    if (d[11])
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG filter method %u is unknown", d[11]);
    if (h->interlace > 1)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG interlace method %u is unknown",
                       h->interlace);
    return 0;
}

/* The first chunk must be IHDR (a leading Apple CgBI chunk marks a non-standard PNG). */
int vp_png_read_header(const uint8_t *data, size_t len, vp_png_header *h, vp_error *err)
{
    if (len < 8 || memcmp(data, png_signature, 8))
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG signature is truncated or wrong");
    if (len < 16)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG truncated before its IHDR chunk");
    uint32_t clen = be32(data + 8);
    const uint8_t *type = data + 12;
    if (!memcmp(type, "CgBI", 4))
        return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                       "Apple CgBI PNG (iOS-optimised) is not supported");
    if (memcmp(type, "IHDR", 4))
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG does not start with an IHDR chunk");
    if ((size_t)clen + 16 > len)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG truncated inside its IHDR chunk");
    return parse_ihdr(data + 16, clen, h, err);
}

/* The first run of consecutive IDAT chunks is the image data (Pillow stops at the
 * first other chunk); a chunk cut short by the end of the file gives what is there.
 * Copies the data to dst unless dst is NULL; returns its length. */
static size_t idat_run(const uint8_t *data, size_t len, size_t first, uint8_t *dst)
{
    size_t total = 0;
    for (size_t p = first; p + 8 <= len && !memcmp(data + p + 4, "IDAT", 4);) {
        size_t clen = be32(data + p);
        size_t avail = len - (p + 8) < clen ? len - (p + 8) : clen;
        if (dst)
            memcpy(dst + total, data + p + 8, avail);
        total += avail;
        if (avail < clen || len - (p + 8 + clen) < 4)
            break;
        p += clen + 12;
    }
    return total;
}

int vp_png_canonicalize(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len,
                        vp_error *err)
{
    *out = NULL;
    *out_len = 0;
    vp_png_header h;
    if (vp_png_read_header(data, len, &h, err))
        return -1;

    const uint8_t *plte = NULL;  /* last PLTE before the image data */
    uint32_t plte_len = 0;
    size_t pos = 8;
    size_t idat_first = 0;       /* offset of the first IDAT chunk */
    for (;;) {
        if (pos + 8 > len)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "PNG truncated before its image data (IDAT), at byte %zu", pos);
        uint32_t clen = be32(data + pos);
        const uint8_t *type = data + pos + 4;
        if (!chunk_name_ok(type))
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "broken PNG: chunk name %02x %02x %02x %02x at byte %zu", type[0],
                           type[1], type[2], type[3], pos);
        if (clen > 0x7fffffffu)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG chunk %.4s has length %u",
                           (const char *)type, clen);
        if (!memcmp(type, "IDAT", 4)) {
            idat_first = pos;
            break;
        }
        if (!memcmp(type, "IEND", 4))
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG has no image data (IDAT)");
        if ((size_t)clen + 12 > len - pos)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG truncated inside chunk %.4s",
                           (const char *)type);
        uint32_t want = be32(data + pos + 8 + clen);
        if (vp_crc32(data + pos + 4, (size_t)clen + 4) != want)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "broken PNG: bad CRC in chunk %.4s",
                           (const char *)type);
        if (!memcmp(type, "PLTE", 4)) {
            plte = data + pos + 8;
            plte_len = clen;
        }
        pos += (size_t)clen + 12;
    }

    size_t idat_total = idat_run(data, len, idat_first, NULL);
    if (!idat_total)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG image data (IDAT) is empty");
    if (idat_total > 0x7fffffffu)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image", "PNG image data of %zu bytes", idat_total);

    int palette = h.color == 3;
    if (palette && plte_len / 3 > 256)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG palette has %u entries (max 256)",
                       plte_len / 3);
    size_t cap = 8 + 25 + (palette ? 12 + 768 : 0) + 12 + idat_total + 12;
    uint8_t *o = malloc(cap);
    if (!o)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %zu-byte PNG", cap);
    size_t n = 0;
    memcpy(o, png_signature, 8);
    n = 8;
    /* IHDR as in the file, compression method forced to 0 (Pillow does not check it).
     * CRCs of this private stream are left 0: stb_image does not read them. */
    put_be32(o + n, 13);
    memcpy(o + n + 4, "IHDR", 4);
    memcpy(o + n + 8, data + 16, 13);
    o[n + 8 + 10] = 0;
    put_be32(o + n + 21, 0);
    n += 25;
    if (palette) {
        put_be32(o + n, 768);
        memcpy(o + n + 4, "PLTE", 4);
        uint8_t *pal = o + n + 8;
        uint32_t entries = plte_len / 3;
        for (uint32_t i = 0; i < 256; i++) {
            for (int c = 0; c < 3; c++)
                pal[i * 3 + c] = i < entries ? plte[i * 3 + c] : (uint8_t)i;
        }
        put_be32(o + n + 8 + 768, 0);
        n += 12 + 768;
    }
    put_be32(o + n, (uint32_t)idat_total);
    memcpy(o + n + 4, "IDAT", 4);
    n += 8;
    n += idat_run(data, len, idat_first, o + n);
    put_be32(o + n, 0);
    n += 4;
    put_be32(o + n, 0);
    memcpy(o + n + 4, "IEND", 4);
    put_be32(o + n + 8, 0);
    n += 12;
    *out = o;
    *out_len = n;
    return 0;
}
