/* Image module: error kinds (unknown format, corrupt and truncated data, zero size,
 * decompression bombs in the header and in the data), Pillow's RGB conversion rules on
 * hand-built files, resize properties and a hand-derived value, the reference's tiling
 * choices and candidate order (values from the model card's Python code), float32
 * normalisation (values from numpy), the .npy writer/reader, arithmetic-coded JPEGs equal
 * to the Huffman file jpegtran transcoded them from. The bit-exact comparison
 * with Pillow over hundreds of images is tests/image/suite_oracle.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"
#include "engine/util/file.h"
#include "engine/util/npy.h"
#include "tests/unit/check.h"

/* The scalar build of the resize (the library has the SSE4.1 one), to compare them. */
#define VP_RESIZE_NO_SIMD
#define vp_image_resize vp_image_resize_scalar
#define vp_image_resize_into vp_image_resize_into_scalar
#include "engine/image/resize.c"
#undef vp_image_resize
#undef vp_image_resize_into

/* ---- building PNG files: stored (uncompressed) deflate, real CRCs ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_be32(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static uint32_t crc32_bytes(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put_chunk(buf *b, const char *type, const uint8_t *d, size_t n)
{
    put_be32(b, (uint32_t)n);
    size_t start = b->n;
    put(b, type, 4);
    if (n)
        put(b, d, n);
    put_be32(b, crc32_bytes(b->p + start, n + 4));
}

/* zlib stream of stored blocks around raw. */
static buf zlib_stored(const uint8_t *raw, size_t n)
{
    buf z = {0};
    put(&z, "\x78\x01", 2);
    size_t off = 0;
    do {
        size_t len = n - off > 65535 ? 65535 : n - off;
        uint8_t hdr[5] = {(uint8_t)(off + len == n), (uint8_t)len, (uint8_t)(len >> 8),
                          (uint8_t)~len, (uint8_t)(~len >> 8)};
        put(&z, hdr, 5);
        if (len)
            put(&z, raw + off, len);
        off += len;
    } while (off < n);
    uint32_t a = 1, b2 = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + raw[i]) % 65521;
        b2 = (b2 + a) % 65521;
    }
    put_be32(&z, b2 << 16 | a);
    return z;
}

/* A PNG with the given IHDR and rows (each row: filter byte 0 + packed samples). */
static buf make_png(uint32_t w, uint32_t h, uint8_t depth, uint8_t color, const uint8_t *rows,
                    size_t rows_len, const uint8_t *plte, size_t plte_len, const buf *idat)
{
    buf b = {0};
    put(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                        depth, color, 0, 0, 0};
    put_chunk(&b, "IHDR", ihdr, 13);
    if (plte)
        put_chunk(&b, "PLTE", plte, plte_len);
    if (idat) {
        put_chunk(&b, "IDAT", idat->p, idat->n);
    } else {
        buf z = zlib_stored(rows, rows_len);
        put_chunk(&b, "IDAT", z.p, z.n);
        free(z.p);
    }
    put_chunk(&b, "IEND", NULL, 0);
    return b;
}

static int decode(const buf *b, const vp_image_limits *lim, vp_rgb_image *img, vp_error *err)
{
    memset(err, 0, sizeof *err);
    return vp_image_decode_rgb(b->p, b->n, lim, img, err);
}

static void expect_error(const uint8_t *d, size_t n, const vp_image_limits *lim,
                         vp_err_kind kind, const char *needle, const char *what)
{
    vp_rgb_image img;
    vp_error err = {0};
    int rc = vp_image_decode_rgb(d, n, lim, &img, &err);
    CHECK_MSG(rc == -1 && err.kind == kind, "%s: rc %d kind %d (want %d): %s", what, rc, err.kind,
              kind, err.message);
    if (needle)
        CHECK_MSG(strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'", what,
                  err.message, needle);
    if (rc == 0)
        vp_rgb_image_free(&img);
}

/* ---- formats and error kinds ---- */

static void test_sniff_and_unknown(void)
{
    CHECK(vp_image_sniff((const uint8_t *)"\x89PNG\r\n\x1a\n", 8) == VP_IMAGE_PNG);
    CHECK(vp_image_sniff((const uint8_t *)"\xff\xd8\xff\xe0", 4) == VP_IMAGE_JPEG);
    CHECK(vp_image_sniff((const uint8_t *)"GIF87a", 6) == VP_IMAGE_GIF);
    CHECK(vp_image_sniff((const uint8_t *)"GIF89a", 6) == VP_IMAGE_GIF);
    CHECK(vp_image_sniff((const uint8_t *)"BM", 2) == VP_IMAGE_BMP);
    CHECK(vp_image_sniff((const uint8_t *)"\x89PN", 3) == VP_IMAGE_PNG); /* truncated signature */
    CHECK(vp_image_sniff((const uint8_t *)"hello", 5) == VP_IMAGE_UNKNOWN);

    expect_error((const uint8_t *)"", 0, NULL, VP_ERR_UNDECODABLE, "empty", "zero bytes");
    const char *text = "just some text, not an image";
    expect_error((const uint8_t *)text, strlen(text), NULL, VP_ERR_UNSUPPORTED,
                 "(first bytes: 6a 75 73 74 20 73 6f 6d)", "text"); /* "just som" */
    expect_error((const uint8_t *)"abc", 3, NULL, VP_ERR_UNSUPPORTED, "(first bytes: 61 62 63)",
                 "three bytes");
    static const uint8_t webp[] = "RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00";
    expect_error(webp, sizeof webp - 1, NULL, VP_ERR_UNSUPPORTED, "WebP", "webp");
    static const uint8_t tiff[] = "II*\x00\x08\x00\x00\x00";
    expect_error(tiff, 8, NULL, VP_ERR_UNSUPPORTED, "TIFF", "tiff");
    expect_error((const uint8_t *)"\x89PNG", 4, NULL, VP_ERR_UNDECODABLE, NULL, "png prefix");
}

