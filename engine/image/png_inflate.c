/* A PNG's image data inflated as Pillow 9.4 inflates it: zlib's inflate() called by
 * Pillow's ZipDecode with one row of output room at a time, on one read of image data at
 * a time (at most 65536 bytes, within one IDAT chunk). What Pillow shows follows from
 * where inflate stops and what it checks on the way:
 * - once the last row is complete, inflate goes on in that same call through what needs
 *   no output (the rest of the symbol it is decoding, the end of a block, the next block
 *   header, the stream's end with its Adler-32 check) until it needs output or more
 *   input than that read holds; an error found there fails the image;
 * - a stream that ends (its check passing) in the call that completed a row, before the
 *   last row, leaves the other rows zero; ending anywhere else, or the data running out,
 *   is a truncated file;
 * - zlib's refusals: the header (FCHECK, method 8, window up to 32 KB, no preset
 *   dictionary), block type 3, stored lengths that do not match, code-length and Huffman
 *   tables that are over-subscribed or incomplete (an incomplete one allowed only when
 *   its longest code has one bit, and for literals/lengths and distances only), repeats
 *   past the code lengths, a missing end-of-block code, codes 286-287 and distance codes
 *   30-31, a distance beyond everything output so far (its window is 32 KB, as far as
 *   deflate reaches), the Adler-32 check.
 * stb_image's own inflate differs both ways: it checks no Adler-32 and needs the whole
 * stream to decode. The facts are zlib 1.2.13's and Pillow's ZipDecode.c's; the code is
 * this project's. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"

enum { FAST_BITS = 10, MAX_CODE = 15 };

typedef struct huff {
    uint16_t fast[1 << FAST_BITS]; /* next FAST_BITS bits -> length << 9 | symbol; 0: longer */
    uint16_t count[MAX_CODE + 1];  /* codes of each length */
    uint16_t sym[320];             /* symbols in canonical order */
} huff;

typedef struct inflater {
    const uint8_t *in;
    size_t in_len, pos;            /* pos: bits consumed */
    const size_t *piece_end;       /* Pillow's reads: where each ends, in bytes */
    size_t n_pieces, piece;        /* the read zlib is pulling from */
    uint8_t *out;
    size_t total, n;               /* bytes of rows; written so far */
    const size_t *row_end;
    size_t n_rows, row;            /* first row not complete */
    int done;                      /* the image is complete */
    int crossed;                   /* a read ended since the last row completed */
    const char *error;             /* zlib's message, or a truncation */
} inflater;

/* Up to 57 bits from pos (zeros past the end). */
static inline uint64_t peek(const inflater *z)
{
    size_t byte = z->pos >> 3;
    uint64_t v = 0;
    if (byte + 8 <= z->in_len) {
        memcpy(&v, z->in + byte, 8); /* little-endian hosts (x86-64, arm64) */
    } else {
        for (size_t i = 0; byte + i < z->in_len && i < 8; i++)
            v |= (uint64_t)z->in[byte + i] << (8 * i);
    }
    return v >> (z->pos & 7);
}

/* Whether the next nbits can be read now. After the image is complete only the read
 * zlib was pulling from counts; before, a field past a read's end starts the next one
 * (a new inflate call), and past the data's end is truncation. */
static inline int need(inflater *z, size_t nbits)
{
    size_t end = z->pos + nbits;
    if (z->done)
        return end <= z->piece_end[z->piece] * 8;
    if (end > z->in_len * 8) {
        z->error = "the image data ends before the image does (truncated)";
        return 0;
    }
    while (end > z->piece_end[z->piece] * 8) {
        z->piece++;
        z->crossed = 1;
    }
    return 1;
}

/* The next nbits (<= 32), or -1 when they cannot be read now. */
static int64_t take(inflater *z, int nbits)
{
    if (!need(z, (size_t)nbits))
        return -1;
    uint64_t v = peek(z) & ((1ull << nbits) - 1);
    z->pos += (size_t)nbits;
    return (int64_t)v;
}

