/* Every weight of the model, as views into the mapped checkpoint. Names are the
 * Hugging Face ones (MODEL.md sections 4-6); shapes are [out, in] for linear layers. */
#ifndef VP_WEIGHTS_H
#define VP_WEIGHTS_H

#include "engine/model/config.h"
#include "engine/model/tensor.h"

typedef struct vp_vit_layer {
    vp_tensor norm1_w, norm1_b; /* [Hv]; bias only for layer_norm */
    vp_tensor qkv_w;            /* [3*Hv, Hv] rows: q block, k block, v block */
    vp_tensor qkv_b;            /* [3*Hv] when qkv_bias */
    vp_tensor q_norm_w, k_norm_w; /* [Hv] RMSNorm weights when qk_normalization */
    vp_tensor proj_w, proj_b;   /* [Hv, Hv], [Hv] */
    vp_tensor ls1, ls2;         /* [Hv] layer scales */
    vp_tensor norm2_w, norm2_b; /* [Hv] */
    vp_tensor fc1_w, fc1_b;     /* [Iv, Hv], [Iv] */
    vp_tensor fc2_w, fc2_b;     /* [Hv, Iv], [Hv] */
} vp_vit_layer;

typedef struct vp_llm_layer {
    vp_tensor attention_norm;   /* [H] */
    vp_tensor wqkv;             /* [(heads + 2*kv_heads) * head_dim, H], packed per KV group */
    vp_tensor wo;               /* [H, heads*head_dim] */
    vp_tensor ffn_norm;         /* [H] */
    vp_tensor w1, w3;           /* [I, H] gate and up */
    vp_tensor w2;               /* [H, I] down */
} vp_llm_layer;

typedef struct vp_weights {
    /* vision_model.embeddings */
    vp_tensor class_embedding;  /* [1, 1, Hv] */
    vp_tensor patch_w;          /* [Hv, 3, P, P] */
    vp_tensor patch_b;          /* [Hv] */
    vp_tensor pos_embedding;    /* [1, 1 + (S/P)^2, Hv] */
    vp_vit_layer *vit;          /* [vision.layers] */
    /* mlp1: projector; Cp = Hv / downsample_ratio^2 */
    vp_tensor proj_norm_w, proj_norm_b; /* mlp1.0 [Cp] */
    vp_tensor proj1_w, proj1_b;         /* mlp1.1 [H, Cp], [H] */
    vp_tensor proj2_w, proj2_b;         /* mlp1.3 [H, H], [H] */
    /* language_model */
    vp_tensor tok_embeddings;   /* [vocab, H] */
    vp_llm_layer *llm;          /* [llm.layers] */
    vp_tensor norm;             /* [H] final RMSNorm */
    vp_tensor output;           /* [vocab, H] LM head */
} vp_weights;

typedef struct vp_model vp_model;

/* Load config.json and the weights (single model.safetensors or sharded through
 * model.safetensors.index.json), memory-mapped and validated against the config:
 * every required tensor present with the right shape, no unknown tensor. */
int vp_model_load(const char *dir, vp_model **out, vp_error *err);
/* The model's config.json only (no checkpoint is opened; the weight tensors are empty):
 * for backends that generate random weights themselves. n_params is the layout's. */
int vp_model_load_config_only(const char *dir, vp_model **out, vp_error *err);
void vp_model_free(vp_model *m);
const vp_model_config *vp_model_cfg(const vp_model *m);
const vp_weights *vp_model_weights(const vp_model *m);
/* Total number of parameters (elements) over all tensors. */
size_t vp_model_n_params(const vp_model *m);

#endif
