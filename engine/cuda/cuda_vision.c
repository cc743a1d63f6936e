/* Vision encoder (InternViT) + projector (mlp1) on the GPU, a chunk of tiles at a time
 * (MODEL.md 4-5; the CPU twin is engine/cpu/cpu_vision.c):
 *   pixels -> bf16 -> unfold -> patch matrix product (+ bias) -> class token, positions
 *   -> layers: x += ls1 * attn(norm1(x)); x += ls2 * mlp(norm2(x))
 *      (each residual add is fused into the norm that follows it)
 *   -> drop the class token -> pixel shuffle -> LayerNorm, Linear, GELU, Linear
 *   -> fp32 features of the chunk's tiles in VP_WS_FEATURES. */
#include <math.h>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cuda_model.h"

static int vit_layers(vp_backend *b, size_t tiles, vp_error *err)
{
    const vp_vision_config *v = &b->cfg.vision;
    const cuda_weights *w = &b->w;
    size_t hv = (size_t)v->hidden, iv = (size_t)v->intermediate, g = (size_t)(v->image_size / v->patch);
    size_t r = tiles * (1 + g * g);
    int rms = v->norm == VP_NORM_RMS;
    int head_dim = v->hidden / v->heads;
    float *x = cuda_ws(b, VP_WS_VX), *y = cuda_ws(b, VP_WS_VY);
    vp_bf16 *xn = cuda_ws(b, VP_WS_VXN), *qkv = cuda_ws(b, VP_WS_VQKV);
    vp_bf16 *attn = cuda_ws(b, VP_WS_VATTN), *hid = cuda_ws(b, VP_WS_VH);
    vpk_attn_layout lay = {.row_stride = 3 * hv, .heads = v->heads, .q_per_kv = 1,
                           .head_dim = head_dim, .group_stride = (size_t)head_dim, .q_base = 0,
                           .k_base = hv, .v_base = 2 * hv, .act = b->act_vision};
    float scale = (float)(1.0 / sqrt((double)head_dim));
    double r2 = 2.0 * (double)r, t1 = 1.0 + (double)(g * g);
    double attn_flops = 4.0 * (double)tiles * t1 * t1 * (double)hv;
    const float *pend = NULL, *pend_scale = NULL; /* residual of the previous block */
    for (int i = 0; i < v->layers; i++) {
        const cuda_vit_layer *L = &w->vit[i];
        cuda_prof_mark(&b->prof, b->stream, "vit.norm", 0);
        CUDA_CHECK(vpk_norm(b->stream, rms, x, r, v->hidden, pend, pend_scale, L->norm1_w,
                            L->norm1_b, v->norm_eps, xn, hv, b->act_vision));
        cuda_prof_mark(&b->prof, b->stream, "vit.qkv", r2 * (double)(3 * hv * hv));
        if (vp_gemm_run(&b->gemm_vision, b->stream, qkv, VP_GEMM_ACT16, xn, L->qkv_w, L->qkv_b, r, 3 * hv,
                        hv, hv, hv, 3 * hv, false, err))
            return -1;
        if (v->qk_norm) { /* over the full hidden width, before the heads are split */
            CUDA_CHECK(vpk_rms_norm_bf16(b->stream, qkv, r, v->hidden, 3 * hv, L->q_norm_w,
                                         v->norm_eps, b->act_vision));
            CUDA_CHECK(vpk_rms_norm_bf16(b->stream, qkv + hv, r, v->hidden, 3 * hv, L->k_norm_w,
                                         v->norm_eps, b->act_vision));
        }
        cuda_prof_mark(&b->prof, b->stream, "vit.attention", attn_flops);
        if (b->vision_wgmma) {
            CUDA_CHECK(vpk_attention_vt(b->stream, cuda_ws(b, VP_WS_VVT), qkv, &lay, r));
            CUDA_CHECK(vpk_attention_wgmma(b->stream, attn, hv, qkv, cuda_ws(b, VP_WS_VVT), r, &lay,
                                           b->vision_wgmma, cuda_ws(b, VP_WS_VITEMS),
                                           vp_attn_tile_items(tiles, 1 + g * g, VP_ATTN_BQ), scale));
        } else if (b->fast_vision)
            CUDA_CHECK(vpk_attention_fast(b->stream, attn, hv, qkv, &lay, &b->vision_shape, cuda_ws(b, VP_WS_VITEMS),
                                          vp_attn_tile_items(tiles, 1 + g * g, VP_ATTN_BQ), scale));
        else
            CUDA_CHECK(vpk_attention_simple(b->stream, attn, hv, qkv, &lay,
                                            cuda_ws(b, VP_WS_VRANGES), r, scale));
        cuda_prof_mark(&b->prof, b->stream, "vit.proj", r2 * (double)(hv * hv));
        if (vp_gemm_run(&b->gemm_vision, b->stream, y, VP_GEMM_F32, attn, L->proj_w, L->proj_b, r, hv, hv,
                        hv, hv, hv, false, err))
            return -1;
        cuda_prof_mark(&b->prof, b->stream, "vit.norm", 0);
        CUDA_CHECK(vpk_norm(b->stream, rms, x, r, v->hidden, y, L->ls1, L->norm2_w, L->norm2_b,
                            v->norm_eps, xn, hv, b->act_vision));
        cuda_prof_mark(&b->prof, b->stream, "vit.fc1", r2 * (double)(hv * iv));
        if (vp_gemm_run(&b->gemm_vision, b->stream, hid, VP_GEMM_ACT16, xn, L->fc1_w, L->fc1_b, r, iv, hv,
                        hv, hv, iv, false, err))
            return -1;
        cuda_prof_mark(&b->prof, b->stream, "vit.gelu", 0);
        CUDA_CHECK(vpk_gelu(b->stream, hid, r * iv, b->act_vision));
        cuda_prof_mark(&b->prof, b->stream, "vit.fc2", r2 * (double)(hv * iv));
        if (vp_gemm_run(&b->gemm_vision, b->stream, y, VP_GEMM_F32, hid, L->fc2_w, L->fc2_b, r, hv, iv, iv,
                        iv, hv, false, err))
            return -1;
        pend = y;
        pend_scale = L->ls2;
    }
    if (pend) /* the last block's residual, with no norm after it */
        CUDA_CHECK(vpk_norm(b->stream, rms, x, r, v->hidden, pend, pend_scale, NULL, NULL, 0.0f,
                            NULL, 0, b->act_vision));
    return 0;
}

