/* Binds the scheduler's engine interface to a real vp_engine. Kept apart from sched.c
 * so that unit tests can drive the scheduler with a fake engine. */
#include "engine/sched/sched.h"

#include <string.h>

#include "engine/pass_plan.h"

static int run_engine(void *ctx, vp_job *const *jobs, size_t n_jobs, vp_error *err)
{
    return vp_engine_run(ctx, jobs, n_jobs, err);
}

static void *plan_new(void *ctx)
{
    (void)ctx;
    return vp_pass_plan_new();
}

static void plan_reset(void *plan)
{
    vp_pass_plan_reset(plan);
}

static bool plan_add(void *plan, vp_job *j, size_t max_tokens, size_t max_tiles, size_t *tokens,
                     size_t *tiles)
{
    return vp_pass_plan_add(plan, j, max_tokens, max_tiles, tokens, tiles);
}

static void plan_free(void *plan)
{
    vp_pass_plan_free(plan);
}

static double engine_flops(void *ctx)
{
    return vp_engine_useful_flops(ctx);
}

void vp_sched_engine_of(vp_engine *e, vp_sched_engine *out)
{
    memset(out, 0, sizeof *out);
    out->ctx = e;
    out->run = run_engine;
    out->job_tokens = vp_job_tokens;
    out->job_tiles = vp_job_tiles;
    out->job_result = vp_job_result_mut;
    out->job_free = vp_job_free;
    out->useful_flops = engine_flops;
    out->plan_new = plan_new;
    out->plan_reset = plan_reset;
    out->plan_add = plan_add;
    out->plan_free = plan_free;
}