static void test_png_conversions(void)
{
    vp_rgb_image img;
    vp_error err;

    /* RGB 8-bit, 3x2: decoded values equal the samples written. */
    uint8_t rgb_rows[2 * (1 + 9)];
    for (int y = 0; y < 2; y++) {
        rgb_rows[y * 10] = 0;
        for (int i = 0; i < 9; i++)
            rgb_rows[y * 10 + 1 + i] = (uint8_t)(17 * y + 29 * i + 3);
    }
    buf b = make_png(3, 2, 8, 2, rgb_rows, sizeof rgb_rows, NULL, 0, NULL);
    CHECK(decode(&b, NULL, &img, &err) == 0);
    CHECK(img.width == 3 && img.height == 2);
    int same = 1;
    for (int y = 0; y < 2; y++)
        for (int i = 0; i < 9; i++)
            same &= img.pixels[y * 9 + i] == rgb_rows[y * 10 + 1 + i];
    CHECK_MSG(same, "RGB PNG pixels differ from the samples");
    vp_rgb_image_free(&img);

    /* Bad CRC in IHDR (Pillow refuses it), truncated IDAT, zero width. */
    buf bad = {0};
    put(&bad, b.p, b.n);
    bad.p[8 + 8 + 13] ^= 0x55;
    expect_error(bad.p, bad.n, NULL, VP_ERR_UNDECODABLE, "CRC", "bad IHDR CRC");
    free(bad.p);
    expect_error(b.p, b.n - 25, NULL, VP_ERR_UNDECODABLE, NULL, "truncated IDAT");
    expect_error(b.p, 20, NULL, VP_ERR_UNDECODABLE, "truncated", "truncated IHDR");
    free(b.p);
    b = make_png(0, 2, 8, 2, rgb_rows, 2, NULL, 0, NULL);
    expect_error(b.p, b.n, NULL, VP_ERR_UNDECODABLE, "zero size", "zero width");
    free(b.p);

    /* RGBA: alpha dropped, not composited (a fully transparent pixel keeps its colour). */
    uint8_t rgba_rows[1 + 8] = {0, 200, 100, 50, 0, 10, 20, 30, 255};
    b = make_png(2, 1, 8, 6, rgba_rows, sizeof rgba_rows, NULL, 0, NULL);
    CHECK(decode(&b, NULL, &img, &err) == 0);
    CHECK(img.pixels[0] == 200 && img.pixels[1] == 100 && img.pixels[2] == 50);
    CHECK(img.pixels[3] == 10 && img.pixels[4] == 20 && img.pixels[5] == 30);
    vp_rgb_image_free(&img);
    free(b.p);

    /* 16-bit grey: Pillow's mode I converts to RGB by clamping to 255. */
    const uint16_t g16[6] = {0, 100, 255, 256, 1000, 65535};
    const uint8_t want16[6] = {0, 100, 255, 255, 255, 255};
    uint8_t g16_rows[1 + 12] = {0};
    for (int i = 0; i < 6; i++) {
        g16_rows[1 + 2 * i] = (uint8_t)(g16[i] >> 8);
        g16_rows[2 + 2 * i] = (uint8_t)g16[i];
    }
    b = make_png(6, 1, 16, 0, g16_rows, sizeof g16_rows, NULL, 0, NULL);
    CHECK(decode(&b, NULL, &img, &err) == 0);
    for (int i = 0; i < 6; i++)
        CHECK_MSG(img.pixels[3 * i] == want16[i] && img.pixels[3 * i + 2] == want16[i],
                  "grey16 %u -> %u, want %u", g16[i], img.pixels[3 * i], want16[i]);
    vp_rgb_image_free(&img);
    free(b.p);

    /* 16-bit RGB: the high byte of each sample. */
    uint8_t rgb16_rows[1 + 6] = {0, 0x12, 0xff, 0xab, 0x01, 0x00, 0x80};
    b = make_png(1, 1, 16, 2, rgb16_rows, sizeof rgb16_rows, NULL, 0, NULL);
    CHECK(decode(&b, NULL, &img, &err) == 0);
    CHECK(img.pixels[0] == 0x12 && img.pixels[1] == 0xab && img.pixels[2] == 0x00);
    vp_rgb_image_free(&img);
    free(b.p);

    /* Palette of 2 entries, indices 0, 1, 5, 200: past the palette Pillow reads grey i,i,i. */
    const uint8_t plte[6] = {9, 8, 7, 1, 2, 3};
    uint8_t pal_rows[1 + 4] = {0, 0, 1, 5, 200};
    b = make_png(4, 1, 8, 3, pal_rows, sizeof pal_rows, plte, 6, NULL);
    CHECK(decode(&b, NULL, &img, &err) == 0);
    const uint8_t want_pal[12] = {9, 8, 7, 1, 2, 3, 5, 5, 5, 200, 200, 200};
    CHECK_MSG(!memcmp(img.pixels, want_pal, 12), "palette expansion %u %u %u / %u", img.pixels[6],
              img.pixels[7], img.pixels[8], img.pixels[9]);
    vp_rgb_image_free(&img);
    free(b.p);

    /* 2-bit grey: samples 0..3 widen to 0, 85, 170, 255. */
    uint8_t g2_rows[1 + 1] = {0, 0x1b}; /* 00 01 10 11 */
    b = make_png(4, 1, 2, 0, g2_rows, sizeof g2_rows, NULL, 0, NULL);
    CHECK(decode(&b, NULL, &img, &err) == 0);
    CHECK(img.pixels[0] == 0 && img.pixels[3] == 85 && img.pixels[6] == 170 && img.pixels[9] == 255);
    vp_rgb_image_free(&img);
    free(b.p);
}