/* zlib's inflate_table: 0, or -1 for an over-subscribed set, or an incomplete one where
 * it is refused (code lengths always; others unless the longest code has one bit). */
static int build(huff *h, const uint8_t *len, int n, int code_lengths)
{
    memset(h, 0, sizeof *h);
    for (int i = 0; i < n; i++)
        h->count[len[i]]++;
    h->count[0] = 0;
    int max = 0;
    for (int l = 1; l <= MAX_CODE; l++)
        if (h->count[l])
            max = l;
    if (max == 0)
        return 0; /* no codes: any symbol read is invalid */
    int left = 1;
    for (int l = 1; l <= MAX_CODE; l++) {
        left = 2 * left - h->count[l];
        if (left < 0)
            return -1;
    }
    if (left > 0 && (code_lengths || max != 1))
        return -1;
    uint16_t offs[MAX_CODE + 2];
    offs[1] = 0;
    for (int l = 1; l <= MAX_CODE; l++)
        offs[l + 1] = (uint16_t)(offs[l] + h->count[l]);
    uint16_t next[MAX_CODE + 1];
    memcpy(next, offs, sizeof next);
    int code = 0;
    uint16_t first[MAX_CODE + 1];
    for (int l = 1; l <= MAX_CODE; l++) {
        code = (code + (l > 1 ? h->count[l - 1] : 0)) << (l > 1 ? 1 : 0);
        first[l] = (uint16_t)code;
    }
    for (int s = 0; s < n; s++) {
        int l = len[s];
        if (!l)
            continue;
        int c = first[l] + (next[l] - offs[l]);
        h->sym[next[l]++] = (uint16_t)s;
        if (l <= FAST_BITS) { /* the code read LSB first: its bits reversed */
            int r = 0;
            for (int b = 0; b < l; b++)
                r |= ((c >> b) & 1) << (l - 1 - b);
            for (int k = r; k < (1 << FAST_BITS); k += 1 << l)
                h->fast[k] = (uint16_t)(l << 9 | s);
        }
    }
    return 0;
}

/* The next symbol: 1 (in *sym), 0 when its bits cannot be read now, -1 when the bits
 * are no code (a table without codes, or the unused code of a one-bit one). */
