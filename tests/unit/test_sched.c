/* engine/sched with a fake engine: packing under the token and tile budgets (a job over
 * the budget runs alone; later jobs that fit join a pass past one that does not, up to
 * the lookahead), arrival order, queue bound (429, never starving a large
 * request), queue deadline (never runs expired work; a started request's jobs exempt),
 * priorities (a bounded head start; deadlines and started requests across them),
 * cancellation of queued and running jobs, isolation of a failing job,
 * drain and stop, timing, and many submitting threads (every ticket done exactly once);
 * the same again with fair sharing on for one client (nothing may change), then fair
 * sharing between clients (a backlog does not hold back another client, weights, the
 * priorities kept, the clients' table). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sched/sched.h"
#include "engine/sched/sched_clients.h"
#include "tests/unit/check.h"

/* The fake job: its cost and what happened to it. */
struct vp_job {
    int id;
    size_t tokens, tiles;
    bool poison;            /* a pass containing it fails */
    bool device;            /* ... with VP_ERR_DEVICE */
    atomic_int ran;         /* times it was part of a successful or failed pass */
    vp_score_result result;
};

#define MAX_PASSES 256
#define MAX_PER_PASS 64

typedef struct fake_engine {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold;                      /* run blocks while true */
    bool in_run;
    int passes[MAX_PASSES][MAX_PER_PASS]; /* job ids of each pass */
    size_t pass_len[MAX_PASSES];
    size_t n_passes;
    int sleep_us;
    double flops;          /* "useful FLOPs": 1000 a token of every successful run */
    double flops_reported; /* what on_batch was told, summed */
    size_t batch_tokens[MAX_PASSES]; /* what on_batch was told a pass costs */
    size_t n_batches;
    /* optional: called at the end of each successful pass, as clients that send their
     * next request while the previous one runs */
    void (*after_run)(void *arg, vp_job *const *jobs, size_t n);
    void *after_arg;
} fake_engine;

static int fake_run(void *ctx, vp_job *const *jobs, size_t n, vp_error *err)
{
    fake_engine *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->in_run = true;
    pthread_cond_broadcast(&f->cv);
    while (f->hold)
        pthread_cond_wait(&f->cv, &f->mu);
    if (f->n_passes < MAX_PASSES) {
        for (size_t i = 0; i < n && i < MAX_PER_PASS; i++)
            f->passes[f->n_passes][i] = jobs[i]->id;
        f->pass_len[f->n_passes] = n;
        f->n_passes++;
    }
    f->in_run = false;
    pthread_mutex_unlock(&f->mu);
    if (f->sleep_us)
        usleep((useconds_t)f->sleep_us);
    bool poisoned = false, device = false;
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&jobs[i]->ran, 1);
        poisoned |= jobs[i]->poison;
        device |= jobs[i]->device;
    }
    if (device)
        return vp_fail(err, VP_ERR_DEVICE, "", "the device failed");
    if (poisoned)
        return vp_fail(err, VP_ERR_INTERNAL, "", "poisoned job in the pass");
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        jobs[i]->result.usage.computed_tokens = jobs[i]->tokens;
        f->flops += 1000.0 * (double)jobs[i]->tokens;
    }
    pthread_mutex_unlock(&f->mu);
    if (f->after_run)
        f->after_run(f->after_arg, jobs, n);
    return 0;
}

static double fake_flops(void *ctx)
{
    fake_engine *f = ctx;
    pthread_mutex_lock(&f->mu);
    double v = f->flops;
    pthread_mutex_unlock(&f->mu);
    return v;
}

static void fake_on_batch(void *ctx, size_t n_jobs, size_t tokens, size_t tiles, double ms,
                          double flops)
{
    (void)n_jobs, (void)tiles, (void)ms;
    fake_engine *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->flops_reported += flops;
    if (f->n_batches < MAX_PASSES)
        f->batch_tokens[f->n_batches++] = tokens;
    pthread_mutex_unlock(&f->mu);
}

/* A fake pass price, as jobs of one RL group would share a prefix: the first job of a pass
 * costs its tokens, each later one a tenth of them. */
typedef struct fake_plan {
    size_t n, tokens, tiles;
} fake_plan;

static void *fake_plan_new(void *ctx)
{
    (void)ctx;
    return calloc(1, sizeof(fake_plan));
}

static void fake_plan_reset(void *plan)
{
    *(fake_plan *)plan = (fake_plan){0};
}

static bool fake_plan_add(void *plan, vp_job *j, size_t max_tokens, size_t max_tiles,
                          size_t *tokens, size_t *tiles)
{
    fake_plan *p = plan;
    size_t tk = p->tokens + (p->n ? j->tokens / 10 : j->tokens), ti = p->tiles + j->tiles;
    *tokens = p->tokens, *tiles = p->tiles;
    if ((max_tokens && tk > max_tokens) || (max_tiles && ti > max_tiles))
        return false;
    p->n++, p->tokens = tk, p->tiles = ti;
    *tokens = tk, *tiles = ti;
    return true;
}

static void fake_plan_free(void *plan)
{
    free(plan);
}

static size_t fake_tokens(const vp_job *j) { return j->tokens; }
static size_t fake_tiles(const vp_job *j) { return j->tiles; }
static vp_score_result *fake_result(vp_job *j) { return &j->result; }
static atomic_int g_freed;
static void fake_free(vp_job *j)
{
    atomic_fetch_add(&g_freed, 1);
    free(j);
}

typedef struct done_rec {
    atomic_int calls;
    double at_ms;
} done_rec;

static void on_done(void *user, vp_sched_ticket *t)
{
    done_rec *recs = user;
    vp_job *j = vp_sched_ticket_job(t);
    recs[j->id].at_ms = vp_sched_now_ms();
    atomic_fetch_add(&recs[j->id].calls, 1);
}

static vp_job *mkjob(int id, size_t tokens, size_t tiles)
{
    vp_job *j = calloc(1, sizeof *j);
    j->id = id;
    j->tokens = tokens;
    j->tiles = tiles;
    return j;
}

typedef struct fixture {
    fake_engine f;
    vp_sched *s;
    done_rec recs[4096];
    vp_sched_ticket *t[4096];
} fixture;

static double g_boost_ms = 60000; /* setup's priority_boost_ms */
static bool g_fair;               /* setup's fair_share */

static fixture *setup_tiles(size_t max_queue, size_t tokens, size_t tiles, double timeout_ms,
                           size_t max_queued_tiles)
{
    fixture *x = calloc(1, sizeof *x);
    pthread_mutex_init(&x->f.mu, NULL);
    pthread_cond_init(&x->f.cv, NULL);
    vp_sched_engine eng = {.ctx = &x->f, .run = fake_run, .job_tokens = fake_tokens,
                           .job_tiles = fake_tiles, .job_result = fake_result,
                           .job_free = fake_free, .useful_flops = fake_flops,
                           .on_batch = fake_on_batch, .obs_ctx = &x->f};
    vp_sched_options opt = {.max_queue = max_queue, .max_batch_tokens = tokens,
                            .max_batch_tiles = tiles, .queue_timeout_ms = timeout_ms,
                            .max_queued_tiles = max_queued_tiles,
                            .priority_boost_ms = g_boost_ms, .fair_share = g_fair};
    vp_error err;
    CHECK_MSG(vp_sched_start(&opt, &eng, &x->s, &err) == 0, "%s", err.message);
    return x;
}

static fixture *setup(size_t max_queue, size_t tokens, size_t tiles, double timeout_ms)
{
    return setup_tiles(max_queue, tokens, tiles, timeout_ms, 0);
}

static void hold(fixture *x, bool on)
{
    pthread_mutex_lock(&x->f.mu);
    x->f.hold = on;
    pthread_cond_broadcast(&x->f.cv);
    pthread_mutex_unlock(&x->f.mu);
}

/* Blocks until the engine thread is inside run (holding job `blocker`). */
static void wait_in_run(fixture *x)
{
    pthread_mutex_lock(&x->f.mu);
    while (!x->f.in_run)
        pthread_cond_wait(&x->f.cv, &x->f.mu);
    pthread_mutex_unlock(&x->f.mu);
}

