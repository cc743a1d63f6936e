/* JPEG pixel stages with libjpeg-turbo's arithmetic (see jpeg_pixels.h). The integer
 * recipes (constants, rounding points, edge rules) are those of the JPEG literature and
 * libjpeg's documented defaults: accurate integer IDCT, fancy upsampling, 16-bit
 * fixed-point YCbCr; Pillow's inverted-CMYK convention and its CMYK -> RGB formula. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/jpeg_pixels.h"

/* Small vectors (GCC/clang vector extensions: SSE registers on x86-64, plain C
 * semantics per lane). The upsampling filters' sums stay under 4,096, so 16-bit lanes. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "jpeg_pixels.c reads the low byte of 32-bit lanes at byte offsets 0, 4, 8, 12"
#endif
typedef int32_t lanes4 __attribute__((vector_size(16)));
typedef uint32_t ulanes4 __attribute__((vector_size(16)));
typedef int16_t shorts4 __attribute__((vector_size(8)));
typedef int16_t shorts8 __attribute__((vector_size(16)));
typedef uint8_t bytes4 __attribute__((vector_size(4)));
typedef uint8_t bytes8 __attribute__((vector_size(8)));
typedef uint8_t bytes16 __attribute__((vector_size(16)));

/* ---- IDCT (Loeffler-Ligtenberg-Moschytz, 13-bit constants) ---- */

enum { CONST_BITS = 13, PASS1_BITS = 2 };
#define FIX13(x) ((int32_t)((x) * 8192.0 + 0.5))

/* The 1-D 8-point inverse DCT of d[0..7] into r[0..7], each output times 2^CONST_BITS
 * and not yet rounded, in the order of operations of libjpeg's C code, on four 32-bit
 * lanes (four columns or rows of a block at a time): see vp_jpeg_idct_islow_fast. */
static inline __attribute__((always_inline)) void idct8_lanes(const lanes4 *d, lanes4 *r)
{
    lanes4 z1 = (d[2] + d[6]) * FIX13(0.541196100);
    lanes4 t2 = z1 + d[6] * -FIX13(1.847759065);
    lanes4 t3 = z1 + d[2] * FIX13(0.765366865);
    lanes4 t0 = (d[0] + d[4]) * (1 << CONST_BITS);
    lanes4 t1 = (d[0] - d[4]) * (1 << CONST_BITS);
    lanes4 e10 = t0 + t3, e13 = t0 - t3, e11 = t1 + t2, e12 = t1 - t2;
    lanes4 o0 = d[7], o1 = d[5], o2 = d[3], o3 = d[1];
    lanes4 y1 = o0 + o3, y2 = o1 + o2, y3 = o0 + o2, y4 = o1 + o3;
    lanes4 y5 = (y3 + y4) * FIX13(1.175875602);
    o0 = o0 * FIX13(0.298631336);
    o1 = o1 * FIX13(2.053119869);
    o2 = o2 * FIX13(3.072711026);
    o3 = o3 * FIX13(1.501321110);
    y1 = y1 * -FIX13(0.899976223);
    y2 = y2 * -FIX13(2.562915447);
    y3 = y3 * -FIX13(1.961570560) + y5;
    y4 = y4 * -FIX13(0.390180644) + y5;
    o0 += y1 + y3;
    o1 += y2 + y4;
    o2 += y2 + y3;
    o3 += y1 + y4;
    r[0] = e10 + o3;
    r[7] = e10 - o3;
    r[1] = e11 + o2;
    r[6] = e11 - o2;
    r[2] = e12 + o1;
    r[5] = e12 - o1;
    r[3] = e13 + o0;
    r[4] = e13 - o0;
}

/* ---- the IDCT as Pillow runs it on x86-64 ----
 * libjpeg-turbo's SIMD IDCT (SSE2 / AVX2) computes the same products in a different
 * form: 16-bit lanes for the sums of two inputs (in0 +- in4, in7 + in3, in5 + in1),
 * multiply-adds into 32 bits, each pass's output saturated to 16 bits, the final samples
 * saturated to -128..127 (where its C code would wrap an index modulo 1024), and a
 * block whose quantised rows 1..7 are zero taken as row 0 shifted left 2 in 16 bits. On the
 * coefficients of real images both forms give the same bytes; on corrupt data they
 * part, and this model is the one Pillow's bytes come from. */

