/* Language model (InternLM2, MODEL.md 6) over one packed batch:
 *   x = token embedding, or image feature row for image tokens
 *   per layer: h = x + wo(attn(rope(q), rope(k), v)) on attention_norm(x)
 *              x = h + w2(silu(w1 y) * w3 y), y = ffn_norm(h)
 *   final RMSNorm, then the "+" and "-" rows of the LM head at the output tokens.
 * The last layer computes keys and values for every token but its queries, wo, MLP and
 * the final norm only for the output tokens: every op after the last layer's keys and
 * values works row by row (and the products do not depend on which rows are in the
 * batch, ops_matmul.c), so this changes no value. */
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_model.h"
#include "engine/cpu/cpu_ops.h"

/* Working memory for n tokens. Q = heads*head_dim, KV = kv_heads*head_dim. */
typedef struct llm_state {
    float *x;        /* [n][H] residual stream */
    float *xn;       /* [n][H] normalised input of a block */
    float *qkv;      /* [n][Q + 2*KV] packed per KV group */
    float *q;        /* [n][heads][head_dim] */
    float *k, *v;    /* [n + cached rows][kv_heads][head_dim] */
    float *attn;     /* [n][Q] */
    float *out;      /* [n][H] block output */
    float *gate, *up;/* [n][I] */
    float *rope_cos, *rope_sin; /* [n][head_dim/2] per token */
} llm_state;

static void llm_state_free(llm_state *s)
{
    float **all[] = {&s->x, &s->xn, &s->qkv, &s->q, &s->k, &s->v, &s->attn, &s->out,
                     &s->gate, &s->up, &s->rope_cos, &s->rope_sin};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
}

static int llm_state_alloc(llm_state *s, const vp_llm_config *l, size_t n, size_t n_kv,
                           vp_error *err)
{
    size_t h = (size_t)l->hidden, hd = (size_t)l->head_dim, im = (size_t)l->intermediate;
    size_t q = (size_t)l->heads * hd, kv = (size_t)l->kv_heads * hd;
    *s = (llm_state){0};
    if (!(s->x = cpu_alloc(n * h, sizeof(float), "language hidden states", err)) ||
        !(s->xn = cpu_alloc(n * h, sizeof(float), "language normalised states", err)) ||
        !(s->qkv = cpu_alloc(n * (q + 2 * kv), sizeof(float), "language qkv", err)) ||
        !(s->q = cpu_alloc(n * q, sizeof(float), "language q", err)) ||
        !(s->k = cpu_alloc(n_kv * kv, sizeof(float), "language k", err)) ||
        !(s->v = cpu_alloc(n_kv * kv, sizeof(float), "language v", err)) ||
        !(s->attn = cpu_alloc(n * q, sizeof(float), "language attention", err)) ||
        !(s->out = cpu_alloc(n * h, sizeof(float), "language block output", err)) ||
        !(s->gate = cpu_alloc(n * im, sizeof(float), "language mlp gate", err)) ||
        !(s->up = cpu_alloc(n * im, sizeof(float), "language mlp up", err)) ||
        !(s->rope_cos = cpu_alloc(n * hd / 2, sizeof(float), "rope cos table", err)) ||
        !(s->rope_sin = cpu_alloc(n * hd / 2, sizeof(float), "rope sin table", err))) {
        llm_state_free(s);
        return -1;
    }
    return 0;
}

/* Row `row` of a [rows][dim] model tensor, converted to fp32. */
static void tensor_row(float *dst, const vp_tensor *t, size_t row, size_t dim)
{
    for (size_t d = 0; d < dim; d++)
        dst[d] = vp_tensor_get(t, row * dim + d);
}

/* RoPE base of every sequence; a sequence and its prefix must share it, since the
 * prefix's keys are rotated once for all the sequences that see them. */
static int rope_tables(vp_backend *b, const vp_batch *batch, llm_state *s, vp_error *err)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t half = (size_t)l->head_dim / 2;
    for (size_t i = batch->n_cached_seqs; i < batch->n_seqs; i++) { /* cached: no tokens */
        const vp_seq *sq = &batch->seqs[i];
        double base = vp_cpu_rope_base(l->rope_theta, l->rope_dynamic, l->rope_factor,
                                       l->max_pos, sq->rope_len, l->head_dim);
        if (sq->prefix_seq >= 0) {
            const vp_seq *p = &batch->seqs[sq->prefix_seq];
            double pbase = vp_cpu_rope_base(l->rope_theta, l->rope_dynamic, l->rope_factor,
                                            l->max_pos, p->rope_len, l->head_dim);
            if (pbase != base)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                               "sequence %zu (rope_len %zu) and its prefix sequence %d (rope_len "
                               "%zu) get different dynamic-NTK RoPE bases (max_position_embeddings "
                               "%d); such a prefix cannot be shared",
                               i, sq->rope_len, sq->prefix_seq, p->rope_len, l->max_pos);
        }
        for (size_t t = sq->start; t < sq->start + sq->len; t++)
            vp_cpu_rope_table(s->rope_cos + t * half, s->rope_sin + t * half,
                              batch->positions[t], base, l->head_dim);
    }
    return 0;
}