/* tiles [first, first + count) of the batch, already in VP_WS_TILES (8-bit when u8). */
static int encode_chunk(vp_backend *b, size_t first, size_t count, bool u8, vp_error *err)
{
    const vp_vision_config *v = &b->cfg.vision;
    const cuda_weights *w = &b->w;
    size_t hv = (size_t)v->hidden, g = (size_t)(v->image_size / v->patch);
    const vp_cw_entry *pe = vp_cw_plan_find(&b->plan, VP_CW_PATCH_W, -1);
    size_t kpad = pe->pitch;
    vp_bf16 *patches = cuda_ws(b, VP_WS_PATCHES);
    float *x = cuda_ws(b, VP_WS_VX), *y = cuda_ws(b, VP_WS_VY);
    cuda_prof_mark(&b->prof, b->stream, "vit.patch", 0);
    if (u8)
        CUDA_CHECK(vpk_im2col_u8(b->stream, patches, cuda_ws(b, VP_WS_TILES), b->norm_table,
                                 count, v->image_size, v->patch, kpad, b->act_vision));
    else
        CUDA_CHECK(vpk_im2col(b->stream, patches, cuda_ws(b, VP_WS_TILES), count, v->channels,
                              v->image_size, v->patch, kpad, b->act_vision));
    if (vp_gemm_run(&b->gemm_vision, b->stream, y, VP_GEMM_F32, patches, w->patch_w, w->patch_b,
                    count * g * g, hv, kpad, kpad, kpad, hv, false, err))
        return -1;
    CUDA_CHECK(vpk_vit_assemble(b->stream, x, y, w->class_emb, w->pos_emb, count, g * g, v->hidden));
    if (vit_layers(b, count, err))
        return -1;
    /* projector */
    size_t t = (size_t)b->cfg.num_image_token, cp = 4 * hv, h = (size_t)b->cfg.llm.hidden;
    size_t rows = count * t;
    float *shuf = cuda_ws(b, VP_WS_SHUF);
    vp_bf16 *pn = cuda_ws(b, VP_WS_PN), *p1 = cuda_ws(b, VP_WS_P1);
    float *features = (float *)cuda_ws(b, VP_WS_FEATURES) + first * t * h;
    cuda_prof_mark(&b->prof, b->stream, "vit.projector", 2.0 * (double)rows * (double)(cp * h + h * h));
    CUDA_CHECK(vpk_pixel_shuffle(b->stream, shuf, x, count, 1 + g * g, g, v->hidden));
    CUDA_CHECK(vpk_norm(b->stream, 0, shuf, rows, (int)cp, NULL, NULL, w->pn_w, w->pn_b, 1e-5f, pn,
                        cp, b->act_vision));
    if (vp_gemm_run(&b->gemm_vision, b->stream, p1, VP_GEMM_ACT16, pn, w->p1_w, w->p1_b, rows, h, cp, cp, cp,
                    h, false, err))
        return -1;
    CUDA_CHECK(vpk_gelu(b->stream, p1, rows * h, b->act_vision));
    return vp_gemm_run(&b->gemm_vision, b->stream, features, VP_GEMM_F32, p1, w->p2_w, w->p2_b, rows, h,
                       h, h, h, h, false, err);
}