static int submit1(fixture *x, vp_job *j, vp_error *err)
{
    return vp_sched_submit(x->s, &j, NULL, 1, NULL, vp_sched_now_ms(), on_done, x->recs,
                           &x->t[j->id], err);
}

static int submit_prio(fixture *x, vp_job *j, vp_priority p, vp_error *err)
{
    return vp_sched_submit(x->s, &j, &p, 1, NULL, vp_sched_now_ms(), on_done, x->recs,
                           &x->t[j->id], err);
}

/* One job for client name (NULL: the unnamed one) with weight. */
static int submit_as(fixture *x, vp_job *j, vp_priority p, const char *name, unsigned weight,
                     vp_error *err)
{
    vp_sched_client c = {.name = name, .weight = weight};
    return vp_sched_submit(x->s, &j, &p, 1, &c, vp_sched_now_ms(), on_done, x->recs,
                           &x->t[j->id], err);
}

/* A scheduler (budgets 100) whose engine is busy with job 0, so the next submissions queue;
 * then n jobs of 1 token, job i poisoned (fails its pass) when poison == i, failing the
 * device when device == i; then the engine goes on and the queue drains. */
static fixture *run_queued(int n, int poison, int device)
{
    fixture *x = setup(100, 100, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    for (int i = 1; i <= n; i++) {
        vp_job *j = mkjob(i, 1, 0);
        j->poison = i == poison;
        j->device = i == device;
        CHECK(submit1(x, j, &err) == 0);
    }
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    return x;
}

static void teardown(fixture *x, int n_tickets)
{
    vp_sched_free(x->s);
    for (int i = 0; i < n_tickets; i++)
        vp_sched_ticket_release(x->t[i]);
    pthread_mutex_destroy(&x->f.mu);
    pthread_cond_destroy(&x->f.cv);
    free(x);
}

static bool pass_is(fixture *x, size_t p, const int *ids, size_t n)
{
    if (p >= x->f.n_passes || x->f.pass_len[p] != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (x->f.passes[p][i] != ids[i])
            return false;
    return true;
}

static void test_packing(void)
{
    fixture *x = setup(100, 35, 12, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0); /* the blocker */
    wait_in_run(x);
    size_t tok[] = {10, 10, 10, 10, 100, 10, 10, 5, 5, 5};
    size_t til[] = {0, 0, 0, 0, 0, 0, 0, 5, 5, 5};
    for (int i = 1; i <= 10; i++)
        CHECK(submit1(x, mkjob(i, tok[i - 1], til[i - 1]), &err) == 0);
    CHECK(vp_sched_queue_depth(x->s) == 10);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    CHECK(vp_sched_queue_depth(x->s) == 0);
    /* token budget 35, tiles 12, in arrival order, passing over what does not fit for
     * later jobs that do: 1,2,3 + 8 (4, 5, 6, 7 would be 40 or more; 8 makes 35) |
     * 4,6,7 + 9 (5 is 100; 9 makes 35 tokens, 5 tiles) | 5 alone (the head, over the
     * budget) | 10 */
    int p0[] = {0}, p1[] = {1, 2, 3, 8}, p2[] = {4, 6, 7, 9}, p3[] = {5}, p4[] = {10};
    CHECK_MSG(x->f.n_passes == 5, "%zu passes", x->f.n_passes);
    CHECK(pass_is(x, 0, p0, 1));
    CHECK(pass_is(x, 1, p1, 4));
    CHECK(pass_is(x, 2, p2, 4));
    CHECK(pass_is(x, 3, p3, 1));
    CHECK(pass_is(x, 4, p4, 1));
    size_t jobs_run, passes;
    vp_sched_counts(x->s, &jobs_run, &passes);
    CHECK(jobs_run == 11 && passes == 5);
    for (int i = 0; i <= 10; i++) {
        CHECK(atomic_load(&x->recs[i].calls) == 1);
        const vp_error *e;
        CHECK(vp_sched_ticket_outcome(x->t[i], &e) == 0);
        vp_job *j = vp_sched_ticket_job(x->t[i]);
        CHECK(atomic_load(&j->ran) == 1);
        CHECK(j->result.usage.computed_tokens == j->tokens);
        CHECK(j->result.timing.total >= j->result.timing.queue && j->result.timing.queue >= 0);
    }
    teardown(x, 11);
}

/* A pass passes over at most 16 jobs that do not fit: a small job behind 16 too large to
 * join the head waits for a later pass. */
static void test_lookahead_bound(void)
{
    fixture *x = setup(100, 35, 12, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0); /* the blocker */
    wait_in_run(x);
    CHECK(submit1(x, mkjob(1, 30, 0), &err) == 0);
    for (int i = 2; i <= 17; i++) /* 30 + 10 > 35: each passed over */
        CHECK(submit1(x, mkjob(i, 10, 0), &err) == 0);
    CHECK(submit1(x, mkjob(18, 5, 0), &err) == 0); /* would fit, but 16 were passed over */
    for (int i = 19; i <= 21; i++)
        CHECK(submit1(x, mkjob(i, 10, 0), &err) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int p1[] = {1};
    CHECK_MSG(pass_is(x, 1, p1, 1), "pass 1 has %zu jobs, the first %d", x->f.pass_len[1],
              x->f.passes[1][0]);
    for (int i = 0; i <= 21; i++)
        CHECK(atomic_load(&x->recs[i].calls) == 1);
    teardown(x, 22);
}

/* With the engine's pass price (plan_*), a pass holds what fits as packed: 10-token jobs
 * whose followers cost 1 token pack 26 to a 35-token pass, where the sums allow 3; a job
 * over the budget is passed over, then runs alone at the head; on_batch gets the priced
 * totals. */
static void test_plan_packing(void)
{
    fixture *x = calloc(1, sizeof *x);
    pthread_mutex_init(&x->f.mu, NULL);
    pthread_cond_init(&x->f.cv, NULL);
    vp_sched_engine eng = {.ctx = &x->f, .run = fake_run, .job_tokens = fake_tokens,
                           .job_tiles = fake_tiles, .job_result = fake_result,
                           .job_free = fake_free, .on_batch = fake_on_batch, .obs_ctx = &x->f,
                           .plan_new = fake_plan_new, .plan_reset = fake_plan_reset,
                           .plan_add = fake_plan_add, .plan_free = fake_plan_free};
    vp_sched_options opt = {.max_queue = 100, .max_batch_tokens = 35, .max_batch_tiles = 12};
    vp_error err;
    vp_sched_engine half = eng;
    half.plan_free = NULL;
    CHECK(vp_sched_start(&opt, &half, &x->s, &err) == -1); /* plan_new without the rest */
    CHECK_MSG(vp_sched_start(&opt, &eng, &x->s, &err) == 0, "%s", err.message);
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0); /* the blocker */
    wait_in_run(x);
    for (int i = 1; i <= 30; i++) /* job 28 is over the budget alone */
        CHECK(submit1(x, mkjob(i, i == 28 ? 400 : 10, 0), &err) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    /* 0 | 1..26 (10 + 25 x 1 = 35) | 27, 29, 30 (28's 400 passed over) | 28 alone */
    CHECK_MSG(x->f.n_passes == 4, "%zu passes", x->f.n_passes);
    CHECK(x->f.pass_len[1] == 26 && x->f.passes[1][0] == 1 && x->f.passes[1][25] == 26);
    int p2[] = {27, 29, 30}, p3[] = {28};
    CHECK(pass_is(x, 2, p2, 3) && pass_is(x, 3, p3, 1));
    CHECK_MSG(x->f.n_batches == 4 && x->f.batch_tokens[1] == 35 && x->f.batch_tokens[2] == 12 &&
                  x->f.batch_tokens[3] == 400,
              "on_batch tokens %zu %zu %zu", x->f.batch_tokens[1], x->f.batch_tokens[2],
              x->f.batch_tokens[3]);
    teardown(x, 31);
}

static void test_timing(void)
{
    fixture *x = setup(100, 100, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    CHECK(submit1(x, mkjob(1, 1, 0), &err) == 0);
    usleep(60000);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    vp_job *j = vp_sched_ticket_job(x->t[1]);
    CHECK_MSG(j->result.timing.queue >= 55 && j->result.timing.queue < 2000, "queue %.1f ms",
              j->result.timing.queue);
    CHECK(vp_sched_ticket_queue_ms(x->t[1]) == j->result.timing.queue);
    CHECK(j->result.timing.total >= j->result.timing.queue);
    teardown(x, 2);
}

static void test_queue_full(void)
{
    fixture *x = setup(4, 100, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    for (int i = 1; i <= 3; i++)
        CHECK(submit1(x, mkjob(i, 1, 0), &err) == 0);
    /* below the limit (3 of 4 wait): a request of two is admitted whole, past the limit by
     * its own size (refusing it until the queue had room for both would starve it while
     * single jobs keep coming) */
    vp_job *two[2] = {mkjob(5, 1, 0), mkjob(6, 1, 0)};
    CHECK(vp_sched_submit(x->s, two, NULL, 2, NULL, vp_sched_now_ms(), on_done, x->recs,
                          &x->t[5], &err) == 0);
    CHECK(vp_sched_queue_depth(x->s) == 5);
    /* at the limit: refused, nothing queued */
    vp_job *j7 = mkjob(7, 1, 0);
    memset(&err, 0, sizeof err);
    CHECK(submit1(x, j7, &err) == -1 && err.kind == VP_ERR_BUSY);
    CHECK(strstr(err.message, "max_queue = 4") && vp_err_http_status(err.kind) == 429);
    CHECK(x->t[7] == NULL && vp_sched_queue_depth(x->s) == 5);
    free(j7);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    /* an empty queue accepts a request larger than max_queue (it could never fit) */
    vp_job *many[6];
    for (int i = 0; i < 6; i++)
        many[i] = mkjob(10 + i, 1, 0);
    CHECK(vp_sched_submit(x->s, many, NULL, 6, NULL, vp_sched_now_ms(), on_done, x->recs,
                          &x->t[10], &err) == 0);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    for (int i = 0; i < 16; i++)
        CHECK(atomic_load(&x->recs[i].calls) == (i == 4 || (i >= 7 && i < 10) ? 0 : 1));
    teardown(x, 16);
}

/* Waiting work is also bounded by the image tiles it holds in memory. */
static void test_queued_tiles(void)
{
    fixture *x = setup_tiles(100, 1000, 1000, 0, 20);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 13), &err) == 0); /* runs (held): not queued */
    wait_in_run(x);
    /* only text waits: no tiles are held, so a request over the tile limit is admitted */
    CHECK(submit1(x, mkjob(1, 1, 0), &err) == 0);
    CHECK(submit1(x, mkjob(2, 1, 30), &err) == 0);
    vp_job *j3 = mkjob(3, 1, 7);                    /* 30 tiles wait, the limit 20 */
    memset(&err, 0, sizeof err);
    CHECK(submit1(x, j3, &err) == -1 && err.kind == VP_ERR_BUSY &&
          strstr(err.message, "max_queued_tiles = 20"));
    free(j3);
    CHECK(submit1(x, mkjob(4, 1, 0), &err) == 0);  /* text-only holds no tiles: admitted */
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    /* drained, the tiles are given back: below the limit, 13 + 13 are admitted */
    hold(x, true);
    CHECK(submit1(x, mkjob(5, 1, 1), &err) == 0);
    wait_in_run(x);
    CHECK(submit1(x, mkjob(6, 1, 13), &err) == 0);
    CHECK(submit1(x, mkjob(7, 1, 13), &err) == 0);
    vp_job *j8 = mkjob(8, 1, 1);                    /* 26 wait */
    CHECK(submit1(x, j8, &err) == -1 && err.kind == VP_ERR_BUSY);
    free(j8);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    for (int i = 0; i <= 8; i++)
        CHECK(atomic_load(&x->recs[i].calls) == (i == 3 || i == 8 ? 0 : 1));
    teardown(x, 9);
}

/* Admission before decoding (vp_sched_admit_tiles): a request whose tiles alone pass the
 * bound is refused for good (413), one arriving while the bound is reached waits (429, as
 * submit would say), high priority counted apart; nothing is reserved. */
static void test_admit_tiles(void)
{
    fixture *x = setup_tiles(100, 1000, 1000, 0, 20);
    vp_error err;
    size_t t21[1] = {21}, t20[1] = {20}, split[2] = {11, 10}, none[2] = {0, 0};
    vp_priority normal[2] = {VP_PRIORITY_NORMAL, VP_PRIORITY_NORMAL},
                mixed[2] = {VP_PRIORITY_HIGH, VP_PRIORITY_NORMAL};
    memset(&err, 0, sizeof err);
    CHECK(vp_sched_admit_tiles(x->s, normal, t21, 1, &err) == -1 && err.kind == VP_ERR_TOO_LARGE &&
          strstr(err.message, "21 image tiles") && strstr(err.message, "max_queued_tiles = 20"));
    CHECK(vp_sched_admit_tiles(x->s, normal, split, 2, &err) == -1 && err.kind == VP_ERR_TOO_LARGE);
    /* 11 high, 10 normal: each pool's part fits, the request does not */
    CHECK(vp_sched_admit_tiles(x->s, mixed, split, 2, &err) == -1 && err.kind == VP_ERR_TOO_LARGE);
    CHECK(vp_sched_admit_tiles(x->s, normal, t20, 1, &err) == 0);
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 1), &err) == 0); /* runs (held) */
    wait_in_run(x);
    CHECK(submit1(x, mkjob(1, 1, 20), &err) == 0); /* 20 wait: the bound */
    memset(&err, 0, sizeof err);
    CHECK(vp_sched_admit_tiles(x->s, normal, t20, 1, &err) == -1 && err.kind == VP_ERR_BUSY &&
          strstr(err.message, "the queue is full"));
    CHECK(vp_sched_admit_tiles(x->s, normal, none, 2, &err) == 0);  /* text only */
    CHECK(vp_sched_admit_tiles(x->s, mixed, t20, 1, &err) == 0);    /* high: its own bound */
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    CHECK(vp_sched_admit_tiles(x->s, normal, t20, 1, &err) == 0);
    teardown(x, 2);
}

