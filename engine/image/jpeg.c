/* JPEG marker walk: the frame size from the first SOF, and a completeness check.
 * stb_image pads a truncated entropy-coded segment with zeros and returns an image;
 * Pillow (libjpeg) reports "image file is truncated", so a stream that ends before
 * its EOI marker is refused here. So is a scan that uses a quantisation or Huffman
 * table no DQT/DHT before it defined: stb_image 2.27 would read the table's
 * uninitialised memory (and index its arrays with it). */
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

/* Tables defined so far and the frame's components, for the scans' table checks. */
typedef struct jpeg_tables {
    unsigned dqt, dht_dc, dht_ac; /* bit t: table t (0..3) defined */
    int have_sof, progressive, n_comp;
    uint8_t comp_id[4], comp_tq[4];
} jpeg_tables;

/* A DHT segment's tables must each define at most 256 codes: stb_image 2.27 writes
 * past its code-size array otherwise (libjpeg rejects such tables too). */
static int check_dht(const uint8_t *d, size_t seg_len, jpeg_tables *t, vp_error *err)
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
        if ((d[p] >> 4) <= 1 && (d[p] & 15) <= 3)
            *((d[p] >> 4) ? &t->dht_ac : &t->dht_dc) |= 1u << (d[p] & 15);
        p += 17 + n;
    }
    if (p != seg_len)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG Huffman table overruns its segment");
    return 0;
}

/* Records the tables of a DQT segment (each 1 + 64 or 128 bytes); a malformed one is
 * stb_image's and libjpeg's to refuse, its tables stay undefined here. */
static void note_dqt(const uint8_t *d, size_t seg_len, jpeg_tables *t)
{
    size_t p = 2;
    while (p < seg_len) {
        size_t n = 1 + ((d[p] >> 4) ? 128 : 64);
        if (seg_len - p < n)
            return;
        if ((d[p] & 15) <= 3)
            t->dqt |= 1u << (d[p] & 15);
        p += n;
    }
}

/* The first frame header's components (stb_image refuses a second SOF). */
static void note_sof(uint8_t m, const uint8_t *d, size_t seg_len, jpeg_tables *t)
{
    if (t->have_sof || seg_len < 8)
        return;
    t->have_sof = 1;
    t->progressive = m == 0xc2;
    int n = d[7];
    for (int i = 0; i < n && i < 4 && 8 + 3 * (size_t)i + 3 <= seg_len; i++) {
        t->comp_id[i] = d[8 + 3 * i];
        t->comp_tq[i] = d[8 + 3 * i + 2];
        t->n_comp = i + 1;
    }
}

/* A scan may only use tables defined before it: the quantisation table of each of its
 * components (libjpeg latches it at the component's first scan) and the Huffman tables
 * it decodes with (a progressive scan uses the DC table for a first DC pass, the AC
 * table for AC passes, none for a DC refinement). */
static int check_sos(const uint8_t *d, size_t seg_len, const jpeg_tables *t, vp_error *err)
{
    if (!t->have_sof)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG scan before its frame header");
    size_t ns = seg_len >= 3 ? d[2] : 0;
    if (seg_len < 6 + 2 * ns)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG scan header is too short");
    uint8_t ss = d[3 + 2 * ns], ah = d[5 + 2 * ns] >> 4;
    int need_dc = !t->progressive || (ss == 0 && ah == 0);
    int need_ac = !t->progressive || ss > 0;
    for (size_t i = 0; i < ns; i++) {
        uint8_t id = d[3 + 2 * i], td = d[4 + 2 * i] >> 4, ta = d[4 + 2 * i] & 15;
        for (int c = 0; c < t->n_comp; c++) {
            if (t->comp_id[c] != id)
                continue;
            uint8_t tq = t->comp_tq[c];
            if (tq > 3 || !(t->dqt >> tq & 1))
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "JPEG component %u uses quantization table %u, which is not "
                               "defined before its scan",
                               id, tq);
            int dc_missing = need_dc && (td > 3 || !(t->dht_dc >> td & 1));
            int ac_missing = need_ac && (ta > 3 || !(t->dht_ac >> ta & 1));
            if (dc_missing || ac_missing)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "JPEG scan of component %u uses Huffman table %s %u, which is not "
                               "defined before it",
                               id, dc_missing ? "DC" : "AC", dc_missing ? td : ta);
            break;
        }
    }
    return 0;
}

/* Walks segments; stops at the first SOF when want_sof, else at EOI. */
static int walk(const uint8_t *d, size_t len, int want_sof, uint32_t *w, uint32_t *h,
                vp_error *err)
{
    if (len < 3 || d[0] != 0xff || d[1] != 0xd8)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG start marker is truncated or wrong");
    size_t pos = 2;
    jpeg_tables tables = {0};
    /* A scan's missing table is reported at EOI: a truncated stream says so first. */
    vp_error table_err;
    int table_bad = 0;
    for (;;) {
        int m = next_marker(d, len, &pos);
        if (m < 0)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG data is truncated (ends before the EOI marker)");
        if (m == 0xd9) {
            if (want_sof)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has no frame header (SOF)");
            if (table_bad && err)
                *err = table_err;
            return table_bad ? -1 : 0;
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
        if (m == 0xc4 && check_dht(d + pos, seg, &tables, err))
            return -1;
        if (m == 0xda && want_sof)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG scan before its frame header");
        if (m == 0xdb)
            note_dqt(d + pos, seg, &tables);
        if (is_sof((uint8_t)m))
            note_sof((uint8_t)m, d + pos, seg, &tables);
        if (m == 0xda && !table_bad && check_sos(d + pos, seg, &tables, &table_err))
            table_bad = 1;
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
