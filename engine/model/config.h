/* The model's config.json (InternVLChatConfig), parsed and validated once. */
#ifndef VP_MODEL_CONFIG_H
#define VP_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/util/err.h"

typedef enum { VP_NORM_LAYER, VP_NORM_RMS } vp_norm_type;

typedef struct vp_vision_config {
    int hidden;        /* hidden_size, 1024 */
    int layers;        /* num_hidden_layers, 24 */
    int heads;         /* num_attention_heads, 16 (head dim = hidden / heads) */
    int intermediate;  /* intermediate_size, 4096 */
    int patch;         /* patch_size, 14 */
    int image_size;    /* image_size, 448 (the tile size) */
    int channels;      /* num_channels, 3 */
    vp_norm_type norm; /* norm_type */
    float norm_eps;    /* layer_norm_eps, 1e-6 */
    bool qkv_bias;
    bool qk_norm;      /* qk_normalization */
} vp_vision_config;

typedef struct vp_llm_config {
    int hidden;        /* 4096 */
    int layers;        /* 32 */
    int heads;         /* 32 query heads */
    int kv_heads;      /* 8 */
    int head_dim;      /* hidden / heads, 128 */
    int intermediate;  /* 14336 */
    int vocab;         /* 92553 */
    float rms_eps;     /* 1e-5 */
    double rope_theta; /* 1e6 */
    bool rope_dynamic; /* rope_scaling.type == "dynamic" */
    double rope_factor;/* rope_scaling.factor (1 when no scaling) */
    int max_pos;       /* max_position_embeddings */
} vp_llm_config;

/* How random weights are drawn (vprm mkmodel, the CUDA backend's generator): never read
 * from config.json. SPREAD (the default) sharpens attention so that step scores spread
 * (mkmodel_init.c); PLAIN is PERF.md's recipe: every weight normal(0, 0.02), only the two
 * scored LM-head rows scaled (the GPU checks measure parity on both). */
typedef enum { VP_INIT_RULE_SPREAD = 0, VP_INIT_RULE_PLAIN = 1 } vp_init_rule;

typedef struct vp_model_config {
    vp_vision_config vision;
    vp_llm_config llm;
    double downsample_ratio; /* 0.5 */
    int select_layer;        /* -1 (only value supported) */
    int min_dynamic_patch;   /* 1 */
    int max_dynamic_patch;   /* 12 */
    bool use_thumbnail;      /* true */
    int num_image_token;     /* tokens per tile after pixel shuffle, 256 */
    char name[128];          /* model name reported by the API (from _name_or_path or folder) */
    char *system_message;    /* NULL = the PRM system prompt of MODEL.md; heap-owned */
    vp_init_rule init_rule;  /* random weights only (above) */
} vp_model_config;

/* Parse config.json text; refuses unsupported settings with a message naming them. */
int vp_model_config_parse(const char *json, size_t len, vp_model_config *cfg, vp_error *err);
int vp_model_config_load(const char *dir, vp_model_config *cfg, vp_error *err);
void vp_model_config_free(vp_model_config *cfg);

/* config.json text for cfg in the published InternVL2.5 layout (nested vision_config /
 * llm_config, the same keys as the released file); torch_dtype is "bfloat16", "float16"
 * or "float32". Heap string (free()), or NULL when memory runs out. */
char *vp_model_config_to_json(const vp_model_config *cfg, const char *torch_dtype);

#endif
