/* JPEG scans decoded with libjpeg's rules for damaged data (see jpeg_scan.h). The rules
 * are libjpeg's behaviour (jdhuff.c, jdphuff.c, jdmarker.c: insufficient data,
 * read_restart_marker, jpeg_resync_to_restart, the progressive decoders' handling of
 * bad sizes and runs); the tables are stb_image's. */
#include <string.h>

#include "engine/image/jpeg_arith.h"
#include "engine/image/jpeg_pixels.h"
#include "engine/image/jpeg_scan.h"

const uint8_t vp_jpeg_natural_order[64 + 16] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33,
    40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36,
    29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

/* The entropy-coded bytes as bits, first bit highest. Stops at a marker (unread_marker,
 * p just after it; data_end reads as end_marker), then gives zero bits: taking one of
 * those sets out_of_data, libjpeg's insufficient_data. */
typedef struct bit_reader {
    vp_jpeg_reader in;
    uint64_t buf;      /* bits_left bits in the low end */
    int bits_left;
    int pad_bits;      /* the lowest pad_bits of them are zeros past the data */
    int out_of_data;
} bit_reader;

static void fill(bit_reader *r)
{
    while (r->bits_left <= 56) {
        int b = vp_jpeg_next_byte(&r->in);
        if (b < 0)
            break;
        r->buf = r->buf << 8 | (uint8_t)b;
        r->bits_left += 8;
    }
}

/* At least n (<= 17) bits in the buffer, zeros once the data has ended. */
static inline void need(bit_reader *r, int n)
{
    if (r->bits_left >= n)
        return;
    fill(r);
    while (r->bits_left < n) {
        r->buf <<= 8;
        r->bits_left += 8;
        r->pad_bits += 8;
    }
}

static inline uint32_t peek(const bit_reader *r, int n)
{
    return (uint32_t)(r->buf >> (r->bits_left - n)) & ((1u << n) - 1);
}

static inline void consume(bit_reader *r, int n)
{
    r->bits_left -= n;
    if (r->bits_left < r->pad_bits) {
        r->out_of_data = 1;
        r->pad_bits = r->bits_left;
    }
}

static inline uint32_t get_bits(bit_reader *r, int n)
{
    need(r, n);
    uint32_t v = peek(r, n);
    consume(r, n);
    return v;
}

/* An s-bit magnitude as a signed value (JPEG's EXTEND). */
static inline int extend(uint32_t v, int s)
{
    return v < (1u << (s - 1)) ? (int)v - (1 << s) + 1 : (int)v;
}

/* The next symbol; a code longer than 16 bits gives 0 after 17 bits, as in libjpeg. */
static int decode_symbol(bit_reader *r, const vp_jpeg_huff *h)
{
    need(r, 16);
    uint32_t look = peek(r, 16);
    int k = h->fast[look >> 7];
    if (k < 255) {
        consume(r, h->size[k]);
        return h->values[k];
    }
    for (int l = 10; l <= 16; l++)
        if (look < h->maxcode[l]) {
            consume(r, l);
            return h->values[((int)(look >> (16 - l)) + h->delta[l]) & 255];
        }
    need(r, 17);
    consume(r, 17);
    return 0;
}

/* A sequential block into coef: its DC and its nonzero AC coefficients written, the
 * others left as they are (libjpeg's way: a block decoded again keeps an earlier
 * scan's AC values where this scan has zeros). */
static void decode_block(bit_reader *r, const vp_jpeg_scan_comp *c, int32_t *dc_pred, short coef[64])
{
    int s = decode_symbol(r, &c->dc);
    int diff = s ? extend(get_bits(r, s), s) : 0;
    *dc_pred = (int32_t)((uint32_t)*dc_pred + (uint32_t)diff);
    coef[0] = (short)(uint16_t)(uint32_t)*dc_pred; /* libjpeg's JCOEF: 16 bits */
    for (int k = 1; k < 64; k++) {
        need(r, 9);
        int fac = c->ac.fast_ac[peek(r, 9)];
        if (fac) { /* code and value within 9 bits */
            k += (fac >> 4) & 15;
            consume(r, fac & 15);
            coef[vp_jpeg_natural_order[k]] = (short)(fac >> 8);
            continue;
        }
        int rs = decode_symbol(r, &c->ac), run = rs >> 4;
        s = rs & 15;
        if (s) {
            k += run;
            coef[vp_jpeg_natural_order[k]] = (short)extend(get_bits(r, s), s);
        } else if (run == 15) {
            k += 15;
        } else {
            break; /* end of block */
        }
    }
}

