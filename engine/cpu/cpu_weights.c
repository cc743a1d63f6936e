/* Converts the model's weights (bf16/f16/f32 views) once into fp32 buffers owned by
 * the backend, checking each tensor's element count against the config first. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_model.h"

void *cpu_alloc(size_t count, size_t size, const char *what, vp_error *err)
{
    if (count == 0)
        count = 1;
    if (size != 0 && count > SIZE_MAX / size) {
        vp_fail(err, VP_ERR_NOMEM, "", "%s: %zu x %zu bytes overflows size_t", what, count, size);
        return NULL;
    }
    void *p = malloc(count * size);
    if (!p)
        vp_fail(err, VP_ERR_NOMEM, "", "out of memory for %s (%zu bytes)", what, count * size);
    return p;
}

int cpu_check_config(const vp_model_config *cfg, vp_error *err)
{
    const vp_vision_config *v = &cfg->vision;
    const vp_llm_config *l = &cfg->llm;
    if (v->hidden <= 0 || v->layers < 0 || v->heads <= 0 || v->intermediate <= 0 ||
        v->patch <= 0 || v->image_size <= 0 || v->channels <= 0)
        return vp_fail(err, VP_ERR_MODEL, "vision_config", "vision sizes must be positive");
    if (v->hidden % v->heads)
        return vp_fail(err, VP_ERR_MODEL, "vision_config.num_attention_heads",
                       "vision hidden %d is not a multiple of %d heads", v->hidden, v->heads);
    if (v->image_size % v->patch || (v->image_size / v->patch) % 2)
        return vp_fail(err, VP_ERR_MODEL, "vision_config.image_size",
                       "image size %d / patch %d must be an even whole number of patches",
                       v->image_size, v->patch);
    if (cfg->downsample_ratio != 0.5)
        return vp_fail(err, VP_ERR_MODEL, "downsample_ratio",
                       "downsample_ratio %g is not supported by the CPU backend (only 0.5)",
                       cfg->downsample_ratio);
    int g = v->image_size / v->patch;
    if (cfg->num_image_token != (g / 2) * (g / 2))
        return vp_fail(err, VP_ERR_MODEL, "num_image_token",
                       "num_image_token %d does not match a %dx%d patch grid shuffled to %dx%d",
                       cfg->num_image_token, g, g, g / 2, g / 2);
    if (cfg->select_layer != -1)
        return vp_fail(err, VP_ERR_MODEL, "select_layer",
                       "select_layer %d is not supported (only -1)", cfg->select_layer);
    if (l->hidden <= 0 || l->layers < 0 || l->heads <= 0 || l->kv_heads <= 0 ||
        l->head_dim <= 0 || l->intermediate <= 0 || l->vocab <= 0)
        return vp_fail(err, VP_ERR_MODEL, "llm_config", "language model sizes must be positive");
    if (l->heads % l->kv_heads)
        return vp_fail(err, VP_ERR_MODEL, "llm_config.num_key_value_heads",
                       "%d query heads are not a multiple of %d key/value heads", l->heads,
                       l->kv_heads);
    if (l->head_dim % 2 || l->head_dim < 4)
        return vp_fail(err, VP_ERR_MODEL, "llm_config", "head dim %d must be even and >= 4 for RoPE",
                       l->head_dim);
    return 0;
}

/* Registers an owned buffer so cpu_weights_free can release it. */
static int own(cpu_weights *cw, float *p, vp_error *err)
{
    if (cw->n_owned == cw->cap_owned) {
        size_t cap = cw->cap_owned ? 2 * cw->cap_owned : 64;
        float **n = realloc(cw->owned, cap * sizeof *n);
        if (!n)
            return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the weight table");
        cw->owned = n;
        cw->cap_owned = cap;
    }
    cw->owned[cw->n_owned++] = p;
    return 0;
}

/* *dst = fp32 copy of t, which must hold `expect` elements. An absent tensor is an
 * error when required, else *dst = NULL (and a present one is ignored). */
