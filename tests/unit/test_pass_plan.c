/* The scheduler's price of a pass (engine/pass_plan.c) against what the packer then
 * computes: random passes of 1..5 jobs (no image, image A, image B; three questions; 1..3
 * responses from a small pool, so prefixes are shared or not), on a random tiny model. With
 * the prefix cache off the price equals the tokens the pass computed, with prefix sharing on
 * and off; with the cache on it bounds them. Images whose tile hashes collide (set here by
 * hand, as a crafted image could) are still priced as different images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/job.h"
#include "engine/pass_plan.h"
#include "server/bench/bench.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"

enum { NJ = 24, PASSES = 16 };

static const char *pool[] = {"Step one.\\n\\nx = 2", "Step one.\\n\\nx = 3", "A different start\\n\\nx = 2",
                             "Step one.\\n\\nno", "r = 2\\n\\nA = 4 pi", "x",
                             "Step one.\\n\\nStep two.\\n\\nend"};
static const char *questions[] = {"What is x?", "Area?", "What is x? More"};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static size_t next(size_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (size_t)(rng % n);
}

/* PASSES random passes on an engine with these options; mismatches reported. */
static void check_config(vp_engine_options opt, char *const *url, const char *what, bool cache)
{
    vp_error err = {0};
    vp_engine *e = NULL;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    if (!e)
        return;
    vp_job *jobs[NJ];
    for (int i = 0; i < NJ; i++) {
        size_t im = next(3), n = 1 + next(3);
        const char *rs[3];
        for (size_t r = 0; r < n; r++)
            rs[r] = pool[next(sizeof pool / sizeof pool[0])];
        char *body = test_request_json(im ? url[im - 1] : NULL, questions[next(3)], 2, rs, n);
        jobs[i] = test_prepare(e, body);
        free(body);
        CHECK(jobs[i]);
    }
    vp_pass_plan *plan = vp_pass_plan_new();
    CHECK(plan != NULL);
    int bad = 0, shared = 0;
    for (int it = 0; plan && it < PASSES; it++) {
        size_t n = 1 + next(5), tokens = 0, tiles = 0, computed = 0, alone = 0;
        vp_job *sel[5];
        for (size_t k = 0; k < n; k++) /* distinct jobs */
            for (bool dup = true; dup;) {
                sel[k] = jobs[next(NJ)];
                dup = false;
                for (size_t m = 0; m < k; m++)
                    dup |= sel[m] == sel[k];
            }
        vp_pass_plan_reset(plan);
        for (size_t k = 0; k < n; k++)
            CHECK(vp_pass_plan_add(plan, sel[k], 0, 0, &tokens, &tiles));
        CHECK_MSG(vp_engine_run(e, sel, n, &err) == 0, "%s", err.message);
        for (size_t k = 0; k < n; k++) {
            computed += vp_job_result(sel[k])->usage.computed_tokens;
            alone += vp_job_tokens(sel[k]);
        }
        shared += tokens < alone;
        if (cache ? computed > tokens : computed != tokens) {
            bad++;
            fprintf(stderr, "%s: pass %d of %zu jobs: priced %zu, computed %zu\n", what, it, n,
                    tokens, computed);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %d passes mispriced", what, bad, PASSES);
    if (opt.prefix_sharing)
        CHECK_MSG(shared > 0, "%s: no pass shared anything (the test would prove nothing)", what);
    vp_pass_plan_free(plan);
    for (int i = 0; i < NJ; i++)
        vp_job_free(jobs[i]);
    vp_engine_close(e);
}

/* Two jobs on different images whose hashes are made equal: two images, not one. */
static void check_collision(vp_engine_options opt, char *const *url)
{
    vp_error err = {0};
    vp_engine *e = NULL;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    if (!e)
        return;
    const char *rs[2] = {pool[0], pool[1]};
    char *ba = test_request_json(url[0], questions[0], 2, rs, 2);
    char *bb = test_request_json(url[1], questions[0], 2, rs, 2);
    vp_job *a = test_prepare(e, ba), *b = test_prepare(e, bb), *a2 = test_prepare(e, ba);
    vp_pass_plan *plan = vp_pass_plan_new();
    if (a && b && a2 && plan && a->n_tiles == b->n_tiles) {
        size_t tk, ti, tk2, ti2;
        CHECK(a->tiles_hash != b->tiles_hash && a->tiles_hash == a2->tiles_hash);
        b->tiles_hash = a->tiles_hash; /* a crafted collision */
        CHECK(vp_pass_plan_add(plan, a, 0, 0, &tk, &ti));
        CHECK(vp_pass_plan_add(plan, b, 0, 0, &tk2, &ti2));
        CHECK_MSG(ti2 == 2 * ti && tk2 == tk + vp_job_tokens(b),
                  "colliding hashes priced as one image: %zu tiles, %zu tokens", ti2, tk2);
        CHECK(vp_pass_plan_add(plan, a2, 0, 0, &tk, &ti)); /* the same image really shares */
        CHECK(ti == ti2 && tk < tk2 + vp_job_tokens(a2));
    } else {
        CHECK(0);
    }
    vp_pass_plan_free(plan);
    vp_job_free(a), vp_job_free(b), vp_job_free(a2);
    free(ba), free(bb);
    vp_engine_close(e);
}

int main(void)
{
    char dir[] = "/tmp/vprm-test-plan-XXXXXX";
    vp_engine_options opt;
    CHECK(test_tiny_model(dir, 3, &opt) == 0);
    vp_error err = {0};
    uint8_t *png[2];
    size_t len[2];
    char *url[2];
    for (int i = 0; i < 2; i++) { /* 3:2 images: a 3x2 grid + thumbnail each */
        CHECK(vp_png_random(60, 40, 1 + (uint64_t)i, &png[i], &len[i], &err) == 0);
        url[i] = vp_data_url("image/png", png[i], len[i]);
    }
    opt.max_tiles = 2; /* keep the tiny model's vision short */
    check_config(opt, url, "sharing, no cache", false);
    opt.prefix_sharing = false;
    check_config(opt, url, "no sharing", false);
    opt.prefix_sharing = true;
    opt.prefix_cache_bytes = (size_t)64 << 20;
    opt.prefix_cache_min_tokens = 1;
    check_config(opt, url, "sharing, prefix cache", true);
    opt.prefix_cache_bytes = 0;
    check_collision(opt, url);
    for (int i = 0; i < 2; i++)
        free(png[i]), free(url[i]);
    CHECK(test_remove_dir(dir) == 0);
    return check_summary("pass_plan");
}
