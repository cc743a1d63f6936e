/* JPEG marker walk: the frame size from the first SOF, and a completeness check.
 * stb_image pads a truncated entropy-coded segment with zeros and returns an image;
 * Pillow (libjpeg) reports "image file is truncated", so a stream that ends before
 * its EOI marker is refused here (but for a one-scan frame whose data runs to the end,
 * which the decoder refuses only if it reads a byte past it). So is a scan that uses a quantisation or Huffman
 * table no DQT/DHT before it defined (stb_image 2.27 would read the table's
 * uninitialised memory and index its arrays with it), except the Huffman slots 0 and 1
 * of a sequential frame, which get the standard tables as in libjpeg; and a frame whose
 * sampling factors libjpeg cannot upsample. The walk also reports the segments that
 * choose the colour space, and builds the stream stb_image parses (the standard tables
 * inserted) with where each scan's entropy-coded data ends. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"
#include "engine/image/jpeg_arith.h"

static uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

/* Start-of-frame markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC). */
static int is_sof(uint8_t m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

int vp_jpeg_next_marker(const uint8_t *d, size_t len, size_t *pos)
{
    size_t p = *pos;
    for (;;) {
        while (p < len && d[p] != 0xff)
            p++;
        while (p < len && d[p] == 0xff)
            p++;
        if (p >= len)
            return -1;
        if (d[p])
            break;
        p++;
    }
    *pos = p + 1;
    return d[p];
}

/* Skips an entropy-coded segment: stops at the first marker that is not a stuffed
 * 0xFF00 or a restart marker RST0..RST7; -1 if the data ends first. With restart
 * intervals, markers below 0xC0 are not the end either: libjpeg's resynchronisation
 * skips such an invalid marker and decodes on at the next restart marker. */
static int skip_entropy(const uint8_t *d, size_t len, size_t *pos, int restarts)
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
        if (m == 0x00 || (m >= 0xd0 && m <= 0xd7) || m == 0xff || (restarts && m < 0xc0)) {
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
    int have_sof, progressive, arithmetic, n_comp;
    uint8_t comp_id[4], comp_hv[4], comp_tq[4];
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
    t->progressive = m == 0xc2 || m == 0xca;
    t->arithmetic = m >= 0xc9;
    int n = d[7];
    for (int i = 0; i < n && i < 4 && 8 + 3 * (size_t)i + 3 <= seg_len; i++) {
        t->comp_id[i] = d[8 + 3 * i];
        t->comp_hv[i] = d[8 + 3 * i + 1];
        t->comp_tq[i] = d[8 + 3 * i + 2];
        t->n_comp = i + 1;
    }
}

/* libjpeg upsamples a component only by whole factors ("fractional sampling not
 * implemented"): each one's factors must divide the largest. Factors outside 1..4
 * are stb_image's to refuse. */
static int check_sampling(const jpeg_tables *t, vp_error *err)
{
    int hmax = 1, vmax = 1;
    for (int c = 0; c < t->n_comp; c++) {
        int h = t->comp_hv[c] >> 4, v = t->comp_hv[c] & 15;
        hmax = h > hmax ? h : hmax;
        vmax = v > vmax ? v : vmax;
    }
    for (int c = 0; c < t->n_comp; c++) {
        int h = t->comp_hv[c] >> 4, v = t->comp_hv[c] & 15;
        if (h && v && (hmax % h || vmax % v))
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG component %u is sampled %dx%d against %dx%d: fractional "
                           "sampling ratios are not supported (libjpeg refuses them too)",
                           t->comp_id[c], h, v, hmax, vmax);
    }
    return 0;
}

/* The frame component a scan's position-th component names, as libjpeg matches it: the
 * first one from that position on with the id (so ids may repeat: a scan naming id x
 * twice takes the first two components with that id), -1 when none. */
