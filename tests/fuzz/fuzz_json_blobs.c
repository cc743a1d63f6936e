/* vp_json_loadb (the fast path for long string values) against jansson's json_loadb,
 * its oracle, with the flags the server uses.
 * Promises: both refuse or both accept the same body; accepted trees are equal
 * (json_equal, strings with NUL included); refusals report the same line, column,
 * position and text (json_blobs.h promises errors name the original place).
 * To reach the fast path (strings of at least VP_JSON_BLOB_MIN bytes) with small
 * inputs, every byte 0x01 of the input becomes a run of VP_JSON_BLOB_MIN + 3 printable
 * characters before both parse it; "\/" and "\u002B" in the input stay escapes. */
#include <jansson.h>
#include <string.h>

#include "proto/json_blobs.h"
#include "tests/fuzz/fuzz.h"

#define RUN (VP_JSON_BLOB_MIN + 3)

static char *expand(const uint8_t *data, size_t size, size_t *out_len)
{
    size_t runs = 0;
    for (size_t i = 0; i < size; i++)
        runs += data[i] == 1;
    size_t n = size + runs * (RUN - 1);
    char *body = malloc(n ? n : 1);
    if (!body)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] != 1) {
            body[o++] = (char)data[i];
            continue;
        }
        for (size_t k = 0; k < RUN; k++) /* base64's alphabet, as an image field holds */
            body[o++] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i + k) % 64];
    }
    *out_len = n;
    return body;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t flags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;
    size_t len;
    char *body = expand(data, size, &len);
    if (!body)
        return 0;
    json_error_t want_err, got_err;
    json_t *want = json_loadb(body, len, flags, &want_err);
    json_t *got = vp_json_loadb(body, len, flags, &got_err);
    FUZZ_REQUIRE(!want == !got, "jansson %s, vp_json_loadb %s (%s)",
                 want ? "accepts" : "refuses", got ? "accepts" : "refuses",
                 want ? got_err.text : want_err.text);
    if (want) {
        FUZZ_REQUIRE(json_equal(want, got), "trees differ on a body of %zu bytes", len);
    } else {
        FUZZ_REQUIRE(want_err.line == got_err.line && want_err.column == got_err.column &&
                         want_err.position == got_err.position &&
                         !strcmp(want_err.text, got_err.text),
                     "errors differ: jansson %d:%d@%d '%s', ours %d:%d@%d '%s'", want_err.line,
                     want_err.column, want_err.position, want_err.text, got_err.line,
                     got_err.column, got_err.position, got_err.text);
    }
    json_decref(want);
    json_decref(got);
    free(body);
    return 0;
}
