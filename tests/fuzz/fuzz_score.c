/* A score request from body to scores: parse, prepare and one packed pass on the CPU
 * backend over a random tiny model (made once, in a temporary folder), twice: with the
 * responses' common prefix shared and without.
 * Promises: every failure has a 4xx kind and a message, and both engines fail alike;
 * a request over the token budget fails with 413 instead of running; a result has one
 * entry per response with as many step scores as the request has steps, each finite, in
 * [0, 1] and the softmax of its two logits; the aggregate is the request's aggregation of
 * the step scores (computed here); the ranking is a stable sort by descending score;
 * sharing the prefix changes no logit beyond float rounding, computes no more tokens, and
 * the usage adds up; two requests packed into one pass score as each does alone; with a
 * prefix KV cache (kept across inputs), a request run twice gives bit-identical logits;
 * each response's prompt is the one it has prepared alone; responses whose prompts are
 * the same tokens (computed once) have bit-identical logits, and only the distinct ones
 * are computed.
 * Requests over FUZZ_RUN_TOKENS are prepared but not run (speed). */
#include <math.h>
#include <string.h>

#include "engine/engine.h"
#include "proto/request.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_tiny_model.h"

#define FUZZ_RUN_TOKENS 1536

static char model_dir[4096];
static vp_engine *shared_engine, *plain_engine, *cached_engine;
static vp_request_limits limits;
static size_t runs, cache_hits; /* reported at exit */