/* queue_timeout_ms bounds the wait to start: once a request's first job runs, its other
 * jobs wait for their passes however long the request's own passes take. */
static void test_started_request(void)
{
    fixture *x = setup(100, 100, 100, 200);
    x->f.sleep_us = 100000; /* each pass 100 ms: four passes take 400 */
    vp_error err;
    vp_job *four[4];
    for (int i = 0; i < 4; i++)
        four[i] = mkjob(i, 60, 0); /* 60 + 60 > 100: one a pass */
    CHECK(vp_sched_submit(x->s, four, NULL, 4, NULL, vp_sched_now_ms(), on_done, x->recs,
                          &x->t[0], &err) == 0);
    CHECK(submit1(x, mkjob(4, 60, 0), &err) == 0); /* behind them, not started: expires */
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    for (int i = 0; i < 4; i++) {
        const vp_error *e;
        CHECK_MSG(vp_sched_ticket_outcome(x->t[i], &e) == 0 && !vp_sched_ticket_expired(x->t[i]),
                  "job %d of the started request: %s", i, e->message);
    }
    CHECK(vp_sched_ticket_expired(x->t[4]) &&
          atomic_load(&vp_sched_ticket_job(x->t[4])->ran) == 0);
    CHECK(x->f.n_passes == 4);
    teardown(x, 5);
}

