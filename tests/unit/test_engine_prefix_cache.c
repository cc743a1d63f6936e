/* The prefix KV cache end to end on the CPU backend (a random tiny model from mkmodel):
 * a request whose image and question an earlier pass stored loads that prefix's keys and
 * values instead of computing them, skips the vision encoder, and still gets exactly the
 * logits of an engine without the cache (the oracle: that engine's shared-prefix path,
 * itself held to PyTorch by the oracle suites). Covers W4's repeat, another image with
 * the same question, a single response, one response on a new image (its prefix stored,
 * not a partial hit taken forever), a pass mixing hits and stores, eviction in a
 * cache that holds one prefix, the budget of one pass, extensions (a partial hit
 * stores the rest of its prefix after the entry it loaded), the warm-up pass (a
 * cached start not worth loading for each response: the rest stored first), and a pass
 * of two questions about one image split into one group per question once the cache
 * holds more of each (and not split when its rows would pass the budget). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cuda_plan/cuda_plan.h"
#include "engine/engine.h"
#include "engine/job.h"
#include "engine/model/mkmodel.h"
#include "engine/prefix_cache.h"
#include "server/bench/bench.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"

typedef struct scored {
    vp_job *job;
    double flops; /* useful FLOPs of its pass */
} scored;

/* Scores body alone in one pass of e. */
static scored score(vp_engine *e, const char *body)
{
    scored s = {test_prepare(e, body), 0};
    vp_error err = {0};
    double f0 = vp_engine_useful_flops(e);
    if (s.job) {
        CHECK_MSG(vp_engine_run(e, &s.job, 1, &err) == 0, "%s", err.message);
        s.flops = vp_engine_useful_flops(e) - f0;
    }
    return s;
}

static vp_prefix_cache_stats stats(const vp_engine *e)
{
    vp_prefix_cache_stats s;
    vp_prefix_cache_stats_get(vp_engine_prefix_cache(e), &s);
    return s;
}

/* Scores body on both engines: bit-identical logits; returns the cached engine's job. */
static scored both(vp_engine *on, vp_engine *off, const char *body, const char *what)
{
    uint64_t warm0 = stats(on).warm_ups;
    scored a = score(on, body), b = score(off, body);
    bool warmed = stats(on).warm_ups > warm0;
    CHECK_MSG(a.job && b.job && test_same_logits(a.job, b.job), "%s: cache on != off", what);
    if (a.job && b.job) {
        const vp_usage *u = &vp_job_result(a.job)->usage, *v = &vp_job_result(b.job)->usage;
        CHECK(u->prompt_tokens == v->prompt_tokens && v->cached_prefix_tokens == 0);
        if (u->cached_prefix_tokens) {
            /* no prefix computed: every response computes its tokens past the cached rows,
             * and a warm-up before them the rest of the prefix past the rows it loaded */
            size_t n = vp_job_n_responses(a.job);
            size_t past = u->prompt_tokens - n * u->cached_prefix_tokens;
            CHECK_MSG((warmed ? u->computed_tokens > past &&
                                    u->computed_tokens <= past + u->cached_prefix_tokens
                              : u->computed_tokens == past) &&
                      u->shared_prefix_tokens == u->cached_prefix_tokens &&
                      u->computed_tokens < v->computed_tokens,
                      "%s: computed %zu of %zu, cached %zu (off: %zu)", what, u->computed_tokens,
                      u->prompt_tokens, u->cached_prefix_tokens, v->computed_tokens);
        }
    }
    vp_job_free(b.job);
    return a;
}

/* Scores the two bodies in one pass of `on`: logits bit-identical to `off` scoring each
 * alone, each job's tokens past its cached rows computed by its responses and nothing
 * else; cached[i]: job i's cached rows (SIZE_MAX when it failed). */