/* qkv row [kv_heads][q_per_kv + 2][head_dim] -> q, k, v rows, then RoPE on q and k. */
static void split_qkv_rope(const vp_llm_config *l, llm_state *s, size_t n)
{
    size_t hd = (size_t)l->head_dim, kvh = (size_t)l->kv_heads;
    size_t qpk = (size_t)(l->heads / l->kv_heads), row = ((size_t)l->heads + 2 * kvh) * hd;
    size_t half = hd / 2;
    for (size_t t = 0; t < n; t++) {
        const float *src = s->qkv + t * row;
        float *q = s->q + t * (size_t)l->heads * hd, *k = s->k + t * kvh * hd,
              *v = s->v + t * kvh * hd;
        for (size_t g = 0; g < kvh; g++) {
            const float *grp = src + g * (qpk + 2) * hd;
            memcpy(q + g * qpk * hd, grp, qpk * hd * sizeof(float));
            memcpy(k + g * hd, grp + qpk * hd, hd * sizeof(float));
            memcpy(v + g * hd, grp + (qpk + 1) * hd, hd * sizeof(float));
        }
        vp_cpu_rope_apply(q, (size_t)l->heads, l->head_dim, s->rope_cos + t * half,
                          s->rope_sin + t * half);
        vp_cpu_rope_apply(k, kvh, l->head_dim, s->rope_cos + t * half, s->rope_sin + t * half);
    }
}

/* The prefix KV cache at one layer: cached rows' keys and values in, then the rows to
 * keep out (loads first, so a pass may refill the rows it reads). */
static void kv_cache_copy(vp_backend *b, int layer, const vp_batch *batch, llm_state *s)
{
    if (!b->kv_cache) /* no prefix cache: the pass has no loads or stores */
        return;
    size_t row = cpu_kv_row_floats(b), kv = row / 2;
    float *cache = b->kv_cache + (size_t)layer * b->kv_rows * row;
    for (size_t i = 0; i < batch->n_kv_loads; i++) {
        const vp_kv_copy *c = &batch->kv_loads[i];
        for (size_t r = 0; r < c->len; r++) {
            const float *src = cache + (c->slot + r) * row;
            memcpy(s->k + (c->row + r) * kv, src, kv * sizeof(float));
            memcpy(s->v + (c->row + r) * kv, src + kv, kv * sizeof(float));
        }
    }
    for (size_t i = 0; i < batch->n_kv_stores; i++) {
        const vp_kv_copy *c = &batch->kv_stores[i];
        for (size_t r = 0; r < c->len; r++) {
            float *dst = cache + (c->slot + r) * row;
            memcpy(dst, s->k + (c->row + r) * kv, kv * sizeof(float));
            memcpy(dst + kv, s->v + (c->row + r) * kv, kv * sizeof(float));
        }
    }
}

static void add_rows(float *x, const float *y, size_t count)
{
    for (size_t i = 0; i < count; i++)
        x[i] += y[i];
}

/* h = x + wo(attn(attention_norm(x))), in place in s->x over all n tokens; or, when xo
 * is given (the last layer), only for the output rows: xo[n_out] = h at out_index (every
 * token still gives its keys and values). */
static int attention_block(vp_backend *b, int layer, const vp_batch *batch, llm_state *s,
                           float *xo, vp_error *err)
{
    const cpu_llm_layer *L = &b->w.llm[layer];
    const vp_llm_config *l = &b->cfg.llm;
    size_t n = batch->n_tokens, h = (size_t)l->hidden, hd = (size_t)l->head_dim;
    size_t q = (size_t)l->heads * hd, kv = (size_t)l->kv_heads * hd;
    vp_cpu_rms_norm(s->xn, s->x, L->attention_norm, n, h, l->rms_eps);
    vp_cpu_matmul(b->pool, s->qkv, s->xn, L->wqkv, NULL, n, h, q + 2 * kv);
    split_qkv_rope(l, s, n);
    kv_cache_copy(b, layer, batch, s);
    const int32_t *rows = xo ? batch->out_index : NULL;
    size_t n_rows = xo ? batch->n_out : n;
    if (vp_cpu_attention_causal_rows(b->pool, s->attn, s->q, s->k, s->v, n, rows, n_rows,
                                     l->heads, l->kv_heads, l->head_dim, batch->seqs,
                                     batch->n_seqs, err) != 0)
        return -1;
    vp_cpu_matmul(b->pool, s->out, s->attn, L->wo, NULL, n_rows, q, h);
    if (!xo) {
        add_rows(s->x, s->out, n * h);
        return 0;
    }
    for (size_t i = 0; i < n_rows; i++)
        for (size_t d = 0; d < h; d++)
            xo[i * h + d] = s->x[(size_t)rows[i] * h + d] + s->out[i * h + d];
    return 0;
}

