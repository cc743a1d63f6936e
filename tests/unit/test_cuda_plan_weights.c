/* The CUDA backend's weight arena plan (engine/cuda_plan/plan_weights.c): every
 * checkpoint tensor is placed once, identified by the right field and layer, in the
 * documented element type; no two device tensors overlap; w3 directly follows w1 (one
 * gate+up product); the patch kernel rows are padded to 16 bytes; the LM head stays on
 * the host. */
#include <stdio.h>
#include <string.h>

#include "engine/cuda_plan/cuda_plan.h"
#include "engine/model/layout.h"
#include "engine/model/mkmodel.h"
#include "tests/unit/check.h"
#include "tests/unit/cuda_plan_test_util.h"

/* The field a checkpoint name denotes, written from the names in MODEL.md. */
static int expected_field(const char *name, vp_cw_field *f, int *layer)
{
    static const struct { const char *suffix; vp_cw_field f; } vit[] = {
        {"norm1.weight", VP_CW_V_NORM1_W}, {"norm1.bias", VP_CW_V_NORM1_B},
        {"attn.qkv.weight", VP_CW_V_QKV_W}, {"attn.qkv.bias", VP_CW_V_QKV_B},
        {"attn.q_norm.weight", VP_CW_V_Q_NORM}, {"attn.k_norm.weight", VP_CW_V_K_NORM},
        {"attn.proj.weight", VP_CW_V_PROJ_W}, {"attn.proj.bias", VP_CW_V_PROJ_B},
        {"ls1", VP_CW_V_LS1}, {"ls2", VP_CW_V_LS2}, {"norm2.weight", VP_CW_V_NORM2_W},
        {"norm2.bias", VP_CW_V_NORM2_B}, {"mlp.fc1.weight", VP_CW_V_FC1_W},
        {"mlp.fc1.bias", VP_CW_V_FC1_B}, {"mlp.fc2.weight", VP_CW_V_FC2_W},
        {"mlp.fc2.bias", VP_CW_V_FC2_B}};
    static const struct { const char *suffix; vp_cw_field f; } llm[] = {
        {"attention_norm.weight", VP_CW_L_ATTN_NORM}, {"attention.wqkv.weight", VP_CW_L_WQKV},
        {"attention.wo.weight", VP_CW_L_WO}, {"ffn_norm.weight", VP_CW_L_FFN_NORM},
        {"feed_forward.w1.weight", VP_CW_L_W1}, {"feed_forward.w3.weight", VP_CW_L_W3},
        {"feed_forward.w2.weight", VP_CW_L_W2}};
    static const struct { const char *name; vp_cw_field f; } top[] = {
        {"vision_model.embeddings.class_embedding", VP_CW_CLASS_EMB},
        {"vision_model.embeddings.patch_embedding.weight", VP_CW_PATCH_W},
        {"vision_model.embeddings.patch_embedding.bias", VP_CW_PATCH_B},
        {"vision_model.embeddings.position_embedding", VP_CW_POS_EMB},
        {"mlp1.0.weight", VP_CW_PN_W}, {"mlp1.0.bias", VP_CW_PN_B}, {"mlp1.1.weight", VP_CW_P1_W},
        {"mlp1.1.bias", VP_CW_P1_B}, {"mlp1.3.weight", VP_CW_P2_W}, {"mlp1.3.bias", VP_CW_P2_B},
        {"language_model.model.tok_embeddings.weight", VP_CW_TOK_EMB},
        {"language_model.model.norm.weight", VP_CW_NORM},
        {"language_model.output.weight", VP_CW_OUTPUT}};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strcmp(name, top[i].name)) {
            *f = top[i].f;
            *layer = -1;
            return 0;
        }
    int l, off = 0;
    if (sscanf(name, "vision_model.encoder.layers.%d.%n", &l, &off) == 1 && off) {
        for (size_t i = 0; i < sizeof vit / sizeof vit[0]; i++)
            if (!strcmp(name + off, vit[i].suffix)) {
                *f = vit[i].f;
                *layer = l;
                return 0;
            }
    }
    off = 0;
    if (sscanf(name, "language_model.model.layers.%d.%n", &l, &off) == 1 && off) {
        for (size_t i = 0; i < sizeof llm / sizeof llm[0]; i++)
            if (!strcmp(name + off, llm[i].suffix)) {
                *f = llm[i].f;
                *layer = l;
                return 0;
            }
    }
    return -1;
}

static size_t bytes_of(const vp_cw_entry *e)
{
    return e->rows * e->pitch * (e->type == VP_CW_BF16 ? 2 : 4);
}