static uint8_t *block_at(const vp_jpeg_scan_comp *c, size_t bx, size_t by)
{
    return c->plane + by * 8 * c->stride + bx * 8;
}

static void grey_block(const vp_jpeg_scan_comp *c, uint8_t *b)
{
    for (int row = 0; row < 8; row++)
        memset(b + (size_t)row * c->stride, 128, 8);
}

/* libjpeg's next_marker: skips data to the next marker. */
static void next_marker(bit_reader *r)
{
    for (;;) {
        while (r->in.p < r->in.end && *r->in.p != 0xff)
            r->in.p++;
        while (r->in.p < r->in.end && *r->in.p == 0xff)
            r->in.p++;
        if (r->in.p >= r->in.end) {
            r->in.unread_marker = r->in.end_marker;
            r->in.ran_out |= r->in.cut;
            return;
        }
        uint8_t c = *r->in.p++;
        if (c) {
            r->in.unread_marker = c;
            return;
        }
    }
}

/* libjpeg's read_restart_marker and jpeg_resync_to_restart, for restart marker number
 * want: consume it, or skip or keep another marker by the resync rules. */
static int read_restart(bit_reader *r, int want, vp_error *err)
{
    if (!r->in.unread_marker)
        next_marker(r);
    if (r->in.unread_marker == 0xd0 + want) {
        r->in.unread_marker = 0;
        return 0;
    }
    for (;;) {
        int m = r->in.unread_marker, action;
        if (m < 0xc0)
            action = 2; /* not a valid marker: scan past it */
        else if (m < 0xd0 || m > 0xd7)
            action = 3; /* a marker that ends the scan: keep it */
        else if (m == 0xd0 + ((want + 1) & 7) || m == 0xd0 + ((want + 2) & 7))
            action = 3; /* one of the next two: keep it, empty segments until then */
        else if (m == 0xd0 + ((want + 7) & 7) || m == 0xd0 + ((want + 6) & 7))
            action = 2; /* one of the last two: scan past it */
        else
            action = 1; /* the wanted one or far off: drop it and decode on */
        if (action == 1) {
            r->in.unread_marker = 0;
            return 0;
        }
        if (action == 3)
            return 0;
        if (r->in.p >= r->in.end)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG restart markers are damaged past the end of a scan");
        r->in.unread_marker = 0;
        next_marker(r);
    }
}

/* ---- progressive scans: one band of coefficients, or one more bit of them ---- */

/* A block of a component decoded into coefficients (progressive, or sequential over
 * several scans). */
static short *coef_block(const vp_jpeg_scan_comp *c, size_t bx, size_t by)
{
    return c->coef + 64 * (by * c->coef_wide + bx);
}

typedef struct scan_state {
    int32_t dc_pred[4];
    uint32_t eob_run;    /* blocks left in an end-of-band run */
    vp_jpeg_arith *arith; /* an arithmetic-coded scan's decoder */
} scan_state;

static void dc_first(bit_reader *r, const vp_jpeg_scan *s, int k, short *b, scan_state *st)
{
    int sym = decode_symbol(r, &s->comp[k].dc);
    int diff = sym ? extend(get_bits(r, sym), sym) : 0;
    st->dc_pred[k] = (int32_t)((uint32_t)st->dc_pred[k] + (uint32_t)diff);
    b[0] = (short)(uint16_t)((uint32_t)st->dc_pred[k] << s->al);
}

static void dc_refine(bit_reader *r, const vp_jpeg_scan *s, short *b)
{
    if (get_bits(r, 1))
        b[0] = (short)(b[0] | (1 << s->al));
}

