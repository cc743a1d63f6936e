/* The server's small parts without a daemon: response bodies (non-finite results become
 * a 500, never invalid JSON), metrics text (cumulative buckets, read back by the bench's
 * parser), request ids, the private-address filter of image URL fetching, the PNG
 * writer (decoded by the engine's own decoder), the seeded workload generator, and the
 * OpenAPI document linked into the binary (the file's JSON, whole, its version set). */
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"
#include "proto/openapi.h"
#include "proto/response.h"
#include "server/bench/bench.h"
#include "server/fetch.h"
#include "server/metrics.h"
#include "server/reqid.h"
#include "tests/unit/check.h"

static void test_response(void)
{
    float ss[2] = {0.25f, 0.75f}, sl[4] = {-1, 0, 1, 0};
    vp_response_result rr[2] = {{2, ss, sl, 0.5}, {2, ss, sl, 0.5}};
    size_t rank[2] = {0, 1};
    vp_score_result res = {.responses = rr, .n_responses = 2, .ranking = rank};
    res.usage.prompt_tokens = 100;
    res.usage.computed_tokens = 60;
    vp_score_json_opts o = {.id = "scr_x", .model_name = "m", .return_steps = true};
    vp_error err;
    json_t *j = vp_response_score_json(&res, &o, &err);
    CHECK(j && json_array_size(json_object_get(j, "results")) == 2);
    CHECK(j && json_real_value(json_object_get(json_array_get(json_object_get(j, "results"), 1),
                                               "score")) == 0.5);
    json_decref(j);
    rr[1].score = NAN;
    j = vp_response_score_json(&res, &o, &err);
    CHECK(j == NULL && err.kind == VP_ERR_INTERNAL && strstr(err.message, "responses[1]"));
    rr[1].score = 0.5;
    ss[1] = INFINITY;
    j = vp_response_score_json(&res, &o, &err);
    CHECK(j == NULL && strstr(err.message, "step 1"));

    vp_error e = {.kind = VP_ERR_TOO_LARGE};
    snprintf(e.param, sizeof e.param, "responses");
    snprintf(e.message, sizeof e.message, "9 responses, over the limit max_responses=8");
    size_t len;
    char *s = vp_response_error_text(&e, &len);
    json_error_t je;
    json_t *ej = json_loads(s, 0, &je);
    json_t *eo = json_object_get(ej, "error");
    CHECK(s && strlen(s) == len);
    CHECK(!strcmp(json_string_value(json_object_get(eo, "type")), "limit_exceeded"));
    CHECK(!strcmp(json_string_value(json_object_get(eo, "param")), "responses"));
    CHECK(strstr(json_string_value(json_object_get(eo, "message")), "max_responses=8"));
    json_decref(ej);
    free(s);
    /* no field at fault: "param" is null, still present */
    e.param[0] = 0;
    s = vp_response_error_text(&e, &len);
    ej = json_loads(s, 0, &je);
    eo = json_object_get(ej, "error");
    CHECK(eo && json_is_null(json_object_get(eo, "param")));
    json_decref(ej);
    free(s);
    /* a message that is not UTF-8 still yields a valid JSON body, of the same shape */
    snprintf(e.message, sizeof e.message, "bad \xff byte");
    s = vp_response_error_text(&e, &len);
    ej = json_loads(s, 0, &je);
    eo = json_object_get(ej, "error");
    CHECK(eo && json_is_string(json_object_get(eo, "type")) &&
          json_is_string(json_object_get(eo, "message")) && json_object_get(eo, "param"));
    json_decref(ej);
    free(s);
}

