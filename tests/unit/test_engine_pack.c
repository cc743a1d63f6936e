/* The engine's packed passes: jobs scored together give exactly the logits they get alone
 * (prefix sharing, several requests in one pass, requests with the same image and question
 * sharing one vision pass and one prefix, a request's repeated responses computed once),
 * on a random tiny model written by mkmodel; the scheduler's price of a pass equals what
 * the pass computed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "engine/engine.h"
#include "engine/image_cache.h"
#include "engine/job.h"
#include "engine/model/mkmodel.h"
#include "engine/pass_plan.h"
#include "server/bench/bench.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"

static char *request_json(const char *image_b64, const char *question, const char *r1,
                          const char *r2)
{
    const char *responses[2] = {r1, r2};
    return test_request_json(image_b64, question, 2, responses, 2);
}

#define prepare test_prepare
#define same_logits test_same_logits

/* Whether response r of a and response q of b have bit-identical step logits. */
static int same_response(const vp_job *a, size_t r, const vp_job *b, size_t q)
{
    const vp_response_result *x = &vp_job_result(a)->responses[r];
    const vp_response_result *y = &vp_job_result(b)->responses[q];
    return x->n_steps == y->n_steps && x->score == y->score &&
           !memcmp(x->step_logits, y->step_logits, 2 * x->n_steps * sizeof(float));
}

/* A request's repeated responses are computed once and each answered: X, Y, X, Z, Y
 * (Z differs from X by one trailing space) scores as X, Y, Z do, response by response
 * (bit-identical; alone, as the reference computes each), computes the tokens of X, Y, Z
 * only and counts the prompt tokens of all five; its ranking covers all five. */
static void test_repeats(vp_engine *e, const char *image)
{
    const char *X = "Step one.\\n\\nx = 2", *Y = "Other start\\n\\nx = 3\\n\\nno",
               *Z = "Step one.\\n\\nx = 2 ";
    const char *five[5] = {X, Y, X, Z, Y}, *three[3] = {X, Y, Z};
    char *b5 = test_request_json(image, "What is x?", 2, five, 5);
    char *b3 = test_request_json(image, "What is x?", 2, three, 3);
    vp_job *j5 = prepare(e, b5), *j3 = prepare(e, b3), *one[3];
    for (int i = 0; i < 3; i++) {
        char *b1 = test_request_json(image, "What is x?", 2, &three[i], 1);
        one[i] = prepare(e, b1);
        free(b1);
    }
    CHECK(j5 && j3 && one[0] && one[1] && one[2]);
    if (j5 && j3 && one[0] && one[1] && one[2]) {
        CHECK(vp_job_n_responses(j5) == 5 && vp_job_n_distinct(j5) == 3);
        CHECK(vp_job_n_distinct(j3) == 3 && vp_job_tokens(j5) == vp_job_tokens(j3));
        /* /v1/tokenize shows every requested response, a repeat as its original */
        CHECK(vp_job_ids(j5, 2) == vp_job_ids(j5, 0) && vp_job_ids(j5, 4) == vp_job_ids(j5, 1) &&
              vp_job_ids(j5, 3) != vp_job_ids(j5, 0) &&
              vp_job_ids(j5, 3)->n == vp_job_ids(j5, 0)->n + 1);
        vp_error err = {0};
        CHECK_MSG(vp_engine_run(e, &j5, 1, &err) == 0, "%s", err.message);
        CHECK_MSG(vp_engine_run(e, &j3, 1, &err) == 0, "%s", err.message);
        for (int i = 0; i < 3; i++)
            CHECK_MSG(vp_engine_run(e, &one[i], 1, &err) == 0, "%s", err.message);
        const vp_score_result *r5 = vp_job_result(j5), *r3 = vp_job_result(j3);
        CHECK(r5->n_responses == 5);
        static const size_t src[5] = {0, 1, 0, 2, 1};
        for (size_t r = 0; r < 5 && r5->n_responses == 5; r++) {
            CHECK_MSG(same_response(j5, r, j3, src[r]), "response %zu != X/Y/Z's", r);
            CHECK_MSG(same_response(j5, r, one[src[r]], 0), "response %zu != it alone", r);
        }
        /* the test can fail: X and Z (one space apart) score differently */
        CHECK(!same_response(j3, 0, j3, 2));
        CHECK(r5->usage.computed_tokens == r3->usage.computed_tokens);
        size_t prompt = 0;
        for (size_t r = 0; r < 5; r++)
            prompt += vp_job_ids(j5, r)->n;
        CHECK(r5->usage.prompt_tokens == prompt && prompt > r3->usage.prompt_tokens);
        /* the ranking: all five, by descending score, ties in request order */
        bool seen[5] = {0}, ordered = true;
        for (size_t k = 0; k < 5 && r5->n_responses == 5; k++) {
            seen[r5->ranking[k] < 5 ? r5->ranking[k] : 0] = true;
            if (k) {
                double a = r5->responses[r5->ranking[k - 1]].score;
                double b = r5->responses[r5->ranking[k]].score;
                ordered &= a > b || (a == b && r5->ranking[k - 1] < r5->ranking[k]);
            }
        }
        CHECK(seen[0] && seen[1] && seen[2] && seen[3] && seen[4] && ordered);
    }
    vp_job_free(j5);
    vp_job_free(j3);
    for (int i = 0; i < 3; i++)
        vp_job_free(one[i]);
    free(b5);
    free(b3);
}