/* Deflate with fixed Huffman codes: one literal 0, then n copies of (length 258,
 * distance 1): 1 + 258 n zero bytes from ~1.6 n compressed bytes. */
static buf zlib_bomb(size_t n)
{
    buf z = {0};
    put(&z, "\x78\x01", 2);
    uint64_t acc = 0;
    int nbits = 0;
    uint8_t byte;
#define BITS_LSB(v, k)                                                                          \
    do {                                                                                        \
        acc |= (uint64_t)(v) << nbits;                                                         \
        nbits += (k);                                                                           \
        while (nbits >= 8) {                                                                    \
            byte = (uint8_t)acc;                                                                \
            put(&z, &byte, 1);                                                                  \
            acc >>= 8;                                                                          \
            nbits -= 8;                                                                         \
        }                                                                                       \
    } while (0)
#define CODE_MSB(code, k)                                                                       \
    do {                                                                                        \
        for (int bit = (k) - 1; bit >= 0; bit--)                                               \
            BITS_LSB(((code) >> bit) & 1, 1);                                                  \
    } while (0)
    BITS_LSB(1, 1);          /* BFINAL */
    BITS_LSB(1, 2);          /* fixed Huffman */
    CODE_MSB(0x30, 8);       /* literal 0 */
    for (size_t i = 0; i < n; i++) {
        CODE_MSB(0xc5, 8);   /* length code 285 = 258 */
        CODE_MSB(0, 5);      /* distance code 0 = 1 */
    }
    CODE_MSB(0, 7);          /* end of block */
    if (nbits)
        BITS_LSB(0, 8 - nbits);
    put_be32(&z, 0);         /* Adler-32, not checked by the decoder */
#undef BITS_LSB
#undef CODE_MSB
    return z;
}

static void test_bombs_and_limits(void)
{
    vp_image_limits lim;
    vp_image_limits_default(&lim);
    uint8_t rows[1 + 3] = {0, 1, 2, 3};

    /* Header-declared giant sizes are refused before any decoding. */
    buf b = make_png(100000, 100000, 8, 2, rows, sizeof rows, NULL, 0, NULL);
    expect_error(b.p, b.n, &lim, VP_ERR_TOO_LARGE, "max_image_side", "PNG 100000x100000");
    free(b.p);
    b = make_png(30000, 30000, 8, 2, rows, sizeof rows, NULL, 0, NULL);
    expect_error(b.p, b.n, &lim, VP_ERR_TOO_LARGE, "max_image_pixels", "PNG 30000x30000");
    free(b.p);
    static const uint8_t gif_bomb[] = "GIF89a\xff\xff\xff\xff\x00\x00\x00;";
    expect_error(gif_bomb, sizeof gif_bomb - 1, &lim, VP_ERR_TOO_LARGE, "max_image_side", "GIF bomb");
    static const uint8_t jpeg_bomb[] = "\xff\xd8\xff\xc0\x00\x11\x08\xfd\xe8\xfd\xe8\x03\x01\x22"
                                       "\x00\x02\x11\x01\x03\x11\x01\xff\xd9";
    expect_error(jpeg_bomb, sizeof jpeg_bomb - 1, &lim, VP_ERR_TOO_LARGE, NULL, "JPEG bomb");

    /* Configured limits: bytes, pixels and sides, each named with its value. */
    b = make_png(1, 3, 8, 2, (const uint8_t[]){0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9}, 12, NULL, 0, NULL);
    vp_image_limits small = lim;
    small.max_encoded_bytes = b.n - 1;
    expect_error(b.p, b.n, &small, VP_ERR_TOO_LARGE, "max_image_bytes", "byte limit");
    small = lim;
    small.max_pixels = 2;
    expect_error(b.p, b.n, &small, VP_ERR_TOO_LARGE, "= 3 pixels", "pixel limit");
    small = lim;
    small.max_height = 2;
    expect_error(b.p, b.n, &small, VP_ERR_TOO_LARGE, "height 3", "height limit");
    vp_rgb_image img;
    vp_error err;
    CHECK(decode(&b, &lim, &img, &err) == 0);
    vp_rgb_image_free(&img);
    free(b.p);
    vp_error lerr = {0};
    small = lim;
    small.max_width = VP_IMAGE_MAX_SIDE + 1;
    CHECK(vp_image_limits_check(&small, &lerr) == -1 && lerr.kind == VP_ERR_BAD_REQUEST);
    CHECK(vp_image_limits_check(&lim, &lerr) == 0);

    /* A 16x16 PNG whose data would inflate to ~100 MB: Pillow inflates its 16 rows and
     * stops (zlib needs output room it never gets), and so does vprm: the black image,
     * nothing past it inflated or allocated. */
    buf z = zlib_bomb(400000);
    b = make_png(16, 16, 8, 2, NULL, 0, NULL, 0, &z);
    CHECK(decode(&b, &lim, &img, &err) == 0 && img.width == 16 && img.height == 16);
    int black = 1;
    for (size_t i = 0; img.pixels && i < 16 * 16 * 3; i++)
        black &= img.pixels[i] == 0;
    CHECK_MSG(black, "zlib bomb: the 16 rows are not black");
    vp_rgb_image_free(&img);
    free(b.p);
    free(z.p);
}

