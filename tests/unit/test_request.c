/* Request parsing: fields, defaults, step splitting/merging, base64, limits, errors. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/base64.h"
#include "proto/request.h"
#include "engine/util/utf8.h"
#include "tests/unit/check.h"

static vp_request_limits limits(void)
{
    vp_request_limits l;
    vp_request_limits_default(&l);
    return l;
}

static int parse(const char *json, vp_score_request *r, vp_error *err)
{
    vp_request_limits l = limits();
    return vp_request_parse(json, strlen(json), &l, r, err);
}

static int text_is(const vp_text *t, const char *s)
{
    return t->len == strlen(s) && !memcmp(t->s, s, t->len);
}

static void test_split(void)
{
    vp_text *steps;
    size_t n;
    vp_error err;
    CHECK(!vp_split_steps("a\n\nb\n\n\n\nc", 9, "\n\n", 2, 0, &steps, &n, &err));
    /* python: "a\n\nb\n\n\n\nc".split("\n\n") == ['a', 'b', '', 'c'] */
    CHECK(n == 4 && text_is(&steps[0], "a") && text_is(&steps[1], "b") && text_is(&steps[2], "") &&
          text_is(&steps[3], "c"));
    for (size_t i = 0; i < n; i++)
        free(steps[i].s);
    free(steps);
    /* 7 steps, max_steps 3: g = ceil(7/3) = 3 -> [0:3], [3:6], [6:7] */
    const char *seven = "1\n\n2\n\n3\n\n4\n\n5\n\n6\n\n7";
    CHECK(!vp_split_steps(seven, strlen(seven), "\n\n", 2, 3, &steps, &n, &err));
    CHECK(n == 3 && text_is(&steps[0], "1\n\n2\n\n3") && text_is(&steps[1], "4\n\n5\n\n6") &&
          text_is(&steps[2], "7"));
    for (size_t i = 0; i < n; i++)
        free(steps[i].s);
    free(steps);
    /* 5 steps, max_steps 4: g = 2 -> 3 steps, fewer than max_steps (the reference's rule) */
    CHECK(!vp_split_steps("a|b|c|d|e", 9, "|", 1, 4, &steps, &n, &err));
    CHECK(n == 3 && text_is(&steps[2], "e") && text_is(&steps[0], "a\n\nb"));
    for (size_t i = 0; i < n; i++)
        free(steps[i].s);
    free(steps);
    CHECK(!vp_split_steps("", 0, "\n\n", 2, 0, &steps, &n, &err));
    CHECK(n == 1 && steps[0].len == 0);
    free(steps[0].s);
    free(steps);
}

/* Python's str.split(sep) (leftmost, non-overlapping, empty parts kept), one byte at a
 * time: the reference for vp_split_steps without merging. */
static size_t naive_split(const char *t, size_t len, const char *sep, size_t sl, size_t *starts,
                          size_t *lens)
{
    size_t n = 0, start = 0, i = 0;
    while (i + sl <= len) {
        if (!memcmp(t + i, sep, sl)) {
            starts[n] = start, lens[n++] = i - start;
            i += sl;
            start = i;
        } else {
            i++;
        }
    }
    starts[n] = start, lens[n++] = len - start;
    return n;
}

