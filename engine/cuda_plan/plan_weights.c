/* The CUDA backend's weight arena: one device allocation holding every tensor the
 * kernels read, each at a planned offset in a planned element type. The list of tensors
 * is the checkpoint layout (engine/model/layout.c), so the loader, mkmodel and this plan
 * cannot disagree; each entry is identified by the vp_weights field layout.c binds it to. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda_plan/cuda_plan.h"

/* vp_cw_field_is_vision: the vision tower's and the projector's fields come first */
_Static_assert(VP_CW_P2_B + 1 == VP_CW_TOK_EMB && VP_CW_CLASS_EMB == 0,
               "the vision and projector fields must precede the language model's");

vp_cw_type vp_cw_field_type(vp_cw_field f)
{
    switch (f) {
    case VP_CW_PATCH_W: case VP_CW_V_QKV_W: case VP_CW_V_PROJ_W: case VP_CW_V_FC1_W:
    case VP_CW_V_FC2_W: case VP_CW_P1_W: case VP_CW_P2_W: case VP_CW_TOK_EMB:
    case VP_CW_L_WQKV: case VP_CW_L_WO: case VP_CW_L_W1: case VP_CW_L_W3: case VP_CW_L_W2:
    case VP_CW_OUTPUT:
        return VP_CW_BF16;
    /* biases of products with a bf16 output */
    case VP_CW_V_QKV_B: case VP_CW_V_FC1_B: case VP_CW_P1_B:
        return VP_CW_BF16;
    default:
        return VP_CW_F32;
    }
}

size_t vp_cw_pad_cols(size_t cols)
{
    return (cols + 7) / 8 * 8;
}