static int16_t wrap16(int32_t x)
{
    return (int16_t)(uint16_t)(uint32_t)x;
}

static int16_t sat16(int32_t x)
{
    return x > 32767 ? 32767 : x < -32768 ? -32768 : (int16_t)x;
}

/* (x + 2^(shift-1)) >> shift in wrapping 32-bit arithmetic, saturated to 16 bits. */
static int16_t descale16(uint32_t x, int shift)
{
    return sat16((int32_t)(x + (1u << (shift - 1))) >> shift);
}

static void idct8_model(const int16_t in[8], int shift, int16_t out[8])
{
    const int32_t c054 = FIX13(0.541196100), c076 = FIX13(0.765366865), c184 = FIX13(1.847759065);
    const int32_t c117 = FIX13(1.175875602), c196 = FIX13(1.961570560), c039 = FIX13(0.390180644);
    const int32_t c029 = FIX13(0.298631336), c089 = FIX13(0.899976223), c205 = FIX13(2.053119869);
    const int32_t c256 = FIX13(2.562915447), c307 = FIX13(3.072711026), c150 = FIX13(1.501321110);
    /* even part */
    uint32_t t3 = (uint32_t)(in[2] * (c054 + c076) + in[6] * c054);
    uint32_t t2 = (uint32_t)(in[2] * c054 + in[6] * (c054 - c184));
    uint32_t t0 = (uint32_t)(wrap16(in[0] + in[4]) * (1 << CONST_BITS));
    uint32_t t1 = (uint32_t)(wrap16(in[0] + wrap16(-in[4])) * (1 << CONST_BITS));
    uint32_t e10 = t0 + t3, e13 = t0 - t3, e11 = t1 + t2, e12 = t1 - t2;
    /* odd part */
    int32_t z3 = wrap16(in[7] + in[3]), z4 = wrap16(in[5] + in[1]);
    uint32_t z3p = (uint32_t)(z3 * (c117 - c196) + z4 * c117);
    uint32_t z4p = (uint32_t)(z3 * c117 + z4 * (c117 - c039));
    uint32_t o0 = (uint32_t)(in[7] * (c029 - c089) + in[1] * -c089) + z3p;
    uint32_t o1 = (uint32_t)(in[5] * (c205 - c256) + in[3] * -c256) + z4p;
    uint32_t o2 = (uint32_t)(in[5] * -c256 + in[3] * (c307 - c256)) + z3p;
    uint32_t o3 = (uint32_t)(in[7] * -c089 + in[1] * (c150 - c089)) + z4p;
    out[0] = descale16(e10 + o3, shift);
    out[7] = descale16(e10 - o3, shift);
    out[1] = descale16(e11 + o2, shift);
    out[6] = descale16(e11 - o2, shift);
    out[2] = descale16(e12 + o1, shift);
    out[5] = descale16(e12 - o1, shift);
    out[3] = descale16(e13 + o0, shift);
    out[4] = descale16(e13 - o0, shift);
}

enum { PASS2_SHIFT = CONST_BITS + PASS1_BITS + 3 };

void vp_jpeg_idct_islow_model(uint8_t *out, int out_stride, const short coef[64], int rows_zero)
{
    int16_t ws[64], in[8], r[8];
    for (int c = 0; c < 8; c++) {
        if (rows_zero) {
            for (int k = 0; k < 8; k++)
                ws[8 * k + c] = wrap16(coef[c] * 4);
            continue;
        }
        for (int k = 0; k < 8; k++)
            in[k] = coef[8 * k + c];
        idct8_model(in, CONST_BITS - PASS1_BITS, r);
        for (int k = 0; k < 8; k++)
            ws[8 * k + c] = r[k];
    }
    for (int row = 0; row < 8; row++) {
        idct8_model(ws + 8 * row, PASS2_SHIFT, r);
        uint8_t *o = out + (ptrdiff_t)row * out_stride;
        for (int k = 0; k < 8; k++)
            o[k] = (uint8_t)((r[k] < -128 ? -128 : r[k] > 127 ? 127 : r[k]) + 128);
    }
}

