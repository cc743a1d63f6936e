/* Inside the CUDA backend: device weights, working memory and per-batch staging, shared
 * by cuda_backend.c, cuda_weights.c, cuda_vision.c and cuda_language.c. */
#ifndef VP_CUDA_MODEL_H
#define VP_CUDA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "engine/backend.h"
#include "engine/cuda/cuda_gemm.h"
#include "engine/cuda/cuda_profile.h"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda_plan/cuda_plan.h"

/* Hv vision hidden, Iv vision MLP, Kp padded patch length, Cp = 4 Hv, H llm hidden,
 * I llm MLP, Q = heads * head_dim, KV = kv_heads * head_dim. All device pointers into
 * the weight arena. */
typedef struct cuda_vit_layer {
    const float *norm1_w, *norm1_b;     /* [Hv]; bias NULL for rms_norm */
    const vp_bf16 *qkv_w, *qkv_b;       /* [3 Hv][Hv], [3 Hv] or NULL */
    const float *q_norm_w, *k_norm_w;   /* [Hv] or NULL */
    const vp_bf16 *proj_w;              /* [Hv][Hv] */
    const float *proj_b;                /* [Hv] */
    const float *ls1, *ls2;             /* [Hv] */
    const float *norm2_w, *norm2_b;     /* [Hv] */
    const vp_bf16 *fc1_w, *fc1_b;       /* [Iv][Hv], [Iv] */
    const vp_bf16 *fc2_w;               /* [Hv][Iv] */
    const float *fc2_b;                 /* [Hv] */
} cuda_vit_layer;

typedef struct cuda_llm_layer {
    const float *attention_norm;        /* [H] */
    const vp_bf16 *wqkv;                /* [Q + 2 KV][H] packed per KV group */
    const vp_bf16 *wo;                  /* [H][Q] */
    const float *ffn_norm;              /* [H] */
    const vp_bf16 *w13;                 /* [2 I][H]: w1 rows, then w3 rows */
    const vp_bf16 *w2;                  /* [H][I] */
} cuda_llm_layer;

typedef struct cuda_weights {
    const float *class_emb;             /* [Hv] */
    const vp_bf16 *patch_w;             /* [Hv][Kp] */
    const float *patch_b;               /* [Hv] */
    const float *pos_emb;               /* [1 + G*G][Hv] */
    cuda_vit_layer *vit;                /* [vision.layers] (host array) */
    const float *pn_w, *pn_b;           /* [Cp] */
    const vp_bf16 *p1_w, *p1_b;         /* [H][Cp], [H] */
    const vp_bf16 *p2_w;                /* [H][H] */
    const float *p2_b;                  /* [H] */
    const vp_bf16 *tok_emb;             /* [vocab][H] */
    cuda_llm_layer *llm;                /* [llm.layers] (host array) */
    const float *norm;                  /* [H] */
} cuda_weights;

/* Host staging (pinned) of the per-batch inputs, offsets in bytes. */
typedef enum {
    ST_TOKENS, ST_IMAGE_ROW, ST_ROPE_ROW, ST_OUT_INDEX, ST_ITEMS, ST_VITEMS, ST_RANGES,
    ST_VRANGES, ST_ROPE_EXTRA, ST_KV_MAP, ST_COUNT
} cuda_staging_id;

struct vp_backend {
    vp_model_config cfg;            /* copy; system_message not owned (NULL) */
    int device;
    char device_name[256];
    cudaStream_t stream;
    cudaEvent_t ev_start, ev_vision, ev_end;
    vp_gemm gemm, gemm_vision;      /* the language model's products, the vision tower's */
    int act, act_vision;            /* vpk_act of their inputs (VPRM_CUDA_ACTIVATIONS) */
    bool act_auto;                  /* "auto": fp16 until an overflow, then bf16 (widen) */
    /* where the weights came from, to load them again in bf16 when auto widens */
    const vp_weights *src_weights;  /* the model's (outlives the backend), or NULL */
    uint64_t random_seed;           /* when random_weights */
    int32_t random_plus, random_minus;