/* 8-bit tiles [first, first + count) into VP_WS_TILES, one copy per run of tiles that
 * follow each other in host memory (a request's tiles do). Pageable sources: each copy
 * has finished reading when it returns. */
static int upload_u8(vp_backend *b, const uint8_t *const *tiles, size_t first, size_t count,
                     size_t tile_bytes, vp_error *err)
{
    unsigned char *dst = cuda_ws(b, VP_WS_TILES);
    for (size_t k = 0; k < count;) {
        size_t run = 1;
        uintptr_t at = (uintptr_t)tiles[first + k];
        while (k + run < count && (uintptr_t)tiles[first + k + run] == at + run * tile_bytes)
            run++;
        CUDA_CHECK(cudaMemcpyAsync(dst + k * tile_bytes, tiles[first + k], run * tile_bytes,
                                   cudaMemcpyHostToDevice, b->stream));
        k += run;
    }
    return 0;
}

int cuda_vision_forward(vp_backend *b, const float *tiles, const uint8_t *const *tiles_u8,
                        size_t n_tiles, vp_error *err)
{
    const vp_vision_config *v = &b->cfg.vision;
    size_t plane = (size_t)v->image_size * (size_t)v->image_size;
    size_t tile_floats = (size_t)v->channels * plane;
    bool u8 = !tiles;
    if (u8 && v->channels != 3)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tiles",
                       "8-bit tiles are RGB but the vision encoder takes %d channels", v->channels);
    for (size_t first = 0; first < n_tiles; first += b->ws.vision_chunk) {
        size_t count = n_tiles - first < b->ws.vision_chunk ? n_tiles - first : b->ws.vision_chunk;
        cuda_prof_mark(&b->prof, b->stream, "vit.upload", 0);
        if (u8) { /* a quarter of the float tiles' bytes, normalised by im2col */
            if (upload_u8(b, tiles_u8, first, count, 3 * plane, err))
                return -1;
        } else { /* pageable source: the copy has finished reading `tiles` when it returns */
            CUDA_CHECK(cudaMemcpyAsync(cuda_ws(b, VP_WS_TILES), tiles + first * tile_floats,
                                       count * tile_floats * sizeof(float),
                                       cudaMemcpyHostToDevice, b->stream));
        }
        if (encode_chunk(b, first, count, u8, err))
            return -1;
    }
    return 0;
}