/* 4x4 transpose: t[j][i] = a[i][j]. */
static inline __attribute__((always_inline)) void transpose4(const lanes4 *a, lanes4 *t)
{
    lanes4 u0 = __builtin_shufflevector(a[0], a[1], 0, 4, 1, 5);
    lanes4 u1 = __builtin_shufflevector(a[0], a[1], 2, 6, 3, 7);
    lanes4 u2 = __builtin_shufflevector(a[2], a[3], 0, 4, 1, 5);
    lanes4 u3 = __builtin_shufflevector(a[2], a[3], 2, 6, 3, 7);
    t[0] = __builtin_shufflevector(u0, u2, 0, 1, 4, 5);
    t[1] = __builtin_shufflevector(u0, u2, 2, 3, 6, 7);
    t[2] = __builtin_shufflevector(u1, u3, 0, 1, 4, 5);
    t[3] = __builtin_shufflevector(u1, u3, 2, 3, 6, 7);
}

/* An 8x8 block held as two halves of four lanes, lo[i] = a[i][0..3], hi[i] = a[i][4..7],
 * transposed into the same form. */
static inline __attribute__((always_inline)) void transpose8(const lanes4 lo[8],
                                                             const lanes4 hi[8], lanes4 tlo[8],
                                                             lanes4 thi[8])
{
    transpose4(lo, tlo);         /* rows 0-3, columns 0-3 -> rows 0-3 of columns 0-3 */
    transpose4(lo + 4, thi);     /* rows 4-7, columns 0-3 */
    transpose4(hi, tlo + 4);     /* rows 0-3, columns 4-7 */
    transpose4(hi + 4, thi + 4); /* rows 4-7, columns 4-7 */
}

/* Four lanes of final samples: + 128, clamped to 0..255 (saturating, as the SIMD code). */
static inline __attribute__((always_inline)) bytes4 clamp_sample4(lanes4 x)
{
    lanes4 m = x + 128;
    m &= ~(m >> 31);      /* negative -> 0 */
    m |= (255 - m) >> 31; /* above 255 -> all ones, 255 in the low byte */
    return __builtin_convertvector(m & 255, bytes4);
}

/* Whether any lane lies outside lo..hi. */
static inline __attribute__((always_inline)) int outside(lanes4 x, int32_t lo, int32_t hi)
{
    lanes4 off = (ulanes4)(x - lo) > (uint32_t)(hi - lo);
    return (off[0] | off[1] | off[2] | off[3]) != 0;
}

/* The 32-bit lanes compute the C form of the IDCT, which gives the SIMD model's bytes
 * while nothing wraps or saturates in 16 bits there: inputs within +-8192 (their 16-bit
 * sums, and row 0 shifted left 2, fit) and first-pass outputs within +-16384 (they fit
 * 16 bits, and so do their sums). The final samples saturate in both. Returns -1,
 * writing nothing, for a block outside that. */
int vp_jpeg_idct_islow_fast(uint8_t *out, int out_stride, const short coef[64])
{
    /* column pass: lane c of lo / hi is column c / c + 4 */
    lanes4 lo[8], hi[8], rlo[8], rhi[8];
    int off = 0;
    for (int k = 0; k < 8; k++) {
        shorts4 a, b;
        memcpy(&a, coef + 8 * k, sizeof a);
        memcpy(&b, coef + 8 * k + 4, sizeof b);
        lo[k] = __builtin_convertvector(a, lanes4);
        hi[k] = __builtin_convertvector(b, lanes4);
        off |= outside(lo[k], -8192, 8191) | outside(hi[k], -8192, 8191);
    }
    if (off)
        return -1;
    idct8_lanes(lo, rlo);
    idct8_lanes(hi, rhi);
    for (int k = 0; k < 8; k++) {
        rlo[k] = (rlo[k] + (1 << (CONST_BITS - PASS1_BITS - 1))) >> (CONST_BITS - PASS1_BITS);
        rhi[k] = (rhi[k] + (1 << (CONST_BITS - PASS1_BITS - 1))) >> (CONST_BITS - PASS1_BITS);
        off |= outside(rlo[k], -16384, 16383) | outside(rhi[k], -16384, 16383);
    }
    if (off)
        return -1;
    /* row pass: lane k of lo / hi is row k / k + 4; no lane can overflow now */
    transpose8(rlo, rhi, lo, hi);
    idct8_lanes(lo, rlo);
    idct8_lanes(hi, rhi);
    for (int j = 0; j < 8; j++) {
        rlo[j] = (rlo[j] + (1 << (PASS2_SHIFT - 1))) >> PASS2_SHIFT;
        rhi[j] = (rhi[j] + (1 << (PASS2_SHIFT - 1))) >> PASS2_SHIFT;
    }
    /* back to rows of pixels */
    transpose8(rlo, rhi, lo, hi);
    for (int k = 0; k < 8; k++) {
        bytes4 a = clamp_sample4(lo[k]), b = clamp_sample4(hi[k]);
        memcpy(out + (ptrdiff_t)k * out_stride, &a, sizeof a);
        memcpy(out + (ptrdiff_t)k * out_stride + 4, &b, sizeof b);
    }
    return 0;
}