static void test_split_random(void)
{
    /* overlapping separators ("aa" in "aaaaa" -> "", "", "a"), over 3,000 random strings of
     * a two-letter alphabet */
    srand(7);
    char t[64], sep[4];
    size_t starts[65], lens[65];
    for (int trial = 0; trial < 3000; trial++) {
        size_t len = (size_t)(rand() % 40), sl = 1 + (size_t)(rand() % 3);
        for (size_t i = 0; i < len; i++)
            t[i] = "ab"[rand() % 2];
        for (size_t i = 0; i < sl; i++)
            sep[i] = "ab"[rand() % 3 == 0];
        size_t want = naive_split(t, len, sep, sl, starts, lens);
        vp_text *steps;
        size_t n;
        vp_error err;
        CHECK(!vp_split_steps(t, len, sep, sl, 0, &steps, &n, &err));
        CHECK(n == want);
        for (size_t i = 0; i < n && i < want; i++)
            CHECK(steps[i].len == lens[i] && !memcmp(steps[i].s, t + starts[i], lens[i]));
        for (size_t i = 0; i < n; i++)
            free(steps[i].s);
        free(steps);
    }
    /* a long separator that almost matches everywhere: a memcmp at every place costs
     * 2^20 x 3 x 2^20 byte compares (minutes); a linear search, milliseconds. The bound is
     * hundreds of times what a linear search needs on a slow machine. */
    size_t len = 1u << 22, sl = 1u << 20;
    char *text = malloc(len), *long_sep = malloc(sl);
    CHECK(text && long_sep);
    if (!text || !long_sep)
        return;
    memset(text, 'a', len);
    memset(long_sep, 'a', sl - 1);
    long_sep[sl - 1] = 'b';
    text[len - 1] = 'b'; /* one match, at the very end */
    clock_t t0 = clock();
    vp_text *steps;
    size_t n;
    vp_error err;
    CHECK(!vp_split_steps(text, len, long_sep, sl, 0, &steps, &n, &err));
    double cpu_s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(n == 2 && steps[0].len == len - sl && steps[1].len == 0);
    CHECK(cpu_s < 5.0);
    if (cpu_s >= 5.0)
        fprintf(stderr, "splitting by a %zu-byte separator took %.1f s of CPU\n", sl, cpu_s);
    for (size_t i = 0; i < n; i++)
        free(steps[i].s);
    free(steps);
    free(text);
    free(long_sep);
}