static int scan_comp(const uint8_t *ids, int n_comp, uint8_t id, size_t position)
{
    for (size_t c = position; c < (size_t)n_comp; c++)
        if (ids[c] == id)
            return (int)c;
    return -1;
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
    /* arithmetic coding needs no table: DAC segments only change the defaults */
    int need_dc = !t->arithmetic && (!t->progressive || (ss == 0 && ah == 0));
    int need_ac = !t->arithmetic && (!t->progressive || ss > 0);
    int blocks = 0, taken[4];
    for (size_t i = 0; i < ns; i++) {
        uint8_t id = d[3 + 2 * i], td = d[4 + 2 * i] >> 4, ta = d[4 + 2 * i] & 15;
        int c = i < 4 ? scan_comp(t->comp_id, t->n_comp, id, i) : -1;
        for (size_t k = 0; k < i && c >= 0; k++)
            c = taken[k] == c ? -1 : c;
        if (c < 0)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           scan_comp(t->comp_id, t->n_comp, id, 0) < 0
                               ? "JPEG scan names component %u, which its frame does not have"
                               : "JPEG scan lists component %u out of the frame's order or twice "
                                 "(libjpeg refuses it)",
                           id);
        taken[i] = c;
        blocks += (t->comp_hv[c] >> 4) * (t->comp_hv[c] & 15);
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
    }
    if (ns > 1 && blocks > 10)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "JPEG scan's MCU has %d blocks (at most 10; libjpeg refuses it)", blocks);
    return 0;
}

/* The Huffman tables of the JPEG standard's Annex K.3 (luminance = slot 0, chrominance =
 * slot 1): libjpeg installs them for a sequential frame whose first scan comes before
 * any table in those slots (Motion-JPEG frames leave them out). Counts of codes of
 * lengths 1..16, then the symbols. */