static void test_gif_jpeg_bmp(void)
{
    /* GIF, screen 3x1, frame of 2 pixels at x=1 with indices 1 and 2, transparent index 1:
     * Pillow shows palette[1] outside the frame and for the transparent pixel. */
    static const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 3, 0, 1, 0, 0x81, 0, 0,
                                  10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120,
                                  0x21, 0xf9, 4, 1, 0, 0, 1, 0,
                                  0x2c, 1, 0, 0, 0, 2, 0, 1, 0, 0,
                                  2, 2, 0x8c, 0x0a, 0, 0x3b};
    vp_rgb_image img;
    vp_error err = {0};
    CHECK(vp_image_decode_rgb(gif, sizeof gif, NULL, &img, &err) == 0);
    const uint8_t want_gif[9] = {40, 50, 60, 40, 50, 60, 70, 80, 90};
    CHECK_MSG(img.width == 3 && !memcmp(img.pixels, want_gif, 9), "GIF first frame %u %u %u",
              img.pixels[0], img.pixels[3], img.pixels[6]);
    vp_rgb_image_free(&img);
    expect_error(gif, sizeof gif - 4, NULL, VP_ERR_UNDECODABLE, "truncated", "GIF truncated");

    /* JPEG: truncated (no EOI), and lossless (SOF11, arithmetic; libjpeg-turbo 2.1 has no
     * lossless process either). */
    static const uint8_t jpeg_trunc[] = "\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03\x01\x22"
                                        "\x00\x02\x11\x01\x03\x11\x01\xff\xda\x00\x0c\x03\x01\x00"
                                        "\x02\x11\x03\x11\x00\x3f\x00\x12\x34";
    expect_error(jpeg_trunc, sizeof jpeg_trunc - 1, NULL, VP_ERR_UNDECODABLE, "truncated",
                 "JPEG truncated");
    static const uint8_t jpeg_lossless[] = "\xff\xd8\xff\xcb\x00\x11\x08\x00\x10\x00\x10\x03\x01"
                                           "\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9";
    expect_error(jpeg_lossless, sizeof jpeg_lossless - 1, NULL, VP_ERR_UNSUPPORTED,
                 "SOF11 (lossless) is not supported", "JPEG SOF11");

    /* BMP 16-bit 5-5-5, 2x1: Pillow widens v to v * 255 / 31 rounded down (16 -> 131,
     * where repeating the high bits would give 132). */
    uint8_t bmp[14 + 40 + 4] = {'B', 'M'};
    bmp[2] = sizeof bmp;
    bmp[10] = 54;
    bmp[14] = 40;
    bmp[18] = 2;   /* width */
    bmp[22] = 1;   /* height */
    bmp[26] = 1;   /* planes */
    bmp[28] = 16;  /* bits */
    uint16_t px0 = (uint16_t)(16 << 10 | 1 << 5 | 31), px1 = (uint16_t)(15 << 10);
    bmp[54] = (uint8_t)px0;
    bmp[55] = (uint8_t)(px0 >> 8);
    bmp[56] = (uint8_t)px1;
    bmp[57] = (uint8_t)(px1 >> 8);
    CHECK(vp_image_decode_rgb(bmp, sizeof bmp, NULL, &img, &err) == 0);
    const uint8_t want_bmp[6] = {131, 8, 255, 123, 0, 0};
    CHECK_MSG(!memcmp(img.pixels, want_bmp, 6), "BMP 555 -> %u %u %u %u", img.pixels[0],
              img.pixels[1], img.pixels[2], img.pixels[3]);
    vp_rgb_image_free(&img);
    expect_error(bmp, sizeof bmp - 2, NULL, VP_ERR_UNDECODABLE, "truncated", "BMP truncated");
    bmp[30] = 1; /* RLE8 at 16 bits a pixel: Pillow has no raw mode for it */
    expect_error(bmp, sizeof bmp, NULL, VP_ERR_UNDECODABLE, "16 bits", "BMP RLE8 at 16 bits");
    bmp[28] = 8; /* its pixels after a 256-entry palette: past the end of the file */
    expect_error(bmp, sizeof bmp, NULL, VP_ERR_UNDECODABLE, "run-length data ends after 0",
                 "BMP RLE8 without data");
}

/* ---- resize ---- */

static vp_rgb_image make_image(uint32_t w, uint32_t h, uint32_t seed)
{
    vp_rgb_image img = {w, h, malloc((size_t)w * h * 3)};
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        seed = seed * 1664525u + 1013904223u;
        img.pixels[i] = (uint8_t)(seed >> 24);
    }
    return img;
}