static int take(cpu_weights *cw, float **dst, const vp_tensor *t, size_t expect, int required,
                const char *what, vp_error *err)
{
    *dst = NULL;
    if (!required)
        return 0;
    const char *name = t->name ? t->name : what;
    if (!t->data)
        return vp_fail(err, VP_ERR_MODEL, name, "tensor %s is missing", name);
    size_t numel = vp_tensor_numel(t);
    if (numel != expect)
        return vp_fail(err, VP_ERR_MODEL, name, "tensor %s has %zu elements, the config needs %zu",
                       name, numel, expect);
    char label[192];
    snprintf(label, sizeof label, "fp32 copy of %s", name);
    float *p = cpu_alloc(expect, sizeof(float), label, err);
    if (!p)
        return -1;
    if (own(cw, p, err) != 0) {
        free(p);
        return -1;
    }
    vp_tensor_to_f32(t, p);
    cw->bytes += expect * sizeof(float);
    *dst = p;
    return 0;
}

/* take() for field `field` of layer i, named that way when the tensor has no name. */
static int take_layer(cpu_weights *cw, float **dst, const vp_tensor *t, size_t expect,
                      int required, const char *tower, int i, const char *field, vp_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "%s layer %d %s", tower, i, field);
    return take(cw, dst, t, expect, required, what, err);
}

/* A tensor read row by row (the embedding, the LM head): a copy of its bytes in its own
 * dtype, after its size is checked. */
static int copy_rows(vp_tensor *dst, const vp_tensor *t, size_t expect, const char *what,
                     vp_error *err)
{
    const char *name = t->name ? t->name : what;
    if (!t->data)
        return vp_fail(err, VP_ERR_MODEL, name, "tensor %s is missing", name);
    if (vp_tensor_numel(t) != expect)
        return vp_fail(err, VP_ERR_MODEL, name, "tensor %s has %zu elements, the config needs %zu",
                       name, vp_tensor_numel(t), expect);
    void *copy = malloc(t->nbytes ? t->nbytes : 1);
    if (!copy)
        return vp_fail(err, VP_ERR_NOMEM, name, "out of memory for a copy of %s (%zu bytes)", name,
                       t->nbytes);
    memcpy(copy, t->data, t->nbytes);
    *dst = *t;
    dst->data = copy;
    return 0;
}

static int build_vision(cpu_weights *cw, const vp_model_config *cfg, const vp_weights *w,
                        vp_error *err)
{
    const vp_vision_config *v = &cfg->vision;
    size_t hv = (size_t)v->hidden, iv = (size_t)v->intermediate, p = (size_t)v->patch;
    size_t g = (size_t)(v->image_size / v->patch), cp = 4 * hv, h = (size_t)cfg->llm.hidden;
    int ln = v->norm == VP_NORM_LAYER;
    if (take(cw, &cw->class_embedding, &w->class_embedding, hv, 1, "class_embedding", err) ||
        take(cw, &cw->patch_w, &w->patch_w, hv * (size_t)v->channels * p * p, 1, "patch_w", err) ||
        take(cw, &cw->patch_b, &w->patch_b, hv, 1, "patch_b", err) ||
        take(cw, &cw->pos_embedding, &w->pos_embedding, (1 + g * g) * hv, 1, "pos_embedding", err))
        return -1;
    if (v->layers > 0 && !w->vit)
        return vp_fail(err, VP_ERR_MODEL, "vision_model", "the vision layers are missing");
    cw->vit = cpu_alloc((size_t)v->layers, sizeof *cw->vit, "vision layer table", err);
    if (!cw->vit)
        return -1;
    for (int i = 0; i < v->layers; i++) {
        const vp_vit_layer *s = &w->vit[i];
        cpu_vit_layer *d = &cw->vit[i];
#define TAKE(field, n, req) take_layer(cw, &d->field, &s->field, n, req, "vision", i, #field, err)
        if (TAKE(norm1_w, hv, 1) || TAKE(norm1_b, hv, ln) || TAKE(qkv_w, 3 * hv * hv, 1) ||
            TAKE(qkv_b, 3 * hv, v->qkv_bias) || TAKE(q_norm_w, hv, v->qk_norm) ||
            TAKE(k_norm_w, hv, v->qk_norm) || TAKE(proj_w, hv * hv, 1) || TAKE(proj_b, hv, 1) ||
            TAKE(ls1, hv, 1) || TAKE(ls2, hv, 1) || TAKE(norm2_w, hv, 1) ||
            TAKE(norm2_b, hv, ln) || TAKE(fc1_w, iv * hv, 1) || TAKE(fc1_b, iv, 1) ||
            TAKE(fc2_w, hv * iv, 1) || TAKE(fc2_b, hv, 1))
            return -1;
#undef TAKE
    }
    if (take(cw, &cw->proj_norm_w, &w->proj_norm_w, cp, 1, "mlp1.0.weight", err) ||
        take(cw, &cw->proj_norm_b, &w->proj_norm_b, cp, 1, "mlp1.0.bias", err) ||
        take(cw, &cw->proj1_w, &w->proj1_w, h * cp, 1, "mlp1.1.weight", err) ||
        take(cw, &cw->proj1_b, &w->proj1_b, h, 1, "mlp1.1.bias", err) ||
        take(cw, &cw->proj2_w, &w->proj2_w, h * h, 1, "mlp1.3.weight", err) ||
        take(cw, &cw->proj2_b, &w->proj2_b, h, 1, "mlp1.3.bias", err))
        return -1;
    return 0;
}