static const uint8_t k3_dc_bits[2][16] = {{0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
                                          {0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}};
static const uint8_t k3_ac_bits[2][16] = {{0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d},
                                          {0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77}};
/* The AC symbols start irregularly and end in runs of consecutive values (r0..r1). */
static const uint8_t k3_ac_head[2][48] = {
    {0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
     0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
     0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a},
    {0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
     0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
     0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1}};
static const uint8_t k3_ac_head_len[2] = {39, 43};
static const uint8_t k3_ac_runs[2][16][2] = {
    {{0x16, 0x1a}, {0x25, 0x2a}, {0x34, 0x3a}, {0x43, 0x4a}, {0x53, 0x5a}, {0x63, 0x6a}, {0x73, 0x7a},
     {0x83, 0x8a}, {0x92, 0x9a}, {0xa2, 0xaa}, {0xb2, 0xba}, {0xc2, 0xca}, {0xd2, 0xda}, {0xe1, 0xea},
     {0xf1, 0xfa}},
    {{0x17, 0x1a}, {0x26, 0x2a}, {0x35, 0x3a}, {0x43, 0x4a}, {0x53, 0x5a}, {0x63, 0x6a}, {0x73, 0x7a},
     {0x82, 0x8a}, {0x92, 0x9a}, {0xa2, 0xaa}, {0xb2, 0xba}, {0xc2, 0xca}, {0xd2, 0xda}, {0xe2, 0xea},
     {0xf2, 0xfa}}};

/* Appends one Annex K table (class 0 DC, 1 AC; slot 0 or 1) as DHT payload at p. */
static size_t put_k3_table(uint8_t *p, int ac, int slot)
{
    size_t n = 0;
    p[n++] = (uint8_t)(ac << 4 | slot);
    memcpy(p + n, ac ? k3_ac_bits[slot] : k3_dc_bits[slot], 16);
    n += 16;
    if (!ac) {
        for (uint8_t v = 0; v < 12; v++)
            p[n++] = v;
        return n;
    }
    memcpy(p + n, k3_ac_head[slot], k3_ac_head_len[slot]);
    n += k3_ac_head_len[slot];
    for (int r = 0; r < 16 && k3_ac_runs[slot][r][1]; r++)
        for (int v = k3_ac_runs[slot][r][0]; v <= k3_ac_runs[slot][r][1]; v++)
            p[n++] = (uint8_t)v;
    return n;
}

/* The first frame header's component ids; renamed: two share one, so the copy for
 * stb_image (which takes a scan's id as the first component with it) numbers the
 * components 0..n-1 and each scan's ids by libjpeg's match (scan_comp). The colour space
 * is not affected: ids decide it only when they are 1, 2, 3 or 'R', 'G', 'B'. */
typedef struct frame_ids {
    uint8_t id[4];
    int n, renamed;
} frame_ids;

/* Reads a frame header's ids, and numbers them when two are equal. */
static void rename_frame_ids(uint8_t *d, size_t seg_len, frame_ids *ids)
{
    ids->n = 0;
    for (int i = 0; i < d[7] && i < 4 && 8 + 3 * (size_t)i + 3 <= seg_len; i++)
        ids->id[ids->n++] = d[8 + 3 * i];
    for (int a = 0; a < ids->n; a++)
        for (int b = a + 1; b < ids->n; b++)
            ids->renamed |= ids->id[a] == ids->id[b];
    for (int i = 0; ids->renamed && i < ids->n; i++)
        d[8 + 3 * i] = (uint8_t)i;
}

/* Where each scan's entropy-coded data ends (before the 0xFF fill bytes of the marker
 * that ends it), in order, into out->scan_end (out->n_scans); for an arithmetic-coded
 * frame each scan's tables into out->arith. In a sequential frame each scan header's band
 * and bit positions are set to the only ones it can have (Ss 0, Se 63, Ah = Al = 0):
 * libjpeg warns about others and decodes the whole band, stb_image would refuse the scan.
 * DAC segments become comments (stb_image refuses them; libjpeg reads them in any frame),
 * and an arithmetic scan's table numbers 0 (stb_image takes them for Huffman tables). */
static int scan_ends(uint8_t *d, size_t len, const vp_jpeg_markers *mk, const frame_ids *ids,
                     vp_jpeg_stream *out, vp_error *err)
{
    size_t pos = 2, n = 0, cap = 0;
    int restarts = 0; /* a DRI so far set an interval */
    uint8_t dc_l[VP_JPEG_ARITH_TABLES], dc_u[VP_JPEG_ARITH_TABLES], ac_k[VP_JPEG_ARITH_TABLES];
    memset(dc_l, VP_JPEG_ARITH_DEFAULT_L, sizeof dc_l);
    memset(dc_u, VP_JPEG_ARITH_DEFAULT_U, sizeof dc_u);
    memset(ac_k, VP_JPEG_ARITH_DEFAULT_K, sizeof ac_k);
    for (;;) {
        int m = vp_jpeg_next_marker(d, len, &pos);
        if (m < 0 || m == 0xd9)
            break;
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01)
            continue;
        if (len - pos < 2 || len - pos < be16(d + pos))
            break;
        size_t seg = be16(d + pos), ns = seg >= 3 ? d[pos + 2] : 0;
        if (m == 0xdd && seg >= 4)
            restarts = be16(d + pos + 2) != 0;
        if (m == 0xcc) { /* checked by the walk */
            for (size_t p = pos + 2; p + 2 <= pos + seg; p += 2) {
                uint8_t t = d[p] & 15, v = d[p + 1];
                if (d[p] >= 16)
                    ac_k[t] = v;
                else
                    dc_l[t] = v & 15, dc_u[t] = v >> 4;
            }
            d[pos - 1] = 0xfe;
        }
        for (size_t i = 0; m == 0xda && ids->renamed && i < ns && seg >= 3 + 2 * ns; i++) {
            int c = scan_comp(ids->id, ids->n, d[pos + 3 + 2 * i], i);
            d[pos + 3 + 2 * i] = (uint8_t)(c < 0 ? 0xff : c);
        }
        if (m == 0xda && !mk->progressive && seg >= 6 + 2 * ns) {
            d[pos + 3 + 2 * ns] = 0;
            d[pos + 4 + 2 * ns] = 63;
            d[pos + 5 + 2 * ns] = 0;
        }
        pos += seg;
        if (m != 0xda)
            continue;
        size_t start = pos;
        if (skip_entropy(d, len, &pos, restarts) && !mk->cut_in_scan)
            break;
        if (mk->cut_in_scan) /* its data runs to the end (the walk allowed only this scan) */
            pos = len;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            size_t *grown = realloc(out->scan_end, cap * sizeof *grown);
            if (grown)
                out->scan_end = grown;
            vp_jpeg_arith_cond *more =
                grown && mk->arithmetic ? realloc(out->arith, cap * sizeof *more) : NULL;
            if (more)
                out->arith = more;
            if (!grown || (mk->arithmetic && !more))
                return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory walking a JPEG's scans");
        }
        if (mk->arithmetic) /* table 0 where a header is too short (stb_image refuses it) */
            memset(&out->arith[n], 0, sizeof out->arith[n]);
        for (size_t i = 0; mk->arithmetic && i < ns && i < 4 && seg >= 3 + 2 * ns; i++) {
            uint8_t *tables = &d[start - seg + 4 + 2 * i], td = *tables >> 4, ta = *tables & 15;
            vp_jpeg_arith_cond *c = &out->arith[n];
            c->dc_tbl[i] = td;
            c->ac_tbl[i] = ta;
            c->dc_l[i] = dc_l[td];
            c->dc_u[i] = dc_u[td];
            c->ac_k[i] = ac_k[ta];
            *tables = 0;
        }
        size_t end = pos;
        while (end > start && d[end - 1] == 0xff && !mk->cut_in_scan)
            end--;
        out->scan_end[n++] = end;
        if (mk->cut_in_scan) {
            out->last_cut = 1;
            break;
        }
    }
    out->n_scans = n;
    if (!n)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has no scan");
    return 0;
}

