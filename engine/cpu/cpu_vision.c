/* Vision encoder (InternViT) + projector (mlp1), one tile at a time (MODEL.md 4-5):
 *   pixels rounded to bf16 -> patch embedding, class token, position embedding
 *   -> layers: x += ls1 * attn(norm1(x)); x += ls2 * mlp(norm2(x))
 *   -> drop the class token -> pixel shuffle -> LayerNorm, Linear, GELU, Linear. */
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"
#include "engine/cpu/cpu_model.h"
#include "engine/cpu/cpu_ops.h"

/* Working memory for one tile. Tt = 1 + G*G tokens, T = num_image_token. */
typedef struct vit_state {
    float *pixels;   /* [channels][S][S] bf16-rounded tile */
    float *patches;  /* [G*G][channels*P*P] unfolded patches */
    float *x;        /* [Tt][Hv] residual stream */
    float *xn;       /* [Tt][Hv] normalised input of a block */
    float *qkv;      /* [Tt][3*Hv] */
    float *q, *k, *v;/* [Tt][Hv] each, as [heads][head_dim] */
    float *attn;     /* [Tt][Hv] */
    float *out;      /* [Tt][Hv] block output before the layer scale */
    float *mlp;      /* [Tt][Iv] */
    float *shuffled; /* [T][4*Hv] */
    float *proj;     /* [T][H] */
} vit_state;

static void vit_state_free(vit_state *s)
{
    float **all[] = {&s->pixels, &s->patches, &s->x, &s->xn, &s->qkv, &s->q, &s->k, &s->v,
                     &s->attn, &s->out, &s->mlp, &s->shuffled, &s->proj};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
}

static int vit_state_alloc(vit_state *s, const vp_model_config *cfg, vp_error *err)
{
    const vp_vision_config *v = &cfg->vision;
    size_t hv = (size_t)v->hidden, g = (size_t)(v->image_size / v->patch);
    size_t tt = 1 + g * g, t = (size_t)cfg->num_image_token;
    size_t pix = (size_t)v->channels * (size_t)v->image_size * (size_t)v->image_size;
    size_t unf = (size_t)v->channels * (size_t)v->patch * (size_t)v->patch;
    *s = (vit_state){0};
    if (!(s->pixels = cpu_alloc(pix, sizeof(float), "vision pixels", err)) ||
        !(s->patches = cpu_alloc(g * g * unf, sizeof(float), "vision patches", err)) ||
        !(s->x = cpu_alloc(tt * hv, sizeof(float), "vision hidden states", err)) ||
        !(s->xn = cpu_alloc(tt * hv, sizeof(float), "vision normalised states", err)) ||
        !(s->qkv = cpu_alloc(tt * 3 * hv, sizeof(float), "vision qkv", err)) ||
        !(s->q = cpu_alloc(tt * hv, sizeof(float), "vision q", err)) ||
        !(s->k = cpu_alloc(tt * hv, sizeof(float), "vision k", err)) ||
        !(s->v = cpu_alloc(tt * hv, sizeof(float), "vision v", err)) ||
        !(s->attn = cpu_alloc(tt * hv, sizeof(float), "vision attention", err)) ||
        !(s->out = cpu_alloc(tt * hv, sizeof(float), "vision block output", err)) ||
        !(s->mlp = cpu_alloc(tt * (size_t)v->intermediate, sizeof(float), "vision mlp", err)) ||
        !(s->shuffled = cpu_alloc(t * 4 * hv, sizeof(float), "pixel-shuffled features", err)) ||
        !(s->proj = cpu_alloc(t * (size_t)cfg->llm.hidden, sizeof(float), "projector", err))) {
        vit_state_free(s);
        return -1;
    }
    return 0;
}

static void vit_norm(const vp_vision_config *v, float *y, const float *x, const float *w,
                     const float *b, size_t n)
{
    if (v->norm == VP_NORM_LAYER)
        vp_cpu_layer_norm(y, x, w, b, n, (size_t)v->hidden, v->norm_eps);
    else
        vp_cpu_rms_norm(y, x, w, n, (size_t)v->hidden, v->norm_eps);
}

/* x[n][dim] += scale[dim] * y[n][dim] */
static void add_scaled(float *x, const float *y, const float *scale, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < dim; d++)
            x[i * dim + d] += scale[d] * y[i * dim + d];
}