static void test_base64(void)
{
    /* RFC 4648 section 10 test vectors */
    const char *enc[] = {"Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *dec[] = {"f", "fo", "foo", "foob", "fooba", "foobar"};
    for (int i = 0; i < 6; i++) {
        uint8_t out[16];
        size_t n = 0, bad = 0;
        CHECK(!vp_base64_decode(enc[i], strlen(enc[i]), out, &n, &bad));
        CHECK(n == strlen(dec[i]) && !memcmp(out, dec[i], n));
        char *back = vp_base64_encode((const uint8_t *)dec[i], strlen(dec[i]));
        CHECK(back && !strcmp(back, enc[i]));
        free(back);
    }
    uint8_t out[16];
    size_t n, bad = 99;
    CHECK(vp_base64_decode("Zm9v!", 5, out, &n, &bad) && bad == 4);
    CHECK(vp_base64_decode("Zm9vY", 5, out, &n, &bad)); /* lone trailing character */
    CHECK(!vp_base64_decode("Zm9v\nYmFy", 9, out, &n, &bad) && n == 6);
    /* the decoder (a fast path over whole groups) equals a plain bit accumulator on random
     * strings mixing the alphabets, whitespace, padding and stray characters */
    static const char pool[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA \n\r\t==!*";
    uint64_t x = 88172645463325252ull;
    int differ = 0;
    for (int t = 0; t < 20000; t++) {
        char in[64];
        size_t len = (size_t)(t % 61);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* mostly alphabet, sometimes whitespace, padding or junk */
            size_t k = (x >> 8) % 100 < 90 ? (size_t)((x >> 20) % 66) : (size_t)((x >> 20) % (sizeof pool - 1));
            in[i] = pool[k];
        }
        uint8_t got[64], want[64];
        size_t gn = 0, wn = 0, gb = 0, wb = 0;
        int grc = vp_base64_decode(in, len, got, &gn, &gb);
        /* reference: one character at a time */
        int wrc = 0, bits = 0;
        uint32_t acc = 0;
        size_t pad = 0;
        for (size_t i = 0; i < len && !wrc; i++) {
            const char *p = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", in[i]);
            int v = in[i] == '-' ? 62 : in[i] == '_' ? 63 : p && in[i] ? (int)(p - "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") : -1;
            if (in[i] == ' ' || in[i] == '\n' || in[i] == '\r' || in[i] == '\t')
                continue;
            if (in[i] == '=') {
                if (++pad > 2)
                    wrc = -1, wb = i;
                continue;
            }
            if (v < 0 || pad) {
                wrc = -1, wb = i;
                continue;
            }
            acc = acc << 6 | (uint32_t)v;
            bits += 6;
            if (bits >= 8)
                bits -= 8, want[wn++] = (uint8_t)(acc >> bits);
        }
        if (!wrc && bits >= 6)
            wrc = -1, wb = len;
        differ += grc != wrc || (grc ? gb != wb : gn != wn || memcmp(got, want, gn) != 0);
    }
    CHECK_MSG(differ == 0, "%d of 20000 random strings decode differently", differ);
}

static void test_fields(void)
{
    vp_score_request r;
    vp_error err;
    CHECK(!parse("{\"question\": \"q\", \"responses\": [\"a\\n\\nb\", [\"x\", \"y\", \"z\"], "
                 "{\"steps\": [\"s\"]}]}",
                 &r, &err));
    CHECK(r.n_responses == 3 && r.responses[0].n_steps == 2 && r.responses[1].n_steps == 3 &&
          r.responses[2].n_steps == 1);
    CHECK(r.aggregation == VP_AGG_MEAN && r.return_steps && !r.return_logits && r.n_images == 0);
    CHECK(r.priority == VP_PRIORITY_NORMAL && !r.priority_given);
    vp_request_free(&r);

    CHECK(!parse("{\"question\": \"q\", \"image\": \"data:image/png;base64,Zm9vYmFy\", "
                 "\"responses\": [\"a\"], \"aggregation\": \"min\", \"return_logits\": true, "
                 "\"max_tiles\": 6, \"step_separator\": \"|\"}",
                 &r, &err));
    CHECK(r.n_images == 1 && r.images[0].len == 6 && !memcmp(r.images[0].data, "foobar", 6));
    CHECK(r.aggregation == VP_AGG_MIN && r.return_logits && r.max_tiles == 6);
    vp_request_free(&r);
    const char *prio_names[] = {"high", "normal", "low"};
    for (int p = 0; p < 3; p++) {
        char body[128];
        snprintf(body, sizeof body, "{\"question\": \"q\", \"responses\": [\"a\"], \"priority\": \"%s\"}",
                 prio_names[p]);
        CHECK(!parse(body, &r, &err));
        CHECK_MSG(r.priority == (vp_priority)p && r.priority_given, "%s", prio_names[p]);
        CHECK(!strcmp(vp_priority_name(r.priority), prio_names[p]) && !r.unknown_fields[0]);
        vp_request_free(&r);
    }
    CHECK(!parse("{\"question\": \"q\", \"responses\": [\"a\"], \"priority\": null}", &r, &err));
    CHECK(r.priority == VP_PRIORITY_NORMAL && !r.priority_given);
    vp_request_free(&r);

    CHECK(!parse("{\"question\": \"q\", \"responses\": [\"a|b|c\"], \"step_separator\": \"|\", "
                 "\"max_steps\": 2}",
                 &r, &err));
    CHECK(r.responses[0].n_steps == 2 && text_is(&r.responses[0].steps[0], "a\n\nb"));
    vp_request_free(&r);
    /* whole numbers written as reals are integers (JSON Schema's reading; the OpenAPI file) */
    CHECK(!parse("{\"question\": \"q\", \"responses\": [\"a|b|c\"], \"step_separator\": \"|\", "
                 "\"max_steps\": 2.0, \"max_tiles\": 3e0}",
                 &r, &err));
    CHECK(r.responses[0].n_steps == 2 && r.max_steps == 2 && r.max_tiles == 3);
    vp_request_free(&r);

    /* a max_steps above any step count merges nothing; URL schemes and ;base64 ignore case */
    CHECK(!parse("{\"question\": \"q\", \"responses\": [\"a|b\"], \"step_separator\": \"|\", "
                 "\"max_steps\": 2000000, \"image\": \"DATA:image/png;BASE64,Zm9vYmFy\"}",
                 &r, &err));
    CHECK(r.responses[0].n_steps == 2 && r.n_images == 1 && r.images[0].len == 6 &&
          !memcmp(r.images[0].data, "foobar", 6));
    vp_request_free(&r);
}

static void expect_error(const char *json, vp_err_kind kind, const char *param, const char *word)
{
    vp_score_request r;
    vp_error err = {0};
    int rc = parse(json, &r, &err);
    CHECK_MSG(rc == -1 && err.kind == kind && !strcmp(err.param, param) && strstr(err.message, word),
              "%s -> kind %d param '%s' message '%s'", json, err.kind, err.param, err.message);
    if (rc == 0)
        vp_request_free(&r);
}

static void test_errors(void)
{
    expect_error("{\"question\": ", VP_ERR_BAD_REQUEST, "", "malformed JSON");
    expect_error("[1, 2]", VP_ERR_BAD_REQUEST, "", "JSON object");
    expect_error("{\"responses\": [\"a\"]}", VP_ERR_BAD_REQUEST, "question", "missing");
    expect_error("{\"question\": 5, \"responses\": [\"a\"]}", VP_ERR_BAD_REQUEST, "question", "string");
    expect_error("{\"question\": \"q\"}", VP_ERR_BAD_REQUEST, "responses", "missing");
    expect_error("{\"question\": \"q\", \"responses\": []}", VP_ERR_BAD_REQUEST, "responses", "at least one");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\", 7]}", VP_ERR_BAD_REQUEST, "responses[1]", "string");
    expect_error("{\"question\": \"q\", \"responses\": [[]]}", VP_ERR_BAD_REQUEST, "responses[0]", "empty");
    expect_error("{\"question\": \"q\", \"responses\": [[\"a\", 1]]}", VP_ERR_BAD_REQUEST, "responses[0][1]", "string");
    expect_error("{\"question\": \"q\", \"responses\": [{\"stps\": []}]}", VP_ERR_BAD_REQUEST, "responses[0].steps", "missing");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"aggregation\": \"median\"}", VP_ERR_BAD_REQUEST, "aggregation", "mean");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"priority\": \"urgent\"}", VP_ERR_BAD_REQUEST, "priority", "high, normal, low");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"priority\": \"HIGH\"}", VP_ERR_BAD_REQUEST, "priority", "high, normal, low");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"priority\": 0}", VP_ERR_BAD_REQUEST, "priority", "high, normal, low");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"priority\": \"high\\u0000\"}", VP_ERR_BAD_REQUEST, "priority", "high, normal, low");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_steps\": 0}", VP_ERR_BAD_REQUEST, "max_steps", "positive");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_steps\": 2.5}", VP_ERR_BAD_REQUEST, "max_steps", "positive");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_steps\": 0.0}", VP_ERR_BAD_REQUEST, "max_steps", "positive");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_steps\": 1e300}", VP_ERR_BAD_REQUEST, "max_steps", "positive");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_tiles\": \"2\"}", VP_ERR_BAD_REQUEST, "max_tiles", "positive");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_tiles\": 40}", VP_ERR_TOO_LARGE, "max_tiles", "max_tiles=12");
    /* any value over the server's limit is that limit's 413, however large */
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_tiles\": 1000001}", VP_ERR_TOO_LARGE, "max_tiles", "max_tiles=12");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"max_steps\": 3000000000}", VP_ERR_BAD_REQUEST, "max_steps", "2147483647");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"HTTP://x/y.png\"}", VP_ERR_BAD_REQUEST, "image", "not enabled");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"return_logits\": 1}", VP_ERR_BAD_REQUEST, "return_logits", "true or false");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"@@@\"}", VP_ERR_BAD_REQUEST, "image", "base64");
    /* a file path is the usual mistake from curl: the message says paths are not read */
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"/tmp/a.png\"}", VP_ERR_BAD_REQUEST, "image", "file paths are not read");
    /* padding or whitespace only: no bytes (found by tests/fuzz/fuzz_request.c) */
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"=\"}", VP_ERR_BAD_REQUEST, "image", "empty");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"images\": [\"Zm9v\", \"data:image/png;base64, \\n\"]}", VP_ERR_BAD_REQUEST, "images[1]", "empty");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"images\": [\"Zm9v\", 3]}", VP_ERR_BAD_REQUEST, "images[1]", "string");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"data:image/png,abc\"}", VP_ERR_BAD_REQUEST, "image", "base64");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"Zm9vY\"}", VP_ERR_BAD_REQUEST, "image", "base64 is cut short");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"Zm9v*mFy\"}", VP_ERR_BAD_REQUEST, "image", "invalid base64 at character 4");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"http://x/y.png\"}", VP_ERR_BAD_REQUEST, "image", "not enabled");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"Zm9v\", \"images\": []}", VP_ERR_BAD_REQUEST, "images", "not both");
    expect_error("{\"question\": \"\", \"responses\": [\"a\"]}", VP_ERR_BAD_REQUEST, "question", "empty");
    expect_error("{\"question\": \"q\", \"question\": \"r\", \"responses\": [\"a\"]}", VP_ERR_BAD_REQUEST, "", "duplicate");
    expect_error("{\"question\": \"q\", \"question\": \"r\", \"responses\": [\"a\"]}", VP_ERR_BAD_REQUEST, "", "a key repeated in one object at line 1");
    /* valid JSON that jansson cannot hold, each said so rather than "malformed" */
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"seed\": 99999999999999999999}", VP_ERR_BAD_REQUEST, "", "a number out of range at line 1");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"x\": 1e400}", VP_ERR_BAD_REQUEST, "", "a number out of range");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"], \"a\\u0000b\": 1}", VP_ERR_BAD_REQUEST, "", "an object key holding a NUL");
    expect_error("\xEF\xBB\xBF{\"question\": \"q\", \"responses\": [\"a\"]}", VP_ERR_BAD_REQUEST, "", "byte order mark");
    expect_error("{\"question\": \"q\", \"responses\": [\"a\"]} {}", VP_ERR_BAD_REQUEST, "", "data after the JSON value at line 1");
    {
        static const char trailing_nul[] = "{\"question\": \"q\", \"responses\": [\"a\"]}\0";
        vp_request_limits l = limits();
        vp_score_request r;
        vp_error err = {0};
        CHECK(vp_request_parse(trailing_nul, sizeof trailing_nul - 1, &l, &r, &err) == -1);
        CHECK_MSG(strstr(err.message, "data after the JSON value") && strstr(err.message, "a NUL byte"),
                  "%s", err.message);
    }
    /* invalid UTF-8 inside a string */
    expect_error("{\"question\": \"\xff\xfe\", \"responses\": [\"a\"]}", VP_ERR_BAD_REQUEST, "", "malformed JSON");
    /* limits */
    vp_request_limits l = limits();
    l.max_responses = 2;
    vp_score_request r;
    vp_error err = {0};
    const char *three = "{\"question\": \"q\", \"responses\": [\"a\", \"b\", \"c\"]}";
    CHECK(vp_request_parse(three, strlen(three), &l, &r, &err) && err.kind == VP_ERR_TOO_LARGE &&
          strstr(err.message, "max_responses=2"));
    l = limits();
    l.max_steps = 2;
    const char *many = "{\"question\": \"q\", \"responses\": [\"a\\n\\nb\\n\\nc\"]}";
    CHECK(vp_request_parse(many, strlen(many), &l, &r, &err) && err.kind == VP_ERR_TOO_LARGE &&
          !strcmp(err.param, "responses[0]") && strstr(err.message, "at most 2"));
    /* the request's own max_steps above the server's: the message says to lower it */
    const char *high = "{\"question\": \"q\", \"max_steps\": 5, \"responses\": [\"a\\n\\nb\\n\\nc\"]}";
    CHECK_MSG(vp_request_parse(high, strlen(high), &l, &r, &err) && err.kind == VP_ERR_TOO_LARGE &&
                  strstr(err.message, "lower the request's \"max_steps\" to at most 2"),
              "max_steps above the server's: %s", err.message);
    l = limits();
    l.max_image_bytes = 5;
    const char *img = "{\"question\": \"q\", \"responses\": [\"a\"], \"image\": \"Zm9vYmFy\"}";
    CHECK(vp_request_parse(img, strlen(img), &l, &r, &err) && err.kind == VP_ERR_TOO_LARGE &&
          strstr(err.message, "max_image_bytes=5"));
    /* values counted before parsing: 1 + 2 commas + 2 colons + 2 brackets = 7 at most */
    l = limits();
    l.max_json_values = 6;
    const char *two = "{\"question\": \"q,:[{\", \"responses\": [\"a\", \"b\"]}";
    CHECK(vp_request_parse(two, strlen(two), &l, &r, &err) && err.kind == VP_ERR_TOO_LARGE &&
          strstr(err.message, "max_json_values=6"));
    l.max_json_values = 7; /* the punctuation inside the string does not count */
    CHECK(!vp_request_parse(two, strlen(two), &l, &r, &err));
    vp_request_free(&r);
    /* text: the question, a response string, or a response's steps together, as sent (an
     * escape counts as the byte it stands for); the limit itself is allowed */
    l = limits();
    l.max_text_bytes = 6;
    static const struct {
        const char *body, *param; /* param NULL: accepted */
    } text[] = {
        {"{\"question\": \"qqqqqq\", \"responses\": [\"a\"]}", NULL},
        {"{\"question\": \"qqqqqqq\", \"responses\": [\"a\"]}", "question"},
        {"{\"question\": \"q\", \"responses\": [\"a\", \"ab\\n\\ncd\"]}", NULL},
        {"{\"question\": \"q\", \"responses\": [\"a\", \"ab\\n\\ncde\"]}", "responses[1]"},
        {"{\"question\": \"q\", \"responses\": [[\"abc\", \"def\"]]}", NULL},
        {"{\"question\": \"q\", \"responses\": [[\"abc\", \"defg\"]]}", "responses[0]"},
        {"{\"question\": \"q\", \"responses\": [{\"steps\": [\"ab\", \"cd\", \"efg\"]}]}",
         "responses[0].steps"},
        /* merged into one step "abc\n\ndef": 8 bytes, the separator not counted */
        {"{\"question\": \"q\", \"max_steps\": 1, \"responses\": [[\"abc\", \"def\"]]}", NULL},
    };
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = vp_request_parse(text[i].body, strlen(text[i].body), &l, &r, &err);
        if (text[i].param)
            CHECK_MSG(rc && err.kind == VP_ERR_TOO_LARGE && !strcmp(err.param, text[i].param) &&
                          strstr(err.message, "max_text_bytes=6"),
                      "text case %zu: rc %d, %s: %s", i, rc, err.param, err.message);
        else
            CHECK_MSG(rc == 0, "text case %zu: %s", i, err.message);
        if (rc == 0)
            vp_request_free(&r);
    }
}

