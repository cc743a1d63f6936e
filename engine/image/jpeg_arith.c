/* Arithmetic-coded JPEG scans (see jpeg_arith.h). The decoder is T.81's: the interval
 * register A and the code register C, whose top 16 bits line up with A once ct further
 * bits are held; the statistics are the bins of Annex F's models. */
#include "engine/image/jpeg_arith.h"

#include <string.h>

/* T.81 Table D.2: each state's LPS probability estimate Qe and the next state after
 * an MPS or an LPS renormalisation (with the sense of the MPS switched after an LPS
 * where SWITCH is 1); state 113, outside the table, is the fixed 0.5 estimate of the
 * sign and refinement bits, which never moves. */
typedef struct qe_state {
    uint16_t qe;
    uint8_t nmps, nlps, sw;
} qe_state;

static const qe_state k_states[114] = {
    {0x5a1d, 1, 1, 1}, {0x2586, 2, 14, 0}, {0x1114, 3, 16, 0}, {0x080b, 4, 18, 0},
    {0x03d8, 5, 20, 0}, {0x01da, 6, 23, 0}, {0x00e5, 7, 25, 0}, {0x006f, 8, 28, 0},
    {0x0036, 9, 30, 0}, {0x001a, 10, 33, 0}, {0x000d, 11, 35, 0}, {0x0006, 12, 9, 0},
    {0x0003, 13, 10, 0}, {0x0001, 13, 12, 0}, {0x5a7f, 15, 15, 1}, {0x3f25, 16, 36, 0},
    {0x2cf2, 17, 38, 0}, {0x207c, 18, 39, 0}, {0x17b9, 19, 40, 0}, {0x1182, 20, 42, 0},
    {0x0cef, 21, 43, 0}, {0x09a1, 22, 45, 0}, {0x072f, 23, 46, 0}, {0x055c, 24, 48, 0},
    {0x0406, 25, 49, 0}, {0x0303, 26, 51, 0}, {0x0240, 27, 52, 0}, {0x01b1, 28, 54, 0},
    {0x0144, 29, 56, 0}, {0x00f5, 30, 57, 0}, {0x00b7, 31, 59, 0}, {0x008a, 32, 60, 0},
    {0x0068, 33, 62, 0}, {0x004e, 34, 63, 0}, {0x003b, 35, 32, 0}, {0x002c, 9, 33, 0},
    {0x5ae1, 37, 37, 1}, {0x484c, 38, 64, 0}, {0x3a0d, 39, 65, 0}, {0x2ef1, 40, 67, 0},
    {0x261f, 41, 68, 0}, {0x1f33, 42, 69, 0}, {0x19a8, 43, 70, 0}, {0x1518, 44, 72, 0},
    {0x1177, 45, 73, 0}, {0x0e74, 46, 74, 0}, {0x0bfb, 47, 75, 0}, {0x09f8, 48, 77, 0},
    {0x0861, 49, 78, 0}, {0x0706, 50, 79, 0}, {0x05cd, 51, 48, 0}, {0x04de, 52, 50, 0},
    {0x040f, 53, 50, 0}, {0x0363, 54, 51, 0}, {0x02d4, 55, 52, 0}, {0x025c, 56, 53, 0},
    {0x01f8, 57, 54, 0}, {0x01a4, 58, 55, 0}, {0x0160, 59, 56, 0}, {0x0125, 60, 57, 0},
    {0x00f6, 61, 58, 0}, {0x00cb, 62, 59, 0}, {0x00ab, 63, 61, 0}, {0x008f, 32, 61, 0},
    {0x5b12, 65, 65, 1}, {0x4d04, 66, 80, 0}, {0x412c, 67, 81, 0}, {0x37d8, 68, 82, 0},
    {0x2fe8, 69, 83, 0}, {0x293c, 70, 84, 0}, {0x2379, 71, 86, 0}, {0x1edf, 72, 87, 0},
    {0x1aa9, 73, 87, 0}, {0x174e, 74, 72, 0}, {0x1424, 75, 72, 0}, {0x119c, 76, 74, 0},
    {0x0f6b, 77, 74, 0}, {0x0d51, 78, 75, 0}, {0x0bb6, 79, 77, 0}, {0x0a40, 48, 77, 0},
    {0x5832, 81, 80, 1}, {0x4d1c, 82, 88, 0}, {0x438e, 83, 89, 0}, {0x3bdd, 84, 90, 0},
    {0x34ee, 85, 91, 0}, {0x2eae, 86, 92, 0}, {0x299a, 87, 93, 0}, {0x2516, 71, 86, 0},
    {0x5570, 89, 88, 1}, {0x4ca9, 90, 95, 0}, {0x44d9, 91, 96, 0}, {0x3e22, 92, 97, 0},
    {0x3824, 93, 99, 0}, {0x32b4, 94, 99, 0}, {0x2e17, 86, 93, 0}, {0x56a8, 96, 95, 1},
    {0x4f46, 97, 101, 0}, {0x47e5, 98, 102, 0}, {0x41cf, 99, 103, 0}, {0x3c3d, 100, 104, 0},
    {0x375e, 93, 99, 0}, {0x5231, 102, 105, 0}, {0x4c0f, 103, 106, 0}, {0x4639, 104, 107, 0},
    {0x415e, 99, 103, 0}, {0x5627, 106, 105, 1}, {0x50e7, 107, 108, 0}, {0x4b85, 103, 109, 0},
    {0x5597, 109, 110, 0}, {0x504f, 107, 111, 0}, {0x5a10, 111, 110, 1}, {0x5522, 109, 112, 0},
    {0x59eb, 111, 112, 1}, {0x5a1d, 113, 113, 0},
};

