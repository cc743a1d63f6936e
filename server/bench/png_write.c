/* A minimal PNG writer: IHDR, one IDAT holding a zlib stream of stored deflate blocks
 * (each at most 65535 bytes, no compression), IEND. Filter type 0 on every row. */
#include <stdlib.h>
#include <string.h>

#include "engine/util/crc32.h"
#include "server/bench/bench.h"


static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends a chunk (length, type, data, CRC over type + data) at *pos. */
static void chunk(uint8_t *out, size_t *pos, const char type[4], const uint8_t *data, size_t n)
{
    put32(out + *pos, (uint32_t)n);
    memcpy(out + *pos + 4, type, 4);
    if (n)
        memcpy(out + *pos + 8, data, n);
    uint32_t crc = vp_crc32(out + *pos + 4, n + 4);
    put32(out + *pos + 8 + n, crc);
    *pos += 12 + n;
}

int vp_png_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t **out, size_t *len,
                      vp_error *err)
{
    if (w == 0 || h == 0 || w > 16384 || h > 16384)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "", "PNG size %ux%u out of range", w, h);
    size_t row = (size_t)w * 3 + 1, raw = row * h;
    size_t n_blocks = (raw + 65534) / 65535;
    size_t zlen = 2 + raw + 5 * n_blocks + 4;
    size_t total = 8 + (12 + 13) + (12 + zlen) + 12;
    uint8_t *png = malloc(total);
    uint8_t *z = malloc(zlen);
    if (!png || !z) {
        free(png);
        free(z);
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for a %ux%u PNG", w, h);
    }
    /* zlib: header 0x78 0x01, stored blocks, Adler-32 of the raw (filtered) rows */
    size_t zp = 0;
    z[zp++] = 0x78;
    z[zp++] = 0x01;
    uint32_t a = 1, b = 0;
    size_t done = 0;
    for (size_t blk = 0; blk < n_blocks; blk++) {
        size_t n = raw - done < 65535 ? raw - done : 65535;
        z[zp++] = blk + 1 == n_blocks ? 1 : 0; /* BFINAL, BTYPE 00 */
        z[zp++] = (uint8_t)n;
        z[zp++] = (uint8_t)(n >> 8);
        z[zp++] = (uint8_t)~n;
        z[zp++] = (uint8_t)(~n >> 8);
        for (size_t i = 0; i < n; i++) {
            size_t off = done + i, y = off / row, x = off % row;
            uint8_t v = x == 0 ? 0 : rgb[y * (size_t)w * 3 + (x - 1)];
            z[zp++] = v;
            a = (a + v) % 65521;
            b = (b + a) % 65521;
        }
        done += n;
    }
    put32(z + zp, b << 16 | a);
    zp += 4;

    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t pos = 0;
    memcpy(png, sig, 8);
    pos = 8;
    uint8_t ihdr[13];
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* filter method */
    ihdr[12] = 0; /* no interlace */
    chunk(png, &pos, "IHDR", ihdr, 13);
    chunk(png, &pos, "IDAT", z, zp);
    chunk(png, &pos, "IEND", NULL, 0);
    free(z);
    *out = png;
    *len = pos;
    return 0;
}

int vp_png_random(uint32_t w, uint32_t h, uint64_t seed, uint8_t **out, size_t *len,
                  vp_error *err)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for a %ux%u image", w, h);
    vp_rng r = {seed * 0x9e3779b97f4a7c15ull + 1};
    /* gradients give the vision encoder structure; noise keeps every tile distinct */
    uint32_t c0[3], cx[3], cy[3];
    for (int c = 0; c < 3; c++) {
        c0[c] = (uint32_t)vp_rng_range(&r, 0, 255);
        cx[c] = (uint32_t)vp_rng_range(&r, 0, 255);
        cy[c] = (uint32_t)vp_rng_range(&r, 0, 255);
    }
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint64_t noise = vp_rng_next(&r);
            for (int c = 0; c < 3; c++) {
                uint32_t v = c0[c] + cx[c] * x / w + cy[c] * y / h + (uint32_t)(noise >> (8 * c) & 63);
                rgb[((size_t)y * w + x) * 3 + (size_t)c] = (uint8_t)(v % 256);
            }
        }
    int rc = vp_png_encode_rgb(rgb, w, h, out, len, err);
    free(rgb);
    return rc;
}
