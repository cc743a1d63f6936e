/* The HTTP contract of API.md against a running daemon: every error status with its
 * type, param and message; headers; the score, batch, tokenize, models, metrics bodies.
 *
 *   http_api BASE_URL API_KEY
 *
 * The daemon must run with the limits of tests/http/suite_http.sh (LIMIT_* below). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/bench/bench.h"
#include "server/bench/http_client.h"
#include "tests/unit/check.h"

/* must match the flags the suite gives the daemon */
#define LIMIT_BODY (2u << 20)
#define LIMIT_RESPONSES 8
#define LIMIT_STEPS 16
#define LIMIT_IMAGES 2
#define LIMIT_IMAGE_BYTES (256u << 10)
#define LIMIT_PIXELS 1000000
#define LIMIT_TOKENS 3000
#define LIMIT_BATCH 4
#define LIMIT_TILES 6

static const char *base;
static char auth[256];
static const char *with_key[] = {auth, "Content-Type: application/json", NULL};
static const char *no_key[] = {"Content-Type: application/json", NULL};
static const char *wrong_key[] = {"Authorization: Bearer not-the-key", NULL};

typedef struct sb {
    char *p;
    size_t n, cap;
} sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n >= 0)
        sb_put(b, s, (size_t)n);
    free(s);
}

static int request(const char *method, const char *path, const char *body, size_t len,
                   const char *const *headers, vp_http_reply *r)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    return vp_http_request(method, url, body, body ? len : 0, headers, 120, r);
}

/* Checks an error answer: status, JSON {"error": {"type", "message", "param"}} with
 * "param" always present (null when no field is at fault). */
static void expect_error(const char *name, const char *method, const char *path, const char *body,
                         size_t len, const char *const *headers, long status, const char *type,
                         const char *param, const char *words)
{
    vp_http_reply r;
    request(method, path, body, len, headers, &r);
    CHECK_MSG(r.status == status, "%s: status %ld, expected %ld (%s) body %.300s", name, r.status,
              status, r.error, r.body);
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    json_t *e = json_object_get(j, "error");
    const char *t = json_string_value(json_object_get(e, "type"));
    const char *m = json_string_value(json_object_get(e, "message"));
    json_t *pj = json_object_get(e, "param");
    const char *p = json_string_value(pj);
    CHECK_MSG(json_is_null(pj) || json_is_string(pj), "%s: \"param\" missing or not a string or "
              "null: %.300s", name, r.body);
    CHECK_MSG(t && !strcmp(t, type), "%s: type %s, expected %s", name, t ? t : "(none)", type);
    CHECK_MSG(m && strlen(m) > 10 && strstr(m, words), "%s: message '%s' lacks '%s'", name,
              m ? m : "(none)", words);
    if (param && !param[0]) /* "" = no param: null */
        CHECK_MSG(json_is_null(pj), "%s: param '%s', expected null", name, p ? p : "?");
    else if (param)
        CHECK_MSG(p && !strcmp(p, param), "%s: param '%s', expected '%s'", name, p ? p : "(none)",
                  param);
    char buf[256];
    const char *ct = vp_http_header(&r, "Content-Type", buf, sizeof buf);
    CHECK_MSG(ct && !strcmp(ct, "application/json"), "%s: content type %s", name, ct ? ct : "-");
    CHECK_MSG(vp_http_header(&r, "x-request-id", buf, sizeof buf) && !strncmp(buf, "scr_", 4),
              "%s: no x-request-id", name);
    if (status == 429 || status == 503)
        CHECK_MSG(vp_http_header(&r, "Retry-After", buf, sizeof buf), "%s: no Retry-After", name);
    json_decref(j);
    vp_http_reply_free(&r);
}

