/* PNG chunk walk: the header for the limit checks, Pillow's refusals (bad CRC before
 * the image data, broken chunk names, truncation before IDAT), the rows as Pillow
 * inflates them, and the canonical stream stb_image decodes (see formats.h for why). */
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
    h->interlace = d[12] != 0; /* Pillow takes any other value than 0 for Adam7 */
    if (!depth_color_valid(h->depth, h->color))
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "PNG bit depth %u with colour type %u is not valid", h->depth, h->color);
    if (d[11])
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG filter method %u is unknown", d[11]);
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
 * Copies the data to dst and the end of each of Pillow's reads of it (65536 bytes at
 * most, within one chunk) to piece_end, unless NULL; returns the data's length and
 * the number of reads in *n_pieces. */
static size_t idat_run(const uint8_t *data, size_t len, size_t first, uint8_t *dst,
                       size_t *piece_end, size_t *n_pieces)
{
    size_t total = 0, pieces = 0;
    for (size_t p = first; p + 8 <= len && !memcmp(data + p + 4, "IDAT", 4);) {
        size_t clen = be32(data + p);
        size_t avail = len - (p + 8) < clen ? len - (p + 8) : clen;
        if (dst)
            memcpy(dst + total, data + p + 8, avail);
        for (size_t at = 0; at < avail; at += 65536, pieces++)
            if (piece_end)
                piece_end[pieces] = total + (avail - at < 65536 ? avail : at + 65536);
        total += avail;
        if (avail < clen || len - (p + 8 + clen) < 4)
            break;
        p += clen + 12;
    }
    *n_pieces = pieces;
    return total;
}

/* Where each row of filter byte + pixels ends in the inflated data, in Pillow's order
 * (Adam7: pass by pass, passes without pixels skipped); NULL when out of memory. */
static size_t *row_ends(const vp_png_header *h, size_t *n_rows)
{
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    static const int start_row[7] = {0, 0, 4, 0, 2, 0, 1}, row_step[7] = {8, 8, 8, 4, 4, 2, 2};
    static const int start_col[7] = {0, 4, 0, 2, 0, 1, 0}, col_step[7] = {8, 8, 4, 4, 2, 2, 1};
    size_t bits = (size_t)h->depth * (size_t)chans[h->color];
    /* Adam7: at most 15/8 of the height, plus one a pass */
    size_t *ends = malloc((2 * (size_t)h->height + 8) * sizeof *ends);
    if (!ends)
        return NULL;
    size_t n = 0, at = 0;
    for (int p = 0; p < (h->interlace ? 7 : 1); p++) {
        size_t x0 = h->interlace ? (size_t)start_col[p] : 0, dx = h->interlace ? (size_t)col_step[p] : 1;
        size_t y0 = h->interlace ? (size_t)start_row[p] : 0, dy = h->interlace ? (size_t)row_step[p] : 1;
        if (h->width <= x0)
            continue;
        size_t pixels = (h->width - x0 + dx - 1) / dx;
        for (size_t y = y0; y < h->height; y += dy)
            ends[n++] = at += 1 + (pixels * bits + 7) / 8;
    }
    *n_rows = n;
    return ends;
}

/* The rows inflated as Pillow inflates them (png_inflate.c): *raw (malloc'd) of *total
 * bytes, 0 on success. */
static int inflated_rows(const uint8_t *data, size_t len, size_t idat_first, const vp_png_header *h,
                         uint8_t **out_raw, size_t *out_total, vp_error *err)
{
    size_t n_pieces, n_rows = 0;
    size_t idat_total = idat_run(data, len, idat_first, NULL, NULL, &n_pieces);
    uint8_t *idat = malloc(idat_total ? idat_total : 1);
    size_t *pieces = malloc((n_pieces ? n_pieces : 1) * sizeof *pieces);
    size_t *rows = row_ends(h, &n_rows);
    uint8_t *raw = NULL;
    int rc = -1;
    if (!idat || !pieces || !rows) {
        vp_fail(err, VP_ERR_NOMEM, "image", "out of memory reading PNG image data");
        goto out;
    }
    idat_run(data, len, idat_first, idat, pieces, &n_pieces);
    size_t total = rows[n_rows - 1];
    raw = malloc(total);
    if (!raw) {
        vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for %zu bytes of PNG rows", total);
        goto out;
    }
    if (vp_png_inflate(idat, idat_total, pieces, n_pieces, rows, n_rows, raw, err))
        goto out;
    *out_raw = raw;
    *out_total = total;
    raw = NULL;
    rc = 0;
out:
    free(idat);
    free(pieces);
    free(rows);
    free(raw);
    return rc;
}