static void pair_pass(vp_engine *on, vp_engine *off, char *const body[2], size_t cached[2],
                      const char *what)
{
    vp_job *pair[2] = {test_prepare(on, body[0]), test_prepare(on, body[1])};
    vp_error err = {0};
    cached[0] = cached[1] = SIZE_MAX;
    if (pair[0] && pair[1]) {
        uint64_t warm0 = stats(on).warm_ups;
        CHECK_MSG(vp_engine_run(on, pair, 2, &err) == 0, "%s: %s", what, err.message);
        bool warmed = stats(on).warm_ups > warm0;
        for (int i = 0; i < 2 && !err.message[0]; i++) {
            scored alone = score(off, body[i]);
            CHECK_MSG(alone.job && test_same_logits(pair[i], alone.job), "%s: job %d", what, i);
            const vp_usage *u = &vp_job_result(pair[i])->usage;
            size_t n = vp_job_n_responses(pair[i]);
            cached[i] = u->cached_prefix_tokens;
            size_t past = u->prompt_tokens - n * cached[i]; /* a warm-up's rows besides */
            CHECK_MSG(!cached[i] || (u->shared_prefix_tokens == cached[i] &&
                                     (warmed ? u->computed_tokens > past &&
                                                   u->computed_tokens <= past + cached[i]
                                             : u->computed_tokens == past)),
                      "%s: job %d computed %zu of %zu, cached %zu", what, i, u->computed_tokens,
                      u->prompt_tokens, cached[i]);
            vp_job_free(alone.job);
        }
    }
    vp_job_free(pair[0]);
    vp_job_free(pair[1]);
}

/* Useful FLOPs of the vision encoder and projector for n tiles. */
static double vision_flops(const vp_engine *e, size_t n)
{
    vp_batch b = {.n_tiles = n};
    vp_flops f;
    vp_batch_useful_flops(vp_engine_config(e), &b, &f);
    return f.vision + f.projector;
}