int vp_jpeg_stream_for_stb(const uint8_t *data, size_t len, const vp_jpeg_markers *mk,
                           vp_jpeg_stream *out, vp_error *err)
{
    memset(out, 0, sizeof *out);
    /* at most 4 tables of 1 + 16 + 162 bytes, and the marker and length */
    uint8_t seg[4 + 4 * 179];
    size_t seg_len = 0;
    if (mk->default_dht) {
        seg_len = 4;
        for (int ac = 0; ac < 2; ac++)
            for (int slot = 0; slot < 2; slot++)
                if (mk->default_dht >> (2 * ac + slot) & 1)
                    seg_len += put_k3_table(seg + seg_len, ac, slot);
        seg[0] = 0xff;
        seg[1] = 0xc4;
        seg[2] = (uint8_t)((seg_len - 2) >> 8);
        seg[3] = (uint8_t)(seg_len - 2);
    }
    out->data = malloc(len + seg_len);
    if (!out->data)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory copying a JPEG stream");
    /* SOI, then each segment before the first scan (vp_jpeg_check_complete checked their
     * lengths), then the tables, then the rest from the first scan's marker on */
    size_t pos = 2, n_out = 2, sos = len;
    frame_ids ids = {.n = 0, .renamed = 0};
    memcpy(out->data, data, 2);
    for (;;) {
        int m = vp_jpeg_next_marker(data, len, &pos);
        if (m < 0 || m == 0xd9)
            break; /* not reached on a checked stream: it has a scan */
        if (m == 0xda) {
            sos = pos - 2;
            break;
        }
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01)
            continue; /* no length (a TEM here was refused by the walk) */
        size_t seg_bytes = be16(data + pos);
        if (m == 0xdc) { /* a DNL before the first scan: libjpeg skips it, stb_image refuses */
            pos += seg_bytes;
            continue;
        }
        out->data[n_out++] = 0xff;
        out->data[n_out++] = (uint8_t)m;
        memcpy(out->data + n_out, data + pos, seg_bytes);
        if (is_sof((uint8_t)m) && !ids.n && seg_bytes >= 8)
            rename_frame_ids(out->data + n_out, seg_bytes, &ids);
        if (m == 0xc9 || m == 0xca) /* arithmetic: stb_image reads the same frame header */
            out->data[n_out - 1] = (uint8_t)(m == 0xc9 ? 0xc1 : 0xc2);
        n_out += seg_bytes;
        pos += seg_bytes;
    }
    memcpy(out->data + n_out, seg, seg_len);
    n_out += seg_len;
    if (sos < len) {
        memcpy(out->data + n_out, data + sos, len - sos);
        n_out += len - sos;
    }
    out->len = n_out;
    if (scan_ends(out->data, out->len, mk, &ids, out, err)) {
        vp_jpeg_stream_free(out);
        return -1;
    }
    return 0;
}

