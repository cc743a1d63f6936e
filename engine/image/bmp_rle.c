/* Run-length encoded BMP pixels (RLE8, RLE4) as Pillow 9.4's BmpRleDecoder reads them,
 * quirks included, since the scores must match what the reference saw:
 * - a run never goes past the row's end (x counts pixels since the last end of line),
 *   but absolute runs do, spilling into the next row;
 * - a delta reads four bytes and takes the last two as right and up (the first two are
 *   skipped), then fills right + up * width pixels with index 0;
 * - an absolute RLE4 run of n pixels reads n / 2 bytes (an odd last pixel is lost) and
 *   then skips a byte when the file position is odd;
 * - the data may end anywhere (a cut-short delta is an error); the pixels must cover the
 *   image, or Pillow reports "not enough image data". */
#include <string.h>

#include "engine/image/formats.h"

int vp_bmp_rle_decode(const uint8_t *d, size_t len, const vp_bmp_header *h, uint8_t *out,
                      vp_error *err)
{
    size_t w = h->width, total = w * h->height, n = 0, x = 0, p = h->offset;
    int rle4 = h->compression == VP_BMP_RLE4;
    memset(out, 0, total);
#define PUT(v)               \
    do {                     \
        if (n < total)       \
            out[n] = (v);    \
        n++;                 \
    } while (0)
    while (n < total && p < len && len - p >= 2) {
        uint8_t count = d[p], b = d[p + 1];
        p += 2;
        if (count) { /* a run of one byte (RLE4: two alternating nibbles) */
            size_t k = x + count > w ? (x < w ? w - x : 0) : count;
            for (size_t i = 0; i < k; i++)
                PUT(rle4 ? (i % 2 ? b & 15 : b >> 4) : b);
            x += k;
        } else if (b == 0) { /* end of line: index 0 to the row's end */
            n = (n + w - 1) / w * w;
            x = 0;
        } else if (b == 1) { /* end of bitmap */
            break;
        } else if (b == 2) { /* delta */
            if (p >= len || len - p < 2)
                break;
            p += 2;
            if (p >= len || len - p < 2)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                               "BMP run-length delta is cut short at byte %zu", p);
            n += d[p] + (size_t)d[p + 1] * w;
            p += 2;
            x = n % w;
        } else { /* absolute: b pixels (RLE4: b / 2 bytes) as they are */
            size_t want = rle4 ? b / 2u : b, got = len - p < want ? len - p : want;
            for (size_t i = 0; i < got; i++) {
                if (rle4) {
                    PUT(d[p + i] >> 4);
                    PUT(d[p + i] & 15);
                } else {
                    PUT(d[p + i]);
                }
            }
            p += got;
            if (got < want)
                break;
            x += b;
            p += p % 2; /* to a 16-bit boundary of the file */
        }
    }
#undef PUT
    if (n < total)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "BMP run-length data ends after %zu of the image's %zu pixels", n, total);
    return 0;
}