/* A grey 8x8 progressive JPEG of n_scans scans: a DC scan (code 0 = difference 0) and
 * DC refinements adding zero bits, so the block stays flat. A zero in the quantiser's
 * first AC entries keeps libjpeg (and vprm) from block smoothing: the pixels stay 128. */
static buf jpeg_of_scans(int n_scans)
{
    buf b = {0};
    put(&b, "\xff\xd8\xff\xdb\x00\x43\x00", 7);
    for (int i = 0; i < 64; i++)
        put(&b, i == 1 ? "\x00" : "\x01", 1);
    put(&b, "\xff\xc2\x00\x0b\x08\x00\x08\x00\x08\x01\x01\x11\x00", 13);
    uint8_t dht[22] = {0xff, 0xc4, 0x00, 0x14, 0x00, 1}; /* DC: code 0 = symbol 0 */
    put(&b, dht, sizeof dht);
    put(&b, "\xff\xda\x00\x08\x01\x01\x00\x00\x00\x00\x00", 11);
    for (int i = 1; i < n_scans; i++) /* Ah 1, Al 0 */
        put(&b, "\xff\xda\x00\x08\x01\x01\x00\x00\x00\x10\x00", 11);
    put(&b, "\xff\xd9", 2);
    return b;
}

static void test_jpeg_scan_limit(void)
{
    vp_image_limits lim;
    vp_image_limits_default(&lim);
    lim.max_jpeg_scans = 5;
    buf five = jpeg_of_scans(5), six = jpeg_of_scans(6);
    vp_rgb_image img;
    vp_error err;
    CHECK_MSG(decode(&five, &lim, &img, &err) == 0, "5 scans under a limit of 5: %s", err.message);
    if (img.pixels) {
        CHECK_MSG(img.width == 8 && img.pixels[0] == 128 && img.pixels[8 * 8 * 3 - 1] == 128,
                  "a flat block: %u", img.pixels[0]);
        vp_rgb_image_free(&img);
    }
    expect_error(six.p, six.n, &lim, VP_ERR_TOO_LARGE, "max_jpeg_scans", "6 scans, limit 5");
    lim.max_jpeg_scans = 0;
    CHECK(vp_image_limits_check(&lim, &err) == -1);
    free(five.p);
    free(six.p);
}

/* Arithmetic coding: jpegtran's lossless transcodes of a Huffman JPEG (tests/data,
 * make_arith_jpegs.py) hold its quantised coefficients, so they decode to its pixels;
 * Pillow's pixels for all three are tests/image/suite_oracle.sh's. */
static void test_jpeg_arithmetic(void)
{
    const char *names[3] = {"tests/data/arith_huffman.jpg", "tests/data/arith_sequential.jpg",
                            "tests/data/arith_progressive.jpg"};
    vp_rgb_image img[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        vp_error err = {0};
        CHECK_MSG(vp_read_file(names[i], 0, &data, &len, &err) == 0, "%s", err.message);
        CHECK_MSG(data && vp_image_decode_rgb(data, len, NULL, &img[i], &err) == 0, "%s: %s",
                  names[i], err.message);
        /* the files are what they claim: frame headers SOF0, SOF9, SOF10 */
        int sof = -1;
        for (size_t at = 2; data && sof < 0 && at + 1 < len; at++)
            if (data[at] == 0xff && data[at + 1] >= 0xc0 && data[at + 1] <= 0xcf &&
                data[at + 1] != 0xc4 && data[at + 1] != 0xcc)
                sof = data[at + 1];
        static const int want_sof[3] = {0xc0, 0xc9, 0xca};
        CHECK_MSG(sof == want_sof[i], "%s: frame header 0x%02x", names[i], sof);
        free(data);
    }
    if (img[0].pixels && img[1].pixels && img[2].pixels) {
        size_t n = (size_t)img[0].width * img[0].height * 3, lo = 255, hi = 0;
        for (size_t k = 0; k < n; k++) {
            lo = img[0].pixels[k] < lo ? img[0].pixels[k] : lo;
            hi = img[0].pixels[k] > hi ? img[0].pixels[k] : hi;
        }
        CHECK_MSG(img[0].width == 45 && img[0].height == 29 && hi - lo > 150, "45x29: %ux%u, "
                  "values %zu..%zu", img[0].width, img[0].height, lo, hi);
        for (int i = 1; i < 3; i++)
            CHECK_MSG(img[i].width == img[0].width && img[i].height == img[0].height &&
                          !memcmp(img[i].pixels, img[0].pixels, n),
                      "%s: other pixels than the Huffman file's", names[i]);
    }
    for (int i = 0; i < 3; i++)
        vp_rgb_image_free(&img[i]);
}

