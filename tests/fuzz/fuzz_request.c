/* POST /v1/score bodies: vp_request_parse under small limits.
 * Promises: a failure carries a kind (400, or 413 for a limit) and a message; a success
 * respects every limit it was given, its steps are non-NULL and NUL-terminated, images
 * are bytes within max_image_bytes or (URLs being allowed here) an http(s) URL. */
#include <string.h>
#include <strings.h>

#include "engine/util/utf8.h"
#include "proto/request.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    lim.max_responses = 8;
    lim.max_steps = 16;
    lim.max_images = 2;
    lim.max_image_bytes = 4096;
    lim.max_text_bytes = 2048;
    lim.max_tiles = 12;
    lim.allow_urls = true;

    vp_score_request req;
    vp_error err = {0};
    if (vp_request_parse((const char *)data, size, &lim, &req, &err)) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_BAD_REQUEST || err.kind == VP_ERR_TOO_LARGE,
                     "unexpected error kind %d: %s", (int)err.kind, err.message);
        return 0;
    }
    FUZZ_REQUIRE(req.n_responses >= 1 && req.n_responses <= lim.max_responses,
                 "%zu responses", req.n_responses);
    FUZZ_REQUIRE(req.n_images <= lim.max_images, "%zu images", req.n_images);
    FUZZ_REQUIRE(req.question.s && req.question.s[req.question.len] == '\0' &&
                     req.question.len <= lim.max_text_bytes,
                 "question of %zu bytes", req.question.len);
    FUZZ_REQUIRE(req.max_tiles >= 0 && req.max_tiles <= lim.max_tiles, "max_tiles %d",
                 req.max_tiles);
    FUZZ_REQUIRE((int)req.aggregation >= VP_AGG_MEAN && req.aggregation <= VP_AGG_PRODUCT,
                 "aggregation %d", (int)req.aggregation);
    FUZZ_REQUIRE((int)req.priority >= VP_PRIORITY_HIGH && req.priority <= VP_PRIORITY_LOW &&
                     (req.priority_given || req.priority == VP_PRIORITY_NORMAL),
                 "priority %d (given %d)", (int)req.priority, (int)req.priority_given);
    for (size_t i = 0; i < req.n_images; i++) {
        const vp_image_src *im = &req.images[i];
        if (im->kind == VP_IMAGE_BYTES)
            FUZZ_REQUIRE(im->data && im->len > 0 && im->len <= lim.max_image_bytes,
                         "image %zu of %zu bytes", i, im->len);
        else
            FUZZ_REQUIRE(im->url && (!strncasecmp(im->url, "http://", 7) || /* any case */
                                     !strncasecmp(im->url, "https://", 8)),
                         "image %zu: url '%s'", i, im->url ? im->url : "(null)");
    }
    size_t unknown = strnlen(req.unknown_fields, sizeof req.unknown_fields), bad;
    FUZZ_REQUIRE(unknown < sizeof req.unknown_fields &&
                     vp_utf8_valid(req.unknown_fields, unknown, &bad),
                 "unknown fields '%s' not a valid string", req.unknown_fields);
    for (size_t r = 0; r < req.n_responses; r++) {
        const vp_response_in *resp = &req.responses[r];
        FUZZ_REQUIRE(resp->n_steps >= 1 && resp->n_steps <= lim.max_steps,
                     "response %zu: %zu steps", r, resp->n_steps);
        for (size_t k = 0; k < resp->n_steps; k++)
            FUZZ_REQUIRE(resp->steps[k].s && resp->steps[k].s[resp->steps[k].len] == '\0',
                         "response %zu step %zu", r, k);
    }
    vp_request_free(&req);
    return 0;
}