#define FIXED_STATE 113

/* The next byte of entropy-coded data; at a marker (or where the scan's data ends) and
 * after it 0, T.81's convention for a decoder that meets the end of its data. */
static uint32_t next_byte(vp_jpeg_reader *in)
{
    int b = vp_jpeg_next_byte(in);
    return b < 0 ? 0 : (uint32_t)b;
}

/* One binary decision with the estimate in *bin (T.81 D.2.2 to D.2.6). */
static int decide(vp_jpeg_arith *d, uint8_t *bin)
{
    /* renormalise: A doubled up to 0x8000 or more, a byte of code taken in each time the
     * held bits run out (after a start, the first two bytes before any decision) */
    while (d->a < 0x8000) {
        if (--d->ct < 0) {
            d->c = d->c << 8 | next_byte(d->in);
            d->ct += 8;
            if (d->ct < 0 && ++d->ct == 0)
                d->a = 0x8000; /* both first bytes in: A starts at 0x10000 */
        }
        d->a <<= 1;
    }
    const qe_state *q = &k_states[*bin & 0x7f];
    int mps = *bin >> 7, lps;
    d->a -= q->qe;
    uint32_t mps_size = d->a << d->ct; /* the lower sub-interval at C's scale */
    if (d->c >= mps_size) { /* the upper one, Qe wide: the LPS unless it is the smaller */
        d->c -= mps_size;
        lps = d->a >= q->qe;
        d->a = q->qe;
    } else {
        if (d->a >= 0x8000) /* no renormalisation: the estimate stays */
            return mps;
        lps = d->a < q->qe; /* the conditional exchange */
    }
    if (lps) {
        *bin = (uint8_t)((mps ^ q->sw) << 7 | q->nlps);
        return !mps;
    }
    *bin = (uint8_t)(mps << 7 | q->nmps);
    return mps;
}

static int fair_bit(vp_jpeg_arith *d)
{
    uint8_t bin = FIXED_STATE;
    return decide(d, &bin);
}

/* The low bits of a magnitude whose top bit is m (F.2.4.3.2), at bin *st: the value. */
static int magnitude_bits(vp_jpeg_arith *d, uint8_t *st, int m)
{
    int v = m;
    while (m >>= 1)
        if (decide(d, st))
            v |= m;
    return v + 1;
}

/* The magnitude category past the first one (F.2.4.3.1): m doubled per decision from bin
 * *st on; *st left at the last bin read. Breaks the decoder at 2^15 (false). */
static bool category(vp_jpeg_arith *d, uint8_t **st, int *m)
{
    while (decide(d, *st)) {
        if ((*m <<= 1) == 0x8000) {
            d->broken = true;
            return false;
        }
        (*st)++;
    }
    return true;
}

/* A DC difference (F.1.4.4.1, F.2.4.1) of scan component k; its conditioning category
 * kept for the next. 0 and d->broken on an overflow. */
static int dc_diff(vp_jpeg_arith *d, const vp_jpeg_scan_comp *c, int k)
{
    uint8_t *stats = d->dc_stats[c->dc_tbl], *s0 = stats + d->dc_context[k];
    if (!decide(d, s0)) {
        d->dc_context[k] = 0;
        return 0;
    }
    int sign = decide(d, s0 + 1), m;
    uint8_t *st = s0 + 2 + sign;
    if ((m = decide(d, st))) {
        st = stats + 20; /* X1 */
        if (!category(d, &st, &m))
            return 0;
    }
    /* small or large by the bounds 2^L / 2 and 2^U / 2 on m (the diff's top bit) */
    if (m < (1 << c->dc_l) >> 1)
        d->dc_context[k] = 0;
    else
        d->dc_context[k] = (m > (1 << c->dc_u) >> 1 ? 12 : 4) + 4 * sign;
    int v = magnitude_bits(d, st + 14, m);
    return sign ? -v : v;
}

