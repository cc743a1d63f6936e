#include "engine/model/layout.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct builder {
    vp_layout_entry *v; /* [n] */
    size_t n, cap;
} builder;

static void add(builder *b, vp_tensor *slot, vp_init_kind init, int ndim, const int64_t *shape,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add(builder *b, vp_tensor *slot, vp_init_kind init, int ndim, const int64_t *shape,
                const char *fmt, ...)
{
    vp_layout_entry *e = &b->v[b->n++]; /* capacity counted in advance */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        e->shape[d] = shape[d];
    e->init = init;
    e->slot = slot;
}

#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
#define SLOT(field) (w ? &(field) : NULL)

static void vision(builder *b, const vp_model_config *c, vp_weights *w)
{
    const vp_vision_config *v = &c->vision;
    int64_t H = v->hidden, I = v->intermediate, P = v->patch;
    int64_t grid = v->image_size / v->patch;
    const char *e = "vision_model.embeddings";
    add(b, SLOT(w->class_embedding), VP_INIT_EMBED, SHAPE(1, 1, H), "%s.class_embedding", e);
    add(b, SLOT(w->patch_w), VP_INIT_WEIGHT, SHAPE(H, v->channels, P, P),
        "%s.patch_embedding.weight", e);
    add(b, SLOT(w->patch_b), VP_INIT_BIAS, SHAPE(H), "%s.patch_embedding.bias", e);
    add(b, SLOT(w->pos_embedding), VP_INIT_EMBED, SHAPE(1, 1 + grid * grid, H),
        "%s.position_embedding", e);
    bool ln = v->norm == VP_NORM_LAYER;
    for (int l = 0; l < v->layers; l++) {
        vp_vit_layer *L = w ? &w->vit[l] : NULL;
        char p[64];
        snprintf(p, sizeof p, "vision_model.encoder.layers.%d", l);
        add(b, SLOT(L->norm1_w), VP_INIT_NORM, SHAPE(H), "%s.norm1.weight", p);
        if (ln)
            add(b, SLOT(L->norm1_b), VP_INIT_BIAS, SHAPE(H), "%s.norm1.bias", p);
        add(b, SLOT(L->qkv_w), VP_INIT_QKV, SHAPE(3 * H, H), "%s.attn.qkv.weight", p);
        if (v->qkv_bias)
            add(b, SLOT(L->qkv_b), VP_INIT_BIAS, SHAPE(3 * H), "%s.attn.qkv.bias", p);
        if (v->qk_norm) { /* InternRMSNorm over the whole hidden size: weight only */
            add(b, SLOT(L->q_norm_w), VP_INIT_NORM, SHAPE(H), "%s.attn.q_norm.weight", p);
            add(b, SLOT(L->k_norm_w), VP_INIT_NORM, SHAPE(H), "%s.attn.k_norm.weight", p);
        }
        add(b, SLOT(L->proj_w), VP_INIT_WEIGHT, SHAPE(H, H), "%s.attn.proj.weight", p);
        add(b, SLOT(L->proj_b), VP_INIT_BIAS, SHAPE(H), "%s.attn.proj.bias", p);
        add(b, SLOT(L->ls1), VP_INIT_SCALE, SHAPE(H), "%s.ls1", p);
        add(b, SLOT(L->ls2), VP_INIT_SCALE, SHAPE(H), "%s.ls2", p);
        add(b, SLOT(L->norm2_w), VP_INIT_NORM, SHAPE(H), "%s.norm2.weight", p);
        if (ln)
            add(b, SLOT(L->norm2_b), VP_INIT_BIAS, SHAPE(H), "%s.norm2.bias", p);
        add(b, SLOT(L->fc1_w), VP_INIT_WEIGHT, SHAPE(I, H), "%s.mlp.fc1.weight", p);
        add(b, SLOT(L->fc1_b), VP_INIT_BIAS, SHAPE(I), "%s.mlp.fc1.bias", p);
        add(b, SLOT(L->fc2_w), VP_INIT_WEIGHT, SHAPE(H, I), "%s.mlp.fc2.weight", p);
        add(b, SLOT(L->fc2_b), VP_INIT_BIAS, SHAPE(H), "%s.mlp.fc2.bias", p);
    }
}

static void projector(builder *b, const vp_model_config *c, vp_weights *w)
{
    /* pixel shuffle with ratio 0.5 concatenates 4 vision tokens */
    int64_t Cp = (int64_t)c->vision.hidden * 4, H = c->llm.hidden;
    add(b, SLOT(w->proj_norm_w), VP_INIT_NORM, SHAPE(Cp), "mlp1.0.weight");
    add(b, SLOT(w->proj_norm_b), VP_INIT_BIAS, SHAPE(Cp), "mlp1.0.bias");
    add(b, SLOT(w->proj1_w), VP_INIT_WEIGHT, SHAPE(H, Cp), "mlp1.1.weight");
    add(b, SLOT(w->proj1_b), VP_INIT_BIAS, SHAPE(H), "mlp1.1.bias");
    add(b, SLOT(w->proj2_w), VP_INIT_WEIGHT, SHAPE(H, H), "mlp1.3.weight");
    add(b, SLOT(w->proj2_b), VP_INIT_BIAS, SHAPE(H), "mlp1.3.bias");
}

static void language(builder *b, const vp_model_config *c, vp_weights *w)
{
    const vp_llm_config *m = &c->llm;
    int64_t H = m->hidden, I = m->intermediate, V = m->vocab, D = m->head_dim;
    int64_t qkv = (int64_t)(m->heads + 2 * m->kv_heads) * D;
    add(b, SLOT(w->tok_embeddings), VP_INIT_EMBED, SHAPE(V, H),
        "language_model.model.tok_embeddings.weight");
    for (int l = 0; l < m->layers; l++) {
        vp_llm_layer *L = w ? &w->llm[l] : NULL;
        char p[64];
        snprintf(p, sizeof p, "language_model.model.layers.%d", l);
        add(b, SLOT(L->attention_norm), VP_INIT_NORM, SHAPE(H), "%s.attention_norm.weight", p);
        add(b, SLOT(L->wqkv), VP_INIT_QKV, SHAPE(qkv, H), "%s.attention.wqkv.weight", p);
        add(b, SLOT(L->wo), VP_INIT_RESID, SHAPE(H, m->heads * D), "%s.attention.wo.weight", p);
        add(b, SLOT(L->ffn_norm), VP_INIT_NORM, SHAPE(H), "%s.ffn_norm.weight", p);
        add(b, SLOT(L->w1), VP_INIT_WEIGHT, SHAPE(I, H), "%s.feed_forward.w1.weight", p);
        add(b, SLOT(L->w3), VP_INIT_WEIGHT, SHAPE(I, H), "%s.feed_forward.w3.weight", p);
        add(b, SLOT(L->w2), VP_INIT_RESID, SHAPE(H, I), "%s.feed_forward.w2.weight", p);
    }
    add(b, SLOT(w->norm), VP_INIT_NORM, SHAPE(H), "language_model.model.norm.weight");
    add(b, SLOT(w->output), VP_INIT_HEAD, SHAPE(V, H), "language_model.output.weight");
}

int vp_layout_build(const vp_model_config *cfg, vp_weights *w, vp_layout_entry **out, size_t *n,
                    vp_error *err)
{
    builder b = {0};
    b.cap = 4 + 16 * (size_t)cfg->vision.layers + 6 + 3 + 7 * (size_t)cfg->llm.layers;
    b.v = calloc(b.cap, sizeof *b.v);
    if (!b.v)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory for the tensor list");
    vision(&b, cfg, w);
    projector(&b, cfg, w);
    language(&b, cfg, w);
    *out = b.v;
    *n = b.n;
    return 0;
}

size_t vp_layout_numel(const vp_layout_entry *e)
{
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++)
        n *= (size_t)e->shape[d];
    return n;
}
