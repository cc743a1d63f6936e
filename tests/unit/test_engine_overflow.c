/* A model that overflows (an inf weight in a checkpoint: the same as activations beyond
 * the number format) gives a pass error that names the non-finite logits, never scores:
 * the CPU backend on a random tiny model whose final norm has one weight set to +inf in
 * the safetensors file. The same model unmodified scores.
 *
 * Widening (VPRM_CUDA_ACTIVATIONS=auto on a GPU: fp16 until a pass overflows it, then
 * bf16): the CPU backend's hook VPRM_TEST_OVERFLOW_AFTER=N plays a narrow format whose
 * passes overflow after the first N, and whose prefix-cache rows are unreadable after
 * the switch. The engine must compute the overflowing pass again after the switch, from
 * an emptied prefix cache, and give the logits of an engine that never overflowed; a
 * model that overflows in the wide format too still fails, after one switch. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/job.h"
#include "engine/model/safetensors.h"
#include "engine/prefix_cache.h"
#include "server/bench/bench.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"

/* Element 0 of tensor name in dir/model.safetensors (bf16) set to +inf. */
static int poison(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    vp_st_file f;
    vp_error err = {0};
    if (vp_st_open(path, &f, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    const vp_tensor *t = vp_st_find(&f, name);
    long at = t && t->dtype == VP_DT_BF16 ? (long)((const uint8_t *)t->data - f.map.data) : -1;
    vp_st_close(&f);
    const unsigned char inf_bf16[2] = {0x80, 0x7f}; /* 0x7f80, little-endian */
    int fd = at >= 0 ? open(path, O_WRONLY) : -1;
    int ok = fd >= 0 && pwrite(fd, inf_bf16, 2, at) == 2;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

static vp_prefix_cache_stats cache_stats(const vp_engine *e)
{
    vp_prefix_cache_stats s;
    vp_prefix_cache_stats_get(vp_engine_prefix_cache(e), &s);
    return s;
}

/* Scores body alone in one pass; the job, or NULL (err says why). */
static vp_job *score(vp_engine *e, const char *body, vp_error *err)
{
    vp_job *job = test_prepare(e, body);
    if (job && vp_engine_run(e, &job, 1, err)) {
        vp_job_free(job);
        job = NULL;
    }
    return job;
}

/* A hooked engine against a clean one, both with a prefix cache. Passes 1 and 2 (narrow,
 * no overflow) store the prefixes of images X and Y; pass 3, on X's prefix, overflows,
 * widens and must load neither (the hook made their rows NaN); pass 4 asks for Y's
 * prefix, which must be gone too (a clear of the pass's own entries alone would load
 * it); pass 5 loads the X prefix that the recomputed pass 3 stored. */
/* A clean engine and one whose passes overflow after the first `after`, both with a
 * prefix cache. */
static void open_clean_and_narrow(const vp_engine_options *base, const char *after,
                                  vp_engine **clean, vp_engine **narrow)
{
    vp_engine_options opt = *base;
    opt.prefix_cache_bytes = (size_t)64 << 20;
    vp_error err = {0};
    *clean = *narrow = NULL;
    CHECK_MSG(vp_engine_open(&opt, clean, &err) == 0, "%s", err.message);
    setenv("VPRM_TEST_OVERFLOW_AFTER", after, 1);
    CHECK_MSG(vp_engine_open(&opt, narrow, &err) == 0, "%s", err.message);
    unsetenv("VPRM_TEST_OVERFLOW_AFTER");
}

static void test_widening(const vp_engine_options *base, const char *const bodies[5])
{
    vp_error err = {0};
    vp_engine *clean, *e;
    open_clean_and_narrow(base, "2", &clean, &e);
    if (!clean || !e)
        goto out;
    CHECK(strstr(vp_engine_activations(e), "narrow") && vp_engine_widenings(e) == 0);
    /* after each pass: widenings, prefixes stored, cache hits, entries */
    static const unsigned long long want[5][4] = {
        {0, 1, 0, 1}, {0, 2, 0, 2}, {1, 3, 0, 1}, {1, 4, 0, 2}, {1, 4, 1, 2}};
    for (int i = 0; i < 5; i++) {
        memset(&err, 0, sizeof err);
        vp_job *ref = score(clean, bodies[i], &err), *got = score(e, bodies[i], &err);
        CHECK_MSG(ref && got && test_same_logits(got, ref), "pass %d: %s", i + 1,
                  got ? "logits differ from the engine that never overflowed" : err.message);
        CHECK_MSG(!got || err.kind == VP_ERR_NONE, "pass %d: scored, but err holds \"%s\"",
                  i + 1, err.message);
        vp_job_free(ref);
        vp_job_free(got);
        vp_prefix_cache_stats st = cache_stats(e);
        unsigned long long have[4] = {vp_engine_widenings(e), st.stored, st.hits, st.entries};
        CHECK_MSG(!memcmp(have, want[i], sizeof have),
                  "pass %d: %llu widenings, %llu stored, %llu hits, %llu entries", i + 1,
                  have[0], have[1], have[2], have[3]);
    }
    CHECK(!strcmp(vp_engine_activations(e), "float32"));
out:
    vp_engine_close(clean);
    vp_engine_close(e);
}

/* A prefix cache warm-up pass that overflows does not widen the backend and fails
 * nothing: image X's prefix stored by pass 1, then X with a long question and 6 responses
 * (a warm-up: pass 2, which overflows), whose pass proper (3) overflows in turn, widens
 * and computes again (4), exactly as an engine that never overflowed. */
static void test_warm_up_overflow(const vp_engine_options *base, const char *stored,
                                  const char *warmed)
{
    vp_error err = {0};
    vp_engine *clean, *e;
    open_clean_and_narrow(base, "1", &clean, &e);
    for (int i = 0; clean && e && i < 2; i++) {
        memset(&err, 0, sizeof err);
        const char *body = i ? warmed : stored;
        vp_job *ref = score(clean, body, &err), *got = score(e, body, &err);
        CHECK_MSG(ref && got && test_same_logits(got, ref), "warm-up, pass %d: %s", i + 1,
                  got ? "logits differ from the engine that never overflowed" : err.message);
        vp_job_free(ref);
        vp_job_free(got);
    }
    if (clean && e) {
        vp_prefix_cache_stats st = cache_stats(e), sc = cache_stats(clean);
        CHECK_MSG(sc.warm_ups == 1 && st.warm_ups == 0 && vp_engine_widenings(e) == 1,
                  "warm-ups %llu (clean %llu), %zu widenings",
                  (unsigned long long)st.warm_ups, (unsigned long long)sc.warm_ups,
                  vp_engine_widenings(e));
    }
    vp_engine_close(clean);
    vp_engine_close(e);
}

/* A switch that fails (the CUDA backend's weights half loaded) leaves nothing to run
 * on: the pass fails as a lost device, and so does every later one. */
static void test_widening_fails(const vp_engine_options *opt, const char *body)
{
    vp_error err = {0};
    vp_engine *e = NULL;
    setenv("VPRM_TEST_OVERFLOW_AFTER", "0", 1);
    setenv("VPRM_TEST_WIDEN_FAILS", "1", 1);
    CHECK_MSG(vp_engine_open(opt, &e, &err) == 0, "%s", err.message);
    unsetenv("VPRM_TEST_OVERFLOW_AFTER");
    unsetenv("VPRM_TEST_WIDEN_FAILS");
    if (!e)
        return;
    for (int i = 0; i < 2; i++) {
        memset(&err, 0, sizeof err);
        vp_job *job = score(e, body, &err);
        CHECK_MSG(!job && err.kind == VP_ERR_DEVICE && vp_engine_device_failure(e) &&
                      strstr(err.message, "simulated widening failure"),
                  "pass %d: kind %d, \"%s\"", i + 1, (int)err.kind, err.message);
        vp_job_free(job);
    }
    CHECK(vp_engine_widenings(e) == 0);
    vp_engine_close(e);
}

static int run_one(vp_engine *e, const char *body, vp_error *err)
{
    vp_job *job = test_prepare(e, body);
    if (!job)
        return -2;
    int rc = vp_engine_run(e, &job, 1, err);
    if (rc == 0) {
        const vp_score_result *r = vp_job_result(job);
        for (size_t i = 0; i < vp_job_n_responses(job); i++)
            for (size_t k = 0; k < r->responses[i].n_steps; k++)
                CHECK_MSG(isfinite(r->responses[i].step_scores[k]), "a scored pass gave NaN");
    }
    vp_job_free(job);
    return rc;
}

int main(void)
{
    char dir[] = "/tmp/vprm-test-overflow-XXXXXX";
    vp_engine_options opt;
    if (test_tiny_model(dir, 5, &opt))
        return 1;
    const char *resp[] = {"Step 1: add the numbers.\\n\\nStep 2: the answer is 4."};
    char *body = test_request_json(NULL, "What is 2 + 2?", 6, resp, 1);
    vp_error err = {0};
    vp_engine *e = NULL;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    if (e) { /* the unmodified model scores: the check below is about the poison */
        CHECK_MSG(run_one(e, body, &err) == 0, "clean model: %s", err.message);
        vp_engine_close(e);
        e = NULL;
    }
    /* image prompts, long enough for the prefix cache: X, Y, X, Y, X with new responses */
    char *bodies[5] = {NULL};
    const char *r1[] = {"Step one.\\n\\nx = 2", "Step one.\\n\\nx = 3"};
    const char *r2[] = {"Another way\\n\\nx = 5", "x = 9"};
    char *url[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        uint8_t *png = NULL;
        size_t png_len = 0;
        CHECK(vp_png_random(300, 200, 3 + (uint64_t)k, &png, &png_len, &err) == 0);
        url[k] = png ? vp_data_url("image/png", png, png_len) : NULL;
        free(png);
    }
    for (int i = 0; i < 5; i++)
        bodies[i] = test_request_json(url[i % 2], "What is x?", 2, i < 2 ? r1 : r2, 2);
    test_widening(&opt, (const char *const *)bodies);
    char long_q[600] = "";
    while (strlen(long_q) + 60 < sizeof long_q)
        strcat(long_q, "Measure every side of the shape, then add them up. ");
    const char *r6[] = {"Step one.\\n\\nx = 1", "x = 2", "Add.\\n\\nx = 3", "x = 4\\n\\nso",
                        "Five\\n\\nx = 5", "x = 6"};
    char *warmed = test_request_json(url[0], long_q, 2, r6, 6);
    test_warm_up_overflow(&opt, bodies[0], warmed);
    free(warmed);
    test_widening_fails(&opt, body);
    for (int i = 0; i < 5; i++)
        free(bodies[i]);
    free(url[0]);
    free(url[1]);

    CHECK(poison(dir, "language_model.model.norm.weight") == 0);
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    if (e) {
        memset(&err, 0, sizeof err);
        int rc = run_one(e, body, &err);
        CHECK_MSG(rc == -1 && err.kind == VP_ERR_MODEL && strstr(err.message, "non-finite logits"),
                  "poisoned model: rc %d, kind %d, \"%s\"", rc, (int)err.kind, err.message);
        printf("poisoned model: %s\n", err.message);
        vp_engine_close(e);
        e = NULL;
    }
    /* the poisoned model in a narrow format: one switch, then the wide pass fails too */
    setenv("VPRM_TEST_OVERFLOW_AFTER", "0", 1);
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    unsetenv("VPRM_TEST_OVERFLOW_AFTER");
    if (e) {
        memset(&err, 0, sizeof err);
        int rc = run_one(e, body, &err);
        CHECK_MSG(rc == -1 && err.kind == VP_ERR_MODEL && vp_engine_widenings(e) == 1 &&
                      !strcmp(vp_engine_activations(e), "float32"),
                  "poisoned, narrow: rc %d, kind %d, %zu widenings", rc, (int)err.kind,
                  vp_engine_widenings(e));
        vp_engine_close(e);
    }
    free(body);
    CHECK(test_remove_dir(dir) == 0);
    return check_summary("test_engine_overflow");
}
