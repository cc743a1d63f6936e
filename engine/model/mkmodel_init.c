/* What a random model is: the shapes of each scale, and how each tensor's values are
 * drawn (the choices that make random-weight tests sensitive are explained here). */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/model/layout.h"
#include "engine/model/mkmodel.h"
#include "engine/model/rng.h"

int vp_mkmodel_preset(const char *scale, vp_model_config *cfg, vp_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    vp_vision_config *v = &cfg->vision;
    vp_llm_config *l = &cfg->llm;
    *v = (vp_vision_config){.patch = 14, .image_size = 448, .channels = 3, .norm = VP_NORM_LAYER,
                            .norm_eps = 1e-6f, .qkv_bias = true, .qk_norm = false};
    *l = (vp_llm_config){.rms_eps = 1e-5f, .rope_theta = 1e6, .rope_dynamic = true,
                         .rope_factor = 2.0, .max_pos = 32768};
    if (!strcmp(scale, "tiny")) {
        v->hidden = 64, v->layers = 2, v->heads = 4, v->intermediate = 128;
        l->hidden = 128, l->layers = 2, l->heads = 4, l->kv_heads = 2, l->intermediate = 256;
    } else if (!strcmp(scale, "8b")) {
        v->hidden = 1024, v->layers = 24, v->heads = 16, v->intermediate = 4096;
        l->hidden = 4096, l->layers = 32, l->heads = 32, l->kv_heads = 8, l->intermediate = 14336;
    } else {
        return vp_fail(err, VP_ERR_BAD_REQUEST, "scale", "unknown scale '%s' (tiny or 8b)", scale);
    }
    l->head_dim = l->hidden / l->heads;
    l->vocab = 92553;
    cfg->downsample_ratio = 0.5;
    cfg->select_layer = -1;
    cfg->min_dynamic_patch = 1;
    cfg->max_dynamic_patch = 12;
    cfg->use_thumbnail = true;
    int grid = v->image_size / v->patch;
    cfg->num_image_token = (grid / 2) * (grid / 2);
    return 0;
}

/* Step scores come from margin = (w+ - w-) . h at the score position, h being the output
 * of the final RMSNorm: unit RMS (times the norm weight, ~1), so |h| ~ sqrt(H). With the
 * two rows drawn independently as normal(0, s), w+ - w- is normal(0, 2 s^2) per component
 * and margin ~ normal(0, 2 s^2 |h|^2) = normal(0, 2 s^2 H). With every weight at 0.02 that
 * is a margin std of ~0.3 at the tiny hidden 128: every score ~0.5, which hides errors.
 * s = 2 / sqrt(2 H) gives a margin std of 2 (0.125 at H = 128, 6x the other rows; 0.022
 * at H = 4096); sigmoid(+-2.9) = 0.95 / 0.05. Measured with the fp32 reference
 * (tests/reference) on tiny models, seeds 1..3, three responses of 4..6 steps each (with
 * the sharp attention below): tiny tokenizer, step scores 0.04..0.99, margin std 2.1,
 * 79% of them outside 0.3..0.7; InternLM2 tokenizer, 0.09..0.90. */
float vp_mkmodel_head_row_std(int hidden)
{
    return 2.0f / sqrtf(2.0f * (float)hidden);
}

/* Query and key rows: with all weights at 0.02 the attention logits q.k / sqrt(d) have std
 * ~ H * 0.02^2 (q and k have std 0.02 sqrt(H) per component over a unit-RMS normed input):
 * 0.05 at the tiny hidden 128, where attention is then uniform, a wrong mask / scale /
 * RoPE / head split barely changes anything, and every score position of a prompt sees
 * the same context average. Shallow towers (fewer than VP_MKMODEL_DEEP_LAYERS layers) use
 * rows of std sqrt(4 / H): logit std ~4, attention picks a few tokens by content and by
 * relative position, and h differs between steps (with 0.02 everywhere, the step scores
 * of one prompt stayed within ~0.1 of each other).
 * Deep towers (the 8b shape) cannot take that: through 24 + 32 layers, sharp random
 * attention is chaotic, and bf16 rounding alone moved the step margins by 64% (PyTorch
 * bf16) and 33% (the CUDA backend) against fp32 on the same weights. Measured with
 * tests/gpu/init_sweep.py on an H100 (W1, seed 1): ViT q/k rows at 0.02 (logit std ~0.4
 * at H = 1024), LLM q/k rows at 0.025 (logit std ~2.6 at H = 4096) and the LLM's residual
 * products at 0.005 (resid_std below) keep the margins spread (std 1.7, step scores
 * 0.16..0.99) with a margin error of the CUDA backend's precision of 1.8% (PERF.md: 2%);
 * later, on an H200 over seeds 1..3: 2.2%, 2.9%, 3.2% (PyTorch bf16 5.2%, 6.5%, 5.3%). */