static void cleanup(void)
{
    fprintf(stderr, "fuzz_score: %zu requests scored, %zu prefix-cache hits\n", runs, cache_hits);
    vp_engine_close(shared_engine);
    vp_engine_close(plain_engine);
    vp_engine_close(cached_engine);
    fuzz_remove_tree(model_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vp_error err = {0};
    fuzz_tiny_model(model_dir, "fuzz_score", 7);
    vp_engine_options o;
    vp_engine_options_default(&o);
    o.model_dir = model_dir;
    o.threads = 1;
    o.max_request_tokens = 4096;
    o.max_image_pixels = 256 * 256;
    o.max_image_bytes = 16384;
    o.max_tiles = 2;
    o.image_threads = 1;
    FUZZ_REQUIRE(vp_engine_open(&o, &shared_engine, &err) == 0, "engine: %s", err.message);
    o.prefix_cache_bytes = (size_t)8 << 20; /* kept across inputs: hits on earlier ones too */
    o.prefix_cache_min_tokens = 8;
    FUZZ_REQUIRE(vp_engine_open(&o, &cached_engine, &err) == 0, "engine: %s", err.message);
    o.prefix_cache_bytes = 0;
    o.prefix_sharing = false;
    FUZZ_REQUIRE(vp_engine_open(&o, &plain_engine, &err) == 0, "engine: %s", err.message);
    atexit(cleanup);
    vp_request_limits_default(&limits);
    limits.max_responses = 6;
    limits.max_steps = 12;
    limits.max_images = 1;
    limits.max_image_bytes = 16384;
    limits.max_text_bytes = 4096;
    limits.max_tiles = 2;
    return 0;
}

static bool is_4xx(vp_err_kind k)
{
    return k == VP_ERR_BAD_REQUEST || k == VP_ERR_TOO_LARGE || k == VP_ERR_UNSUPPORTED ||
           k == VP_ERR_UNDECODABLE;
}

static double aggregate(const float *s, size_t n, vp_aggregation a)
{
    double acc = s[0];
    for (size_t k = 1; k < n; k++)
        acc = a == VP_AGG_MEAN      ? acc + s[k]
              : a == VP_AGG_MIN     ? fmin(acc, s[k])
              : a == VP_AGG_MAX     ? fmax(acc, s[k])
              : a == VP_AGG_LAST    ? s[k]
                                    : acc * s[k];
    return a == VP_AGG_MEAN ? acc / (double)n : acc;
}

static void check_result(const vp_score_request *req, const vp_job *job, const char *which)
{
    const vp_score_result *res = vp_job_result(job);
    FUZZ_REQUIRE(res->n_responses == req->n_responses, "%s: %zu results for %zu responses",
                 which, res->n_responses, req->n_responses);
    bool *seen = calloc(res->n_responses, 1);
    FUZZ_REQUIRE(seen, "out of memory");
    for (size_t r = 0; r < res->n_responses; r++) {
        const vp_response_result *rr = &res->responses[r];
        FUZZ_REQUIRE(rr->n_steps == req->responses[r].n_steps, "%s: response %zu: %zu scores, %zu steps",
                     which, r, rr->n_steps, req->responses[r].n_steps);
        for (size_t k = 0; k < rr->n_steps; k++) {
            float s = rr->step_scores[k], lp = rr->step_logits[2 * k], lm = rr->step_logits[2 * k + 1];
            FUZZ_REQUIRE(isfinite(s) && s >= 0.0f && s <= 1.0f && isfinite(lp) && isfinite(lm),
                         "%s: response %zu step %zu: score %g logits %g %g", which, r, k, s, lp, lm);
            double want = 1.0 / (1.0 + exp((double)lm - (double)lp));
            FUZZ_REQUIRE(fabs(want - s) <= 1e-5, "%s: response %zu step %zu: score %g, softmax %g",
                         which, r, k, s, want);
        }
        double agg = aggregate(rr->step_scores, rr->n_steps, req->aggregation);
        FUZZ_REQUIRE(fabs(agg - rr->score) <= 1e-6 * (1.0 + fabs(agg)),
                     "%s: response %zu: score %.9g, %s of its steps %.9g", which, r, rr->score,
                     vp_aggregation_name(req->aggregation), agg);
        size_t i = res->ranking[r];
        FUZZ_REQUIRE(i < res->n_responses && !seen[i], "%s: ranking is not a permutation", which);
        seen[i] = true;
        if (r > 0) {
            size_t p = res->ranking[r - 1];
            FUZZ_REQUIRE(res->responses[p].score > res->responses[i].score ||
                             (res->responses[p].score == res->responses[i].score && p < i),
                         "%s: ranking places %zu before %zu", which, p, i);
        }
    }
    free(seen);
    /* each requested response's prompt is its own (what it gets prepared alone: a repeat
     * mapped to the wrong distinct response shows here), for requests of a few responses */
    for (size_t r = 0; req->n_responses <= 8 && r < req->n_responses; r++) {
        vp_score_request one = *req;
        one.responses = &req->responses[r];
        one.n_responses = 1;
        vp_job *alone = NULL;
        vp_error err = {0};
        FUZZ_REQUIRE(vp_engine_prepare(plain_engine, &one, &alone, &err) == 0,
                     "%s: response %zu alone: %s", which, r, err.message);
        const vp_ids *a = vp_job_ids(job, r), *b = vp_job_ids(alone, 0);
        const vp_ids *pa = vp_job_score_positions(job, r), *pb = vp_job_score_positions(alone, 0);
        FUZZ_REQUIRE(a->n == b->n && !memcmp(a->v, b->v, a->n * sizeof *a->v) && pa->n == pb->n &&
                         !memcmp(pa->v, pb->v, pa->n * sizeof *pa->v),
                     "%s: response %zu is not the prompt it has alone", which, r);
        vp_job_free(alone);
    }
    /* repeats: the same prompt ids give the same logits, bit for bit */
    size_t distinct = 0;
    for (size_t r = 0; r < res->n_responses; r++) {
        const vp_ids *a = vp_job_ids(job, r);
        bool repeat = false;
        for (size_t q = 0; q < r && !repeat; q++) {
            const vp_ids *b = vp_job_ids(job, q);
            const vp_ids *pa = vp_job_score_positions(job, r), *pb = vp_job_score_positions(job, q);
            if (a->n != b->n || memcmp(a->v, b->v, a->n * sizeof *a->v) || pa->n != pb->n ||
                memcmp(pa->v, pb->v, pa->n * sizeof *pa->v))
                continue;
            repeat = true;
            FUZZ_REQUIRE(!memcmp(res->responses[r].step_logits, res->responses[q].step_logits,
                                 2 * res->responses[r].n_steps * sizeof(float)),
                         "%s: response %zu repeats %zu but scores differently", which, r, q);
        }
        distinct += !repeat;
    }
    FUZZ_REQUIRE(distinct == vp_job_n_distinct(job), "%s: %zu distinct responses, the job "
                 "computes %zu", which, distinct, vp_job_n_distinct(job));
    const vp_usage *u = &res->usage;
    FUZZ_REQUIRE(u->shared_prefix_tokens <= u->prompt_tokens && u->computed_tokens <= u->prompt_tokens,
                 "%s: usage prompt %zu shared %zu computed %zu", which, u->prompt_tokens,
                 u->shared_prefix_tokens, u->computed_tokens);
}

static void compare_logits(const vp_job *a, const vp_job *b)
{
    const vp_score_result *x = vp_job_result(a), *y = vp_job_result(b);
    for (size_t r = 0; r < x->n_responses; r++)
        for (size_t k = 0; k < 2 * x->responses[r].n_steps; k++) {
            float p = x->responses[r].step_logits[k], q = y->responses[r].step_logits[k];
            FUZZ_REQUIRE(fabsf(p - q) <= 1e-3f * (1.0f + fabsf(q)),
                         "response %zu logit %zu: %g with the prefix shared, %g without", r, k, p, q);
        }
    FUZZ_REQUIRE(x->usage.prompt_tokens == y->usage.prompt_tokens &&
                     x->usage.computed_tokens <= y->usage.computed_tokens,
                 "usage: shared %zu/%zu computed, plain %zu/%zu", x->usage.computed_tokens,
                 x->usage.prompt_tokens, y->usage.computed_tokens, y->usage.prompt_tokens);
}

/* One request body, parsed and prepared on both engines; false when it stopped before a
 * pass (its failure checked) or is too costly to run here. */
typedef struct prepared {
    vp_score_request req;
    vp_job *shared, *plain;
} prepared;

static bool prepare(const char *body, size_t len, prepared *p)
{
    vp_error err = {0}, eb = {0};
    p->shared = p->plain = NULL;
    if (vp_request_parse(body, len, &limits, &p->req, &err)) {
        if (getenv("FUZZ_SCORE_VERBOSE")) /* why a seed stops before the pass */
            fprintf(stderr, "fuzz_score: parse: %s\n", err.message);
        FUZZ_REQUIRE_ERROR(err);
        return false;
    }
    int ra = vp_engine_prepare(shared_engine, &p->req, &p->shared, &err);
    int rb = vp_engine_prepare(plain_engine, &p->req, &p->plain, &eb);
    FUZZ_REQUIRE(ra == rb, "prepare: %s with the prefix shared, %s without",
                 ra ? err.message : "ok", rb ? eb.message : "ok");
    if (ra) {
        if (getenv("FUZZ_SCORE_VERBOSE"))
            fprintf(stderr, "fuzz_score: prepare: %s\n", err.message);
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(is_4xx(err.kind) && err.kind == eb.kind,
                     "prepare failed with kinds %d / %d: %s", (int)err.kind, (int)eb.kind,
                     err.message);
    } else if (vp_job_tokens(p->plain) <= FUZZ_RUN_TOKENS && vp_job_tiles(p->plain) <= 2) {
        return true;
    }
    vp_job_free(p->shared);
    vp_job_free(p->plain);
    vp_request_free(&p->req);
    return false;
}

static void same_bits(const vp_job *a, const vp_job *b, const char *what)
{
    const vp_score_result *x = vp_job_result(a), *y = vp_job_result(b);
    for (size_t r = 0; r < x->n_responses; r++)
        FUZZ_REQUIRE(!memcmp(x->responses[r].step_logits, y->responses[r].step_logits,
                             2 * x->responses[r].n_steps * sizeof(float)),
                     "response %zu: logits differ %s (cached prefix tokens %zu, %zu)", r, what,
                     x->usage.cached_prefix_tokens, y->usage.cached_prefix_tokens);
}

/* The request twice on the engine with a prefix KV cache (the second run, at least,
 * can load the prefix the first stored): both score bit for bit as the same engine
 * without the cache does when the request had its pass alone (README: the cache
 * changes no logit). */
static void check_cached(const prepared *p, const vp_job *alone)
{
    vp_job *job[2] = {NULL, NULL};
    vp_error err = {0};
    for (int k = 0; k < 2; k++) {
        FUZZ_REQUIRE(vp_engine_prepare(cached_engine, &p->req, &job[k], &err) == 0, "prepare: %s",
                     err.message);
        FUZZ_REQUIRE(vp_engine_run(cached_engine, &job[k], 1, &err) == 0, "run: %s", err.message);
        check_result(&p->req, job[k], "cached");
        cache_hits += vp_job_result(job[k])->usage.cached_prefix_tokens > 0;
    }
    same_bits(job[0], job[1], "between two runs with the prefix cache");
    if (alone)
        same_bits(job[1], alone, "with the prefix cache and without");
    compare_logits(job[1], p->plain);
    vp_job_free(job[0]);
    vp_job_free(job[1]);
}

/* The input is one request body, or two separated by a byte 0x1e: those run together in
 * one packed pass of the sharing engine, and each alone on the other engine, so packing
 * different requests together is checked too (engine.h: results never depend on which
 * other jobs shared the pass). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    const char *sep = memchr(body, 0x1e, size);
    size_t len0 = sep ? (size_t)(sep - body) : size;
    prepared p[2];
    size_t n = 0;
    if (prepare(body, len0, &p[n]))
        n++;
    if (sep && prepare(sep + 1, size - len0 - 1, &p[n]))
        n++;
    if (n == 0)
        return 0;
    vp_job *together[2] = {p[0].shared, n > 1 ? p[1].shared : NULL};
    vp_error err = {0};
    FUZZ_REQUIRE(vp_engine_run(shared_engine, together, n, &err) == 0, "run: %s", err.message);
    for (size_t i = 0; i < n; i++) {
        FUZZ_REQUIRE(vp_engine_run(plain_engine, &p[i].plain, 1, &err) == 0, "run: %s",
                     err.message);
        check_result(&p[i].req, p[i].shared, "shared");
        check_result(&p[i].req, p[i].plain, "plain");
        compare_logits(p[i].shared, p[i].plain);
        check_cached(&p[i], n == 1 ? p[i].shared : NULL);
        vp_job_free(p[i].shared);
        vp_job_free(p[i].plain);
        vp_request_free(&p[i].req);
        runs++;
    }
    return 0;
}