/* The tiles admission counts from the images' headers (vp_engine_count_tiles) are the
 * tiles prepare decodes, over random sizes and max_tiles, one image and two. */
static void test_count_tiles(const vp_engine_options *opt)
{
    vp_engine *e = NULL;
    vp_error oerr = {0};
    CHECK_MSG(vp_engine_open(opt, &e, &oerr) == 0, "%s", oerr.message);
    if (!e)
        return;
    srand(11);
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    for (int trial = 0; trial < 24; trial++) {
        uint32_t w = 1 + (uint32_t)(rand() % 900), h = 1 + (uint32_t)(rand() % 900);
        uint8_t *png;
        size_t len;
        vp_error err = {0};
        CHECK(vp_png_random(w, h, (uint64_t)trial, &png, &len, &err) == 0);
        char *url = vp_data_url("image/png", png, len);
        int max_tiles = 1 + trial % 12;
        size_t cap = 2 * strlen(url) + 256;
        char *body = malloc(cap);
        if (trial % 3 == 0) /* two images: the same twice */
            snprintf(body, cap, "{\"question\": \"q\", \"images\": [\"%s\", \"%s\"], "
                     "\"max_tiles\": %d, \"responses\": [\"a\"]}", url, url, max_tiles);
        else
            snprintf(body, cap, "{\"question\": \"q\", \"image\": \"%s\", \"max_tiles\": %d, "
                     "\"responses\": [\"a\"]}", url, max_tiles);
        vp_score_request req;
        vp_job *job = NULL;
        CHECK_MSG(vp_request_parse(body, strlen(body), &lim, &req, &err) == 0, "%s", err.message);
        size_t counted = vp_engine_count_tiles(e, &req);
        CHECK_MSG(vp_engine_prepare(e, &req, &job, &err) == 0, "%s", err.message);
        CHECK_MSG(job && counted == vp_job_tiles(job) && counted > (size_t)(trial % 3 == 0),
                  "%ux%u max_tiles %d: counted %zu, decoded %zu", w, h, max_tiles, counted,
                  job ? vp_job_tiles(job) : 0);
        vp_request_free(&req);
        vp_job_free(job);
        free(body);
        free(url);
        free(png);
    }
    vp_engine_close(e);
}

/* Each tile's digest is the SHA-256 of that tile (GnuTLS's, the oracle: one call per
 * tile here) whether the image was decoded or came from the image cache, in a request of
 * two images too; equal tiles are found by them and others are not. */
static bool digests_right(const vp_job *j)
{
    uint8_t want[VP_DIGEST_BYTES];
    for (size_t t = 0; t < j->n_tiles; t++)
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, j->tiles + t * j->tile_bytes, j->tile_bytes,
                             want) < 0 ||
            memcmp(want, j->tile_digests + t * VP_DIGEST_BYTES, VP_DIGEST_BYTES))
            return false;
    return j->n_tiles > 0;
}