static void ac_first(bit_reader *r, const vp_jpeg_scan *s, short *b, scan_state *st)
{
    if (st->eob_run) {
        st->eob_run--;
        return;
    }
    for (int k = s->ss; k <= s->se; k++) {
        int rs = decode_symbol(r, &s->comp[0].ac), run = rs >> 4, size = rs & 15;
        if (size) {
            k += run;
            int v = extend(get_bits(r, size), size);
            b[vp_jpeg_natural_order[k]] = (short)(uint16_t)((uint32_t)v << s->al);
        } else if (run == 15) {
            k += 15;
        } else {
            st->eob_run = (1u << run) + (run ? get_bits(r, run) : 0) - 1;
            break;
        }
    }
}

/* A correction bit for an already nonzero coefficient: 1 adds the new bit to its
 * magnitude, unless it has it already. */
static void refine_coef(bit_reader *r, short *coef, int p1)
{
    if (get_bits(r, 1) && !(*coef & p1))
        *coef = (short)(*coef + (*coef >= 0 ? p1 : -p1));
}

static void ac_refine(bit_reader *r, const vp_jpeg_scan *s, short *b, scan_state *st)
{
    int p1 = 1 << s->al, k = s->ss;
    if (!st->eob_run) {
        for (; k <= s->se; k++) {
            int rs = decode_symbol(r, &s->comp[0].ac), run = rs >> 4, size = rs & 15, v = 0;
            if (size) { /* a newly nonzero coefficient: of size 1 (libjpeg takes any as 1) */
                v = get_bits(r, 1) ? p1 : -p1;
            } else if (run != 15) {
                st->eob_run = (1u << run) + (run ? get_bits(r, run) : 0);
                break;
            }
            /* past run zero coefficients, refining the nonzero ones on the way */
            do {
                short *c = &b[vp_jpeg_natural_order[k]];
                if (*c)
                    refine_coef(r, c, p1);
                else if (--run < 0)
                    break;
                k++;
            } while (k <= s->se);
            if (v) /* at the zero it reached, or just past the band when the run overshoots */
                b[vp_jpeg_natural_order[k]] = (short)v;
        }
    }
    if (st->eob_run) {
        for (; k <= s->se; k++)
            if (b[vp_jpeg_natural_order[k]])
                refine_coef(r, &b[vp_jpeg_natural_order[k]], p1);
        st->eob_run--;
    }
}

/* ---- MCUs ---- */

/* One block of the scan; skip: the data had run out before this MCU began (Huffman), or
 * the arithmetic decoder is broken. */
static void decode_block_of(bit_reader *r, const vp_jpeg_scan *s, int k, size_t bx, size_t by,
                            int skip, scan_state *st)
{
    const vp_jpeg_scan_comp *c = &s->comp[k];
    if (st->arith)
        skip = st->arith->broken;
    if (!s->progressive && !c->coef) {
        uint8_t *out = block_at(c, bx, by);
        if (skip) { /* the rest of the segment: zero coefficients */
            grey_block(c, out);
            return;
        }
        short coef[64] = {0};
        if (st->arith)
            vp_jpeg_arith_block(st->arith, s, k, coef);
        else
            decode_block(r, c, &st->dc_pred[k], coef);
        vp_jpeg_idct_islow(out, (int)c->stride, coef, c->dequant);
        return;
    }
    if (skip) /* the rest of the segment leaves the coefficients as they are */
        return;
    short *b = coef_block(c, bx, by);
    if (st->arith)
        vp_jpeg_arith_block(st->arith, s, k, b);
    else if (!s->progressive)
        decode_block(r, c, &st->dc_pred[k], b);
    else if (s->ss == 0)
        s->ah ? dc_refine(r, s, b) : dc_first(r, s, k, b, st);
    else
        s->ah ? ac_refine(r, s, b, st) : ac_first(r, s, b, st);
}

/* MCU m: one block of a one-component scan, else each component's h x v blocks. The
 * MCU during which the data runs out still decodes, from zero bits. */
static void decode_mcu(bit_reader *r, const vp_jpeg_scan *s, size_t m, scan_state *st)
{
    int skip = r->out_of_data;
    if (s->n_comp == 1) {
        const vp_jpeg_scan_comp *c = &s->comp[0];
        decode_block_of(r, s, 0, m % c->blocks_wide, m / c->blocks_wide, skip, st);
        return;
    }
    size_t mx = m % s->mcus_wide, my = m / s->mcus_wide;
    for (int k = 0; k < s->n_comp; k++) {
        const vp_jpeg_scan_comp *c = &s->comp[k];
        for (int y = 0; y < c->v; y++)
            for (int x = 0; x < c->h; x++)
                decode_block_of(r, s, k, mx * (size_t)c->h + (size_t)x, my * (size_t)c->v + (size_t)y,
                                skip, st);
    }
}