    vp_cw_plan plan;                /* where every tensor lives in `arena` */
    void *arena;                    /* device weights, plan.arena_bytes */
    cuda_weights w;

    /* the two LM-head rows: read from the model's tensor, or generated (random weights) */
    const vp_tensor *head_src;      /* host [vocab][H], or NULL */
    bool random_weights;
    vp_rand_rule head_rule;         /* when random_weights */
    int32_t head_ids[2];            /* rows now in the HEAD buffer, -1 = none */

    float *rope_base;               /* device [base_rows][head_dim]: cos | sin, base theta */
    float *norm_table;              /* device [3][256]: vp_tiles_norm_table, for 8-bit tiles */
    size_t base_rows;
    vp_rope_extra *rope_extra;      /* host [max_tokens] per-batch rows */

    vp_bf16 *kv_cache;              /* device [layers][kv_rows][2][KV]: prefix KV cache */
    size_t kv_rows;
    size_t n_kv_loads, n_kv_map;    /* this batch's copies (VP_WS_KV_MAP) */

    vp_cuda_workspace ws;
    unsigned char *work;            /* device, ws.total bytes */
    unsigned char *staging;         /* pinned host, staging_bytes */
    size_t staging_off[ST_COUNT], staging_bytes;
    float *logits_host;             /* pinned [max_tokens][2] */

    bool fast_vision, fast_language; /* tensor-core attention in use */
    vpk_attn_shape vision_shape, language_shape; /* its launch shapes (mma.sync) */
    int vision_wgmma, language_wgmma; /* > 0: the wgmma kernel instead, this variant
                                       * (heads per block | VPK_WGMMA_* bits) */
    int gated_mlp;                  /* VPRM_CUDA_MLP: w1 | w3 with the SiLU-gate in one kernel
                                     * (k_mlp_gated.cu): 1 block by block, 2 in pairs; 0 off */
    cuda_profile prof;              /* VPRM_CUDA_PROFILE=1: phase times per forward */
    double attn_flops_layer;        /* this forward's LLM attention FLOPs per layer (profile) */
    double attn_flops_rows;         /* the last layer's, on the output rows (profile) */
};

/* Device pointer of working buffer id. */
static inline void *cuda_ws(const vp_backend *b, vp_ws_id id)
{
    return b->work + b->ws.offset[id];
}

static inline void *cuda_stage(const vp_backend *b, cuda_staging_id id)
{
    return b->staging + b->staging_off[id];
}

/* cuda_weights.c */
/* *touched (may be NULL) turns true once the first weight is written: a failure before
 * (the staging buffers not allocated) leaves the arena as it was. */
int cuda_weights_upload(vp_backend *b, const vp_weights *w, bool *touched, vp_error *err);
int cuda_weights_random(vp_backend *b, uint64_t seed, int32_t plus, int32_t minus, vp_error *err);
void cuda_weights_bind(vp_backend *b);
/* fp16 activations: the products' weights and biases (bf16 on the device after the upload
 * or the generator) of each tower whose act is fp16 converted to fp16 in place; refuses a
 * weight beyond fp16's range. */
int cuda_weights_to_act(vp_backend *b, vp_error *err);
/* Makes the HEAD buffer hold rows plus and minus. */
int cuda_head_rows(vp_backend *b, int32_t plus, int32_t minus, vp_error *err);

/* cuda_vision.c: features for n_tiles host tiles into VP_WS_FEATURES, from normalised
 * float tiles or (when tiles is NULL) 8-bit ones (vp_batch). */
int cuda_vision_forward(vp_backend *b, const float *tiles, const uint8_t *const *tiles_u8,
                        size_t n_tiles, vp_error *err);
/* cuda_language.c: the language model over an uploaded batch; logits into VP_WS_LOGITS. */
int cuda_language_forward(vp_backend *b, const vp_batch *batch, size_t n_items, vp_error *err);

#endif