void vp_jpeg_stream_free(vp_jpeg_stream *s)
{
    free(s->data);
    free(s->scan_end);
    free(s->arith);
    memset(s, 0, sizeof *s);
}

/* libjpeg's reading of the APP0 (JFIF) and APP14 (Adobe) segments that pick the
 * colour space: only those before the first scan count, and only when long enough
 * (14 and 12 bytes after the length field). */
static void note_app(uint8_t m, const uint8_t *d, size_t seg_len, vp_jpeg_markers *mk)
{
    if (m == 0xe0 && seg_len >= 16 && !memcmp(d + 2, "JFIF\0", 5))
        mk->jfif = 1;
    if (m == 0xee && seg_len >= 14 && !memcmp(d + 2, "Adobe", 5))
        mk->adobe_transform = d[2 + 11];
}

/* What libjpeg refuses in a DAC segment (d: its length field on, avail bytes there):
 * pairs of a table index (0..31) and a value (a DC table's L, low nibble, <= U); NULL
 * when none, or when the data ends first. */
static const char *dac_fault(const uint8_t *d, size_t avail)
{
    if (avail < 2)
        return NULL;
    long long left = (long long)be16(d) - 2;
    for (size_t p = 2; left > 0; p += 2, left -= 2) {
        if (avail - p < 2)
            return NULL;
        if (d[p] > 31)
            return "an arithmetic coding table index above 31";
        if (d[p] < 16 && (d[p + 1] & 15) > d[p + 1] >> 4)
            return "an arithmetic coding DC table with L > U";
    }
    return left != 0 ? "an arithmetic coding segment (DAC) of the wrong length" : NULL;
}

/* After a sequential frame's scan of every component libjpeg has output every row and
 * Pillow ends decoding: it reads the markers after it up to EOI once, and data that ends
 * first (inside a segment or before EOI) still decodes; what libjpeg refuses there
 * (another scan, SOI or frame header, a marker it does not know) is refused. */
static int check_tail_marker(int m, vp_error *err)
{
    if (m == 0xda || m == 0xd8 || (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xcc))
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "JPEG has marker 0x%02X after a scan of every component (libjpeg expects "
                       "EOI there)",
                       m);
    int known = m == 0x01 || m == 0xc4 || m == 0xcc || (m >= 0xd0 && m <= 0xd7) ||
                (m >= 0xdb && m <= 0xdd) || (m >= 0xe0 && m <= 0xef) || m == 0xfe;
    if (!known)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has unknown marker 0x%02X", m);
    return 0;
}

/* The tables libjpeg reads after such a scan, as it reads them (d: the segment's length
 * field on, avail bytes there): a DQT, DHT, DRI or DAC whose contents it refuses is
 * refused. libjpeg reads a table's entries past a segment that is too short for them
 * (then refuses the length); the data ending first is a suspension, which Pillow lets
 * pass. */
