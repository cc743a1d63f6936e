/* Base64 (proto/base64.h): image fields arrive as base64 or data: URLs.
 * Promises, for any input text: decoding succeeds, or fails naming the first offending
 * offset (at most the text's length; the text cut just before that offset is accepted,
 * or fails only for ending there); the decoded length is at most
 * vp_base64_decoded_max; a decoded result re-encoded (standard, padded) decodes to the
 * same bytes. For the input as raw bytes: encoding then decoding gives them back, and
 * the encoding's length is 4 * ceil(n / 3). */
#include <string.h>

#include "proto/base64.h"
#include "tests/fuzz/fuzz.h"

static void check_round_trip(const uint8_t *bytes, size_t n)
{
    char *enc = vp_base64_encode(bytes, n);
    FUZZ_REQUIRE(enc, "encode of %zu bytes failed", n);
    size_t elen = strlen(enc);
    FUZZ_REQUIRE(elen == (n + 2) / 3 * 4, "encoding of %zu bytes has %zu characters", n, elen);
    uint8_t *back = malloc(vp_base64_decoded_max(elen) + 1);
    size_t back_len = 0, bad = 0;
    FUZZ_REQUIRE(back && vp_base64_decode(enc, elen, back, &back_len, &bad) == 0,
                 "our own encoding of %zu bytes does not decode (offset %zu)", n, bad);
    FUZZ_REQUIRE(back_len == n && (n == 0 || !memcmp(back, bytes, n)),
                 "round trip of %zu bytes gave %zu different bytes", n, back_len);
    free(back);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t max = vp_base64_decoded_max(size);
    uint8_t *out = malloc(max + 1);
    if (!out)
        return 0;
    size_t out_len = 0, bad = (size_t)-1;
    if (vp_base64_decode(text, size, out, &out_len, &bad) == 0) {
        FUZZ_REQUIRE(out_len <= max, "decoded %zu bytes, bound %zu", out_len, max);
        check_round_trip(out, out_len);
    } else {
        FUZZ_REQUIRE(bad <= size, "bad offset %zu for a text of %zu bytes", bad, size);
        if (bad < size) {
            size_t bad2 = (size_t)-1, len2 = 0;
            if (vp_base64_decode(text, bad, out, &len2, &bad2) != 0)
                FUZZ_REQUIRE(bad2 == bad, "text cut at its bad offset %zu fails at %zu", bad,
                             bad2);
        }
    }
    check_round_trip(data, size);
    free(out);
    return 0;
}