static void test_metrics(void)
{
    vp_metrics m;
    vp_metrics_init(&m);
    vp_metrics_batch(&m, 1, 100, 0, 5, 1.5e12);
    vp_metrics_batch(&m, 3, 5000, 13, 50, 101.6e12);
    vp_metrics_batch(&m, 300, 70000, 200, 70000, 0.25);
    vp_metrics_request(&m, "/v1/score", 200);
    vp_metrics_request(&m, "/v1/score", 200);
    vp_metrics_request(&m, "/v1/score", 0);
    float ss[1] = {0.5f};
    vp_response_result rr = {1, ss, NULL, 0.5};
    size_t rank = 0;
    vp_score_result res = {.responses = &rr, .n_responses = 1, .ranking = &rank};
    res.usage.prompt_tokens = 1000;
    res.usage.computed_tokens = 400;
    res.timing.total = 12.5;
    vp_metrics_result(&m, &res, VP_PRIORITY_NORMAL);
    res.timing.queue = 250.0; /* the same result again, as a high-priority job's */
    vp_metrics_result(&m, &res, VP_PRIORITY_HIGH);
    vp_gauges g = {.queue_depth = 7, .ready = 1};
    size_t len;
    char *text = vp_metrics_render(&m, &g, &len);
    CHECK(text && strlen(text) == len);
    vp_prom_hist h;
    CHECK(vp_prom_hist_read(text, "vprm_batch_jobs", &h) == 0);
    CHECK(h.count == 3 && h.sum == 304);
    /* cumulative: le=1 -> 1, le=4 -> 2, +Inf -> 3 */
    CHECK(h.n == 10 && h.cum[0] == 1 && h.cum[2] == 2 && h.cum[8] == 2 && h.cum[9] == 3);
    for (size_t i = 1; i < h.n; i++)
        CHECK(h.cum[i] >= h.cum[i - 1]);
    double v;
    CHECK(vp_prom_value(text, "vprm_requests_total{route=\"/v1/score\",status=\"200\"}", &v) == 0 &&
          v == 2);
    CHECK(vp_prom_value(text, "vprm_requests_total{route=\"/v1/score\",status=\"closed\"}", &v) ==
              0 && v == 1);
    CHECK(vp_prom_value(text, "vprm_tokens_saved_total", &v) == 0 && v == 1200);
    CHECK(vp_prom_value(text, "vprm_tokens_computed_total", &v) == 0 && v == 800);
    CHECK(vp_prom_value(text, "vprm_useful_flops_total", &v) == 0 &&
          v == 1.5e12 + 101.6e12 + 0.25); /* %.17g: the double comes back exactly */
    CHECK(vp_prom_value(text, "vprm_queue_depth", &v) == 0 && v == 7);
    CHECK(vp_prom_value(text, "vprm_stage_seconds_sum{stage=\"total\"}", &v) == 0 &&
          fabs(v - 0.025) < 1e-12);
    CHECK(strstr(text, "# TYPE vprm_batch_tokens histogram"));
    /* queue time by priority: the high job's 250 ms, none of the normal one's 0 */
    CHECK(vp_prom_value(text, "vprm_queue_seconds_by_priority_sum{priority=\"high\"}", &v) == 0 &&
          fabs(v - 0.25) < 1e-12);
    CHECK(vp_prom_value(text, "vprm_queue_seconds_by_priority_count{priority=\"normal\"}", &v) ==
              0 && v == 1);
    CHECK(vp_prom_value(text, "vprm_queue_seconds_by_priority_count{priority=\"low\"}", &v) == 0 &&
          v == 0);
    free(text);
    vp_metrics_destroy(&m);
}