/* Which field of which layer a layout slot is, by its address inside w. */
static int classify(const vp_weights *w, int vlayers, int llayers, const vp_tensor *slot,
                    vp_cw_field *field, int *layer)
{
    static const struct { size_t off; vp_cw_field f; } vit[] = {
        {offsetof(vp_vit_layer, norm1_w), VP_CW_V_NORM1_W},
        {offsetof(vp_vit_layer, norm1_b), VP_CW_V_NORM1_B},
        {offsetof(vp_vit_layer, qkv_w), VP_CW_V_QKV_W},
        {offsetof(vp_vit_layer, qkv_b), VP_CW_V_QKV_B},
        {offsetof(vp_vit_layer, q_norm_w), VP_CW_V_Q_NORM},
        {offsetof(vp_vit_layer, k_norm_w), VP_CW_V_K_NORM},
        {offsetof(vp_vit_layer, proj_w), VP_CW_V_PROJ_W},
        {offsetof(vp_vit_layer, proj_b), VP_CW_V_PROJ_B},
        {offsetof(vp_vit_layer, ls1), VP_CW_V_LS1},
        {offsetof(vp_vit_layer, ls2), VP_CW_V_LS2},
        {offsetof(vp_vit_layer, norm2_w), VP_CW_V_NORM2_W},
        {offsetof(vp_vit_layer, norm2_b), VP_CW_V_NORM2_B},
        {offsetof(vp_vit_layer, fc1_w), VP_CW_V_FC1_W},
        {offsetof(vp_vit_layer, fc1_b), VP_CW_V_FC1_B},
        {offsetof(vp_vit_layer, fc2_w), VP_CW_V_FC2_W},
        {offsetof(vp_vit_layer, fc2_b), VP_CW_V_FC2_B},
    };
    static const struct { size_t off; vp_cw_field f; } llm[] = {
        {offsetof(vp_llm_layer, attention_norm), VP_CW_L_ATTN_NORM},
        {offsetof(vp_llm_layer, wqkv), VP_CW_L_WQKV},
        {offsetof(vp_llm_layer, wo), VP_CW_L_WO},
        {offsetof(vp_llm_layer, ffn_norm), VP_CW_L_FFN_NORM},
        {offsetof(vp_llm_layer, w1), VP_CW_L_W1},
        {offsetof(vp_llm_layer, w3), VP_CW_L_W3},
        {offsetof(vp_llm_layer, w2), VP_CW_L_W2},
    };
    const struct { const vp_tensor *t; vp_cw_field f; } top[] = {
        {&w->class_embedding, VP_CW_CLASS_EMB}, {&w->patch_w, VP_CW_PATCH_W},
        {&w->patch_b, VP_CW_PATCH_B}, {&w->pos_embedding, VP_CW_POS_EMB},
        {&w->proj_norm_w, VP_CW_PN_W}, {&w->proj_norm_b, VP_CW_PN_B},
        {&w->proj1_w, VP_CW_P1_W}, {&w->proj1_b, VP_CW_P1_B}, {&w->proj2_w, VP_CW_P2_W},
        {&w->proj2_b, VP_CW_P2_B}, {&w->tok_embeddings, VP_CW_TOK_EMB},
        {&w->norm, VP_CW_NORM}, {&w->output, VP_CW_OUTPUT},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (slot == top[i].t) {
            *field = top[i].f;
            *layer = -1;
            return 0;
        }
    const char *p = (const char *)slot;
    const char *v0 = (const char *)w->vit, *l0 = (const char *)w->llm;
    if (vlayers > 0 && p >= v0 && p < v0 + (size_t)vlayers * sizeof(vp_vit_layer)) {
        size_t d = (size_t)(p - v0);
        for (size_t i = 0; i < sizeof vit / sizeof vit[0]; i++)
            if (d % sizeof(vp_vit_layer) == vit[i].off) {
                *field = vit[i].f;
                *layer = (int)(d / sizeof(vp_vit_layer));
                return 0;
            }
    }
    if (llayers > 0 && p >= l0 && p < l0 + (size_t)llayers * sizeof(vp_llm_layer)) {
        size_t d = (size_t)(p - l0);
        for (size_t i = 0; i < sizeof llm / sizeof llm[0]; i++)
            if (d % sizeof(vp_llm_layer) == llm[i].off) {
                *field = llm[i].f;
                *layer = (int)(d / sizeof(vp_llm_layer));
                return 0;
            }
    }
    return -1;
}

static size_t align_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

/* Bytes of one entry on the device; 0 with *ok false on overflow. */
static size_t entry_bytes(const vp_cw_entry *e, bool *ok)
{
    size_t es = e->type == VP_CW_BF16 ? 2 : 4, n;
    if (__builtin_mul_overflow(e->rows, e->pitch, &n) || __builtin_mul_overflow(n, es, &n)) {
        *ok = false;
        return 0;
    }
    return n;
}

int vp_cw_plan_build(const vp_model_config *cfg, vp_cw_plan *p, vp_error *err)
{
    memset(p, 0, sizeof *p);
    int vl = cfg->vision.layers, ll = cfg->llm.layers;
    vp_weights w = {0};
    w.vit = calloc(vl > 0 ? (size_t)vl : 1, sizeof *w.vit);
    w.llm = calloc(ll > 0 ? (size_t)ll : 1, sizeof *w.llm);
    vp_layout_entry *list = NULL;
    size_t n = 0;
    int rc = 0;
    if (!w.vit || !w.llm) {
        rc = vp_fail(err, VP_ERR_NOMEM, "", "out of memory planning the device weights");
        goto done;
    }
    if (vp_layout_build(cfg, &w, &list, &n, err)) {
        rc = -1;
        goto done;
    }
    p->e = calloc(n ? n : 1, sizeof *p->e);
    if (!p->e) {
        rc = vp_fail(err, VP_ERR_NOMEM, "", "out of memory planning the device weights");
        goto done;
    }
    size_t at = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const vp_layout_entry *le = &list[i];
        vp_cw_entry *e = &p->e[i];
        snprintf(e->name, sizeof e->name, "%s", le->name);
        e->init = le->init;
        e->ndim = le->ndim;
        memcpy(e->shape, le->shape, sizeof e->shape);
        if (classify(&w, vl, ll, le->slot, &e->field, &e->layer)) {
            rc = vp_fail(err, VP_ERR_INTERNAL, le->name,
                         "tensor %s is not a field the CUDA backend knows", le->name);
            goto done;
        }
        size_t numel = vp_layout_numel(le);
        e->rows = le->ndim > 1 ? (size_t)le->shape[0] : 1;
        e->cols = e->rows ? numel / e->rows : 0;
        if (e->field == VP_CW_CLASS_EMB || e->field == VP_CW_POS_EMB) {
            /* [1, tokens, Hv]: rows of Hv */
            e->cols = (size_t)le->shape[le->ndim - 1];
            e->rows = e->cols ? numel / e->cols : 0;
        }
        e->type = vp_cw_field_type(e->field);
        e->pitch = e->field == VP_CW_PATCH_W ? vp_cw_pad_cols(e->cols) : e->cols;
        e->on_device = e->field != VP_CW_OUTPUT;
        if (!e->on_device)
            continue;
        const vp_cw_entry *w1 = i ? &p->e[i - 1] : NULL; /* w3 directly follows its w1 */
        if (e->field == VP_CW_L_W3 && w1 && w1->field == VP_CW_L_W1 && w1->layer == e->layer &&
            w1->rows == e->rows && w1->cols == e->cols) {
            e->offset = w1->offset + entry_bytes(w1, &ok); /* one [2I][H] matrix */
            at = e->offset + entry_bytes(e, &ok);
            p->device_params += numel;
            continue;
        }
        e->offset = align_up(at, VP_WS_ALIGN);
        size_t bytes = entry_bytes(e, &ok);
        if (!ok || __builtin_add_overflow(e->offset, bytes, &at)) {
            rc = vp_fail(err, VP_ERR_TOO_LARGE, le->name, "device weights overflow size_t at %s",
                         le->name);
            goto done;
        }
        p->device_params += numel;
    }
    if (!ok) {
        rc = vp_fail(err, VP_ERR_TOO_LARGE, "", "device weights overflow size_t");
        goto done;
    }
    p->n = n;
    p->arena_bytes = align_up(at, VP_WS_ALIGN);
done:
    if (rc) {
        free(p->e);
        memset(p, 0, sizeof *p);
    }
    free(list);
    free(w.vit);
    free(w.llm);
    return rc;
}

void vp_cw_plan_free(vp_cw_plan *p)
{
    free(p->e);
    memset(p, 0, sizeof *p);
}

const vp_cw_entry *vp_cw_plan_find(const vp_cw_plan *p, vp_cw_field f, int layer)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->e[i].field == f && p->e[i].layer == layer)
            return &p->e[i];
    return NULL;
}