static int by_offset(const void *a, const void *b)
{
    const vp_cw_entry *x = *(const vp_cw_entry *const *)a, *y = *(const vp_cw_entry *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static void check_plan(const vp_model_config *cfg, const char *label)
{
    vp_cw_plan p;
    vp_error err = {0};
    CHECK(vp_cw_plan_build(cfg, &p, &err) == 0);
    vp_layout_entry *list;
    size_t n;
    CHECK(vp_layout_build(cfg, NULL, &list, &n, &err) == 0);
    CHECK(p.n == n);
    size_t total = 0, bad_field = 0, bad_type = 0, bad_align = 0, bad_shape = 0;
    const vp_cw_entry **on = tb_alloc(n, sizeof *on);
    size_t n_on = 0;
    for (size_t i = 0; i < p.n; i++) {
        const vp_cw_entry *e = &p.e[i];
        vp_cw_field f;
        int layer;
        if (strcmp(e->name, list[i].name) || expected_field(e->name, &f, &layer) ||
            f != e->field || layer != e->layer)
            bad_field++;
        size_t numel = vp_layout_numel(&list[i]);
        total += numel;
        bad_shape += e->rows * e->cols != numel || e->pitch < e->cols;
        bool matrix = e->field == VP_CW_PATCH_W || e->field == VP_CW_V_QKV_W ||
                      e->field == VP_CW_V_PROJ_W || e->field == VP_CW_V_FC1_W ||
                      e->field == VP_CW_V_FC2_W || e->field == VP_CW_P1_W ||
                      e->field == VP_CW_P2_W || e->field == VP_CW_TOK_EMB ||
                      e->field == VP_CW_L_WQKV || e->field == VP_CW_L_WO ||
                      e->field == VP_CW_L_W1 || e->field == VP_CW_L_W3 ||
                      e->field == VP_CW_L_W2 || e->field == VP_CW_OUTPUT;
        bool bf16_bias = e->field == VP_CW_V_QKV_B || e->field == VP_CW_V_FC1_B ||
                         e->field == VP_CW_P1_B;
        bad_type += e->type != (matrix || bf16_bias ? VP_CW_BF16 : VP_CW_F32);
        if (e->field == VP_CW_OUTPUT) {
            CHECK(!e->on_device);
            continue;
        }
        CHECK(e->on_device);
        on[n_on++] = e;
        if (e->field == VP_CW_L_W3) {
            const vp_cw_entry *w1 = vp_cw_plan_find(&p, VP_CW_L_W1, e->layer);
            CHECK(w1 && e->offset == w1->offset + bytes_of(w1));
        } else {
            bad_align += e->offset % VP_WS_ALIGN != 0;
        }
        if (e->field == VP_CW_PATCH_W)
            CHECK(e->cols == (size_t)cfg->vision.channels * cfg->vision.patch * cfg->vision.patch &&
                  e->pitch % 8 == 0 && e->pitch - e->cols < 8);
        else
            bad_shape += e->pitch != e->cols;
        if (e->field == VP_CW_POS_EMB)
            CHECK(e->cols == (size_t)cfg->vision.hidden);
    }
    CHECK_MSG(bad_field == 0, "%s: %zu entries with a wrong field/layer", label, bad_field);
    CHECK_MSG(bad_type == 0, "%s: %zu entries with a wrong device type", label, bad_type);
    CHECK_MSG(bad_align == 0, "%s: %zu misaligned entries", label, bad_align);
    CHECK_MSG(bad_shape == 0, "%s: %zu entries with a wrong shape", label, bad_shape);
    qsort(on, n_on, sizeof *on, by_offset);
    size_t overlaps = 0;
    for (size_t i = 0; i + 1 < n_on; i++)
        overlaps += on[i]->offset + bytes_of(on[i]) > on[i + 1]->offset;
    CHECK_MSG(overlaps == 0, "%s: %zu overlapping tensors", label, overlaps);
    CHECK(n_on && on[n_on - 1]->offset + bytes_of(on[n_on - 1]) <= p.arena_bytes);
    size_t head = (size_t)cfg->llm.vocab * (size_t)cfg->llm.hidden;
    CHECK(p.device_params == total - head);
    printf("%s: %zu tensors, %.3f G parameters on the device, arena %.2f GiB\n", label, p.n,
           (double)p.device_params / 1e9, (double)p.arena_bytes / (1 << 30));
    free(on);
    free(list);
    vp_cw_plan_free(&p);
}

int main(void)
{
    CHECK(vp_cw_pad_cols(588) == 592 && vp_cw_pad_cols(592) == 592 && vp_cw_pad_cols(1) == 8);
    vp_model_config cfg;
    vp_error err = {0};
    CHECK(vp_mkmodel_preset("tiny", &cfg, &err) == 0);
    check_plan(&cfg, "tiny");
    cfg.vision.norm = VP_NORM_RMS; /* no norm biases, q/k norms instead */
    cfg.vision.qk_norm = true;
    cfg.vision.qkv_bias = false;
    check_plan(&cfg, "tiny rms_norm + qk_normalization");
    CHECK(vp_mkmodel_preset("8b", &cfg, &err) == 0);
    check_plan(&cfg, "8b");
    vp_cw_plan p;
    CHECK(vp_cw_plan_build(&cfg, &p, &err) == 0);
    /* PERF.md: 8.07 B parameters, of which the LM head (0.38 B) stays on the host */
    CHECK(p.device_params > 7.6e9 && p.device_params < 7.8e9);
    CHECK(p.arena_bytes > 15.2e9 && p.arena_bytes < 15.6e9);
    vp_cw_plan_free(&p);
    return check_summary("cuda_plan_weights");
}
