/* Sequential JPEG scans decoded with libjpeg's rules for damaged data (see jpeg_scan.h).
 * The rules are libjpeg's documented behaviour (jdhuff.c, jdmarker.c: insufficient
 * data, read_restart_marker, jpeg_resync_to_restart); the tables are stb_image's. */
#include <string.h>

#include "engine/image/jpeg_pixels.h"
#include "engine/image/jpeg_scan.h"

/* Zig-zag position -> row-major position; positions past 63 (a run that overshoots on
 * damaged data) land on 63, as in libjpeg. */
static const uint8_t natural_order[64 + 16] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33,
    40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36,
    29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

/* The entropy-coded bytes as bits, first bit highest. Stops at a marker (unread_marker,
 * p just after it; data_end reads as end_marker), then gives zero bits: taking one of
 * those sets out_of_data, libjpeg's insufficient_data. */
typedef struct bit_reader {
    const uint8_t *p, *end;
    uint8_t end_marker;
    uint64_t buf;      /* bits_left bits in the low end */
    int bits_left;
    int pad_bits;      /* the lowest pad_bits of them are zeros past the data */
    int unread_marker; /* 0: none */
    int out_of_data;
} bit_reader;

static void fill(bit_reader *r)
{
    while (r->bits_left <= 56 && !r->unread_marker) {
        if (r->p >= r->end) {
            r->unread_marker = r->end_marker;
            break;
        }
        uint8_t b = *r->p++;
        if (b == 0xff) { /* 0xFF 0x00 is a 0xFF byte, after any 0xFF fill bytes */
            const uint8_t *q = r->p;
            while (q < r->end && *q == 0xff)
                q++;
            if (q >= r->end || *q != 0) {
                r->unread_marker = q >= r->end ? r->end_marker : *q;
                r->p = q >= r->end ? r->end : q + 1;
                break;
            }
            r->p = q + 1;
        }
        r->buf = r->buf << 8 | b;
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

/* A coefficient times its quantiser, cut to 16 bits as libjpeg's SIMD IDCT takes it. */
static inline short dequantise(int32_t coef, uint16_t q)
{
    return (short)(uint16_t)((uint32_t)coef * q);
}

static void decode_block(bit_reader *r, const vp_jpeg_scan_comp *c, int32_t *dc_pred, short coef[64])
{
    memset(coef, 0, 64 * sizeof *coef);
    int s = decode_symbol(r, &c->dc);
    int diff = s ? extend(get_bits(r, s), s) : 0;
    *dc_pred = (int32_t)((uint32_t)*dc_pred + (uint32_t)diff);
    coef[0] = dequantise(*dc_pred, c->dequant[0]);
    for (int k = 1; k < 64; k++) {
        need(r, 9);
        int fac = c->ac.fast_ac[peek(r, 9)];
        if (fac) { /* code and value within 9 bits */
            k += (fac >> 4) & 15;
            consume(r, fac & 15);
            coef[natural_order[k]] = dequantise(fac >> 8, c->dequant[natural_order[k]]);
            continue;
        }
        int rs = decode_symbol(r, &c->ac), run = rs >> 4;
        s = rs & 15;
        if (s) {
            k += run;
            coef[natural_order[k]] = dequantise(extend(get_bits(r, s), s), c->dequant[natural_order[k]]);
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
        while (r->p < r->end && *r->p != 0xff)
            r->p++;
        while (r->p < r->end && *r->p == 0xff)
            r->p++;
        if (r->p >= r->end) {
            r->unread_marker = r->end_marker;
            return;
        }
        uint8_t c = *r->p++;
        if (c) {
            r->unread_marker = c;
            return;
        }
    }
}

/* libjpeg's read_restart_marker and jpeg_resync_to_restart, for restart marker number
 * want: consume it, or skip or keep another marker by the resync rules. */
static int read_restart(bit_reader *r, int want, vp_error *err)
{
    if (!r->unread_marker)
        next_marker(r);
    if (r->unread_marker == 0xd0 + want) {
        r->unread_marker = 0;
        return 0;
    }
    for (;;) {
        int m = r->unread_marker, action;
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
            r->unread_marker = 0;
            return 0;
        }
        if (action == 3)
            return 0;
        if (r->p >= r->end)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                           "JPEG restart markers are damaged past the end of a scan");
        r->unread_marker = 0;
        next_marker(r);
    }
}

static void decode_mcu(bit_reader *r, const vp_jpeg_scan *s, size_t m, int32_t *dc_pred)
{
    short coef[64];
    if (s->n_comp == 1) {
        const vp_jpeg_scan_comp *c = &s->comp[0];
        uint8_t *b = block_at(c, m % c->blocks_wide, m / c->blocks_wide);
        if (r->out_of_data) {
            grey_block(c, b);
            return;
        }
        decode_block(r, c, &dc_pred[0], coef);
        vp_jpeg_idct_islow(b, (int)c->stride, coef);
        return;
    }
    size_t mx = m % s->mcus_wide, my = m / s->mcus_wide;
    int skip = r->out_of_data; /* the MCU that runs out still decodes, from zero bits */
    for (int k = 0; k < s->n_comp; k++) {
        const vp_jpeg_scan_comp *c = &s->comp[k];
        for (int y = 0; y < c->v; y++)
            for (int x = 0; x < c->h; x++) {
                uint8_t *b = block_at(c, mx * (size_t)c->h + (size_t)x, my * (size_t)c->v + (size_t)y);
                if (skip) {
                    grey_block(c, b);
                    continue;
                }
                decode_block(r, c, &dc_pred[k], coef);
                vp_jpeg_idct_islow(b, (int)c->stride, coef);
            }
    }
}

int vp_jpeg_decode_sequential_scan(const vp_jpeg_scan *s, vp_error *err)
{
    for (int k = 0; k < s->n_comp; k++) /* libjpeg refuses a DC table beyond 15 bits */
        for (int i = 0; i < 256 && s->comp[k].dc.size[i]; i++)
            if (s->comp[k].dc.values[i] > 15)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "JPEG DC Huffman table has symbol %d (at most 15)",
                               s->comp[k].dc.values[i]);
    bit_reader r = {.p = s->data, .end = s->data_end, .end_marker = s->end_marker};
    int32_t dc_pred[4] = {0};
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
            memset(dc_pred, 0, sizeof dc_pred);
            to_go = s->restart_interval;
            if (!r.unread_marker)
                r.out_of_data = 0;
        }
        decode_mcu(&r, s, m, dc_pred);
        if (s->restart_interval)
            to_go--;
    }
    return 0;
}
