#include "proto/base64.h"

#include <stdlib.h>

/* value + 1 of each base64 character (standard and URL-safe alphabets), 0 = not one */
static const unsigned char B64[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['-'] = 63,
    ['/'] = 64, ['_'] = 64,
};

size_t vp_base64_decoded_max(size_t len) { return len / 4 * 3 + 3; }

int vp_base64_decode(const char *s, size_t len, uint8_t *out, size_t *out_len, size_t *bad_offset)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0, pad = 0, i = 0;
    while (i < len) {
        if (bits == 0 && pad == 0) { /* fast path: whole groups of 4 plain characters */
            while (i + 4 <= len) {
                unsigned a = B64[u[i]], b = B64[u[i + 1]], c = B64[u[i + 2]], d = B64[u[i + 3]];
                if (!a || !b || !c || !d)
                    break;
                uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
                out[n] = (uint8_t)(v >> 16);
                out[n + 1] = (uint8_t)(v >> 8);
                out[n + 2] = (uint8_t)v;
                n += 3;
                i += 4;
            }
            if (i >= len)
                break;
        }
        unsigned char c = u[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            i++;
            continue;
        }
        if (c == '=') {
            pad++;
            if (pad > 2) {
                *bad_offset = i;
                return -1;
            }
            i++;
            continue;
        }
        int v = (int)B64[c] - 1;
        if (v < 0 || pad) { /* data after padding is malformed */
            *bad_offset = i;
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
        i++;
    }
    if (bits >= 6) { /* a single leftover character cannot encode a byte */
        *bad_offset = len;
        return -1;
    }
    *out_len = n;
    return 0;
}

char *vp_base64_encode(const uint8_t *data, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len) v |= data[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = 0;
    return out;
}