void vp_jpeg_idct_islow(uint8_t *out, int out_stride, const short coef[64], const uint16_t quant[64])
{
    /* the SIMD code multiplies in 16 bits, and tests rows 1..7 before multiplying */
    short deq[64];
    int rows_zero = 1;
    for (int i = 0; i < 64; i++) {
        deq[i] = (short)(uint16_t)((uint32_t)coef[i] * quant[i]);
        rows_zero &= i < 8 || coef[i] == 0;
    }
    if (vp_jpeg_idct_islow_fast(out, out_stride, deq))
        vp_jpeg_idct_islow_model(out, out_stride, deq, rows_zero);
}

/* ---- colour space ---- */

vp_jpeg_color vp_jpeg_color_space(int n_comp, int jfif, int adobe_transform, const int *ids)
{
    if (n_comp == 1)
        return VP_JPEG_GREY;
    if (n_comp == 4)
        return adobe_transform < 0 || adobe_transform == 0 ? VP_JPEG_CMYK : VP_JPEG_YCCK;
    if (jfif)
        return VP_JPEG_YCC;
    if (adobe_transform >= 0)
        return adobe_transform == 0 ? VP_JPEG_RGB : VP_JPEG_YCC;
    return ids[0] == 'R' && ids[1] == 'G' && ids[2] == 'B' ? VP_JPEG_RGB : VP_JPEG_YCC;
}

/* ---- upsampling ---- */

static const uint8_t *plane_row(const vp_jpeg_plane *p, int64_t y)
{
    if (y < 0)
        y = 0;
    if (y >= (int64_t)p->height)
        y = (int64_t)p->height - 1;
    return p->data + (size_t)y * p->stride;
}


static inline __attribute__((always_inline)) shorts8 load8(const uint8_t *p)
{
    bytes8 b;
    memcpy(&b, p, sizeof b);
    return __builtin_convertvector(b, shorts8);
}

