/* The CUDA backend's working memory: one allocation, sized once at init for the largest
 * batch (max_tokens packed tokens, max_tiles tiles). Three regions:
 *   persistent  inputs, image features, outputs, work lists, the cuBLASLt workspace;
 *   vision      scratch of one chunk of tiles (the encoder runs chunk by chunk);
 *   language    scratch of the language model.
 * The vision and language regions start at the same offset: the encoder has finished
 * (its output is in the persistent features) before the language model starts. */
#include <string.h>

#include "engine/cuda_plan/cuda_plan.h"

static const char *const ws_names[VP_WS_COUNT] = {
    [VP_WS_FEATURES] = "image features", [VP_WS_LOGITS] = "logits",
    [VP_WS_TOKENS] = "token ids", [VP_WS_IMAGE_ROW] = "image rows",
    [VP_WS_ROPE_ROW] = "rope rows", [VP_WS_OUT_INDEX] = "output indices",
    [VP_WS_ITEMS] = "attention items", [VP_WS_VITEMS] = "vision attention items",
    [VP_WS_RANGES] = "attention ranges", [VP_WS_VRANGES] = "vision attention ranges",
    [VP_WS_ROPE_EXTRA] = "per-batch rope rows", [VP_WS_HEAD] = "LM head rows", [VP_WS_KV_MAP] = "KV cache copies",
    [VP_WS_GEMM] = "cuBLASLt workspace", [VP_WS_TILES] = "tiles",
    [VP_WS_PATCHES] = "unfolded patches", [VP_WS_VX] = "vision residual",
    [VP_WS_VY] = "vision block output", [VP_WS_VXN] = "vision normalised",
    [VP_WS_VQKV] = "vision qkv", [VP_WS_VATTN] = "vision attention",
    [VP_WS_VH] = "vision mlp", [VP_WS_VVT] = "vision values transposed",
    [VP_WS_VT] = "values transposed", [VP_WS_SHUF] = "pixel-shuffled", [VP_WS_PN] = "projector input",
    [VP_WS_P1] = "projector hidden", [VP_WS_X] = "residual", [VP_WS_XN] = "normalised",
    [VP_WS_QKV] = "qkv", [VP_WS_ATTN] = "attention", [VP_WS_GU] = "mlp gate|up",
    [VP_WS_H] = "mlp hidden", [VP_WS_XO] = "output rows",
};

const char *vp_ws_name(vp_ws_id id)
{
    return id < VP_WS_COUNT ? ws_names[id] : "?";
}

/* a * b * c * d, false on overflow. */
static bool mul4(size_t a, size_t b, size_t c, size_t d, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r) ||
        __builtin_mul_overflow(r, d, &r))
        return false;
    *out = r;
    return true;
}

typedef struct ws_need {
    vp_ws_id id;
    vp_ws_phase phase;
    size_t a, b, c, elem; /* bytes = a * b * c * elem */
} ws_need;