static void test_resize(void)
{
    vp_error err = {0};
    vp_rgb_image out;

    /* 2 -> 1 pixels: support 4 covers both inputs with equal weight 0.5, so the result
     * is (a + b + 1) / 2 rounded down in Pillow's fixed point: (10 + 21 + 1) / 2 = 16. */
    vp_rgb_image two = {2, 1, (uint8_t[]){10, 100, 0, 21, 103, 255}};
    CHECK(vp_image_resize(&two, 1, 1, 1, &out, &err) == 0);
    CHECK_MSG(out.pixels[0] == 16 && out.pixels[1] == 102 && out.pixels[2] == 128, "%u %u %u",
              out.pixels[0], out.pixels[1], out.pixels[2]);
    vp_rgb_image_free(&out);

    /* A constant image stays constant at any size (weights sum to 1). */
    const uint32_t sizes[][2] = {{1, 1}, {7, 3}, {448, 448}, {1000, 1}, {3, 900}, {61, 59}};
    for (int v = 0; v < 3; v++) {
        uint8_t value = (uint8_t[]){0, 137, 255}[v];
        vp_rgb_image c = {53, 47, malloc(53 * 47 * 3)};
        memset(c.pixels, value, 53 * 47 * 3);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            CHECK(vp_image_resize(&c, sizes[s][0], sizes[s][1], 1, &out, &err) == 0);
            int flat = 1;
            for (size_t i = 0; i < (size_t)out.width * out.height * 3; i++)
                flat &= out.pixels[i] == value;
            CHECK_MSG(flat, "constant %u not kept at %ux%u", value, sizes[s][0], sizes[s][1]);
            vp_rgb_image_free(&out);
        }
        free(c.pixels);
    }

    /* Same size: an exact copy. Width only: rows stay independent (no vertical pass). */
    vp_rgb_image r = make_image(37, 11, 5);
    CHECK(vp_image_resize(&r, 37, 11, 1, &out, &err) == 0);
    CHECK(!memcmp(out.pixels, r.pixels, 37 * 11 * 3));
    vp_rgb_image_free(&out);
    memset(r.pixels + 4 * 37 * 3, 77, 37 * 3); /* row 4 constant */
    CHECK(vp_image_resize(&r, 90, 11, 1, &out, &err) == 0);
    int row_flat = 1;
    for (int i = 0; i < 90 * 3; i++)
        row_flat &= out.pixels[4 * 90 * 3 + i] == 77;
    CHECK_MSG(row_flat, "a constant row changed in a width-only resize");
    vp_rgb_image_free(&out);

    /* Threads change nothing. */
    vp_rgb_image a, b;
    CHECK(vp_image_resize(&r, 448, 301, 1, &a, &err) == 0);
    CHECK(vp_image_resize(&r, 448, 301, 3, &b, &err) == 0);
    CHECK(!memcmp(a.pixels, b.pixels, 448 * 301 * 3));
    vp_rgb_image_free(&a);
    vp_rgb_image_free(&b);
    free(r.pixels);

    CHECK(vp_image_resize(&two, 0, 5, 1, &out, &err) == -1 && err.kind == VP_ERR_BAD_REQUEST);

    /* Scalar and SIMD passes agree byte for byte: both passes, rows that are and are not a
     * multiple of 16 bytes, up- and downscaling, height only; the last shapes on a 0/255
     * checkerboard, whose bicubic overshoot must clamp the same way at both ends.
     * The SIMD vertical pass takes taps two at a time (odd counts: 2 -> 3 rows has 5 and
     * 3 taps) and leaves heights shrunk by more than 32 (over 130 taps) to the scalar one. */
    const uint32_t shapes[][4] = {{97, 31, 448, 20},  {1000, 7, 448, 7},  {5, 9, 1792, 3},
                                  {333, 222, 111, 444}, {1, 1, 9, 1},      {896, 672, 448, 448},
                                  {40, 30, 40, 77},   {64, 50, 37, 91},   {31, 29, 64, 61},
                                  {6, 2, 6, 3},       {9, 4000, 7, 30},   {896, 672, 1792, 1344},
                                  {7, 300, 19, 5}};
    const size_t n_random = 12;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        vp_rgb_image in = make_image(shapes[s][0], shapes[s][1], (uint32_t)s + 11);
        for (size_t i = 0; s >= n_random && i < (size_t)shapes[s][0] * shapes[s][1] * 3; i++)
            in.pixels[i] = ((i / 3 % shapes[s][0]) + (i / 3 / shapes[s][0])) % 2 ? 255 : 0;
        CHECK(vp_image_resize(&in, shapes[s][2], shapes[s][3], 2, &a, &err) == 0);
        CHECK(vp_image_resize_scalar(&in, shapes[s][2], shapes[s][3], 1, &b, &err) == 0);
        CHECK_MSG(!memcmp(a.pixels, b.pixels, (size_t)shapes[s][2] * shapes[s][3] * 3),
                  "SIMD and scalar resize differ at %ux%u -> %ux%u", shapes[s][0], shapes[s][1],
                  shapes[s][2], shapes[s][3]);
        vp_rgb_image_free(&a);
        vp_rgb_image_free(&b);
        free(in.pixels);
    }
}

/* vp_image_resize_into with tiles: every tile equals its crop of the plain resize, SIMD
 * and scalar, for tiles whose rows are and are not a multiple of 16 bytes, with both
 * passes, width only, height only and no change; layouts that do not divide the output
 * are refused. */
