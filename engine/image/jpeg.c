/* JPEG marker walk: the frame size from the first SOF, and a completeness check.
 * stb_image pads a truncated entropy-coded segment with zeros and returns an image;
 * Pillow (libjpeg) reports "image file is truncated", so a stream that ends before
 * its EOI marker is refused here. */
#include <string.h>

#include "engine/image/formats.h"

static uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

/* Start-of-frame markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC). */
static int is_sof(uint8_t m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

/* Next marker at or after *pos: skips stray bytes and 0xFF fill bytes. Returns the
 * marker code with *pos just after it, or -1 at the end of the data. */
static int next_marker(const uint8_t *d, size_t len, size_t *pos)
{
    size_t p = *pos;
    while (p < len && d[p] != 0xff)
        p++;
    while (p < len && d[p] == 0xff)
        p++;
    if (p >= len)
        return -1;
    *pos = p + 1;
    return d[p];
}

/* Skips an entropy-coded segment: stops at the first marker that is not a stuffed
 * 0xFF00 or a restart marker RST0..RST7; -1 if the data ends first. */
static int skip_entropy(const uint8_t *d, size_t len, size_t *pos)
{
    size_t p = *pos;
    for (;;) {
        const uint8_t *ff = memchr(d + p, 0xff, len - p);
        if (!ff)
            return -1;
        p = (size_t)(ff - d);
        if (p + 1 >= len)
            return -1;
        uint8_t m = d[p + 1];
        if (m == 0x00 || (m >= 0xd0 && m <= 0xd7) || m == 0xff) {
            p += 1 + (m != 0xff);
            continue;
        }
        *pos = p;
        return 0;
    }
}

/* A DHT segment's tables must each define at most 256 codes: stb_image 2.27 writes
 * past its code-size array otherwise (libjpeg rejects such tables too). */
static int check_dht(const uint8_t *d, size_t seg_len, vp_error *err)
{
    size_t p = 2;
    while (p < seg_len) {
        if (seg_len - p < 17)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG Huffman table is truncated");
        size_t n = 0;
        for (int i = 1; i <= 16; i++)
            n += d[p + i];
        if (n > 256)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG Huffman table defines %zu codes (at most 256)", n);
        p += 17 + n;
    }
    if (p != seg_len)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG Huffman table overruns its segment");
    return 0;
}

/* Walks segments; stops at the first SOF when want_sof, else at EOI. */
static int walk(const uint8_t *d, size_t len, int want_sof, uint32_t *w, uint32_t *h,
                vp_error *err)
{
    if (len < 3 || d[0] != 0xff || d[1] != 0xd8)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG start marker is truncated or wrong");
    size_t pos = 2;
    for (;;) {
        int m = next_marker(d, len, &pos);
        if (m < 0)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG data is truncated (ends before the EOI marker)");
        if (m == 0xd9) {
            if (want_sof)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has no frame header (SOF)");
            return 0;
        }
        if (m == 0xd8)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has a second SOI marker");
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01)
            continue; /* markers without a length */
        if (len - pos < 2 || be16(d + pos) < 2 || len - pos < be16(d + pos))
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG data is truncated (inside a marker segment)");
        size_t seg = be16(d + pos);
        if (is_sof((uint8_t)m) && want_sof) {
            if (seg < 8)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG frame header is too short");
            /* stb_image decodes Huffman baseline, extended and progressive 8-bit frames. */
            if (m > 0xc2)
                return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                               "JPEG coding process SOF%d (%s) is not supported", m - 0xc0,
                               m >= 0xc9 ? "arithmetic" : "lossless or hierarchical");
            if (d[pos + 2] != 8)
                return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                               "%u-bit JPEG is not supported (8-bit only)", d[pos + 2]);
            *h = be16(d + pos + 3);
            *w = be16(d + pos + 5);
            return 0;
        }
        if (m == 0xc4 && check_dht(d + pos, seg, err))
            return -1;
        if (m == 0xda && want_sof)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG scan before its frame header");
        pos += seg;
        if (m == 0xda && skip_entropy(d, len, &pos))
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG data is truncated (ends inside a scan)");
    }
}

int vp_jpeg_read_header(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h, vp_error *err)
{
    return walk(data, len, 1, w, h, err);
}

int vp_jpeg_check_complete(const uint8_t *data, size_t len, vp_error *err)
{
    uint32_t w, h;
    return walk(data, len, 0, &w, &h, err);
}