static char *image_url(uint32_t w, uint32_t h, uint64_t seed)
{
    uint8_t *png;
    size_t len;
    vp_error err;
    if (vp_png_random(w, h, seed, &png, &len, &err))
        return NULL;
    char *u = vp_data_url("image/png", png, len);
    free(png);
    return u;
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* A real small PNG whose IHDR is rewritten to claim w x h (valid CRC): refused from its
 * header, before any decoding. */
static char *png_claiming(uint32_t w, uint32_t h)
{
    uint8_t *png;
    size_t len;
    vp_error err;
    if (vp_png_random(8, 8, 3, &png, &len, &err))
        return NULL;
    uint8_t *ihdr = png + 8; /* length(4) "IHDR"(4) data(13) crc(4) */
    uint8_t *d = ihdr + 8;
    d[0] = (uint8_t)(w >> 24), d[1] = (uint8_t)(w >> 16), d[2] = (uint8_t)(w >> 8), d[3] = (uint8_t)w;
    d[4] = (uint8_t)(h >> 24), d[5] = (uint8_t)(h >> 16), d[6] = (uint8_t)(h >> 8), d[7] = (uint8_t)h;
    uint32_t c = crc32_of(ihdr + 4, 17);
    uint8_t *cp = ihdr + 21;
    cp[0] = (uint8_t)(c >> 24), cp[1] = (uint8_t)(c >> 16), cp[2] = (uint8_t)(c >> 8), cp[3] = (uint8_t)c;
    char *u = vp_data_url("image/png", png, len);
    free(png);
    return u;
}

static void test_routing_and_auth(void)
{
    vp_http_reply r;
    request("GET", "/health", NULL, 0, NULL, &r);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"status\":\"ok\""), "health: %ld %s", r.status,
              r.body);
    vp_http_reply_free(&r);
    request("GET", "/ready", NULL, 0, NULL, &r);
    CHECK_MSG(r.status == 200, "ready: %ld", r.status);
    vp_http_reply_free(&r);
    request("HEAD", "/health", NULL, 0, NULL, &r);
    CHECK_MSG(r.status == 200 && r.len == 0, "HEAD /health: %ld, %zu body bytes", r.status, r.len);
    vp_http_reply_free(&r);

    const char *ok = "{\"question\": \"q\", \"responses\": [\"a\"]}";
    expect_error("no key", "POST", "/v1/score", ok, strlen(ok), no_key, 401, "unauthorized", "",
                 "Authorization: Bearer");
    expect_error("wrong key", "POST", "/v1/score", ok, strlen(ok), wrong_key, 401, "unauthorized",
                 "", "API key");
    expect_error("models without key", "GET", "/v1/models", NULL, 0, NULL, 401, "unauthorized", "",
                 "API key");
    expect_error("metrics without key", "GET", "/metrics", NULL, 0, NULL, 401, "unauthorized", "",
                 "API key");
    request("POST", "/v1/score", ok, strlen(ok), no_key, &r);
    char buf[128];
    CHECK_MSG(vp_http_header(&r, "WWW-Authenticate", buf, sizeof buf) && !strcmp(buf, "Bearer"),
              "401 without WWW-Authenticate");
    vp_http_reply_free(&r);

    expect_error("unknown path", "GET", "/v2/score", NULL, 0, with_key, 404, "not_found", "",
                 "no such endpoint");
    expect_error("unknown path POST", "POST", "/v1/scores", ok, strlen(ok), with_key, 404,
                 "not_found", "", "/v1/scores");
    /* a percent-encoded NUL does not end the path: "/metrics%00" is not /metrics */
    expect_error("a NUL in the path", "GET", "/metrics%00", NULL, 0, with_key, 404, "not_found",
                 "", "/metrics%00");
    expect_error("a NUL in the path POST", "POST", "/v1/tokenize%00.txt", ok, strlen(ok), with_key,
                 404, "not_found", "", "no such endpoint");
    expect_error("GET score", "GET", "/v1/score", NULL, 0, with_key, 405, "method_not_allowed",
                 NULL, "not allowed");
    request("GET", "/v1/score", NULL, 0, with_key, &r);
    CHECK_MSG(vp_http_header(&r, "Allow", buf, sizeof buf) && !strcmp(buf, "POST"),
              "405 Allow: %s", buf);
    vp_http_reply_free(&r);
    expect_error("POST health", "POST", "/health", ok, strlen(ok), with_key, 405,
                 "method_not_allowed", NULL, "GET, HEAD");
    request("DELETE", "/metrics", NULL, 0, with_key, &r);
    CHECK_MSG(r.status == 405 && vp_http_header(&r, "Allow", buf, sizeof buf) &&
                  !strcmp(buf, "GET, HEAD"),
              "DELETE /metrics: %ld Allow %s", r.status, buf);
    vp_http_reply_free(&r);
}