/* libjpeg's checks of the tables and the progression before it decodes a scan. */
static int check_scan(const vp_jpeg_scan *s, vp_error *err)
{
    int uses_dc = !s->arithmetic && (!s->progressive || (s->ss == 0 && s->ah == 0));
    for (int k = 0; uses_dc && k < s->n_comp; k++)
        for (int i = 0; i < 256 && s->comp[k].dc.size[i]; i++)
            if (s->comp[k].dc.values[i] > 15)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "JPEG DC Huffman table has symbol %d (at most 15)",
                               s->comp[k].dc.values[i]);
    if (!s->progressive)
        return 0;
    int bad = s->ss == 0 ? s->se != 0 : s->se < s->ss || s->se > 63 || s->n_comp != 1;
    bad |= (s->ah != 0 && s->al != s->ah - 1) || s->al > 13;
    if (bad)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "JPEG progressive scan with Ss=%d Se=%d Ah=%d Al=%d over %d components "
                       "breaks the progression rules",
                       s->ss, s->se, s->ah, s->al, s->n_comp);
    return 0;
}

/* After the scan's last MCU libjpeg reads the next marker: the one its decoder stopped
 * at, else the first after that point (restart and TEM markers there it passes over). An
 * invalid one (below 0xC0), which resynchronisation skipped inside the scan, now fails the
 * image. The marker where the scan's data ends is jpeg.c's to judge. */
static int check_marker_after(bit_reader *r, vp_error *err)
{
    int m = r->in.unread_marker;
    for (;;) {
        if (r->in.p >= r->in.end && (!m || m == r->in.end_marker))
            return 0;
        if (!m) {
            next_marker(r);
            m = r->in.unread_marker;
            continue;
        }
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01) {
            r->in.unread_marker = m = 0;
            continue;
        }
        break;
    }
    if (m < 0xc0)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "JPEG has marker 0x%02X after a scan's last block (libjpeg refuses it)", m);
    return 0;
}

int vp_jpeg_decode_scan(const vp_jpeg_scan *s, size_t *last_good_row, vp_error *err)
{
    if (check_scan(s, err))
        return -1;
    bit_reader r = {.in = {.p = s->data, .end = s->data_end, .end_marker = s->end_marker,
                           .cut = s->data_cut}};
    vp_jpeg_arith arith; /* its bit reader unused: no bits left to drop, no out_of_data */
    scan_state st = {{0}, 0, s->arithmetic ? &arith : NULL};
    if (st.arith)
        vp_jpeg_arith_start(st.arith, &r.in, s);
    size_t total = s->n_comp == 1 ? s->comp[0].blocks_wide * s->comp[0].blocks_high
                                  : s->mcus_wide * s->mcus_high;
    unsigned to_go = s->restart_interval;
    int next_rst = 0;
    for (size_t m = 0; m < total; m++) {
        if (s->restart_interval && to_go == 0) {
            r.buf = 0; /* bits left of the last interval are dropped */
            r.bits_left = r.pad_bits = 0;
            if (read_restart(&r, next_rst, err))
                return -1;
            next_rst = (next_rst + 1) & 7;
            st = (scan_state){{0}, 0, st.arith};
            if (st.arith) /* statistics and registers afresh */
                vp_jpeg_arith_start(st.arith, &r.in, s);
            to_go = s->restart_interval;
            if (!r.in.unread_marker)
                r.out_of_data = 0;
        }
        if (!r.out_of_data && last_good_row)
            *last_good_row = s->n_comp == 1 ? m / s->comp[0].blocks_wide / (size_t)s->comp[0].v
                                            : m / s->mcus_wide;
        decode_mcu(&r, s, m, &st);
        if (s->restart_interval)
            to_go--;
    }
    if (r.in.ran_out) /* Pillow's libjpeg would have waited for more data */
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "JPEG data is truncated (ends inside a scan)");
    return check_marker_after(&r, err);
}