static int decode(inflater *z, const huff *h, int *sym)
{
    uint64_t v = peek(z);
    uint16_t e = h->fast[v & ((1u << FAST_BITS) - 1)];
    int l = e >> 9, s = e & 511;
    if (!e) { /* canonical decoding, one bit at a time */
        int code = 0, first = 0, index = 0;
        for (l = 1; l <= MAX_CODE; l++) {
            code |= (int)(v >> (l - 1)) & 1;
            int count = h->count[l];
            if (code - first < count) {
                s = h->sym[index + code - first];
                break;
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        if (l > MAX_CODE) { /* zlib's invalid-code entries take one bit */
            return need(z, 1) ? -1 : 0;
        }
    }
    if (!need(z, (size_t)l))
        return 0;
    z->pos += (size_t)l;
    *sym = s;
    return 1;
}

/* Whether output may go on at z->n: a new row needs a new inflate call, which Pillow
 * makes only while input is left (zlib has pulled ceil(pos / 8) bytes); with all of it
 * pulled, what zlib holds (bits, the rest of a copy) never comes out. */
static int row_may_start(inflater *z)
{
    if (z->row == 0 || z->n != z->row_end[z->row - 1] || (z->pos + 7) / 8 < z->in_len)
        return 1;
    z->error = "the image data ends before the image does (truncated)";
    return 0;
}

/* Output reached a row's end: the next call's room is the next row. */
static void rows_advance(inflater *z)
{
    while (z->row < z->n_rows && z->n >= z->row_end[z->row]) {
        z->row++;
        z->crossed = 0;
    }
    z->done = z->n >= z->total;
}

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                       33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Outcome of a step: go on, stop (Pillow's decoding is over: the image is complete and
 * inflate needs output or input), or fail (z->error). */
enum { GO = 0, STOP = 1, FAIL = -1 };

static int fail(inflater *z, const char *msg)
{
    z->error = msg;
    return FAIL;
}

/* Not readable now: after the image, inflate waits for input (Pillow is done); before
 * it, the data ended. */
static int unreadable(inflater *z)
{
    return z->done ? STOP : FAIL;
}

/* Literals and copies whose codes are all in the fast tables, while they are far from
 * the read's end and inside the current row (so no field needs a check of its own),
 * with the state in locals (a byte stored through out may alias *z, so the compiler
 * would reload every field after each). Returns 1 after a symbol that completed a row
 * (call again), 0 before the first symbol the general path must take (a code longer
 * than the fast tables, the block's end, a copy reaching past the row or before the
 * data, the read's last 16 bytes), consuming none of it. */
static int fast_symbols(inflater *z, const huff *lit, const huff *dist)
{
    if (z->done)
        return 0;
    const uint8_t *in = z->in;
    uint8_t *out = z->out;
    size_t pos = z->pos, n = z->n;
    const size_t pos_end = z->piece_end[z->piece] * 8, row_end = z->row_end[z->row];
    const uint32_t mask = (1u << FAST_BITS) - 1;
    while (pos + 128 <= pos_end && n < row_end) {
        uint64_t v; /* 57 bits: a copy takes at most 15 + 5 + 15 + 13 */
        memcpy(&v, in + (pos >> 3), 8); /* little-endian hosts (x86-64, arm64) */
        v >>= pos & 7;
        uint16_t e = lit->fast[v & mask];
        int l = e >> 9, s = e & 511;
        if (!e || s == 256 || s > 285)
            break;
        if (s < 256) { /* literals, as many as the bits read hold and the row has room for */
            int used = 0;
            do {
                out[n++] = (uint8_t)s;
                used += l;
                e = lit->fast[(v >> used) & mask];
                l = e >> 9;
                s = e & 511;
            } while (n < row_end && e && s < 256 && used <= 57 - FAST_BITS - 1 &&
                     used + l <= 57 - FAST_BITS);
            pos += (size_t)used;
        } else {
            int eb = len_extra[s - 257];
            size_t length = len_base[s - 257] + (size_t)((v >> l) & ((1u << eb) - 1));
            uint64_t v2 = v >> (l + eb);
            uint16_t e2 = dist->fast[v2 & mask];
            int dl = e2 >> 9, d = e2 & 511;
            if (!e2 || d > 29)
                break;
            int deb = dist_extra[d];
            size_t distance = dist_base[d] + (size_t)((v2 >> dl) & ((1u << deb) - 1));
            if (distance > n || length > row_end - n)
                break;
            pos += (size_t)(l + eb + dl + deb);
            uint8_t *o = out + n;
            if (distance >= length) {
                memcpy(o, o - distance, length);
            } else { /* overlapping: a run, byte by byte (o - distance: no wrapped index) */
                const uint8_t *from = o - distance;
                for (size_t i = 0; i < length; i++)
                    o[i] = from[i];
            }
            n += length;
        }
    }
    z->pos = pos;
    z->n = n;
    if (n != row_end)
        return 0;
    rows_advance(z);
    return 1;
}

/* The symbols of one Huffman block. */
static int codes(inflater *z, const huff *lit, const huff *dist)
{
    for (;;) {
        if (fast_symbols(z, lit, dist))
            continue;
        int s, rc = decode(z, lit, &s);
        if (rc <= 0)
            return rc < 0 ? fail(z, "invalid literal/length code") : unreadable(z);
        if (s < 256) {
            if (z->done)
                return STOP; /* needs output */
            if (!row_may_start(z))
                return FAIL;
            z->out[z->n++] = (uint8_t)s;
            if (z->n == z->row_end[z->row])
                rows_advance(z);
            continue;
        }
        if (s == 256)
            return GO;
        if (s > 285)
            return fail(z, "invalid literal/length code");
        int64_t e = take(z, len_extra[s - 257]);
        if (e < 0)
            return unreadable(z);
        size_t length = len_base[s - 257] + (size_t)e;
        int d;
        rc = decode(z, dist, &d);
        if (rc <= 0)
            return rc < 0 ? fail(z, "invalid distance code") : unreadable(z);
        if (d > 29)
            return fail(z, "invalid distance code");
        e = take(z, dist_extra[d]);
        if (e < 0)
            return unreadable(z);
        size_t distance = dist_base[d] + (size_t)e;
        if (z->done)
            return STOP; /* the copy needs output: zlib leaves before checking it */
        if (distance > z->n)
            return fail(z, "invalid distance too far back");
        while (length && !z->done) {
            if (!row_may_start(z))
                return FAIL;
            size_t room = z->row_end[z->row] - z->n, k = length < room ? length : room;
            for (size_t i = 0; i < k; i++, z->n++)
                z->out[z->n] = z->out[z->n - distance];
            length -= k;
            if (z->n == z->row_end[z->row])
                rows_advance(z);
        }
        if (length)
            return STOP; /* the rest of the copy waits for room that never comes */
    }
}

/* A stored block: LEN, NLEN, then LEN bytes as they are. */
static int stored(inflater *z)
{
    z->pos = (z->pos + 7) & ~(size_t)7;
    int64_t lens = take(z, 32);
    if (lens < 0)
        return unreadable(z);
    size_t length = (size_t)lens & 0xffff;
    if (length != (((size_t)lens >> 16) ^ 0xffff))
        return fail(z, "invalid stored block lengths");
    while (length) {
        if (z->done)
            return STOP;
        if (!need(z, 8))
            return unreadable(z);
        size_t at = z->pos >> 3, in_room = z->piece_end[z->piece] - at;
        size_t room = z->row_end[z->row] - z->n;
        size_t k = length < in_room ? length : in_room;
        k = k < room ? k : room;
        memcpy(z->out + z->n, z->in + at, k);
        z->n += k;
        z->pos += 8 * k;
        length -= k;
        if (z->n == z->row_end[z->row])
            rows_advance(z);
    }
    return GO;
}

/* The code lengths of a dynamic block, and its two tables. */
static int dynamic(inflater *z, huff *lit, huff *dist)
{
    int64_t hdr = take(z, 14);
    if (hdr < 0)
        return unreadable(z);
    int nlen = 257 + (int)(hdr & 31), ndist = 1 + (int)((hdr >> 5) & 31), ncode = 4 + (int)(hdr >> 10);
    if (nlen > 286 || ndist > 30)
        return fail(z, "too many length or distance symbols");
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint8_t lens[320] = {0};
    for (int i = 0; i < ncode; i++) {
        int64_t l = take(z, 3);
        if (l < 0)
            return unreadable(z);
        lens[order[i]] = (uint8_t)l;
    }
    huff cl;
    if (build(&cl, lens, 19, 1))
        return fail(z, "invalid code lengths set");
    memset(lens, 0, sizeof lens);
    for (int have = 0; have < nlen + ndist;) {
        int s, rc = decode(z, &cl, &s);
        if (rc == 0)
            return unreadable(z);
        if (rc < 0) { /* zlib reads its invalid-code entry here: one bit, a length of 0 */
            z->pos += 1;
            s = 0;
        }
        if (s < 16) {
            lens[have++] = (uint8_t)s;
            continue;
        }
        if (s == 16 && have == 0)
            return fail(z, "invalid bit length repeat");
        static const int extra[3] = {2, 3, 7}, base[3] = {3, 3, 11};
        int64_t e = take(z, extra[s - 16]);
        if (e < 0)
            return unreadable(z);
        int copy = base[s - 16] + (int)e;
        uint8_t v = s == 16 ? lens[have - 1] : 0;
        if (have + copy > nlen + ndist)
            return fail(z, "invalid bit length repeat");
        while (copy--)
            lens[have++] = v;
    }
    if (lens[256] == 0)
        return fail(z, "invalid code -- missing end-of-block");
    if (build(lit, lens, nlen, 0))
        return fail(z, "invalid literal/lengths set");
    if (build(dist, lens + nlen, ndist, 0))
        return fail(z, "invalid distances set");
    return GO;
}

static uint32_t adler32(const uint8_t *p, size_t n)
{
    uint32_t a = 1, b = 0;
    while (n) {
        size_t k = n < 5552 ? n : 5552; /* the most bytes before b can overflow */
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    return b << 16 | a;
}

/* The blocks and the trailer, up to where Pillow's decoding ends. */
static int run(inflater *z)
{
    int64_t hdr = take(z, 16);
    if (hdr < 0)
        return FAIL;
    int cmf = (int)(hdr & 255), flg = (int)(hdr >> 8);
    if ((cmf * 256 + flg) % 31)
        return fail(z, "incorrect header check");
    if ((cmf & 15) != 8)
        return fail(z, "unknown compression method");
    if ((cmf >> 4) + 8 > 15)
        return fail(z, "invalid window size");
    if (flg & 0x20) /* zlib asks for the dictionary, Pillow has none: it reads on, then
                     * finds the file truncated */
        return fail(z, "the image data needs a preset dictionary");
    huff *lit = malloc(2 * sizeof *lit); /* ~1.6 KB each: the heap, not the stack */
    if (!lit)
        return fail(z, "out of memory");
    huff *dist = lit + 1;
    int rc = GO;
    for (int last = 0; !last && rc == GO;) {
        int64_t bh = take(z, 3);
        if (bh < 0) {
            rc = unreadable(z);
            break;
        }
        last = (int)(bh & 1);
        switch (bh >> 1) {
        case 0: rc = stored(z); break;
        case 1: {
            uint8_t l[320];
            memset(l, 8, 144);
            memset(l + 144, 9, 112);
            memset(l + 256, 7, 24);
            memset(l + 280, 8, 8);
            build(lit, l, 288, 0);
            memset(l, 5, 32);
            build(dist, l, 32, 0);
            rc = codes(z, lit, dist);
            break;
        }
        case 2:
            rc = dynamic(z, lit, dist);
            if (rc == GO)
                rc = codes(z, lit, dist);
            break;
        default: rc = fail(z, "invalid block type");
        }
    }
    free(lit);
    if (rc != GO)
        return rc;
    z->pos = (z->pos + 7) & ~(size_t)7;
    int64_t check = take(z, 32);
    if (check < 0)
        return unreadable(z);
    uint32_t want = (uint32_t)check; /* big-endian in the stream */
    want = want >> 24 | (want >> 8 & 0xff00) | (want << 8 & 0xff0000) | want << 24;
    if (want != adler32(z->out, z->n))
        return fail(z, "incorrect data check");
    if (z->done)
        return STOP;
    /* the stream's end: Pillow stops after a row completed in this same call */
    if (z->row > 0 && z->n == z->row_end[z->row - 1] && !z->crossed)
        return STOP;
    return fail(z, "the image data ends before the image does (truncated)");
}

int vp_png_inflate(const uint8_t *in, size_t in_len, const size_t *piece_end, size_t n_pieces,
                   const size_t *row_end, size_t n_rows, uint8_t *out, vp_error *err)
{
    if (!n_rows || !n_pieces)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG has no image data");
    inflater z = {.in = in, .in_len = in_len, .piece_end = piece_end, .n_pieces = n_pieces,
                  .out = out, .total = row_end[n_rows - 1], .row_end = row_end,
                  .n_rows = n_rows};
    if (run(&z) == STOP) {
        memset(out + z.n, 0, z.total - z.n); /* rows after a stream that ended early */
        return 0;
    }
    if (z.error && !strcmp(z.error, "out of memory"))
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory inflating the PNG image data");
    return vp_fail(err, VP_ERR_UNDECODABLE, "image", "PNG image data does not inflate: %s",
                   z.error ? z.error : "the image data ends before the image does (truncated)");
}