static void test_bad_requests(void)
{
    struct {
        const char *name, *body, *param, *words;
    } cases[] = {
        {"malformed JSON", "{\"question\": ", "", "malformed JSON"},
        {"not an object", "[1, 2]", NULL, "object"},
        {"question type", "{\"question\": 5, \"responses\": [\"a\"]}", "question", "string"},
        {"missing responses", "{\"question\": \"q\"}", "responses", "missing"},
        {"zero responses", "{\"question\": \"q\", \"responses\": []}", "responses", "at least one"},
        {"response type", "{\"question\": \"q\", \"responses\": [7]}", "responses[0]", "string"},
        {"empty steps list", "{\"question\": \"q\", \"responses\": [\"a\", []]}", "responses[1]",
         "empty"},
        {"step type", "{\"question\": \"q\", \"responses\": [[\"a\", 3]]}", "responses[0][1]",
         "string"},
        {"bad base64", "{\"question\": \"q\", \"image\": \"data:image/png;base64,@@@@\", "
                       "\"responses\": [\"a\"]}",
         "image", "base64"},
        {"unknown aggregation",
         "{\"question\": \"q\", \"responses\": [\"a\"], \"aggregation\": \"median\"}",
         "aggregation", "mean"},
        {"return_steps type",
         "{\"question\": \"q\", \"responses\": [\"a\"], \"return_steps\": \"yes\"}",
         "return_steps", "true or false"},
        {"duplicate key", "{\"question\": \"q\", \"question\": \"r\", \"responses\": [\"a\"]}", "",
         "duplicate"},
        {"image URL disabled",
         "{\"question\": \"q\", \"image\": \"http://example.com/a.png\", \"responses\": [\"a\"]}",
         "image", "not enabled"},
        {"empty question, no image", "{\"question\": \"\", \"responses\": [\"a\"]}", "question",
         "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].name, "POST", "/v1/score", cases[i].body, strlen(cases[i].body),
                     with_key, 400, "invalid_request", cases[i].param, cases[i].words);

    /* invalid UTF-8 inside a JSON string */
    const char bad_utf8[] = "{\"question\": \"caf\xc3\x28 \xff\", \"responses\": [\"a\"]}";
    expect_error("invalid UTF-8", "POST", "/v1/score", bad_utf8, sizeof bad_utf8 - 1, with_key,
                 400, "invalid_request", "", "malformed JSON");
    /* deeply nested JSON: refused by the parser's depth limit (2048), no stack overflow;
     * 50000 levels stay under the suite's max_json_values (100000), counted first */
    size_t depth = 50000;
    char *deep = malloc(2 * depth + 64);
    size_t n = (size_t)sprintf(deep, "{\"question\": ");
    memset(deep + n, '[', depth);
    n += depth;
    memset(deep + n, ']', depth);
    n += depth;
    n += (size_t)sprintf(deep + n, ", \"responses\": [\"a\"]}");
    expect_error("deeply nested JSON", "POST", "/v1/score", deep, n, with_key, 400,
                 "invalid_request", "", "depth");
    free(deep);
    /* a compressed body: 415 naming Content-Encoding, not "malformed JSON" */
    const char *gz_headers[] = {auth, "Content-Type: application/json", "Content-Encoding: gzip", NULL};
    const char gz[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00\x43\xbf\xa6\xa3\x02\x00\x00\x00";
    expect_error("Content-Encoding: gzip", "POST", "/v1/score", gz, sizeof gz - 1, gz_headers, 415,
                 "unsupported_media_type", "", "Content-Encoding");
    /* an empty body */
    expect_error("empty body", "POST", "/v1/score", "", 0, with_key, 400, "invalid_request", "",
                 "malformed JSON");
}

static void test_limits(void)
{
    /* body over max_body_bytes: 413 (from the headers when libcurl sends "Expect:
     * 100-continue", else once the body is read and dropped) */
    size_t big = LIMIT_BODY + 100;
    char *body = malloc(big);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    expect_error("body limit", "POST", "/v1/score", body, big, with_key, 413, "limit_exceeded", "",
                 "max_body_bytes=2097152");
    free(body);

    sb b = {0};
    sb_printf(&b, "{\"question\": \"q\", \"responses\": [");
    for (int i = 0; i <= LIMIT_RESPONSES; i++)
        sb_printf(&b, "%s\"r%d\"", i ? ", " : "", i);
    sb_printf(&b, "]}");
    expect_error("responses limit", "POST", "/v1/score", b.p, b.n, with_key, 413, "limit_exceeded",
                 "responses", "max_responses=8");
    b.n = 0;
    sb_printf(&b, "{\"question\": \"q\", \"responses\": [\"ok\", \"s");
    for (int i = 0; i < LIMIT_STEPS; i++)
        sb_printf(&b, "\\n\\ns%d", i);
    sb_printf(&b, "\"]}");
    expect_error("steps limit", "POST", "/v1/score", b.p, b.n, with_key, 413, "limit_exceeded",
                 "responses[1]", "max_steps=16");

    char *img = image_url(16, 16, 1);
    b.n = 0;
    sb_printf(&b, "{\"question\": \"q\", \"images\": [\"%s\", \"%s\", \"%s\"], \"responses\": [\"a\"]}",
              img, img, img);
    expect_error("images limit", "POST", "/v1/score", b.p, b.n, with_key, 413, "limit_exceeded",
                 "images", "max_images=2");
    free(img);

    img = image_url(160, 160, 2); /* 76 KB of pixels: stored PNG ~ 77 KB */
    char *huge = image_url(320, 320, 3); /* ~307 KB > 256 KiB */
    b.n = 0;
    sb_printf(&b, "{\"question\": \"q\", \"image\": \"%s\", \"responses\": [\"a\"]}", huge);
    expect_error("image bytes limit", "POST", "/v1/score", b.p, b.n, with_key, 413,
                 "limit_exceeded", "image", "max_image_bytes=262144");
    free(huge);
    free(img);

    char *claim = png_claiming(2000, 1000);
    b.n = 0;
    sb_printf(&b, "{\"question\": \"q\", \"image\": \"%s\", \"responses\": [\"a\"]}", claim);
    expect_error("pixel limit", "POST", "/v1/score", b.p, b.n, with_key, 413, "limit_exceeded",
                 "image", "max_image_pixels=1000000");
    free(claim);

    b.n = 0;
    sb_printf(&b, "{\"question\": \"q\", \"responses\": [");
    for (int i = 0; i < LIMIT_RESPONSES; i++) {
        sb_printf(&b, "%s\"", i ? ", " : "");
        for (int k = 0; k < 120; k++)
            sb_printf(&b, "word%d ", k);
        sb_printf(&b, "\"");
    }
    sb_printf(&b, "]}");
    expect_error("token limit", "POST", "/v1/score", b.p, b.n, with_key, 413, "limit_exceeded",
                 NULL, "max_request_tokens=3000");

    const char *tiles = "{\"question\": \"q\", \"responses\": [\"a\"], \"max_tiles\": 99}";
    expect_error("tiles limit", "POST", "/v1/score", tiles, strlen(tiles), with_key, 413,
                 "limit_exceeded", "max_tiles", "max_tiles=6");

    b.n = 0;
    sb_printf(&b, "{\"requests\": [");
    for (int i = 0; i <= LIMIT_BATCH; i++)
        sb_printf(&b, "%s{\"question\": \"q\", \"responses\": [\"a\"]}", i ? ", " : "");
    sb_printf(&b, "]}");
    expect_error("batch limit", "POST", "/v1/score/batch", b.p, b.n, with_key, 413,
                 "limit_exceeded", "requests", "max_batch_requests=4");
    const char *nobatch = "{\"question\": \"q\"}";
    expect_error("batch without requests", "POST", "/v1/score/batch", nobatch, strlen(nobatch),
                 with_key, 400, "invalid_request", "requests", "missing");

    /* 415: a TIFF; 422: a PNG signature followed by garbage */
    const uint8_t tiff[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    char *t = vp_data_url("image/tiff", tiff, sizeof tiff);
    b.n = 0;
    sb_printf(&b, "{\"question\": \"q\", \"image\": \"%s\", \"responses\": [\"a\"]}", t);
    expect_error("unsupported format", "POST", "/v1/score", b.p, b.n, with_key, 415,
                 "unsupported_media_type", "image", "PNG, JPEG, GIF and BMP");
    free(t);
    uint8_t junk[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    for (size_t i = 8; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    t = vp_data_url("image/png", junk, sizeof junk);
    b.n = 0;
    sb_printf(&b, "{\"question\": \"q\", \"image\": \"%s\", \"responses\": [\"a\"]}", t);
    expect_error("undecodable", "POST", "/v1/score", b.p, b.n, with_key, 422, "undecodable_image",
                 "image", "PNG");
    free(t);
    free(b.p);
}

static json_t *post_json(const char *path, const char *body, long *status, vp_http_reply *keep)
{
    vp_http_reply r;
    request("POST", path, body, strlen(body), with_key, &r);
    *status = r.status;
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    if (keep)
        *keep = r;
    else
        vp_http_reply_free(&r);
    return j;
}

static double score_of(json_t *resp, size_t i)
{
    return json_real_value(json_object_get(json_array_get(json_object_get(resp, "results"), i),
                                           "score"));
}

/* A request's repeated responses (the same text as a string and as steps, so the same
 * tokens) are answered with identical results, ranked in request order when tied, and
 * their prompts are not computed again (the repeat's length from /v1/tokenize). */
static void test_repeated_responses(void)
{
    const char *body = "{\"question\": \"Is 7 prime?\", \"responses\": ["
                       "\"7 has no divisor but 1 and 7.\\n\\nSo yes.\", \"No, 7 = 2 * 3.\", "
                       "[\"7 has no divisor but 1 and 7.\", \"So yes.\"]], \"return_logits\": true}";
    long st;
    json_t *j = post_json("/v1/score", body, &st, NULL);
    CHECK_MSG(st == 200 && j, "repeats: %ld", st);
    json_t *res = json_object_get(j, "results");
    CHECK(json_array_size(res) == 3);
    json_t *s0 = json_object_get(json_array_get(res, 0), "step_logits"),
           *s2 = json_object_get(json_array_get(res, 2), "step_logits");
    CHECK_MSG(s0 && s2 && json_equal(s0, s2) && score_of(j, 0) == score_of(j, 2),
              "the repeat's score %.17g, the first's %.17g", score_of(j, 2), score_of(j, 0));
    CHECK(score_of(j, 0) != score_of(j, 1));
    json_t *rank = json_object_get(j, "ranking");
    size_t at0 = 9, at2 = 9;
    for (size_t k = 0; k < json_array_size(rank); k++) {
        json_int_t v = json_integer_value(json_array_get(rank, k));
        if (v == 0)
            at0 = k;
        if (v == 2)
            at2 = k;
    }
    CHECK_MSG(at0 + 1 == at2, "tied repeats ranked at %zu and %zu", at0, at2);
    json_t *jt = post_json("/v1/tokenize", body, &st, NULL);
    json_t *tr = json_object_get(jt, "responses");
    json_int_t n2 = json_integer_value(json_object_get(json_array_get(tr, 2), "n_tokens"));
    CHECK(json_array_size(tr) == 3 &&
          json_equal(json_object_get(json_array_get(tr, 0), "input_ids"),
                     json_object_get(json_array_get(tr, 2), "input_ids")));
    /* the two distinct responses computed once each after their shared prefix: the
     * prompts less the repeat's and less the prefix (unless a cache gave the prefix) */
    json_t *u = json_object_get(j, "usage");
    json_int_t prompt = json_integer_value(json_object_get(u, "prompt_tokens")),
               computed = json_integer_value(json_object_get(u, "computed_tokens")),
               shared = json_integer_value(json_object_get(u, "shared_prefix_tokens")),
               cached = json_integer_value(json_object_get(u, "cached_prefix_tokens"));
    CHECK_MSG(n2 > 10 && shared > 0 &&
                  (cached ? computed <= prompt - n2 - shared : computed == prompt - n2 - shared),
              "usage: prompt %lld, computed %lld, shared %lld, cached %lld, the repeat's "
              "prompt %lld", (long long)prompt, (long long)computed, (long long)shared,
              (long long)cached, (long long)n2);
    json_decref(jt);
    json_decref(j);
}

static void test_score_contract(void)
{
    char *img = image_url(200, 150, 9);
    sb b = {0};
    sb_printf(&b,
              "{\"question\": \"Find the angle.\", \"image\": \"%s\", \"responses\": ["
              "\"The angle is 30 degrees.\\n\\nSo the answer is 30.\", "
              "[\"Compute 180 minus 150.\", \"That is 30.\", \"Answer: 30\"], "
              "{\"steps\": [\"It is 45.\"]}], \"return_logits\": true, \"max_tiles\": 1}",
              img);
    free(img);
    long st;
    vp_http_reply r;
    json_t *j = post_json("/v1/score", b.p, &st, &r);
    CHECK_MSG(st == 200 && j, "score: %ld %.300s", st, r.body);
    char buf[128];
    const char *id = json_string_value(json_object_get(j, "id"));
    CHECK_MSG(id && strlen(id) == 30 && !strncmp(id, "scr_", 4), "id %s", id ? id : "-");
    CHECK(vp_http_header(&r, "x-request-id", buf, sizeof buf) && id && !strcmp(buf, id));
    CHECK(vp_http_header(&r, "x-queue-time", buf, sizeof buf) && atof(buf) >= 0);
    CHECK(vp_http_header(&r, "x-inference-time", buf, sizeof buf) && atof(buf) > 0);
    CHECK(vp_http_header(&r, "Content-Type", buf, sizeof buf) &&
          !strcmp(buf, "application/json"));
    vp_http_reply_free(&r);
    json_t *results = json_object_get(j, "results");
    CHECK(json_array_size(results) == 3);
    size_t want_steps[3] = {2, 3, 1};
    for (size_t i = 0; i < json_array_size(results) && i < 3; i++) {
        json_t *ri = json_array_get(results, i);
        CHECK(json_integer_value(json_object_get(ri, "index")) == (json_int_t)i);
        CHECK(json_integer_value(json_object_get(ri, "steps")) == (json_int_t)want_steps[i]);
        json_t *ss = json_object_get(ri, "step_scores"), *sl = json_object_get(ri, "step_logits");
        CHECK(json_array_size(ss) == want_steps[i] && json_array_size(sl) == want_steps[i]);
        double mean = 0;
        for (size_t k = 0; k < json_array_size(ss); k++) {
            double p = json_real_value(json_array_get(ss, k));
            json_t *pair = json_array_get(sl, k);
            double lp = json_real_value(json_array_get(pair, 0)),
                   lm = json_real_value(json_array_get(pair, 1));
            /* the step score is the softmax of its two logits */
            CHECK_MSG(fabs(p - 1.0 / (1.0 + exp(lm - lp))) < 1e-5, "step %zu: %g vs logits %g %g",
                      k, p, lp, lm);
            CHECK(p > 0 && p < 1);
            mean += p;
        }
        mean /= (double)want_steps[i];
        CHECK_MSG(fabs(score_of(j, i) - mean) < 1e-6, "score %zu: %g, mean of steps %g", i,
                  score_of(j, i), mean);
    }
    /* ranking: indices by descending score; best_index its head */
    json_t *rank = json_object_get(j, "ranking");
    CHECK(json_array_size(rank) == 3);
    for (size_t k = 0; k + 1 < json_array_size(rank); k++)
        CHECK(score_of(j, (size_t)json_integer_value(json_array_get(rank, k))) >=
              score_of(j, (size_t)json_integer_value(json_array_get(rank, k + 1))));
    CHECK(json_integer_value(json_object_get(j, "best_index")) ==
          json_integer_value(json_array_get(rank, 0)));
    json_t *u = json_object_get(j, "usage");
    CHECK(json_integer_value(json_object_get(u, "image_tiles")) >= 1);
    CHECK(json_integer_value(json_object_get(u, "computed_tokens")) <
          json_integer_value(json_object_get(u, "prompt_tokens"))); /* prefix shared */
    json_t *tm = json_object_get(j, "timing_ms");
    CHECK(json_real_value(json_object_get(tm, "total")) >=
          json_real_value(json_object_get(tm, "queue")));

    /* the alias, and the same request again: bitwise equal scores, now from the prefix
     * KV cache (on by default): the image and question are loaded, not computed */
    json_t *j2 = post_json("/score", b.p, &st, NULL);
    CHECK_MSG(st == 200, "/score alias: %ld", st);
    for (size_t i = 0; i < 3; i++)
        CHECK_MSG(score_of(j, i) == score_of(j2, i), "alias score %zu: %.17g vs %.17g", i,
                  score_of(j, i), score_of(j2, i));
    json_t *u2 = json_object_get(j2, "usage");
    json_int_t cached2 = json_integer_value(json_object_get(u2, "cached_prefix_tokens"));
    CHECK_MSG(cached2 > json_integer_value(json_object_get(u, "cached_prefix_tokens")) &&
                  cached2 == json_integer_value(json_object_get(u2, "shared_prefix_tokens")) &&
                  json_integer_value(json_object_get(u2, "computed_tokens")) <
                      json_integer_value(json_object_get(u, "computed_tokens")),
              "the repeat loaded %lld cached prefix tokens", (long long)cached2);
    json_decref(j2);

    /* batch: one bad item fails only itself; good items equal their single answers */
    sb bb = {0};
    sb_printf(&bb, "{\"requests\": [%s, {\"question\": \"q\", \"responses\": []}, %s]}", b.p, b.p);
    json_t *jb = post_json("/v1/score/batch", bb.p, &st, NULL);
    CHECK_MSG(st == 200, "batch: %ld", st);
    json_t *br = json_object_get(jb, "results");
    CHECK(json_array_size(br) == 3);
    json_t *bad = json_object_get(json_array_get(br, 1), "error");
    CHECK_MSG(bad && !strcmp(json_string_value(json_object_get(bad, "param")),
                             "requests[1].responses") &&
                  !strcmp(json_string_value(json_object_get(bad, "type")), "invalid_request"),
              "batch item 1 error");
    for (size_t item = 0; item < 3; item += 2)
        for (size_t i = 0; i < 3; i++)
            CHECK_MSG(score_of(json_array_get(br, item), i) == score_of(j, i),
                      "batch item %zu score %zu: %.17g vs %.17g", item, i,
                      score_of(json_array_get(br, item), i), score_of(j, i));
    /* each item its own id: the batch's, then "-" and its index */
    const char *bid = json_string_value(json_object_get(jb, "id"));
    for (size_t item = 0; item < 3; item += 2) {
        char want[96];
        snprintf(want, sizeof want, "%s-%zu", bid ? bid : "?", item);
        const char *iid = json_string_value(json_object_get(json_array_get(br, item), "id"));
        CHECK_MSG(bid && iid && !strcmp(iid, want), "batch item %zu id %s, expected %s", item,
                  iid ? iid : "(none)", want);
    }
    json_decref(jb);
    /* a batch whose items all fail is still answered, each error naming its item */
    const char *allbad = "{\"requests\": [{\"question\": 1, \"responses\": [\"a\"]}, 5]}";
    jb = post_json("/v1/score/batch", allbad, &st, NULL);
    json_t *e0 = json_object_get(json_array_get(json_object_get(jb, "results"), 0), "error");
    json_t *e1 = json_object_get(json_array_get(json_object_get(jb, "results"), 1), "error");
    CHECK_MSG(st == 200 && e0 && e1, "all-bad batch: %ld", st);
    CHECK(e0 && !strcmp(json_string_value(json_object_get(e0, "param")), "requests[0].question"));
    CHECK_MSG(e1 && !strcmp(json_string_value(json_object_get(e1, "param")), "requests[1]"),
              "item 1 param %s", json_string_value(json_object_get(e1, "param")));
    json_decref(jb);
    free(bb.p);

    /* tokenize: ids, pieces, and one score position per step whose next token is "+" */
    json_t *jt = post_json("/v1/tokenize", b.p, &st, NULL);
    CHECK_MSG(st == 200, "tokenize: %ld", st);
    json_t *tr = json_object_get(jt, "responses");
    CHECK(json_array_size(tr) == 3);
    for (size_t i = 0; i < json_array_size(tr) && i < 3; i++) {
        json_t *ti = json_array_get(tr, i);
        json_t *ids = json_object_get(ti, "input_ids"), *pieces = json_object_get(ti, "pieces"),
               *pos = json_object_get(ti, "score_positions");
        CHECK(json_array_size(ids) > 10 && json_array_size(ids) == json_array_size(pieces));
        CHECK_MSG(json_array_size(pos) == want_steps[i], "response %zu: %zu score positions", i,
                  json_array_size(pos));
        for (size_t k = 0; k < json_array_size(pos); k++) {
            size_t p = (size_t)json_integer_value(json_array_get(pos, k));
            const char *next = json_string_value(json_array_get(pieces, p + 1));
            CHECK_MSG(p + 1 < json_array_size(ids) && next && !strcmp(next, "+"),
                      "response %zu position %zu: next piece %s", i, p, next ? next : "-");
        }
    }
    json_decref(jt);
    /* a field nothing reads is named in the tokenize answer's warnings, as in a score's */
    jt = post_json("/v1/tokenize",
                   "{\"question\": \"q\", \"responses\": [\"a\"], \"aggregaton\": \"min\"}", &st,
                   NULL);
    json_t *tw = json_object_get(jt, "warnings");
    CHECK_MSG(st == 200 && json_array_size(tw) == 1 &&
                  strstr(json_string_value(json_array_get(tw, 0)), "unknown fields ignored: aggregaton"),
              "tokenize warnings: %ld", st);
    json_decref(jt);
    json_decref(j);
    free(b.p);
    test_repeated_responses();
}

static double metric(const char *text, const char *series)
{
    double v = -1;
    vp_prom_value(text, series, &v);
    return v;
}

static void test_models_and_metrics(void)
{
    vp_http_reply r;
    request("GET", "/v1/models", NULL, 0, with_key, &r);
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    CHECK_MSG(r.status == 200 && j, "models: %ld", r.status);
    json_t *m = json_array_get(json_object_get(j, "models"), 0);
    CHECK(json_string_value(json_object_get(m, "name")));
    CHECK(json_string_value(json_object_get(m, "path")));
    CHECK(json_integer_value(json_object_get(m, "parameters")) > 1000);
    /* the CPU backend computes in fp32 */
    CHECK(json_string_value(json_object_get(m, "dtype")) &&
          !strcmp(json_string_value(json_object_get(m, "dtype")), "float32") &&
          json_string_value(json_object_get(m, "activations")));
    CHECK(json_string_value(json_object_get(m, "backend")) &&
          !strcmp(json_string_value(json_object_get(m, "backend")), "cpu"));
    CHECK(json_string_value(json_object_get(m, "device")));
    /* memory: the tiny model's fp32 weights on the CPU backend; no device figures there */
    json_t *mem = json_object_get(m, "memory");
    CHECK(json_integer_value(json_object_get(mem, "weights_bytes")) >
          json_integer_value(json_object_get(m, "parameters")));
    CHECK(json_object_get(mem, "working_bytes") && !json_object_get(mem, "device_total_bytes"));
    CHECK(json_integer_value(json_object_get(mem, "prefix_cache_rows")) > 0 &&
          json_integer_value(json_object_get(mem, "prefix_cache_bytes")) > 0);
    CHECK(json_is_false(json_object_get(m, "random_weights")));
    json_t *lim = json_object_get(j, "limits");
    CHECK(json_integer_value(json_object_get(lim, "max_responses")) == LIMIT_RESPONSES);
    CHECK(json_integer_value(json_object_get(lim, "max_tiles")) == LIMIT_TILES);
    CHECK(json_integer_value(json_object_get(lim, "max_tokens")) == LIMIT_TOKENS);
    CHECK(json_string_value(json_object_get(j, "version")));
    json_decref(j);
    vp_http_reply_free(&r);

    vp_http_reply a, b2;
    request("GET", "/metrics", NULL, 0, with_key, &a);
    const char *ok = "{\"question\": \"q\", \"responses\": [\"a\\n\\nb\", \"c\"]}";
    request("POST", "/v1/score", ok, strlen(ok), with_key, &r);
    CHECK(r.status == 200);
    vp_http_reply_free(&r);
    /* the request is counted when its connection finishes the answer: a moment after the
     * client has it (longer on a loaded machine under ASan), so poll for up to 10 s */
    const char *done_200 = "vprm_requests_total{route=\"/v1/score\",status=\"200\"}";
    for (int tries = 0;; tries++) {
        request("GET", "/metrics", NULL, 0, with_key, &b2);
        if (metric(b2.body, done_200) > metric(a.body, done_200) || tries == 100)
            break;
        vp_http_reply_free(&b2);
        usleep(100000);
    }
    char buf[128];
    CHECK(a.status == 200 && vp_http_header(&a, "Content-Type", buf, sizeof buf) &&
          !strncmp(buf, "text/plain", 10));
    const char *series[] = {"vprm_queue_depth", "vprm_batch_jobs_count", "vprm_batch_tokens_count",
                            "vprm_tokens_computed_total", "vprm_tokens_saved_total",
                            "vprm_stage_seconds_count{stage=\"queue\"}",
                            "vprm_stage_seconds_count{stage=\"preprocess\"}",
                            "vprm_stage_seconds_count{stage=\"vision\"}",
                            "vprm_stage_seconds_count{stage=\"language\"}",
                            "vprm_stage_seconds_count{stage=\"total\"}",
                            "vprm_image_cache_lookups_total{result=\"hit\"}",
                            "vprm_image_cache_bytes", "vprm_weights_bytes",
                            "vprm_prefix_cache_lookups_total{result=\"hit\"}",
                            "vprm_prefix_cache_tokens_reused_total", "vprm_prefix_cache_rows",
                            "vprm_working_memory_bytes"};
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++)
        CHECK_MSG(metric(a.body, series[i]) >= 0, "metrics lack %s", series[i]);
    CHECK(metric(b2.body, "vprm_requests_total{route=\"/v1/score\",status=\"200\"}") ==
          metric(a.body, "vprm_requests_total{route=\"/v1/score\",status=\"200\"}") + 1);
    CHECK(metric(b2.body, "vprm_requests_total{route=\"/v1/score\",status=\"400\"}") >= 14);
    CHECK(metric(b2.body, "vprm_requests_total{route=\"/v1/score\",status=\"413\"}") >= 6);
    CHECK(metric(b2.body, "vprm_stage_seconds_count{stage=\"total\"}") ==
          metric(a.body, "vprm_stage_seconds_count{stage=\"total\"}") + 1);
    CHECK(metric(b2.body, "vprm_tokens_saved_total") > metric(a.body, "vprm_tokens_saved_total"));
    CHECK(metric(a.body, "vprm_weights_bytes") > 1e6);
    CHECK(metric(a.body, "vprm_prefix_cache_lookups_total{result=\"hit\"}") >= 1); /* the repeat */
    CHECK(metric(a.body, "vprm_prefix_cache_rows") > 0);
    CHECK(metric(a.body, "vprm_gpu_memory_used_bytes") < 0); /* absent: not a GPU backend */
    /* every counter and histogram sample only grows (gauges, named by their "# TYPE ...
     * gauge" lines, may go either way: the heap in use, the queue depth) */
    int shrunk = 0, compared = 0, gauges = 0;
    char first_shrunk[256] = "";
    for (const char *p = a.body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (*p == '#')
            continue;
        const char *sp = strchr(p, ' ');
        if (!sp)
            continue;
        char name[256], family[256], type_line[300];
        size_t n = (size_t)(sp - p) < sizeof name - 1 ? (size_t)(sp - p) : sizeof name - 1;
        memcpy(name, p, n);
        name[n] = 0;
        memcpy(family, name, n + 1);
        family[strcspn(family, "{")] = 0;
        snprintf(type_line, sizeof type_line, "# TYPE %s gauge\n", family);
        if (strstr(a.body, type_line)) {
            gauges++;
            continue;
        }
        compared++;
        if (metric(b2.body, name) < atof(sp + 1) && !shrunk++)
            snprintf(first_shrunk, sizeof first_shrunk, "%s", name);
    }
    CHECK_MSG(shrunk == 0 && compared > 50 && gauges >= 10,
              "%d of %d samples shrank (the first: %s); %d gauge samples skipped", shrunk,
              compared, first_shrunk, gauges);
    vp_http_reply_free(&a);
    vp_http_reply_free(&b2);
}

/* The client's own request id: echoed in x-client-request-id (X-Client-Request-Id before
 * X-Request-Id), on answers and on errors; one with other characters or over 64 is not. */
static void client_id_case(const char *path, const char *h1, const char *h2, const char *want)
{
    const char *body = "{\"question\": \"q\", \"responses\": [\"a\"]}";
    const char *headers[] = {auth, "Content-Type: application/json", h1, h2, NULL};
    vp_http_reply r;
    request("POST", path, body, strlen(body), headers, &r);
    char buf[128];
    bool has = vp_http_header(&r, "x-client-request-id", buf, sizeof buf) != NULL;
    if (want)
        CHECK_MSG(has && !strcmp(buf, want), "%s %s: x-client-request-id '%s', expected '%s'",
                  path, h1, has ? buf : "(none)", want);
    else
        CHECK_MSG(!has, "%s %s: x-client-request-id '%s', expected none", path, h1, buf);
    CHECK_MSG(vp_http_header(&r, "x-request-id", buf, sizeof buf) && !strncmp(buf, "scr_", 4),
              "%s %s: our x-request-id is gone", path, h1);
    vp_http_reply_free(&r);
}

static void test_client_request_ids(void)
{
    client_id_case("/v1/score", "X-Request-Id: rl-step7/group:3.item_2", NULL,
                   "rl-step7/group:3.item_2");
    client_id_case("/v1/score", "X-Request-Id: from-x-request-id",
                   "X-Client-Request-Id: from-x-client", "from-x-client");
    client_id_case("/v1/nothing", "X-Client-Request-Id: lost=1@b+c", NULL, "lost=1@b+c");
    client_id_case("/v1/score", "X-Request-Id: two words", NULL, NULL);
    client_id_case("/v1/score", "X-Request-Id: quote\"d", NULL, NULL);
    /* spaces and tabs around a value are not part of it; X-Request-Id when the other is no id */
    client_id_case("/v1/score", "X-Client-Request-Id: \t padded-id \t", NULL, "padded-id");
    client_id_case("/v1/score", "X-Request-Id: good-2", "X-Client-Request-Id: bad id!", "good-2");
    char long_id[96];
    memset(long_id, 0, sizeof long_id);
    strcpy(long_id, "X-Request-Id: ");
    memset(long_id + strlen(long_id), 'a', 65);
    client_id_case("/v1/score", long_id, NULL, NULL);
    long_id[strlen(long_id) - 1] = 0; /* 64 characters: taken */
    client_id_case("/v1/score", long_id, NULL, long_id + strlen("X-Request-Id: "));
}

/* A field nothing reads is named in "warnings" (a typo must not pass silently as the
 * default); answers without one carry no "warnings"; in a batch, only its item's. */
static void test_unknown_field_warnings(void)
{
    long st;
    vp_http_reply r;
    json_t *j = post_json("/v1/score", "{\"question\": \"q\", \"responses\": [\"a\", \"b\"], "
                                       "\"aggregaton\": \"min\", \"model\": \"x\"}", &st, &r);
    const char *w = json_string_value(json_array_get(json_object_get(j, "warnings"), 0));
    CHECK_MSG(st == 200 && w && !strcmp(w, "unknown fields ignored: aggregaton"), "%ld %.300s", st,
              r.body);
    json_decref(j);
    vp_http_reply_free(&r);
    j = post_json("/v1/score", "{\"question\": \"q\", \"responses\": [\"a\"], \"model\": \"x\"}",
                  &st, &r);
    CHECK_MSG(st == 200 && j && !json_object_get(j, "warnings"), "%ld %.300s", st, r.body);
    json_decref(j);
    vp_http_reply_free(&r);
    j = post_json("/v1/score/batch",
                  "{\"requests\": [{\"question\": \"q\", \"responses\": [\"a\"]}, "
                  "{\"question\": \"q\", \"responses\": [\"a\"], \"retrun_steps\": false}]}",
                  &st, &r);
    json_t *res = json_object_get(j, "results");
    w = json_string_value(json_array_get(json_object_get(json_array_get(res, 1), "warnings"), 0));
    CHECK_MSG(st == 200 && !json_object_get(json_array_get(res, 0), "warnings") && w &&
                  !strcmp(w, "unknown fields ignored: retrun_steps") &&
                  !json_object_get(j, "warnings"),
              "%ld %.400s", st, r.body);
    json_decref(j);
    vp_http_reply_free(&r);
    /* a response object's keys other than "steps"; a batch's top-level options (meant as
     * defaults for its items, which they are not) in the batch's own warnings */
    j = post_json("/v1/score", "{\"question\": \"q\", \"responses\": [\"a\", {\"steps\": [\"b\"], "
                               "\"label\": 1}]}", &st, &r);
    w = json_string_value(json_array_get(json_object_get(j, "warnings"), 0));
    CHECK_MSG(st == 200 && w && !strcmp(w, "unknown fields ignored: responses[1].label"),
              "%ld %.300s", st, r.body);
    json_decref(j);
    vp_http_reply_free(&r);
    j = post_json("/v1/score/batch",
                  "{\"requests\": [{\"question\": \"q\", \"responses\": [\"a\"]}], "
                  "\"aggregation\": \"min\", \"return_logits\": true, \"priority\": \"low\"}",
                  &st, &r);
    res = json_object_get(j, "results");
    w = json_string_value(json_array_get(json_object_get(j, "warnings"), 0));
    CHECK_MSG(st == 200 && w && !strcmp(w, "unknown fields ignored: aggregation, return_logits") &&
                  !json_object_get(json_array_get(res, 0), "warnings") &&
                  json_object_get(json_array_get(res, 0), "results") &&
                  !json_object_get(json_array_get(json_object_get(json_array_get(res, 0), "results"), 0),
                                   "step_logits"),
              "%ld %.400s", st, r.body);
    json_decref(j);
    vp_http_reply_free(&r);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: http_api BASE_URL API_KEY\n");
        return 2;
    }
    base = argv[1];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[2]);
    test_routing_and_auth();
    test_bad_requests();
    test_limits();
    test_score_contract();
    test_models_and_metrics();
    test_client_request_ids();
    test_unknown_field_warnings();
    return check_summary("http_api");
}
