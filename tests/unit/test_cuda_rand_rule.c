/* The random-weight rule the CUDA backend evaluates on the GPU (engine/cuda_plan/
 * rand_rule.h) against `vprm mkmodel`'s own generator (vp_mkmodel_values, rng.c), bit for
 * bit, for every tensor of the tiny and 8b layouts (slices of the big ones). */
#include <string.h>

#include "engine/cuda_plan/cuda_plan.h"
#include "engine/model/layout.h"
#include "engine/model/mkmodel.h"
#include "engine/model/rng.h"
#include "tests/unit/check.h"
#include "tests/unit/cuda_plan_test_util.h"

static void test_rng_twins(void)
{
    int bad_bits = 0, bad_uniform = 0, bad_normal = 0;
    for (int k = 0; k < 200; k++) {
        uint64_t key = tb_next(), i = tb_next() >> (k % 40);
        bad_bits += vp_rr_bits(key, i) != vp_rng_bits(key, i);
        bad_uniform += vp_rr_uniform(key, i) != vp_rng_uniform(key, i);
        float ref[3];
        vp_rng_normal_fill(key, i, 3, ref); /* odd and even starts */
        for (int d = 0; d < 3; d++)
            bad_normal += memcmp(&ref[d], &(float){vp_rr_normal(key, i + (uint64_t)d)}, 4) != 0;
    }
    CHECK(bad_bits == 0);
    CHECK(bad_uniform == 0);
    CHECK_MSG(bad_normal == 0, "%d normals differ from rng.c", bad_normal);
}

/* Every tensor of cfg: n values at a few offsets, rule vs mkmodel, as float bits. */
static void test_layout(const vp_model_config *cfg, size_t slice)
{
    vp_layout_entry *list;
    size_t n;
    vp_error err = {0};
    CHECK(vp_layout_build(cfg, NULL, &list, &n, &err) == 0);
    vp_init_params params = {.cfg = cfg, .seed = 7, .plus_id = 342, .minus_id = 285};
    float *want = tb_alloc(slice, sizeof *want), *got = tb_alloc(slice, sizeof *got);
    int bad_tensors = 0, bad_rules = 0;
    for (size_t i = 0; i < n; i++) {
        const vp_layout_entry *e = &list[i];
        vp_rand_rule r;
        if (vp_rand_rule_make(cfg, e->name, e->init, e->ndim, e->shape, params.seed,
                              params.plus_id, params.minus_id, &r, &err)) {
            bad_rules++;
            continue;
        }
        size_t numel = vp_layout_numel(e);
        size_t starts[3] = {0, numel > slice ? (size_t)(tb_next() % (numel - slice)) : 0,
                            numel > slice ? numel - slice : 0};
        if (e->init == VP_INIT_HEAD) /* the scaled rows */
            starts[1] = 342 * (size_t)cfg->llm.hidden, starts[2] = 285 * (size_t)cfg->llm.hidden;
        for (int s = 0; s < 3; s++) {
            size_t m = numel - starts[s] < slice ? numel - starts[s] : slice;
            vp_mkmodel_values(&params, e, starts[s], m, want);
            vp_rand_rule_fill(&r, starts[s], m, false, got);
            if (memcmp(want, got, m * sizeof *got)) {
                bad_tensors++;
                fprintf(stderr, "rule differs from mkmodel in %s at %zu\n", e->name, starts[s]);
                break;
            }
        }
    }
    CHECK(bad_rules == 0);
    CHECK_MSG(bad_tensors == 0, "%d tensors differ", bad_tensors);
    free(want);
    free(got);
    free(list);
}

int main(void)
{
    test_rng_twins();
    vp_model_config cfg;
    vp_error err = {0};
    CHECK(vp_mkmodel_preset("tiny", &cfg, &err) == 0);
    test_layout(&cfg, 1u << 16); /* whole tensors, except the 92553-row ones */
    CHECK(vp_mkmodel_preset("8b", &cfg, &err) == 0);
    test_layout(&cfg, 5000);
    /* the bf16 fill is the f32 value rounded like a bf16 checkpoint */
    vp_rand_rule r;
    int64_t shape[2] = {8, 16};
    CHECK(vp_rand_rule_make(&cfg, "x", VP_INIT_WEIGHT, 2, shape, 3, 0, 1, &r, &err) == 0);
    float f[128], bf[128];
    vp_rand_rule_fill(&r, 0, 128, false, f);
    vp_rand_rule_fill(&r, 0, 128, true, bf);
    int bad = 0, nonzero = 0;
    for (int i = 0; i < 128; i++) {
        bad += bf[i] != vp_bf16_to_f32(vp_f32_to_bf16(f[i]));
        nonzero += f[i] != 0;
    }
    CHECK(bad == 0 && nonzero == 128);
    return check_summary("cuda_rand_rule");
}