/* AC coefficients ss..se of a block (F.2.4.2, G.1.3.2), each written shifted left by al;
 * an end of block ends it, a zero run past se breaks the decoder. */
static void ac_band(vp_jpeg_arith *d, const vp_jpeg_scan_comp *c, short coef[64], int ss,
                    int se, int al)
{
    uint8_t *stats = d->ac_stats[c->ac_tbl];
    for (int k = ss; k <= se; k++) {
        uint8_t *st = stats + 3 * (k - 1);
        if (decide(d, st)) /* end of block */
            return;
        while (!decide(d, st + 1)) { /* a zero coefficient */
            st += 3;
            if (++k > se) {
                d->broken = true;
                return;
            }
        }
        int sign = fair_bit(d), m;
        st += 2;
        if ((m = decide(d, st)) && decide(d, st)) {
            m = 2;
            st = stats + (k <= c->ac_k ? 189 : 217); /* X2 */
            if (!category(d, &st, &m))
                return;
        }
        int v = magnitude_bits(d, st + 14, m);
        coef[vp_jpeg_natural_order[k]] = (short)(uint16_t)((uint32_t)(sign ? -v : v) << al);
    }
}

/* A progressive AC refinement (G.1.3.3): a bit for each nonzero coefficient, and the
 * coefficients that become nonzero (+-1 at bit al). */
static void ac_refine(vp_jpeg_arith *d, const vp_jpeg_scan *s, short coef[64])
{
    uint8_t *stats = d->ac_stats[s->comp[0].ac_tbl];
    int p1 = 1 << s->al, m1 = -p1;
    int eob = s->se; /* the previous passes' end of block */
    while (eob > 0 && !coef[vp_jpeg_natural_order[eob]])
        eob--;
    for (int k = s->ss; k <= s->se; k++) {
        uint8_t *st = stats + 3 * (k - 1);
        if (k > eob && decide(d, st))
            return;
        for (;;) {
            short *x = &coef[vp_jpeg_natural_order[k]];
            if (*x) { /* nonzero before: one more bit of its magnitude */
                if (decide(d, st + 2))
                    *x = (short)(uint16_t)(uint32_t)(*x + (*x < 0 ? m1 : p1));
                break;
            }
            if (decide(d, st + 1)) { /* newly nonzero */
                *x = (short)(fair_bit(d) ? m1 : p1);
                break;
            }
            st += 3;
            if (++k > s->se) {
                d->broken = true;
                return;
            }
        }
    }
}

void vp_jpeg_arith_start(vp_jpeg_arith *d, vp_jpeg_reader *in, const vp_jpeg_scan *s)
{
    d->in = in;
    d->c = d->a = 0;
    d->ct = -16;
    d->broken = false;
    for (int k = 0; k < s->n_comp; k++) { /* only the scan's tables: 5 KB a restart otherwise */
        memset(d->dc_stats[s->comp[k].dc_tbl], 0, sizeof d->dc_stats[0]);
        memset(d->ac_stats[s->comp[k].ac_tbl], 0, sizeof d->ac_stats[0]);
        d->dc_context[k] = 0;
        d->dc_pred[k] = 0;
    }
}

void vp_jpeg_arith_block(vp_jpeg_arith *d, const vp_jpeg_scan *s, int k, short coef[64])
{
    if (d->broken)
        return;
    const vp_jpeg_scan_comp *c = &s->comp[k];
    if (!s->progressive || (s->ss == 0 && s->ah == 0)) {
        int v = dc_diff(d, c, k);
        if (d->broken)
            return;
        d->dc_pred[k] = (int32_t)((uint32_t)d->dc_pred[k] + (uint32_t)v);
        int al = s->progressive ? s->al : 0;
        coef[0] = (short)(uint16_t)((uint32_t)d->dc_pred[k] << al);
        if (!s->progressive)
            ac_band(d, c, coef, 1, 63, 0);
    } else if (s->ss == 0) {
        if (fair_bit(d))
            coef[0] = (short)(coef[0] | (1 << s->al));
    } else if (s->ah == 0) {
        ac_band(d, c, coef, s->ss, s->se, s->al);
    } else {
        ac_refine(d, s, coef);
    }
}
