/* Randomized differential test of batching and the prefix KV cache on the CPU backend (a
 * random tiny model from mkmodel): random passes of several jobs on engines with the cache
 * on (large, tiny caches that evict, host-byte limits, min_tokens, pass budgets) must give
 * every job the step logits, bit for bit, of the same request scored alone on an engine
 * with the cache off (the oracle: that engine's shared-prefix path, itself held to PyTorch
 * by the oracle suites). Packing (engine/pack.c, pack_groups.c), the scheduler's split of
 * passes under max_batch_tokens (engine/pass_plan.c) and the cache's entries and
 * extensions (engine/prefix_cache.c) may change what a pass computes, never a score.
 *
 * The requests are adversarial for the prefix matcher: questions sharing a long start that
 * part late, a few images (two of one size with other pixels), none, one or two images,
 * <image> placeholders, repeated responses and whole requests, 1-5 responses of 1-4 steps.
 * Passes of 1-6 jobs are drawn partly from a hot subset so that prefixes come back. Besides
 * the logits it checks each job's usage fields, the cache's counters after each pass, and
 * that the rows a hit loaded are still held, in at most VP_PREFIX_CACHE_MAX_RUNS runs; and
 * that the run exercised what it claims (partial hits, loads from extension chains,
 * evictions, budget splits), so it cannot pass by testing nothing. Fixed seeds. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/job.h"
#include "engine/pass_plan.h"
#include "engine/prefix_cache.h"
#include "server/bench/bench.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"

#define N_SEEDS 3         /* request sets, each with its own references */
#define CFGS_PER_SEED 3   /* engines per request set: N_SEEDS * CFGS_PER_SEED covers cfgs */
#define PASSES 6          /* random passes per engine (before budget splits) */
#define NREQ 12           /* requests per set */
#define MAX_PICK 6        /* jobs in one drawn pass */

/* splitmix64: the same sequence everywhere */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static size_t rn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }
static bool chance(int pct) { return (int)rn(100) < pct; }

/* Images: two random ones of one size (same tile count, other pixels: a prefix matches up
 * to the first differing tile only), a small one (one tile) and a solid colour. */
#define N_IMG 4
static char *img_url[N_IMG];
static const char *img_name[N_IMG] = {"IMG0", "IMG1", "IMG2", "IMG3"};

static int make_images(void)
{
    vp_error err = {0};
    uint8_t *png;
    size_t len;
    const uint32_t wh[3][2] = {{500, 300}, {500, 300}, {160, 120}};
    for (int i = 0; i < 3; i++) {
        if (vp_png_random(wh[i][0], wh[i][1], (uint64_t)i + 1, &png, &len, &err))
            return -1;
        img_url[i] = vp_data_url("image/png", png, len);
        free(png);
    }
    const size_t n = (size_t)448 * 448 * 3;
    uint8_t *rgb = malloc(n);
    if (!rgb)
        return -1;
    for (size_t i = 0; i < n; i++)
        rgb[i] = (uint8_t)(i % 3 == 0 ? 120 : i % 3 == 1 ? 60 : 200);
    int rc = vp_png_encode_rgb(rgb, 448, 448, &png, &len, &err);
    free(rgb);
    if (rc)
        return -1;
    img_url[3] = vp_data_url("image/png", png, len);
    free(png);
    for (int i = 0; i < N_IMG; i++)
        if (!img_url[i])
            return -1;
    return 0;
}

/* Questions: most share a long start and part only near their end (partial hits, then
 * extensions of the entry holding the start); steps share first words for the same reason. */
static const char *Q_BASE =
    "Please read the problem carefully and reason step by step about the figure before answering. ";
static const char *q_tail[] = {
    "What is x?", "What is y?", "What is x plus y?", "What is x plus y times two?",
    "What is x plus y times two minus z?", "What is x plus y times two minus z over three?",
    /* a long rest of the prefix: with several responses, a cached start (the image) is not
     * worth loading for each, and a warm-up pass stores the rest first */
    "Measure each side of the figure, label every angle, find both diagonals, compute the "
    "area of each triangle they cut, and give the total area in square units to two places."};
static const char *q_other[] = {"Compute 2+2.", "Sum 2 and 2, and say why at some length please."};
static const char *step0_pool[] = {
    "Step one. We look at the figure",
    "Step one. We look at the figure and see",
    "Step one. We look at the figure and see a triangle",
    "Step one. We look at the figure and see a triangle with sides three and four",
    "Step one. Compute",
    "Another approach",
    "x = 2"};