static void test_reqid(void)
{
    enum { N = 2000 };
    static char ids[N][VP_REQID_LEN + 1];
    int bad = 0;
    for (int i = 0; i < N; i++) {
        vp_reqid_new(ids[i]);
        if (strlen(ids[i]) != 30 || strncmp(ids[i], "scr_", 4) ||
            strspn(ids[i] + 4, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") != 26)
            bad++;
    }
    CHECK_MSG(bad == 0, "%d malformed ids (e.g. %s)", bad, ids[0]);
    int dup = 0;
    for (int i = 0; i < N; i++)
        for (int k = i + 1; k < N; k++)
            dup += !strcmp(ids[i], ids[k]);
    CHECK(dup == 0);
    CHECK(strncmp(ids[0], ids[N - 1], 4 + 8) <= 0); /* time prefix does not go backwards */

    /* a client's own id: letters, digits and ._:-/+=@, 1 to 64 of them */
    CHECK(vp_reqid_client_ok("rl-step7/group:3.item_2") && vp_reqid_client_ok("a=b+c@d"));
    CHECK(!vp_reqid_client_ok(NULL) && !vp_reqid_client_ok("") && !vp_reqid_client_ok("a b"));
    CHECK(!vp_reqid_client_ok("a\"b") && !vp_reqid_client_ok("a\\b") &&
          !vp_reqid_client_ok("caf\xc3\xa9") && !vp_reqid_client_ok("a\r\nX: y"));
    char s64[66];
    memset(s64, 'z', 64);
    s64[64] = 0;
    CHECK(vp_reqid_client_ok(s64));
    s64[64] = 'z', s64[65] = 0;
    CHECK(!vp_reqid_client_ok(s64));
}

static bool private_v4(const char *a)
{
    struct sockaddr_in s = {.sin_family = AF_INET};
    inet_pton(AF_INET, a, &s.sin_addr);
    return vp_addr_is_private((struct sockaddr *)&s);
}

static bool private_v6(const char *a)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return vp_addr_is_private((struct sockaddr *)&s);
}

/* An https URL's redirects stay on https (the scheme compared case-blind, as the fetcher
 * takes "HTTPS://"); an http URL's may go to either. */
static void test_redirect_schemes(void)
{
    CHECK(vp_fetch_https_only("https://example.com/a.png"));
    CHECK(vp_fetch_https_only("HTTPS://example.com/a.png"));
    CHECK(!vp_fetch_https_only("http://example.com/a.png"));
    CHECK(!vp_fetch_https_only("HTTP://example.com/https://"));
    CHECK(!vp_fetch_https_only("https:/example.com"));
}

static void test_private_addresses(void)
{
    const char *priv4[] = {"127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "172.31.255.255",
                           "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1",
                           "224.0.0.1", "255.255.255.255"};
    const char *pub4[] = {"8.8.8.8", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.128.0.1",
                          "11.0.0.1", "1.1.1.1"};
    for (size_t i = 0; i < sizeof priv4 / sizeof *priv4; i++)
        CHECK_MSG(private_v4(priv4[i]), "%s should be refused", priv4[i]);
    for (size_t i = 0; i < sizeof pub4 / sizeof *pub4; i++)
        CHECK_MSG(!private_v4(pub4[i]), "%s should be allowed", pub4[i]);
    const char *priv6[] = {"::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
                           "::ffff:127.0.0.1", "::ffff:10.0.0.1"};
    const char *pub6[] = {"2001:4860:4860::8888", "2606:4700::1111", "::ffff:8.8.8.8"};
    for (size_t i = 0; i < sizeof priv6 / sizeof *priv6; i++)
        CHECK_MSG(private_v6(priv6[i]), "%s should be refused", priv6[i]);
    for (size_t i = 0; i < sizeof pub6 / sizeof *pub6; i++)
        CHECK_MSG(!private_v6(pub6[i]), "%s should be allowed", pub6[i]);
}

static void test_png(void)
{
    /* sizes that need several stored blocks (rows of 3*w+1 bytes, blocks of 65535) */
    uint32_t sizes[][2] = {{1, 1}, {7, 3}, {300, 250}, {1000, 70}};
    for (size_t t = 0; t < 4; t++) {
        uint32_t w = sizes[t][0], h = sizes[t][1];
        uint8_t *rgb = malloc((size_t)w * h * 3);
        vp_rng r = {t + 1};
        for (size_t i = 0; i < (size_t)w * h * 3; i++)
            rgb[i] = (uint8_t)vp_rng_next(&r);
        uint8_t *png;
        size_t len;
        vp_error err;
        CHECK(vp_png_encode_rgb(rgb, w, h, &png, &len, &err) == 0);
        vp_rgb_image img;
        int rc = vp_image_decode_rgb(png, len, NULL, &img, &err);
        CHECK_MSG(rc == 0, "%ux%u: %s", w, h, err.message);
        if (rc == 0) {
            CHECK(img.width == w && img.height == h);
            CHECK(!memcmp(img.pixels, rgb, (size_t)w * h * 3));
            vp_rgb_image_free(&img);
        }
        free(png);
        free(rgb);
    }
}

static void test_workload(void)
{
    vp_workload_opts o = {.kind = VP_W3, .seed = 3, .max_image_side = 300, .words_per_step = 5};
    vp_workload_request a, b, c;
    vp_error err;
    CHECK(vp_workload_make(&o, 4, &a, &err) == 0);
    CHECK(vp_workload_make(&o, 4, &b, &err) == 0);
    CHECK(vp_workload_make(&o, 5, &c, &err) == 0);
    CHECK(a.len == b.len && !memcmp(a.body, b.body, a.len)); /* same seed and index */
    CHECK(a.len != c.len || memcmp(a.body, c.body, a.len));
    CHECK(a.n_responses >= 4 && a.n_responses <= 16);
    CHECK(a.n_steps >= 2 * a.n_responses && a.n_steps <= 12 * a.n_responses);
    CHECK(a.width >= 16 && a.width <= 300 && a.height <= 300);
    json_error_t je;
    json_t *j = json_loadb(a.body, a.len, 0, &je);
    CHECK_MSG(j != NULL, "workload body is not JSON: %s", je.text);
    CHECK(json_array_size(json_object_get(j, "responses")) == a.n_responses);
    CHECK(!strncmp(json_string_value(json_object_get(j, "image")), "data:image/png;base64,", 22));
    json_decref(j);
    vp_workload_request_free(&a);
    vp_workload_request_free(&b);
    vp_workload_request_free(&c);
    /* W1: 896x672, 8 responses of 6 steps; W4 repeats W1's image and question */
    vp_workload_opts w1 = {.kind = VP_W1, .seed = 1, .words_per_step = 3};
    vp_workload_opts w4 = {.kind = VP_W4, .seed = 1, .words_per_step = 3};
    vp_workload_request x, y, z;
    CHECK(vp_workload_make(&w1, 0, &x, &err) == 0 && x.width == 896 && x.height == 672 &&
          x.n_responses == 8 && x.n_steps == 48);
    CHECK(vp_workload_make(&w4, 1, &y, &err) == 0 && vp_workload_make(&w4, 2, &z, &err) == 0);
    const char *ry = strstr(y.body, "\"responses\""), *rz = strstr(z.body, "\"responses\"");
    CHECK(ry && rz && ry - y.body == rz - z.body && !memcmp(y.body, z.body, (size_t)(ry - y.body)));
    CHECK(strcmp(ry, rz) != 0);
    vp_workload_request_free(&x);
    vp_workload_request_free(&y);
    vp_workload_request_free(&z);
    vp_workload k;
    CHECK(vp_workload_parse("w3", &k) == 0 && k == VP_W3 && vp_workload_parse("W9", &k) == -1);
    /* --repeated-responses: W1's 8 responses at 50% hold repeats of earlier ones (counted
     * from the JSON), 0% none, 100% all repeat the first; each repeat keeps its steps */
    for (int pct = 0; pct <= 100; pct += 50) {
        vp_workload_opts rp = {.kind = VP_W1, .seed = 2, .words_per_step = 4,
                               .repeat_percent = pct};
        size_t repeats = 0, steps = 0;
        for (uint64_t i = 0; i < 8; i++) {
            vp_workload_request q;
            CHECK(vp_workload_make(&rp, i, &q, &err) == 0);
            json_t *jq = json_loadb(q.body, q.len, 0, &je);
            json_t *rs = json_object_get(jq, "responses");
            for (size_t r = 0; r < json_array_size(rs); r++) {
                const char *t = json_string_value(json_array_get(rs, r));
                bool seen = false;
                for (size_t p = 0; p < r && !seen; p++)
                    seen = !strcmp(t, json_string_value(json_array_get(rs, p)));
                repeats += seen;
                for (const char *at = t; (at = strstr(at, "\n\n")); at += 2)
                    steps++;
                steps++;
            }
            CHECK(q.n_responses == 8);
            json_decref(jq);
            CHECK(q.n_steps == 48);
            vp_workload_request_free(&q);
        }
        CHECK_MSG(pct == 0     ? repeats == 0
                  : pct == 100 ? repeats == 56
                               : repeats >= 14 && repeats <= 42,
                  "%d%%: %zu repeats in 56 later responses", pct, repeats);
        CHECK(steps == 8 * 48);
    }
}

/* Run from the repository root, as make test does. */
static void test_openapi(void)
{
    size_t len = 0;
    char *doc = vp_openapi_document("9.8.7-test", &len);
    CHECK(doc && len == strlen(doc) && len > 20000);
    json_error_t jerr;
    json_t *served = doc ? json_loadb(doc, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_t *file = json_load_file("proto/openapi.json", JSON_REJECT_DUPLICATES, &jerr);
    CHECK_MSG(file != NULL, "proto/openapi.json: %s (line %d)", jerr.text, jerr.line);
    CHECK(served && !strcmp(json_string_value(json_object_get(json_object_get(served, "info"),
                                                                "version")), "9.8.7-test"));
    /* the same document but for the version: the whole file was embedded, nothing after */
    if (file && served) {
        json_object_set_new(json_object_get(file, "info"), "version", json_string("9.8.7-test"));
        CHECK(json_equal(file, served));
        CHECK(json_object_size(json_object_get(served, "paths")) >= 9);
    }
    json_decref(served);
    json_decref(file);
    free(doc);
}

int main(void)
{
    test_response();
    test_metrics();
    test_redirect_schemes();
    test_reqid();
    test_private_addresses();
    test_png();
    test_workload();
    test_openapi();
    return check_summary("test_server_parts");
}