static int vit_layer(vp_backend *b, const cpu_vit_layer *L, vit_state *s, size_t tt,
                     vp_error *err)
{
    const vp_vision_config *v = &b->cfg.vision;
    size_t hv = (size_t)v->hidden;
    /* attention block */
    vit_norm(v, s->xn, s->x, L->norm1_w, L->norm1_b, tt);
    vp_cpu_matmul(b->pool, s->qkv, s->xn, L->qkv_w, L->qkv_b, tt, hv, 3 * hv);
    for (size_t i = 0; i < tt; i++) { /* row = [3][heads][head_dim] */
        memcpy(s->q + i * hv, s->qkv + i * 3 * hv, hv * sizeof(float));
        memcpy(s->k + i * hv, s->qkv + i * 3 * hv + hv, hv * sizeof(float));
        memcpy(s->v + i * hv, s->qkv + i * 3 * hv + 2 * hv, hv * sizeof(float));
    }
    if (v->qk_norm) { /* RMSNorm over the full hidden, before splitting heads */
        vp_cpu_rms_norm(s->q, s->q, L->q_norm_w, tt, hv, v->norm_eps);
        vp_cpu_rms_norm(s->k, s->k, L->k_norm_w, tt, hv, v->norm_eps);
    }
    if (vp_cpu_attention_tiles(b->pool, s->attn, s->q, s->k, s->v, 1, tt, v->heads,
                               v->hidden / v->heads, err) != 0)
        return -1;
    vp_cpu_matmul(b->pool, s->out, s->attn, L->proj_w, L->proj_b, tt, hv, hv);
    add_scaled(s->x, s->out, L->ls1, tt, hv);
    /* MLP block */
    size_t iv = (size_t)v->intermediate;
    vit_norm(v, s->xn, s->x, L->norm2_w, L->norm2_b, tt);
    vp_cpu_matmul(b->pool, s->mlp, s->xn, L->fc1_w, L->fc1_b, tt, hv, iv);
    vp_cpu_gelu(s->mlp, tt * iv);
    vp_cpu_matmul(b->pool, s->out, s->mlp, L->fc2_w, L->fc2_b, tt, iv, hv);
    add_scaled(s->x, s->out, L->ls2, tt, hv);
    return 0;
}

/* One tile -> features[T][H]. */
static int encode_tile(vp_backend *b, vit_state *s, const float *tile, float *features,
                       vp_error *err)
{
    const vp_vision_config *v = &b->cfg.vision;
    const cpu_weights *w = &b->w;
    size_t hv = (size_t)v->hidden, g = (size_t)(v->image_size / v->patch), tt = 1 + g * g;
    size_t npix = (size_t)v->channels * (size_t)v->image_size * (size_t)v->image_size;
    /* The reference casts pixel values to bf16 before the encoder. */
    for (size_t i = 0; i < npix; i++)
        s->pixels[i] = vp_bf16_to_f32(vp_f32_to_bf16(tile[i]));
    vp_cpu_patch_embed(b->pool, s->x + hv, s->patches, s->pixels, w->patch_w, w->patch_b,
                       v->channels, v->image_size, v->patch, v->hidden);
    memcpy(s->x, w->class_embedding, hv * sizeof(float));
    for (size_t i = 0; i < tt * hv; i++)
        s->x[i] += w->pos_embedding[i];
    for (int l = 0; l < v->layers; l++)
        if (vit_layer(b, &w->vit[l], s, tt, err) != 0)
            return -1;
    /* drop the class token; the rest is the G x G grid */
    size_t t = (size_t)b->cfg.num_image_token, cp = 4 * hv, h = (size_t)b->cfg.llm.hidden;
    vp_cpu_pixel_shuffle(s->shuffled, s->x + hv, g, hv);
    vp_cpu_layer_norm(s->shuffled, s->shuffled, w->proj_norm_w, w->proj_norm_b, t, cp, 1e-5f);
    vp_cpu_matmul(b->pool, s->proj, s->shuffled, w->proj1_w, w->proj1_b, t, cp, h);
    vp_cpu_gelu(s->proj, t * h);
    vp_cpu_matmul(b->pool, features, s->proj, w->proj2_w, w->proj2_b, t, h, h);
    return 0;
}

int vp_cpu_vision(vp_backend *b, const float *tiles, size_t n_tiles, float *features,
                  vp_error *err)
{
    if (n_tiles == 0)
        return 0;
    const vp_vision_config *v = &b->cfg.vision;
    size_t tile_floats = (size_t)v->channels * (size_t)v->image_size * (size_t)v->image_size;
    size_t feat_floats = (size_t)b->cfg.num_image_token * (size_t)b->cfg.llm.hidden;
    vit_state s;
    if (vit_state_alloc(&s, &b->cfg, err) != 0)
        return -1;
    int rc = 0;
    for (size_t t = 0; t < n_tiles && rc == 0; t++)
        rc = encode_tile(b, &s, tiles + t * tile_floats, features + t * feat_floats, err);
    vit_state_free(&s);
    return rc;
}