int vp_cuda_workspace_plan(const vp_model_config *cfg, size_t max_tokens, size_t max_tiles,
                           bool fused_mlp, vp_cuda_workspace *ws, vp_error *err)
{
    memset(ws, 0, sizeof *ws);
    if (max_tokens == 0 || max_tiles == 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "max_tokens",
                       "the CUDA backend needs max_tokens and max_tiles >= 1 (got %zu, %zu)",
                       max_tokens, max_tiles);
    const vp_vision_config *v = &cfg->vision;
    const vp_llm_config *l = &cfg->llm;
    size_t hv = (size_t)v->hidden, iv = (size_t)v->intermediate, c = (size_t)v->channels;
    size_t s = (size_t)v->image_size, g = (size_t)(v->image_size / v->patch);
    size_t tt = 1 + g * g, t = (size_t)cfg->num_image_token, cp = 4 * hv;
    size_t kpad = vp_cw_pad_cols(c * (size_t)v->patch * (size_t)v->patch);
    size_t h = (size_t)l->hidden, im = (size_t)l->intermediate, hd = (size_t)l->head_dim;
    size_t q = (size_t)l->heads * hd, kv = (size_t)l->kv_heads * hd;
    size_t n = max_tokens;
    ws->max_tokens = max_tokens;
    ws->max_tiles = max_tiles;
    ws->vision_chunk = max_tiles < VP_VISION_CHUNK_MAX ? max_tiles : VP_VISION_CHUNK_MAX;
    size_t chunk_max = fused_mlp ? VP_MLP_CHUNK_FUSED_MAX : VP_MLP_CHUNK_MAX;
    ws->mlp_chunk = max_tokens < chunk_max ? max_tokens : chunk_max;
    size_t ch = ws->vision_chunk, r = ch * tt, mc = ws->mlp_chunk;
    ws->max_items = vp_attn_causal_items_max(max_tokens, max_tokens, VP_ATTN_BQ);
    ws->max_vitems = vp_attn_tile_items(ch, tt, VP_ATTN_BQ);
    if (n > SIZE_MAX / 8 || max_tiles > SIZE_MAX / 8)
        return vp_fail(err, VP_ERR_TOO_LARGE, "max_tokens",
                       "max_tokens %zu / max_tiles %zu overflow the workspace sizes", max_tokens,
                       max_tiles);
    const ws_need needs[] = {
        {VP_WS_FEATURES, VP_WS_PERSIST, max_tiles, t, h, 4},
        {VP_WS_LOGITS, VP_WS_PERSIST, n, 2, 1, 4},
        {VP_WS_TOKENS, VP_WS_PERSIST, n, 1, 1, 4},
        {VP_WS_IMAGE_ROW, VP_WS_PERSIST, n, 1, 1, 4},
        {VP_WS_ROPE_ROW, VP_WS_PERSIST, n, 1, 1, 4},
        {VP_WS_OUT_INDEX, VP_WS_PERSIST, n, 1, 1, 4},
        {VP_WS_ITEMS, VP_WS_PERSIST, ws->max_items, sizeof(vp_attn_item), 1, 1},
        {VP_WS_VITEMS, VP_WS_PERSIST, ws->max_vitems, sizeof(vp_attn_item), 1, 1},
        {VP_WS_RANGES, VP_WS_PERSIST, n, 3, 1, 4},
        {VP_WS_VRANGES, VP_WS_PERSIST, r, 3, 1, 4},
        {VP_WS_ROPE_EXTRA, VP_WS_PERSIST, n, hd, 1, 4},
        {VP_WS_HEAD, VP_WS_PERSIST, 2, h, 1, 4},
        {VP_WS_KV_MAP, VP_WS_PERSIST, n, 2, 1, 4},
        {VP_WS_GEMM, VP_WS_PERSIST, VP_GEMM_WORKSPACE_BYTES, 1, 1, 1},
        {VP_WS_TILES, VP_WS_VISION, ch, c, s * s, 4},
        {VP_WS_PATCHES, VP_WS_VISION, ch, g * g, kpad, 2},
        {VP_WS_VX, VP_WS_VISION, r, hv, 1, 4},
        {VP_WS_VY, VP_WS_VISION, r, hv, 1, 4},
        {VP_WS_VXN, VP_WS_VISION, r, hv, 1, 2},
        {VP_WS_VQKV, VP_WS_VISION, r, 3 * hv, 1, 2},
        {VP_WS_VATTN, VP_WS_VISION, r, hv, 1, 2},
        {VP_WS_VH, VP_WS_VISION, r, iv, 1, 2},
        {VP_WS_VVT, VP_WS_VISION, vp_round8(r), hv, 1, 2},
        {VP_WS_SHUF, VP_WS_VISION, ch, t, cp, 4},
        {VP_WS_PN, VP_WS_VISION, ch, t, cp, 2},
        {VP_WS_P1, VP_WS_VISION, ch, t, h, 2},
        {VP_WS_X, VP_WS_LANGUAGE, n, h, 1, 4},
        {VP_WS_XN, VP_WS_LANGUAGE, n, h, 1, 2},
        {VP_WS_QKV, VP_WS_LANGUAGE, n, q + 2 * kv, 1, 2},
        {VP_WS_ATTN, VP_WS_LANGUAGE, n, q, 1, 2},
        {VP_WS_VT, VP_WS_LANGUAGE, vp_round8(n), kv, 1, 2},
        /* fp32, or fp16 (cuda_language.c); none when fused */
        {VP_WS_GU, VP_WS_LANGUAGE, fused_mlp ? 0 : mc, 2 * im, 1, 4},
        {VP_WS_H, VP_WS_LANGUAGE, mc, im, 1, 2},
        {VP_WS_XO, VP_WS_LANGUAGE, n, h, 1, 4},
    };
    size_t region[3] = {0, 0, 0}; /* running end of each region */
    for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++) {
        const ws_need *nd = &needs[i];
        size_t bytes, end;
        size_t at = (region[nd->phase] + VP_WS_ALIGN - 1) / VP_WS_ALIGN * VP_WS_ALIGN;
        if (!mul4(nd->a, nd->b, nd->c, nd->elem, &bytes) ||
            __builtin_add_overflow(at, bytes, &end) || end > SIZE_MAX - VP_WS_ALIGN)
            return vp_fail(err, VP_ERR_TOO_LARGE, "max_tokens",
                           "the %s buffer overflows size_t for max_tokens %zu, max_tiles %zu",
                           vp_ws_name(nd->id), max_tokens, max_tiles);
        ws->offset[nd->id] = at; /* relative to its region for now */
        ws->bytes[nd->id] = bytes;
        ws->phase[nd->id] = nd->phase;
        region[nd->phase] = end;
    }
    size_t persist = (region[VP_WS_PERSIST] + VP_WS_ALIGN - 1) / VP_WS_ALIGN * VP_WS_ALIGN;
    size_t scratch = region[VP_WS_VISION] > region[VP_WS_LANGUAGE] ? region[VP_WS_VISION]
                                                                    : region[VP_WS_LANGUAGE];
    if (__builtin_add_overflow(persist, scratch, &ws->total) ||
        ws->total > SIZE_MAX - VP_WS_ALIGN)
        return vp_fail(err, VP_ERR_TOO_LARGE, "max_tokens", "the workspace overflows size_t");
    for (int id = 0; id < VP_WS_COUNT; id++)
        if (ws->phase[id] != VP_WS_PERSIST)
            ws->offset[id] += persist;
    ws->persist_bytes = persist;
    ws->vision_bytes = region[VP_WS_VISION];
    ws->language_bytes = region[VP_WS_LANGUAGE];
    ws->total = (ws->total + VP_WS_ALIGN - 1) / VP_WS_ALIGN * VP_WS_ALIGN;
    return 0;
}