void vp_png_rows_free(vp_png_rows *r)
{
    free(r->raw);
    r->raw = NULL;
}

int vp_png_read_rows(const uint8_t *data, size_t len, vp_png_rows *r, vp_error *err)
{
    memset(r, 0, sizeof *r);
    if (vp_png_read_header(data, len, &r->h, err))
        return -1;
    memcpy(r->ihdr, data + 16, 13);
    r->ihdr[12] = r->h.interlace;

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
        if (!memcmp(type, "IDAT", 4)) { /* read as far as it goes, whatever its length */
            idat_first = pos;
            break;
        }
        if (clen > 0x7fffffffu)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG chunk %.4s has length %u",
                           (const char *)type, clen);
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

    size_t n_pieces;
    if (!idat_run(data, len, idat_first, NULL, NULL, &n_pieces))
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG image data (IDAT) is empty");

    if (r->h.color == 3 && plte_len / 3 > 256)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG palette has %u entries (max 256)",
                       plte_len / 3);
    uint32_t entries = plte_len / 3;
    for (uint32_t i = 0; i < 256; i++)
        for (int c = 0; c < 3; c++)
            r->palette[i * 3 + c] = i < entries ? plte[i * 3 + c] : (uint8_t)i;
    return inflated_rows(data, len, idat_first, &r->h, &r->raw, &r->raw_len, err);
}

int vp_png_canonical_stream(const vp_png_rows *r, uint8_t **out, size_t *out_len, vp_error *err)
{
    *out = NULL;
    *out_len = 0;
    /* signature, IHDR, PLTE, then the rows as a zlib stream of stored blocks in IDAT
     * chunks (stb_image's inflate copies them; it checks no Adler-32, so none is
     * written), IEND */
    uint8_t head[8 + 25 + 12 + 768];
    size_t n = 0;
    memcpy(head, png_signature, 8);
    n = 8;
    /* IHDR as in the file, compression method forced to 0 (Pillow does not check it).
     * CRCs of this private stream are left 0: stb_image does not read them. */
    put_be32(head + n, 13);
    memcpy(head + n + 4, "IHDR", 4);
    memcpy(head + n + 8, r->ihdr, 13);
    head[n + 8 + 10] = 0;
    put_be32(head + n + 21, 0);
    n += 25;
    if (r->h.color == 3) {
        put_be32(head + n, 768);
        memcpy(head + n + 4, "PLTE", 4);
        memcpy(head + n + 8, r->palette, 768);
        put_be32(head + n + 8 + 768, 0);
        n += 12 + 768;
    }
    const size_t head_len = n, total = r->raw_len;
    size_t blocks = (total + 65534) / 65535, zlen = 2 + 5 * blocks + total + 4;
    size_t chunks = (zlen + (1u << 30) - 1) >> 30; /* stb_image takes IDATs up to 1 GB */
    uint8_t *o = malloc(head_len + zlen + 12 * chunks + 12);
    if (!o)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for %zu bytes of PNG rows",
                       total);
    memcpy(o, head, head_len);
    /* the zlib stream, built after the chunk headers' room, then cut into chunks (one
     * chunk: built in place) */
    uint8_t *z = o + head_len + (chunks == 1 ? 8 : 12 * chunks);
    size_t zn = 0;
    z[zn++] = 0x78;
    z[zn++] = 0x01;
    for (size_t at = 0; at < total; at += 65535) {
        size_t k = total - at < 65535 ? total - at : 65535;
        z[zn++] = at + k >= total; /* BFINAL, stored */
        z[zn++] = (uint8_t)k;
        z[zn++] = (uint8_t)(k >> 8);
        z[zn++] = (uint8_t)~k;
        z[zn++] = (uint8_t)(~k >> 8);
        memcpy(z + zn, r->raw + at, k);
        zn += k;
    }
    memset(z + zn, 0, 4);
    zn += 4;
    n = head_len;
    for (size_t at = 0; at < zn; at += 1u << 30) {
        size_t k = zn - at < (1u << 30) ? zn - at : (1u << 30);
        put_be32(o + n, (uint32_t)k);
        memcpy(o + n + 4, "IDAT", 4);
        if (o + n + 8 != z + at)
            memmove(o + n + 8, z + at, k);
        put_be32(o + n + 8 + k, 0);
        n += 12 + k;
    }
    put_be32(o + n, 0);
    memcpy(o + n + 4, "IEND", 4);
    put_be32(o + n + 8, 0);
    n += 12;
    *out = o;
    *out_len = n;
    return 0;
}