static int build_language(cpu_weights *cw, const vp_model_config *cfg, const vp_weights *w,
                          vp_error *err)
{
    const vp_llm_config *l = &cfg->llm;
    size_t h = (size_t)l->hidden, im = (size_t)l->intermediate, hd = (size_t)l->head_dim;
    size_t q = (size_t)l->heads * hd, kv = (size_t)l->kv_heads * hd, vocab = (size_t)l->vocab;
    if (copy_rows(&cw->tok_embeddings, &w->tok_embeddings, vocab * h, "tok_embeddings", err) ||
        copy_rows(&cw->output, &w->output, vocab * h, "output", err))
        return -1;
    cw->bytes += cw->tok_embeddings.nbytes + cw->output.nbytes;
    if (l->layers > 0 && !w->llm)
        return vp_fail(err, VP_ERR_MODEL, "language_model", "the language layers are missing");
    cw->llm = cpu_alloc((size_t)l->layers, sizeof *cw->llm, "language layer table", err);
    if (!cw->llm)
        return -1;
    for (int i = 0; i < l->layers; i++) {
        const vp_llm_layer *s = &w->llm[i];
        cpu_llm_layer *d = &cw->llm[i];
#define TAKE(field, n) take_layer(cw, &d->field, &s->field, n, 1, "language", i, #field, err)
        if (TAKE(attention_norm, h) || TAKE(wqkv, (q + 2 * kv) * h) || TAKE(wo, h * q) ||
            TAKE(ffn_norm, h) || TAKE(w1, im * h) || TAKE(w3, im * h) || TAKE(w2, h * im))
            return -1;
#undef TAKE
    }
    return take(cw, &cw->norm, &w->norm, h, 1, "model.norm.weight", err);
}

int cpu_weights_build(cpu_weights *cw, const vp_model_config *cfg, const vp_weights *w,
                      vp_error *err)
{
    *cw = (cpu_weights){0};
    if (build_vision(cw, cfg, w, err) != 0 || build_language(cw, cfg, w, err) != 0) {
        cpu_weights_free(cw);
        return -1;
    }
    return 0;
}

void cpu_weights_free(cpu_weights *cw)
{
    for (size_t i = 0; i < cw->n_owned; i++)
        free(cw->owned[i]);
    free(cw->owned);
    free(cw->vit);
    free(cw->llm);
    free((void *)cw->tok_embeddings.data); /* copy_rows' own copies */
    free((void *)cw->output.data);
    *cw = (cpu_weights){0};
}