int main(void)
{
    char dir[] = "/tmp/vprm-test-prefix-XXXXXX";
    vp_engine_options opt;
    CHECK(test_tiny_model(dir, 5, &opt) == 0);
    vp_error err = {0};
    vp_engine *off = NULL, *on = NULL;
    CHECK_MSG(vp_engine_open(&opt, &off, &err) == 0, "%s", err.message);
    CHECK(off && vp_engine_prefix_cache(off) == NULL); /* the engine's default: off */
    opt.prefix_cache_bytes = (size_t)64 << 20;
    CHECK_MSG(vp_engine_open(&opt, &on, &err) == 0, "%s", err.message);
    if (!on || !off)
        return check_summary("engine_prefix_cache");
    vp_backend_memory mem;
    vp_engine_memory(on, &mem);
    CHECK(mem.kv_cache_rows > 0 && mem.kv_cache_bytes <= opt.prefix_cache_bytes);

    uint8_t *png_a, *png_b;
    size_t len_a, len_b;
    CHECK(vp_png_random(500, 300, 1, &png_a, &len_a, &err) == 0);
    CHECK(vp_png_random(500, 300, 2, &png_b, &len_b, &err) == 0); /* same size, other pixels */
    uint8_t *png_c;
    size_t len_c;
    CHECK(vp_png_random(500, 300, 3, &png_c, &len_c, &err) == 0);
    char *url_c = vp_data_url("image/png", png_c, len_c);
    char *url_a = vp_data_url("image/png", png_a, len_a), *url_b = vp_data_url("image/png", png_b, len_b);
    const char *q = "What is x?";
    const char *r1[] = {"Step one.\\n\\nx = 2", "Step one.\\n\\nx = 3"};
    const char *r2[] = {"Another way\\n\\nx = 5", "Guess\\n\\nx = 2\\n\\nok", "x = 9"};
    const char *r3[] = {"Step one.\\n\\nx = 4"};
    const char *r4[] = {"Two plus two\\n\\nis 4", "It is 5"};
    char *a1 = test_request_json(url_a, q, 2, r1, 2), *a2 = test_request_json(url_a, q, 2, r2, 3);
    char *b1 = test_request_json(url_b, q, 2, r1, 2), *a3 = test_request_json(url_a, q, 2, r3, 1);
    char *t1 = test_request_json(NULL, "Sum 2 and 2, and say why at some length please.", 2, r4, 2);
    char *c1 = test_request_json(url_c, q, 2, r3, 1);

    /* W4: the first request stores its prefix; a re-score with new responses loads it */
    scored s = both(on, off, a1, "first request");
    CHECK(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens == 0);
    vp_prefix_cache_stats st = stats(on);
    CHECK_MSG(st.stored == 1 && st.misses == 1 && st.hits == 0, "stored %llu",
              (unsigned long long)st.stored);
    size_t tiles = s.job ? s.job->n_tiles : 0;
    double first_flops = s.flops;
    vp_job_free(s.job);
    s = both(on, off, a2, "re-score, new responses");
    if (s.job) {
        const vp_usage *u = &vp_job_result(s.job)->usage;
        CHECK_MSG(u->cached_prefix_tokens > u->image_tokens, "cached %zu", u->cached_prefix_tokens);
        /* no vision: the pass's useful FLOPs hold none of the encoder's */
        scored ref = score(off, a2);
        CHECK_MSG(tiles == 3 && ref.flops - s.flops >= vision_flops(on, tiles),
                  "FLOPs %g with the cache, %g without, vision %g", s.flops, ref.flops,
                  vision_flops(on, tiles));
        CHECK(first_flops > s.flops);
        vp_job_free(ref.job);
    }
    vp_job_free(s.job);
    st = stats(on);
    CHECK(st.hits == 1 && st.tokens_reused > 0 && st.entries == 1);

    /* the same question on another image: only the rows before the image would match,
     * too few to pay; it stores its own prefix, which the next request then uses */
    s = both(on, off, b1, "other image");
    CHECK(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens == 0);
    vp_job_free(s.job);
    s = both(on, off, b1, "other image again");
    CHECK(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens > 0);
    vp_job_free(s.job);

    /* one response on a third image, as an RL loop sends them: the system prompt's rows
     * would be a hit (one response computes fewer tokens with any hit), but it stops
     * before the image; the request computes and stores its prefix, image included,
     * which the next one loads whole (without the rule, every request ran the vision
     * encoder and stored nothing) */
    for (int i = 0; i < 3; i++) {
        s = both(on, off, c1, i ? "one response, new image, again" : "one response, new image");
        if (s.job) {
            const vp_usage *u = &vp_job_result(s.job)->usage;
            CHECK_MSG(i ? u->cached_prefix_tokens > u->image_tokens : u->cached_prefix_tokens == 0,
                      "one response on image C, request %d: %zu rows cached, %zu image tokens", i,
                      u->cached_prefix_tokens, u->image_tokens);
        }
        vp_job_free(s.job);
    }

    /* one response: it loads up to its first step's score position */
    s = both(on, off, a3, "single response");
    CHECK(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens > 0);
    vp_job_free(s.job);

    /* one pass of four jobs: image A (hit), image B (hit), text only (its system prompt's
     * rows may serve it), and A again sharing the pass's group; each equals its logits
     * scored alone without cache */
    const char *bodies[4] = {a2, b1, t1, a3};
    vp_job *jobs[4], *ref[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = test_prepare(on, bodies[i]);
        ref[i] = test_prepare(off, bodies[i]);
        CHECK(jobs[i] && ref[i]);
    }
    if (jobs[0] && jobs[1] && jobs[2] && jobs[3] && ref[0] && ref[1] && ref[2] && ref[3]) {
        CHECK_MSG(vp_engine_run(on, jobs, 4, &err) == 0, "%s", err.message);
        for (int i = 0; i < 4; i++) {
            CHECK_MSG(vp_engine_run(off, &ref[i], 1, &err) == 0, "%s", err.message);
            CHECK_MSG(test_same_logits(jobs[i], ref[i]), "mixed pass, job %d", i);
        }
        CHECK(vp_job_result(jobs[0])->usage.cached_prefix_tokens > 0);
        CHECK(vp_job_result(jobs[1])->usage.cached_prefix_tokens > 0);
    }
    for (int i = 0; i < 4; i++) {
        vp_job_free(jobs[i]);
        vp_job_free(ref[i]);
    }
    s = both(on, off, t1, "text only, second time");
    CHECK(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens > 0);
    vp_job_free(s.job);
    vp_engine_close(on);
    on = NULL;

    /* a cache with rows for one image prefix: A and B take turns evicting each other, and
     * every answer stays exact */
    s = score(off, a1);
    size_t prefix = s.job ? vp_job_result(s.job)->usage.shared_prefix_tokens : 0;
    vp_job_free(s.job);
    const vp_llm_config *l = &vp_engine_config(off)->llm;
    size_t row_bytes = (size_t)l->layers * 2 * (size_t)l->kv_heads * (size_t)l->head_dim * 4;
    opt.prefix_cache_bytes = (prefix + prefix / 2) * row_bytes;
    CHECK_MSG(vp_engine_open(&opt, &on, &err) == 0, "%s", err.message);
    const char *turns[] = {a1, b1, a2, b1, a1};
    for (int i = 0; on && i < 5; i++) {
        s = both(on, off, turns[i], "small cache");
        CHECK(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens == 0); /* always evicted */
        vp_job_free(s.job);
    }
    st = stats(on);
    CHECK_MSG(st.evictions == 4 && st.entries == 1 && st.hits == 0, "%llu evictions",
              (unsigned long long)st.evictions);
    /* one pass, B (new: its prefix to store) before A (held: a hit). Every lookup comes
     * before any store, so A's entry is pinned and B's store, finding no room, is dropped;
     * B first used to evict A's entry, and A computed its prefix again */
    s = both(on, off, a1, "small cache: A stored");
    vp_job_free(s.job);
    vp_job *order[2] = {test_prepare(on, b1), test_prepare(on, a2)};
    vp_job *each[2] = {test_prepare(off, b1), test_prepare(off, a2)};
    if (order[0] && order[1] && each[0] && each[1]) {
        CHECK_MSG(vp_engine_run(on, order, 2, &err) == 0, "%s", err.message);
        for (int i = 0; i < 2; i++) {
            CHECK_MSG(vp_engine_run(off, &each[i], 1, &err) == 0, "%s", err.message);
            CHECK_MSG(test_same_logits(order[i], each[i]), "small cache, B then A: job %d", i);
        }
        CHECK_MSG(vp_job_result(order[1])->usage.cached_prefix_tokens > 0 &&
                  vp_job_result(order[0])->usage.cached_prefix_tokens == 0,
                  "small cache, B then A: A cached %zu rows",
                  vp_job_result(order[1])->usage.cached_prefix_tokens);
    }
    for (int i = 0; i < 2; i++) {
        vp_job_free(order[i]);
        vp_job_free(each[i]);
    }
    vp_engine_close(on);
    on = NULL;

    /* the pass budget counts the cached rows. a0's responses differ from their first letter,
     * so it stores the prompt alone; a1's two responses share "Step one." after it, so
     * loading a0's rows makes each response compute those few shared tokens: fewer tokens
     * in all, but more rows in the pass than a1 alone. With a budget of exactly a1's
     * tokens the hit is refused (a1 computes its prefix); with room, it is taken. */
    opt.prefix_cache_bytes = (size_t)64 << 20;
    const char *r0[] = {"A", "B"};
    char *a0 = test_request_json(url_a, q, 2, r0, 2);
    vp_job *probe = test_prepare(off, a1);
    size_t a1_tokens = probe ? vp_job_tokens(probe) : 0;
    vp_job_free(probe);
    for (int tight = 1; tight >= 0; tight--) {
        opt.max_batch_tokens = tight ? a1_tokens : 0;
        CHECK_MSG(vp_engine_open(&opt, &on, &err) == 0, "%s", err.message);
        if (!on)
            continue;
        s = both(on, off, a0, "budget: store the prompt");
        size_t stored = s.job ? vp_job_result(s.job)->usage.shared_prefix_tokens : 0;
        vp_job_free(s.job);
        s = both(on, off, a1, tight ? "budget: tight pass" : "budget: room");
        if (s.job) {
            const vp_usage *u = &vp_job_result(s.job)->usage;
            CHECK_MSG(tight ? u->cached_prefix_tokens == 0
                            : u->cached_prefix_tokens == stored && stored < prefix,
                      "%s: cached %zu (a0 stored %zu, a1's prefix %zu)", tight ? "tight" : "room",
                      u->cached_prefix_tokens, stored, prefix);
        }
        vp_job_free(s.job);
        if (tight) {
            /* the tight pass computed a1's prefix and stored only its rows past a0's (an
             * extension): a1 again loads it whole, which keeps the pass's rows as they were,
             * and the cache holds the prefix's rows once */
            vp_prefix_cache_stats st1 = stats(on);
            CHECK_MSG(st1.entries == 2 && st1.rows_used == prefix, "tight: %zu entries, %zu rows "
                      "(a0 stored %zu, prefix %zu)", st1.entries, st1.rows_used, stored, prefix);
            s = both(on, off, a1, "budget: tight pass again");
            CHECK_MSG(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens == prefix,
                      "tight again: cached %zu of %zu",
                      s.job ? vp_job_result(s.job)->usage.cached_prefix_tokens : 0, prefix);
            vp_job_free(s.job);
            vp_engine_close(on);
            on = NULL;
        }
    }
    /* that partial hit stored the rest of a1's prefix as an extension of a0's entry: a1
     * again loads its whole prefix, in two runs of cache rows */
    s = both(on, off, a1, "extension: whole prefix");
    CHECK_MSG(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens == prefix,
              "cached %zu of %zu", s.job ? vp_job_result(s.job)->usage.cached_prefix_tokens : 0,
              prefix);
    vp_job_free(s.job);
    free(a0);

    /* two questions about one image in one pass share the rows up to where the questions
     * part; each question alone then loads those and stores its own rest (an extension,
     * not a second copy of the image's rows), and the next time loads its whole prefix */
    const char *qs[2] = {"What is x in the figure?", "What is y in the figure?"};
    char *qa[2];
    vp_job *pair[2];
    size_t own[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        qa[i] = test_request_json(url_a, qs[i], 2, r1, 2);
        pair[i] = test_prepare(on, qa[i]);
        scored alone = score(off, qa[i]);
        own[i] = alone.job ? vp_job_result(alone.job)->usage.shared_prefix_tokens : 0;
        vp_job_free(alone.job);
    }
    vp_prefix_cache_clear(vp_engine_prefix_cache(on));
    if (on && pair[0] && pair[1]) {
        CHECK_MSG(vp_engine_run(on, pair, 2, &err) == 0, "%s", err.message);
        size_t common = vp_job_result(pair[0])->usage.shared_prefix_tokens;
        CHECK_MSG(common > 0 && common < own[0] && common < own[1], "shared %zu (own %zu, %zu)",
                  common, own[0], own[1]);
        vp_prefix_cache_stats st0 = stats(on);
        for (int round = 0; round < 2; round++)
            for (int i = 0; i < 2; i++) {
                s = both(on, off, qa[i], round ? "question again" : "question alone");
                size_t cached = s.job ? vp_job_result(s.job)->usage.cached_prefix_tokens : 0;
                CHECK_MSG(cached == (round ? own[i] : common), "question %d, round %d: cached %zu "
                          "(common %zu, own %zu)", i, round, cached, common, own[i]);
                vp_job_free(s.job);
            }
        st = stats(on);
        /* the pair's entry and two extensions; the extensions hold no image rows */
        CHECK_MSG(st.entries == 3 && st.stored - st0.stored == 2 &&
                  st.rows_used == common + (own[0] - common) + (own[1] - common),
                  "%zu entries, %zu rows", st.entries, st.rows_used);

        /* both questions in one pass again, each held whole: the group splits into one
         * per question, each loading its own prefix (merged, both would load only the
         * rows up to where the questions part and compute the rest per response) */
        size_t got[2];
        pair_pass(on, off, qa, got, "questions held, one pass");
        CHECK_MSG(got[0] == own[0] && got[1] == own[1], "questions held: cached %zu, %zu (own "
                  "%zu, %zu)", got[0], got[1], own[0], own[1]);

        /* only the shared rows held: as many tokens computed either way, but split, each
         * question stores its rest after them, and the next pass loads each whole */
        vp_prefix_cache_clear(vp_engine_prefix_cache(on));
        pair_pass(on, off, qa, got, "questions new");
        CHECK_MSG(got[0] == 0 && got[1] == 0, "questions new: cached %zu, %zu", got[0], got[1]);
        st0 = stats(on);
        pair_pass(on, off, qa, got, "questions asked once");
        st = stats(on);
        CHECK_MSG(got[0] == common && got[1] == common && st.stored - st0.stored == 2 &&
                      st.entries == 3,
                  "questions asked once: cached %zu, %zu (common %zu), %llu stored", got[0],
                  got[1], common, (unsigned long long)(st.stored - st0.stored));
        pair_pass(on, off, qa, got, "questions asked twice");
        CHECK_MSG(got[0] == own[0] && got[1] == own[1], "questions asked twice: cached %zu, "
                  "%zu (own %zu, %zu)", got[0], got[1], own[0], own[1]);

        /* a pass budget that holds the group loading the shared rows once but not each
         * question loading its own: no split (its rows would pass the budget) */
        size_t total = 0; /* the responses' tokens: each job computes its prefix once */
        for (int i = 0; i < 2; i++) {
            vp_job *j = test_prepare(off, qa[i]);
            total += j ? vp_job_tokens(j) + own[i] : 0;
            vp_job_free(j);
        }
        vp_engine *narrow = NULL;
        vp_engine_options nopt = opt;
        nopt.prefix_cache_bytes = (size_t)64 << 20;
        nopt.max_batch_tokens = total - 4 * common + common; /* computed + loaded, merged */
        CHECK(total - own[0] - own[1] > nopt.max_batch_tokens); /* split's rows */
        CHECK_MSG(vp_engine_open(&nopt, &narrow, &err) == 0, "%s", err.message);
        for (int i = 0; narrow && i < 2; i++)
            vp_job_free(both(narrow, off, qa[i], "narrow: question alone").job);
        if (narrow) {
            pair_pass(narrow, off, qa, got, "narrow: one pass");
            CHECK_MSG(got[0] == common && got[1] == common, "narrow: cached %zu, %zu (common "
                      "%zu)", got[0], got[1], common);
        }
        vp_engine_close(narrow);

        /* the same without an image, where a question with no cached rows may compute its
         * prefix: the long question held, the short one not; split, the short question
         * cannot load the shared rows within the budget and computes its own prefix,
         * fewer tokens than the group but more rows than the budget. No split */
        const char *pre = "Please read this shared preamble about a triangle with sides three "
                          "four and five";
        char long_q[512];
        snprintf(long_q, sizeof long_q, "%s, then say what kind of triangle this is and how "
                 "you know it from the given sides and angles, and also what its area is in "
                 "square units, and its perimeter, and the radius of its inscribed circle, and "
                 "the radius of its circumscribed circle, and whether it can tile the plane, "
                 "and which of its angles is the largest, and by how much the longest side "
                 "exceeds the shortest one", pre);
        char *tq[2] = {test_request_json(NULL, long_q, 2, r1, 2),
                       test_request_json(NULL, pre, 2, r1, 2)};
        size_t t_own[2], t_len[2], t_common = 0;
        for (int i = 0; i < 2; i++) {
            scored alone = score(off, tq[i]);
            const vp_usage *u = alone.job ? &vp_job_result(alone.job)->usage : NULL;
            t_own[i] = u ? u->shared_prefix_tokens : 0;
            t_len[i] = u ? u->prompt_tokens : 0;
            vp_job_free(alone.job);
        }
        vp_job *tpair[2] = {test_prepare(off, tq[0]), test_prepare(off, tq[1])};
        if (tpair[0] && tpair[1] && vp_engine_run(off, tpair, 2, &err) == 0)
            t_common = vp_job_result(tpair[0])->usage.shared_prefix_tokens;
        vp_job_free(tpair[0]);
        vp_job_free(tpair[1]);
        size_t t_total = t_len[0] + t_len[1];
        nopt.max_batch_tokens = t_total - 3 * t_common; /* the group loading the shared rows */
        /* the premise: split, the long question loads, the short one cannot also load the
         * shared rows, computes its prefix: fewer tokens, more rows than the budget */
        size_t long_rows = t_len[0] - t_own[0];
        CHECK_MSG(t_common >= 64 && t_common < t_own[1] && t_own[1] < t_own[0] &&
                      long_rows + t_len[1] - t_common > nopt.max_batch_tokens &&
                      t_len[0] - 2 * t_own[0] + t_len[1] - t_own[1] < t_total - 4 * t_common &&
                      long_rows + t_len[1] - t_own[1] > nopt.max_batch_tokens,
                  "text premise: own %zu, %zu, common %zu, tokens %zu, %zu", t_own[0], t_own[1],
                  t_common, t_len[0], t_len[1]);
        CHECK_MSG(vp_engine_open(&nopt, &narrow, &err) == 0, "%s", err.message);
        if (narrow) {
            vp_job_free(both(narrow, off, tq[0], "narrow text: long question alone").job);
            pair_pass(narrow, off, tq, got, "narrow text: one pass");
            CHECK_MSG(got[0] == t_common && got[1] == t_common, "narrow text: cached %zu, %zu "
                      "(common %zu)", got[0], got[1], t_common);
        }
        vp_engine_close(narrow);
        free(tq[0]);
        free(tq[1]);
    }
    for (int i = 0; i < 2; i++) {
        vp_job_free(pair[i]);
        free(qa[i]);
    }

    /* the warm-up pass: image A asked a long question with many responses. Loading A's
     * cached rows would make each of the 6 responses compute the question itself, more
     * than the whole prefix once, so the pass would run the vision encoder again; a
     * warm-up pass first loads the rows, computes the question once and stores it (an
     * extension), then the pass proper loads the whole prefix: no vision FLOPs in either,
     * logits exact. The second time the prefix is whole in the cache: no warm-up. */
    vp_prefix_cache_clear(vp_engine_prefix_cache(on));
    s = both(on, off, a1, "warm-up: image A stored");
    size_t a_prefix = s.job ? vp_job_result(s.job)->usage.shared_prefix_tokens : 0;
    vp_job_free(s.job);
    char long_q[600] = "";
    while (strlen(long_q) + 60 < sizeof long_q)
        strcat(long_q, "Measure every side of the shape, then add them up. ");
    const char *r6[] = {"Step one.\\n\\nx = 1", "x = 2", "Add.\\n\\nx = 3", "x = 4\\n\\nso",
                        "Five\\n\\nx = 5", "x = 6"};
    char *w1 = test_request_json(url_a, long_q, 2, r6, 6);
    size_t warm_rest = 0; /* rows of the prefix past A's that the warm-up computed */
    for (int round = 0; round < 2; round++) {
        vp_prefix_cache_stats w0 = stats(on);
        s = both(on, off, w1, round ? "warm-up: again" : "warm-up: long question");
        scored alone = score(off, w1);
        vp_prefix_cache_stats w = stats(on);
        if (s.job && alone.job) {
            const vp_usage *u = &vp_job_result(s.job)->usage;
            size_t P = vp_job_result(alone.job)->usage.shared_prefix_tokens, N = 6;
            /* the premise: A's rows are a start of the prefix that does not pay to load */
            CHECK_MSG(a_prefix > u->image_tokens && P > a_prefix && N * a_prefix <= (N - 1) * P,
                      "A's prefix %zu, this one %zu", a_prefix, P);
            CHECK_MSG(u->cached_prefix_tokens == P, "round %d: cached %zu of %zu", round,
                      u->cached_prefix_tokens, P);
            if (!round) /* it computed rows [k, P) and one more token */
                warm_rest = u->computed_tokens - (u->prompt_tokens - N * P) - 1;
            CHECK_MSG(w.warm_ups - w0.warm_ups == (round ? 0u : 1u), "round %d: %llu warm-ups",
                      round, (unsigned long long)(w.warm_ups - w0.warm_ups));
            /* the warm-up and the pass together: no vision encoder */
            CHECK_MSG(alone.flops - s.flops >= vision_flops(on, tiles),
                      "round %d: FLOPs %g with the cache, %g without", round, s.flops, alone.flops);
            /* one hit a round: the pass proper's (the warm-up's lookup is not counted) */
            CHECK_MSG(w.entries == w0.entries + (round ? 0 : 1) && w.misses == w0.misses &&
                          w.hits == w0.hits + 1 && w.tokens_reused == w0.tokens_reused + P,
                      "round %d: %zu entries (were %zu), %llu misses, %llu hits, %llu rows "
                      "reused", round, w.entries, w0.entries,
                      (unsigned long long)(w.misses - w0.misses),
                      (unsigned long long)(w.hits - w0.hits),
                      (unsigned long long)(w.tokens_reused - w0.tokens_reused));
        }
        vp_job_free(alone.job);
        vp_job_free(s.job);
    }

    /* a warm-up whose rest could not be stored (host bytes for A's entry, not for the
     * rest's ids) is dropped before it runs: no warm-up pass, nothing computed twice */
    {
        scored alone = score(off, w1);
        size_t P = alone.job ? vp_job_result(alone.job)->usage.shared_prefix_tokens : 0;
        vp_engine_options hopt = opt;
        hopt.max_batch_tokens = 0;
        hopt.prefix_cache_bytes = (size_t)64 << 20;
        hopt.prefix_cache_host_bytes = (size_t)1 << 30;
        vp_engine *h = NULL;
        size_t a_host = 0; /* what A's entry keeps on the host */
        CHECK_MSG(vp_engine_open(&hopt, &h, &err) == 0, "%s", err.message);
        if (h) {
            vp_job_free(both(h, off, a1, "host-tight: A stored").job);
            a_host = stats(h).host_bytes;
            vp_engine_close(h);
            h = NULL;
        }
        hopt.prefix_cache_host_bytes = a_host + 4 * P - 1; /* the rest keeps P ids */
        CHECK_MSG(a_host > 0 && vp_engine_open(&hopt, &h, &err) == 0, "%s", err.message);
        if (h && alone.job) {
            vp_job_free(both(h, off, a1, "host-tight: A stored").job);
            vp_prefix_cache_stats h0 = stats(h);
            s = both(h, off, w1, "host-tight: long question");
            vp_prefix_cache_stats h1 = stats(h);
            const vp_usage *u = s.job ? &vp_job_result(s.job)->usage : NULL;
            CHECK_MSG(u && h1.warm_ups == h0.warm_ups && h0.entries == 1 &&
                          u->computed_tokens == vp_job_result(alone.job)->usage.computed_tokens,
                      "host-tight: %llu warm-ups, computed %zu (alone %zu)",
                      (unsigned long long)(h1.warm_ups - h0.warm_ups), u ? u->computed_tokens : 0,
                      vp_job_result(alone.job)->usage.computed_tokens);
            vp_job_free(s.job);
        }
        vp_engine_close(h);
        vp_job_free(alone.job);
    }

    /* two long questions about A in one pass, each with 6 responses (two groups: the
     * image alone is not worth sharing at the price of each response computing its
     * question): one warm-up pass computes each question once and stores it, then each
     * loads its whole prefix */
    char long_q2[600] = "";
    while (strlen(long_q2) + 60 < sizeof long_q2)
        strcat(long_q2, "Count the corners of the shape, then name it twice. ");
    char *wq[2] = {w1, test_request_json(url_a, long_q2, 2, r6, 6)};
    size_t w_own[2];
    for (int i = 0; i < 2; i++) {
        scored alone = score(off, wq[i]);
        w_own[i] = alone.job ? vp_job_result(alone.job)->usage.shared_prefix_tokens : 0;
        vp_job_free(alone.job);
    }
    vp_prefix_cache_clear(vp_engine_prefix_cache(on));
    vp_job_free(both(on, off, a1, "warm-up parts: image A stored").job);
    for (int round = 0; round < 2; round++) {
        vp_prefix_cache_stats w0 = stats(on);
        size_t got[2];
        pair_pass(on, off, wq, got, round ? "warm-up parts: again" : "warm-up parts");
        vp_prefix_cache_stats w = stats(on);
        CHECK_MSG(got[0] == w_own[0] && got[1] == w_own[1] &&
                      w.warm_ups - w0.warm_ups == (round ? 0u : 1u) &&
                      w.entries == w0.entries + (round ? 0 : 2),
                  "warm-up parts, round %d: cached %zu, %zu of %zu, %zu; %llu warm-ups, %zu "
                  "entries (were %zu)", round, got[0], got[1], w_own[0], w_own[1],
                  (unsigned long long)(w.warm_ups - w0.warm_ups), w.entries, w0.entries);
    }
    free(wq[1]);

    /* the warm-up's stores keep what the pass proper loads: a cache with room for A's and
     * B's prefixes and one row less than the long question's rest, then one pass of that
     * question (a warm-up) and B again (a hit). The warm-up may evict neither A (its own
     * start) nor B (the pass's): it could store nothing, so it does not run, and B loads
     * (it used to evict B; then it ran and stored nothing) */
    s = score(off, b1);
    size_t b_prefix = s.job ? vp_job_result(s.job)->usage.shared_prefix_tokens : 0;
    vp_job_free(s.job);
    vp_engine *tight = NULL;
    opt.max_batch_tokens = 0;
    opt.prefix_cache_bytes = (a_prefix + b_prefix + warm_rest - 1) * row_bytes;
    CHECK(warm_rest > 1);
    CHECK_MSG(vp_engine_open(&opt, &tight, &err) == 0, "%s", err.message);
    for (int i = 0; tight && i < 2; i++) {
        s = both(tight, off, i ? b1 : a1, "keep: A and B stored");
        CHECK(s.job && vp_job_result(s.job)->usage.cached_prefix_tokens == 0);
        vp_job_free(s.job);
    }
    vp_job *wb[2] = {tight ? test_prepare(tight, w1) : NULL, tight ? test_prepare(tight, b1) : NULL};
    vp_job *wb_off[2] = {test_prepare(off, w1), test_prepare(off, b1)};
    if (wb[0] && wb[1] && wb_off[0] && wb_off[1]) {
        vp_prefix_cache_stats k0 = stats(tight);
        CHECK_MSG(vp_engine_run(tight, wb, 2, &err) == 0, "%s", err.message);
        for (int i = 0; i < 2; i++) {
            CHECK_MSG(vp_engine_run(off, &wb_off[i], 1, &err) == 0, "%s", err.message);
            CHECK_MSG(test_same_logits(wb[i], wb_off[i]), "keep: job %d", i);
        }
        vp_prefix_cache_stats k1 = stats(tight);
        CHECK_MSG(vp_job_result(wb[1])->usage.cached_prefix_tokens == b_prefix &&
                      k1.warm_ups == k0.warm_ups && k1.evictions == k0.evictions,
                  "keep: B cached %zu of %zu, %llu warm-ups, %llu evictions",
                  vp_job_result(wb[1])->usage.cached_prefix_tokens, b_prefix,
                  (unsigned long long)(k1.warm_ups - k0.warm_ups),
                  (unsigned long long)(k1.evictions - k0.evictions));
    }
    for (int i = 0; i < 2; i++) {
        vp_job_free(wb[i]);
        vp_job_free(wb_off[i]);
    }
    vp_engine_close(tight);
    free(w1);

    free(a1);
    free(a2);
    free(a3);
    free(b1);
    free(t1);
    free(c1);
    free(url_a), free(url_b), free(png_a), free(png_b), free(url_c), free(png_c);
    vp_engine_close(on);
    vp_engine_close(off);
    CHECK(test_remove_dir(dir) == 0);
    return check_summary("engine_prefix_cache");
}