static const char *stepn_pool[] = {"x = 2", "so y = 3", "Therefore the answer is 5", "Check: ok",
                                   "The area is 6", "x = 2"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct strbuf {
    char *s;
    size_t n, cap;
    bool failed;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->failed || k < 0)
        return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->n + (size_t)k + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

typedef struct req {
    char *body;   /* the JSON sent */
    char *pretty; /* the same with image names for data URLs: failure messages */
} req;

/* A random request, written twice: with the images' data URLs and with their names. */
static void gen_request(req *r)
{
    int n_img = chance(25) ? 0 : chance(75) ? 1 : 2;
    size_t imgs[2] = {rn(N_IMG), rn(N_IMG)};
    int max_tiles = chance(80) ? 1 : 2;
    char q[512], p[600];
    const char *question = q;
    int kind = (int)rn(100);
    if (n_img && kind < 5)
        q[0] = 0; /* the images alone */
    else if (kind < 15)
        snprintf(q, sizeof q, "%s", q_other[rn(COUNT(q_other))]);
    else
        snprintf(q, sizeof q, "%s%s", Q_BASE, q_tail[rn(COUNT(q_tail))]);
    if (n_img && chance(30)) { /* placeholders: the images inside the question */
        size_t len = strlen(q);
        size_t at1 = rn(len + 1), at2 = at1 + rn(len - at1 + 1);
        if (n_img == 1)
            snprintf(p, sizeof p, "%.*s<image>%s", (int)at1, q, q + at1);
        else
            snprintf(p, sizeof p, "%.*s<image>%.*s<image>%s", (int)at1, q, (int)(at2 - at1),
                     q + at1, q + at2);
        question = p;
    }
    size_t n_resp = 1 + rn(5);
    char resp[5][512];
    for (size_t i = 0; i < n_resp; i++) {
        if (i && chance(25)) { /* a repeated response */
            snprintf(resp[i], sizeof resp[i], "%s", resp[rn(i)]);
            continue;
        }
        size_t steps = 1 + rn(4);
        size_t k = (size_t)snprintf(resp[i], sizeof resp[i], "%s",
                                    step0_pool[rn(COUNT(step0_pool))]);
        for (size_t s = 1; s < steps; s++)
            k += (size_t)snprintf(resp[i] + k, sizeof resp[i] - k, "\\n\\n%s",
                                  stepn_pool[rn(COUNT(stepn_pool))]);
    }
    for (int named = 0; named < 2; named++) {
        const char *a = named ? img_name[imgs[0]] : img_url[imgs[0]];
        const char *b = named ? img_name[imgs[1]] : img_url[imgs[1]];
        strbuf sb = {0};
        sb_add(&sb, "{\"question\": \"%s\", ", question);
        if (n_img == 1)
            sb_add(&sb, "\"image\": \"%s\", ", a);
        else if (n_img == 2)
            sb_add(&sb, "\"images\": [\"%s\", \"%s\"], ", a, b);
        sb_add(&sb, "\"max_tiles\": %d, \"return_logits\": true, \"responses\": [", max_tiles);
        for (size_t i = 0; i < n_resp; i++)
            sb_add(&sb, "%s\"%s\"", i ? ", " : "", resp[i]);
        sb_add(&sb, "]}");
        if (sb.failed) {
            free(sb.s);
            sb.s = NULL;
        }
        if (named)
            r->pretty = sb.s;
        else
            r->body = sb.s;
    }
}

/* test_prepare without its messages: a refused request is one failed CHECK. */
static vp_job *prepare(const vp_engine *e, const char *body, vp_error *err)
{
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    vp_score_request rq;
    vp_job *job = NULL;
    if (body && vp_request_parse(body, strlen(body), &lim, &rq, err) == 0) {
        if (vp_engine_prepare(e, &rq, &job, err))
            job = NULL;
        vp_request_free(&rq);
    }
    return job;
}

/* Engine configurations: cache rows as a multiple of a one-tile image prefix (jittered),
 * so the small ones hold one to three prefixes and evict all the time; 0.7 of one is
 * smaller than any image prefix; host-byte limits evict by the ids and tile digests kept
 * (a few KiB: a one-tile prefix keeps about 2 KB). */
typedef struct cfg {
    const char *name;
    double prefixes;          /* cache rows in one-tile prefixes; 0: off; < 0: 64 MiB */
    size_t max_batch_tokens;  /* 0: no limit */
    size_t min_tokens;        /* 0: the engine's default */
    size_t host_bytes;        /* 0: the engine's default */
} cfg;

static const cfg cfgs[] = {
    {"large", -1, 0, 0, 0},
    {"1.2 prefixes", 1.2, 0, 0, 0},
    {"2.1 prefixes, budget 4096", 2.1, 4096, 0, 0},
    {"3.2 prefixes, budget 3000, min 1", 3.2, 3000, 1, 0},
    {"large, budget 1600", -1, 1600, 0, 0},
    {"2.6 prefixes, host 12 KiB, min 16", 2.6, 0, 16, (size_t)12 << 10},
    {"cache off, budget 2500", 0, 2500, 0, 0},
    {"0.7 prefix, min 8", 0.7, 0, 8, 0},
    {"large, host 4 KiB, min 1", -1, 0, 1, (size_t)4 << 10},
};
#define N_CFG COUNT(cfgs)

/* What the run exercised, over all engines. */
static struct {
    size_t engines, passes, splits, jobs, hits, partial, chain_loads, evictions, warm_ups;
} seen;

/* One engine's run: what its checks need to name a failure. */
typedef struct mix {
    vp_engine *e;
    vp_prefix_cache *pc; /* NULL: cache off */
    const vp_engine_options *o;
    size_t rows;
    const cfg *c;
    int seed;
    size_t pass;
    vp_prefix_cache_stats prev;
    bool warmed; /* the pass had a warm-up (its tokens charged to the groups it served) */
} mix;

/* A job's usage against its reference's: the same prompt; a hit loads its shared prefix and
 * each response computes past it; else the prefix is computed once, by this job or by
 * another of its pass group. */
static void check_usage(const mix *m, const vp_job *j, const vp_job *ref, const req *r)
{
    const vp_usage *u = &vp_job_result(j)->usage;
    size_t S = 0, nd = j->n_responses, sh = u->shared_prefix_tokens;
    for (size_t k = 0; k < nd; k++)
        S += j->ids[k].n;
    CHECK_MSG(u->prompt_tokens == vp_job_result(ref)->usage.prompt_tokens &&
              u->cached_prefix_tokens <= u->prompt_tokens && sh <= j->share_cap,
              "seed %d, '%s', pass %zu: prompt %zu (alone %zu), cached %zu, shared %zu, "
              "cap %zu: %s",
              m->seed, m->c->name, m->pass, u->prompt_tokens,
              vp_job_result(ref)->usage.prompt_tokens, u->cached_prefix_tokens, sh, j->share_cap,
              r->pretty);
    bool ok;
    if (u->cached_prefix_tokens) /* a warm-up computed at most the prefix's rest */
        ok = m->pc && sh == u->cached_prefix_tokens &&
             (u->computed_tokens == S - nd * sh ||
              (m->warmed && u->computed_tokens > S - nd * sh && u->computed_tokens <= S - nd * sh + sh));
    else if (sh == 0)
        ok = u->computed_tokens == S;
    else
        ok = u->computed_tokens == S - nd * sh + sh || u->computed_tokens == S - nd * sh;
    CHECK_MSG(ok, "seed %d, '%s', pass %zu: computed %zu of %zu (%zu responses), shared %zu, "
              "cached %zu: %s", m->seed, m->c->name, m->pass, u->computed_tokens, S, nd, sh,
              u->cached_prefix_tokens, r->pretty);
}

/* The rows a lookup of j's first cap ids gives lie in runs of cache rows that add up to
 * them; returns the rows found and, in *runs_out, how many runs. Between passes a lookup
 * changes nothing the engine uses: each pass's packing looks up again before it loads or
 * extends an entry. */
static size_t check_runs(const mix *m, const vp_job *j, size_t cap, size_t *runs_out)
{
    vp_prefix_images img = vp_job_prefix_images(m->e, j);
    size_t slot = 0, k = vp_prefix_cache_find(m->pc, j->ids[0].v, cap, &img, &slot);
    *runs_out = 0;
    if (!k)
        return 0;
    vp_prefix_run runs[VP_PREFIX_CACHE_MAX_RUNS];
    size_t nr = vp_prefix_cache_runs(m->pc, slot, k, runs), total = 0;
    bool in_range = true;
    for (size_t x = 0; x < nr; x++) {
        total += runs[x].len;
        in_range = in_range && runs[x].len > 0 && runs[x].slot + runs[x].len <= m->rows;
    }
    CHECK_MSG(nr > 0 && total == k && in_range, "seed %d, '%s', pass %zu: %zu rows in %zu runs "
              "adding up to %zu", m->seed, m->c->name, m->pass, k, nr, total);
    *runs_out = nr;
    return k;
}

/* After a successful pass of jobs[0..cnt): each job's logits and usage, the cache's
 * counters, and the rows each hit loaded. */
static void check_pass(mix *m, vp_job **jobs, const int *pick, size_t cnt, vp_job *const *refs,
                       const req *reqs)
{
    size_t sum_cached = 0, max_cached = 0, sum_computed = 0, sum_alone = 0;
    bool any_cached = false;
    if (m->pc) {
        vp_prefix_cache_stats now;
        vp_prefix_cache_stats_get(m->pc, &now);
        m->warmed = now.warm_ups > m->prev.warm_ups;
    }
    for (size_t q = 0; q < cnt; q++) {
        const vp_job *j = jobs[q];
        CHECK_MSG(test_same_logits(j, refs[pick[q]]), "seed %d, '%s', pass %zu, job %zu of %zu "
                  "(R%d): logits differ from it scored alone: %s", m->seed, m->c->name, m->pass, q,
                  cnt, pick[q], reqs[pick[q]].pretty);
        check_usage(m, j, refs[pick[q]], &reqs[pick[q]]);
        const vp_usage *u = &vp_job_result(j)->usage;
        size_t c = u->cached_prefix_tokens;
        seen.jobs++;
        /* the prefix the job offers a pass (engine/pack_groups.c): a hit loads at most
         * that, and less is a partial hit (the rest computed, and stored as an extension) */
        size_t own = j->n_responses >= 2 ? j->prefix_len : j->share_cap;
        CHECK_MSG(c <= own, "seed %d, '%s', pass %zu: %zu rows cached of a %zu-token prefix",
                  m->seed, m->c->name, m->pass, c, own);
        if (c) {
            any_cached = true;
            seen.hits++;
            seen.partial += c < own;
            sum_cached += c;
            max_cached = c > max_cached ? c : max_cached;
        }
        sum_computed += u->computed_tokens;
        sum_alone += vp_job_tokens(j);
    }
    /* sharing and the cache only ever save work */
    CHECK_MSG(sum_computed <= sum_alone, "seed %d, '%s', pass %zu: computed %zu > %zu alone",
              m->seed, m->c->name, m->pass, sum_computed, sum_alone);
    if (!m->pc)
        return;
    vp_prefix_cache_stats st, *p = &m->prev;
    vp_prefix_cache_stats_get(m->pc, &st);
    CHECK_MSG(st.rows == m->rows && st.rows_used <= st.rows &&
              st.host_bytes <= m->o->prefix_cache_host_bytes,
              "seed %d, '%s', pass %zu: rows %zu of %zu (configured %zu), host bytes %zu",
              m->seed, m->c->name, m->pass, st.rows_used, st.rows, m->rows, st.host_bytes);
    CHECK(st.hits >= p->hits && st.misses >= p->misses && st.tokens_reused >= p->tokens_reused &&
          st.stored >= p->stored && st.evictions >= p->evictions);
    /* a pass group's members share one load: the rows reused lie between the largest
     * job's and the sum over jobs */
    uint64_t reused = st.tokens_reused - p->tokens_reused;
    /* a warm-up pass loaded a start of the prefixes the pass then loaded whole */
    uint64_t warm = st.warm_ups - p->warm_ups;
    CHECK_MSG(reused <= (warm ? 2 : 1) * sum_cached &&
              (any_cached ? reused >= max_cached && st.hits > p->hits : st.hits == p->hits),
              "seed %d, '%s', pass %zu: %llu hits, %llu rows reused; jobs' cached rows sum %zu, "
              "max %zu", m->seed, m->c->name, m->pass, (unsigned long long)(st.hits - p->hits),
              (unsigned long long)reused, sum_cached, max_cached);
    *p = st;
    for (size_t q = 0; q < cnt; q++) {
        const vp_job *j = jobs[q];
        size_t runs = 0, c = vp_job_result(j)->usage.cached_prefix_tokens;
        if (j->share_cap)
            check_runs(m, j, j->share_cap, &runs);
        if (!c)
            continue;
        /* the entry a hit loaded was pinned by the pass, so it is still held: a lookup of
         * those rows gives them all, in no more runs than the pass loaded them in */
        CHECK_MSG(check_runs(m, j, c, &runs) == c, "seed %d, '%s', pass %zu: the %zu rows "
                  "loaded are no longer held", m->seed, m->c->name, m->pass, c);
        seen.chain_loads += runs >= 2;
    }
}

/* Random passes on one engine configuration; refs[i] is request i scored alone. */
static void run_engine(const vp_engine_options *base, const cfg *c, size_t row_bytes,
                       size_t typical, int seed, const req *reqs, vp_job *const *refs)
{
    vp_engine_options o = *base;
    vp_error err = {0};
    size_t rows = 0;
    if (c->prefixes) {
        rows = c->prefixes < 0 ? ((size_t)64 << 20) / row_bytes
                               : (size_t)(c->prefixes * (double)typical) + rn(40);
        o.prefix_cache_bytes = rows * row_bytes;
    }
    o.max_batch_tokens = c->max_batch_tokens;
    if (c->min_tokens)
        o.prefix_cache_min_tokens = c->min_tokens;
    if (c->host_bytes)
        o.prefix_cache_host_bytes = c->host_bytes;
    mix m = {.o = &o, .rows = rows, .c = c, .seed = seed};
    CHECK_MSG(vp_engine_open(&o, &m.e, &err) == 0, "'%s': %s", c->name, err.message);
    if (!m.e)
        return;
    seen.engines++;
    m.pc = vp_engine_prefix_cache(m.e);
    CHECK((m.pc != NULL) == (rows != 0));
    vp_prefix_cache_stats_get(m.pc, &m.prev);
    vp_pass_plan *plan = vp_pass_plan_new();
    CHECK(plan != NULL);
    for (size_t pi = 0; plan && pi < PASSES; pi++) {
        /* 1-6 jobs, half the time from a hot subset of 4 requests (their prefixes return) */
        size_t want = 1 + rn(MAX_PICK), hot = chance(50) ? 4 : NREQ, hot_base = rn(NREQ - hot + 1);
        int pick[MAX_PICK];
        vp_job *jobs[MAX_PICK];
        for (size_t t = 0; t < want; t++) {
            pick[t] = (int)(hot_base + rn(hot));
            jobs[t] = prepare(m.e, reqs[pick[t]].body, &err);
            CHECK_MSG(jobs[t], "seed %d, '%s': R%d: %s", seed, c->name, pick[t], err.message);
        }
        /* split as the scheduler prices passes (engine/sched/sched.c): the first job of a
         * pass always goes, even over the budget alone; then the longest run that fits */
        for (size_t at = 0, cnt; at < want; at += cnt) {
            size_t tokens, tiles;
            vp_pass_plan_reset(plan);
            for (cnt = 0; at + cnt < want && jobs[at + cnt] &&
                          vp_pass_plan_add(plan, jobs[at + cnt], cnt ? o.max_batch_tokens : 0,
                                           cnt ? o.max_batch_tiles : 0, &tokens, &tiles);)
                cnt++;
            if (cnt == 0) { /* it failed to prepare (a failed CHECK above) */
                cnt = 1;
                continue;
            }
            seen.splits += at + cnt < want;
            seen.passes++;
            int rc = vp_engine_run(m.e, jobs + at, cnt, &err);
            CHECK_MSG(rc == 0, "seed %d, '%s', pass %zu: %s", seed, c->name, m.pass, err.message);
            if (rc == 0)
                check_pass(&m, jobs + at, pick + at, cnt, refs, reqs);
            m.pass++;
        }
        for (size_t t = 0; t < want; t++)
            vp_job_free(jobs[t]);
    }
    vp_prefix_cache_stats st;
    vp_prefix_cache_stats_get(m.pc, &st);
    seen.evictions += st.evictions;
    seen.warm_ups += st.warm_ups;
    vp_pass_plan_free(plan);
    vp_engine_close(m.e);
}

int main(void)
{
    char dir[] = "/tmp/vprm-test-random-mix-XXXXXX";
    vp_engine_options opt;
    CHECK(test_tiny_model(dir, 5, &opt) == 0);
    CHECK(make_images() == 0);
    /* the oracle: the cache off, no pass budget, one job per pass */
    vp_engine_options ref_opt = opt;
    ref_opt.max_batch_tokens = 0;
    ref_opt.prefix_cache_bytes = 0;
    vp_error err = {0};
    vp_engine *off = NULL;
    CHECK_MSG(vp_engine_open(&ref_opt, &off, &err) == 0, "%s", err.message);
    if (!off || !img_url[N_IMG - 1]) {
        for (int i = 0; i < N_IMG; i++)
            free(img_url[i]);
        vp_engine_close(off);
        test_remove_dir(dir);
        return check_summary("engine_random_mix");
    }

    /* a cache row: every layer's keys and values of one token (fp32 on the CPU) */
    const vp_llm_config *l = &vp_engine_config(off)->llm;
    size_t row_bytes = (size_t)l->layers * 2 * (size_t)l->kv_heads * (size_t)l->head_dim * 4;
    /* a one-tile image prefix's length: the unit of the small caches' sizes */
    const char *one[] = {"Step one. We look"};
    char question[256];
    snprintf(question, sizeof question, "%sWhat is x?", Q_BASE);
    char *probe_body = test_request_json(img_url[2], question, 1, one, 1);
    vp_job *probe = prepare(off, probe_body, &err);
    size_t typical = probe ? probe->share_cap : 0;
    CHECK_MSG(typical > 0, "no prefix in a one-image request");
    vp_job_free(probe);
    free(probe_body);

    for (int seed = 1; typical && seed <= N_SEEDS; seed++) {
        rng_state = (uint64_t)seed * 7919u + 17;
        req reqs[NREQ];
        vp_job *refs[NREQ];
        for (size_t i = 0; i < NREQ; i++) {
            if (i && chance(12)) { /* a whole request again */
                size_t s = rn(i);
                reqs[i].body = reqs[s].body ? strdup(reqs[s].body) : NULL;
                reqs[i].pretty = reqs[s].pretty ? strdup(reqs[s].pretty) : NULL;
            } else {
                gen_request(&reqs[i]);
            }
            /* its reference: scored alone on the cache-off engine */
            refs[i] = prepare(off, reqs[i].body, &err);
            CHECK_MSG(refs[i], "seed %d, R%zu: %s: %s", seed, i, err.message, reqs[i].pretty);
            if (refs[i]) {
                int rc = vp_engine_run(off, &refs[i], 1, &err);
                CHECK_MSG(rc == 0, "seed %d, R%zu alone: %s", seed, i, err.message);
                if (rc) {
                    vp_job_free(refs[i]);
                    refs[i] = NULL;
                }
            }
        }
        bool all = true;
        for (size_t i = 0; i < NREQ; i++)
            all = all && refs[i];
        /* configurations rotate over the seeds: every one runs */
        for (size_t ci = 0; all && ci < CFGS_PER_SEED; ci++)
            run_engine(&opt, &cfgs[((size_t)(seed - 1) * CFGS_PER_SEED + ci) % N_CFG],
                       row_bytes, typical, seed, reqs, refs);
        for (size_t i = 0; i < NREQ; i++) {
            vp_job_free(refs[i]);
            free(reqs[i].body);
            free(reqs[i].pretty);
        }
    }

    /* what the run exercised: without these it would prove little */
    CHECK_MSG(seen.engines == N_SEEDS * CFGS_PER_SEED && seen.engines >= N_CFG, "%zu engines",
              seen.engines);
    CHECK_MSG(seen.partial > 0, "no partial hit");
    CHECK_MSG(seen.chain_loads > 0, "no hit loaded from an extension chain of 2+ runs");
    CHECK_MSG(seen.evictions > 0, "no eviction");
    CHECK_MSG(seen.splits > 0, "no pass split by the budget");
    CHECK_MSG(seen.warm_ups > 0, "no warm-up pass");
    printf("engine_random_mix: %zu engines, %zu passes (%zu split by the budget), %zu jobs "
           "checked, %zu cache hits (%zu partial), %zu loads of 2+ runs, %zu evictions, %zu "
           "warm-up passes\n", seen.engines, seen.passes, seen.splits, seen.jobs, seen.hits,
           seen.partial, seen.chain_loads, seen.evictions, seen.warm_ups);
    for (int i = 0; i < N_IMG; i++)
        free(img_url[i]);
    vp_engine_close(off);
    CHECK(test_remove_dir(dir) == 0);
    return check_summary("engine_random_mix");
}