/* Random mutations of valid bodies: every outcome is a parsed request or an error with a
 * kind and a message; nothing crashes or leaks (this runs under ASan/UBSan). */
static void test_mutations(void)
{
    static const char *seeds[] = {
        "{\"question\": \"q <image>\", \"images\": [\"data:image/png;base64,Zm9vYmFy\"], "
        "\"responses\": [\"a\\n\\nb\", [\"x\", \"\"], {\"steps\": [\"s\"]}], "
        "\"max_steps\": 2, \"aggregation\": \"product\", \"max_tiles\": 4, \"return_logits\": true}",
        "{\"question\": \"\\u00e9\\ud83d\\ude00\", \"responses\": [\"1\\n\\n2\\n\\n3\"], "
        "\"step_separator\": \"\\n\\n\", \"image\": null}",
    };
    static const char alphabet[] = "{}[]\":,\\ \n0123456789.-+eEtrufalsnabqimg/=\xff\xc3";
    uint64_t state = 0x9e3779b97f4a7c15ull;
    size_t parsed = 0, refused = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t len = strlen(seed);
        char buf[1024];
        memcpy(buf, seed, len);
        int edits = 1 + (int)(state % 4);
        for (int e = 0; e < edits; e++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(state >> 33) % len;
            char c = alphabet[(state >> 20) % (sizeof alphabet - 1)];
            switch ((state >> 10) % 3) {
            case 0: buf[pos] = c; break;                                   /* replace */
            case 1: memmove(buf + pos, buf + pos + 1, len - pos - 1); len--; break; /* delete */
            default:                                                       /* insert */
                if (len + 1 < sizeof buf) {
                    memmove(buf + pos + 1, buf + pos, len - pos);
                    buf[pos] = c;
                    len++;
                }
            }
        }
        vp_request_limits l = limits();
        vp_score_request r;
        vp_error err = {0};
        if (vp_request_parse(buf, len, &l, &r, &err) == 0) {
            parsed++;
            if (r.n_responses == 0 || !r.responses[0].n_steps)
                bad++;
            vp_request_free(&r);
        } else {
            refused++;
            if (err.kind == VP_ERR_NONE || err.message[0] == 0)
                bad++;
        }
    }
    CHECK_MSG(bad == 0, "%zu mutated bodies parsed without responses or failed without a message", bad);
    CHECK(parsed > 0 && refused > 0);
    printf("request mutations: %zu parsed, %zu refused with a message\n", parsed, refused);
}