/* x = h + w2(silu(w1 y) * w3 y), y = ffn_norm(h), on rows x[n][H]. */
static void mlp_block(vp_backend *b, const cpu_llm_layer *L, float *x, size_t n, llm_state *s)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t h = (size_t)l->hidden, im = (size_t)l->intermediate;
    vp_cpu_rms_norm(s->xn, x, L->ffn_norm, n, h, l->rms_eps);
    vp_cpu_matmul(b->pool, s->gate, s->xn, L->w1, NULL, n, h, im);
    vp_cpu_matmul(b->pool, s->up, s->xn, L->w3, NULL, n, h, im);
    vp_cpu_silu_gate(s->gate, s->up, n * im);
    vp_cpu_matmul(b->pool, s->out, s->gate, L->w2, NULL, n, im, h);
    add_rows(x, s->out, n * h);
}

static void embed(vp_backend *b, const vp_batch *batch, const float *features, float *x)
{
    size_t h = (size_t)b->cfg.llm.hidden;
    for (size_t t = 0; t < batch->n_tokens; t++) {
        int32_t r = batch->image_row ? batch->image_row[t] : -1;
        if (r >= 0)
            memcpy(x + t * h, features + (size_t)r * h, h * sizeof(float));
        else
            tensor_row(x + t * h, &b->w.tok_embeddings, (size_t)batch->tokens[t], h);
    }
}

/* Final norm and the two logits at the output rows xo[n_out][H]. */
static int head(vp_backend *b, const vp_batch *batch, float *xo, float *logits, vp_error *err)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t h = (size_t)l->hidden;
    float *rows = cpu_alloc(2 * h, sizeof(float), "LM head rows", err);
    if (!rows)
        return -1;
    tensor_row(rows, &b->w.output, (size_t)batch->plus_id, h);
    tensor_row(rows + h, &b->w.output, (size_t)batch->minus_id, h);
    vp_cpu_rms_norm(xo, xo, b->w.norm, batch->n_out, h, l->rms_eps);
    for (size_t i = 0; i < batch->n_out; i++) {
        logits[2 * i] = vp_cpu_dot(xo + i * h, rows, h);
        logits[2 * i + 1] = vp_cpu_dot(xo + i * h, rows + h, h);
    }
    free(rows);
    return 0;
}

int cpu_language_forward(vp_backend *b, const vp_batch *batch, const float *features,
                         float *logits, vp_error *err)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t n = batch->n_tokens, h = (size_t)l->hidden;
    if (n == 0 || batch->n_out == 0)
        return 0;
    llm_state s; /* the last layer's MLP reuses it for the n_out output rows */
    if (llm_state_alloc(&s, l, n > batch->n_out ? n : batch->n_out, n + batch->n_cached_tokens,
                        err) != 0)
        return -1;
    float *xo = cpu_alloc(batch->n_out * h, sizeof(float), "output rows", err);
    int rc = xo ? 0 : -1;
    if (rc == 0)
        rc = rope_tables(b, batch, &s, err);
    if (rc == 0)
        embed(b, batch, features, s.x);
    for (int i = 0; i + 1 < l->layers && rc == 0; i++) {
        rc = attention_block(b, i, batch, &s, NULL, err);
        if (rc == 0)
            mlp_block(b, &b->w.llm[i], s.x, n, &s);
    }
    if (rc == 0 && l->layers > 0) { /* the last layer on the output rows */
        rc = attention_block(b, l->layers - 1, batch, &s, xo, err);
        if (rc == 0)
            mlp_block(b, &b->w.llm[l->layers - 1], xo, batch->n_out, &s);
    } else if (rc == 0) {
        for (size_t i = 0; i < batch->n_out; i++)
            memcpy(xo + i * h, s.x + (size_t)batch->out_index[i] * h, h * sizeof(float));
    }
    if (rc == 0)
        rc = head(b, batch, xo, logits, err);
    free(xo);
    llm_state_free(&s);
    return rc;
}