/* Stores even[0], odd[0], even[1], odd[1], ... as 16 bytes. */
static inline __attribute__((always_inline)) void store_pairs(uint8_t *out, shorts8 even,
                                                              shorts8 odd)
{
    bytes8 e = __builtin_convertvector(even, bytes8), o = __builtin_convertvector(odd, bytes8);
    bytes16 v = __builtin_shufflevector(e, o, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    memcpy(out, &v, sizeof v);
}

/* Horizontal 2x of one row with the triangle filter (3/4 nearest, 1/4 next; the two
 * outputs of a sample rounded with +1 and +2, the edges copied). */
static void fancy_h2(const uint8_t *in, uint32_t w, uint8_t *out)
{
    out[0] = in[0];
    out[1] = (uint8_t)((in[0] * 3 + in[1] + 2) >> 2);
    uint32_t i = 1;
    for (; i + 9 <= w; i += 8) { /* eight samples whose both neighbours exist */
        shorts8 t = load8(in + i) * 3;
        store_pairs(out + 2 * i, (t + load8(in + i - 1) + 1) >> 2, (t + load8(in + i + 1) + 2) >> 2);
    }
    for (; i + 1 < w; i++) {
        int t = in[i] * 3;
        out[2 * i] = (uint8_t)((t + in[i - 1] + 1) >> 2);
        out[2 * i + 1] = (uint8_t)((t + in[i + 1] + 2) >> 2);
    }
    out[2 * w - 2] = (uint8_t)((in[w - 1] * 3 + in[w - 2] + 1) >> 2);
    out[2 * w - 1] = in[w - 1];
}

/* 2x2 with the triangle filter in both directions: column sums 3 near + far, then
 * 3 this + neighbour over 16, rounded +8 / +7; the edge columns weigh their own sum 4x. */
static void fancy_h2v2(const uint8_t *near, const uint8_t *far, uint32_t w, uint8_t *out)
{
    int last = near[0] * 3 + far[0], this = last;
    int next = near[1] * 3 + far[1];
    out[0] = (uint8_t)((this * 4 + 8) >> 4);
    out[1] = (uint8_t)((this * 3 + next + 7) >> 4);
    uint32_t i = 1;
    for (; i + 9 <= w; i += 8) {
        shorts8 c = (load8(near + i) * 3 + load8(far + i)) * 3;
        shorts8 prev = load8(near + i - 1) * 3 + load8(far + i - 1);
        shorts8 nxt = load8(near + i + 1) * 3 + load8(far + i + 1);
        store_pairs(out + 2 * i, (c + prev + 8) >> 4, (c + nxt + 7) >> 4);
    }
    this = near[i - 1] * 3 + far[i - 1];
    next = near[i] * 3 + far[i];
    for (; i + 1 < w; i++) {
        last = this;
        this = next;
        next = near[i + 1] * 3 + far[i + 1];
        out[2 * i] = (uint8_t)((this * 3 + last + 8) >> 4);
        out[2 * i + 1] = (uint8_t)((this * 3 + next + 7) >> 4);
    }
    last = this;
    this = next;
    out[2 * w - 2] = (uint8_t)((this * 3 + last + 8) >> 4);
    out[2 * w - 1] = (uint8_t)((this * 4 + 7) >> 4);
}

/* Output row y of one component at full resolution into out (room for the upsampled
 * width rounded up to the factor), as libjpeg's upsampler picks per component: a copy,
 * the fancy 2x1, 2x2 (components wider than 2 samples) and 1x2 filters, otherwise
 * replication. Rows above the first and below the last repeat the edge row. */
static const uint8_t *upsample_row(const vp_jpeg_plane *p, int hx, int vx, uint32_t y,
                                   uint8_t *out)
{
    uint32_t iy = y / (uint32_t)vx;
    const uint8_t *near = plane_row(p, iy);
    if (hx == 1 && vx == 1)
        return near;
    if (hx == 2 && vx == 1 && p->width > 2) {
        fancy_h2(near, p->width, out);
        return out;
    }
    const uint8_t *far = plane_row(p, (y & 1) ? (int64_t)iy + 1 : (int64_t)iy - 1);
    if (hx == 2 && vx == 2 && p->width > 2) {
        fancy_h2v2(near, far, p->width, out);
        return out;
    }
    if (hx == 1 && vx == 2) {
        int bias = (y & 1) ? 2 : 1;
        for (uint32_t i = 0; i < p->width; i++)
            out[i] = (uint8_t)((near[i] * 3 + far[i] + bias) >> 2);
        return out;
    }
    for (uint32_t i = 0; i < p->width; i++)
        for (int k = 0; k < hx; k++)
            out[(size_t)i * (size_t)hx + (size_t)k] = near[i];
    return out;
}

/* ---- colour conversion ---- */

static uint8_t clamp255(int v)
{
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* YCbCr -> RGB in 16-bit fixed point, rounded as libjpeg's tables round:
 * R = Y + 1.402 Cr, G = Y - 0.34414 Cb - 0.71414 Cr, B = Y + 1.772 Cb. */
#define FIX16(x) ((int32_t)((x) * 65536.0 + 0.5))
static void ycc_to_rgb(int y, int cb, int cr, int rgb[3])
{
    cb -= 128;
    cr -= 128;
    rgb[0] = y + ((FIX16(1.40200) * cr + 32768) >> 16);
    rgb[1] = y + ((-FIX16(0.34414) * cb + 32768 - FIX16(0.71414) * cr) >> 16);
    rgb[2] = y + ((FIX16(1.77200) * cb + 32768) >> 16);
}

/* Pillow's CMYK -> RGB of 255 - the stored (Adobe-inverted) values:
 * channel = (255 - k) - (c (255 - k) / 255, rounded its way). */
static uint8_t cmyk_channel(int c, int k)
{
    int nk = 255 - k;
    int t = c * nk + 128;
    return clamp255(nk - (((t >> 8) + t) >> 8));
}


static inline __attribute__((always_inline)) lanes4 load4(const uint8_t *p)
{
    bytes4 b;
    memcpy(&b, p, sizeof b);
    return __builtin_convertvector(b, lanes4);
}

/* Clamped to 0..255, as the low byte of each lane. */
static inline __attribute__((always_inline)) bytes16 clamp4(lanes4 v)
{
    v &= ~(v >> 31);      /* negative -> 0 */
    v |= (255 - v) >> 31; /* above 255 -> all ones, 255 in the low byte */
    return (bytes16)v;
}

/* ycc_to_rgb on four pixels, written as 12 interleaved bytes. */
static void ycc_to_rgb4(const uint8_t *y, const uint8_t *cb, const uint8_t *cr, uint8_t *out)
{
    lanes4 yy = load4(y), b = load4(cb) - 128, r = load4(cr) - 128;
    bytes16 R = clamp4(yy + ((FIX16(1.40200) * r + 32768) >> 16));
    bytes16 G = clamp4(yy + ((-FIX16(0.34414) * b + 32768 - FIX16(0.71414) * r) >> 16));
    bytes16 B = clamp4(yy + ((FIX16(1.77200) * b + 32768) >> 16));
    /* the low byte of each lane (little-endian x86), interleaved R G B */
    bytes16 rg = __builtin_shufflevector(R, G, 0, 16, 4, 20, 8, 24, 12, 28, 0, 0, 0, 0, 0, 0, 0, 0);
    bytes16 v = __builtin_shufflevector(rg, B, 0, 1, 16, 2, 3, 20, 4, 5, 24, 6, 7, 28, 0, 0, 0, 0);
    memcpy(out, &v, 12);
}

static void convert_row(vp_jpeg_color color, const uint8_t *const *row, uint32_t width,
                        uint8_t *out)
{
    int rgb[3];
    uint32_t x = 0;
    if (color == VP_JPEG_YCC)
        for (; x + 4 <= width; x += 4, out += 12)
            ycc_to_rgb4(row[0] + x, row[1] + x, row[2] + x, out);
    for (; x < width; x++, out += 3) {
        switch (color) {
        case VP_JPEG_GREY:
            out[0] = out[1] = out[2] = row[0][x];
            break;
        case VP_JPEG_RGB:
            out[0] = row[0][x];
            out[1] = row[1][x];
            out[2] = row[2][x];
            break;
        case VP_JPEG_YCC:
            ycc_to_rgb(row[0][x], row[1][x], row[2][x], rgb);
            for (int c = 0; c < 3; c++)
                out[c] = clamp255(rgb[c]);
            break;
        case VP_JPEG_CMYK:
            for (int c = 0; c < 3; c++)
                out[c] = cmyk_channel(255 - row[c][x], 255 - row[3][x]);
            break;
        case VP_JPEG_YCCK:
            /* libjpeg turns YCCK into stored CMYK as 255 - the YCbCr result (clamped),
             * which Pillow inverts back. */
            ycc_to_rgb(row[0][x], row[1][x], row[2][x], rgb);
            for (int c = 0; c < 3; c++)
                out[c] = cmyk_channel(clamp255(rgb[c]), 255 - row[3][x]);
            break;
        }
    }
}

int vp_jpeg_planes_to_rgb(const vp_jpeg_plane *planes, int n_comp, vp_jpeg_color color,
                          uint32_t width, uint32_t height, uint8_t *rgb, vp_error *err)
{
    int hmax = 1, vmax = 1;
    for (int c = 0; c < n_comp; c++) {
        hmax = planes[c].h > hmax ? planes[c].h : hmax;
        vmax = planes[c].v > vmax ? planes[c].v : vmax;
    }
    /* one row buffer per component: the widest upsampled row is width rounded up to
     * the factor (at most 4 more samples) */
    size_t row_bytes = (size_t)width + 8;
    uint8_t *bufs = malloc(row_bytes * (size_t)n_comp);
    if (!bufs)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for JPEG rows");
    const uint8_t *rows[4];
    for (uint32_t y = 0; y < height; y++) {
        for (int c = 0; c < n_comp; c++)
            rows[c] = upsample_row(&planes[c], hmax / planes[c].h, vmax / planes[c].v, y,
                                   bufs + row_bytes * (size_t)c);
        convert_row(color, rows, width, rgb + (size_t)y * width * 3);
    }
    free(bufs);
    return 0;
}
