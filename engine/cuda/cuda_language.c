/* Language model (InternLM2, MODEL.md 6) on the GPU over one packed batch (the CPU twin
 * is engine/cpu/cpu_language.c):
 *   x = token embedding, or the image feature row for image tokens (fp32)
 *   per layer: x += wo(attn(rope(q), rope(k), v)) on attention_norm(x)
 *              x += w2(silu(w1 y) * w3 y), y = ffn_norm(x)   (w1 | w3 one product, its
 *              output fp32 with bf16 activations, fp16 with fp16 ones; or, on Hopper
 *              (VPRM_CUDA_MLP), one kernel that applies the SiLU-gate to its sums)
 *   the residual adds are the products' epilogue (beta = 1 into the fp32 x)
 *   prefix KV cache: after RoPE, cached prefixes' keys and values fill the qkv rows past
 *   the tokens, and rows to keep go to the cache (vpk_kv_copy)
 *   the last layer: keys and values of every token, but its queries (fp32 attention,
 *   vpk_attention_rows), wo, MLP, the final norm and the two head rows only on the
 *   output rows (everything after the keys and values works row by row). */
#include <math.h>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cuda_model.h"

/* x[rows][H] += w2(silu(w1 y) * w3 y), y = ffn_norm(x); rows in chunks of ws.mlp_chunk. */
static int mlp(vp_backend *b, const cuda_llm_layer *L, float *x, size_t rows, vp_error *err)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t h = (size_t)l->hidden, im = (size_t)l->intermediate;
    vp_bf16 *xn = cuda_ws(b, VP_WS_XN), *hid = cuda_ws(b, VP_WS_H);
    /* gate | up in fp32 with bf16 activations (rounded only as their product), in fp16
     * with fp16 ones (whose rounding of each is eight times finer than bf16's) */
    void *gu = cuda_ws(b, VP_WS_GU);
    bool gu16 = b->act == VPK_ACT_F16;
    cuda_prof_mark(&b->prof, b->stream, "llm.norm", 0);
    CUDA_CHECK(vpk_norm(b->stream, 1, x, rows, l->hidden, NULL, NULL, L->ffn_norm, NULL, l->rms_eps,
                        xn, h, b->act));
    for (size_t r0 = 0; r0 < rows; r0 += b->ws.mlp_chunk) {
        size_t rc = rows - r0 < b->ws.mlp_chunk ? rows - r0 : b->ws.mlp_chunk;
        if (b->gated_mlp) { /* w1 | w3 and the SiLU-gate in one kernel (k_mlp_gated.cu) */
            cuda_prof_mark(&b->prof, b->stream, "llm.w13+silu",
                           2.0 * (double)rc * 2 * (double)(im * h));
            CUDA_CHECK(vpk_gated_mlp(b->stream, hid, xn + r0 * h, L->w13, rc, im, h, b->act,
                                     b->gated_mlp == 2));
        } else {
            cuda_prof_mark(&b->prof, b->stream, "llm.w13", 2.0 * (double)rc * 2 * (double)(im * h));
            if (vp_gemm_run(&b->gemm, b->stream, gu, gu16 ? VP_GEMM_ACT16 : VP_GEMM_F32, xn + r0 * h,
                            L->w13, NULL, rc, 2 * im, h, h, h, 2 * im, false, err))
                return -1;
            cuda_prof_mark(&b->prof, b->stream, "llm.silu", 0);
            if (gu16)
                CUDA_CHECK(vpk_silu_gate16(b->stream, hid, gu, rc, im, b->act));
            else
                CUDA_CHECK(vpk_silu_gate(b->stream, hid, gu, rc, im, b->act));
        }
        cuda_prof_mark(&b->prof, b->stream, "llm.w2", 2.0 * (double)rc * (double)(im * h));
        if (vp_gemm_run(&b->gemm, b->stream, x + r0 * h, VP_GEMM_F32, hid, L->w2, NULL, rc, h, im,
                        im, im, h, true, err))
            return -1;
    }
    return 0;
}

