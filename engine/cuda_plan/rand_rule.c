/* Maps a checkpoint tensor to the rule `vprm mkmodel` fills it with (mkmodel.c's
 * gen_values), so that the CUDA backend and the PyTorch reference can generate the same
 * random model on the GPU. */
#include <math.h>
#include <string.h>

#include "engine/cuda_plan/cuda_plan.h"
#include "engine/model/mkmodel.h"
#include "engine/model/rng.h"
#include "engine/model/tensor.h"

int vp_rand_rule_make(const vp_model_config *cfg, const char *name, vp_init_kind init,
                      int ndim, const int64_t *shape, uint64_t seed, int32_t plus,
                      int32_t minus, vp_rand_rule *r, vp_error *err)
{
    memset(r, 0, sizeof *r);
    r->key = vp_rng_key(seed, name);
    r->std = VP_MKMODEL_WEIGHT_STD;
    r->std_special = VP_MKMODEL_WEIGHT_STD;
    r->cols = ndim >= 2 ? (uint64_t)shape[1] : 1;
    for (int d = 2; d < ndim; d++)
        r->cols *= (uint64_t)shape[d];
    if (r->cols == 0)
        r->cols = 1;
    bool vision = !strncmp(name, "vision_model.", 13);
    switch (init) {
    case VP_INIT_SCALE:
        r->kind = VP_RAND_SCALE;
        return 0;
    case VP_INIT_NORM:
        r->kind = VP_RAND_NORM;
        return 0;
    case VP_INIT_RESID:
        r->kind = VP_RAND_NORMAL;
        r->std = r->std_special = vp_mkmodel_resid_std(cfg);
        return 0;
    case VP_INIT_WEIGHT:
    case VP_INIT_EMBED:
    case VP_INIT_BIAS:
        r->kind = VP_RAND_NORMAL;
        return 0;
    case VP_INIT_QKV:
        if (ndim != 2)
            return vp_fail(err, VP_ERR_INTERNAL, name, "qkv tensor %s is not a matrix", name);
        r->kind = VP_RAND_NORMAL;
        /* mkmodel.c's is_qk_row uses shape[1] as the row length */
        r->cols = (uint64_t)shape[1];
        if (vision) {
            r->rows = VP_RAND_ROWS_BELOW;
            r->a = 2 * (int64_t)cfg->vision.hidden;
            r->std_special = vp_mkmodel_qk_std(cfg, true);
        } else {
            r->rows = VP_RAND_ROWS_GROUP_QK;
            r->a = cfg->llm.head_dim;
            r->b = cfg->llm.heads / cfg->llm.kv_heads + 2;
            r->std_special = vp_mkmodel_qk_std(cfg, false);
        }
        return 0;
    case VP_INIT_HEAD:
        r->kind = VP_RAND_NORMAL;
        r->cols = (uint64_t)cfg->llm.hidden; /* mkmodel.c: row = element / hidden */
        r->rows = VP_RAND_ROWS_PAIR;
        r->a = plus;
        r->b = minus;
        r->std_special = vp_mkmodel_head_row_std(cfg->llm.hidden);
        return 0;
    }
    return vp_fail(err, VP_ERR_INTERNAL, name, "tensor %s has an unknown init kind %d", name,
                   (int)init);
}

void vp_rand_rule_fill(const vp_rand_rule *r, uint64_t start, size_t n, bool bf16, float *out)
{
    for (size_t i = 0; i < n; i++) {
        float v = vp_rr_value(r, start + i);
        out[i] = bf16 ? vp_bf16_to_f32(vp_f32_to_bf16(v)) : v;
    }
}