#define VP_MKMODEL_DEEP_LAYERS 16

float vp_mkmodel_qk_std(const vp_model_config *cfg, bool vision)
{
    int layers = vision ? cfg->vision.layers : cfg->llm.layers;
    int hidden = vision ? cfg->vision.hidden : cfg->llm.hidden;
    if (cfg->init_rule == VP_INIT_RULE_PLAIN)
        return VP_MKMODEL_WEIGHT_STD;
    if (layers < VP_MKMODEL_DEEP_LAYERS)
        return sqrtf(4.0f / (float)hidden);
    return vision ? VP_MKMODEL_WEIGHT_STD : 1.25f * VP_MKMODEL_WEIGHT_STD;
}

/* The LLM's attention output (wo) and MLP output (w2) products: 0.02 in shallow models; a
 * quarter of it in deep ones, so that no layer's branch swamps the residual stream (the
 * depth scaling of GPT-2's initialisation, 1 / sqrt(2 layers) = 1/8 at 32 layers, was
 * about as well conditioned; 1/4 kept the margins more spread). */
float vp_mkmodel_resid_std(const vp_model_config *cfg)
{
    if (cfg->init_rule == VP_INIT_RULE_PLAIN || cfg->llm.layers < VP_MKMODEL_DEEP_LAYERS)
        return VP_MKMODEL_WEIGHT_STD;
    return 0.25f * VP_MKMODEL_WEIGHT_STD;
}

/* Whether row r of a qkv projection is a query or key row (not a value row).
 * ViT attn.qkv: [q block | k block | v block], each hidden rows. InternLM2 wqkv: per KV
 * group, q_per_kv query heads, one key head, one value head, head_dim rows each. */
static bool is_qk_row(const vp_init_params *g, const vp_layout_entry *e, size_t r)
{
    if (!strncmp(e->name, "vision_model.", 13))
        return r < 2 * (size_t)g->cfg->vision.hidden;
    const vp_llm_config *l = &g->cfg->llm;
    size_t per_group = (size_t)(l->heads / l->kv_heads) + 2;
    size_t slot = (r / (size_t)l->head_dim) % per_group;
    return slot + 1 < per_group;
}

/* Values of elements [start, start + n) of entry e, as float. */
void vp_mkmodel_values(const vp_init_params *g, const vp_layout_entry *e, size_t start, size_t n,
                       float *out)
{
    uint64_t key = vp_rng_key(g->seed, e->name);
    switch (e->init) {
    case VP_INIT_SCALE: /* layer scales: never zero, so no layer is switched off */
        for (size_t i = 0; i < n; i++)
            out[i] = 0.1f + 0.9f * vp_rng_uniform(key, start + i);
        return;
    case VP_INIT_NORM:
        vp_rng_normal_fill(key, start, n, out);
        for (size_t i = 0; i < n; i++)
            out[i] = 1.0f + 0.05f * out[i];
        return;
    case VP_INIT_QKV: {
        vp_rng_normal_fill(key, start, n, out);
        bool vision = !strncmp(e->name, "vision_model.", 13);
        size_t cols = (size_t)e->shape[1];
        float qk = vp_mkmodel_qk_std(g->cfg, vision);
        for (size_t i = 0; i < n; i++)
            out[i] *= is_qk_row(g, e, (start + i) / cols) ? qk : VP_MKMODEL_WEIGHT_STD;
        return;
    }
    case VP_INIT_HEAD: {
        vp_rng_normal_fill(key, start, n, out);
        int hidden = g->cfg->llm.hidden;
        float big = vp_mkmodel_head_row_std(hidden);
        for (size_t i = 0; i < n; i++) {
            size_t row = (start + i) / (size_t)hidden;
            bool scored = row == (size_t)g->plus_id || row == (size_t)g->minus_id;
            out[i] *= scored ? big : VP_MKMODEL_WEIGHT_STD;
        }
        return;
    }
    case VP_INIT_RESID: {
        vp_rng_normal_fill(key, start, n, out);
        float std = vp_mkmodel_resid_std(g->cfg);
        for (size_t i = 0; i < n; i++)
            out[i] *= std;
        return;
    }
    case VP_INIT_WEIGHT:
    case VP_INIT_EMBED:
    case VP_INIT_BIAS:
        vp_rng_normal_fill(key, start, n, out);
        for (size_t i = 0; i < n; i++)
            out[i] *= VP_MKMODEL_WEIGHT_STD;
        return;
    }
}