static void test_resize_into_tiles(void)
{
    vp_error err = {0};
    const uint32_t cases[][6] = {/* in w, h, tile w, h, across, down */
                                 {896, 672, 448, 448, 4, 3}, {50, 40, 5, 7, 3, 2},
                                 {30, 14, 16, 14, 2, 1},      {9, 20, 3, 11, 3, 2},
                                 {12, 12, 4, 6, 3, 2},        {333, 91, 37, 19, 1, 4}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint32_t *k = cases[c];
        uint32_t out_w = k[2] * k[4], out_h = k[3] * k[5];
        vp_rgb_image in = make_image(k[0], k[1], (uint32_t)c + 3), plain;
        CHECK(vp_image_resize(&in, out_w, out_h, 1, &plain, &err) == 0);
        size_t tile_bytes = (size_t)k[2] * k[3] * 3, n = (size_t)k[4] * k[5];
        for (int scalar = 0; scalar < 2; scalar++) {
            uint8_t *tiles = malloc(tile_bytes * n);
            vp_resize_layout l = {.base = tiles, .tile_w = k[2], .tile_h = k[3],
                                  .tiles_across = k[4]};
            int rc = scalar ? vp_image_resize_into_scalar(&in, out_w, out_h, 2, &l, &err)
                            : vp_image_resize_into(&in, out_w, out_h, 2, &l, &err);
            CHECK_MSG(rc == 0, "%ux%u into %ux%u tiles: %s", k[0], k[1], k[2], k[3], err.message);
            int same = 1;
            for (size_t t = 0; t < n && rc == 0; t++)
                for (uint32_t y = 0; y < k[3]; y++) {
                    size_t px = (t / k[4]) * k[3] + y, x0 = (t % k[4]) * k[2];
                    same &= !memcmp(tiles + t * tile_bytes + (size_t)y * k[2] * 3,
                                    plain.pixels + (px * out_w + x0) * 3, (size_t)k[2] * 3);
                }
            CHECK_MSG(same, "%s tiles of %ux%u -> %ux%u differ from the plain resize's crops",
                      scalar ? "scalar" : "SIMD", k[0], k[1], out_w, out_h);
            free(tiles);
        }
        vp_rgb_image_free(&plain);
        free(in.pixels);
    }
    vp_rgb_image in = make_image(20, 10, 1);
    uint8_t buf8[20 * 9 * 3];
    vp_resize_layout odd = {.base = buf8, .tile_w = 7, .tile_h = 9, .tiles_across = 3};
    CHECK(vp_image_resize_into(&in, 20, 9, 1, &odd, &err) == -1 && err.kind == VP_ERR_BAD_REQUEST);
    odd = (vp_resize_layout){.base = buf8, .tile_w = 10, .tile_h = 4, .tiles_across = 2};
    CHECK(vp_image_resize_into(&in, 20, 9, 1, &odd, &err) == -1 && err.kind == VP_ERR_BAD_REQUEST);
    free(in.pixels);
}

/* ---- tiling (expected values from the model card's Python code) ---- */

static void grid_of(uint32_t w, uint32_t h, int mn, int mx, int *cols, int *rows)
{
    vp_tiling_params p;
    vp_tiling_params_default(&p);
    p.min_num = mn;
    p.max_num = mx;
    vp_tile_grid g = {0};
    vp_error err = {0};
    CHECK(vp_tiling_choose_grid(w, h, &p, &g, &err) == 0);
    *cols = g.cols;
    *rows = g.rows;
}

