/* A GIF frame's LZW data decoded as Pillow 9.4's GifDecode.c decodes it, since damaged
 * data comes out its way (stb_image's decoder differs):
 * - the code size byte may be 0 to 12 (the clear code 1 << size, the end code one more);
 * - every data sub-block must be whole before any of its bits are read; one of size 0 is
 *   skipped, not an end;
 * - a clear code right after a clear code is ignored; the first code after one must not
 *   be above the clear code; a code above the next free entry is an error, and equal
 *   to it repeats the last string with its first byte appended;
 * - pixels go row by row (Adam7-like passes of 8, 8, 4, 2 when interlaced), and the frame
 *   is complete at its last pixel, whatever follows;
 * - the end code, or a sub-block that the data cuts short, before the last pixel: Pillow
 *   reads the file in pieces of 65536 bytes from the data's start, so with more of the
 *   file left it decodes on (after an end code too), else the file is truncated.
 * The facts are Pillow's; the code is this project's. */
#include <string.h>

#include "engine/image/formats.h"

enum { TABLE = 4096, MAX_BITS = 12, READ = 65536 };

int vp_gif_lzw_decode(const uint8_t *d, size_t len, const vp_gif_frame *f, uint8_t *out,
                      vp_error *err)
{
    if (f->data_start >= len)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated before its image data");
    int bits = d[f->data_start];
    if (bits > MAX_BITS)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "GIF LZW code size %d (at most 12; Pillow refuses it)", bits);
    size_t w = f->w, h = f->h, start = f->data_start + 1, p = start;
    size_t avail = len - start < READ ? len : start + READ; /* what Pillow has read */
    int clear = 1 << bits, end = clear + 1;
    static const int pass_start[4] = {0, 4, 2, 1}, pass_step[4] = {8, 8, 4, 2};
    int interlace = f->interlace, pass = 0;
    size_t step = interlace ? 8 : 1, x = 0, y = 0;
    uint16_t link[TABLE];
    uint8_t data[TABLE], stack[TABLE];
    int next = 0, codesize = 0, codemask = 0, state = 1, lastcode = 0, lastdata = 0;
    uint32_t bitbuf = 0;
    int bitcount = 0;
    size_t block = 0; /* bytes left in the current sub-block */
    for (;;) {
        if (state == 1) { /* after a clear code */
            next = clear + 2;
            codesize = bits + 1;
            codemask = (1 << codesize) - 1;
            state = 2;
        }
        int c;
        while (bitcount < codesize) {
            if (block > 0) {
                bitbuf |= (uint32_t)d[p++] << bitcount;
                bitcount += 8;
                block--;
                continue;
            }
            /* a sub-block starts: its size byte, and all of it, must be there */
            while (p >= avail || avail - p < 1u + d[p]) {
                if (avail == len)
                    return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                                   "GIF image data is truncated (Pillow: \"image file is "
                                   "truncated\")");
                avail = len - avail < READ ? len : avail + READ;
            }
            block = d[p++];
        }
        c = (int)(bitbuf & (uint32_t)codemask);
        bitbuf >>= codesize;
        bitcount -= codesize;
        if (c == clear) {
            if (state != 2)
                state = 1;
            continue;
        }
        if (c == end) { /* before the last pixel: decoding goes on with the next read */
            if (avail == len)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "GIF image data ends before the image does (truncated)");
            avail = len - avail < READ ? len : avail + READ;
            continue;
        }
        size_t n = 0; /* the string: stack[TABLE - n ..], its first byte lastdata */
        if (state == 2) {
            if (c > clear)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "GIF LZW code %d right after a clear code (broken data stream)", c);
            lastdata = lastcode = c;
            state = 3;
        } else {
            int thiscode = c;
            if (c > next)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "GIF LZW code %d before its table entry %d (broken data stream)",
                               c, next);
            if (c == next) {
                stack[TABLE - ++n] = (uint8_t)lastdata;
                c = lastcode;
            }
            while (c >= clear) {
                if (n >= TABLE || c >= TABLE)
                    return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                                   "GIF LZW string overflows (broken data stream)");
                stack[TABLE - ++n] = data[c];
                c = link[c];
            }
            lastdata = c;
            if (next < TABLE) {
                data[next] = (uint8_t)c;
                link[next] = (uint16_t)lastcode;
                if (next == codemask && codesize < MAX_BITS) {
                    codesize++;
                    codemask = (1 << codesize) - 1;
                }
                next++;
            }
            lastcode = thiscode;
        }
        /* the first byte, then the rest of the string */
        for (size_t i = 0; i <= n; i++) {
            out[y * w + x] = (uint8_t)(i == 0 ? lastdata : stack[TABLE - n + i - 1]);
            if (++x < w)
                continue;
            x = 0;
            y += step;
            while (y >= h) { /* the next pass, or the frame is complete */
                if (!interlace || pass == 3)
                    return 0;
                pass++;
                y = (size_t)pass_start[pass];
                step = (size_t)pass_step[pass];
            }
        }
    }
}