/* A request's jobs cancelled in one call: none of them runs, each answered once. */
static void test_cancel_many(void)
{
    fixture *x = setup(100, 100, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    vp_job *three[3] = {mkjob(1, 1, 0), mkjob(2, 1, 0), mkjob(3, 1, 0)};
    CHECK(vp_sched_submit(x->s, three, NULL, 3, NULL, vp_sched_now_ms(), on_done, x->recs,
                          &x->t[1], &err) == 0);
    CHECK(vp_sched_cancel_many(x->s, &x->t[1], 3) == 3);
    CHECK(vp_sched_cancel_many(x->s, &x->t[1], 3) == 0); /* already cancelled */
    CHECK(vp_sched_queue_depth(x->s) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    for (int i = 1; i <= 3; i++)
        CHECK(atomic_load(&x->recs[i].calls) == 1 && vp_sched_ticket_cancelled(x->t[i]) &&
              atomic_load(&vp_sched_ticket_job(x->t[i])->ran) == 0);
    teardown(x, 4);
}

static void test_deadline(void)
{
    fixture *x = setup(100, 100, 100, 50);
    vp_error err;
    hold(x, true);
    double t0 = vp_sched_now_ms();
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    CHECK(submit1(x, mkjob(1, 1, 0), &err) == 0);
    CHECK(submit1(x, mkjob(2, 1, 0), &err) == 0);
    /* the engine is busy: the janitor answers both when their 50 ms are up */
    for (int k = 0; k < 200 && atomic_load(&x->recs[2].calls) == 0; k++)
        usleep(5000);
    CHECK(atomic_load(&x->recs[1].calls) == 1 && atomic_load(&x->recs[2].calls) == 1);
    CHECK_MSG(x->recs[1].at_ms - t0 >= 45 && x->recs[1].at_ms - t0 < 400, "expired after %.1f ms",
              x->recs[1].at_ms - t0);
    const vp_error *e;
    CHECK(vp_sched_ticket_outcome(x->t[1], &e) == -1);
    CHECK(e->kind == VP_ERR_UNAVAILABLE && strstr(e->message, "queue_timeout_ms = 50"));
    CHECK(vp_sched_ticket_expired(x->t[1]) && !vp_sched_ticket_expired(x->t[0]));
    CHECK(vp_sched_queue_depth(x->s) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    /* expired work never runs */
    CHECK(atomic_load(&vp_sched_ticket_job(x->t[1])->ran) == 0);
    CHECK(atomic_load(&vp_sched_ticket_job(x->t[2])->ran) == 0);
    CHECK(vp_sched_ticket_outcome(x->t[0], &e) == 0); /* the running one was not expired */
    teardown(x, 3);
}

static void test_cancel(void)
{
    fixture *x = setup(100, 100, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    CHECK(submit1(x, mkjob(1, 1, 0), &err) == 0);
    CHECK(submit1(x, mkjob(2, 1, 0), &err) == 0);
    vp_sched_cancel(x->s, x->t[1]); /* queued: answered now, never runs */
    CHECK(atomic_load(&x->recs[1].calls) == 1);
    CHECK(vp_sched_ticket_cancelled(x->t[1]));
    CHECK(vp_sched_queue_depth(x->s) == 1);
    vp_sched_cancel(x->s, x->t[0]); /* running: answered when the pass ends */
    CHECK(atomic_load(&x->recs[0].calls) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    CHECK(atomic_load(&x->recs[0].calls) == 1);
    const vp_error *e;
    CHECK(vp_sched_ticket_outcome(x->t[0], &e) == -1 && vp_sched_ticket_cancelled(x->t[0]));
    CHECK(strstr(e->message, "cancelled"));
    CHECK(vp_sched_ticket_outcome(x->t[2], &e) == 0 && !vp_sched_ticket_cancelled(x->t[2]));
    CHECK(atomic_load(&vp_sched_ticket_job(x->t[1])->ran) == 0);
    /* cancelling a finished ticket changes nothing */
    vp_sched_cancel(x->s, x->t[2]);
    CHECK(vp_sched_ticket_outcome(x->t[2], &e) == 0 && atomic_load(&x->recs[2].calls) == 1);
    teardown(x, 3);
}

static void test_poison(void)
{
    fixture *x = run_queued(3, 2, 0);
    const vp_error *e;
    CHECK(vp_sched_ticket_outcome(x->t[1], &e) == 0);
    CHECK(vp_sched_ticket_outcome(x->t[3], &e) == 0);
    CHECK(vp_sched_ticket_outcome(x->t[2], &e) == -1 && e->kind == VP_ERR_INTERNAL &&
          strstr(e->message, "poisoned"));
    /* the failed pass [1 2 3] was retried in halves: [1] ok, [2 3] fails again, [2], [3] */
    int p1[] = {1, 2, 3}, p2[] = {1}, p3[] = {2, 3}, p4[] = {2}, p5[] = {3};
    CHECK_MSG(x->f.n_passes == 6 && pass_is(x, 1, p1, 3) && pass_is(x, 2, p2, 1) &&
                  pass_is(x, 3, p3, 2) && pass_is(x, 4, p4, 1) && pass_is(x, 5, p5, 1),
              "%zu passes", x->f.n_passes);
    /* on_batch got the useful FLOPs of the successful runs: jobs 0, 1 and 3 (the failed
     * pass counted nothing, its retries did) */
    CHECK_MSG(x->f.flops == 3000.0 && x->f.flops_reported == 3000.0,
              "engine counted %g FLOPs, on_batch was told %g", x->f.flops, x->f.flops_reported);
    teardown(x, 4);
}

/* One bad job among 16: halving isolates it in 9 passes where job by job took 17; a device
 * failure ends a pass's jobs at once, with no retries. */
static void test_poison_halving(void)
{
    fixture *x = run_queued(16, 11, 0);
    /* [1..16] fails; [1..8] ok; [9..16] fails; [9..12] fails; [13..16] ok; [9 10] ok;
     * [11 12] fails; [11] fails; [12] ok */
    CHECK_MSG(x->f.n_passes == 10, "%zu passes (the blocker's and 9)", x->f.n_passes);
    for (int i = 1; i <= 16; i++) {
        const vp_error *e;
        CHECK(vp_sched_ticket_outcome(x->t[i], &e) == (i == 11 ? -1 : 0));
    }
    teardown(x, 17);

    x = run_queued(6, 0, 4);
    CHECK_MSG(x->f.n_passes == 2, "%zu passes: the device failure was retried", x->f.n_passes);
    for (int i = 1; i <= 6; i++) {
        const vp_error *e;
        CHECK(vp_sched_ticket_outcome(x->t[i], &e) == -1 && e->kind == VP_ERR_DEVICE);
    }
    teardown(x, 7);
}

static void *release_later(void *arg)
{
    usleep(50000);
    hold(arg, false);
    return NULL;
}

static void test_drain_and_stop(void)
{
    fixture *x = setup(100, 1, 100, 0); /* budget 1 token: one job per pass */
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    CHECK(submit1(x, mkjob(1, 1, 0), &err) == 0);
    CHECK(submit1(x, mkjob(2, 1, 0), &err) == 0);
    vp_sched_drain(x->s);
    vp_job *late = mkjob(3, 1, 0);
    memset(&err, 0, sizeof err);
    CHECK(submit1(x, late, &err) == -1 && err.kind == VP_ERR_UNAVAILABLE &&
          strstr(err.message, "shutting down"));
    free(late);
    CHECK(vp_sched_wait_idle(x->s, 30) == -1); /* still held */
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    const vp_error *e;
    for (int i = 0; i < 3; i++)
        CHECK(vp_sched_ticket_outcome(x->t[i], &e) == 0); /* queued work finished */
    teardown(x, 3);

    /* stop with work still queued: the running pass ends, the rest is answered 503 */
    x = setup(100, 1, 100, 0);
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
    wait_in_run(x);
    for (int i = 1; i <= 3; i++)
        CHECK(submit1(x, mkjob(i, 1, 0), &err) == 0);
    pthread_t th;
    pthread_create(&th, NULL, release_later, x);
    vp_sched_stop(x->s);
    pthread_join(th, NULL);
    /* stopped: submissions are refused, the object stays valid until freed */
    vp_job *after = mkjob(9, 1, 0);
    memset(&err, 0, sizeof err);
    CHECK(submit1(x, after, &err) == -1 && err.kind == VP_ERR_UNAVAILABLE);
    free(after);
    CHECK(vp_sched_queue_depth(x->s) == 0);
    vp_sched_free(x->s);
    CHECK(vp_sched_ticket_outcome(x->t[0], &e) == 0);
    for (int i = 1; i <= 3; i++) {
        CHECK(atomic_load(&x->recs[i].calls) == 1);
        CHECK(vp_sched_ticket_outcome(x->t[i], &e) == -1 && e->kind == VP_ERR_UNAVAILABLE &&
              strstr(e->message, "shut down"));
        CHECK(atomic_load(&vp_sched_ticket_job(x->t[i])->ran) == 0);
    }
    for (int i = 0; i < 4; i++)
        vp_sched_ticket_release(x->t[i]);
    pthread_mutex_destroy(&x->f.mu);
    pthread_cond_destroy(&x->f.cv);
    free(x);
}

typedef struct submitter {
    fixture *x;
    int first, count;
    atomic_int *busy;
} submitter;

static void *submit_many(void *arg)
{
    submitter *sb = arg;
    unsigned seed = (unsigned)sb->first;
    for (int i = sb->first; i < sb->first + sb->count; i++) {
        vp_job *j = mkjob(i, 1 + (size_t)(rand_r(&seed) % 40), (size_t)(rand_r(&seed) % 3));
        vp_priority prio = (vp_priority)(rand_r(&seed) % 3); /* the queue's two orders mixed */
        vp_error err;
        int rc = -1;
        /* a refused client retries a few times, as after a 429's Retry-After */
        for (int attempt = 0; attempt < 50 && rc; attempt++) {
            /* with fair sharing, five clients (one unnamed) of weights 1 to 3 */
            static const char *const names[] = {NULL, "c1", "c2", "c3", "c4"};
            rc = g_fair ? submit_as(sb->x, j, prio, names[(unsigned)i % 5], 1 + (unsigned)i % 3,
                                    &err)
                        : submit_prio(sb->x, j, prio, &err);
            if (rc)
                usleep(500);
        }
        if (rc) {
            atomic_fetch_add(sb->busy, 1);
            sb->x->recs[i].calls = -1; /* refused: never completes */
            free(j);
        }
        if (rand_r(&seed) % 7 == 0 && sb->x->t[i])
            vp_sched_cancel(sb->x->s, sb->x->t[i]);
    }
    return NULL;
}

/* The order of the passes, as job ids (one job a pass). */
static bool order_is(fixture *x, const int *ids, size_t n)
{
    for (size_t p = 0; p < n; p++)
        if (!pass_is(x, p, &ids[p], 1))
            return false;
    return x->f.n_passes == n;
}

/* Priorities: high before normal before low, arrival order within each; a passed-over
 * high job still goes before the normal ones when it fits; boost 0 is arrival order. */
static void test_priority(void)
{
    fixture *x = setup(100, 10, 100, 0); /* one 10-token job a pass */
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0); /* the blocker */
    wait_in_run(x);
    vp_priority pr[] = {VP_PRIORITY_NORMAL, VP_PRIORITY_LOW, VP_PRIORITY_NORMAL,
                        VP_PRIORITY_HIGH,   VP_PRIORITY_LOW, VP_PRIORITY_HIGH};
    for (int i = 1; i <= 6; i++)
        CHECK(submit_prio(x, mkjob(i, 10, 0), pr[i - 1], &err) == 0);
    CHECK(vp_sched_queue_depth(x->s) == 6);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int want[] = {0, 4, 6, 1, 3, 2, 5};
    CHECK_MSG(order_is(x, want, 7), "order %d %d %d %d %d %d %d", x->f.passes[0][0],
              x->f.passes[1][0], x->f.passes[2][0], x->f.passes[3][0], x->f.passes[4][0],
              x->f.passes[5][0], x->f.passes[6][0]);
    teardown(x, 7);

    g_boost_ms = 0; /* priorities named, but no head start: arrival order */
    x = setup(100, 10, 100, 0);
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0);
    wait_in_run(x);
    for (int i = 1; i <= 6; i++)
        CHECK(submit_prio(x, mkjob(i, 10, 0), pr[i - 1], &err) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int fifo[] = {0, 1, 2, 3, 4, 5, 6};
    CHECK(order_is(x, fifo, 7));
    teardown(x, 7);
    g_boost_ms = 60000;
}

/* A pass started for a high-priority job takes only high-priority ones (short, for the
 * latency-bound client); the next pass packs the rest. */
static void test_priority_pass(void)
{
    fixture *x = setup(100, 100, 100, 0); /* room for every job in one pass */
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0);
    wait_in_run(x);
    vp_priority pr[] = {VP_PRIORITY_NORMAL, VP_PRIORITY_NORMAL, VP_PRIORITY_HIGH,
                        VP_PRIORITY_LOW,    VP_PRIORITY_HIGH,   VP_PRIORITY_NORMAL};
    for (int i = 1; i <= 6; i++)
        CHECK(submit_prio(x, mkjob(i, 10, 0), pr[i - 1], &err) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int p0[] = {0}, p1[] = {3, 5}, p2[] = {1, 2, 6, 4};
    CHECK_MSG(x->f.n_passes == 3 && pass_is(x, 0, p0, 1) && pass_is(x, 1, p1, 2) &&
                  pass_is(x, 2, p2, 4),
              "%zu passes, the second of %zu jobs", x->f.n_passes, x->f.pass_len[1]);
    teardown(x, 7);
}

/* Admission: high-priority jobs have queue bounds of their own, so a queue full of bulk
 * work (jobs or tiles) does not refuse them; with boost 0 priorities change nothing, and
 * a high request is refused like any other. */
static void test_priority_admission(void)
{
    for (int boost0 = 0; boost0 < 2; boost0++) {
        g_boost_ms = boost0 ? 0 : 60000;
        fixture *x = setup_tiles(2, 100, 100, 0, 4);
        vp_error err;
        const vp_error *e;
        hold(x, true);
        CHECK(submit1(x, mkjob(0, 1, 0), &err) == 0);
        wait_in_run(x);
        CHECK(submit1(x, mkjob(1, 1, 4), &err) == 0); /* the tile bound reached */
        CHECK(submit1(x, mkjob(2, 1, 0), &err) == 0); /* the job bound reached */
        vp_job *j3 = mkjob(3, 1, 0), *j4 = mkjob(4, 1, 2); /* a refused job stays ours */
        CHECK(submit1(x, j3, &err) == -1 && err.kind == VP_ERR_BUSY);
        free(j3);
        int rc4 = submit_prio(x, j4, VP_PRIORITY_HIGH, &err);
        if (boost0) {
            CHECK_MSG(rc4 == -1 && err.kind == VP_ERR_BUSY && !strstr(err.message, "high-priority"),
                      "boost 0: a high job refused as any other: %s", err.message);
            free(j4);
        } else {
            CHECK_MSG(rc4 == 0, "a high job past a full queue of normal ones: %s", err.message);
            /* then 2 high jobs, 4 tiles: the high bounds reached */
            CHECK(submit_prio(x, mkjob(5, 1, 2), VP_PRIORITY_HIGH, &err) == 0);
            vp_job *j6 = mkjob(6, 1, 0);
            CHECK(submit_prio(x, j6, VP_PRIORITY_HIGH, &err) == -1 && err.kind == VP_ERR_BUSY &&
                  strstr(err.message, "2 high-priority jobs waiting"));
            free(j6);
            CHECK(vp_sched_queue_depth(x->s) == 4);
        }
        hold(x, false);
        CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
        for (int i = 0; i <= 2; i++)
            CHECK(vp_sched_ticket_outcome(x->t[i], &e) == 0);
        if (!boost0)
            for (int i = 4; i <= 5; i++)
                CHECK(vp_sched_ticket_outcome(x->t[i], &e) == 0);
        teardown(x, boost0 ? 3 : 6);
    }
    g_boost_ms = 60000;
}

/* The head start is bounded: a low job that has waited longer than twice the boost goes
 * before a high one, and longer than the boost before a normal one. */
static void test_priority_bound(void)
{
    g_boost_ms = 40;
    fixture *x = setup(100, 10, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0);
    wait_in_run(x);
    CHECK(submit_prio(x, mkjob(1, 10, 0), VP_PRIORITY_LOW, &err) == 0);
    usleep(120000); /* 120 ms > 2 x 40 */
    CHECK(submit_prio(x, mkjob(2, 10, 0), VP_PRIORITY_HIGH, &err) == 0);
    CHECK(submit_prio(x, mkjob(3, 10, 0), VP_PRIORITY_NORMAL, &err) == 0);
    CHECK(submit_prio(x, mkjob(4, 10, 0), VP_PRIORITY_LOW, &err) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int want[] = {0, 1, 2, 3, 4};
    CHECK_MSG(order_is(x, want, 5), "order %d %d %d %d %d", x->f.passes[0][0],
              x->f.passes[1][0], x->f.passes[2][0], x->f.passes[3][0], x->f.passes[4][0]);
    teardown(x, 5);
    g_boost_ms = 60000;
}

/* Under a steady backlog of normal work (a new job per pass), a low job waits the
 * backlog plus its head start, then runs: with the boost under queue_timeout_ms it never
 * expires (with the boost at the timeout it would, as the README warns); normal jobs that
 * arrived after it ran before it. */
static void test_priority_backlog(void)
{
    g_boost_ms = 60;
    fixture *x = setup(100, 10, 100, 400); /* one job a pass, 30 ms each */
    x->f.sleep_us = 30000;
    vp_error err;
    int id = 0, low = -1, first_after_low = -1;
    for (int k = 0; k < 20; k++) {
        for (int b = 0; b < (k ? 1 : 3); b++) {
            if (low >= 0 && first_after_low < 0)
                first_after_low = id;
            CHECK(submit1(x, mkjob(id, 10, 0), &err) == 0);
            id++;
        }
        if (k == 3) {
            low = id++;
            CHECK(submit_prio(x, mkjob(low, 10, 0), VP_PRIORITY_LOW, &err) == 0);
        }
        usleep(30000);
    }
    CHECK(vp_sched_wait_idle(x->s, 10000) == 0);
    const vp_error *e;
    CHECK_MSG(vp_sched_ticket_outcome(x->t[low], &e) == 0, "the low job: %s", e->message);
    size_t at_low = 0, at_after = 0;
    for (size_t p = 0; p < x->f.n_passes; p++) {
        at_low = x->f.passes[p][0] == low ? p : at_low;
        at_after = x->f.passes[p][0] == first_after_low ? p : at_after;
    }
    CHECK_MSG(at_after < at_low, "the low job ran in pass %zu, the first normal one after it "
              "in pass %zu", at_low, at_after);
    teardown(x, id);
    g_boost_ms = 60000;
}

/* Deadlines and priorities: the deadline counts from arrival whatever the priority (a
 * low job behind a held engine expires on time, never runs); a request whose items have
 * different priorities: once its high item runs, its normal item no longer expires, while
 * an unrelated normal job queued before it does. */
static void test_priority_deadline(void)
{
    fixture *x = setup(100, 10, 100, 150);
    vp_error err;
    hold(x, true);
    double t0 = vp_sched_now_ms();
    CHECK(submit1(x, mkjob(0, 10, 0), &err) == 0);
    wait_in_run(x);
    CHECK(submit_prio(x, mkjob(1, 10, 0), VP_PRIORITY_LOW, &err) == 0);
    for (int k = 0; k < 200 && atomic_load(&x->recs[1].calls) == 0; k++)
        usleep(5000);
    CHECK(atomic_load(&x->recs[1].calls) == 1 && vp_sched_ticket_expired(x->t[1]));
    CHECK_MSG(x->recs[1].at_ms - t0 >= 140, "expired after %.1f ms", x->recs[1].at_ms - t0);
    /* job 2: normal, alone; jobs 3 (normal) and 4 (high): one request */
    CHECK(submit1(x, mkjob(2, 10, 0), &err) == 0);
    vp_job *two[2] = {mkjob(3, 10, 0), mkjob(4, 10, 0)};
    vp_priority pr[2] = {VP_PRIORITY_NORMAL, VP_PRIORITY_HIGH};
    CHECK(vp_sched_submit(x->s, two, pr, 2, NULL, vp_sched_now_ms(), on_done, x->recs, &x->t[3],
                          &err) == 0);
    x->f.sleep_us = 120000; /* each pass 120 ms: job 4's, then the rest waits past 150 */
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    const vp_error *e;
    CHECK(vp_sched_ticket_outcome(x->t[4], &e) == 0);
    CHECK_MSG(vp_sched_ticket_outcome(x->t[3], &e) == 0, "the started request's normal item: %s",
              e->message);
    CHECK(atomic_load(&vp_sched_ticket_job(x->t[1])->ran) == 0);
    /* pass 1 was job 4 (high); job 2 (arrived first, normal, not started) expired during
     * it: passes of 120 ms, job 2's deadline 150 ms after it arrived, never at the head */
    int p1[] = {4};
    CHECK(pass_is(x, 1, p1, 1));
    CHECK(vp_sched_ticket_expired(x->t[2]) && atomic_load(&vp_sched_ticket_job(x->t[2])->ran) == 0);
    for (int i = 0; i <= 4; i++)
        CHECK(atomic_load(&x->recs[i].calls) == 1);
    teardown(x, 5);
}

static void test_threads(void)
{
    fixture *x = setup(64, 64, 4, 0);
    x->f.sleep_us = 200;
    atomic_int busy;
    atomic_init(&busy, 0);
    enum { T = 8, PER = 400 };
    pthread_t th[T];
    submitter sb[T];
    for (int i = 0; i < T; i++) {
        sb[i] = (submitter){x, i * PER, PER, &busy};
        pthread_create(&th[i], NULL, submit_many, &sb[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    CHECK(vp_sched_wait_idle(x->s, 20000) == 0);
    int done_ok = 0, cancelled = 0, bad = 0;
    for (int i = 0; i < T * PER; i++) {
        int calls = atomic_load(&x->recs[i].calls);
        if (calls == -1)
            continue;
        if (calls != 1) {
            bad++;
            continue;
        }
        vp_job *j = vp_sched_ticket_job(x->t[i]);
        const vp_error *e;
        if (vp_sched_ticket_outcome(x->t[i], &e) == 0) {
            done_ok++;
            if (atomic_load(&j->ran) != 1)
                bad++;
        } else if (vp_sched_ticket_cancelled(x->t[i])) {
            cancelled++;
            if (atomic_load(&j->ran) > 1)
                bad++;
        } else {
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d tickets done != once or run twice", bad);
    CHECK(done_ok + cancelled + atomic_load(&busy) == T * PER);
    CHECK(done_ok > 0);
    /* no pass broke the budgets (64 tokens, 4 tiles) unless it held a single job */
    int over = 0;
    size_t multi = 0;
    for (size_t p = 0; p < x->f.n_passes && p < MAX_PASSES; p++) {
        size_t tk = 0, ti = 0;
        for (size_t i = 0; i < x->f.pass_len[p] && i < MAX_PER_PASS; i++) {
            vp_job *j = vp_sched_ticket_job(x->t[x->f.passes[p][i]]);
            tk += j->tokens;
            ti += j->tiles;
        }
        if (x->f.pass_len[p] > 1) {
            multi++;
            if (tk > 64 || ti > 4)
                over++;
        }
    }
    CHECK_MSG(over == 0, "%d passes over budget", over);
    CHECK(multi > 0); /* the load made real batches */
    printf("threads: %d ok, %d cancelled, %d refused (queue full)\n", done_ok, cancelled,
           atomic_load(&busy));
    atomic_store(&g_freed, 0);
    teardown(x, T * PER);
    CHECK(atomic_load(&g_freed) == done_ok + cancelled); /* every queued job freed once */
}

/* The pass (index) job id ran in; -1 if none. */
static int pass_of(fixture *x, int id)
{
    for (size_t p = 0; p < x->f.n_passes; p++)
        for (size_t i = 0; i < x->f.pass_len[p]; i++)
            if (x->f.passes[p][i] == id)
                return (int)p;
    return -1;
}

/* Client A queues 10 jobs, then client B 2, two jobs a pass: with fair sharing B's jobs
 * run in the next two passes, each first in its pass (start tags 0 and 10 against A's
 * 10..100: A's record stays while its job 0 runs, so its next job is tagged after it,
 * and the virtual time is job 0's start); in arrival order
 * (fair_share off, or both unnamed) only after A's ten. A queued job cancelled on the way
 * leaves the fair list whole. */
static void test_fair_backlog(void)
{
    for (int mode = 0; mode < 3; mode++) { /* fair, fair off, fair but both unnamed */
        g_fair = mode != 1;
        const char *a = mode == 2 ? NULL : "alice", *b = mode == 2 ? NULL : "bob";
        fixture *x = setup(100, 20, 100, 0);
        vp_error err;
        hold(x, true);
        CHECK(submit_as(x, mkjob(0, 10, 0), VP_PRIORITY_NORMAL, a, 1, &err) == 0);
        wait_in_run(x);
        for (int i = 1; i <= 10; i++)
            CHECK(submit_as(x, mkjob(i, 10, 0), VP_PRIORITY_NORMAL, a, 1, &err) == 0);
        CHECK(submit_as(x, mkjob(11, 10, 0), VP_PRIORITY_NORMAL, b, 1, &err) == 0);
        CHECK(submit_as(x, mkjob(12, 10, 0), VP_PRIORITY_NORMAL, b, 1, &err) == 0);
        CHECK(vp_sched_queued_clients(x->s) == (mode == 0 ? 2u : 1u));
        CHECK(vp_sched_cancel(x->s, x->t[3])); /* one of A's, from the middle */
        hold(x, false);
        CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
        CHECK(vp_sched_queued_clients(x->s) == 0);
        int p11 = pass_of(x, 11), p12 = pass_of(x, 12);
        if (mode == 0) {
            int p1[] = {11, 1}, p2[] = {12, 2}, p3[] = {4, 5};
            CHECK_MSG(pass_is(x, 1, p1, 2) && pass_is(x, 2, p2, 2) && pass_is(x, 3, p3, 2),
                      "fair: bob's jobs in passes %d and %d; passes 1-3: %d %d, %d %d, %d %d",
                      p11, p12, x->f.passes[1][0], x->f.passes[1][1], x->f.passes[2][0],
                      x->f.passes[2][1], x->f.passes[3][0], x->f.passes[3][1]);
        } else {
            int p5[] = {10, 11}, p6[] = {12};
            CHECK_MSG(pass_is(x, 5, p5, 2) && pass_is(x, 6, p6, 1), "arrival order (mode "
                      "%d): bob's jobs in passes %d and %d", mode, p11, p12);
        }
        CHECK(pass_of(x, 3) == -1 && x->f.n_passes == 7);
        teardown(x, 13);
    }
    g_fair = false;
}

/* Weights: A (weight 3) and B (weight 1) each queue 40 one-pass jobs; of the first 20
 * passes A gets 15 and B 5. The shares follow the tokens: B's jobs twice A's size with
 * equal weights give B a third of the passes. */
static void test_fair_weights(void)
{
    g_fair = true;
    for (int sized = 0; sized < 2; sized++) {
        fixture *x = setup(200, 1, 100, 0); /* one job a pass */
        vp_error err;
        hold(x, true);
        CHECK(submit_as(x, mkjob(0, 10, 0), VP_PRIORITY_NORMAL, NULL, 1, &err) == 0);
        wait_in_run(x);
        for (int i = 1; i <= 40; i++) {
            CHECK(submit_as(x, mkjob(i, 10, 0), VP_PRIORITY_NORMAL, "a", sized ? 1 : 3,
                            &err) == 0);
            CHECK(submit_as(x, mkjob(40 + i, sized ? 20 : 10, 0), VP_PRIORITY_NORMAL, "b", 1,
                            &err) == 0);
        }
        hold(x, false);
        CHECK(vp_sched_wait_idle(x->s, 10000) == 0);
        int a = 0;
        for (size_t p = 1; p <= 20 && p < x->f.n_passes; p++)
            a += x->f.passes[p][0] <= 40;
        int want = sized ? 13 : 15;
        CHECK_MSG(a >= want - 1 && a <= want + 1, "%s: a ran %d of the first 20 passes, "
                  "want %d", sized ? "b's jobs twice the tokens" : "weights 3:1", a, want);
        CHECK(x->f.n_passes == 81);
        teardown(x, 81);
    }
    g_fair = false;
}

/* Fair sharing orders jobs within a priority only: B's high job still runs next (in a
 * pass of its own), and B's low job still waits behind A's normal backlog queued before
 * it (within the boost), though B has nothing else queued. */
static void test_fair_priorities(void)
{
    g_fair = true;
    fixture *x = setup(100, 20, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit_as(x, mkjob(0, 10, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
    wait_in_run(x);
    for (int i = 1; i <= 6; i++)
        CHECK(submit_as(x, mkjob(i, 10, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
    CHECK(submit_as(x, mkjob(7, 10, 0), VP_PRIORITY_LOW, "b", 1, &err) == 0);
    CHECK(submit_as(x, mkjob(8, 10, 0), VP_PRIORITY_HIGH, "b", 1, &err) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int p1[] = {8};
    CHECK_MSG(pass_is(x, 1, p1, 1), "the high job's pass: %zu jobs, first %d",
              x->f.pass_len[1], x->f.passes[1][0]);
    CHECK_MSG(pass_of(x, 7) == (int)x->f.n_passes - 1 && pass_of(x, 6) < pass_of(x, 7),
              "the low job ran in pass %d of %zu", pass_of(x, 7), x->f.n_passes);
    teardown(x, 9);
    g_fair = false;
}

/* Clients that send their next job while the previous one runs (so they have nothing
 * queued when it is taken, and their record goes): one (bob), four (c0..c3, each job a
 * quarter of a pass) or the unnamed one. A's backlog must still get its share: every job
 * taken moves the virtual time past itself, so a returning client is tagged after its
 * last job, not at the same place again. (With the virtual time at the largest start tag
 * taken, as first written, A's jobs waited until the others stopped, at pass 155.) */
typedef struct returning {
    fixture *x;
    int next_id, clients;
    size_t tokens;
} returning;

static void resubmit(void *arg, vp_job *const *jobs, size_t n)
{
    returning *r = arg;
    static const char *const names[] = {"c0", "c1", "c2", "c3"};
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]->id < 100 || r->next_id >= 250) /* A's, or the end of the run */
            continue;
        const char *name = r->clients == 0 ? NULL : r->clients == 1 ? "bob" : names[r->next_id % 4];
        vp_error err;
        CHECK(submit_as(r->x, mkjob(r->next_id, r->tokens, 0), VP_PRIORITY_NORMAL, name, 1,
                        &err) == 0);
        r->next_id++;
    }
}

static void test_fair_returning_clients(void)
{
    g_fair = true;
    for (int clients = 0; clients <= 4; clients += clients == 1 ? 3 : 1) {
        fixture *x = setup(1000, 100, 100, 0);
        returning r = {.x = x, .next_id = 100, .clients = clients,
                       .tokens = clients == 4 ? 25 : 60};
        vp_error err;
        hold(x, true);
        CHECK(submit_as(x, mkjob(0, 1, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
        wait_in_run(x);
        static const char *const names[] = {"c0", "c1", "c2", "c3"};
        for (int i = 0; i < (clients == 4 ? 4 : 1); i++, r.next_id++)
            CHECK(submit_as(x, mkjob(r.next_id, r.tokens, 0), VP_PRIORITY_NORMAL,
                            clients == 0 ? NULL : clients == 1 ? "bob" : names[r.next_id % 4],
                            1, &err) == 0);
        for (int i = 1; i <= 5; i++)
            CHECK(submit_as(x, mkjob(i, r.tokens, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
        x->f.after_run = resubmit;
        x->f.after_arg = &r;
        hold(x, false);
        CHECK(vp_sched_wait_idle(x->s, 10000) == 0);
        /* the share: one job a pass of two (60 tokens, budget 100), or of five (25 each) */
        int last = pass_of(x, 5), bound = clients == 4 ? 8 : 13;
        CHECK_MSG(last > 0 && last <= bound, "%d returning client(s): A's last job in pass %d "
                  "(want 1 to %d) of %zu", clients, last, bound, x->f.n_passes);
        teardown(x, r.next_id);
    }
    g_fair = false;
}

/* Fair sharing on, passes of one 10-token job, client A's job 0 held in its pass. */
static fixture *fair_a_running(void)
{
    g_fair = true;
    fixture *x = setup(100, 10, 100, 0);
    vp_error err;
    hold(x, true);
    CHECK(submit_as(x, mkjob(0, 10, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
    wait_in_run(x);
    return x;
}

/* Jobs dropped unrun are not charged: A cancels a batch of 10 it queued behind its job 1
 * (so its record stays), B queues 5, then A one more, which must be tagged as if the 10
 * never were: after B's third (B's tags start at job 0's start, 0; A's job 1 at 10, after
 * its job 0), not after all of B's. */
static void test_fair_cancel_refund(void)
{
    fixture *x = fair_a_running();
    vp_error err;
    CHECK(submit_as(x, mkjob(1, 10, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
    vp_job *ten[10];
    vp_priority pr[10];
    for (int i = 0; i < 10; i++) {
        ten[i] = mkjob(2 + i, 10, 0);
        pr[i] = VP_PRIORITY_NORMAL;
    }
    vp_sched_client a = {.name = "a", .weight = 1};
    CHECK(vp_sched_submit(x->s, ten, pr, 10, &a, vp_sched_now_ms(), on_done, x->recs, &x->t[2],
                          &err) == 0);
    CHECK(vp_sched_cancel_many(x->s, &x->t[2], 10) == 10);
    for (int i = 12; i <= 16; i++)
        CHECK(submit_as(x, mkjob(i, 10, 0), VP_PRIORITY_NORMAL, "b", 1, &err) == 0);
    CHECK(submit_as(x, mkjob(17, 10, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int want[] = {0, 12, 1, 13, 14, 17, 15, 16};
    CHECK_MSG(order_is(x, want, 8), "A's job after the cancelled batch ran in pass %d of %zu "
              "(want 5)", pass_of(x, 17), x->f.n_passes);
    teardown(x, 18);
    g_fair = false;
}

/* test_fair_big_job_taken: the probe, sent by the hook while the big job's pass runs. */
static fixture *g_probe_fixture;
static void probe_after_big(void *arg, vp_job *const *jobs, size_t n)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        if (jobs[i]->id == 1) {
            vp_error err;
            CHECK(submit_as(g_probe_fixture, mkjob(22, 10, 0), VP_PRIORITY_NORMAL, "probe", 1,
                            &err) == 0);
        }
}

/* A large job taken does not push newcomers behind another client's backlog: the virtual
 * time is the start tag of the work taken, not its finish. "heavy" (weight 30) has 20
 * small jobs queued when "big" (weight 1) gets a 100-token pass to itself; a "probe" sent
 * during that pass runs in the next one (with the virtual time at the big job's finish it
 * was tagged after all of heavy's). */
static void test_fair_big_job_taken(void)
{
    g_fair = true;
    fixture *x = setup(100, 100, 100, 0); /* passes of 100 tokens */
    vp_error err;
    hold(x, true);
    CHECK(submit_as(x, mkjob(0, 10, 0), VP_PRIORITY_NORMAL, "d", 1, &err) == 0);
    wait_in_run(x);
    CHECK(submit_as(x, mkjob(1, 100, 0), VP_PRIORITY_NORMAL, "big", 1, &err) == 0);
    for (int i = 2; i <= 21; i++)
        CHECK(submit_as(x, mkjob(i, 10, 0), VP_PRIORITY_NORMAL, "heavy", 30, &err) == 0);
    g_probe_fixture = x;
    x->f.after_run = probe_after_big;
    hold(x, false);
    /* the hook submits the probe inside the big job's pass: the queue is not idle before */
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    CHECK_MSG(pass_of(x, 1) == 1 && pass_of(x, 22) == 2,
              "big ran in pass %d, the probe in pass %d of %zu (want 1 and 2)", pass_of(x, 1),
              pass_of(x, 22), x->f.n_passes);
    x->f.after_run = NULL;
    teardown(x, 23);
    g_fair = false;
}

/* A job dropped from the middle of its client's queued jobs gives its cost back to the
 * ones after it: A (job 0 running) queues a 50-token job, then a 10-token one; B queues 5;
 * A's large one is cancelled: A's small one runs right after B's first (tag 10 as if the
 * large one never were), not after all of B's (tag 60). */
static void test_fair_cancel_middle(void)
{
    fixture *x = fair_a_running();
    vp_error err;
    CHECK(submit_as(x, mkjob(1, 50, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
    CHECK(submit_as(x, mkjob(2, 10, 0), VP_PRIORITY_NORMAL, "a", 1, &err) == 0);
    for (int i = 3; i <= 7; i++)
        CHECK(submit_as(x, mkjob(i, 10, 0), VP_PRIORITY_NORMAL, "b", 1, &err) == 0);
    CHECK(vp_sched_cancel(x->s, x->t[1]));
    hold(x, false);
    CHECK(vp_sched_wait_idle(x->s, 5000) == 0);
    int want[] = {0, 3, 2, 4, 5, 6, 7};
    CHECK_MSG(order_is(x, want, 7), "A's job behind the cancelled one ran in pass %d of %zu "
              "(want 2)", pass_of(x, 2), x->f.n_passes);
    teardown(x, 8);
    g_fair = false;
}

/* The clients' table: records made and found by name, grown past its first 64 buckets,
 * the unnamed client shared, each record gone with its last job. */
static void test_fair_clients_table(void)
{
    sched_clients c;
    sched_clients_init(&c);
    sched_client *r[300];
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "client-%d", i);
        r[i] = sched_clients_join(&c, name);
    }
    CHECK(sched_clients_active(&c) == 300 && c.n_buckets >= 300);
    bool distinct = true, found = true;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "client-%d", i);
        distinct &= r[i] != &c.shared && !strcmp(r[i]->name, name);
        found &= sched_clients_join(&c, name) == r[i] && r[i]->queued == 2;
    }
    CHECK(distinct && found);
    CHECK(sched_clients_join(&c, NULL) == &c.shared && sched_clients_join(&c, "") == &c.shared);
    CHECK(sched_clients_active(&c) == 301);
    sched_clients_leave(&c, &c.shared);
    sched_clients_leave(&c, &c.shared);
    for (int i = 0; i < 300; i++) {
        sched_clients_leave(&c, r[i]);
        CHECK(sched_clients_active(&c) == 300u - (size_t)i + 0u);
        sched_clients_leave(&c, r[i]); /* its last: the record goes */
    }
    CHECK(sched_clients_active(&c) == 0 && c.n == 0);
    sched_clients_free(&c);
}

int main(void)
{
    test_packing();
    test_plan_packing();
    test_timing();
    test_lookahead_bound();
    test_queue_full();
    test_queued_tiles();
    test_admit_tiles();
    test_started_request();
    test_priority();
    test_priority_pass();
    test_priority_bound();
    test_priority_admission();
    test_priority_backlog();
    test_priority_deadline();
    test_cancel_many();
    test_deadline();
    test_cancel();
    test_poison();
    test_poison_halving();
    test_drain_and_stop();
    test_threads();
    /* the same with fair sharing on: every job of the tests above is the unnamed client's,
     * so the order must not change (test_threads: five clients, the invariants only) */
    g_fair = true;
    test_packing();
    test_plan_packing();
    test_lookahead_bound();
    test_queue_full();
    test_started_request();
    test_priority();
    test_priority_pass();
    test_priority_backlog();
    test_priority_deadline();
    test_cancel_many();
    test_deadline();
    test_poison_halving();
    test_threads();
    g_fair = false;
    test_fair_backlog();
    test_fair_weights();
    test_fair_priorities();
    test_fair_returning_clients();
    test_fair_cancel_refund();
    test_fair_cancel_middle();
    test_fair_big_job_taken();
    test_fair_clients_table();
    return check_summary("test_sched");
}