/* Fields nothing reads are named in unknown_fields (the answer's warning); the known ones
 * and "model" are not; a long list ends on "..." and stays valid UTF-8. */
static void test_unknown_fields(void)
{
    vp_score_request r;
    vp_error err;
    CHECK(!parse("{\"question\": \"q\", \"responses\": [\"a\"], \"aggregation\": \"min\", "
                 "\"return_steps\": false, \"return_logits\": true, \"max_tiles\": 2, "
                 "\"max_steps\": 3, \"step_separator\": \"|\", \"model\": \"VisualPRM-8B\", "
                 "\"images\": []}",
                 &r, &err));
    CHECK_MSG(r.unknown_fields[0] == 0, "unknown '%s'", r.unknown_fields);
    vp_request_free(&r);
    CHECK(!parse("{\"question\": \"q\", \"aggregaton\": \"min\", \"responses\": [\"a\"], "
                 "\"Return_Logits\": true}",
                 &r, &err));
    CHECK_MSG(!strcmp(r.unknown_fields, "aggregaton, Return_Logits"), "unknown '%s'",
              r.unknown_fields);
    CHECK(r.aggregation == VP_AGG_MEAN && !r.return_logits);
    vp_request_free(&r);
    /* the empty name shows, first or between others */
    CHECK(!parse("{\"\": 1, \"question\": \"q\", \"responses\": [\"a\"]}", &r, &err));
    CHECK_MSG(!strcmp(r.unknown_fields, "\"\""), "unknown '%s'", r.unknown_fields);
    vp_request_free(&r);
    CHECK(!parse("{\"b\": 1, \"\": 2, \"c\": 3, \"question\": \"q\", \"responses\": [\"a\"]}", &r, &err));
    CHECK_MSG(!strcmp(r.unknown_fields, "b, \"\", c"), "unknown '%s'", r.unknown_fields);
    vp_request_free(&r);

    /* 30 names of 39 x 'e' + an accent (41 bytes, cut to 40 would split the accent) */
    char body[4096] = "{\"question\": \"q\", \"responses\": [\"a\"]";
    for (int i = 0; i < 30; i++) {
        size_t at = strlen(body);
        snprintf(body + at, sizeof body - at, ", \"%02d%.37s\xc3\xa9\": 1", i,
                 "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    }
    strcat(body, "}");
    CHECK(!parse(body, &r, &err));
    size_t n = strlen(r.unknown_fields), bad = 0;
    CHECK_MSG(n < VP_UNKNOWN_FIELDS_MAX && n > 100 && !strcmp(r.unknown_fields + n - 3, "...") &&
                  vp_utf8_valid(r.unknown_fields, n, &bad),
              "unknown (%zu bytes) '%s'", n, r.unknown_fields);
    /* the first name cut before its accent: "00" and 37 x 'e' */
    CHECK(!strncmp(r.unknown_fields, "00eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee, 01", 43));
    vp_request_free(&r);

    /* a response object's keys other than "steps", after the top level's, by index; a
     * list cut short takes no more after its "..." */
    CHECK(!parse("{\"question\": \"q\", \"responses\": [{\"steps\": [\"a\"], \"label\": 1}, \"b\", "
                 "{\"steps\": [\"c\"]}, {\"Steps\": 0, \"steps\": [\"d\"]}], \"x\": 1}",
                 &r, &err));
    CHECK_MSG(!strcmp(r.unknown_fields, "x, responses[0].label, responses[3].Steps"), "unknown '%s'",
              r.unknown_fields);
    vp_request_free(&r);
    char list[24] = "";
    json_t *o = json_pack("{s:i, s:i, s:i}", "alpha", 1, "beta", 2, "gamma", 3);
    static const char *const none[] = {"beta"};
    vp_note_unknown_fields(o, none, 1, "p.", list, sizeof list);
    CHECK_MSG(!strcmp(list, "p.alpha, p.gamma"), "'%s'", list);
    vp_note_unknown_fields(o, none, 1, "longer.", list, sizeof list);
    CHECK_MSG(!strcmp(list, "p.alpha, p.gamma..."), "'%s'", list);
    vp_note_unknown_fields(o, none, 0, "", list, sizeof list);
    CHECK_MSG(!strcmp(list, "p.alpha, p.gamma..."), "'%s'", list);
    json_decref(o);
}

int main(void)
{
    test_unknown_fields();
    test_mutations();
    test_split();
    test_split_random();
    test_base64();
    test_fields();
    test_errors();
    return check_summary("request");
}