static int check_tail_segment(int m, const uint8_t *d, size_t avail, vp_error *err)
{
    if ((m != 0xdb && m != 0xc4 && m != 0xdd && m != 0xcc) || avail < 2)
        return 0;
    long long left = (long long)be16(d) - 2;
    size_t p = 2;
    const char *bad = NULL;
    if (m == 0xdd) {
        bad = left != 2 ? "a restart interval segment (DRI) of the wrong length" : NULL;
    } else if (m == 0xdb) { /* index (0..3) and precision, then 64 entries of 1 or 2 bytes */
        while (left > 0 && !bad) {
            if (p >= avail)
                return 0;
            if ((d[p] & 15) > 3) {
                bad = "a quantization table index above 3";
                break;
            }
            size_t n = 1 + (d[p] >> 4 ? 128 : 64);
            if (avail - p < n)
                return 0;
            p += n;
            left -= (long long)n;
        }
        if (!bad && left != 0)
            bad = "a quantization table segment (DQT) of the wrong length";
    } else if (m == 0xc4) { /* class and index, 16 counts, the symbols */
        while (left > 16 && !bad) {
            if (avail - p < 17)
                return 0;
            size_t count = 0;
            for (int i = 1; i <= 16; i++)
                count += d[p + i];
            left -= 17;
            if (count > 256 || (long long)count > left) {
                bad = "a Huffman table (DHT) with more symbols than its segment holds";
                break;
            }
            if (avail - p - 17 < count)
                return 0;
            if ((d[p] & 0xef) > 3) {
                bad = "a Huffman table index above 3";
                break;
            }
            p += 17 + count;
            left -= (long long)count;
        }
        if (!bad && left != 0)
            bad = "a Huffman table segment (DHT) of the wrong length";
    } else {
        bad = dac_fault(d, avail);
    }
    if (!bad)
        return 0;
    return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                   "JPEG has %s after its scan of every component (libjpeg refuses it)", bad);
}