static void test_tile_digests(const vp_engine_options *opt, const char *url_a,
                              const char *url_b)
{
    vp_engine *e = NULL;
    vp_error oerr = {0};
    CHECK_MSG(vp_engine_open(opt, &e, &oerr) == 0, "%s", oerr.message);
    if (!e)
        return;
    size_t cap = 2 * (strlen(url_a) + strlen(url_b)) + 256;
    char *body = malloc(cap);
    vp_job *j[5] = {0};
    const char *pairs[5][2] = {{url_a, url_b}, {url_a, url_b}, {url_b, url_a}, {url_a, NULL},
                               {url_a, url_a}};
    for (int i = 0; i < 5; i++) {
        if (pairs[i][1])
            snprintf(body, cap, "{\"question\": \"q\", \"images\": [\"%s\", \"%s\"], "
                     "\"max_tiles\": 3, \"responses\": [\"a\"]}", pairs[i][0], pairs[i][1]);
        else
            snprintf(body, cap, "{\"question\": \"q\", \"image\": \"%s\", \"max_tiles\": 3, "
                     "\"responses\": [\"a\"]}", pairs[i][0]);
        j[i] = prepare(e, body);
        CHECK_MSG(j[i] && digests_right(j[i]), "request %d: tile digests", i);
    }
    vp_image_cache_stats st;
    vp_image_cache_stats_get(vp_engine_image_cache(e), &st);
    CHECK_MSG(st.hits == 7 && st.misses == 2, "%llu hits, %llu misses", (unsigned long long)st.hits,
              (unsigned long long)st.misses); /* the later ones came from the cache */
    if (j[0] && j[1] && j[2] && j[3] && j[4]) {
        CHECK(vp_job_same_tiles(j[0], j[1]) && j[0]->tiles_hash == j[1]->tiles_hash);
        CHECK(!vp_job_same_tiles(j[0], j[2]) && !vp_job_same_tiles(j[0], j[3]) &&
              !vp_job_same_tiles(j[0], j[4]) && !vp_job_same_tiles(j[3], j[4]));
        /* without digests the bytes decide, the same way */
        uint8_t *d1 = j[1]->tile_digests, *d2 = j[2]->tile_digests;
        j[1]->tile_digests = j[2]->tile_digests = NULL;
        CHECK(vp_job_same_tiles(j[0], j[1]) && !vp_job_same_tiles(j[0], j[2]));
        j[1]->tile_digests = d1;
        j[2]->tile_digests = d2;
    }
    for (int i = 0; i < 5; i++)
        vp_job_free(j[i]);
    free(body);
    vp_engine_close(e);
}