static void test_tiling(void)
{
    static const struct { uint32_t w, h; int mn, mx, cols, rows; } cases[] = {
        {896, 672, 1, 12, 4, 3}, {448, 448, 1, 12, 1, 1}, {1, 1, 1, 12, 1, 1},
        {1, 2000, 1, 12, 1, 12}, {3000, 2, 1, 12, 12, 1}, {4000, 3000, 1, 12, 4, 3},
        /* exact tie between (1,2) and (2,1): area decides whether the later one wins */
        {500, 400, 2, 2, 1, 2}, {1000, 800, 2, 2, 2, 1}, {5, 4, 2, 2, 1, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int c, r;
        grid_of(cases[i].w, cases[i].h, cases[i].mn, cases[i].mx, &c, &r);
        CHECK_MSG(c == cases[i].cols && r == cases[i].rows, "%ux%u [%d,%d]: %dx%d, want %dx%d",
                  cases[i].w, cases[i].h, cases[i].mn, cases[i].mx, c, r, cases[i].cols,
                  cases[i].rows);
    }
    int cols[64], rows[64];
    int n = vp_tiling_candidates(1, 4, cols, rows, 64);
    static const int want_c[] = {1, 1, 2, 3, 1, 4, 1, 2}, want_r[] = {1, 2, 1, 1, 3, 1, 4, 2};
    CHECK(n == 8);
    for (int i = 0; i < 8 && n == 8; i++)
        CHECK_MSG(cols[i] == want_c[i] && rows[i] == want_r[i], "candidate %d: (%d,%d)", i, cols[i],
                  rows[i]);
    n = vp_tiling_candidates(6, 6, cols, rows, 64);
    CHECK(n == 4 && cols[0] == 2 && rows[0] == 3 && cols[1] == 1 && rows[1] == 6 && cols[2] == 3 &&
          rows[2] == 2 && cols[3] == 6 && rows[3] == 1);

    vp_tiling_params p;
    vp_tiling_params_default(&p);
    vp_error err = {0};
    CHECK(p.min_num == 1 && p.max_num == 12 && p.image_size == 448 && p.use_thumbnail);
    p.min_num = 0;
    CHECK(vp_tiling_params_check(&p, &err) == -1 && err.kind == VP_ERR_BAD_REQUEST);
    /* min over max: the model card's candidate set is empty and find_closest_aspect_ratio
     * answers (1, 1): one tile, no thumbnail (len(processed_images) == 1) */
    p.min_num = 5;
    p.max_num = 4;
    CHECK(vp_tiling_params_check(&p, &err) == 0);
    CHECK(vp_tiling_candidates(5, 4, cols, rows, 64) == 0);
    vp_tile_grid none;
    CHECK(vp_tiling_choose_grid(900, 200, &p, &none, &err) == 0);
    CHECK_MSG(none.cols == 1 && none.rows == 1 && none.n_tiles == 1 && !none.thumbnail,
              "min 5 max 4: %dx%d, %d tiles", none.cols, none.rows, none.n_tiles);
    p.min_num = 1;
    p.max_num = VP_TILING_MAX_NUM + 1;
    CHECK(vp_tiling_params_check(&p, &err) == -1);

    /* An image of exactly 2S x S is its own 2x1 grid: tiles are plain crops; the
     * thumbnail follows. With S = 8 to stay small. */
    vp_tiling_params_default(&p);
    p.image_size = 8;
    vp_rgb_image img = make_image(16, 8, 9);
    vp_image_tiles t;
    CHECK(vp_image_make_tiles(&img, &p, &t, &err) == 0);
    CHECK(t.grid.cols == 2 && t.grid.rows == 1 && t.grid.n_tiles == 3 && t.grid.thumbnail);
    int crops = 1;
    for (int tile = 0; tile < 2; tile++)
        for (int y = 0; y < 8; y++)
            crops &= !memcmp(t.u8 + ((size_t)tile * 64 + y * 8) * 3,
                             img.pixels + ((size_t)y * 16 + tile * 8) * 3, 8 * 3);
    CHECK_MSG(crops, "tiles of a 2S x S image are not its halves");
    vp_rgb_image thumb;
    CHECK(vp_image_resize(&img, 8, 8, 1, &thumb, &err) == 0);
    CHECK(!memcmp(t.u8 + 2 * 64 * 3, thumb.pixels, 64 * 3));
    vp_rgb_image_free(&thumb);
    vp_image_tiles_free(&t);
    p.use_thumbnail = false;
    CHECK(vp_image_make_tiles(&img, &p, &t, &err) == 0 && t.grid.n_tiles == 2 && !t.grid.thumbnail);
    vp_image_tiles_free(&t);
    free(img.pixels);
}

/* ---- normalisation (values printed by numpy float32) ---- */

static void test_normalize(void)
{
    /* Two 1x1 tiles, pixels (0, 1, 128) and (255, 37, 200); out is [tile][channel]. */
    const uint8_t u8[6] = {0, 1, 128, 255, 37, 200};
    float out[6];
    union { uint32_t u; float f; } want[6] = {{0}};
    want[0].f = -0x1.0f177ap+1f;  /* c0, x=0 */
    want[1].f = 0x1.1fdc3ap+1f;   /* c0, x=255 */
    want[2].f = -0x1.02549ep+1f;  /* c1, x=1 */
    want[3].f = -0x1.635106p+0f;  /* c1, x=37 */
    want[4].f = 0x1.b4ba78p-2f;   /* c2, x=128 */
    want[5].f = 0x1.ae6fdep+0f;   /* c2, x=200 */
    vp_tiles_normalize(u8, 2, 1, out);
    const int order[6] = {0, 2, 4, 1, 3, 5}; /* out index -> want index */
    for (int i = 0; i < 6; i++) {
        union { uint32_t u; float f; } got = {.f = out[i]};
        CHECK_MSG(got.u == want[order[i]].u, "normalised value %d: %a, want %a", i, (double)got.f,
                  (double)want[order[i]].f);
    }
}

/* ---- .npy ---- */

static void test_npy(void)
{
    char path[] = "/tmp/vprm_test_npy_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    const float data[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
    size_t shape[2] = {2, 3};
    vp_error err = {0};
    CHECK(vp_npy_write(path, VP_NPY_F32, shape, 2, data, &err) == 0);
    FILE *f = fopen(path, "rb");
    unsigned char head[128] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    size_t hlen = head[8] | (size_t)head[9] << 8;
    CHECK(got == 128 && !memcmp(head, "\x93NUMPY\x01\x00", 8) && (10 + hlen) % 64 == 0);
    CHECK(strstr((char *)head + 10, "'descr': '<f4'") && strstr((char *)head + 10, "'shape': (2, 3)"));
    vp_npy_array a;
    CHECK(vp_npy_read(path, &a, &err) == 0);
    CHECK(a.dtype == VP_NPY_F32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 &&
          !memcmp(a.data, data, sizeof data));
    vp_npy_free(&a);
    const uint8_t bytes[5] = {1, 2, 3, 4, 255};
    size_t shape1[1] = {5};
    CHECK(vp_npy_write(path, VP_NPY_U8, shape1, 1, bytes, &err) == 0);
    CHECK(vp_npy_read(path, &a, &err) == 0);
    CHECK(a.dtype == VP_NPY_U8 && a.ndim == 1 && a.shape[0] == 5 && !memcmp(a.data, bytes, 5));
    vp_npy_free(&a);
    remove(path);
}

int main(void)
{
    test_sniff_and_unknown();
    test_png_conversions();
    test_bombs_and_limits();
    test_gif_jpeg_bmp();
    test_jpeg_scan_limit();
    test_jpeg_arithmetic();
    test_resize();
    test_resize_into_tiles();
    test_tiling();
    test_normalize();
    test_npy();
    return check_summary("test_image");
}