int cuda_language_forward(vp_backend *b, const vp_batch *batch, size_t n_items, vp_error *err)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t n = batch->n_tokens, h = (size_t)l->hidden, hd = (size_t)l->head_dim;
    size_t n_kv = n + batch->n_cached_tokens; /* key rows: the tokens, then cached ones */
    size_t kv_row = 2 * (size_t)l->kv_heads * hd; /* one layer's cache row */
    size_t qpk = (size_t)(l->heads / l->kv_heads), q = (size_t)l->heads * hd;
    size_t row = q + 2 * (size_t)l->kv_heads * hd;
    float *x = cuda_ws(b, VP_WS_X), *xo = cuda_ws(b, VP_WS_XO);
    vp_bf16 *xn = cuda_ws(b, VP_WS_XN), *qkv = cuda_ws(b, VP_WS_QKV), *attn = cuda_ws(b, VP_WS_ATTN);
    vpk_attn_layout lay = {.row_stride = row, .heads = l->heads, .q_per_kv = (int)qpk,
                           .head_dim = l->head_dim, .group_stride = (qpk + 2) * hd, .q_base = 0,
                           .k_base = qpk * hd, .v_base = (qpk + 1) * hd, .act = b->act};
    float scale = (float)(1.0 / sqrt((double)l->head_dim));
    double n2 = 2.0 * (double)n;
    cuda_prof_mark(&b->prof, b->stream, "llm.embed", 0);
    CUDA_CHECK(vpk_embed(b->stream, x, cuda_ws(b, VP_WS_TOKENS),
                         batch->image_row ? cuda_ws(b, VP_WS_IMAGE_ROW) : NULL, n, l->hidden,
                         b->w.tok_emb, cuda_ws(b, VP_WS_FEATURES)));
    for (int i = 0; i < l->layers; i++) {
        const cuda_llm_layer *L = &b->w.llm[i];
        bool last = i + 1 == l->layers;
        cuda_prof_mark(&b->prof, b->stream, "llm.norm", 0);
        CUDA_CHECK(vpk_norm(b->stream, 1, x, n, l->hidden, NULL, NULL, L->attention_norm, NULL,
                            l->rms_eps, xn, h, b->act));
        cuda_prof_mark(&b->prof, b->stream, "llm.wqkv", n2 * (double)(h * row));
        if (vp_gemm_run(&b->gemm, b->stream, qkv, VP_GEMM_ACT16, xn, L->wqkv, NULL, n, row, h, h,
                        h, row, false, err))
            return -1;
        cuda_prof_mark(&b->prof, b->stream, "llm.rope", 0);
        CUDA_CHECK(vpk_rope_qkv(b->stream, qkv, n, row, l->kv_heads, (int)qpk, l->head_dim,
                                b->rope_base, b->base_rows, cuda_ws(b, VP_WS_ROPE_EXTRA),
                                cuda_ws(b, VP_WS_ROPE_ROW), b->act));
        if (b->n_kv_map) {
            cuda_prof_mark(&b->prof, b->stream, "llm.kv_cache", 0);
            CUDA_CHECK(vpk_kv_copy(b->stream, qkv, &lay, b->kv_cache + (size_t)i * b->kv_rows * kv_row,
                                   cuda_ws(b, VP_WS_KV_MAP), b->n_kv_loads, b->n_kv_map));
        }
        if (last)
            break; /* its attention below, on the output rows */
        cuda_prof_mark(&b->prof, b->stream, "llm.attention", b->attn_flops_layer);
        if (b->language_wgmma) {
            CUDA_CHECK(vpk_attention_vt(b->stream, cuda_ws(b, VP_WS_VT), qkv, &lay, n_kv));
            CUDA_CHECK(vpk_attention_wgmma(b->stream, attn, q, qkv, cuda_ws(b, VP_WS_VT), n_kv, &lay,
                                           b->language_wgmma, cuda_ws(b, VP_WS_ITEMS), n_items,
                                           scale));
        } else if (b->fast_language)
            CUDA_CHECK(vpk_attention_fast(b->stream, attn, q, qkv, &lay, &b->language_shape, cuda_ws(b, VP_WS_ITEMS),
                                          n_items, scale));
        else
            CUDA_CHECK(vpk_attention_simple(b->stream, attn, q, qkv, &lay,
                                            cuda_ws(b, VP_WS_RANGES), n, scale));
        cuda_prof_mark(&b->prof, b->stream, "llm.wo", n2 * (double)(q * h));
        if (vp_gemm_run(&b->gemm, b->stream, x, VP_GEMM_F32, attn, L->wo, NULL, n, h, q, q, q, h,
                        true, err))
            return -1;
        if (mlp(b, L, x, n, err))
            return -1;
    }
    /* the output rows' residual; then, after the last layer's keys and values, only they */
    size_t n_out = batch->n_out;
    cuda_prof_mark(&b->prof, b->stream, "llm.outputs", 0);
    CUDA_CHECK(vpk_gather_rows(b->stream, xo, x, cuda_ws(b, VP_WS_OUT_INDEX), n_out, l->hidden));
    if (l->layers > 0) {
        const cuda_llm_layer *L = &b->w.llm[l->layers - 1];
        cuda_prof_mark(&b->prof, b->stream, "llm.attention_rows", b->attn_flops_rows);
        CUDA_CHECK(vpk_attention_rows(b->stream, attn, q, qkv, &lay, cuda_ws(b, VP_WS_RANGES),
                                      cuda_ws(b, VP_WS_OUT_INDEX), n_out, scale));
        cuda_prof_mark(&b->prof, b->stream, "llm.wo", 2.0 * (double)n_out * (double)(q * h));
        if (vp_gemm_run(&b->gemm, b->stream, xo, VP_GEMM_F32, attn, L->wo, NULL, n_out, h, q, q,
                        q, h, true, err) ||
            mlp(b, L, xo, n_out, err))
            return -1;
    }
    CUDA_CHECK(vpk_head(b->stream, cuda_ws(b, VP_WS_LOGITS), xo, batch->n_out, l->hidden, b->w.norm,
                        l->rms_eps, cuda_ws(b, VP_WS_HEAD)));
    return 0;
}