/* Walks segments; stops at the first SOF when want_sof, else at EOI. */
static int walk(const uint8_t *d, size_t len, int want_sof, size_t max_scans, uint32_t *w,
                uint32_t *h, vp_jpeg_markers *mk, vp_error *err)
{
    if (len < 3 || d[0] != 0xff || d[1] != 0xd8)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG start marker is truncated or wrong");
    size_t pos = 2;
    jpeg_tables tables = {0};
    vp_jpeg_markers markers = {.jfif = 0, .adobe_transform = -1, .default_dht = 0,
                               .progressive = 0};
    int seen_sos = 0, rows_out = 0; /* rows_out: check_tail_marker's case */
    int restarts = 0;                 /* a DRI so far set a restart interval */
    size_t n_scans = 0;
    /* A scan's missing table is reported at EOI: a truncated stream says so first. */
    vp_error table_err;
    int table_bad = 0;
    for (;;) {
        int m = vp_jpeg_next_marker(d, len, &pos);
        if (m < 0 && !rows_out)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG data is truncated (ends before the EOI marker)");
        int seg_cut = m >= 0 && m != 0xd9 && m != 0x01 && !(m >= 0xd0 && m <= 0xd8) &&
                      (len - pos < 2 || be16(d + pos) < 2 || len - pos < be16(d + pos));
        if (rows_out && m >= 0 && m != 0xd9 &&
            (check_tail_marker(m, err) || check_tail_segment(m, d + pos, len - pos, err)))
            return -1;
        if (m < 0 || m == 0xd9 || (rows_out && seg_cut)) {
            if (want_sof)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has no frame header (SOF)");
            if (table_bad && markers.cut_in_scan) /* its data ending says so first */
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "JPEG data is truncated (ends inside a scan)");
            if (table_bad && err)
                *err = table_err;
            if (table_bad)
                return -1;
            markers.progressive = tables.progressive;
            markers.arithmetic = tables.arithmetic;
            if (mk)
                *mk = markers;
            return 0;
        }
        if (m == 0xd8)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has a second SOI marker");
        if (m == 0x01 && !seen_sos) /* Pillow's own marker reader stops at it */
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG has a TEM marker before its first scan");
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01)
            continue; /* markers without a length */
        if (seg_cut)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG data is truncated (inside a marker segment)");
        size_t seg = be16(d + pos);
        if (is_sof((uint8_t)m) && want_sof) {
            if (seg < 8)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG frame header is too short");
            /* Huffman baseline, extended and progressive 8-bit frames (stb_image's), and
             * arithmetic sequential and progressive ones (jpeg_arith.c), as libjpeg-turbo
             * 2.1 (no lossless or hierarchical process) */
            if (m > 0xc2 && m != 0xc9 && m != 0xca)
                return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                               "JPEG coding process SOF%d (%s) is not supported", m - 0xc0,
                               m == 0xc3 || m == 0xcb ? "lossless" : "hierarchical");
            if (d[pos + 2] != 8)
                return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                               "%u-bit JPEG is not supported (8-bit only)", d[pos + 2]);
            *h = be16(d + pos + 3);
            *w = be16(d + pos + 5);
            return 0;
        }
        if (m == 0xc4 && check_dht(d + pos, seg, &tables, err))
            return -1;
        /* libjpeg reads a DAC's pairs past a segment too short for them */
        const char *dac_bad = m == 0xcc ? dac_fault(d + pos, len - pos) : NULL;
        if (dac_bad)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG has %s (libjpeg refuses it)",
                           dac_bad);
        if (m == 0xda && want_sof)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG scan before its frame header");
        if (m == 0xda && ++n_scans > max_scans)
            return vp_fail(err, VP_ERR_TOO_LARGE, "image",
                           "JPEG has more than %zu scans, the limit max_jpeg_scans", max_scans);
        if (m == 0xdb)
            note_dqt(d + pos, seg, &tables);
        if (is_sof((uint8_t)m) && !tables.have_sof) {
            note_sof((uint8_t)m, d + pos, seg, &tables);
            if (check_sampling(&tables, err))
                return -1;
        }
        if (!seen_sos)
            note_app((uint8_t)m, d + pos, seg, &markers);
        if (m == 0xda && !seen_sos && !tables.progressive && !tables.arithmetic) {
            /* libjpeg's Motion-JPEG rule, see vp_jpeg_stream_for_stb */
            markers.default_dht = (~tables.dht_dc & 3u) | (~tables.dht_ac & 3u) << 2;
            tables.dht_dc |= 3u;
            tables.dht_ac |= 3u;
        }
        if (m == 0xda && !table_bad && check_sos(d + pos, seg, &tables, &table_err))
            table_bad = 1;
        int every_comp = m == 0xda && !seen_sos && !tables.progressive && seg >= 3 &&
                         d[pos + 2] == tables.n_comp;
        seen_sos |= m == 0xda;
        if (m == 0xdd && seg >= 4)
            restarts = be16(d + pos + 2) != 0;
        pos += seg;
        if (m == 0xda && skip_entropy(d, len, &pos, restarts)) {
            /* a one-scan frame whose data runs to the end decodes in Pillow when libjpeg
             * reads no byte past it: the arithmetic decoder reads none before it needs it
             * (none once it broke), the Huffman one reads ahead up to a marker (a restart
             * marker after the last block); only decoding tells (jpeg_scan.c) */
            if (!every_comp)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "JPEG data is truncated (ends inside a scan)");
            markers.cut_in_scan = 1;
            pos = len;
        }
        rows_out |= every_comp;
    }
}

int vp_jpeg_read_header(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h, vp_error *err)
{
    return walk(data, len, 1, SIZE_MAX, w, h, NULL, err);
}

int vp_jpeg_check_complete(const uint8_t *data, size_t len, size_t max_scans,
                           vp_jpeg_markers *markers, vp_error *err)
{
    uint32_t w, h;
    return walk(data, len, 0, max_scans, &w, &h, markers, err);
}