int main(void)
{
    char dir[] = "/tmp/vprm-test-pack-XXXXXX";
    vp_engine_options opt;
    CHECK(test_tiny_model(dir, 3, &opt) == 0);
    vp_error err = {0};
    vp_engine *e = NULL;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    if (!e)
        return check_summary("engine_pack");

    uint8_t *png_a, *png_b;
    size_t len_a, len_b;
    CHECK(vp_png_random(500, 300, 1, &png_a, &len_a, &err) == 0);
    CHECK(vp_png_random(200, 420, 2, &png_b, &len_b, &err) == 0);
    char *url_a = vp_data_url("image/png", png_a, len_a), *url_b = vp_data_url("image/png", png_b, len_b);
    char *bodies[3] = {
        request_json(url_a, "What is x?", "Step one.\\n\\nx = 2", "Step one.\\n\\nx = 3"),
        request_json(url_a, "What is x?", "A different start\\n\\nx = 2", "Step one.\\n\\nno"),
        request_json(url_b, "Area?", "r = 2\\n\\nA = 4 pi", "r = 2\\n\\nA = 2 pi\\n\\ndone"),
    };
    test_count_tiles(&opt);
    test_tile_digests(&opt, url_a, url_b);
    vp_job *together[3], *alone[3];
    for (int i = 0; i < 3; i++) {
        together[i] = prepare(e, bodies[i]);
        alone[i] = prepare(e, bodies[i]);
        CHECK(together[i] && alone[i]);
    }
    if (together[0] && together[1] && together[2] && alone[0] && alone[1] && alone[2]) {
        double f0 = vp_engine_useful_flops(e);
        CHECK(f0 == 0.0);
        CHECK_MSG(vp_engine_run(e, together, 3, &err) == 0, "%s", err.message);
        double f_together = vp_engine_useful_flops(e) - f0, f_alone = 0;
        for (int i = 0; i < 3; i++) {
            double before = vp_engine_useful_flops(e);
            CHECK_MSG(vp_engine_run(e, &alone[i], 1, &err) == 0, "%s", err.message);
            f_alone += vp_engine_useful_flops(e) - before;
            CHECK_MSG(same_logits(together[i], alone[i]), "request %d: packed with others != alone", i);
            CHECK(vp_job_result(alone[i])->usage.shared_prefix_tokens > 0);
            CHECK(vp_job_result(alone[i])->usage.image_tiles == 3); /* 2-tile grid + thumbnail */
        }
        /* requests 0 and 1 (same image and question) shared one prefix in the packed pass:
         * request 1 computed fewer tokens than alone; request 2 (other image) did not */
        CHECK(vp_job_result(together[1])->usage.computed_tokens <
              vp_job_result(alone[1])->usage.computed_tokens);
        CHECK(vp_job_result(together[2])->usage.computed_tokens ==
              vp_job_result(alone[2])->usage.computed_tokens);
        /* useful FLOPs (MFU's numerator) count every pass; the packed pass shared request 0's
         * and 1's image and prefix, so it needed less than the three passes alone */
        CHECK_MSG(f_together > 0 && f_alone > f_together, "useful FLOPs: packed %g, alone %g",
                  f_together, f_alone);
        /* the two requests on image A really differ in their scores (the test can fail) */
        CHECK(vp_job_result(alone[0])->responses[0].step_logits[2] !=
              vp_job_result(alone[1])->responses[0].step_logits[2]);
        /* the scheduler's price of that pass (engine/pass_plan.h) is what it computed: the
         * tokens of the three jobs as packed, image A's 3 tiles once, B's 3 */
        size_t computed = 0, tokens = 0, tiles = 0, alone_sum = 0;
        for (int i = 0; i < 3; i++) {
            computed += vp_job_result(together[i])->usage.computed_tokens;
            alone_sum += vp_job_tokens(together[i]);
        }
        vp_pass_plan *plan = vp_pass_plan_new();
        CHECK(plan != NULL);
        for (int i = 0; plan && i < 3; i++)
            CHECK(vp_pass_plan_add(plan, together[i], 0, 0, &tokens, &tiles));
        CHECK_MSG(tokens == computed && tokens < alone_sum && tiles == 6,
                  "plan %zu tokens %zu tiles; packed %zu tokens; alone %zu", tokens, tiles,
                  computed, alone_sum);
        /* refused over a budget, and the plan stays as it was */
        if (plan) {
            vp_pass_plan_reset(plan);
            size_t t1, i1, t2, i2;
            CHECK(vp_pass_plan_add(plan, together[0], 0, 0, &t1, &i1));
            CHECK(!vp_pass_plan_add(plan, together[2], t1 + 10, 0, &t2, &i2) && t2 == t1 && i2 == i1);
            CHECK(!vp_pass_plan_add(plan, together[2], 0, 5, &t2, &i2) && t2 == t1);
            CHECK(vp_pass_plan_add(plan, together[1], tokens, 3, &t2, &i2) && t2 > t1 &&
                  t2 < t1 + vp_job_tokens(together[1]) && i2 == 3); /* shares A's prefix */
        }
        vp_pass_plan_free(plan);
    }
    test_repeats(e, url_b);
    /* the image cache: A decoded once (then 3 hits), B once (then 1 hit, and 5 of
     * test_repeats); a hit holds the same tiles as decoding afresh on an engine without a
     * cache */
    vp_image_cache_stats cs;
    vp_image_cache_stats_get(vp_engine_image_cache(e), &cs);
    CHECK_MSG(cs.misses == 2 && cs.hits == 9 && cs.entries == 2, "cache: %llu hits, %llu misses",
              (unsigned long long)cs.hits, (unsigned long long)cs.misses);
    vp_engine_close(e);
    e = NULL;
    opt.image_cache_bytes = 0;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    CHECK(vp_engine_image_cache(e) == NULL);
    vp_job *fresh = prepare(e, bodies[1]);
    CHECK(fresh && alone[1] && fresh->n_tiles == 3 && alone[1]->n_tiles == 3);
    if (fresh && alone[1] && fresh->n_tiles == alone[1]->n_tiles)
        CHECK(!memcmp(fresh->tiles, alone[1]->tiles, fresh->n_tiles * 3 * 448 * 448));
    vp_job_free(fresh);
    vp_engine_close(e);
    e = NULL;
    opt.image_cache_bytes = (size_t)256 << 20;

    /* limits enforced at prepare: a request over one pass's budget gets 413 naming it; the
     * server's max_tiles bounds a request that gives none (the model's default is 12) */
    opt.max_batch_tokens = 300;
    opt.max_tiles = 1;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    char *no_tiles = request_json(url_a, "What is x?", "a", "b");
    char *p = strstr(no_tiles, "\"max_tiles\": 2, ");
    if (p)
        memmove(p, p + 15, strlen(p + 15) + 1);
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    vp_score_request req;
    vp_job *job = NULL;
    CHECK(vp_request_parse(no_tiles, strlen(no_tiles), &lim, &req, &err) == 0);
    memset(&err, 0, sizeof err);
    CHECK_MSG(vp_engine_prepare(e, &req, &job, &err) == -1 && err.kind == VP_ERR_TOO_LARGE &&
                  strstr(err.message, "batch_tokens=300") && strstr(err.message, "for 1 image tile)"),
              "%s (param %s)", err.message, err.param);
    vp_request_free(&req);
    vp_engine_close(e);
    opt.max_batch_tokens = 0;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    CHECK(vp_request_parse(no_tiles, strlen(no_tiles), &lim, &req, &err) == 0);
    CHECK(vp_engine_prepare(e, &req, &job, &err) == 0 && job && vp_job_tiles(job) == 1);
    vp_request_free(&req);
    vp_job_free(job);
    free(no_tiles);

    for (int i = 0; i < 3; i++) {
        vp_job_free(together[i]);
        vp_job_free(alone[i]);
        free(bodies[i]);
    }
    free(url_a);
    free(url_b);
    free(png_a);
    free(png_b);
    vp_engine_close(e);
    CHECK(test_remove_dir(dir) == 0);
    return check_summary("engine_pack");
}
